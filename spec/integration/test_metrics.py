#!/usr/bin/python3
"""GET /metrics: the Prometheus text exposition, scraped from the real binary.

Real clients of examples/hub connect, subscribe, publish, echo, get
rate-limited, are refused (Origin, capacity) and disconnect (1000, no
close frame, 1008); the test keeps its own count of every message and
payload byte each side sent, then scrapes /metrics and parses the text
with a strict parser of the 0.0.4 format (HELP and TYPE before the
samples of their family, each family's lines together, label values
unescaped, no duplicate series, histograms cumulative with +Inf equal to
_count). The values must be what the test did, and counters never go down
between scrapes. A fixture app (fixtures/metrics) has handlers that sleep,
fail with codes the test picks, and wait behind a gate the test opens:
handling time per route, errors by code, and what waits.
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
        suffix = None
        if current and families[current]["type"] == "histogram":
            suffix = name[len(current):] if name.startswith(current) else None
            check(suffix in ("_bucket", "_sum", "_count"),
                  "%s: histogram sample is not _bucket, _sum or _count" % where)
            name = current
        check(name == current, "%s: sample outside its family (HELP/TYPE first, lines together)"
              % where)
        check(families[name]["type"] is not None, "%s: sample before TYPE" % where)
        key = parse_labels(labels or "", where)
        if suffix:
            key = (suffix,) + key
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
        if f["type"] == "histogram":
            check_histogram(name, f)
    return families


def histogram_series(f):
    """A histogram family's series: {labels without le: {"buckets": [(le, v)], "sum", "count"}}."""
    series = {}
    for key, v in f["samples"].items():
        suffix, labels = key[0], key[1:]
        le = dict(labels).get("le")
        rest = tuple(kv for kv in labels if kv[0] != "le")
        s = series.setdefault(rest, {"buckets": [], "sum": None, "count": None})
        if suffix == "_bucket":
            check(le is not None, "%r: a bucket without le" % (labels,))
            s["buckets"].append((float(le), v))
        else:
            check(le is None, "%r: le outside a bucket" % (labels,))
            s[suffix[1:]] = v
    return series


def check_histogram(name, f):
    """Buckets cumulative in le order, +Inf equal to _count, _sum and _count there."""
    for labels, s in histogram_series(f).items():
        where = "%s%r" % (name, labels)
        check(s["sum"] is not None and s["count"] is not None, "%s: _sum and _count" % where)
        b = sorted(s["buckets"])
        check(b and b[-1][0] == float("inf"), "%s: a +Inf bucket" % where)
        check(all(b[i][1] <= b[i + 1][1] for i in range(len(b) - 1)), "%s: cumulative" % where)
        eq(b[-1][1], s["count"], "%s: +Inf bucket is _count" % where)
        check(s["sum"] >= 0, "%s: _sum >= 0" % where)


def route_histogram(fams, route):
    """moonwire_message_duration_seconds of one route: {"le": {le: v}, "sum", "count"}."""
    f = fams.get("moonwire_message_duration_seconds")
    check(f is not None and f["type"] == "histogram", "the latency histogram is there")
    s = histogram_series(f).get((("route", route),))
    if s is None:
        return None
    return {"le": dict(s["buckets"]), "sum": s["sum"], "count": s["count"]}


HIST = ("# HELP moonwire_h_seconds H.\n# TYPE moonwire_h_seconds histogram\n"
        'moonwire_h_seconds_bucket{route="a",le="0.1"} 1\n'
        'moonwire_h_seconds_bucket{route="a",le="1"} 2\n'
        'moonwire_h_seconds_bucket{route="a",le="+Inf"} 3\n'
        'moonwire_h_seconds_sum{route="a"} 2.5\n'
        'moonwire_h_seconds_count{route="a"} 3\n')


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
        HIST.replace('le="+Inf"} 3', 'le="+Inf"} 2'),                    # +Inf != _count
        HIST.replace('le="0.1"} 1', 'le="0.1"} 4'),                      # not cumulative
        HIST.replace("moonwire_h_seconds_sum", "moonwire_h_seconds_total"),  # unknown suffix
        HIST.replace('moonwire_h_seconds_count{route="a"} 3\n', ""),     # no _count
    ]
    fams = parse(HIST)
    eq(route_histogram({"moonwire_message_duration_seconds": fams["moonwire_h_seconds"]}, "a"),
       {"le": {0.1: 1, 1.0: 2, float("inf"): 3}, "sum": 2.5, "count": 3}, "a histogram parsed")
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


