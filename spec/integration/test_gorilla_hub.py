#!/usr/bin/python3
"""examples/gorilla-hub against the real binary, with a real client
(python3-websockets): the protocol of guide 004 (the gorilla/websocket hub
microservice), spoken as a client written against the guide speaks it.

Two servers: "hub" with the guide's defaults (no limits), and "limited",
configured through the guide's own environment variables
(WEBSOCKET_LIMITS_MAX_CONNECTIONS=3, WEBSOCKET_LIMITS_MAX_CONNECTIONS_PER_ROOM=2,
WEBSOCKET_MAX_MESSAGE_SIZE=1024), for the limits.
"""

import asyncio
import json
import os
import re
import sys
import time

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

S = H.Suite("moonwire examples/gorilla-hub (guide 004, python websockets client)")
RECV_TIMEOUT = 5.0
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
LIMITS = {"WEBSOCKET_LIMITS_MAX_CONNECTIONS": "3",
          "WEBSOCKET_LIMITS_MAX_CONNECTIONS_PER_ROOM": "2",
          "WEBSOCKET_MAX_MESSAGE_SIZE": "1024"}


@S.setup
def start_servers(ctx):
    app = ctx.example("gorilla-hub")
    ctx.start("hub", app)
    ctx.start("limited", app, env=LIMITS)
    # One worker even under MW_TEST_WORKERS: the quick start checks the
    # client_count a subscribe answers at once, and with workers a member
    # that joined on the other worker is counted when that worker's record
    # arrives (docs/scaling.md, "Workers"), which the reply does not wait for.
    ctx.start("one", app, env={"MOONWIRE_WORKERS": "1"})


def hub(ctx):
    return ctx.servers["hub"]


def limited(ctx):
    return ctx.servers["limited"]


def check_timestamp(msg):
    ts = msg.get("timestamp")
    check(isinstance(ts, int) and not isinstance(ts, bool),
          "timestamp is not an integer: %r" % msg)
    # milliseconds since the epoch (not seconds, not nanoseconds)
    check(1_600_000_000_000 < ts < 10_000_000_000_000, "timestamp not in milliseconds: %r" % msg)


async def recv_raw(ws, timeout=RECV_TIMEOUT):
    raw = await asyncio.wait_for(ws.recv(), timeout)
    check(isinstance(raw, str), "server sent a binary frame: %r" % raw[:60])
    return raw


async def recv_json(ws, timeout=RECV_TIMEOUT):
    raw = await recv_raw(ws, timeout)
    try:
        msg = json.loads(raw)
    except ValueError:
        raise H.Failure("server sent invalid JSON: %r" % raw[:200])
    check_timestamp(msg)
    return msg


async def open_ws(srv, path="/ws"):
    """A client as the guide's Go and JavaScript clients make one: dial
    /ws, read the `connected` message first."""
    ws = await websockets.connect(srv.url(path), open_timeout=5, close_timeout=2,
                                  ping_interval=None)
    hello = await recv_json(ws)
    eq(hello.get("type"), "connected", "first message (%r)" % hello)
    eq(hello["data"].get("message"), "Connected to WebSocket server", "connected message")
    check(UUID_RE.match(hello["data"].get("client_id", "")), "client_id is not a UUID: %r" % hello)
    ws.client_id = hello["data"]["client_id"]
    return ws


async def send(ws, msg):
    await ws.send(msg if isinstance(msg, str) else json.dumps(msg))


async def subscribe(ws, room):
    await send(ws, {"type": "subscribe", "room": room})
    msg = await recv_json(ws)
    eq(msg.get("type"), "subscribed", "answer to subscribe (%r)" % msg)
    return msg


async def expect_error(ws, text):
    msg = await recv_json(ws)
    eq(sorted(msg), ["error", "timestamp", "type"], "error message keys (%r)" % msg)
    eq(msg["type"], "error", "type")
    eq(msg["error"], text, "error text")


async def ping(ws):
    """A round trip: everything the server sent before the pong is read."""
    await send(ws, {"type": "ping"})
    msg = await recv_json(ws)
    eq(msg.get("type"), "pong", "answer to ping (%r)" % msg)


async def expect_nothing(ws):
    """The client got nothing: its next message is the pong to a ping."""
    await ping(ws)


async def close_all(*clients):
    for ws in clients:
        await ws.close()


