#!/usr/bin/python3
"""Nodes through Redis (docs/scaling.md): separate moonwire processes on
free ports share one redis-server the test starts.

Three nodes: a room split over them gets a publish from one node exactly
once per member (a marker published next must be the next message: no
duplicate); send_user, /api/send to a client of another node, /api/publish
on a node without members, /api/disconnect of a remote client; presence
joined/left seen on the other nodes and /api/presence summed over nodes; a
bus event emitted on A runs the subscribers of every node, whose
ctx.server room broadcast reaches each member once.

Two nodes and an outage: Redis killed during traffic (local delivery never
stops, the failures are counted in /health and /metrics, one log line per
outage), restarted (cross-node delivery resumes, presence republished);
SIGKILL one node: its presence entries are gone within presence_ttl and
the other keeps serving.
"""

import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

S = H.Suite("moonwire cluster")

API = [("Authorization", "apikey it-api-key")]
TTL = 3000  # presence_ttl of the test's nodes (ms)


Redis = H.RedisServer


def node(ctx, redis, name, workers=1):
    """A node of one process (workers = 1 whatever MW_TEST_WORKERS says):
    with cluster = true each worker is a Redis node of its own
    (docs/scaling.md, "Workers"), and these cases count a node's Redis
    subscriptions and name its clients' `node`, one process per node."""
    env = {"MOONWIRE_REDIS_URL": "redis://127.0.0.1:%d/0" % redis.port,
           "MOONWIRE_NODE_ID": name, "MOONWIRE_PRESENCE_TTL": str(TTL),
           "MOONWIRE_WORKERS": str(workers)}
    srv = ctx.start(name, ctx.fixture("cluster"), env=env)
    if workers == 1:
        H.poll(lambda: srv.health().get("cluster", {}).get("up") is True, timeout=10,
               what="node %s in the cluster" % name)
    return srv


def api(srv, method, path, body=None):
    status, _, data = H.http_request(srv.connect_host, srv.port, method, path, headers=API,
                                     body=body)
    return status, json.loads(data.decode() or "null")


def client(ctx, srv):
    c = ctx.track(H.JsonClient(srv, welcome=True))
    c.id = c.welcome["data"]["client_id"]
    return c


def join(c, room):
    r = c.request("t", "join", {"room": room})
    check("data" in r, "join %s: %r" % (room, r))
    return r["data"]["count"]


def recv_type(c, type_):
    """The next message of type type_ (presence events of other joins are
    skipped)."""
    while True:
        m = c.recv()
        if m.get("type") == type_:
            return m


def subscribed(redis, channel, n=1):
    return lambda: redis.cli("PUBSUB", "NUMSUB", channel).split() == [channel, str(n)]


def scrape(srv):
    status, _, body = H.http_request(srv.connect_host, srv.port, "GET", "/metrics",
                                     headers=API)
    eq(status, 200, "/metrics status")
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


@S.case("three nodes: rooms, users, clients, presence, API and bus events across nodes",
        timeout=120)
def test_three_nodes(ctx):
    redis = Redis(ctx)
    redis.start()
    try:
        a, b, c = node(ctx, redis, "na"), node(ctx, redis, "nb"), node(ctx, redis, "nc")
        # a room split over the three nodes: 2 members on A, 1 on B, 1 on C
        a1, a2, b1, c1 = client(ctx, a), client(ctx, a), client(ctx, b), client(ctx, c)
        for m in (a1, a2, b1, c1):
            join(m, "room1")
        H.poll(subscribed(redis, "mw:room:room1", 3), what="room channel on three nodes")
        # a node with no member takes no room channel
        eq(redis.cli("PUBSUB", "NUMSUB", "mw:room:nobody").split(), ["mw:room:nobody", "0"],
           "no channel without members")

        sender = client(ctx, a)  # not a member: its replies are all it gets
        eq(sender.request("t", "pub", {"room": "room1", "text": "hello"})["data"],
           {"delivered": 2}, "delivered counts this node's members")
        sender.request("t", "pub", {"room": "room1", "text": "end"})
        for m in (a1, a2, b1, c1):
            eq(recv_type(m, "chat")["data"], "hello", "publish from A")
            eq(recv_type(m, "chat")["data"], "end", "next is the marker: no duplicate")

        # /api/publish on a node without members of the room
        st, r = api(c, "POST", "/api/publish", {"room": "room1", "data": "api"})
        eq(st, 200, "/api/publish status")
        for m in (a1, a2, b1):
            eq(recv_type(m, "system")["data"]["data"], "api", "/api/publish from C")

        # send_user: alice has connections on A and B
        a2.request("t", "login", {"user": "alice"})
        b1.request("t", "login", {"user": "alice"})
        H.poll(subscribed(redis, "mw:user:alice", 2), what="user channel on two nodes")
        st, r = api(c, "POST", "/api/send", {"user": "alice", "data": "hi alice"})
        eq((st, r), (200, {"delivered": 0}), "send_user on C (no local connection)")
        for m in (a2, b1):
            eq(recv_type(m, "system")["data"]["data"], "hi alice", "send_user across nodes")

        # a client of another node: its id and node
        st, r = api(a, "POST", "/api/send", {"client": b1.id, "node": "nb", "data": "to b1"})
        eq(st, 200, "/api/send to a remote client")
        eq(recv_type(b1, "system")["data"]["data"], "to b1", "send to a client on B from A")

        # presence: a join on C seen on A and B; counts summed over nodes
        p1, p2 = client(ctx, a), client(ctx, b)
        join(p1, "lobby")
        join(p2, "lobby")
        ev = recv_type(p1, "presence")
        eq((ev["action"], ev["data"]["client_id"], ev["data"]["node"]),
           ("joined", p2.id, "nb"), "joined on B seen on A")
        st, r = api(c, "GET", "/api/presence?room=lobby")
        eq((st, r["count"]), (200, 2), "presence summed over nodes, read on C")
        eq(sorted(e["node"] for e in r["presence"]), ["na", "nb"], "entries carry their node")
        p2.request("t", "leave", {"room": "lobby"})
        ev = recv_type(p1, "presence")
        eq((ev["action"], ev["data"]["node"]), ("left", "nb"), "left on B seen on A")
        eq(api(a, "GET", "/api/presence?room=lobby")[1]["count"], 1, "count after the leave")

        # a bus event emitted on A: every node's subscriber broadcasts to
        # its own members; each member gets it once
        eq(sender.request("t", "emit", {"room": "room1", "text": "bus1"})["data"],
           {"subscribers": 1}, "one local subscriber")
        sender.request("t", "emit", {"room": "room1", "text": "bus1-end"})
        for m in (a1, a2, b1, c1):
            eq(recv_type(m, "bus")["data"], "bus1", "bus event's broadcast")
            eq(recv_type(m, "bus")["data"], "bus1-end", "no second copy of the bus broadcast")
        st, r = api(b, "POST", "/api/emit", {"channel": "relay",
                                             "message": {"room": "room1", "text": "bus2"}})
        eq(st, 200, "/api/emit on B")
        for m in (a1, a2, b1, c1):
            eq(recv_type(m, "bus")["data"], "bus2", "/api/emit on B reaches every node")

        # disconnect of a remote client
        st, r = api(a, "POST", "/api/disconnect", {"client": c1.id, "node": "nc",
                                                   "code": 4000, "reason": "bye"})
        eq(st, 200, "/api/disconnect status")
        while True:  # frames up to the close frame
            f = c1.raw.recv_frame()
            if f.opcode == H.OP_CLOSE:
                break
        eq((f.close_code(), f.payload[2:]), (4000, b"bye"),
           "the remote client is closed with code and reason")

        h = a.health()["cluster"]
        eq((h["node"], h["up"], h["publish_failed"]), ("na", True, 0), "A's /health cluster")
        check(h["published"] > 0 and h["received"] > 0, "A published and received: %r" % h)
    finally:
        redis.kill()