def settled(srv, ready, what):
    """The first scrape, once every worker has published its numbers since
    the call (Server.fresh_health), for which ready(fams) holds (failing
    at the deadline): with workers each worker publishes about once a
    second, so what one worker counted shows in another's /metrics a
    little later. One worker: the first scrape."""
    srv.fresh_health()
    return H.poll(lambda: (lambda f: ready(f) and f)(scrape(srv)), what=what)


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

    middle = settled(srv, lambda f: value(f, "moonwire_connections") == 3
                     and value(f, "moonwire_fanout_deliveries_total") == 2, "3 clients, 2 deliveries")
    check_monotonic(first, middle)
    eq(value(middle, "moonwire_connections"), 3, "connections")
    # with workers too: news counts once, whichever workers have a and b
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
    last = settled(srv, lambda f: value(f, "moonwire_connections") == 0
                   and sum(f["moonwire_disconnects_total"]["samples"].values()) == 3
                   and value(f, "moonwire_messages_received_total") == t.sent
                   and value(f, "moonwire_messages_sent_total") == t.received
                   and value(f, "moonwire_rooms") == 0,
                   "every client gone, every message counted, no room left")
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
    errors = last["moonwire_errors_total"]["samples"]
    eq({k[0][1]: v for k, v in errors.items()}, {"RATE_LIMIT_EXCEEDED": 2},
       "errors by code: the core's rate_limit replies")
    # every message that reached Lua is timed under its route; the
    # rate-limited ones never did
    for route, n in (("hub.subscribe", 2), ("hub.publish", 1), ("hub.echo", 5)):
        h = route_histogram(last, route)
        check(h is not None, "%s timed" % route)
        eq(h["count"], n, "%s messages timed" % route)
    eq(route_histogram(last, "unrouted"), None, "no unrouted message")
    for name in ("lua_tasks_waiting", "lua_queued_messages", "lua_held_clients"):
        eq(value(last, "moonwire_" + name), 0, name)
    health = srv.health()
    eq(sum(refused.values()), health["refused"], "refusals add up to /health's")
    eq(value(last, "moonwire_rate_limited_messages_total"), health["rate_limited"],
       "rate_limited as /health")


def request(raw, action, data=None, id_=None):
    raw.send_text(json.dumps({"type": "m", "action": action, "data": data or {},
                              "id": id_ or action}).encode())


def reply(raw):
    op, data = raw.recv_message()
    return json.loads(data.decode("utf-8"))