# --------------------------------------------------------------------------
# connecting
# --------------------------------------------------------------------------

@S.acase("connect: /ws answers connected with a UUID client_id and a ms timestamp")
async def test_connect_connected(ctx):
    a = await open_ws(hub(ctx))
    b = await open_ws(hub(ctx))
    try:
        check(a.client_id != b.client_id, "two clients share a client_id")
    finally:
        await close_all(a, b)


@S.acase("connect: the connected message has the guide's shape and key order")
async def test_connect_shape(ctx):
    ws = await websockets.connect(hub(ctx).url("/ws"), open_timeout=5, ping_interval=None)
    try:
        raw = await recv_raw(ws)
        check(re.match(r'^\{"type":"connected","data":\{"client_id":"[0-9a-f-]{36}",'
                       r'"message":"Connected to WebSocket server"\},"timestamp":\d{13}\}$', raw),
              "connected message: %r" % raw)
    finally:
        await ws.close()


@S.case("connect: paths other than /ws answer 404")
def test_other_paths_404(ctx):
    srv = hub(ctx)
    for path in ("/", "/websocket", "/ws/x"):
        c = H.RawClient(srv.connect_host, srv.port)
        try:
            c.handshake(path=path, expect=404)
        finally:
            c.close()


# --------------------------------------------------------------------------
# the guide's Quick Start, step 4: pub/sub
# --------------------------------------------------------------------------

@S.acase("quick start: client 1 receives what client 2 publishes to chat")
async def test_quick_start_pubsub(ctx):
    c1 = await open_ws(ctx.servers["one"])
    c2 = await open_ws(ctx.servers["one"])
    try:
        s1 = await subscribe(c1, "chat")
        eq(s1, {"type": "subscribed", "room": "chat",
                "data": {"room": "chat", "client_count": 1}, "timestamp": s1["timestamp"]},
           "subscribed")
        s2 = await subscribe(c2, "chat")
        eq(s2["data"]["client_count"], 2, "client_count of the second subscriber")
        await send(c2, '{"type":"publish","room":"chat","data":{"message":"Hello!"}}')
        raw = await recv_raw(c1)
        check(re.match(r'^\{"type":"message","room":"chat","data":\{"message":"Hello!"\},'
                       r'"client_id":"%s","timestamp":\d{13}\}$' % c2.client_id, raw),
              "message: %r" % raw)
        # the publisher gets no copy and no acknowledgement
        await expect_nothing(c2)
    finally:
        await close_all(c1, c2)


@S.acase("publish: reaches only the room's members, data forwarded as sent")
async def test_publish_room_only(ctx):
    a, b, outsider = [await open_ws(hub(ctx)) for _ in range(3)]
    try:
        await subscribe(a, "news")
        await subscribe(b, "news")
        await subscribe(outsider, "sports")
        for data in ('{ "any" : "payload" }', '[1, 2, 3]', '"text"', '12345678901234567', 'null'):
            await send(a, '{"type":"publish","room":"news","data":%s}' % data)
            raw = await recv_raw(b)
            check((',"data":%s,"client_id":"%s"' % (data, a.client_id)) in raw,
                  "data not forwarded as sent (%s): %r" % (data, raw))
        await send(a, {"type": "publish", "room": "news"})
        eq((await recv_json(b))["data"], None, "data of a publish without data")
        await expect_nothing(outsider)
        await expect_nothing(a)
    finally:
        await close_all(a, b, outsider)


@S.acase("unsubscribe: unsubscribed, then nothing more from the room")
async def test_unsubscribe(ctx):
    a, b = await open_ws(hub(ctx)), await open_ws(hub(ctx))
    try:
        await subscribe(a, "chat")
        await subscribe(b, "chat")
        await send(a, {"type": "unsubscribe", "room": "chat"})
        u = await recv_json(a)
        eq(u, {"type": "unsubscribed", "room": "chat", "data": {"room": "chat"},
               "timestamp": u["timestamp"]}, "unsubscribed")
        await send(b, {"type": "publish", "room": "chat", "data": 1})
        await expect_nothing(a)
        await send(a, {"type": "unsubscribe", "room": "chat"})
        await expect_error(a, "not subscribed to this room")
        await send(a, {"type": "publish", "room": "chat", "data": 1})
        await expect_error(a, "not subscribed to this room")
    finally:
        await close_all(a, b)


