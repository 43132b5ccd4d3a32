#!/usr/bin/python3
"""workers = 2: a supervisor process and two workers sharing the listener.

fixtures/workers (workers = 2) answers who.am with the worker that serves
the client (its /health carries "worker" and "pid"). Which worker accepts
a connection is pinned, not left to chance: the other worker is stopped
(SIGSTOP) while the client connects, then continued. Cases: two workers
serve; a worker killed with SIGKILL is started again while the clients of
the other keep being served; a counter in the shared dict "counters"
(count.hit) counts the hits of both workers and survives a worker's
SIGKILL and restart; through the supervisor's hub (no Redis), a room
with members on both workers gets a publish from either once per member,
send_user reaches a user on both, a bus event runs the subscribers of
both with their local ctx.server, and a restarted worker takes part
again, each once every subscription is confirmed (/health hub.ready);
presence and room counts are the same on both workers (Lua, /api/presence,
/api/rooms, /api/stats), presence events agree with the lists, and a
worker killed with SIGKILL leaves the other's lists at once, with left
events; the server API called on one worker (emit, publish, broadcast,
send to a user and to a client of the other worker, disconnect) reaches
the clients of both; SIGHUP and a file change reload every worker, and
the supervisor logs one line per outcome (ok, or failed with
file:line); max_connections, max_connections_per_ip,
connection_rate_per_ip and max_connections_per_user count the clients of
both workers, and a worker killed with SIGKILL gives its places back;
SIGTERM stops every worker gracefully
and the supervisor exits 0; killing the supervisor takes its workers with
it. A worker that cannot start (a broken app) stops the supervisor, which
exits with the worker's status and error instead of restarting it forever;
one that served and later cannot start again is restarted with backoff
while the other keeps serving.
"""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

S = H.Suite("moonwire workers")


# The fixture's workers = 2, also under MW_TEST_WORKERS (which sets
# MOONWIRE_WORKERS for every server a test does not set it for).
TWO = {"MOONWIRE_WORKERS": "2"}


class State:
    srv = None


children = H.children


def workers():
    return children(State.srv.proc.pid)


def wait_workers(n, what):
    H.poll(lambda: len(workers()) == n, timeout=15, what=what)
    return workers()


def who(c):
    r = c.request("who", "am")
    check(r.get("type") == "who", "who.am answered %r" % r)
    return r["data"]


@contextlib.contextmanager
def alone(pid, srv=None):
    """Worker pid of srv (the fixture's server by default) alone serving:
    the other workers are stopped (SIGSTOP) for the with block, so what
    connects meanwhile is accepted and answered by pid."""
    others = [p for p in children((srv or State.srv).proc.pid) if p != pid]
    for p in others:
        os.kill(p, signal.SIGSTOP)
    try:
        yield
    finally:
        for p in others:
            os.kill(p, signal.SIGCONT)


def client_on(pid):
    """A client served by worker pid."""
    with alone(pid):
        c = H.JsonClient(State.srv)
        data = who(c)
    eq(data["pid"], pid, "the worker that answered")
    return c


def hit(c, key):
    """count.hit: increments key in the shared dict; (value, worker pid)."""
    r = c.request("count", "hit", {"key": key})
    check(r.get("type") == "count" and "data" in r, "count.hit answered %r" % r)
    return r["data"]["value"], r["data"]["pid"]


@S.setup
def start(ctx):
    State.srv = ctx.start("workers", ctx.copy_app(ctx.fixture("workers")), env=TWO)
    wait_workers(2, "two workers")


@S.case("two worker processes serve the same port; /health says which answered")
def test_two_workers(ctx):
    pids = wait_workers(2, "two workers")
    seen = set()
    for pid in pids:
        c = ctx.track(client_on(pid))
        seen.add(who(c)["worker"])
    eq(seen, {1, 2}, "worker numbers")
    log = State.srv.log()
    check(re.search(r"\[worker 1\] listening on ws://127\.0\.0\.1:%d/" % State.srv.port, log),
          "worker 1 logs its listener")
    check(re.search(r"\[worker 2\] listening on ws://", log), "worker 2 logs its listener")


@S.case("a worker killed with SIGKILL is started again; the other's clients stay", timeout=40)
def test_restart(ctx):
    a, b = wait_workers(2, "two workers")
    keep = ctx.track(client_on(b))
    lost = client_on(a)
    os.kill(a, signal.SIGKILL)
    State.srv.wait_log(r"worker \d \(pid %d\) killed by signal 9; restarting it" % a)
    eq(who(keep)["pid"], b, "the other worker's client is still served")
    H.poll(lambda: len(workers()) == 2 and a not in workers(), timeout=15,
           what="a new worker in place of the killed one")
    lost.raw.expect_eof(5)  # the killed worker's client is disconnected
    new = [p for p in workers() if p != b][0]
    c = ctx.track(client_on(new))
    eq(who(c)["pid"], new, "the new worker serves")
    eq(who(keep)["pid"], b, "and the old one still does")


@S.case("a shared dict is one across workers: both increment the same counter")
def test_shared_dict_across_workers(ctx):
    a, b = wait_workers(2, "two workers")
    ca = ctx.track(client_on(a))
    cb = ctx.track(client_on(b))
    eq(hit(ca, "both"), (1, a), "worker a's first hit")
    eq(hit(cb, "both"), (2, b), "worker b sees a's hit and adds its own")
    eq(hit(ca, "both"), (3, a), "and a sees b's")
    eq(hit(cb, "both"), (4, b), "and b a's again")


