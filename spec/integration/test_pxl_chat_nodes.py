#!/usr/bin/python3
"""examples/pxl-chat as two nodes sharing one redis-server (README.md,
"Across nodes"; docs/scaling.md): PXL clients (python3-websockets) on
node A and node B.

chat.send on A reaches a client on B exactly once (the marker sent next is
the next message); chat.typing reaches B's client, not the sender; room
members on both nodes hear memberJoined/memberLeft once, with the count of
both nodes; PXL's automatic events (client connected, joined, left,
disconnected) and a backend's job.completed emitted on B reach the
dashboards of both nodes exactly once; a client of B is disconnected
through node A's API.

Nothing is timed: a "settle" emits a marker job on each node and reads each
dashboard until both markers came (messages from one node arrive in the
order it sent them), so everything sent before is in by then.
"""

import asyncio
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402
from test_cluster import Redis  # noqa: E402
from test_pxl_chat import (KEY, SECRET, b64url, call, emit, hs256, join, open_ws,  # noqa: E402
                           recv)

S = H.Suite("moonwire examples/pxl-chat on two nodes through Redis")
API = [("Authorization", "apikey " + KEY)]


def api(srv, method, path, body=None):
    status, _, data = H.http_request(srv.connect_host, srv.port, method, path, headers=API,
                                     body=json.dumps(body).encode() if body else None)
    return status, json.loads(data.decode() or "null")


def numsub(redis, channel, n):
    return lambda: redis.cli("PUBSUB", "NUMSUB", channel).split() == [channel, str(n)]


def start_node(ctx, redis, name):
    """A node of one process (workers = 1 whatever MW_TEST_WORKERS says):
    with cluster = true each worker is a Redis node of its own
    (docs/scaling.md, "Workers"), and the cases count each node's Redis
    subscriptions; pxl-chat with workers is test_pxl_chat_workers.py."""
    env = {"JWT_SECRET_KEY": b64url(SECRET.encode("utf-8")), "MOONWIRE_API_KEY": KEY,
           "MOONWIRE_CLUSTER": "true", "MOONWIRE_REDIS_URL": "redis://127.0.0.1:%d/0" % redis.port,
           "MOONWIRE_NODE_ID": name, "MOONWIRE_PRESENCE_TTL": "3000", "MOONWIRE_WORKERS": "1"}
    srv = ctx.start(name, ctx.example("pxl-chat"), env=env)
    H.poll(lambda: srv.health().get("cluster", {}).get("up") is True, timeout=10,
           what="node %s in the cluster" % name)
    return srv


class Dash:
    """A dashboard client: in the queue room and the activity room; keeps
    everything it read."""

    def __init__(self, ws, name):
        self.ws, self.name, self.msgs = ws, name, []

    async def until(self, pred):
        while True:
            m = await recv(self.ws)
            self.msgs.append(m)
            if pred(m):
                return m

    def count(self, pred):
        return sum(1 for m in self.msgs if pred(m))


def done(job_id):
    return lambda m: m.get("type") == "queue" and m.get("action") == "done" \
        and m.get("data", {}).get("jobId") == job_id


async def settle(nodes, dashes, tag):
    loop = asyncio.get_running_loop()
    for srv in nodes:
        status, _ = await loop.run_in_executor(None, emit, srv, "job.completed",
                                               {"jobId": tag + srv.node_name})
        eq(status, 200, "marker emit on %s" % srv.node_name)
    for d in dashes:
        for srv in nodes:
            if not d.count(done(tag + srv.node_name)):
                await d.until(done(tag + srv.node_name))


def activity(action, user, room=None):
    return lambda m: m.get("type") == "activity" and m.get("action") == action \
        and m["data"].get("user") == user and m["data"].get("room") == room


def chat(text):
    return lambda m: m.get("type") == "chat" and m.get("action") == "message" \
        and m["data"].get("message") == text


@S.acase("two nodes, one Redis: chat, typing, rooms, PXL's automatic events, jobs, disconnect",
         timeout=120)