@S.case("/metrics: handling time per route with the wait included, errors by code, what waits")
def test_latency_errors_and_waits(ctx):
    srv = ctx.start("metrics-app", ctx.fixture("metrics"))
    a = ctx.track(H.RawClient(srv.connect_host, srv.port))
    a.handshake()
    b = ctx.track(H.RawClient(srv.connect_host, srv.port))
    b.handshake()

    # a handler that sleeps 150 ms: timed with its sleep, under its route
    request(a, "nap", {"ms": 150})
    eq(reply(a)["data"], {"slept": 150}, "nap answered")
    request(a, "quick", {"n": 1})
    eq(reply(a)["data"], {"n": 1}, "quick answered")
    # from b, which sends every failure below: with workers a and b may be
    # on two workers, each with its own 64 codes, and the codes case
    # counts one table
    b.send_text(b"not json")
    eq(reply(b)["error"]["code"], "INVALID_MESSAGE", "bad JSON refused")
    # with workers (MW_TEST_WORKERS) /metrics merges each worker's last
    # published numbers (about a second old): wait until they hold these
    fams = settled(srv, lambda f: route_histogram(f, "unrouted")["count"] == 1
                   and route_histogram(f, "m.quick")["count"] == 1, "the three timed")
    nap = route_histogram(fams, "m.nap")
    eq(nap["count"], 1, "one nap timed")
    # the server's timers run on the loop's millisecond clock: a sleep may
    # end up to a millisecond early on the precise one
    check(nap["sum"] >= 0.148, "nap took its sleep: %r" % nap["sum"])
    # below its sleep no bucket counts it; above, where it lands depends on
    # how busy the machine is: cumulative buckets only grow, up to 1
    prev = 0
    for le, v in sorted(nap["le"].items()):
        if le <= 0.1:
            eq(v, 0, "nap bucket le=%s" % le)
        check(v >= prev, "buckets are cumulative: le=%s has %s after %s" % (le, v, prev))
        prev = v
    eq(prev, 1, "the last bucket holds the nap")
    eq(route_histogram(fams, "m.quick")["count"], 1, "quick timed")
    eq(route_histogram(fams, "unrouted")["count"], 1, "bad JSON timed as unrouted")

    # errors by code: the app's own, and no more than 64 codes listed
    for i in range(70):
        request(b, "fail", {"code": "CODE_%d" % i})
        eq(reply(b)["error"]["code"], "CODE_%d" % i, "failure %d" % i)
    request(b, "fail", {"code": "CODE_0"})
    reply(b)
    errors = settled(srv, lambda f: sum(f["moonwire_errors_total"]["samples"].values()) >= 72,
                     "72 errors counted")["moonwire_errors_total"]["samples"]
    by_code = {k[0][1]: v for k, v in errors.items()}
    check(len(by_code) <= 65, "at most 64 codes and other: %d" % len(by_code))
    eq(sum(by_code.values()), 72, "every error counted once (71 failures, 1 bad JSON)")
    eq(by_code.get("CODE_0"), 2, "a known code counts as itself")
    eq(by_code.get("INVALID_MESSAGE"), 1, "INVALID_MESSAGE")
    eq(by_code.get("other"), 7, "the 7 codes past the first 64 under other")

    # what waits: a's handler waits behind a gate; its next messages
    # queue; at max_pending_messages (3 in the fixture) a is not read
    request(a, "gate")
    for i in range(3):
        request(a, "quick", {"n": i}, "q%d" % i)

    def waiting():
        f = scrape(srv)
        return (value(f, "moonwire_lua_tasks_waiting"), value(f, "moonwire_lua_queued_messages"),
                value(f, "moonwire_lua_held_clients"))
    H.poll(lambda: waiting() == (1, 3, 1), what="1 task waiting, 3 queued, 1 client held")
    lua = srv.health()["lua"]
    eq((lua["tasks_waiting"], lua["queued_messages"], lua["held_clients"], lua["wait_timeouts"]),
       (1, 3, 1, 0), "/health's lua")
    request(b, "open")
    eq(reply(b)["data"], {"open": True}, "gate opened")
    eq(reply(a)["data"], {"through": True}, "the gate let a through")
    eq([reply(a)["id"] for _ in range(3)], ["q0", "q1", "q2"], "the queued ones, in order")
    H.poll(lambda: waiting() == (0, 0, 0), what="nothing waits any more")
    fams = settled(srv, lambda f: route_histogram(f, "m.quick")["count"] >= 4
                   and route_histogram(f, "m.gate")["count"] >= 1, "the gate and every quick timed")
    gate = route_histogram(fams, "m.gate")
    eq(gate["count"], 1, "the gate timed")
    check(gate["sum"] >= 0.004, "the gate's time holds its sleeps: %r" % gate["sum"])
    eq(route_histogram(fams, "m.quick")["count"], 4, "every quick timed")
    check(value(fams, "moonwire_lua_waits_total") >= 2, "waits counted")
    eq(value(fams, "moonwire_lua_wait_timeouts_total"), 0, "no wait timed out")


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
