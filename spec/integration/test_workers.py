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
again; SIGHUP reloads every worker; SIGTERM stops
every worker gracefully and the supervisor exits 0; killing the supervisor
takes its workers with it.
"""

import os
import re
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

S = H.Suite("moonwire workers")


class State:
    srv = None


def children(pid):
    """Pids of the live child processes of pid."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(entry))
    return sorted(out)


def workers():
    return children(State.srv.proc.pid)


def wait_workers(n, what):
    H.poll(lambda: len(workers()) == n, timeout=15, what=what)
    return workers()


def who(c):
    r = c.request("who", "am")
    check(r.get("type") == "who", "who.am answered %r" % r)
    return r["data"]


def client_on(pid):
    """A client served by worker pid: every other worker is stopped while
    it connects and is answered."""
    others = [p for p in workers() if p != pid]
    for p in others:
        os.kill(p, signal.SIGSTOP)
    try:
        c = H.JsonClient(State.srv)
        data = who(c)
    finally:
        for p in others:
            os.kill(p, signal.SIGCONT)
    eq(data["pid"], pid, "the worker that answered")
    return c


def hit(c, key):
    """count.hit: increments key in the shared dict; (value, worker pid)."""
    r = c.request("count", "hit", {"key": key})
    check(r.get("type") == "count" and "data" in r, "count.hit answered %r" % r)
    return r["data"]["value"], r["data"]["pid"]


@S.setup
def start(ctx):
    State.srv = ctx.start("workers", ctx.copy_app(ctx.fixture("workers")))
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


@S.case("SIGHUP reloads every worker", timeout=30)
def test_sighup(ctx):
    wait_workers(2, "two workers")
    start = len(State.srv.log())
    os.kill(State.srv.proc.pid, signal.SIGHUP)
    for n in (1, 2):
        State.srv.wait_log(r"\[worker %d\] .*reload" % n, start=start)


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
    srv = ctx.start("orphans", ctx.copy_app(ctx.fixture("workers")))
    H.poll(lambda: len(children(srv.proc.pid)) == 2, timeout=15, what="two workers")
    pids = children(srv.proc.pid)
    srv.proc.kill()
    srv.proc.wait(timeout=5)

    def gone():
        return all(not os.path.exists("/proc/%d" % p) for p in pids)
    H.poll(gone, timeout=15, what="the workers to exit")



if __name__ == "__main__":
    sys.exit(S.main())
