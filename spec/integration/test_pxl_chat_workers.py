#!/usr/bin/python3
"""examples/pxl-chat with workers = 2 (README.md, "Across workers";
docs/scaling.md, "Workers"): one server, a supervisor and two worker
processes sharing the port, no Redis; PXL clients (python3-websockets) on
each worker.

Which worker serves a client (or answers an API request) is pinned, as in
test_workers.py: the other worker is stopped (SIGSTOP) while the client
connects, then continued. Each client's worker is checked by what the
server says: /health names the worker that answered, and PXL's automatic
events name the node (w1, w2) of the client they are about.

Cases: chat.send from a client of one worker reaches the other's once, in
both directions, and chat.typing everyone but the sender; PXL's automatic
events (client connected, joined, left, disconnected), a backend's
job.completed and announcement (/api/emit, custom events), a broadcast to
all and a disconnect of a client of the other worker reach the dashboards
of both workers, each exactly once (counted after markers from both
workers); system.joinRoom/leaveRoom make a room split over the workers,
whose members hear publishes, roomStatus's memberJoined/memberLeft and
each other once, and stop hearing them when they leave; a user connected
to both workers gets /api/send {user} once on each connection and is
disconnected on both by /api/disconnect {user}; roomStatus's counts and
/api/presence count the members of both workers. Last, the
supervisor exits 0 on SIGTERM when both workers exited in the same
instant (it once closed its signal handles twice and aborted).

Nothing is timed. A worker subscribes to the hub's channels (bus, all, a
room's) and the supervisor reads that a moment later: before relying on a
path, a case sends a probe over it, again and again, until one arrives
(deadline PROBE_DEADLINE). Messages from one worker arrive in the order it
sent them, so a marker sent last tells that everything before it is in.
"""

import asyncio
import functools
import json
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402
from test_pxl_chat import KEY, SECRET, b64url, hs256, open_ws  # noqa: E402

S = H.Suite("moonwire examples/pxl-chat with workers = 2 (the hub, no Redis)")
API = [("Authorization", "apikey " + KEY)]
RECV_TIMEOUT = 15.0     # a message that must come (generous: ASan, a busy machine)
PROBE_WAIT = 1.0        # how long one probe is waited for before the next is sent
PROBE_DEADLINE = 60.0   # how long a path may take to be subscribed

class State:
    srv = None
    node = {}   # worker pid -> its node id ("w1", "w2")


# ---- workers and pinning ------------------------------------------------------

children = H.children


def workers():
    return children(State.srv.proc.pid)


def stop_others(pid):
    others = [p for p in workers() if p != pid]
    for p in others:
        os.kill(p, signal.SIGSTOP)
    return others


def cont(pids):
    for p in pids:
        try:
            os.kill(p, signal.SIGCONT)
        except ProcessLookupError:
            pass


def pinned(pid, fn, *args):
    """fn(*args) while every worker but pid is stopped: whatever it
    connects to is served by pid."""
    others = stop_others(pid)
    try:
        return fn(*args)
    finally:
        cont(others)


def api(method, path, body=None):
    status, _, data = H.http_request(State.srv.connect_host, State.srv.port, method, path,
                                     headers=API,
                                     body=json.dumps(body).encode() if body is not None else None)
    return status, json.loads(data.decode() or "null")


async def api_on(pid, method, path, body=None):
    """An API request answered by worker pid (None: by either)."""
    loop = asyncio.get_running_loop()
    call = functools.partial(api, method, path, body)
    if pid is None:
        return await loop.run_in_executor(None, call)
    return await loop.run_in_executor(None, pinned, pid, call)


async def emit_on(pid, channel, message):
    status, doc = await api_on(pid, "POST", "/api/emit", {"channel": channel, "message": message})
    eq(status, 200, "emit %s: %r" % (channel, doc))
    return doc


# ---- PXL clients ----------------------------------------------------------------

