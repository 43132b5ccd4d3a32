#!/usr/bin/python3
"""The benchmark's quick smoke mode: moonwire serves examples/hub (the hub
protocol every peer of scripts/bench speaks) and moonwire-bench drives it with
tiny configurations. Asserts correctness -- zero lost, deliveries = messages x
subscribers, no errors, a parseable JSON result -- never speed.

The Redis rows of scripts/bench (echo with one INCR per message) run the
same way against a redis-server started here: examples/hub with
HUB_REDIS_URL, and the Bun peer with --redis when Bun is installed
(scripts/peers/install). Without redis-server, or without Bun, those cases
say "skipped" and why.

The bus row (emit1, issue 11) runs examples/hub with an api_key: the
generator's publisher POSTs events to /api/emit and the hub's subscriber
(subscribers/bench.lua) broadcasts them to the room. Also its failures: a
wrong key, and a channel no subscriber takes, must fail the run.

The cross-node rows (xnode1, xnode2, issue 12) run two nodes of
examples/hub with `cluster = true` and one redis-server started here, the
odd subscribers on the second node (--url2), published from the first:
nothing lost means every message crossed through Redis. The same with two
Socket.IO peers (scripts/peers/socketio, --engineio 1) when its npm packages
are installed (scripts/peers/install, as for Bun: the suite itself never
needs the npm registry); otherwise that case says "skipped" and why.

    /usr/bin/python3 spec/integration/test_bench_smoke.py --binary BUILD/moonwire \
        --root REPO [--bench BUILD/moonwire-bench]

Without --bench, moonwire-bench is looked for next to --binary.
"""

import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

S = H.Suite("moonwire bench smoke (examples/hub)")
BENCH = {"path": None}
FANOUT_SUBS = 20
FANOUT_RATE = 200
INCR_TEMPLATE = '{"type":"incr","data":"%s"}'
API_KEY = "smoke-api-key"
EMIT_TEMPLATE = '{"channel":"%s","message":{"room":"%%s","data":"%%s"}}'


def pop_bench_arg(argv):
    """Removes --bench PATH / --bench=PATH from argv (the harness does not
    know it); returns (path or None, the rest)."""
    rest, path = [], None
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--bench" and i + 1 < len(argv):
            path = argv[i + 1]
            i += 2
            continue
        if a.startswith("--bench="):
            path = a.split("=", 1)[1]
        else:
            rest.append(a)
        i += 1
    return path, rest


def num(res, *names):
    """The first of `names` present in the result, as a number."""
    for n in names:
        if n in res:
            v = res[n]
            check(isinstance(v, (int, float)) and not isinstance(v, bool),
                  "field %r is not a number: %r" % (n, v))
            return v
    raise H.Failure("result has none of the fields %s: %s" % (names, H.short(json.dumps(res), 600)))


def run_bench(ctx, *args, timeout=60, env=None, status=0):
    argv = [BENCH["path"]] + [str(a) for a in args]
    e = dict(os.environ)
    e.pop("MOONWIRE_API_KEY", None)
    e.update(env or {})
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout, env=e)
    except subprocess.TimeoutExpired:
        raise H.Failure("%s did not finish within %ds" % (" ".join(argv), timeout))
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    eq(p.returncode, status, "moonwire-bench exit status (stderr: %s)" % H.short(err, 600))
    lines = [l for l in out.splitlines() if l.startswith("{")]
    check(lines, "no JSON line in the output: %s" % H.short(out + err, 600))
    check(lines[-1] == out.rstrip("\n").splitlines()[-1],
          "the JSON line is not the last line of the output: %s" % H.short(out, 600))
    try:
        res = json.loads(lines[-1])
    except ValueError as e:
        raise H.Failure("bad JSON line %r: %s" % (lines[-1][:300], e))
    check(isinstance(res, dict), "the JSON line is not an object: %r" % lines[-1][:300])
    human = [l for l in out.splitlines() if l.strip() and not l.startswith("{")]
    check(human, "no human summary before the JSON line")
    return res


def no_errors(res):
    eq(num(res, "errors"), 0, "errors (first: %r)" % res.get("first_error"))
    eq(num(res, "exit"), 0, "the exit status in the JSON line")


