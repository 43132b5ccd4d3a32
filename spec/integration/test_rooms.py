#!/usr/bin/python3
"""Rooms, presence and fan-out against the real server (issue 3).

Fixture apps: fixtures/rooms/app (controllers/t.lua drives the Lua rooms API),
fixtures/rooms/override (an app-owned system controller) and examples/chat.
Limits and policies vary per server through MOONWIRE_* variables. Clients are
harness.RawClient sockets wrapped in a small synchronous JSON client; a
`system.ping` round trip is the barrier that proves no event is still on its
way (the server sends to one client in order).
"""

import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

S = H.Suite("moonwire rooms")


# --------------------------------------------------------------------------
# a small synchronous JSON client
# --------------------------------------------------------------------------

class WS:
    def __init__(self, ctx, srv, welcome=True, rcvbuf=None, path="/"):
        self.srv = srv
        if rcvbuf:
            # A tiny receive buffer, set before connecting, makes a client
            # that never reads fill the server's queue quickly.
            raw = H.RawClient.__new__(H.RawClient)
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            s.settimeout(H.SOCK_TIMEOUT)
            s.connect((srv.connect_host, srv.port))
            raw.host, raw.port, raw.sock = srv.connect_host, srv.port, s
            raw.buf, raw.response, raw.eof, raw.reset = b"", None, False, False
            raw.handshake(path=path)
        else:
            raw = srv.client(path=path)
        self.raw = ctx.track(raw)
        self.events = []
        self.n = 0
        self.id = None
        if welcome:
            w = self.recv()
            eq((w.get("type"), w.get("action")), ("system", "connected"), "welcome")
            self.id = w["data"]["client_id"]

    def recv(self):
        op, data = self.raw.recv_message(allow_pong=True)
        eq(op, H.OP_TEXT, "opcode")
        try:
            return json.loads(data.decode("utf-8"))
        except ValueError:
            raise H.Failure("not JSON: %r" % data[:200])

    def send(self, obj):
        self.raw.send_text(json.dumps(obj))

    def req(self, type_, action, data=None, id_=None):
        self.n += 1
        rid = id_ or "r%d" % self.n
        msg = {"type": type_, "action": action, "id": rid}
        if data is not None:
            msg["data"] = data
        self.send(msg)
        while True:
            m = self.recv()
            if m.get("id") == rid:
                return m
            self.events.append(m)

    def ok(self, type_, action, data=None):
        r = self.req(type_, action, data)
        check(r.get("type") != "error", "%s.%s failed: %r" % (type_, action, r))
        return r["data"]

    def err(self, type_, action, data=None):
        r = self.req(type_, action, data)
        eq(r.get("type"), "error", "%s.%s should fail (%r)" % (type_, action, r))
        return r["error"]

    def sync(self):
        """Round trip: afterwards every event queued before it is in self.events."""
        self.req("system", "ping")

    def take(self, type_=None, action=None):
        """Buffered events of this type/action (removed from the buffer)."""
        got, rest = [], []
        for m in self.events:
            if (type_ is None or m.get("type") == type_) and (action is None or m.get("action") == action):
                got.append(m)
            else:
                rest.append(m)
        self.events = rest
        return got

    def wait_event(self, type_, action=None, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            got = self.take(type_, action)
            if got:
                self.events = got[1:] + self.events
                return got[0]
            if time.monotonic() > deadline:
                raise H.Failure("no %s/%s event within %.1fs" % (type_, action, timeout))
            self.events.append(self.recv())

    def close(self):
        try:
            self.raw.send_close(1000)
            self.raw.expect_close(1000)
        except Exception:
            pass
        try:
            self.raw.sock.close()
        except Exception:
            pass


def server(ctx, key, app=None, **env):
    """The server `key`, started once. One worker even under
    MW_TEST_WORKERS: these cases check one process's rooms exactly (the
    `delivered` of a reply, the count a join returns at once, a ping as
    the barrier after which no event is on its way, limits per process),
    and with workers a connection lands on either worker, whose
    `delivered` counts its own members, whose store learns another
    worker's join when its record arrives, and whose ping does not wait
    for what the hub carries (docs/scaling.md, "Workers"). The same
    behaviours across workers are test_workers.py's."""
    env.setdefault("workers", 1)
    if key not in ctx.servers:
        e = {"MOONWIRE_" + k.upper(): str(v) for k, v in env.items()}
        ctx.start(key, app or ctx.fixture("rooms/app"), env=e)
    return ctx.servers[key]


def main_srv(ctx):
    return server(ctx, "main")


def connect(ctx, srv, n=1, **kw):
    if n == 1:
        return WS(ctx, srv, **kw)
    return [WS(ctx, srv, **kw) for _ in range(n)]


def health_rooms(srv):
    return srv.health()["rooms"]


def vmrss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise H.Failure("no VmRSS for pid %d" % pid)


def uniq(prefix):
    uniq.n = getattr(uniq, "n", 0) + 1
    return "%s%d-%d" % (prefix, os.getpid(), uniq.n)


# --------------------------------------------------------------------------
# join / leave / rooms
# --------------------------------------------------------------------------

@S.case("join and leave reply with the room and its count")
def test_join_leave_reply_count(ctx):
    srv = main_srv(ctx)
    a, b = connect(ctx, srv, 2)
    room = uniq("jl-")
    eq(a.ok("system", "join", {"room": room}), {"room": room, "count": 1}, "first join")
    eq(b.ok("system", "subscribe", {"room": room}), {"room": room, "count": 2}, "second join")
    eq(a.ok("system", "join", {"room": room}), {"room": room, "count": 2}, "join again")
    eq(a.ok("system", "leave", {"room": room}), {"room": room, "count": 1}, "leave")
    eq(b.ok("system", "unsubscribe", {"room": room}), {"room": room, "count": 0}, "last leave")
    e = a.err("system", "leave", {"room": room})
    eq(e, {"code": "INVALID_ROOM", "message": "not joined"}, "leave again")


@S.case("a client in several rooms; system.rooms lists them, [] when none")
def test_system_rooms_lists_rooms(ctx):
    srv = main_srv(ctx)
    a = connect(ctx, srv)
    names = [uniq("multi-") for _ in range(3)]
    eq(a.ok("system", "rooms"), {"rooms": []}, "no rooms yet")
    for r in names:
        a.ok("system", "join", {"room": r})
    eq(a.ok("system", "rooms"), {"rooms": names}, "rooms in join order")
    eq(a.ok("t", "whoami")["rooms"], 3, "client:rooms() count")


@S.case("INVALID_ROOM for an empty, 257-byte or non-string room; 256 bytes is fine")
def test_invalid_room_names(ctx):
    srv = main_srv(ctx)
    a = connect(ctx, srv)
    eq(a.err("system", "join", {"room": ""}),
       {"code": "INVALID_ROOM", "message": "room name must not be empty"}, "empty")
    eq(a.err("system", "join", {"room": "x" * 257}),
       {"code": "INVALID_ROOM", "message": "room name must be at most 256 bytes"}, "257 bytes")
    for bad in (5, None, ["a"], {"a": 1}, True):
        e = a.err("system", "join", {"room": bad})
        eq(e["code"], "INVALID_ROOM", "room %r" % (bad,))
    e = a.err("system", "publish", {"room": ""})
    eq(e["code"], "INVALID_ROOM", "publish to an empty name")
    long = "é" * 128  # 256 bytes
    eq(a.ok("system", "join", {"room": long})["count"], 1, "256-byte name")
    eq(a.ok("system", "leave", {"room": long})["count"], 0, "leave it")


@S.case("ROOM_FULL past max_connections_per_room; too many rooms past max_rooms_per_client")
def test_room_full_and_too_many_rooms(ctx):
    srv = server(ctx, "limits", max_connections_per_room=2, max_rooms_per_client=2)
    a, b, c = connect(ctx, srv, 3)
    a.ok("system", "join", {"room": "small"})
    b.ok("system", "join", {"room": "small"})
    eq(c.err("system", "join", {"room": "small"}), {"code": "ROOM_FULL", "message": "room full"},
       "third member")
    a.ok("system", "join", {"room": "second"})
    eq(a.err("system", "join", {"room": "third"}),
       {"code": "INVALID_ROOM", "message": "too many rooms"}, "third room")
    b.ok("system", "leave", {"room": "small"})
    eq(c.ok("system", "join", {"room": "small"})["count"], 2, "a seat freed")


@S.case("client_can_join_multiple_rooms = false moves the client (with presence left)")
def test_single_room_mode_moves_client(ctx):
    srv = server(ctx, "single", client_can_join_multiple_rooms="false", presence="*")
    a, b = connect(ctx, srv, 2)
    a.ok("system", "join", {"room": "one"})
    b.ok("system", "join", {"room": "one"})
    a.sync()
    eq(len(a.take("presence", "joined")), 1, "a saw b join")
    eq(b.ok("system", "join", {"room": "two"})["count"], 1, "b in two")
    eq(b.ok("system", "rooms"), {"rooms": ["two"]}, "b moved out of one")
    a.sync()
    left = a.take("presence", "left")
    eq(len(left), 1, "presence left for the moved-out client (%r)" % a.events)
    eq((left[0]["room"], left[0]["data"]["client_id"]), ("one", b.id), "left event")
    eq(a.ok("t", "room", {"room": "one"})["count"], 1, "count of one")


# --------------------------------------------------------------------------
# publish and broadcasts
# --------------------------------------------------------------------------

@S.case("publish by a non-member: not subscribed to this room")
def test_publish_by_non_member_refused(ctx):
    srv = main_srv(ctx)
    a, b = connect(ctx, srv, 2)
    room = uniq("pub-")
    a.ok("system", "join", {"room": room})
    eq(b.err("system", "publish", {"room": room, "data": 1}),
       {"code": "INVALID_ROOM", "message": "not subscribed to this room"}, "non-member")
    a.sync()
    eq(a.take("system", "message"), [], "nothing delivered")


@S.case("publish reaches every other member exactly once, never the publisher")
def test_publish_reaches_others_once(ctx):
    srv = main_srv(ctx)
    members = connect(ctx, srv, 5)
    outsider = connect(ctx, srv)
    room = uniq("pub-")
    for m in members:
        m.ok("system", "join", {"room": room})
    for i, m in enumerate(members):
        for k in range(3):
            r = m.ok("system", "publish", {"room": room, "data": {"from": i, "k": k}})
            eq(r, {"room": room, "delivered": 4}, "publish reply")
    for i, m in enumerate(members):
        m.sync()
        got = m.take("system", "message")
        seen = sorted((g["data"]["data"]["from"], g["data"]["data"]["k"]) for g in got)
        want = sorted((j, k) for j in range(5) if j != i for k in range(3))
        eq(seen, want, "messages member %d received" % i)
        for g in got:
            eq(g["room"], room, "room field")
            eq(g["data"]["from"], members[g["data"]["data"]["from"]].id, "from field")
            check(isinstance(g.get("ts"), (int, float)), "ts")
    outsider.sync()
    eq(outsider.take(), [], "outsider got nothing")


@S.case("room broadcast from Lua with exclude (self, or a client id)")
def test_broadcast_exclude(ctx):
    srv = main_srv(ctx)
    a, b, c = connect(ctx, srv, 3)
    room = uniq("rb-")
    for w in (a, b, c):
        w.ok("system", "join", {"room": room})
    eq(a.ok("t", "room_say", {"room": room, "payload": 1, "exclude_self": True}),
       {"delivered": 2, "dropped": 0}, "exclude self")
    eq(a.ok("t", "room_say", {"room": room, "payload": 2, "exclude": b.id}),
       {"delivered": 2, "dropped": 0}, "exclude b")
    for w, want in ((a, [2]), (b, [1]), (c, [1, 2])):
        w.sync()
        eq([m["data"] for m in w.take("t", "said")], want, "client %d got" % w.id)


@S.case("an exclude id from client data that is not an id: an error for that client only")
def test_broadcast_bad_exclude_errors_one_client(ctx):
    srv = main_srv(ctx)
    a, b = connect(ctx, srv, 2)
    room = uniq("rbx-")
    for w in (a, b):
        w.ok("system", "join", {"room": room})
    # Out of range, negative, fractional: the C primitive refuses them (no
    # undefined conversion), the controller errors, nothing is broadcast.
    for bad in (1e300, -5, 2.5, 1e16):
        e = a.err("t", "room_say", {"room": room, "payload": "x", "exclude": bad})
        eq(e["code"], "INTERNAL_ERROR", "exclude %r" % bad)
    b.sync()
    eq(b.take("t", "said"), [], "nothing was broadcast")
    eq(a.ok("t", "room_say", {"room": room, "payload": 3, "exclude": a.id}),
       {"delivered": 1, "dropped": 0}, "the same client still works")
    b.sync()
    eq([m["data"] for m in b.take("t", "said")], [3], "and the room still delivers")
    check(srv.alive(), "server alive")


@S.case("broadcast with a filter on client.data")
def test_broadcast_filter(ctx):
    srv = main_srv(ctx)
    red = connect(ctx, srv, 3)
    blue = connect(ctx, srv, 2)
    team = uniq("red-")
    for w in red:
        w.ok("t", "set", {"team": team})
    for w in blue:
        w.ok("t", "set", {"team": team + "-blue"})
    eq(red[0].ok("t", "team_say", {"team": team, "payload": "go"})["delivered"], 3, "filtered")
    for w in red:
        w.sync()
        eq([m["data"] for m in w.take("t", "team")], ["go"], "red member")
    for w in blue:
        w.sync()
        eq(w.take("t", "team"), [], "blue member")


@S.case("send_user reaches every connection of that user; send to a client id")
def test_send_user_and_send_to_id(ctx):
    srv = main_srv(ctx)
    u1, u2, other = connect(ctx, srv, 3)
    user = uniq("user-")
    u1.ok("t", "login", {"user": user})
    u2.ok("t", "login", {"user": user})
    other.ok("t", "login", {"user": user + "-x"})
    eq(other.ok("t", "user_say", {"user": user, "payload": "hi"}), {"delivered": 2}, "reply")
    for w in (u1, u2):
        w.sync()
        eq([m["data"] for m in w.take("t", "private")], ["hi"], "user connection")
    other.sync()
    eq(other.take("t", "private"), [], "other user")
    u2.close()
    eq(other.ok("t", "user_say", {"user": user, "payload": "again"}), {"delivered": 1},
       "after one connection left")
    eq(other.ok("t", "send", {"to": u1.id, "payload": 7}), True, "send to id")
    u1.sync()
    eq([m["data"] for m in u1.take("t", "direct")], [7], "direct send")
    eq(other.ok("t", "send", {"to": 999999, "payload": 7}), False, "send to unknown id")


@S.case("system.broadcast: AUTHORIZATION_FAILED unless allow_client_broadcast")
def test_system_broadcast_needs_allow(ctx):
    srv = main_srv(ctx)
    a = connect(ctx, srv)
    eq(a.err("system", "broadcast", {"data": 1})["code"], "AUTHORIZATION_FAILED", "disabled")
    srv2 = server(ctx, "cbcast", allow_client_broadcast="true")
    x, y, z = connect(ctx, srv2, 3)
    eq(x.ok("system", "broadcast", {"data": "all"}), {"delivered": 2}, "enabled")
    for w in (y, z):
        ev = w.wait_event("system", "broadcast")
        eq(ev["data"], {"from": x.id, "user": None, "data": "all"}, "broadcast event")
    x.sync()
    eq(x.take("system", "broadcast"), [], "sender excluded")


# --------------------------------------------------------------------------
# presence
# --------------------------------------------------------------------------

@S.case("presence: joined/left events, list in the join reply, left on disconnect")
def test_presence_events(ctx):
    srv = main_srv(ctx)
    a, b, c = connect(ctx, srv, 3)
    room = uniq("p-")
    a.ok("t", "login", {"user": "ann", "name": "Ann"})
    r = a.ok("system", "join", {"room": room})
    eq(r["presence"], [{"client_id": a.id, "user": "ann", "meta": {"name": "Ann"}}], "list of one")
    r = b.ok("system", "join", {"room": room})
    eq(sorted(p["client_id"] for p in r["presence"]), sorted([a.id, b.id]), "list of two")
    ev = a.wait_event("presence", "joined")
    eq({k: ev.get(k) for k in ("type", "action", "room")},
       {"type": "presence", "action": "joined", "room": room}, "joined envelope")
    eq(ev["data"], {"client_id": b.id, "user": None, "meta": {}}, "joined data")
    check(isinstance(ev.get("ts"), (int, float)), "ts")
    c.ok("system", "join", {"room": room})
    b.sync()
    eq(b.take("presence", "joined")[0]["data"]["client_id"], c.id, "b saw c")
    eq(b.take("presence"), [], "b did not see its own join")
    b.ok("system", "leave", {"room": room})
    ev = a.wait_event("presence", "left")
    eq(ev["data"]["client_id"], b.id, "left on leave")
    c.raw.sock.close()  # abrupt disconnect
    ev = a.wait_event("presence", "left")
    eq((ev["room"], ev["data"]["client_id"]), (room, c.id), "left on disconnect")
    eq(a.ok("t", "room", {"room": room})["count"], 1, "count after disconnect")


@S.case("presence off by default; set_presence(true) from Lua turns it on")
def test_presence_off_by_default(ctx):
    srv = main_srv(ctx)
    a, b = connect(ctx, srv, 2)
    room = uniq("quiet-")
    a.ok("system", "join", {"room": room})
    r = b.ok("system", "join", {"room": room})
    check("presence" not in r, "no presence list without presence: %r" % r)
    a.sync()
    eq(a.take("presence"), [], "no presence events")
    room2 = uniq("loud-")
    a.ok("t", "presence_on", {"room": room2})
    a.ok("system", "join", {"room": room2})
    b.ok("system", "join", {"room": room2})
    eq(a.wait_event("presence", "joined")["data"]["client_id"], b.id, "presence after set_presence")


@S.case("examples/chat: typing indicator throttled to one per second per client")
def test_chat_typing_throttled(ctx):
    srv = server(ctx, "chat", ctx.example("chat"))
    a, b = connect(ctx, srv, 2)
    a.ok("chat", "join", {"room": "general", "name": "Ann"})
    b.ok("chat", "join", {"room": "general", "name": "Bob"})
    t0 = time.monotonic()
    sent = [a.ok("chat", "typing", {"room": "general"})["sent"] for _ in range(5)]
    eq(sent[0], True, "first typing event sent")
    if time.monotonic() - t0 < 0.9:
        eq(sent[1:], [False] * 4, "throttled within the second")
    b.sync()
    got = b.take("chat", "typing")
    eq(len(got), sent.count(True), "typing events received")
    eq(got[0], {"type": "chat", "action": "typing", "room": "general",
                "data": {"client_id": a.id, "user": None}}, "typing event")
    time.sleep(1.05)
    eq(a.ok("chat", "typing", {"room": "general"})["sent"], True, "allowed a second later")
    b.sync()
    eq(len(b.take("chat", "typing")), 1, "second typing event")
    a.sync()
    eq(a.take("chat", "typing"), [], "sender gets none")
    eq(b.ok("chat", "say", {"room": "general", "text": "hi"})["delivered"], 1, "say")
    eq(a.wait_event("chat", "message")["data"]["text"], "hi", "chat message")
    joined = [e for e in a.take("presence", "joined")]
    eq(joined[0]["data"]["meta"], {"name": "Bob"}, "chat presence meta")


# --------------------------------------------------------------------------
# duplicate suppression, ping, rooms, mounting
# --------------------------------------------------------------------------

@S.case("duplicate suppression: same event_id once to an opted-in client, twice otherwise")
def test_dedupe_event_id(ctx):
    srv = main_srv(ctx)
    a, b, pub = connect(ctx, srv, 3)
    room = uniq("dd-")
    for w in (a, b, pub):
        w.ok("system", "join", {"room": room})
    a.ok("t", "dedupe", {"on": True})
    eid = uniq("evt-")
    for _ in range(2):
        pub.ok("t", "room_say", {"room": room, "payload": "x", "event_id": eid, "exclude_self": True})
        pub.ok("system", "publish", {"room": room, "data": "y", "event_id": eid + "p"})
        pub.ok("t", "all_say", {"payload": "z", "event_id": eid + "a"})
    a.sync()
    b.sync()
    eq(len(a.take("t", "said")), 1, "opted-in: room broadcast once")
    eq(len(a.take("system", "message")), 1, "opted-in: publish once")
    eq(len(a.take("t", "all")), 1, "opted-in: broadcast_all once")
    eq(len(b.take("t", "said")), 2, "not opted in: twice")
    eq(len(b.take("system", "message")), 2, "not opted in: publish twice")
    eq(len(b.take("t", "all")), 2, "not opted in: broadcast_all twice")
    pub.ok("t", "room_say", {"room": room, "payload": "new", "event_id": eid + "-2"})
    a.sync()
    eq(len(a.take("t", "said")), 1, "a new event id is delivered")


@S.case("dedupe = true in the config applies at connect")
def test_dedupe_config_at_connect(ctx):
    srv = server(ctx, "dedupe", dedupe="true")
    a, pub = connect(ctx, srv, 2)
    a.ok("system", "join", {"room": "r"})
    for _ in range(3):
        pub.ok("t", "room_say", {"room": "r", "payload": 1, "event_id": "same"})
    a.sync()
    eq(len(a.take("t", "said")), 1, "delivered once")


@S.case("ping -> pong with a timestamp, with and without an id")
def test_system_ping_pong_ts(ctx):
    srv = main_srv(ctx)
    a = connect(ctx, srv)
    before = time.time() * 1000 - 5000
    r = a.req("system", "ping", id_="p1")
    eq((r["type"], r["action"], r["id"]), ("system", "pong", "p1"), "reply envelope")
    check(r["data"]["ts"] > before, "ts: %r" % r)
    a.send({"type": "system", "action": "ping"})
    ev = a.wait_event("system", "pong")
    check("id" not in ev and ev["data"]["ts"] > before, "pong event: %r" % ev)


@S.case("system controller: off with system_controller = false, replaced by the app's own")
def test_system_controller_off_or_replaced(ctx):
    srv = server(ctx, "nosys", system_controller="false")
    a = connect(ctx, srv)
    eq(a.err("system", "join", {"room": "r"})["code"], "NOT_FOUND", "disabled")
    eq(a.ok("t", "whoami")["rooms"], 0, "app routes still work")
    srv2 = server(ctx, "override", ctx.fixture("rooms/override"))
    b = connect(ctx, srv2)
    eq(b.ok("system", "join", {"room": "r"}), {"mine": True, "room": "r"}, "app's join")
    eq(b.err("system", "ping")["code"], "NOT_FOUND", "no built-in ping")


# --------------------------------------------------------------------------
# disconnects, churn and slow consumers
# --------------------------------------------------------------------------

@S.case("automatic leave on disconnect: counts drop, /health rooms follows")
def test_leave_on_disconnect(ctx):
    srv = server(ctx, "health")
    base = health_rooms(srv)
    a, b = connect(ctx, srv, 2)
    a.ok("system", "join", {"room": "h1"})
    a.ok("system", "join", {"room": "h2"})
    b.ok("system", "join", {"room": "h1"})
    eq(health_rooms(srv), base + 2, "/health rooms")
    a.raw.sock.close()
    H.poll(lambda: b.ok("t", "room", {"room": "h1"})["count"] == 1, what="count of h1 back to 1")
    eq(b.ok("t", "room", {"room": "h2"})["count"], 0, "h2 empty")
    H.poll(lambda: health_rooms(srv) == base + 1, what="/health rooms = base + 1")
    b.close()
    H.poll(lambda: health_rooms(srv) == base, what="/health rooms back to base")


@S.case("a client disconnecting mid-broadcast: the others get everything")
def test_disconnect_mid_broadcast(ctx):
    srv = main_srv(ctx)
    room = uniq("mid-")
    pub = connect(ctx, srv)
    stay = connect(ctx, srv, 3)
    leavers = connect(ctx, srv, 3)
    for w in [pub] + stay + leavers:
        w.ok("system", "join", {"room": room})
    N = 300
    for i in range(N):
        pub.send({"type": "system", "action": "publish", "id": "m%d" % i,
                  "data": {"room": room, "data": i}})
        if i == N // 3:
            leavers[0].raw.sock.close()
        if i == N // 2:
            leavers[1].raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           b"\x01\x00\x00\x00\x00\x00\x00\x00")
            leavers[1].raw.sock.close()  # RST
        if i == 2 * N // 3:
            leavers[2].raw.send_close(1000)
            leavers[2].raw.sock.shutdown(socket.SHUT_WR)
    replies = 0
    while replies < N:
        m = pub.recv()
        if str(m.get("id", "")).startswith("m"):
            check(m.get("type") != "error", "publish failed: %r" % m)
            replies += 1
    for w in stay:
        got = []
        while len(got) < N:
            m = w.recv()
            if m.get("action") == "message":
                got.append(m["data"]["data"])
        eq(got, list(range(N)), "every message, in order")
    H.poll(lambda: pub.ok("t", "room", {"room": room})["count"] == 4, what="leavers gone")