class Client:
    """A PXL client on a known worker; keeps everything it read."""

    def __init__(self, ws, user, pid):
        self.ws, self.user, self.pid, self.msgs = ws, user, pid, []
        self.node = State.node[pid]

    async def next(self, timeout=RECV_TIMEOUT):
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        check(isinstance(raw, str), "user %d: a binary frame %r" % (self.user, raw[:60]))
        m = json.loads(raw)
        self.msgs.append(m)
        return m

    async def until(self, pred, timeout=RECV_TIMEOUT, what="a message", fresh=False):
        """The first message pred takes, read already or read now (fresh:
        only one read from now); fails at the deadline."""
        if not fresh:
            for m in self.msgs:
                if pred(m):
                    return m
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            try:
                m = await self.next(max(left, 0.01))
            except asyncio.TimeoutError:
                raise H.Failure("user %d on %s: no %s within %.0fs; last: %s" % (
                    self.user, self.node, what, timeout, H.short(self.msgs[-5:], 600)))
            if pred(m):
                return m

    async def seen_or_wait(self, pred, timeout):
        """Whether a message pred takes came, reading for at most timeout."""
        try:
            await self.until(pred, timeout)
            return True
        except H.Failure:
            return False

    async def send(self, type_, action, data=None):
        msg = {"type": type_, "action": action}
        if data is not None:
            msg["data"] = data
        await self.ws.send(json.dumps(msg))

    async def call(self, type_, action, data=None):
        """Sends a message and reads its answer's response; the messages
        read before it stay in msgs."""
        await self.send(type_, action, data)
        m = await self.until(lambda m: m.get("type") == type_ and m.get("action") == action
                             and "response" in m, what="answer to %s.%s" % (type_, action),
                             fresh=True)
        return m["response"]

    async def join(self, room, username):
        r = await self.call("system", "joinRoom", {"roomName": room, "username": username})
        eq(r["success"], True, "joinRoom %s: %r" % (room, r))

    def count(self, pred):
        return sum(1 for m in self.msgs if pred(m))

    async def close(self):
        await self.ws.close()


async def connect(ctx, pid, user):
    """A client of user `user` served by worker pid (authenticated)."""
    others = stop_others(pid)
    try:
        ws = await open_ws(State.srv, "?token=" + hs256({"sub": str(user)}))
        ctx.sockets.append(ws)
        c = Client(ws, user, pid)
        eq((await c.next())["action"], "authenticated", "auth of user %d" % user)
    finally:
        cont(others)
    return c


# ---- what clients get -------------------------------------------------------------

def chat(text):
    return lambda m: m.get("type") == "chat" and m.get("action") == "message" \
        and m["data"].get("message") == text


def typing(name):
    return lambda m: m.get("type") == "chat" and m.get("action") == "userTyping" \
        and m["data"].get("username") == name


def done(job_id):
    return lambda m: m.get("type") == "queue" and m.get("action") == "done" \
        and m["data"].get("jobId") == job_id


def activity(action, user, room=None):
    return lambda m: m.get("type") == "activity" and m.get("action") == action \
        and m["data"].get("user") == user and m["data"].get("room") == room


def alert(text):
    return lambda m: m.get("type") == "notification" and m.get("action") == "alert" \
        and m["data"].get("message") == text


def note(n):
    return lambda m: m.get("type") == "room" and m.get("action") == "note" \
        and m.get("data") == {"n": n}


def member(action, room, username):
    return lambda m: m.get("type") == "room" and m.get("action") == action \
        and m["data"].get("roomName") == room and m["data"].get("username") == username


def is_probe(m):
    data = m.get("data") if isinstance(m.get("data"), dict) else {}
    return m.get("type") == "probe" \
        or str(data.get("jobId", "")).startswith("probe-") \
        or str(data.get("message", "")).startswith("probe-")


def real(msgs):
    """Messages that are not probes."""
    return [m for m in msgs if not is_probe(m)]


# ---- readiness: probes until a path is subscribed ------------------------------------

