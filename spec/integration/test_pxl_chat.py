#!/usr/bin/python3
"""examples/pxl-chat against the real binary, with real clients
(python3-websockets): the PXL framework's client protocol (the PXL
WebSocket guide, shared/seeds/001), spoken as a client written against the
guide speaks it, and a backend emitting events through the server API.

Three servers: "chat" (the app's config, with JWT_SECRET_KEY and an API
key), "single" (rooms.clientCanJoinMultipleRooms = false) and "idle" (a
short inactive time). Tokens are signed here with Python's hmac.
"""

import asyncio
import base64
import functools
import hashlib
import hmac
import json
import os
import sys

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

S = H.Suite("moonwire examples/pxl-chat (PXL guide, python websockets client)")
RECV_TIMEOUT = 5.0
SECRET = "pxl-chat-integration-secret-32-bytes"
KEY = "pxl-api-key"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def hs256(claims, secret=SECRET):
    part = lambda obj: b64url(json.dumps(obj, separators=(",", ":")).encode("utf-8"))  # noqa: E731
    signing = part({"alg": "HS256", "typ": "JWT"}) + "." + part(claims)
    mac = hmac.new(secret.encode("utf-8"), signing.encode("ascii"), hashlib.sha256).digest()
    return signing + "." + b64url(mac)


@S.setup
def start_servers(ctx):
    app = ctx.example("pxl-chat")
    # the key as PXL's JWK "k": base64url of the HMAC key's bytes
    # One worker, also under MW_TEST_WORKERS and on a machine with several
    # cores: these cases check PXL's counts and "nothing else arrives" at
    # once, which with workers follow another worker's joins a moment
    # later (docs/scaling.md). The same app across workers and nodes is
    # test_pxl_chat_workers.py's and test_pxl_chat_nodes.py's.
    common = {"JWT_SECRET_KEY": b64url(SECRET.encode("utf-8")), "MOONWIRE_API_KEY": KEY,
              "MOONWIRE_WORKERS": "1"}
    ctx.start("chat", app, env=common)
    ctx.start("single", app, env=dict(common, MOONWIRE_CLIENT_CAN_JOIN_MULTIPLE_ROOMS="false"))
    ctx.start("idle", app, env=dict(common, MOONWIRE_INACTIVE_TIME="1000",
                                    MOONWIRE_INACTIVE_CHECK_INTERVAL="100"))


async def open_ws(srv, query=""):
    return await websockets.connect(srv.url("/ws" + query), open_timeout=5, close_timeout=2,
                                    ping_interval=None)


async def recv(ws, timeout=RECV_TIMEOUT):
    raw = await asyncio.wait_for(ws.recv(), timeout)
    check(isinstance(raw, str), "server sent a binary frame: %r" % raw[:60])
    try:
        return json.loads(raw)
    except ValueError:
        raise H.Failure("server sent invalid JSON: %r" % raw[:200])


async def send(ws, type_, action, data=None):
    msg = {"type": type_, "action": action}
    if data is not None:
        msg["data"] = data
    await ws.send(json.dumps(msg))


async def call(ws, type_, action, data=None):
    """Send a message and read its answer {type, action, response}; what
    came before it is returned too."""
    await send(ws, type_, action, data)
    before = []
    while True:
        msg = await recv(ws)
        if msg.get("type") == type_ and msg.get("action") == action and "response" in msg:
            return msg["response"], before
        before.append(msg)


async def nothing_more(ws):
    """The client got nothing since: the next thing it reads is the answer
    to a round trip of its own."""
    response, before = await call(ws, "chat", "typing")
    eq(before, [], "messages before the round trip")
    eq(response, {"success": True}, "round trip")


async def join(ws, room, username=None):
    data = {"roomName": room}
    if username:
        data["username"] = username
    response, _ = await call(ws, "system", "joinRoom", data)
    eq(response["success"], True, "joinRoom %r (%r)" % (room, response))
    return response


def emit(srv, channel, message, key=KEY):
    """A backend's POST /api/emit: (status, decoded answer)."""
    body = json.dumps({"channel": channel, "message": message}).encode("utf-8")
    s = H.connect(srv.connect_host, srv.port)
    try:
        req = ("POST /api/emit HTTP/1.1\r\nHost: it\r\nConnection: close\r\n"
               "Authorization: apikey %s\r\nContent-Type: application/json\r\n"
               "Content-Length: %d\r\n\r\n" % (key, len(body)))
        s.sendall(req.encode("latin-1") + body)
        status, _, hdrs, rest = H.read_http_head(s)
        answer = H.read_body(s, hdrs, rest)
    finally:
        s.close()
    if (H.header(hdrs, "Content-Type") or "").startswith("application/json"):
        return status, json.loads(answer.decode("utf-8"))
    return status, answer


async def close_all(*clients):
    for ws in clients:
        await ws.close()