@S.case("a shared dict's content survives the SIGKILL and restart of a worker", timeout=40)
def test_shared_dict_survives_restart(ctx):
    a, b = wait_workers(2, "two workers")
    ca = client_on(a)
    cb = ctx.track(client_on(b))
    eq(hit(ca, "kept"), (1, a), "the first hit, on the worker to be killed")
    eq(hit(ca, "kept"), (2, a), "the second")
    os.kill(a, signal.SIGKILL)
    State.srv.wait_log(r"worker \d \(pid %d\) killed by signal 9; restarting it" % a)
    H.poll(lambda: len(workers()) == 2 and a not in workers(), timeout=15,
           what="a new worker in place of the killed one")
    ca.raw.expect_eof(5)
    new = [p for p in workers() if p != b][0]
    cn = ctx.track(client_on(new))
    eq(hit(cn, "kept"), (3, new), "the restarted worker finds the counter")
    eq(hit(cb, "kept"), (4, b), "and the other worker its increment")


# ---- messages across workers: the supervisor's hub (no Redis) ---------------

def join(c, room):
    r = c.request("t", "join", {"room": room})
    check("data" in r, "join %s: %r" % (room, r))
    return r["data"]["count"]


def recv_type(c, type_):
    """The next message of type type_ (other messages are skipped)."""
    while True:
        m = c.recv()
        if m.get("type") == type_:
            return m


def until_markers(c, markers):
    """What c gets (as (type, data) of its chat and bus messages) until it
    has every chat message of markers, markers left out. Messages from one
    worker arrive in the order it sent them, messages from two in no order:
    a test sends a marker from each worker after what it checks."""
    left = set(markers)
    got = []
    while left:
        m = c.recv()
        kind, data = m.get("type"), m.get("data")
        if kind == "chat" and data in left:
            left.discard(data)
        elif kind in ("chat", "bus"):
            got.append((kind, data))
    return got


def settle(*senders):
    """Waits until the hub of each sender's worker is ready (/health's
    hub.ready: the supervisor confirmed every subscription it sent), so
    what any worker publishes next reaches its members. Senders join
    nothing: asking them skips no message."""
    for c in senders:
        H.poll(lambda: (who(c).get("hub") or {}).get("ready") is True, timeout=20,
               what="the hub of the sender's worker to be ready")


def pair(ctx):
    """Per worker, a sender that joins nothing (JsonClient.request skips
    what arrives before its reply) and two members: ([sa, a1, a2],
    [sb, b1, b2])."""
    a, b = wait_workers(2, "two workers")
    on_a = [ctx.track(client_on(a)) for _ in range(3)]
    on_b = [ctx.track(client_on(b)) for _ in range(3)]
    return on_a, on_b


@S.case("a room with members on both workers gets a publish from either, once per member")
def test_room_across_workers(ctx):
    (sa, *on_a), (sb, *on_b) = pair(ctx)
    for m in on_a + on_b:
        join(m, "split")
    settle(sa, sb)
    # delivered counts the members of the worker that published
    eq(sa.request("t", "pub", {"room": "split", "text": "from a"})["data"],
       {"delivered": 2}, "delivered on worker a")
    eq(sb.request("t", "pub", {"room": "split", "text": "from b"})["data"],
       {"delivered": 2}, "delivered on worker b")
    sa.request("t", "pub", {"room": "split", "text": "end a"})
    sb.request("t", "pub", {"room": "split", "text": "end b"})
    for m in on_a + on_b:
        got = until_markers(m, {"end a", "end b"})
        eq(sorted(got), [("chat", "from a"), ("chat", "from b")], "both publishes, each once")


@S.case("client ids are unique across workers: a publish's `from` names one sender")
def test_ids_unique_across_workers(ctx):
    # Worker w of N numbers its clients w, w + N, ...: without that both
    # workers count from 1, and a member cannot tell two publishers apart
    # (the soak saw every message "twice" from one id).
    on_a, on_b = pair(ctx)
    ids = [who(c)["id"] for c in on_a + on_b]
    eq(len(set(ids)), len(ids), "ids of the clients of both workers %r" % ids)
    for c in on_a + on_b:
        r = c.request("system", "join", {"room": "ids"})
        check(r.get("type") == "system" and "data" in r, "system.join: %r" % r)
    settle(on_a[0], on_b[0])
    for c, me in zip(on_a + on_b, ids):
        # not request(): it would skip what the others publish meanwhile
        c.send({"type": "system", "action": "publish",
                "data": {"room": "ids", "data": "from %d" % me}})
    for c, me in zip(on_a + on_b, ids):
        got = {}
        while len(got) < len(ids) - 1:
            m = recv_type(c, "system")
            if m.get("action") == "message":
                d = m["data"]
                check(d["from"] not in got, "a second message from %r: %r" % (d["from"], m))
                got[d["from"]] = d["data"]
        eq(got, {i: "from %d" % i for i in ids if i != me},
           "what client %d got: one message per other client, from its id" % me)


@S.case("send_user reaches a user's connections on both workers")
def test_send_user_across_workers(ctx):
    (sa, a1, _), (sb, b1, _) = pair(ctx)
    a1.request("t", "login", {"user": "alice"})
    b1.request("t", "login", {"user": "alice"})
    settle(sa, sb)
    eq(sa.request("t", "tell", {"user": "alice", "text": "hi"})["data"],
       {"delivered": 1}, "delivered counts worker a's connection")
    sa.request("t", "tell", {"user": "alice", "text": "end"})
    for m in (a1, b1):
        eq(until_markers(m, {"end"}), [("chat", "hi")], "send_user across workers, once")


