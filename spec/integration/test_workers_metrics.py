#!/usr/bin/python3
"""workers = 2: /health and /metrics answer for the whole server, whichever
worker the kernel gives the scrape.

Each case starts its own server on fixtures/workers (workers = 2), so the
counts are exactly what the case did. Clients are pinned on a worker as in
test_workers.py (the other worker is stopped with SIGSTOP while the client
connects), and so is a scrape. Each worker publishes its numbers to the
stats zone every second and when it answers: numbers are polled for with a
generous deadline, never timed. Cases: totals from either worker (the
connections of both, counters summed, histograms summed, a limit every
worker has and a shared dict not doubled, the merged text still strict
0.0.4); a stopped worker never blocks a scrape and its snapshot only ages;
a worker killed with SIGKILL and started again: no counter ever goes
backwards, its last counters are carried on, the workers list shows the
new pid and a restart; workers = 1 keeps the single-process document.
"""

import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402
import test_metrics as TM  # noqa: E402  (its strict parser of the text format)
from test_workers import children, who  # noqa: E402

S = H.Suite("moonwire workers: /health and /metrics")

DEADLINE = 20
API_KEY = "workers-key"  # fixtures/workers/config.lua


def start(ctx, key, env=None):
    # the fixture's workers = 2, also under MW_TEST_WORKERS
    srv = ctx.start(key, ctx.copy_app(ctx.fixture("workers")),
                    env=dict({"MOONWIRE_WORKERS": "2"}, **(env or {})))
    H.poll(lambda: len(children(srv.proc.pid)) == 2, timeout=15, what="two workers")
    return srv


def pinned(srv, pid, fn):
    """fn() while every worker but pid is stopped: what pid answers."""
    others = [p for p in children(srv.proc.pid) if p != pid]
    for p in others:
        os.kill(p, signal.SIGSTOP)
    try:
        return fn()
    finally:
        for p in others:
            os.kill(p, signal.SIGCONT)


def client_on(ctx, srv, pid):
    def connect():
        c = H.JsonClient(srv)
        return c, who(c)
    c, data = pinned(srv, pid, connect)
    eq(data["pid"], pid, "the worker that answered")
    return ctx.track(c)


def health(srv):
    return srv.health()


def metrics(srv):
    # the fixture sets api_key (test_workers.py calls the server API), and
    # /metrics is behind it then
    status, _, body = H.http_request(srv.connect_host, srv.port, "GET", "/metrics",
                                     headers=[("Authorization", "apikey " + API_KEY)])
    eq(status, 200, "/metrics status")
    return TM.parse(body.decode("utf-8"))


def documented_fields(root):
    """The fields docs/protocol.md's "/health with workers" table lists:
    (top-level names and object.field names, names inside each workers[]
    object)."""
    with open(os.path.join(root, "docs", "protocol.md"), encoding="utf-8") as f:
        doc = f.read()
    section = doc.split("#### /health with workers", 1)[1].split("\n#", 1)[0]
    names = re.findall(r"^\| `([a-z_.\[\]]+)` \|", section, re.M)
    top = {n for n in names if "[" not in n}  # "hub", "hub.ready", ...
    per = {n.split("].", 1)[1] for n in names if n.startswith("workers[].")}
    return top, per


def value(fams, name, key=()):
    return fams[name]["samples"].get(key, 0)


def counters(fams):
    """Every counter sample and histogram bucket/count: {(family, key): v}."""
    out = {}
    for name, f in fams.items():
        if f["type"] in ("counter", "histogram"):
            for key, v in f["samples"].items():
                out[(name, key)] = v
    return out


@S.case("either worker answers /health and /metrics with the totals of both", timeout=60)
def test_totals(ctx):
    srv = start(ctx, "totals")
    a, b = children(srv.proc.pid)
    on_a = [client_on(ctx, srv, a) for _ in range(2)]
    on_b = [client_on(ctx, srv, b)]
    for c in on_a + on_b:
        who(c)  # one more message each: 2 per client in all
    for pid, other in ((a, b), (b, a)):
        def totals():
            h = pinned(srv, pid, lambda: health(srv))
            return h if h["connections"] == 3 else None
        h = H.poll(totals, timeout=DEADLINE, what="/health from %d: 3 connections" % pid)
        eq(h["pid"], pid, "the worker that answered")
        top, per = documented_fields(ctx.root)
        sent = set(h) | {k + "." + sub for k, v in h.items() if isinstance(v, dict) for sub in v}
        check(top <= sent, "documented fields %r all sent: %r" % (sorted(top), sorted(sent)))
        for w in h["workers"]:
            eq(sorted(w), sorted(per), "a workers[] entry: the documented fields")
        ws = {w["worker"]: w for w in h["workers"]}
        eq(sorted(ws), [1, 2], "both workers listed")
        by_pid = {w["pid"]: w for w in h["workers"]}
        eq(sorted(by_pid), sorted([a, b]), "with their pids")
        eq(by_pid[a]["connections"], 2, "worker a's own connections")
        eq(by_pid[b]["connections"], 1, "worker b's")
        check(all(w["up"] for w in h["workers"]), "both up: %r" % h["workers"])
        check(all(w["restarts"] == 0 for w in h["workers"]), "no restarts")
        check(all(isinstance(w["age_ms"], int) for w in h["workers"]), "ages in ms")
        eq(h["lua"]["memory_limit"], 268435456, "a limit every worker has, not summed")
        check(h["lua"]["memory"] > 0, "the Lua heaps")

        # Both counters: the other worker's snapshot may be one it published
        # inside its who.am (moonwire.health()), after counting the message
        # received and before its reply; its next one (the periodic pass,
        # or a scrape it answers) has both.
        def scraped():
            fams = pinned(srv, pid, lambda: metrics(srv))
            done = (value(fams, "moonwire_messages_received_total") == 6 and
                    value(fams, "moonwire_messages_sent_total") == 6)
            return fams if done else None
        fams = H.poll(scraped, timeout=DEADLINE,
                      what="/metrics from %d: 6 messages, 6 replies" % pid)
        eq(value(fams, "moonwire_connections"), 3, "connections of both workers")
        eq(value(fams, "moonwire_connects_total"), 3, "connects of both workers")
        eq(value(fams, "moonwire_messages_sent_total"), 6, "replies of both workers")
        dur = fams["moonwire_message_duration_seconds"]["samples"]
        eq(dur[("_count", ("route", "who.am"))], 6, "the histogram's count, summed")
        eq(dur[("_bucket", ("le", "+Inf"), ("route", "who.am"))], 6, "its +Inf bucket")
        eq(value(fams, "moonwire_lua_memory_limit_bytes"), 268435456, "a limit: not summed")
        cap = value(fams, "moonwire_shdict_bytes", (("dict", "counters"),))
        check(0 < cap <= 64 * 1024, "one shared dict, not one per worker: %r" % cap)
        up = fams["moonwire_worker_up"]["samples"]
        eq(up, {(("worker", "1"),): 1, (("worker", "2"),): 1}, "moonwire_worker_up")
        conns = fams["moonwire_worker_connections"]["samples"]
        eq(sorted(conns.values()), [1, 2], "moonwire_worker_connections")