async def until_through(send, receivers, what):
    """Calls send(n) (n = 1, 2, ...) until every receiver got what it sent:
    send(n) returns the predicate of what receivers should get."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PROBE_DEADLINE
    n, waiting = 0, list(receivers)
    preds = []
    while waiting:
        if loop.time() > deadline:
            raise H.Failure("%s: no probe reached %s within %.0fs" % (
                what, [(c.user, c.node) for c in waiting], PROBE_DEADLINE))
        n += 1
        preds.append(await send(n))
        got = lambda m: any(p(m) for p in preds)  # noqa: E731: any probe sent so far
        still = []
        for c in waiting:
            if not await c.seen_or_wait(got, PROBE_WAIT):
                still.append(c)
        waiting = still
    if n > 1:
        print("     (%s: %d probes before every receiver had one)" % (what, n), flush=True)


async def bus_ready(pids, receivers, tag):
    """Bus events emitted on each worker of pids reach the subscribers of
    every worker: a probe job (queueDashboard) reaches every receiver."""
    for pid in pids:
        async def send(n, pid=pid):
            job = "probe-%s-%s-%d" % (tag, State.node[pid], n)
            await emit_on(pid, "job.completed", {"jobId": job})
            return done(job)
        await until_through(send, receivers, "bus from %s" % State.node[pid])


async def room_ready(room, pids, receivers, tag):
    """A publish to room on each worker of pids reaches every receiver."""
    for pid in pids:
        async def send(n, pid=pid):
            status, doc = await api_on(pid, "POST", "/api/publish",
                                       {"room": room, "type": "probe", "action": tag,
                                        "data": {"n": n, "from": State.node[pid]}})
            eq(status, 200, "probe publish: %r" % (doc,))
            return lambda m, n=n, pid=pid: m.get("type") == "probe" and m.get("action") == tag \
                and m["data"] == {"n": n, "from": State.node[pid]}
        await until_through(send, receivers, "room %s from %s" % (room, State.node[pid]))


async def settle(pids, clients, tag):
    """A marker job emitted on each worker, read by every client: what the
    workers sent before is in."""
    for pid in pids:
        await emit_on(pid, "job.completed", {"jobId": "%s-%s" % (tag, State.node[pid])})
    for c in clients:
        for pid in pids:
            job = "%s-%s" % (tag, State.node[pid])
            if not c.count(done(job)):
                await c.until(done(job), what="marker job %s" % job)


# ---- the server -----------------------------------------------------------------------

@S.setup
def start(ctx):
    env = {"JWT_SECRET_KEY": b64url(SECRET.encode("utf-8")), "MOONWIRE_API_KEY": KEY,
           "MOONWIRE_WORKERS": "2"}
    State.srv = ctx.start("pxl", ctx.example("pxl-chat"), env=env)
    H.poll(lambda: len(workers()) == 2, timeout=20, what="two workers")
    for pid in workers():
        health = pinned(pid, State.srv.health)
        eq(health["pid"], pid, "the worker that answered /health")
        eq(health.get("cluster", {}).get("node"), "w%d" % health["worker"],
           "the worker's node id")
        State.node[pid] = health["cluster"]["node"]
    eq(sorted(State.node.values()), ["w1", "w2"], "node ids")


def acase(name, timeout=180):
    """An async case with its own sockets, closed at the end, and no worker
    left stopped whatever happens."""
    def deco(fn):
        async def run(ctx):
            ctx.sockets = []
            try:
                await fn(ctx, *sorted(State.node, key=State.node.get))
            finally:
                cont(workers())
                for ws in ctx.sockets:
                    await ws.close()
        run.__name__ = fn.__name__
        return S.acase(name, timeout=timeout)(run)
    return deco


@acase("chat.send crosses workers once, both ways; chat.typing reaches all but the sender")
async def test_chat(ctx, w1, w2):
    x, y = await connect(ctx, w1, 11), await connect(ctx, w2, 12)
    z = await connect(ctx, w2, 13)
    # broadcasts to all go through the hub's channel "all": probe both ways
    for sender, others in ((x, (y, z)), (y, (x,))):
        async def send(n, sender=sender):
            text = "probe-%s-%d" % (sender.node, n)
            await sender.call("chat", "send", {"username": "probe", "text": text})
            return chat(text)
        await until_through(send, others, "chat.send from %s" % sender.node)

    r = await x.call("chat", "send", {"username": "alice", "text": "hello-1"})
    eq(r["success"], True, "chat.send answer")
    r = await x.call("chat", "typing", {"username": "alice"})
    eq(r, {"success": True}, "chat.typing answer")
    await x.call("chat", "send", {"username": "alice", "text": "marker-1"})
    for c in (x, y, z):
        await c.until(chat("marker-1"), what="marker-1")
    r = await y.call("chat", "send", {"username": "bob", "text": "hello-2"})
    eq(r["success"], True, "chat.send answer on w2")
    await y.call("chat", "send", {"username": "bob", "text": "marker-2"})
    for c in (x, y, z):
        await c.until(chat("marker-2"), what="marker-2")
    # a last round trip each way through the hub: anything a worker got
    # back of its own (it must not) came before these
    await x.call("chat", "send", {"username": "alice", "text": "end-1"})
    await y.call("chat", "send", {"username": "bob", "text": "end-2"})
    for c in (x, y, z):
        await c.until(chat("end-1"), what="end-1")
        await c.until(chat("end-2"), what="end-2")

    def heard(c):
        return [(m["action"], m["data"].get("message", m["data"].get("username")))
                for m in real(c.msgs) if m.get("type") == "chat" and "data" in m]
    eq(heard(y)[:3], [("message", "hello-1"), ("userTyping", "alice"), ("message", "marker-1")],
       "w2's client: alice's message, her typing, the marker, in order")
    for c in (x, y, z):
        for text in ("hello-1", "marker-1", "hello-2", "marker-2"):
            eq(c.count(chat(text)), 1, "user %d on %s: %s once" % (c.user, c.node, text))
    eq(x.count(typing("alice")), 0, "the sender does not see itself typing")
    eq(y.count(typing("alice")), 1, "w2's client sees alice typing once")
    eq(z.count(typing("alice")), 1, "another client of w2 sees alice typing once")


@acase("PXL's automatic events, jobs, announcements and a disconnect reach the dashboards "
       "of both workers, each once")
async def test_events(ctx, w1, w2):
    da, db = await connect(ctx, w1, 100), await connect(ctx, w2, 200)
    dashes = (da, db)
    for d in dashes:
        await d.join("queue:dashboard", "ops")
        await d.join("clients:activity", "ops")
    await bus_ready((w1, w2), dashes, "events")

    # a client of each worker comes, joins a room, leaves it, goes
    carol = await connect(ctx, w1, 3)
    await carol.join("chat:general", "carol")
    r = await carol.call("system", "leaveRoom", {"roomName": "chat:general"})
    eq(r["success"], True, "carol's leaveRoom")
    connected = await db.until(activity("clientConnected", 3), what="carol's connect on w2")
    eq(connected["data"]["node"], "w1", "carol is a client of w1")
    await carol.close()

    bob = await connect(ctx, w2, 2)
    await bob.join("chat:general", "bob")
    connected = await da.until(activity("clientConnected", 2), what="bob's connect on w1")
    eq(connected["data"]["node"], "w2", "bob is a client of w2")

    # a backend's jobs on each worker, and one on whichever answers
    for pid, job in ((w1, "j-1"), (w2, "j-2"), (None, "j-any")):
        doc = await emit_on(pid, "job.completed", {"jobId": job, "queue": "reports"})
        eq(doc, {"channel": "job.completed", "subscribers": 1}, "job %s's subscribers" % job)

    # a custom event (announcement) from w2: every client of both workers
    await emit_on(w2, "announcement", {"message": "maintenance at 10"})
    await bob.until(alert("maintenance at 10"), what="the announcement")

    # bob, a client of w2, disconnected through w1's API (PXL's
    # disconnectClient): his id and node from his clientConnected event
    status, doc = await api_on(w1, "POST", "/api/disconnect",
                               {"client": connected["data"]["client_id"], "node": "w2",
                                "code": 4000, "reason": "bye"})
    eq(status, 200, "disconnect through w1: %r" % (doc,))
    await asyncio.wait_for(bob.ws.wait_closed(), RECV_TIMEOUT)
    eq((bob.ws.close_code, bob.ws.close_reason), (4000, "bye"), "bob's close")

    await da.until(activity("clientDisconnected", 2), what="bob's disconnect")
    await db.until(activity("clientDisconnected", 3), what="carol's disconnect")
    await settle((w1, w2), dashes, "end")

    for d in dashes:
        for what, pred in (
                ("carol connected", activity("clientConnected", 3)),
                ("carol joined", activity("clientJoinedRoom", 3, "chat:general")),
                ("carol left", activity("clientLeftRoom", 3, "chat:general")),
                ("carol disconnected", activity("clientDisconnected", 3)),
                ("bob connected", activity("clientConnected", 2)),
                ("bob joined", activity("clientJoinedRoom", 2, "chat:general")),
                ("bob left", activity("clientLeftRoom", 2, "chat:general")),
                ("bob disconnected", activity("clientDisconnected", 2)),
                ("job j-1 (w1)", done("j-1")), ("job j-2 (w2)", done("j-2")),
                ("job j-any", done("j-any")),
                ("announcement", alert("maintenance at 10"))):
            eq(d.count(pred), 1, "dashboard on %s: %s" % (d.node, what))
        for user, node in ((3, "w1"), (2, "w2")):
            nodes = {m["data"]["node"] for m in d.msgs
                     if m.get("type") == "activity" and m["data"].get("user") == user}
            eq(nodes, {node}, "dashboard on %s: user %d's events name its worker" % (d.node, user))
    bye = [m for m in da.msgs if activity("clientDisconnected", 2)(m)][0]["data"]
    eq((bye.get("code"), bye.get("reason")), (4000, "bye"), "bob's disconnect event")
    # exactly once after the last settle too: nothing more came
    await settle((w1, w2), dashes, "after")
    for d in dashes:
        eq(d.count(done("j-any")), 1, "dashboard on %s: j-any once" % d.node)
        eq(d.count(activity("clientDisconnected", 2)), 1, "bob's disconnect once")
        eq(d.count(alert("maintenance at 10")), 1, "the announcement once")


@acase("system.joinRoom/leaveRoom: a room split over the workers hears publishes, "
       "memberJoined/memberLeft and jobs once")
async def test_rooms(ctx, w1, w2):
    room = "chat:split"
    m1 = await connect(ctx, w1, 21)
    await m1.join(room, "ann")
    await m1.join("queue:dashboard", "ann")
    m2 = await connect(ctx, w2, 22)
    await m2.join("queue:dashboard", "ben")
    # w1 has a member of room: w2's publishes reach it once it is subscribed
    await room_ready(room, (w2,), (m1,), "r1")
    await m2.join(room, "ben")
    await room_ready(room, (w1,), (m2,), "r2")
    await bus_ready((w1, w2), (m1, m2), "rooms")
    # roomStatus: the worker of the client who came tells the room's
    # members on both workers (count: the next case)
    await m1.until(member("memberJoined", room, "ben"), what="ben's memberJoined on w1")

    m3 = await connect(ctx, w2, 23)
    await m3.join(room, "cid")
    for c in (m1, m2):
        await c.until(member("memberJoined", room, "cid"), what="cid's memberJoined")
    for n, pid in ((1, w1), (2, w2)):
        status, doc = await api_on(pid, "POST", "/api/publish",
                                   {"room": room, "type": "room", "action": "note",
                                    "data": {"n": n}})
        eq(status, 200, "publish on %s: %r" % (State.node[pid], doc))
    # a job from a backend (whichever worker answers) reaches the dashboard
    # room's members on both workers
    await emit_on(None, "job.completed", {"jobId": "j-rooms"})
    for c in (m1, m2, m3):
        await c.until(note(1), what="w1's publish")
        await c.until(note(2), what="w2's publish")
    for c in (m1, m2):
        await c.until(done("j-rooms"), what="the job")

    # cid leaves: told first (user.leftRoom), the others hear it once, and
    # no publish reaches cid after
    r = await m3.call("system", "leaveRoom", {"roomName": room})
    eq(r["success"], True, "cid's leaveRoom")
    check(any(m.get("type") == "user" and m.get("action") == "leftRoom"
              and m["data"] == {"roomName": room} for m in m3.msgs), "cid got user.leftRoom")
    for c in (m1, m2):
        await c.until(member("memberLeft", room, "cid"), what="cid's memberLeft")
    # ben leaves too: w2 has no member left, ann is alone on w1
    await m2.call("system", "leaveRoom", {"roomName": room})
    await m1.until(member("memberLeft", room, "ben"), what="ben's memberLeft")
    status, doc = await api_on(w2, "POST", "/api/publish",
                               {"room": room, "type": "room", "action": "note", "data": {"n": 3}})
    eq(status, 200, "publish on w2 after the leaves: %r" % (doc,))
    await m1.until(note(3), what="w2's publish to a room of w1 only")
    await settle((w1, w2), (m1, m2), "rooms-end")
    await m3.call("chat", "typing", {"username": "cid"})  # a round trip: cid's messages are in

    def saw(c, pred):
        return c.count(pred)
    for c, want in ((m1, {1: 1, 2: 1, 3: 1}), (m2, {1: 1, 2: 1, 3: 0}),
                    (m3, {1: 1, 2: 1, 3: 0})):
        for n, k in want.items():
            eq(saw(c, note(n)), k, "user %d on %s: publish %d" % (c.user, c.node, n))
    # roomStatus: each member hears of each other member once, whichever
    # worker either is on (the count is the next case's)
    for c, want in ((m1, [("memberJoined", "ben"), ("memberJoined", "cid"),
                          ("memberLeft", "cid"), ("memberLeft", "ben")]),
                    (m2, [("memberJoined", "cid"), ("memberLeft", "cid")]),
                    (m3, [])):
        eq([(m["action"], m["data"]["username"]) for m in c.msgs
            if m.get("type") == "room" and m.get("action") in ("memberJoined", "memberLeft")
            and m["data"]["roomName"] == room],
           want, "what user %d on %s heard of the room's members" % (c.user, c.node))
    for c in (m1, m2):
        eq(saw(c, done("j-rooms")), 1, "user %d: the job once" % c.user)


@acase("a user on both workers: /api/send and /api/disconnect {user} from either reach "
       "each connection once")
async def test_user(ctx, w1, w2):
    u1, u2 = await connect(ctx, w1, 41), await connect(ctx, w2, 41)
    # a user's channel is subscribed when the user connects: probe both ways
    for pid, others in ((w1, (u2,)), (w2, (u1,))):
        async def send(n, pid=pid):
            status, doc = await api_on(pid, "POST", "/api/send",
                                       {"user": 41, "type": "probe", "action": "user",
                                        "data": {"n": n, "from": State.node[pid]}})
            eq(status, 200, "probe send: %r" % (doc,))
            return lambda m, n=n, pid=pid: m.get("type") == "probe" \
                and m["data"] == {"n": n, "from": State.node[pid]}
        await until_through(send, others, "send_user from %s" % State.node[pid])
    for n, pid in ((1, w1), (2, w2)):
        status, doc = await api_on(pid, "POST", "/api/send",
                                   {"user": 41, "type": "room", "action": "note",
                                    "data": {"n": n}})
        eq((status, doc), (200, {"delivered": 1}), "send on %s: its own connection"
           % State.node[pid])
    for c in (u1, u2):
        await c.until(note(1), what="the send through w1")
        await c.until(note(2), what="the send through w2")
    status, doc = await api_on(w2, "POST", "/api/disconnect",
                               {"user": 41, "code": 4001, "reason": "user gone"})
    eq(status, 200, "disconnect {user} through w2: %r" % (doc,))
    for c in (u1, u2):
        await asyncio.wait_for(c.ws.wait_closed(), RECV_TIMEOUT)
        eq((c.ws.close_code, c.ws.close_reason), (4001, "user gone"),
           "the close of user 41 on %s" % c.node)
        # the two sends come by two ways (one local, one through the hub):
        # in either order, each once
        eq(sorted(m["data"]["n"] for m in real(c.msgs) if note(1)(m) or note(2)(m)), [1, 2],
           "on %s: each send once" % c.node)


async def presence_count(pid, room, n):
    """Waits until worker pid's /api/presence counts n members in room."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PROBE_DEADLINE
    while True:
        status, doc = await api_on(pid, "GET", "/api/presence?room=" + room)
        if status == 200 and doc.get("count") == n:
            return
        check(loop.time() < deadline, "presence of %s on %s: %r, want %d members" % (
            room, State.node[pid], doc, n))
        await asyncio.sleep(0.1)