@S.case("a bus event emitted on one worker runs its subscribers on both, ctx.server local")
def test_bus_across_workers(ctx):
    (sa, *on_a), (sb, *on_b) = pair(ctx)
    for m in on_a + on_b:
        join(m, "busroom")
    settle(sa, sb)
    sa.request("t", "emit", {"room": "busroom", "text": "relayed"})
    for m in on_a + on_b:
        eq(recv_type(m, "bus")["data"], "relayed", "each member gets the relay")
    # A handler runs after the dispatch that emitted: a marker sent before
    # every member had the relay could overtake it. Now none may follow.
    sa.request("t", "pub", {"room": "busroom", "text": "end a"})
    sb.request("t", "pub", {"room": "busroom", "text": "end b"})
    for m in on_a + on_b:
        eq(until_markers(m, {"end a", "end b"}), [], "once: each worker's subscriber "
           "broadcasts to its own members only")


@S.case("a worker killed and restarted subscribes again; messages flow both ways",
        timeout=40)
def test_hub_after_restart(ctx):
    a, b = wait_workers(2, "two workers")
    sender_b = ctx.track(client_on(b))
    keep = ctx.track(client_on(b))
    join(keep, "again")
    lost = client_on(a)
    join(lost, "again")
    os.kill(a, signal.SIGKILL)
    State.srv.wait_log(r"worker \d \(pid %d\) killed by signal 9; restarting it" % a)
    H.poll(lambda: len(workers()) == 2 and a not in workers(), timeout=15,
           what="a new worker in place of the killed one")
    lost.raw.expect_eof(5)
    new = [p for p in workers() if p != b][0]
    sender_new = ctx.track(client_on(new))
    fresh = ctx.track(client_on(new))
    join(fresh, "again")
    settle(sender_new, sender_b)
    sender_b.request("t", "pub", {"room": "again", "text": "from b"})
    eq(recv_type(fresh, "chat")["data"], "from b", "the restarted worker's member")
    sender_new.request("t", "pub", {"room": "again", "text": "from new"})
    eq(recv_type(keep, "chat")["data"], "from b", "b's own publish, locally")
    eq(recv_type(keep, "chat")["data"], "from new", "the restarted worker publishes to b")
    eq(recv_type(fresh, "chat")["data"], "from new", "and to its own member, once")


# ---- presence and counts across workers (the hub's store) ----------------------

KEY = "workers-key"


def http_on(pid, method, path, body=None):
    """(status, body bytes) of an HTTP request served by worker pid."""
    with alone(pid):
        status, _, raw = H.http_request(State.srv.connect_host, State.srv.port, method, path,
                                        headers=[("Authorization", "apikey " + KEY)], body=body)
    return status, raw


def api_on(pid, method, path, body=None):
    """(status, JSON) of a server API call served by worker pid."""
    status, raw = http_on(pid, method, path, body)
    return status, (json.loads(raw.decode("utf-8")) if raw else None)


def listed(v):
    """A JSON array as a list (Lua writes an empty table as {})."""
    return v if isinstance(v, list) else []


def view(c, room):
    """Room's presence and counts as c's worker sees them from Lua:
    {count (room:count()), presence (room:presence()), via_moonwire
    (moonwire.presence()), rooms (moonwire.room_count())}."""
    r = c.request("t", "presence", {"room": room})
    check("data" in r, "t.presence answered %r" % r)
    d = r["data"]
    d["presence"], d["via_moonwire"] = listed(d["presence"]), listed(d["via_moonwire"])
    return d


def members(d):
    """The (node, client id) pairs of a presence list, in its order."""
    return [(e["node"], e["client_id"]) for e in d["presence"]]


def recv_presence(c, action):
    """The next presence event c gets (any other message is skipped): its
    data, checked to be `action`."""
    m = recv_type(c, "presence")
    eq(m.get("action"), action, "presence event %r" % m)
    return m["data"]