@S.case("10,000 joins and leaves while broadcasting: rooms and RSS back to baseline",
        timeout=240)
def test_join_leave_churn_back_to_baseline(ctx):
    srv = server(ctx, "churn")
    pid = srv.proc.pid
    listeners = connect(ctx, srv, 3)
    pub = connect(ctx, srv)
    for w in listeners + [pub]:
        w.ok("system", "join", {"room": "main"})
    churners = connect(ctx, srv, 10)

    def churn(rounds, tag):
        # every churner joins and leaves `rounds` fresh rooms, pipelined
        for w in churners:
            for k in range(rounds):
                r = "%s-%d-%d" % (tag, w.id, k)
                w.send({"type": "system", "action": "join", "data": {"room": r}})
                w.send({"type": "system", "action": "join", "data": {"room": "main"}, "id": "j"})
                w.send({"type": "system", "action": "leave", "data": {"room": r}})
                w.send({"type": "system", "action": "leave", "data": {"room": "main"}, "id": "l"})
        sent = 0
        for k in range(rounds):
            pub.send({"type": "system", "action": "publish", "id": "c%d" % k,
                      "data": {"room": "main", "data": k}})
            sent += 1
        return sent

    def drain(rounds, sent):
        for w in churners:
            acks = 0
            while acks < 2 * rounds:
                m = w.recv()
                check(m.get("type") != "error", "churn error: %r" % m)
                if m.get("id") in ("j", "l"):
                    acks += 1
        n = 0
        while n < sent:
            m = pub.recv()
            if str(m.get("id", "")).startswith("c"):
                n += 1
        for w in listeners:
            got = 0
            while got < sent:
                m = w.recv()
                if m.get("action") == "message":
                    got += 1

    # warm up (allocator pools, Lua heap), then take the baseline
    drain(100, churn(100, "warm"))
    base_rooms = health_rooms(srv)
    time.sleep(0.2)
    base_rss = vmrss_kb(pid)
    total = 0
    for batch in range(5):
        drain(100, churn(100, "b%d" % batch))   # 10 churners x 100 x 2 rooms = 2,000 joins
        total += 10 * 100 * 2
    check(total >= 10000, "joins made: %d" % total)
    eq(health_rooms(srv), base_rooms, "/health rooms back to baseline")
    eq(pub.ok("t", "room", {"room": "main"})["count"], 4, "main room members")
    rss = vmrss_kb(pid)
    print("     churn: %d joins, rss %d kB -> %d kB, rooms %d" % (total, base_rss, rss, base_rooms))
    if not ctx.sanitized():  # ASan quarantines freed memory; LSan checks leaks there
        check(rss - base_rss < 16 * 1024, "RSS grew by %d kB after churn" % (rss - base_rss))