@acase("roomStatus counts and /api/presence count the members on both workers")
async def test_room_counts(ctx, w1, w2):
    room = "chat:counted"
    m1 = await connect(ctx, w1, 31)
    await m1.join(room, "dee")
    m2 = await connect(ctx, w2, 32)
    await room_ready(room, (w2,), (m1,), "c1")
    await presence_count(w2, room, 1)
    await m2.join(room, "eve")
    joined = await m1.until(member("memberJoined", room, "eve"), what="eve's memberJoined")
    eq(joined["data"], {"roomName": room, "username": "eve", "count": 2},
       "dee hears eve joined on w2, with both workers' members")
    await room_ready(room, (w1,), (m2,), "c2")
    m3 = await connect(ctx, w1, 33)
    await presence_count(w1, room, 2)
    await m3.join(room, "fay")
    joined = await m2.until(member("memberJoined", room, "fay"), what="fay's memberJoined")
    eq(joined["data"]["count"], 3, "eve hears fay joined on w1: three members")
    for pid in (w1, w2):
        status, doc = await api_on(pid, "GET", "/api/presence?room=" + room)
        eq((status, doc["count"]), (200, 3), "presence on %s: %r" % (State.node[pid], doc))
        eq(sorted(e["user"] for e in doc["presence"]), [31, 32, 33],
           "presence entries on %s" % State.node[pid])
    await m3.call("system", "leaveRoom", {"roomName": room})
    left = await m2.until(member("memberLeft", room, "fay"), what="fay's memberLeft")
    eq(left["data"]["count"], 2, "eve hears fay left: two members")


@S.case("last: workers that exit together leave the supervisor to exit 0 on SIGTERM",
        timeout=60)
def test_exit_together(ctx):
    # Both workers exit while the supervisor is stopped; SIGTERM is then
    # pending with SIGCHLD, and one SIGCHLD reaps both in one iteration.
    sup, pids = State.srv.proc.pid, workers()
    start = len(State.srv.log())
    os.kill(sup, signal.SIGSTOP)
    try:
        for p in pids:
            os.kill(p, signal.SIGTERM)

        def zombies():
            for p in pids:
                with open("/proc/%d/stat" % p) as f:
                    if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                        return False
            return True
        H.poll(zombies, timeout=20, what="both workers to exit")
        os.kill(sup, signal.SIGTERM)
    finally:
        os.kill(sup, signal.SIGCONT)
    eq(State.srv.wait_exit(20), 0, "the supervisor's exit status; log:\n%s"
       % State.srv.log()[start:])
    check("supervisor: every worker stopped" in State.srv.log()[start:], "its last line")


if __name__ == "__main__":
    sys.exit(S.main())