# --------------------------------------------------------------------------
# connecting and authentication
# --------------------------------------------------------------------------

@S.acase("connect: /ws without a token is anonymous, and gets no welcome")
async def test_connect_anonymous(ctx):
    ws = await open_ws(ctx.servers["chat"])
    try:
        await nothing_more(ws)
    finally:
        await ws.close()


@S.acase("connect: a valid ?token= is told auth.authenticated with the sub as userId")
async def test_connect_token(ctx):
    ws = await open_ws(ctx.servers["chat"], "?token=" + hs256({"sub": "42", "role": "user"}))
    try:
        eq(await recv(ws), {"type": "auth", "action": "authenticated",
                            "data": {"userId": 42, "message": "Authentication successful"}},
           "first message")
        await nothing_more(ws)
    finally:
        await ws.close()


@S.acase("connect: an invalid token is refused with 401")
async def test_connect_bad_token(ctx):
    srv = ctx.servers["chat"]
    for token in ("garbage", hs256({"sub": "1"}, secret="wrong-secret"), hs256({"sub": "abc"}),
                  hs256({"sub": "1", "exp": 1000})):
        try:
            ws = await open_ws(srv, "?token=" + token)
        except websockets.exceptions.InvalidStatusCode as e:
            eq(e.status_code, 401, "status for token %r" % token[:20])
        else:
            await ws.close()
            raise H.Failure("token %r was accepted" % token[:20])


# --------------------------------------------------------------------------
# chat
# --------------------------------------------------------------------------

@S.acase("chat.send: the sender gets the acknowledgement, then everyone the message")
async def test_chat_send(ctx):
    srv = ctx.servers["chat"]
    a, b = await open_ws(srv), await open_ws(srv)
    try:
        await send(a, "chat", "send", {"username": "Alice", "text": "Hello everyone!"})
        ack = await recv(a)
        eq(sorted(ack), ["action", "response", "type"], "ack keys (%r)" % ack)
        eq((ack["type"], ack["action"]), ("chat", "send"), "ack route")
        eq(ack["response"]["success"], True, "ack success")
        check(isinstance(ack["response"]["messageId"], int), "messageId is Date.now(): %r" % ack)
        for ws in (a, b):
            msg = await recv(ws)
            eq((msg["type"], msg["action"]), ("chat", "message"), "broadcast (%r)" % msg)
            eq((msg["data"]["username"], msg["data"]["message"]), ("Alice", "Hello everyone!"),
               "broadcast data")
            check(msg["data"]["timestamp"].endswith("Z") and "T" in msg["data"]["timestamp"],
                  "timestamp is an ISO string: %r" % msg)
    finally:
        await close_all(a, b)


@S.acase("chat.typing: everyone but the sender is told userTyping")
async def test_chat_typing(ctx):
    srv = ctx.servers["chat"]
    a, b, c = await open_ws(srv), await open_ws(srv), await open_ws(srv)
    try:
        # with workers, the earlier case's chat.send to everyone crosses to
        # the other worker a moment later, reaching whoever is connected
        # there by then: a, b or c may get it first
        def fresh(msgs):
            return [m for m in msgs if (m.get("type"), m.get("action")) != ("chat", "message")]
        response, before = await call(a, "chat", "typing", {"username": "Alice"})
        eq((response, fresh(before)), ({"success": True}, []), "the sender's answer, alone")
        for ws in (b, c):
            msg = await recv(ws)
            while not fresh([msg]):
                msg = await recv(ws)
            eq(msg, {"type": "chat", "action": "userTyping", "data": {"username": "Alice"}},
               "userTyping")
        response, before = await call(a, "chat", "typing")
        eq((response, fresh(before)), ({"success": True}, []), "nothing more for the sender")
    finally:
        await close_all(a, b, c)


@S.acase("errors: a message that is not PXL's gets sendMessageError's message; unknown routes nothing")
async def test_errors(ctx):
    ws = await open_ws(ctx.servers["chat"])
    try:
        await ws.send("{not json")
        eq(await recv(ws), {"type": "error", "action": "message",
                            "data": {"error": "Failed to parse JSON"}}, "bad JSON")
        await ws.send('{"action":"send"}')
        eq((await recv(ws))["data"], {"error": "Missing WebSocket message type"}, "no type")
        await send(ws, "chat", "nope")
        await nothing_more(ws)
    finally:
        await ws.close()


# --------------------------------------------------------------------------
# rooms
# --------------------------------------------------------------------------