@S.case("a node with workers = 2: each worker is a node of its own, named node_id-w<N>")
def test_node_workers(ctx):
    redis = Redis(ctx)
    redis.start()
    try:
        node(ctx, redis, "nw", workers=2)
        # two workers sharing "nw" would each skip the other's messages as
        # their own: each subscribes to a node channel of its own
        for w in (1, 2):
            H.poll(subscribed(redis, "mw:node:nw-w%d" % w),
                   what="worker %d's node channel" % w)
        eq(redis.cli("PUBSUB", "NUMSUB", "mw:node:nw").split(), ["mw:node:nw", "0"],
           "the shared name unused")
    finally:
        redis.kill()


@S.case("two nodes: Redis killed during traffic and back; one node SIGKILLed", timeout=150)
def test_outage(ctx):
    redis = Redis(ctx)
    redis.start()
    try:
        a, b = node(ctx, redis, "oa"), node(ctx, redis, "ob")
        a1, a2, b1 = client(ctx, a), client(ctx, a), client(ctx, b)
        for m in (a1, a2, b1):
            join(m, "lobby")
        H.poll(subscribed(redis, "mw:room:lobby", 2), what="room channel on both nodes")
        while recv_type(a2, "presence")["data"]["client_id"] != b1.id:
            pass

        redis.kill()
        # local delivery never stops: A's members get A's messages
        for i in range(20):
            a1.request("t", "pub", {"room": "lobby", "text": "down%d" % i})
            eq(recv_type(a2, "chat")["data"], "down%d" % i, "local delivery while Redis is down")
        h = a.health()["cluster"]
        eq(h["up"], False, "/health says down")
        check(h["publish_failed"] >= 20, "failures counted: %r" % h)
        check(scrape(a).get("moonwire_cluster_publish_failed_total", 0) >= 20,
              "moonwire_cluster_publish_failed_total")
        eq(a.log().count("cluster: Redis unreachable"), 1, "one log line per outage")

        redis.start()
        H.poll(lambda: a.health()["cluster"]["up"] and b.health()["cluster"]["up"],
               timeout=20, what="both nodes see Redis again")
        H.poll(subscribed(redis, "mw:room:lobby", 2), timeout=20, what="resubscribed")
        # presence republished into the empty Redis
        H.poll(lambda: api(a, "GET", "/api/presence?room=lobby")[1].get("count") == 3,
               timeout=20, what="presence converges to 3")
        a1.request("t", "pub", {"room": "lobby", "text": "back"})
        eq(recv_type(b1, "chat")["data"], "back", "cross-node delivery resumes")
        eq(recv_type(a2, "chat")["data"], "back", "and locally")
        check(a.wait_log("Redis is back", timeout=5), "the return is logged")
        eq(a.health()["cluster"]["outages"], 1, "one outage counted")

        # SIGKILL B: its entries are gone within presence_ttl; A serves on
        b.send_signal(signal.SIGKILL)
        b.wait_exit(10)
        t0 = time.monotonic()
        H.poll(lambda: api(a, "GET", "/api/presence?room=lobby")[1].get("count") == 2,
               timeout=TTL / 1000 * 3, what="B's presence entries expire")
        check(time.monotonic() - t0 <= TTL / 1000 + 2, "expired within presence_ttl")
        a1.request("t", "pub", {"room": "lobby", "text": "still"})
        eq(recv_type(a2, "chat")["data"], "still", "A keeps serving")
    finally:
        redis.kill()


if __name__ == "__main__":
    H.main(S)