@S.case("a stopped worker never blocks a scrape; its snapshot only ages", timeout=60)
def test_stopped_worker(ctx):
    srv = start(ctx, "stopped")
    a, b = children(srv.proc.pid)
    client_on(ctx, srv, b)
    H.poll(lambda: pinned(srv, a, lambda: health(srv))["connections"] == 1,
           timeout=DEADLINE, what="b's connection seen from a")
    os.kill(b, signal.SIGSTOP)
    try:
        ages = []
        for _ in range(3):
            h = health(srv)  # only a can answer: b is stopped
            eq(h["pid"], a, "the running worker answered")
            w = [w for w in h["workers"] if w["pid"] == b][0]
            eq(w["connections"], 1, "b's last numbers still count")
            ages.append(w["age_ms"])
            time.sleep(0.05)  # time passes; b cannot publish
        check(ages == sorted(ages) and ages[0] < ages[-1], "b's age grows: %r" % ages)
        fams = metrics(srv)
        eq(value(fams, "moonwire_connections"), 1, "/metrics too")
    finally:
        os.kill(b, signal.SIGCONT)


@S.case("a worker killed and restarted: counters never go backwards, the new pid is listed",
        timeout=90)
def test_restart(ctx):
    srv = start(ctx, "restart")
    a, b = children(srv.proc.pid)
    doomed = client_on(ctx, srv, a)
    for _ in range(4):
        who(doomed)
    client_on(ctx, srv, b)
    # a's numbers (6 messages, 2 connects) reach its slot before it dies
    H.poll(lambda: pinned(srv, b, lambda: value(metrics(srv),
                                                "moonwire_messages_received_total")) == 6,
           timeout=DEADLINE, what="both workers' 6 messages")
    worker_a = [w["worker"] for w in health(srv)["workers"] if w["pid"] == a][0]
    seen = []  # every scrape's counters, in order

    def scrape():
        fams = metrics(srv)
        seen.append(counters(fams))
        return fams

    scrape()
    os.kill(a, signal.SIGKILL)
    srv.wait_log(r"worker \d \(pid %d\) killed by signal 9; restarting it" % a)

    def restarted():
        scrape()
        h = health(srv)
        w = [w for w in h["workers"] if w["worker"] == worker_a][0]
        return h if w["pid"] not in (0, a) and w["up"] else None
    h = H.poll(restarted, timeout=DEADLINE, what="the new worker listed, up")
    w = [w for w in h["workers"] if w["worker"] == worker_a][0]
    new = w["pid"]
    check(new in children(srv.proc.pid), "the listed pid %d is a live worker" % new)
    eq(w["restarts"], 1, "one restart")
    # the new worker counts on from its predecessor's counters
    c = client_on(ctx, srv, new)
    who(c)
    fams = H.poll(lambda: (lambda f: f if value(f, "moonwire_messages_received_total") == 8
                           else None)(scrape()),
                  timeout=DEADLINE, what="the killed worker's 6 messages and 2 more")
    eq(value(fams, "moonwire_connects_total"), 3, "connects: the killed worker's included")
    eq(fams["moonwire_worker_restarts_total"]["samples"][(("worker", str(worker_a)),)], 1,
       "moonwire_worker_restarts_total")
    eq(value(fams, "moonwire_connections"), 2, "the dead worker's connection is gone")
    for prev, cur in zip(seen, seen[1:]):
        for key, v in prev.items():
            check(cur.get(key, 0) >= v, "%s%r went backwards: %r -> %r"
                  % (key[0], key[1], v, cur.get(key, 0)))


@S.case("workers = 1: /health has no workers list, as before")
def test_one_worker(ctx):
    srv = ctx.start("single", ctx.copy_app(ctx.fixture("workers")),
                    env={"MOONWIRE_WORKERS": "1"})
    h = health(srv)
    check("workers" not in h and "worker" not in h, "the single-process document: %r" % h)
    fams = metrics(srv)
    check("moonwire_worker_up" not in fams, "no per-worker families")


if __name__ == "__main__":
    sys.exit(S.main())
