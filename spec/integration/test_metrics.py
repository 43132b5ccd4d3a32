#!/usr/bin/python3
"""GET /metrics: the Prometheus text exposition, scraped from the real binary.

Real clients of examples/hub connect, subscribe, publish, echo, get
rate-limited, are refused (Origin, capacity) and disconnect (1000, no
close frame, 1008); the test keeps its own count of every message and
payload byte each side sent, then scrapes /metrics and parses the text
with a strict parser of the 0.0.4 format (HELP and TYPE before the
samples of their family, each family's lines together, label values
unescaped, no duplicate series). The values must be what the test did,
and counters never go down between scrapes.
"""

import json
import os
import re
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

S = H.Suite("moonwire metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
SAMPLE_RE = re.compile(r"^(%s)(?:\{(.*)\})? (\S+)$" % NAME)
HELP_RE = re.compile(r"^# HELP (%s) (.*)$" % NAME)
TYPE_RE = re.compile(r"^# TYPE (%s) (counter|gauge|histogram|summary|untyped)$" % NAME)


def parse_labels(text, where):
    """name="value",... with the format's escapes (\\\\, \\", \\n) -> tuple of pairs."""
    labels, i = [], 0
    while i < len(text):
        m = re.compile(LABEL).match(text, i)
        check(m is not None, "%s: label name at %r" % (where, text[i:]))
        name = m.group(0)
        i = m.end()
        check(text[i:i + 2] == '="', "%s: label %s without =\"" % (where, name))
        i += 2
        value = []
        while True:
            check(i < len(text), "%s: unterminated label value" % where)
            ch = text[i]
            if ch == "\\":
                nxt = text[i + 1:i + 2]
                check(nxt in ("\\", '"', "n"), "%s: bad escape \\%s" % (where, nxt))
                value.append("\n" if nxt == "n" else nxt)
                i += 2
            elif ch == '"':
                i += 1
                break
            else:
                check(ch != "\n", "%s: raw newline in a label value" % where)
                value.append(ch)
                i += 1
        labels.append((name, "".join(value)))
        if i < len(text):
            check(text[i] == ",", "%s: expected , after label %s" % (where, name))
            i += 1
    names = [n for n, _ in labels]
    check(len(set(names)) == len(names), "%s: repeated label" % where)
    return tuple(sorted(labels))


def parse(text):
    """The exposition as {family: {"type", "help", "samples": {labels: value}}}.
    Fails on anything the 0.0.4 text format does not allow here."""
    check(text.endswith("\n"), "the text ends with a newline")
    families, order, current = {}, [], None
    for n, line in enumerate(text[:-1].split("\n"), 1):
        where = "line %d %r" % (n, line)
        check(line != "", "%s: empty line" % where)
        m = HELP_RE.match(line)
        if m:
            name = m.group(1)
            check(name not in families, "%s: second HELP for %s" % (where, name))
            families[name] = {"help": m.group(2), "type": None, "samples": {}}
            order.append(name)
            current = name
            continue
        m = TYPE_RE.match(line)
        if m:
            name = m.group(1)
            check(name == current and families[name]["type"] is None
                  and not families[name]["samples"],
                  "%s: TYPE right after its HELP, before samples" % where)
            families[name]["type"] = m.group(2)
            continue
        check(not line.startswith("#"), "%s: unknown comment" % where)
        m = SAMPLE_RE.match(line)
        check(m is not None, "%s: not a sample line" % where)
        name, labels, value = m.group(1), m.group(2), m.group(3)
        check(name == current, "%s: sample outside its family (HELP/TYPE first, lines together)"
              % where)
        check(families[name]["type"] is not None, "%s: sample before TYPE" % where)
        key = parse_labels(labels or "", where)
        check(key not in families[name]["samples"], "%s: duplicate series" % where)
        try:
            v = float(value)
        except ValueError:
            raise H.Failure("%s: value %r is not a number" % (where, value))
        families[name]["samples"][key] = v
    for name, f in families.items():
        check(name.startswith("moonwire_"), "%s: prefixed moonwire_" % name)
        check(f["type"] is not None, "%s: has a TYPE" % name)
        check(f["help"].strip() != "", "%s: has HELP text" % name)
        if f["type"] == "counter":
            check(name.endswith("_total"), "counter %s ends in _total" % name)
            check(all(v >= 0 for v in f["samples"].values()), "counter %s >= 0" % name)
    return families


def check_parser_is_strict():
    """The parser below the scrapes rejects what the format does not allow."""
    good = ("# HELP moonwire_x_total X.\n# TYPE moonwire_x_total counter\n"
            'moonwire_x_total{a="q\\"\\\\\\n"} 1\n')
    fams = parse(good)
    eq(list(fams["moonwire_x_total"]["samples"]), [(("a", 'q"\\\n'),)], "unescaped label")
    bad = [
        "moonwire_x_total 1\n",                                           # no HELP/TYPE
        "# HELP moonwire_x_total X.\nmoonwire_x_total 1\n",               # no TYPE
        "# HELP moonwire_x X.\n# TYPE moonwire_x counter\nmoonwire_x 1\n",  # counter w/o _total
        good + 'moonwire_x_total{a="q\\"\\\\\\n"} 2\n',                   # duplicate series
        good.replace('"} 1', '\\t"} 1'),                                  # bad escape
        good.replace(" 1\n", " one\n"),                                   # not a number
        good + "# HELP moonwire_y Y.\n# TYPE moonwire_y gauge\nmoonwire_x_total 3\n",  # split
        good[:-1],                                                        # no final newline
        good.replace("moonwire_", "other_"),                              # prefix
    ]
    for i, text in enumerate(bad):
        try:
            parse(text)
        except H.Failure:
            continue
        raise H.Failure("bad text %d accepted: %r" % (i, text))


def scrape(srv):
    status, headers, body = H.http_request(srv.connect_host, srv.port, "GET", "/metrics")
    eq(status, 200, "/metrics status")
    eq(H.header(headers, "Content-Type"), CONTENT_TYPE, "/metrics Content-Type")
    return parse(body.decode("utf-8"))


def value(fams, name, **labels):
    f = fams.get(name)
    check(f is not None, "family %s present" % name)
    key = tuple(sorted(labels.items()))
    check(key in f["samples"], "%s%r present" % (name, labels))
    return f["samples"][key]


def check_monotonic(before, after):
    for name, f in before.items():
        if f["type"] != "counter":
            continue
        for key, v in f["samples"].items():
            check(key in after[name]["samples"], "%s%r still there" % (name, key))
            check(after[name]["samples"][key] >= v,
                  "counter %s%r went down: %s -> %s" % (name, key, v, after[name]["samples"][key]))


class Tally:
    """What the test's clients sent and received: messages and payload bytes."""

    def __init__(self):
        self.sent = self.sent_bytes = self.received = self.received_bytes = 0


class Client:
    def __init__(self, ctx, srv, tally, **kw):
        self.raw = ctx.track(H.RawClient(srv.connect_host, srv.port))
        self.raw.handshake(**kw)
        self.tally = tally

    def send(self, obj):
        data = json.dumps(obj).encode("utf-8")
        self.tally.sent += 1
        self.tally.sent_bytes += len(data)
        self.raw.send_text(data)

    def recv(self):
        op, data = self.raw.recv_message(allow_pong=True)
        self.tally.received += 1
        self.tally.received_bytes += len(data)
        return json.loads(data.decode("utf-8"))


def start(ctx, app=None):
    env = {
        "MOONWIRE_RATE_LIMIT_MAX_MESSAGES": "5",
        "MOONWIRE_RATE_LIMIT_WINDOW_MS": "60000",
        "MOONWIRE_RATE_LIMIT_MAX_VIOLATIONS": "3",
        "MOONWIRE_ALLOWED_ORIGINS": "https://app.example",
        "MOONWIRE_MAX_CONNECTIONS": "3",
        "MOONWIRE_LUA_MEMORY_LIMIT": "67108864",
    }
    return ctx.start("metrics", app or ctx.example("hub"), env=env)


@S.case("/metrics: strict text format, values matching what the clients did, counters monotonic")
def test_metrics_match_traffic(ctx):
    check_parser_is_strict()
    srv = start(ctx)
    t = Tally()
    first = scrape(srv)
    eq(value(first, "moonwire_connections"), 0, "connections at start")
    eq(value(first, "moonwire_connects_total"), 0, "connects at start")
    eq(first["moonwire_disconnects_total"]["samples"], {}, "no disconnects at start")
    eq(first["moonwire_connections"]["type"], "gauge", "connections is a gauge")
    eq(value(first, "moonwire_lua_memory_limit_bytes"), 67108864, "lua_memory_limit")
    check(value(first, "moonwire_lua_memory_bytes") > 0, "Lua heap in use")

    a, b, c = (Client(ctx, srv, t) for _ in range(3))
    # refused: a foreign Origin (403), then a fourth client past max_connections (503)
    ctx.track(H.RawClient(srv.connect_host, srv.port)).handshake(
        expect=403, extra=[("Origin", "https://evil.example")])
    ctx.track(H.RawClient(srv.connect_host, srv.port)).handshake(expect=503)

    a.send({"type": "subscribe", "room": "news"})
    eq(a.recv()["type"], "subscribed", "a subscribed")
    b.send({"type": "subscribe", "room": "news"})
    eq(b.recv()["type"], "subscribed", "b subscribed")
    c.send({"type": "publish", "room": "news", "data": "hello \"all\""})
    eq(a.recv()["data"], 'hello "all"', "a got the publish")
    eq(b.recv()["data"], 'hello "all"', "b got the publish")
    a.send({"type": "echo", "data": [1, 2, 3]})
    eq(a.recv()["type"], "echo", "a echo")

    middle = scrape(srv)
    check_monotonic(first, middle)
    eq(value(middle, "moonwire_connections"), 3, "connections")
    eq(value(middle, "moonwire_rooms"), 1, "rooms")
    eq(value(middle, "moonwire_fanout_deliveries_total"), 2, "fan-out deliveries")

    # c: four more within rate_limit (5 in all), then three over it: two
    # RATE_LIMIT_EXCEEDED answers, then a close with 1008
    for i in range(4):
        c.send({"type": "echo", "data": i})
        eq(c.recv()["data"], i, "c echo %d" % i)
    for i in range(2):
        c.send({"type": "echo", "data": "over"})
        eq(c.recv()["error"]["code"], "RATE_LIMIT_EXCEEDED", "refused %d" % i)
    c.send({"type": "echo", "data": "over"})
    f = c.raw.recv_frame()
    eq((f.opcode, f.close_code()), (H.OP_CLOSE, 1008), "c closed by the server")
    c.raw.send_close(1008)
    c.raw.expect_eof()
    c.raw.close()
    a.raw.send_close(1000)
    a.raw.expect_close(1000)
    a.raw.close()
    b.raw.close()  # no close frame: 1006
    H.poll(lambda: value(scrape(srv), "moonwire_connections") == 0, what="every client gone")

    last = scrape(srv)
    check_monotonic(middle, last)
    eq(value(last, "moonwire_connects_total"), 3, "connects")
    eq(last["moonwire_disconnects_total"]["samples"],
       {(("code", "1000"),): 1, (("code", "1006"),): 1, (("code", "1008"),): 1},
       "disconnects by code")
    eq(value(last, "moonwire_messages_received_total"), t.sent, "messages received")
    eq(value(last, "moonwire_received_bytes_total"), t.sent_bytes, "bytes received")
    eq(value(last, "moonwire_messages_sent_total"), t.received, "messages sent")
    eq(value(last, "moonwire_sent_bytes_total"), t.received_bytes, "bytes sent")
    eq(value(last, "moonwire_fanout_deliveries_total"), 2, "fan-out deliveries")
    eq(value(last, "moonwire_rooms"), 0, "rooms once everyone left")
    eq(value(last, "moonwire_rate_limited_messages_total"), 3, "rate-limited messages")
    eq(value(last, "moonwire_slow_consumer_drops_total"), 0, "slow-consumer drops")
    refused = last["moonwire_refused_connections_total"]["samples"]
    eq({k[0][1]: v for k, v in refused.items() if v}, {"origin": 1, "capacity": 1},
       "refused connections by reason")
    for reason in ("open_files", "no_memory", "ip_connections", "ip_rate", "app"):
        check((("reason", reason),) in refused, "reason %s listed at 0" % reason)
    health = srv.health()
    eq(sum(refused.values()), health["refused"], "refusals add up to /health's")
    eq(value(last, "moonwire_rate_limited_messages_total"), health["rate_limited"],
       "rate_limited as /health")


@S.case("/metrics counts reloads and failed reloads; HEAD answers, POST is 405")
def test_metrics_reloads_and_methods(ctx):
    app = ctx.copy_app(ctx.example("hub"))
    srv = start(ctx, app=app)
    path = os.path.join(app, "controllers", "hub.lua")
    with open(path) as f:
        good = f.read()
    H.write_file(path, good + "\nthis is not Lua\n")
    H.poll(lambda: value(scrape(srv), "moonwire_reload_failures_total") >= 1,
           what="a failed reload counted")
    eq(value(scrape(srv), "moonwire_reloads_total"), 0, "no reload succeeded yet")
    H.write_file(path, good)
    H.poll(lambda: value(scrape(srv), "moonwire_reloads_total") >= 1, what="a reload counted")
    srv.send_signal(signal.SIGHUP)
    H.poll(lambda: value(scrape(srv), "moonwire_reloads_total") >= 2, what="SIGHUP reload counted")
    status, headers, body = H.http_request(srv.connect_host, srv.port, "HEAD", "/metrics")
    eq(status, 200, "HEAD /metrics")
    eq(H.header(headers, "Content-Type"), CONTENT_TYPE, "HEAD Content-Type")
    # a HEAD answer has no body (Content-Length is the GET body's): read
    # everything the server sends until it closes
    for path in ("/metrics", "/health"):
        sock = H.connect(srv.connect_host, srv.port, H.SOCK_TIMEOUT)
        try:
            sock.sendall(("HEAD %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                          % path).encode())
            raw = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                raw += chunk
        finally:
            sock.close()
        head, _, rest = raw.partition(b"\r\n\r\n")
        check(head.startswith(b"HTTP/1.1 200"), "HEAD %s: %r" % (path, head[:40]))
        eq(rest, b"", "bytes after the head of HEAD %s" % path)
    status, headers, body = H.http_request(srv.connect_host, srv.port, "POST", "/metrics")
    eq(status, 405, "POST /metrics")
    eq(H.header(headers, "Allow"), "GET", "Allow")


@S.case("/metrics with api_key: 401 without the key or with another, 200 with it; /health open")
def test_metrics_api_key(ctx):
    srv = ctx.start("metrics-key", ctx.example("hub"), env={"MOONWIRE_API_KEY": "k3y-s3cret"})
    for headers in ([], [("Authorization", "apikey wrong")], [("Authorization", "apikey k3y")],
                    [("Authorization", "Bearer k3y-s3cret")],
                    [("Authorization", "apikey k3y-s3cretX")]):
        status, hdrs, body = H.http_request(srv.connect_host, srv.port, "GET", "/metrics",
                                            headers=headers)
        eq(status, 401, "/metrics with %r" % headers)
        eq(H.header(hdrs, "WWW-Authenticate"), "apikey", "WWW-Authenticate")
        check(b"moonwire_" not in body, "no metric leaks in a 401: %r" % body[:80])
    for value_ in ("apikey k3y-s3cret", "APIKey  k3y-s3cret"):
        status, hdrs, body = H.http_request(srv.connect_host, srv.port, "GET", "/metrics",
                                            headers=[("Authorization", value_)])
        eq(status, 200, "/metrics with %r" % value_)
        parse(body.decode("utf-8"))
    status, _, _ = H.http_request(srv.connect_host, srv.port, "GET", "/health")
    eq(status, 200, "/health stays open")


if __name__ == "__main__":
    sys.exit(S.main())