@S.case("presence and room counts are the same on every worker, and match the events")
def test_presence_across_workers(ctx):
    (sa, a1, a2), (sb, b1, b2) = pair(ctx)
    wa, wb = "w%d" % who(sa)["worker"], "w%d" % who(sb)["worker"]
    pa, pb = who(sa)["pid"], who(sb)["pid"]
    ida = {c: who(c)["id"] for c in (a1, a2)}
    idb = {c: who(c)["id"] for c in (b1, b2)}
    settle(sa, sb)
    join(a1, "pres-x")
    settle(sa)  # a1's room channel: b1's joined event reaches it
    join(b1, "pres-x")
    # The event and the list agree: when a1 hears that b1 joined, a1's
    # worker lists b1 (the entry came before the event, in order).
    ev = recv_presence(a1, "joined")
    eq((ev["node"], ev["client_id"]), (wb, idb[b1]), "the joined event names b1")
    check((wb, idb[b1]) in members(view(sa, "pres-x")), "worker a lists b1 once told")
    settle(sb)
    join(a2, "pres-x")
    ev = recv_presence(b1, "joined")
    eq((ev["node"], ev["client_id"]), (wa, ida[a2]), "the joined event names a2")
    check((wa, ida[a2]) in members(view(sb, "pres-x")), "worker b lists a2 once told")
    recv_presence(a1, "joined")  # a2's, locally

    want = sorted([(wa, ida[a1]), (wa, ida[a2]), (wb, idb[b1])])
    va, vb = view(sa, "pres-x"), view(sb, "pres-x")
    for v, where in ((va, "worker a"), (vb, "worker b")):
        eq(v["count"], 3, "room:count() on " + where)
        eq(sorted(members(v)), want, "room:presence() on " + where)
        eq(v["via_moonwire"], v["presence"], "moonwire.presence() on " + where)
    eq(va["presence"], vb["presence"], "the same list, in the same order, on both")
    eq(va["rooms"], vb["rooms"], "moonwire.room_count()")
    for pid, where in ((pa, "worker a"), (pb, "worker b")):
        status, doc = api_on(pid, "GET", "/api/presence?room=pres-x")
        eq(status, 200, "/api/presence on " + where)
        eq((doc["count"], listed(doc["presence"])), (3, va["presence"]),
           "/api/presence on " + where)
        status, doc = api_on(pid, "GET", "/api/rooms")
        eq([r for r in listed(doc["rooms"]) if r["room"] == "pres-x"],
           [{"room": "pres-x", "count": 3}], "/api/rooms on " + where)
        status, doc = api_on(pid, "GET", "/api/stats")
        eq(doc["rooms"], va["rooms"], "/api/stats rooms on " + where)
        # pres-x has members on both workers: /health and /metrics count
        # it once, as every room (each worker's view, now for the one
        # answering)
        eq(api_on(pid, "GET", "/health")[1]["rooms"], va["rooms"], "/health rooms on " + where)
        text = http_on(pid, "GET", "/metrics")[1].decode("utf-8")
        eq(re.search(r"^moonwire_rooms (\S+)$", text, re.M).group(1), str(va["rooms"]),
           "moonwire_rooms on " + where)

    # A leave: the event, then the list without b1, on the other worker.
    eq(b1.request("t", "leave", {"room": "pres-x"})["data"], {"count": 2},
       "leave counts every worker's members")
    ev = recv_presence(a1, "left")
    eq((ev["node"], ev["client_id"]), (wb, idb[b1]), "the left event names b1")
    v = view(sa, "pres-x")
    eq((v["count"], sorted(members(v))), (2, sorted([(wa, ida[a1]), (wa, ida[a2])])),
       "worker a no longer lists b1 once told")
    # b2's worker has a1 and a2 (it announced a2 to b1): its join counts 3
    eq(join(b2, "pres-x"), 3, "a join's count is every worker's")


@S.case("a worker killed with SIGKILL leaves the others' presence at once; "
        "its successor gets the others' members", timeout=40)
def test_presence_after_kill(ctx):
    a, b = wait_workers(2, "two workers")
    sb = ctx.track(client_on(b))
    b1 = ctx.track(client_on(b))
    lost = client_on(a)
    wa = "w%d" % who(lost)["worker"]
    lost_id = who(lost)["id"]
    join(b1, "pres-k")
    settle(sb)
    join(lost, "pres-k")
    ev = recv_presence(b1, "joined")
    eq((ev["node"], ev["client_id"]), (wa, lost_id), "b1 hears of the member on worker a")
    eq(view(sb, "pres-k")["count"], 2, "worker b counts it")
    os.kill(a, signal.SIGKILL)
    # No expiry to wait for: the supervisor tells worker b that a exited.
    ev = recv_presence(b1, "left")
    eq((ev["node"], ev["client_id"]), (wa, lost_id), "its member is announced as left")
    v = view(sb, "pres-k")
    eq((v["count"], members(v)), (1, [("w%d" % who(sb)["worker"], who(b1)["id"])]),
       "and gone from worker b's list")
    eq(api_on(b, "GET", "/api/presence?room=pres-k")[1]["count"], 1, "/api/presence")
    H.poll(lambda: len(workers()) == 2 and a not in workers(), timeout=15,
           what="a new worker in place of the killed one")
    lost.raw.expect_eof(5)
    new = [p for p in workers() if p != b][0]
    sn = ctx.track(client_on(new))
    settle(sn)  # its first subscriptions are confirmed after the others' entries came
    eq(view(sn, "pres-k")["presence"], view(sb, "pres-k")["presence"],
       "the new worker lists worker b's member")


@S.case("/api/stats counts the users of every worker, each once, on either worker")
def test_api_stats_users(ctx):
    (sa, a1, a2), (sb, b1, b2) = pair(ctx)
    pa, pb = who(sa)["pid"], who(sb)["pid"]
    a1.request("t", "login", {"user": "stats-u1"})
    b1.request("t", "login", {"user": "stats-u1"})  # the same user on both workers
    b2.request("t", "login", {"user": "stats-u2"})

    def users(pid):
        status, doc = api_on(pid, "GET", "/api/stats")
        eq(status, 200, "/api/stats")
        return doc["users"]
    # the earlier cases' clients may still be leaving: each worker's copy
    # of the other's clients comes with the hub's records
    for pid, where in ((pa, "worker a"), (pb, "worker b")):
        H.poll(lambda: users(pid) == 2, what="/api/stats users = 2 on " + where)
    b1.close()
    for pid, where in ((pa, "worker a"), (pb, "worker b")):
        H.poll(lambda: users(pid) == 2, what="stats-u1 still counted (a1) on " + where)
    a1.close()
    for pid, where in ((pa, "worker a"), (pb, "worker b")):
        H.poll(lambda: users(pid) == 1, what="stats-u1 gone on " + where)