@S.acase("broadcast: every other client gets the message, without a room")
async def test_broadcast(ctx):
    a, b, c = [await open_ws(hub(ctx)) for _ in range(3)]
    try:
        await subscribe(c, "chat")
        await send(a, {"type": "broadcast", "data": {"any": "payload"}})
        for ws in (b, c):
            m = await recv_json(ws)
            eq(m, {"type": "message", "data": {"any": "payload"}, "client_id": a.client_id,
                   "timestamp": m["timestamp"]}, "broadcast message")
        await expect_nothing(a)
    finally:
        await close_all(a, b, c)


@S.acase("ping: pong with a timestamp, and nothing else")
async def test_ping_pong(ctx):
    ws = await open_ws(hub(ctx))
    try:
        await send(ws, '{"type":"ping"}')
        raw = await recv_raw(ws)
        check(re.match(r'^\{"type":"pong","timestamp":\d{13}\}$', raw), "pong: %r" % raw)
    finally:
        await ws.close()


@S.acase("keepalive: the server answers protocol pings (the client library's)")
async def test_protocol_ping(ctx):
    ws = await open_ws(hub(ctx))
    try:
        pong = await ws.ping(b"keepalive")
        await asyncio.wait_for(pong, RECV_TIMEOUT)
    finally:
        await ws.close()


# --------------------------------------------------------------------------
# errors (the guide's "Error Messages" table)
# --------------------------------------------------------------------------

@S.acase("errors: malformed messages get invalid JSON format, the connection stays")
async def test_error_invalid_json(ctx):
    ws = await open_ws(hub(ctx))
    try:
        for text in ("not json", '{"type":"ping"', "[1,2]", '"ping"', '{"type":7}',
                     '{"type":"subscribe","room":1}'):
            await send(ws, text)
            await expect_error(ws, "invalid JSON format")
        await ping(ws)
    finally:
        await ws.close()


@S.acase("errors: unknown and missing types get unknown message type")
async def test_error_unknown_type(ctx):
    ws = await open_ws(hub(ctx))
    try:
        for text in ('{"type":"get_user"}', '{"type":"PING"}', '{"room":"chat"}', "{}"):
            await send(ws, text)
            await expect_error(ws, "unknown message type")
    finally:
        await ws.close()


@S.acase("errors: a missing or empty room gets room name is required")
async def test_error_room_required(ctx):
    ws = await open_ws(hub(ctx))
    try:
        for msg in ({"type": "subscribe"}, {"type": "subscribe", "room": ""},
                    {"type": "unsubscribe"}, {"type": "publish", "data": 1},
                    {"type": "publish", "room": "", "data": 1}):
            await send(ws, msg)
            await expect_error(ws, "room name is required")
    finally:
        await ws.close()


@S.acase("errors: the error message has the guide's shape and key order")
async def test_error_shape(ctx):
    ws = await open_ws(hub(ctx))
    try:
        await send(ws, "{")
        raw = await recv_raw(ws)
        check(re.match(r'^\{"type":"error","error":"invalid JSON format","timestamp":\d{13}\}$',
                       raw), "error: %r" % raw)
    finally:
        await ws.close()


# --------------------------------------------------------------------------
# limits, configured with the guide's environment variables
# --------------------------------------------------------------------------

@S.acase("limits: max_connections_per_room=2 refuses a third with room is at maximum capacity")
async def test_limit_per_room(ctx):
    a, b, c = [await open_ws(limited(ctx)) for _ in range(3)]
    try:
        await subscribe(a, "full")
        await subscribe(b, "full")
        await send(c, {"type": "subscribe", "room": "full"})
        await expect_error(c, "room is at maximum capacity")
        # not subscribed, so it may not publish there either
        await send(c, {"type": "publish", "room": "full", "data": 1})
        await expect_error(c, "not subscribed to this room")
        await send(a, {"type": "unsubscribe", "room": "full"})
        eq((await recv_json(a))["type"], "unsubscribed", "unsubscribe")
        # the cap is the whole server's at once; the count a subscribe
        # answers is its worker's view, which with workers takes a's leave
        # on another worker a moment later: subscribe again until it has
        deadline = time.monotonic() + 10
        while True:
            count = (await subscribe(c, "full"))["data"]["client_count"]
            if count == 2 or time.monotonic() > deadline:
                break
            await send(c, {"type": "unsubscribe", "room": "full"})
            eq((await recv_json(c))["type"], "unsubscribed", "unsubscribe c")
            await asyncio.sleep(0.05)
        eq(count, 2, "client_count after a leave")
    finally:
        await close_all(a, b, c)