@S.acase("rooms: joinRoom and leaveRoom with roomName; a client may be in several rooms")
async def test_rooms(ctx):
    srv = ctx.servers["chat"]
    a, b = await open_ws(srv), await open_ws(srv)
    try:
        r = await join(a, "chat:general", "alice")
        eq(r["message"], "Successfully joined room: chat:general", "join message")
        eq((r["data"]["username"], r["data"]["roomName"], r["data"]["userType"]),
           ("alice", "chat:general", "user"), "join data")
        await join(a, "chat:support")
        await join(b, "chat:general", "bob")
        eq(await recv(a), {"type": "room", "action": "memberJoined",
                           "data": {"roomName": "chat:general", "username": "bob",
                                    "count": 2}}, "a told of bob")
        response, before = await call(b, "system", "leaveRoom", {"roomName": "chat:general"})
        eq(before, [{"type": "user", "action": "leftRoom",
                     "data": {"roomName": "chat:general"}}], "leftRoom before the answer")
        eq((response["success"], response["message"]),
           (True, "Successfully left room: chat:general"), "leave answer")
        eq((await recv(a))["action"], "memberLeft", "a told bob left")
        response, _ = await call(a, "system", "joinRoom", {})
        eq((response["success"], response["error"]), (False, "Room name is required"),
           "join without roomName")
    finally:
        await close_all(a, b)


@S.acase("rooms: with clientCanJoinMultipleRooms false, joining moves the client")
async def test_single_room(ctx):
    srv = ctx.servers["single"]
    a, b = await open_ws(srv), await open_ws(srv)
    try:
        await join(a, "one", "alice")
        await join(b, "one", "bob")
        eq((await recv(a))["action"], "memberJoined", "a told of bob")
        await join(b, "two", "bob")
        eq(await recv(a), {"type": "room", "action": "memberLeft",
                           "data": {"roomName": "one", "username": "bob", "count": 1}},
           "a told bob left one")
        # A backend's view: b is in "two" only. With workers the worker
        # answering may be neither a's nor b's, and its copy of their rooms
        # takes the move a moment later.
        def rooms():
            status, _, doc = H.http_request(srv.connect_host, srv.port, "GET", "/api/rooms",
                                            headers=[("Authorization", "apikey " + KEY)])
            eq(status, 200, "/api/rooms")
            return {r["room"]: r["count"] for r in json.loads(doc)["rooms"]}
        H.poll(lambda: rooms() == {"one": 1, "two": 1}, what="/api/rooms: one and two, 1 each")
    finally:
        await close_all(a, b)


# --------------------------------------------------------------------------
# metadata, inactivity, subscribers
# --------------------------------------------------------------------------

@S.acase("inactive clients: one that sends nothing for inactiveTime is disconnected")
async def test_inactive(ctx):
    ws = await open_ws(ctx.servers["idle"])
    try:
        # No timing asserted: the server closes it, whenever its check runs.
        await asyncio.wait_for(ws.wait_closed(), 15)
        eq((ws.close_code, ws.close_reason), (1000, "inactive"), "close")
    finally:
        await ws.close()


@S.acase("backend: POST /api/emit of job.completed reaches the dashboard room's members only")
async def test_emit_job(ctx):
    srv = ctx.servers["chat"]
    dash, other = await open_ws(srv), await open_ws(srv)
    try:
        await join(dash, "queue:dashboard", "ops")
        loop = asyncio.get_running_loop()
        job = {"jobId": "j-7", "queue": "reports", "result": {"rows": 120}}
        status, doc = await loop.run_in_executor(None, emit, srv, "job.completed", job)
        eq((status, doc), (200, {"channel": "job.completed", "subscribers": 1}), "emit")
        eq(await recv(dash), {"type": "queue", "action": "done", "data": job}, "dashboard")
        status, _ = await loop.run_in_executor(None, emit, srv, "job.error",
                                               {"jobId": "j-8", "error": "timeout"})
        eq(status, 200, "emit job.error")
        eq(await recv(dash), {"type": "queue", "action": "errored",
                              "data": {"jobId": "j-8", "error": "timeout"}}, "errored")
        await nothing_more(other)
        status, _ = await loop.run_in_executor(None, functools.partial(
            emit, srv, "job.completed", job, key="wrong"))
        eq(status, 401, "emit without the key")
    finally:
        await close_all(dash, other)


@S.acase("metadata: announcements skip clients whose preferences turn notifications off")
async def test_announcements(ctx):
    srv = ctx.servers["chat"]
    a, b = await open_ws(srv), await open_ws(srv)
    try:
        response, _ = await call(b, "user", "updatePreferences",
                                 {"theme": "dark", "notifications": False})
        eq(response, {"success": True}, "updatePreferences")
        loop = asyncio.get_running_loop()
        status, _ = await loop.run_in_executor(None, emit, srv, "announcement",
                                               {"message": "Maintenance in 5 minutes"})
        eq(status, 200, "emit")
        eq(await recv(a), {"type": "notification", "action": "alert",
                           "data": {"message": "Maintenance in 5 minutes"}}, "a alerted")
        await nothing_more(b)
    finally:
        await close_all(a, b)


if __name__ == "__main__":
    H.main(S)