async def test_two_nodes(ctx):
    redis = Redis(ctx)
    redis.start()
    loop = asyncio.get_running_loop()
    socks = []
    try:
        a, b = start_node(ctx, redis, "pa"), start_node(ctx, redis, "pb")
        a.node_name, b.node_name = "pa", "pb"
        nodes = (a, b)
        for ch in ("mw:bus", "mw:all"):
            H.poll(numsub(redis, ch, 2), what="%s on both nodes" % ch)

        async def connect(srv, user):
            ws = await open_ws(srv, "?token=" + hs256({"sub": str(user)}))
            socks.append(ws)
            eq((await recv(ws))["action"], "authenticated", "auth of user %d" % user)
            return ws

        dashes = []
        for srv, user in ((a, 100), (b, 200)):
            d = Dash(await connect(srv, user), srv.node_name)
            await join(d.ws, "queue:dashboard", "ops")
            await join(d.ws, "clients:activity", "ops")
            dashes.append(d)
        da, db = dashes
        await settle(nodes, dashes, "setup-")

        # chat.send on A reaches B's client once; typing is not sent back
        x, y = await connect(a, 1), await connect(b, 2)
        r, _ = await call(x, "chat", "send", {"username": "alice", "text": "hello-1"})
        eq(r["success"], True, "chat.send")
        eq((await recv(y))["data"]["message"], "hello-1", "B's client got A's message")
        r, before_t = await call(x, "chat", "typing", {"username": "alice"})
        eq(r, {"success": True}, "typing answer")
        eq(await recv(y), {"type": "chat", "action": "userTyping",
                           "data": {"username": "alice"}}, "B's client sees alice typing")
        r, before = await call(x, "chat", "send", {"username": "alice", "text": "marker-1"})
        eq([(m["action"], m["data"].get("message")) for m in before_t + before],
           [("message", "hello-1")], "sender: its own message, not its typing")
        eq((await recv(y))["data"]["message"], "marker-1", "nothing twice on B")

        # a room split over the nodes: members hear of each other once
        await join(x, "chat:general", "alice")
        H.poll(numsub(redis, "mw:room:chat:general", 1), what="A's room channel")
        H.poll(lambda: api(a, "GET", "/api/presence?room=chat:general")[1]["count"] == 1,
               what="alice in the room's presence")
        await join(y, "chat:general", "bob")
        H.poll(numsub(redis, "mw:room:chat:general", 2), what="both room channels")
        joined = await recv(x)
        eq(joined, {"type": "room", "action": "memberJoined",
                    "data": {"roomName": "chat:general", "username": "bob", "count": 2}},
           "alice hears bob joined on B")
        z = await connect(a, 3)
        await join(z, "chat:general", "carol")
        eq((await recv(y))["data"], {"roomName": "chat:general", "username": "carol",
                                     "count": 3}, "bob hears carol joined on A")
        eq((await recv(x))["data"]["username"], "carol", "alice hears carol")
        status, doc = await loop.run_in_executor(None, api, a, "POST", "/api/publish",
                                                 {"room": "chat:general", "type": "room",
                                                  "action": "note", "data": {"n": 1}})
        eq(status, 200, "publish on A: %r" % (doc,))
        eq(await recv(y), {"type": "room", "action": "note", "data": {"n": 1}},
           "bob: next is A's publish (carol's join once)")
        eq((await recv(x))["action"], "note", "alice: A's publish")
        await call(z, "system", "leaveRoom", {"roomName": "chat:general"})
        eq((await recv(y))["data"], {"roomName": "chat:general", "username": "carol",
                                     "count": 2}, "bob hears carol left")
        eq(((await recv(x))["action"]), "memberLeft", "alice hears carol left")
        await z.close()
        await da.until(activity("clientDisconnected", 3))

        # a backend's job on B reaches both nodes' dashboards
        status, doc = await loop.run_in_executor(None, emit, b, "job.completed",
                                                 {"jobId": "j-b", "queue": "reports"})
        eq(status, 200, "emit on B")

        # B's client disconnected through A's API (its id from presence)
        _, doc = await loop.run_in_executor(None, api, a, "GET",
                                            "/api/presence?room=chat:general")
        entry = [e for e in doc["presence"] if e["node"] == "pb"]
        eq(len(entry), 1, "bob in presence on B: %r" % doc)
        status, _ = await loop.run_in_executor(None, api, a, "POST", "/api/disconnect",
                                               {"client": entry[0]["client_id"], "node": "pb",
                                                "code": 4000, "reason": "bye"})
        eq(status, 200, "disconnect through A")
        await asyncio.wait_for(y.wait_closed(), 10)
        eq((y.close_code, y.close_reason), (4000, "bye"), "bob's close")
        eq(await recv(x), {"type": "room", "action": "memberLeft",
                           "data": {"roomName": "chat:general", "username": "bob", "count": 1}},
           "alice hears bob left")
        await db.until(activity("clientDisconnected", 2))
        await settle(nodes, dashes, "end-")

        for d in dashes:
            for what, pred in (
                    ("hello-1", chat("hello-1")), ("marker-1", chat("marker-1")),
                    ("job j-b", done("j-b")),
                    ("carol connected", activity("clientConnected", 3)),
                    ("carol joined", activity("clientJoinedRoom", 3, "chat:general")),
                    ("carol left", activity("clientLeftRoom", 3, "chat:general")),
                    ("carol disconnected", activity("clientDisconnected", 3)),
                    ("bob connected", activity("clientConnected", 2)),
                    ("bob joined", activity("clientJoinedRoom", 2, "chat:general")),
                    ("bob left", activity("clientLeftRoom", 2, "chat:general")),
                    ("bob disconnected", activity("clientDisconnected", 2)),
                    ("alice connected", activity("clientConnected", 1))):
                eq(d.count(pred), 1, "dashboard on %s: %s" % (d.name, what))
            nodes_of = {m["data"].get("node") for m in d.msgs if m.get("type") == "activity"}
            check(nodes_of == {"pa", "pb"}, "events from both nodes: %r" % nodes_of)
        # exactly once after the last settle too: nothing more came
        await settle(nodes, dashes, "after-")
        for d in dashes:
            eq(d.count(done("j-b")), 1, "dashboard on %s: job once" % d.name)
            eq(d.count(activity("clientDisconnected", 2)), 1, "bob's disconnect once")
    finally:
        for ws in socks:
            await ws.close()
        redis.kill()


if __name__ == "__main__":
    H.main(S)