def common_fields(res):
    for n in ("p50_us", "p99_us", "max_us", "bench_cpu_pct"):
        num(res, n)
    p50, p99, mx = res["p50_us"], res["p99_us"], res["max_us"]
    check(0 <= p50 <= p99 <= mx, "percentiles out of order: p50 %r p99 %r max %r" % (p50, p99, mx))
    check(res["bench_cpu_pct"] >= 0, "bench_cpu_pct is negative")


def url(ctx):
    return ctx.servers["hub"].url("/")


@S.setup
def start_hub(ctx):
    path = BENCH["path"] or os.path.join(os.path.dirname(ctx.binary), "moonwire-bench")
    BENCH["path"] = os.path.abspath(path)
    if not os.access(BENCH["path"], os.X_OK):
        raise H.Failure("moonwire-bench not found at %s (build it, or pass --bench)" % BENCH["path"])
    ctx.start("hub", ctx.example("hub"))


@S.case("moonwire-bench --help describes the workloads")
def test_bench_help_describes_workloads(ctx):
    p = subprocess.run([BENCH["path"], "--help"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=10)
    eq(p.returncode, 0, "--help exit status")
    text = p.stdout.decode("utf-8", "replace")
    for word in ("echo", "fanout", "emit", "conns", "--api-url", "--api-key",
                 "--emit-template"):
        check(word in text, "--help does not mention %r" % word)


@S.case("echo: 4 connections for 1 s, every reply received", timeout=60)
def test_bench_echo_every_reply_received(ctx):
    res = run_bench(ctx, "echo", "--url", url(ctx), "--connections", 4, "--depth", 1,
                    "--size", 64, "--duration", 1)
    no_errors(res)
    common_fields(res)
    check(num(res, "msgs_per_s") > 0, "no echo round trip completed: %r" % res)
    eq(num(res, "connections_open"), 4, "connections open")
    eq(num(res, "lost"), 0, "lost echoes")
    eq(num(res, "unexpected"), 0, "unexpected replies")
    sent = num(res, "sent")
    check(sent > 0, "nothing was sent")
    eq(num(res, "received"), sent, "replies received (= messages sent)")


@S.case("fanout: 20 subscribers, 1 publisher at 200/s for 1 s, nothing lost", timeout=60)
def test_bench_fanout_nothing_lost(ctx):
    res = run_bench(ctx, "fanout", "--url", url(ctx), "--subscribers", FANOUT_SUBS,
                    "--publishers", 1, "--rate", FANOUT_RATE, "--size", 64, "--duration", 1)
    no_errors(res)
    common_fields(res)
    eq(num(res, "subscribers"), FANOUT_SUBS, "subscribers")
    eq(num(res, "connections_open"), FANOUT_SUBS + 1, "connections open")
    messages = num(res, "published")
    check(messages > 0, "nothing was published: %r" % res)
    # 200/s for 1 s of warm-up plus 1 s measured: about 400 messages.
    check(messages <= FANOUT_RATE * 3, "the publisher exceeded its rate: %d messages" % messages)
    eq(num(res, "expected"), messages * FANOUT_SUBS, "expected deliveries")
    eq(num(res, "received"), messages * FANOUT_SUBS, "deliveries (= messages x subscribers)")
    eq(num(res, "lost"), 0, "lost deliveries")
    eq(num(res, "duplicates"), 0, "duplicate deliveries")
    eq(num(res, "stalled"), 0, "stalled messages")
    eq(num(res, "other_messages"), 0, "unexpected messages to subscribers")
    eq(num(res, "publisher_replies"), 0, "replies to the publisher (publish has no ack)")
    check(num(res, "deliveries_per_s") > 0, "deliveries_per_s is 0")


@S.case("conns: 50 idle connections and the server's RSS per connection", timeout=60)
def test_bench_conns_rss_per_connection(ctx):
    srv = ctx.servers["hub"]
    res = run_bench(ctx, "conns", "--url", url(ctx), "--connections", 50, "--duration", 1,
                    "--server-pid", srv.proc.pid)
    no_errors(res)
    eq(num(res, "connections_open"), 50, "connections opened")
    eq(num(res, "connections_held"), 50, "connections still open at the end")
    eq(num(res, "connections_failed"), 0, "connections failed")
    eq(num(res, "connections_dropped"), 0, "connections dropped by the server")
    check(num(res, "server_rss_after_bytes") > 0, "server RSS not read")
    num(res, "server_rss_per_conn_bytes")
    num(res, "bench_cpu_pct")


@S.case("the server is healthy after the runs, with no rooms or clients left")
def test_server_healthy_after_bench_runs(ctx):
    srv = ctx.servers["hub"]
    check(srv.alive(), "the server exited: %s" % H.short(srv.log(), 600))
    last = {}

    def idle():
        last.update(srv.health())
        return last.get("rooms") == 0 and last.get("connections") == 0
    try:
        H.poll(idle, timeout=10, what="/health to show no rooms and no connections")
    except H.Failure:
        raise H.Failure("/health after the runs: %r" % last)


def hub_with_api(ctx):
    """examples/hub with the server API on (api_key), started once."""
    if "hub-api" not in ctx.servers:
        ctx.start("hub-api", ctx.example("hub"), env={"MOONWIRE_API_KEY": API_KEY})
    return ctx.servers["hub-api"]


def emit_run(ctx, srv, *extra, env=None, status=0):
    """A tiny emit run: 20 subscribers, events at 200/s for 1 s. Messages
    that never arrive are given up after 0.5 s, so a failing run ends
    quickly too."""
    return run_bench(ctx, "emit", "--url", srv.url("/"), "--subscribers", FANOUT_SUBS,
                     "--publishers", 1, "--rate", FANOUT_RATE, "--size", 64, "--duration", 1,
                     "--stall-timeout", 0.5, "--drain-timeout", 0.5, *extra, env=env,
                     status=status)


@S.case("emit: 20 subscribers, events via /api/emit at 200/s for 1 s, nothing lost",
        timeout=60)
def test_bench_emit_nothing_lost(ctx):
    srv = hub_with_api(ctx)
    # The key from the environment, as scripts/bench passes it.
    res = emit_run(ctx, srv, env={"MOONWIRE_API_KEY": API_KEY})
    no_errors(res)
    common_fields(res)
    eq(res.get("mode"), "emit", "mode")
    check("api_key" not in json.dumps(res) and API_KEY not in json.dumps(res),
          "the API key is in the JSON line")
    eq(num(res, "connections_open"), FANOUT_SUBS + 1, "connections open")
    messages = num(res, "published")
    check(messages > 0, "nothing was emitted: %r" % res)
    check(messages <= FANOUT_RATE * 3, "the publisher exceeded its rate: %d events" % messages)
    eq(num(res, "emit_responses"), messages, "responses (= POSTs)")
    eq(num(res, "emit_responses_not_200"), 0, "responses other than 200")
    eq(num(res, "emit_unsubscribed"), 0, "events no subscriber took")
    eq(num(res, "expected"), messages * FANOUT_SUBS, "expected deliveries")
    eq(num(res, "received"), messages * FANOUT_SUBS, "deliveries (= events x subscribers)")
    eq(num(res, "lost"), 0, "lost deliveries")
    eq(num(res, "duplicates"), 0, "duplicate deliveries")
    eq(num(res, "other_messages"), 0, "unexpected messages to subscribers")
    check(num(res, "deliveries_per_s") > 0, "deliveries_per_s is 0")
    check(srv.alive(), "the server exited: %s" % H.short(srv.log(), 600))


@S.case("emit: a wrong API key fails the run (401), nothing delivered", timeout=60)
def test_bench_emit_wrong_key_fails(ctx):
    srv = hub_with_api(ctx)
    res = emit_run(ctx, srv, "--api-key", "not-the-key", status=1)
    eq(num(res, "exit"), 1, "the exit status in the JSON line")
    check(num(res, "errors") > 0, "no error counted")
    check("401" in res.get("first_error", ""), "first error: %r" % res.get("first_error"))
    check(num(res, "emit_responses_not_200") > 0, "no refused response counted")
    eq(num(res, "received"), 0, "deliveries of refused events")


@S.case("emit: a channel no subscriber takes fails the run", timeout=60)
def test_bench_emit_unsubscribed_channel_fails(ctx):
    srv = hub_with_api(ctx)
    res = emit_run(ctx, srv, "--api-key", API_KEY, "--emit-template",
                   EMIT_TEMPLATE % "bench.nobody", status=1)
    check(num(res, "emit_unsubscribed") > 0, "no unsubscribed event counted")
    check("subscribers" in res.get("first_error", ""),
          "first error: %r" % res.get("first_error"))
    eq(num(res, "received"), 0, "deliveries of events nobody took")
    check(num(res, "lost") > 0, "the lost deliveries are not counted")


class Redis:
    """A redis-server of this suite's own, on a free loopback port."""

    def __init__(self, ctx):
        self.dir = ctx.tmpdir("moonwire-redis-")
        self.port = H.free_port()
        self.url = "redis://127.0.0.1:%d/0" % self.port
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--protected-mode", "no",
             "--loglevel", "warning"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        H.poll(lambda: self.cli("PING") == "PONG", timeout=10, what="redis-server answers")

    def cli(self, *args):
        r = subprocess.run(["redis-cli", "-p", str(self.port)] + list(args),
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
        return r.stdout.decode().strip()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def no_redis():
    """Why the Redis cases cannot run here, or None."""
    for tool in ("redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            return "%s not installed (Debian: redis-server)" % tool
    return None


def skipped(why):
    print("     skipped: %s" % why, flush=True)


def incr_run(ctx, ws_url, redis):
    """The Redis row's echo, tiny: 4 connections for 1 s. Every message got
    its reply, each carrying its payload back, and Redis counted one INCR per
    reply."""
    res = run_bench(ctx, "echo", "--url", ws_url, "--connections", 4, "--depth", 1,
                    "--size", 64, "--duration", 1, "--template", INCR_TEMPLATE)
    no_errors(res)
    common_fields(res)
    check(num(res, "msgs_per_s") > 0, "no round trip completed: %r" % res)
    eq(num(res, "lost"), 0, "lost replies")
    eq(num(res, "unexpected"), 0, "replies without the payload (an error answered?)")
    sent = num(res, "sent")
    check(sent > 0, "nothing was sent")
    eq(num(res, "received"), sent, "replies received (= messages sent)")
    eq(redis.cli("GET", "hub:incr"), str(sent), "INCRs counted by Redis (= messages sent)")


@S.case("incr: examples/hub with Redis, 4 connections for 1 s, one INCR per reply",
        timeout=60)
def test_bench_incr_moonwire(ctx):
    why = no_redis()
    if why:
        return skipped(why)
    redis = Redis(ctx)
    try:
        srv = ctx.start("hub-redis", ctx.example("hub"), env={"HUB_REDIS_URL": redis.url})
        incr_run(ctx, srv.url("/"), redis)
        check(srv.alive(), "the server exited: %s" % H.short(srv.log(), 600))
        eq(srv.stop(), 0, "exit status on SIGTERM with its Redis connection open")
    finally:
        redis.stop()


@S.case("incr: the Bun peer with its Redis client, 4 connections for 1 s", timeout=60)
def test_bench_incr_bun(ctx):
    why = no_redis()
    bun = os.path.join(ctx.root, "scripts", "peers", "bun", "node_modules", ".bin", "bun")
    if not why and not os.access(bun, os.X_OK):
        why = "Bun not installed (scripts/peers/install)"
    if why:
        return skipped(why)
    redis = Redis(ctx)
    port = H.free_port()
    log = os.path.join(ctx.tmpdir("moonwire-bun-"), "bun.log")
    with open(log, "wb") as out:
        proc = subprocess.Popen([bun, os.path.join(ctx.root, "scripts", "peers", "bun",
                                                   "server.js"),
                                 "--port", str(port), "--redis", redis.url],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        def listening():
            if proc.poll() is not None:
                raise H.Failure("bun exited (%s): %s" % (proc.returncode,
                                                         H.short(open(log).read(), 600)))
            return "listening on" in open(log).read()
        H.poll(listening, timeout=20, what="the Bun peer to listen")
        incr_run(ctx, "ws://127.0.0.1:%d/" % port, redis)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        redis.stop()


XNODE_SUBS = 20


def xnode_run(ctx, url_a, url_b, *extra):
    """The cross-node fan-out, tiny: 20 subscribers, half on each node, one
    publisher on the first at 200/s for 1 s; every message reaches every
    subscriber, so every one crossed to the second node."""
    res = run_bench(ctx, "fanout", "--url", url_a, "--url2", url_b, "--subscribers", XNODE_SUBS,
                    "--publishers", 1, "--rate", FANOUT_RATE, "--size", 64, "--duration", 1,
                    "--stall-timeout", 10, "--drain-timeout", 10, *extra)
    no_errors(res)
    common_fields(res)
    eq(num(res, "subscribers_url2"), XNODE_SUBS // 2, "subscribers on the second node")
    eq(num(res, "connections_open"), XNODE_SUBS + 1, "connections open")
    messages = num(res, "published")
    check(messages > 0, "nothing was published: %r" % res)
    eq(num(res, "received"), messages * XNODE_SUBS, "deliveries (= messages x subscribers)")
    eq(num(res, "lost"), 0, "lost deliveries")
    eq(num(res, "duplicates"), 0, "duplicate deliveries")
    eq(num(res, "other_messages"), 0, "unexpected messages to subscribers")
    return res


@S.case("xnode: two hub nodes through Redis, subscribers split, nothing lost", timeout=90)
def test_bench_xnode_moonwire(ctx):
    why = no_redis()
    if why:
        return skipped(why)
    redis = Redis(ctx)
    try:
        nodes = []
        for name in ("a", "b"):
            srv = ctx.start("hub-node-" + name, ctx.example("hub"),
                            env={"MOONWIRE_CLUSTER": "true", "MOONWIRE_REDIS_URL": redis.url,
                                 "MOONWIRE_NODE_ID": name})
            H.poll(lambda: srv.health().get("cluster", {}).get("up") is True, timeout=10,
                   what="node %s in the cluster" % name)
            nodes.append(srv)
        xnode_run(ctx, nodes[0].url("/"), nodes[1].url("/"))
        for srv in nodes:
            check(srv.alive(), "a node exited: %s" % H.short(srv.log(), 600))
    finally:
        redis.stop()


@S.case("xnode: two Socket.IO nodes through the Redis adapter (Engine.IO client)",
        timeout=90)
def test_bench_xnode_socketio(ctx):
    why = no_redis()
    peer = os.path.join(ctx.root, "scripts", "peers", "socketio")
    if not why and shutil.which("node") is None:
        why = "node not installed"
    if not why and not os.path.exists(os.path.join(peer, "node_modules", "socket.io",
                                                   "package.json")):
        why = "Socket.IO peer not installed (scripts/peers/install)"
    if why:
        return skipped(why)
    redis = Redis(ctx)
    procs, urls = [], []
    try:
        for name in ("a", "b"):
            port = H.free_port()
            log = os.path.join(ctx.tmpdir("moonwire-sio-"), "node.log")
            with open(log, "wb") as out:
                procs.append(subprocess.Popen(
                    ["node", os.path.join(peer, "server.js"), "--port", str(port),
                     "--redis", redis.url],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT))
            proc = procs[-1]

            def listening(port=port, proc=proc, log=log):
                if proc.poll() is not None:
                    raise H.Failure("socket.io peer exited (%s): %s" % (
                        proc.returncode, H.short(open(log).read(), 600)))
                return _port_open(port)
            H.poll(listening, timeout=20, what="the Socket.IO peer to listen")
            urls.append("ws://127.0.0.1:%d/socket.io/?EIO=4&transport=websocket" % port)
        xnode_run(ctx, urls[0], urls[1], "--engineio", 1,
                  "--subscribe-template", '42["subscribe","%s"]',
                  "--publish-template", '42["publish",{"room":"%s","data":"%s"}]')
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        redis.stop()


def _port_open(port):
    import socket
    s = socket.socket()
    try:
        s.settimeout(1)
        s.connect(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


if __name__ == "__main__":
    bench_path, rest = pop_bench_arg(sys.argv[1:])
    BENCH["path"] = bench_path
    sys.exit(S.main(rest))