@S.acase("limits: max_connections=3 tells the fourth client the server is full and closes it")
async def test_limit_max_connections(ctx):
    srv = limited(ctx)
    clients = [await open_ws(srv) for _ in range(3)]
    try:
        late = await websockets.connect(srv.url("/ws"), open_timeout=5, close_timeout=2,
                                        ping_interval=None)
        await expect_error(late, "server is at maximum capacity")
        try:
            extra = await asyncio.wait_for(late.recv(), RECV_TIMEOUT)
            raise H.Failure("refused client got more: %r" % extra)
        except websockets.ConnectionClosed as e:
            eq((e.rcvd.code, e.rcvd.reason) if e.rcvd else None, (1008, "SERVER_FULL"), "close")
        # the three are untouched; a fourth gets in once one left
        await ping(clients[0])
        await clients.pop().close()

        async def admitted():
            ws = await websockets.connect(srv.url("/ws"), open_timeout=5, ping_interval=None)
            first = await recv_json(ws)
            if first["type"] == "connected":
                return ws
            await ws.close()
            return None
        deadline = time.monotonic() + 5
        ws = None
        while ws is None:
            check(time.monotonic() < deadline, "no client admitted after one left")
            ws = await admitted()
        clients.append(ws)
    finally:
        await close_all(*clients)


@S.acase("limits: a message over WEBSOCKET_MAX_MESSAGE_SIZE closes the connection with 1009")
async def test_limit_message_size(ctx):
    ws = await open_ws(limited(ctx))
    try:
        await send(ws, {"type": "broadcast", "data": "x" * 2000})
        try:
            extra = await asyncio.wait_for(ws.recv(), RECV_TIMEOUT)
            raise H.Failure("got a message instead of a close: %r" % extra)
        except websockets.ConnectionClosed as e:
            eq(e.rcvd.code if e.rcvd else None, 1009, "close code")
    finally:
        await ws.close()


# --------------------------------------------------------------------------
# /health
# --------------------------------------------------------------------------

def get_health(srv):
    status, headers, body = H.http_request(srv.connect_host, srv.port, "GET", "/health")
    eq(status, 200, "/health status")
    eq((H.header(headers, "Content-Type") or "").split(";")[0], "application/json",
       "/health Content-Type")
    return body.decode("utf-8")


@S.case("health: GET /health answers the guide's document, field for field")
def test_health_shape(ctx):
    # a fresh server: the other cases' clients are gone once their closes finish
    srv = ctx.start("fresh", ctx.example("gorilla-hub"))
    try:
        eq(get_health(srv), '{"status":"healthy","clients":0,"rooms":0}', "/health body")
    finally:
        srv.stop()


@S.acase("health: clients and rooms follow the hub (a refused client is not counted)")
async def test_health_counts(ctx):
    srv = limited(ctx)
    loop = asyncio.get_running_loop()

    async def health():
        return json.loads(await loop.run_in_executor(None, get_health, srv))

    a, b, c = [await open_ws(srv) for _ in range(3)]
    try:
        await subscribe(a, "one")
        await subscribe(b, "one")
        await subscribe(b, "two")
        # clients are counted at once (a shared dict); with workers, rooms
        # takes a join on the other worker a moment later
        deadline = time.monotonic() + 10
        while (await health()) != {"status": "healthy", "clients": 3, "rooms": 2} \
                and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        eq(await health(), {"status": "healthy", "clients": 3, "rooms": 2}, "/health")
        late = await websockets.connect(srv.url("/ws"), open_timeout=5, ping_interval=None)
        await expect_error(late, "server is at maximum capacity")
        eq((await health())["clients"], 3, "clients with a refused one")
        await late.close()
        await b.close()
        H.poll(lambda: json.loads(get_health(srv)) == {"status": "healthy", "clients": 2,
                                                       "rooms": 1},
               timeout=5, what="/health after a client left")
    finally:
        await close_all(a, b, c)


if __name__ == "__main__":
    H.main(S)