def slow_case(ctx, policy):
    srv = server(ctx, "slow-" + policy, max_buffered_bytes=65536, slow_consumer_policy=policy)
    room = "slow"
    slow = WS(ctx, srv, rcvbuf=4096)
    slow.ok("system", "join", {"room": room})
    fast = connect(ctx, srv, 3)
    pub = connect(ctx, srv)
    for w in fast + [pub]:
        w.ok("system", "join", {"room": room})
    payload = "x" * 16000
    N = 600       # ~9.6 MB: more than the kernel buffers hold
    dropped_seen = 0
    for i in range(N):
        r = pub.ok("system", "publish", {"room": room, "data": {"i": i, "p": payload}})
        # the fast subscribers read each message as it comes
        for w in fast:
            m = w.wait_event("system", "message")
            w.take("system", "message")
            eq(m["data"]["data"]["i"], i, "fast subscriber message order")
        if r["delivered"] < 4:
            dropped_seen += 1
    check(dropped_seen > 0, "no publish reported fewer deliveries (slow consumer never hit)")
    return srv, slow, pub, fast


@S.case("slow consumer, policy drop: others get everything, dropped counters > 0", timeout=120)
def test_slow_consumer_drop(ctx):
    srv, slow, pub, fast = slow_case(ctx, "drop")
    st = pub.ok("t", "stats", {"id": slow.id})
    check(st["dropped"] > 0, "client_stats dropped: %r" % st)
    check(srv.health()["dropped"] > 0, "/health dropped: %r" % srv.health())
    eq(pub.ok("t", "stats", {"id": fast[0].id})["dropped"], 0, "fast subscriber dropped nothing")
    # the slow client is still connected: it reads what was queued for it
    # (direct replies are never dropped), and it missed the dropped ones
    eq(slow.ok("t", "whoami")["id"], slow.id, "slow client still served")
    got = [m["data"]["data"]["i"] for m in slow.take("system", "message")]
    check(0 < len(got) < 600, "slow consumer got %d of 600 messages despite drops" % len(got))
    eq(got, sorted(got), "what it got is in order")


@S.case("slow consumer, policy close: closed with 1013, others get everything", timeout=120)
def test_slow_consumer_close_1013(ctx):
    srv, slow, pub, fast = slow_case(ctx, "close")
    deadline = time.monotonic() + 10
    code = None
    while time.monotonic() < deadline:
        try:
            f = slow.raw.recv_frame()
        except H.Closed:
            break
        if f.opcode == H.OP_CLOSE:
            code = f.close_code()
            break
    eq(code, 1013, "close code of the slow consumer")
    check(srv.health()["dropped"] > 0, "/health dropped")


@S.case("broadcast of text that is not UTF-8 is refused, not sent")
def test_broadcast_invalid_utf8_refused(ctx):
    srv = main_srv(ctx)
    a, b = connect(ctx, srv, 2)
    room = uniq("utf-")
    a.ok("system", "join", {"room": room})
    b.ok("system", "join", {"room": room})
    r = a.ok("t", "bad_text", {"room": room})
    eq(r, {"delivered": False, "err": "invalid utf-8"}, "broadcast result")
    b.sync()
    eq(b.take(), [], "nothing sent to b")


if __name__ == "__main__":
    sys.exit(S.main())