@S.case("a worker killed with SIGKILL: the others' subscribers get client.left and "
        "client.disconnected for each of its clients", timeout=40)
def test_bus_events_after_kill(ctx):
    a, b = wait_workers(2, "two workers")
    watcher = ctx.track(client_on(b))
    join(watcher, "watch")          # subscribers/watch.lua relays the events here
    lost = client_on(a)             # in a room, bound to a user
    lost.request("t", "login", {"user": "ann"})
    idle = client_on(a)             # in no room, no user
    wa = "w%d" % who(lost)["worker"]
    lost_id, idle_id = who(lost)["id"], who(idle)["id"]
    join(lost, "kroom")
    # worker b takes the records of worker a in order: once it counts the
    # join, it has the clients too
    H.poll(lambda: view(watcher, "kroom")["count"] == 1, what="worker b to count kroom's member")
    os.kill(a, signal.SIGKILL)
    want = {("client.left", lost_id), ("client.disconnected", lost_id),
            ("client.disconnected", idle_id)}
    got = {}
    while set(got) != want:
        m = recv_type(watcher, "bus")
        key = (m["action"], m["data"].get("client_id"))
        if key in want:
            check(key not in got, "%s told once: %r" % (key, m))
            got[key] = m["data"]
    left = got[("client.left", lost_id)]
    eq((left["room"], left.get("user"), left["node"], left["count"]), ("kroom", "ann", wa, 0),
       "client.left: its room, user, node, and the room's count without it")
    for cid, user in ((lost_id, "ann"), (idle_id, None)):
        d = got[("client.disconnected", cid)]
        eq((d.get("user"), d["node"], d["code"], d["reason"]), (user, wa, 1006, "worker exited"),
           "client.disconnected of client %s" % cid)
    lost.raw.expect_eof(5)
    idle.raw.expect_eof(5)


# ---- the server API across workers -------------------------------------------------

def api_ok(pid, path, body):
    """A POST to the server API served by worker pid; its JSON answer (200)."""
    status, doc = api_on(pid, "POST", path, body)
    eq(status, 200, "POST %s: %r" % (path, doc))
    return doc


def closed_with(c, code):
    """c gets a close frame with code; it answers, and TCP is closed."""
    while True:
        f = c.raw.recv_frame()
        if f.opcode == H.OP_CLOSE:
            break
    eq(f.close_code(), code, "close code")
    c.raw.send_close(code)
    c.raw.expect_eof(10)


def chat(data):
    """An API body whose event is {"type": "chat", "action": "api", "data": data}."""
    return {"type": "chat", "action": "api", "data": data}


@S.case("/api/emit, /api/publish and /api/broadcast called on one worker reach both")
def test_api_fanout_across_workers(ctx):
    (sa, a1, a2), (sb, b1, b2) = pair(ctx)
    pa, pb = who(sa)["pid"], who(sb)["pid"]
    join(a1, "apiroom")
    join(b1, "apiroom")
    settle(sa, sb)
    doc = api_ok(pa, "/api/emit", {"channel": "relay",
                                   "message": {"room": "apiroom", "text": "emitted"}})
    eq(doc["subscribers"], 1, "worker a's subscriber started")
    for m in (a1, b1):
        eq(recv_type(m, "bus")["data"], "emitted", "each worker's subscriber ran")
    eq(api_ok(pa, "/api/publish", dict(chat("p1"), room="apiroom"))["delivered"], 1,
       "delivered counts worker a's members")
    eq(api_ok(pb, "/api/publish", dict(chat("p2"), room="apiroom"))["delivered"], 1,
       "delivered counts worker b's members")
    check(api_ok(pb, "/api/broadcast", chat("all"))["delivered"] >= 3,
          "a broadcast reaches worker b's clients")
    api_ok(pa, "/api/broadcast", chat("end a"))
    api_ok(pb, "/api/broadcast", chat("end b"))
    for m in (a1, b1):
        eq(sorted(until_markers(m, {"end a", "end b"})),
           [("chat", "all"), ("chat", "p1"), ("chat", "p2")],
           "a member gets both publishes and the broadcast, once; the emit ran once")
    for m in (a2, b2):
        eq(until_markers(m, {"end a", "end b"}), [("chat", "all")],
           "a client in no room gets the broadcast, once")


@S.case("/api/send and /api/disconnect called on one worker reach a user and a client "
        "of the other")
def test_api_targets_across_workers(ctx):
    (sa, a1, _), (sb, b1, b2) = pair(ctx)
    pa, pb = who(sa)["pid"], who(sb)["pid"]
    wb, id_b2 = "w%d" % who(b2)["worker"], who(b2)["id"]
    a1.request("t", "login", {"user": "bob"})
    b1.request("t", "login", {"user": "bob"})
    settle(sa, sb)
    eq(api_ok(pa, "/api/send", dict(chat("to bob"), user="bob"))["delivered"], 1,
       "delivered counts worker a's connection of bob")
    api_ok(pa, "/api/send", dict(chat("end"), user="bob"))
    for m in (a1, b1):
        eq(until_markers(m, {"end"}), [("chat", "to bob")], "bob's connections, once each")
    eq(api_ok(pa, "/api/send", dict(chat("to b2"), client=id_b2, node=wb))["delivered"], 0,
       "a client of another worker is not counted here")
    eq(recv_type(b2, "chat")["data"], "to b2", "the client of worker b got it")
    eq(api_ok(pa, "/api/disconnect", {"client": id_b2, "node": wb, "code": 4001,
                                      "reason": "bye"})["disconnected"], 0,
       "the other worker's client is closed there")
    closed_with(b2, 4001)
    eq(api_ok(pb, "/api/disconnect", {"user": "bob", "code": 4002})["disconnected"], 1,
       "disconnected counts worker b's connection of bob")
    closed_with(b1, 4002)
    closed_with(a1, 4002)


# ---- hot reload: every worker, one log line per outcome -----------------------------

RELOADED = r"reloaded the app"
FAILED = r"reload failed"


def reload_lines(start, pattern):
    """The log lines since offset start that match pattern."""
    return [line for line in State.srv.log()[start:].splitlines() if re.search(pattern, line)]


def put_file(path, text):
    """Writes path at once (a rename), so a watcher sees one change."""
    tmp = os.path.join(os.path.dirname(path), ".tmp-" + os.path.basename(path))
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def controller_path(name):
    return os.path.join(State.srv.app, "controllers", name)


@S.case("SIGHUP reloads every worker; the supervisor logs one line for both", timeout=30)
def test_sighup(ctx):
    wait_workers(2, "two workers")
    start = len(State.srv.log())
    os.kill(State.srv.proc.pid, signal.SIGHUP)
    State.srv.wait_log(r"reloaded the app on workers 1-2 \(SIGHUP\)", start=start, timeout=20)
    lines = reload_lines(start, RELOADED + "|" + FAILED)
    eq(len(lines), 1, "one line for both workers: %r" % lines)
    check("[worker" not in lines[0], "logged by the supervisor: %r" % lines[0])


@S.case("a file change reloads every worker; one line per outcome, ok or failed", timeout=60)
def test_reload_file_change(ctx):
    a, b = wait_workers(2, "two workers")
    ca = ctx.track(client_on(a))
    cb = ctx.track(client_on(b))
    path = controller_path("extra.lua")

    start = len(State.srv.log())
    put_file(path, "local M = {}\n\nfunction M.ping()\n    return { pong = 1 }\nend\n\n"
                   "return M\n")
    State.srv.wait_log(r"reloaded the app on workers 1-2 \(file change\)", start=start,
                       timeout=30)
    eq(len(reload_lines(start, RELOADED + "|" + FAILED)), 1, "one line for both workers")
    for c in (ca, cb):
        eq(c.request("extra", "ping")["data"], {"pong": 1}, "the new controller on each worker")

    start = len(State.srv.log())
    put_file(path, "local M = {}\n\nfunction M.ping()\n    return { pong = = 2 }\nend\n\n"
                   "return M\n")
    State.srv.wait_log(r"reload failed on workers 1-2 \(file change\), the previous code keeps "
                       r"serving: \S*extra\.lua:4:", start=start, timeout=30)
    lines = reload_lines(start, RELOADED + "|" + FAILED)
    eq(len(lines), 1, "one line for both workers: %r" % lines)
    for c in (ca, cb):
        eq(c.request("extra", "ping")["data"], {"pong": 1}, "the previous code keeps serving")

    start = len(State.srv.log())
    os.remove(path)
    State.srv.wait_log(r"reloaded the app on workers 1-2 \(file change\)", start=start,
                       timeout=30)


@S.case("config.lua changes a restart-only option: one warning for both workers", timeout=40)
def test_restart_only_warning(ctx):
    srv = ctx.start("restart-only", ctx.copy_app(ctx.fixture("workers")), env=TWO)
    H.poll(lambda: len(children(srv.proc.pid)) == 2, timeout=15, what="two workers")
    srv.wait_log(r"\[worker 1\] listening on")
    srv.wait_log(r"\[worker 2\] listening on")
    path = os.path.join(srv.app, "config.lua")
    with open(path) as f:
        text = f.read()
    start = len(srv.log())
    put_file(path, text.replace("api_key = ", "max_rooms_per_client = 7,\n    api_key = "))
    srv.wait_log(r"reloaded the app on workers 1-2 \(file change\)", start=start, timeout=30)
    lines = [l for l in srv.log()[start:].splitlines() if "max_rooms_per_client" in l]
    eq(len(lines), 1, "one warning for both workers: %r" % lines)
    check(re.search(r"warn  config: max_rooms_per_client changed; it needs a restart .* "
                    r"\(workers 1-2\)$", lines[0]) and "[worker" not in lines[0],
          "the supervisor's warning names both workers: %r" % lines[0])


@S.case("SIGTERM stops every worker gracefully; the supervisor exits 0", timeout=40)
def test_sigterm(ctx):
    pids = wait_workers(2, "two workers")
    c = client_on(pids[0])
    os.kill(State.srv.proc.pid, signal.SIGTERM)
    eq(State.srv.wait_exit(20), 0, "supervisor exit status")
    c.raw.expect_close(1001)  # closed gracefully, "going away"
    H.poll(lambda: all(not os.path.exists("/proc/%d" % p) for p in pids), timeout=10,
           what="every worker to be gone")
    log = State.srv.log()
    check("supervisor: every worker stopped" in log, "the last line")


@S.case("a supervisor killed with SIGKILL takes its workers with it", timeout=40)
def test_orphans(ctx):
    srv = ctx.start("orphans", ctx.copy_app(ctx.fixture("workers")), env=TWO)
    H.poll(lambda: len(children(srv.proc.pid)) == 2, timeout=15, what="two workers")
    pids = children(srv.proc.pid)
    srv.proc.kill()
    srv.proc.wait(timeout=5)

    def gone():
        return all(not os.path.exists("/proc/%d" % p) for p in pids)
    H.poll(gone, timeout=15, what="the workers to exit")


def cli_serve(ctx, app, timeout=20):
    """Runs `moonwire serve app` with workers = 2 to completion (a server
    that would keep running fails the case): (status, stderr)."""
    try:
        rc, out, err = H.run_cli(ctx.binary, ["serve", app, "--host", "127.0.0.1",
                                              "--port", "0"],
                                 env={"MOONWIRE_WORKERS": "2"}, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise H.Failure("the supervisor still ran %ds after its workers could not start"
                        % timeout)
    return rc, err


def broken_app(ctx, config="return {}\n", controllers=None):
    app = ctx.copy_app(ctx.fixture("workers"))
    with open(os.path.join(app, "config.lua"), "w") as f:
        f.write(config)
    for name, text in (controllers or {}).items():
        put_file(os.path.join(app, "controllers", name), text)
    return app


@S.case("a worker that cannot start (bad app) stops the supervisor: non-zero, file:line",
        timeout=40)
def test_boot_failure_app(ctx):
    app = broken_app(ctx, controllers={"broken.lua": "local M = {}\nfunction M.x(\nreturn M\n"})
    rc, err = cli_serve(ctx, app)
    eq(rc, 1, "exit status (stderr %r)" % err[-800:])
    check(re.search(r"\[worker \d\] cannot load the app in \S+: \S*broken\.lua:\d+", err),
          "the worker's error on stderr: %r" % err[-800:])
    check(re.search(r"worker \d \(pid \d+\) could not start \(exit status 1\); stopping", err),
          "the supervisor says why it stops: %r" % err[-800:])
    check("restarting it" not in err, "no restart of a worker that never started: %r"
          % err[-800:])


@S.case("an unreadable TLS certificate with workers: refused before any worker starts",
        timeout=40)
def test_boot_failure_tls(ctx):
    app = broken_app(ctx)
    cert = os.path.join(app, "bad.crt")
    with open(cert, "w") as f:
        f.write("not a certificate\n")
    with open(os.path.join(app, "config.lua"), "w") as f:
        f.write("return { tls_cert = %r, tls_key = %r }\n" % (cert, cert))
    rc, err = cli_serve(ctx, app)
    eq(rc, 2, "exit status (stderr %r)" % err[-800:])
    check(re.search(r"tls_cert: \S*bad\.crt", err), "names tls_cert: %r" % err[-800:])
    check("worker 1 started" not in err, "no worker started: %r" % err[-800:])


@S.case("a worker that served, then cannot start again, is restarted with backoff; "
        "the other keeps serving", timeout=60)
def test_restart_cannot_start(ctx):
    srv = ctx.start("restart-broken", ctx.copy_app(ctx.fixture("workers")), env=TWO)
    H.poll(lambda: len(children(srv.proc.pid)) == 2, timeout=15, what="two workers")
    a, b = children(srv.proc.pid)
    path = os.path.join(srv.app, "controllers", "later.lua")
    start = len(srv.log())
    put_file(path, "local M = {}\nfunction M.x(\nreturn M\n")  # a reload that fails
    srv.wait_log(r"reload failed on workers 1-2", start=start, timeout=30)
    os.kill(a, signal.SIGKILL)
    # its successor cannot load the app: restarted again, the server stays
    srv.wait_log(r"worker \d \(pid \d+\) exited with status 1; restarting it in \d+ ms",
                 start=start, timeout=20)
    check(srv.proc.poll() is None, "the supervisor stopped: %s" % srv.log()[-1500:])
    c = ctx.track(H.JsonClient(srv))
    eq(who(c)["pid"], b, "the other worker serves")
    os.remove(path)  # fixed: the next restart starts
    H.poll(lambda: len(children(srv.proc.pid)) == 2 and a not in children(srv.proc.pid)
           and srv.health().get("status") is not None, timeout=20,
           what="a new worker in place of the killed one")
    srv.wait_log(r"\[worker \d\] listening on", start=start, timeout=20)


@S.case("workers = 0 starts one worker per core this process may run on", timeout=40)
def test_workers_auto(ctx):
    cores = min(len(os.sched_getaffinity(0)), 64)
    srv = ctx.start("auto", ctx.copy_app(ctx.fixture("workers")),
                    env={"MOONWIRE_WORKERS": "0"})
    if cores == 1:
        # one core: one process, no supervisor
        eq(srv.health().get("worker"), None, "a single process")
        return
    H.poll(lambda: len(children(srv.proc.pid)) == cores, timeout=15,
           what="%d workers" % cores)
    srv.wait_log(r"supervisor \(pid \d+\): %d workers" % cores)


# --------------------------------------------------------------------------
# connection limits count the whole server (src/shlimits.c)
# --------------------------------------------------------------------------

def raw_on(ctx, srv, pid, path="/", expect=101):
    """A handshake served by worker pid of srv."""
    with alone(pid, srv):
        c = ctx.track(H.RawClient(srv.connect_host, srv.port))
        c.handshake(path=path, expect=expect)
    return c


def limits_server(ctx, key, app=None, **env):
    e = {"MOONWIRE_" + k.upper(): str(v) for k, v in env.items()}
    e["MOONWIRE_WORKERS"] = "2"
    srv = ctx.start(key, app or ctx.copy_app(ctx.fixture("workers")), env=e)
    H.poll(lambda: len(children(srv.proc.pid)) == 2, timeout=15, what="two workers")
    return srv, children(srv.proc.pid)


@S.case("max_connections counts both workers: 503 past it on either, room again after a close")
def test_max_connections_across_workers(ctx):
    srv, (a, b) = limits_server(ctx, "wmax", max_connections=2)
    raw_on(ctx, srv, a)
    on_b = raw_on(ctx, srv, b)
    full = raw_on(ctx, srv, a, expect=503)  # one worker alone would have room
    check(H.header(full.response[1], "Retry-After") is not None, "Retry-After")
    raw_on(ctx, srv, b, expect=503)
    on_b.close()

    def room():
        c = H.RawClient(srv.connect_host, srv.port)
        c.handshake(expect=None)
        ctx.track(c)
        return c.response[0] == 101
    H.poll(room, timeout=10, what="a place again after a close")


@S.case("max_connections_per_ip counts both workers: 429 past it")
def test_per_ip_across_workers(ctx):
    srv, (a, b) = limits_server(ctx, "wperip", max_connections_per_ip=2)
    raw_on(ctx, srv, a)
    raw_on(ctx, srv, b)
    raw_on(ctx, srv, a, expect=429)
    raw_on(ctx, srv, b, expect=429)


@S.case("connection_rate_per_ip is one budget for both workers")
def test_rate_per_ip_across_workers(ctx):
    srv, (a, b) = limits_server(ctx, "wrate", connection_rate_per_ip=4)
    # 8 connections, 4 on each worker: each alone would admit its 4; the
    # server admits 4 a second from the address (more only if this takes
    # a quarter of a second per connection)
    statuses = []
    for pid in (a, b) * 4:
        c = raw_on(ctx, srv, pid, expect=None)
        statuses.append(c.response[0])
        c.close()
    check(429 in statuses, "8 new connections from one address at once: %r" % statuses)
    eq(statuses[:4], [101] * 4, "the first four")


@S.case("max_connections_per_user counts both workers: the connection past the cap gets 1008")
def test_per_user_across_workers(ctx):
    srv, (a, b) = limits_server(ctx, "wuser", app=ctx.copy_app(ctx.fixture("auth/app")),
                                max_connections_per_user=2)
    raw_on(ctx, srv, a, path="/?token=user:ivy")
    raw_on(ctx, srv, b, path="/?token=user:ivy")
    third = raw_on(ctx, srv, a, path="/?token=user:ivy")
    while True:
        f = third.recv_frame()
        if f.opcode == H.OP_CLOSE:
            break
        check(f.opcode in (H.OP_TEXT, H.OP_PING), "frame before close: %r" % f)
    eq(f.close_code(), 1008, "close code")
    eq(f.payload[2:], b"too many connections for this user", "close reason")
    third.send_close(1008)
    third.expect_eof()
    raw_on(ctx, srv, b, path="/?token=user:jack")  # another user is fine


@S.case("max_connections_per_room counts both workers at once, without the hub")
def test_room_cap_across_workers(ctx):
    srv, (a, b) = limits_server(ctx, "wroom", max_connections_per_room=2)

    def member_on(pid):
        with alone(pid, srv):
            c = ctx.track(H.JsonClient(srv))
            eq(who(c)["pid"], pid, "the worker that answered")
        return c

    def join_room(c):
        return c.request("t", "join", {"room": "capped"})
    c1, c2, c3 = member_on(a), member_on(b), member_on(a)
    # the supervisor stopped, no hub record reaches a worker: only the
    # shared counts tell worker a about c2
    os.kill(srv.proc.pid, signal.SIGSTOP)
    try:
        eq(join_room(c1).get("data"), {"count": 1}, "the first join")
        check("data" in join_room(c2), "the second join, on the other worker")
        r = join_room(c3)
        eq(r.get("error", {}).get("code"), "ROOM_FULL", "the third: %r" % r)
        eq(c1.request("t", "leave", {"room": "capped"}).get("data"), {"count": 0},
           "a leave (worker a's count)")
        check("data" in join_room(c3), "a place again after the leave")
        c2.close()   # a close gives its place back too
        H.poll(lambda: "data" in join_room(c1), what="c1 in again once c2 is gone")
    finally:
        os.kill(srv.proc.pid, signal.SIGCONT)


@S.case("a worker killed with SIGKILL gives back its places at once", timeout=40)
def test_limits_after_kill(ctx):
    srv, (a, b) = limits_server(ctx, "wkill", max_connections=2, max_connections_per_ip=3)
    raw_on(ctx, srv, a)
    raw_on(ctx, srv, a)
    raw_on(ctx, srv, b, expect=503).close()  # worker b counts worker a's
    os.kill(a, signal.SIGKILL)
    srv.wait_log(r"worker \d \(pid %d\) killed by signal 9" % a)
    # the supervisor cleared a's counts: without that, 429 (4 from the
    # address) or 503 (4 clients)
    raw_on(ctx, srv, b)
    raw_on(ctx, srv, b)
    full = raw_on(ctx, srv, b, expect=None)
    check(full.response[0] in (429, 503), "full again: %r" % (full.response,))

if __name__ == "__main__":
    sys.exit(S.main())
