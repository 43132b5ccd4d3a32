#!/usr/bin/python3
"""The server API (/api/...) of the real binary, with real WebSocket clients.

fixtures/api (api_key set, presence on "lobby", ?user=NAME binds a user)
is served twice: with api_port (a listener of its own on 127.0.0.1, where
/api/ is served and nothing else; the main port has no /api/), and
without (the API on the main port). python3-websockets clients join rooms
with the default protocol and receive what /api/publish, /api/broadcast
and /api/send send, with `data` exactly as the backend wrote it; they are
closed by /api/disconnect. Bad input: no key, a wrong key (401, the app
never runs), malformed JSON and missing fields (400 naming them), an
oversize body (413), a wrong method (405); an unknown room is a room
nobody is in (200, delivered 0).
"""

import asyncio
import json
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

import websockets  # noqa: E402

S = H.Suite("moonwire server API")
KEY = "it-api-key"
AUTH = [("Authorization", "apikey " + KEY)]
RECV_TIMEOUT = 5.0


class State:
    srv = None       # with api_port
    api_port = None
    plain = None     # the API on the main port


# One worker even under MW_TEST_WORKERS: these cases check the exact
# `delivered` of each answer, and that counts the answering worker's
# clients (protocol.md); with workers a client id is also one worker's
# unless `node` is given. test_workers.py calls the API on one worker and
# checks the clients of both.
ONE = {"MOONWIRE_WORKERS": "1"}


@S.setup
def start(ctx):
    State.api_port = H.free_port()
    State.srv = ctx.start("api", ctx.fixture("api"),
                          env=dict(ONE, MOONWIRE_API_PORT=str(State.api_port)))
    State.srv.wait_log(r"server API listening on http://127\.0\.0\.1:%d/api/" % State.api_port)
    State.plain = ctx.start("plain", ctx.fixture("api"), env=ONE)


def api(method, path, body=None, headers=AUTH, port=None, srv=None):
    """(status, headers, raw body, decoded JSON or None) of one API call."""
    srv = srv or State.srv
    s = H.connect("127.0.0.1", port or (State.api_port if srv is State.srv else srv.port))
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        data = (body or "").encode("utf-8")
        req = "%s %s HTTP/1.1\r\nHost: it\r\nConnection: close\r\n" % (method, path)
        req += "".join("%s: %s\r\n" % kv for kv in headers)
        if body is not None:
            req += "Content-Type: application/json\r\nContent-Length: %d\r\n" % len(data)
        s.sendall(req.encode("latin-1") + b"\r\n" + data)
        status, _, hdrs, rest = H.read_http_head(s)
        raw = H.read_body(s, hdrs, rest)
    finally:
        s.close()
    doc = None
    if (H.header(hdrs, "Content-Type") or "").startswith("application/json"):
        doc = json.loads(raw.decode("utf-8"))
    return status, hdrs, raw, doc


async def open_ws(query=""):
    ws = await websockets.connect(State.srv.url("/" + query), open_timeout=5, close_timeout=2,
                                  ping_interval=None)
    return ws


async def recv(ws):
    raw = await asyncio.wait_for(ws.recv(), RECV_TIMEOUT)
    return raw, json.loads(raw)


async def join(ws, room):
    await ws.send(json.dumps({"type": "system", "action": "join", "data": {"room": room},
                              "id": "j-" + room}))
    _, reply = await recv(ws)
    eq(reply.get("id"), "j-" + room, "join reply %r" % reply)


async def silent(ws, seconds=0.3):
    try:
        raw = await asyncio.wait_for(ws.recv(), seconds)
    except asyncio.TimeoutError:
        return True
    raise H.Failure("unexpected message %r" % raw[:100])


@S.case("api_port: /api/ only there, bound to 127.0.0.1; not on the main port")
def test_api_port(ctx):
    eq(api("GET", "/api/stats")[0], 200, "/api/stats on api_port")
    eq(api("GET", "/health")[0], 404, "/health on api_port")
    eq(api("GET", "/", port=State.api_port)[0], 404, "the WebSocket path on api_port")
    eq(api("GET", "/api/stats", port=State.srv.port)[0], 404, "/api/ on the main port")
    eq(api("GET", "/health", port=State.srv.port)[0], 200, "/health on the main port")
    s = socket.socket()
    s.settimeout(2)
    try:
        refused = s.connect_ex(("127.0.0.2", State.api_port)) != 0
    finally:
        s.close()
    check(refused, "api_port accepts nothing but 127.0.0.1 (127.0.0.2 was accepted)")


@S.case("without api_port: /api/ on the main port")
def test_api_on_main_port(ctx):
    status, _, _, doc = api("GET", "/api/stats", srv=State.plain)
    eq(status, 200, "status")
    check(set(doc) == {"connections", "rooms", "users", "uptime_s"}, "stats: %r" % doc)


@S.case("no key or a wrong key: 401, before any Lua runs")
def test_401(ctx):
    for headers in ([], [("Authorization", "apikey wrong")], [("Authorization", "Bearer " + KEY)]):
        status, hdrs, _, _ = api("POST", "/api/publish", {"room": "r", "data": 1}, headers=headers)
        eq(status, 401, "status with %r" % headers)
        eq(H.header(hdrs, "WWW-Authenticate"), "apikey", "WWW-Authenticate")


@S.acase("publish: every member gets the room event, data byte for byte; others nothing")
async def test_publish(ctx):
    a, b, c = await open_ws(), await open_ws(), await open_ws()
    try:
        await join(a, "lobby")
        await join(b, "lobby")
        await recv(a)  # b's presence "joined"
        data = '{"price":12345678901234567,"note":"a\\/b","e":1E+2,"list":[]}'
        status, _, _, doc = api("POST", "/api/publish", '{"room":"lobby","data":%s}' % data)
        eq(status, 200, "status")
        eq(doc, {"room": "lobby", "delivered": 2, "dropped": 0}, "answer")
        for ws in (a, b):
            raw, ev = await recv(ws)
            eq((ev["type"], ev["action"], ev["room"]), ("system", "message", "lobby"), "event")
            eq(ev["data"]["from"], None, "from")
            check('"data":%s' % data in raw, "data forwarded as sent: %r" % raw)
        await silent(c)
        status, _, _, doc = api("POST", "/api/publish",
                                {"room": "lobby", "type": "news", "action": "flash",
                                 "data": {"t": "hi"}})
        eq(doc["delivered"], 2, "delivered")
        _, ev = await recv(a)
        eq((ev["type"], ev["action"], ev["data"]), ("news", "flash", {"t": "hi"}), "own type")
        await recv(b)
    finally:
        for ws in (a, b, c):
            await ws.close()


@S.acase("publish to a room nobody is in: 200, delivered 0 (a room exists while it has members)")
async def test_publish_unknown_room(ctx):
    status, _, _, doc = api("POST", "/api/publish", {"room": "nobody-here", "data": 1})
    eq((status, doc), (200, {"room": "nobody-here", "delivered": 0, "dropped": 0}), "answer")


@S.acase("broadcast, send to a client and to a user, disconnect a user with code and reason")
async def test_broadcast_send_disconnect(ctx):
    ann1, ann2, bob = await open_ws("?user=ann"), await open_ws("?user=ann"), await open_ws()
    try:
        status, _, _, doc = api("POST", "/api/broadcast", {"data": {"n": 1}})
        eq(status, 200, "broadcast status")
        check(doc["delivered"] >= 3, "delivered to every client: %r" % doc)
        for ws in (ann1, ann2, bob):
            _, ev = await recv(ws)
            eq((ev["action"], ev["data"]["data"]), ("broadcast", {"n": 1}), "broadcast event")

        stats = api("GET", "/api/stats")[3]
        check(stats["users"] >= 1 and stats["connections"] >= 3, "stats %r" % stats)

        eq(api("POST", "/api/send", {"user": "ann", "type": "dm", "action": "new",
                                     "data": "x"})[3], {"delivered": 2}, "send to a user")
        for ws in (ann1, ann2):
            _, ev = await recv(ws)
            eq((ev["type"], ev["action"], ev["data"]), ("dm", "new", "x"), "user's event")
        await silent(bob)
        eq(api("POST", "/api/send", {"user": "nobody", "data": 1})[3], {"delivered": 0},
           "an unknown user")

        status, _, _, doc = api("POST", "/api/disconnect",
                                {"user": "ann", "code": 4000, "reason": "kicked"})
        eq(doc, {"disconnected": 2}, "disconnect")
        for ws in (ann1, ann2):
            try:
                await asyncio.wait_for(ws.recv(), RECV_TIMEOUT)
                raise H.Failure("a message instead of the close")
            except websockets.ConnectionClosed as e:
                eq((e.rcvd.code, e.rcvd.reason), (4000, "kicked"), "close frame")
        await silent(bob)
    finally:
        for ws in (ann1, ann2, bob):
            await ws.close()


@S.acase("send to a client by id")
async def test_send_client(ctx):
    ws = await open_ws()
    try:
        await join(ws, "solo")
        presence = api("GET", "/api/presence?room=solo")[3]
        eq(presence["count"], 1, "presence count")
        cid = presence["presence"][0]["client_id"]
        eq(api("POST", "/api/send", {"client": cid, "data": [1, 2]})[3], {"delivered": 1}, "send")
        _, ev = await recv(ws)
        eq(ev["data"]["data"], [1, 2], "the client's event")
        rooms = api("GET", "/api/rooms")[3]["rooms"]
        check({"room": "solo", "count": 1} in rooms, "GET /api/rooms lists it: %r" % rooms)
    finally:
        await ws.close()


@S.case("bad JSON, missing fields: 400 naming them; oversize body: 413; wrong method: 405")
def test_bad_input(ctx):
    cases = [
        ("/api/publish", '{"room": "r", "data": ', "malformed JSON"),
        ("/api/publish", {"data": 1}, "room: "),
        ("/api/publish", {"room": "r"}, "data: required"),
        ("/api/send", {"data": 1}, "client: give exactly one of client and user"),
        ("/api/disconnect", {"client": 1, "code": 999}, "code: "),
    ]
    for path, body, fragment in cases:
        status, _, _, doc = api("POST", path, body)
        eq(status, 400, "status of %r" % (body,))
        eq(doc["error"]["code"], "BAD_REQUEST", "code")
        check(fragment in doc["error"]["message"], "%r names the problem: %r" % (fragment, doc))
    status = api("GET", "/api/presence")[0]
    eq(status, 400, "presence without room")
    status, hdrs, _, _ = api("GET", "/api/publish")
    eq(status, 405, "wrong method")
    eq(H.header(hdrs, "Allow"), "POST", "Allow")
    big = json.dumps({"room": "r", "data": "x" * (1 << 20)})
    status, hdrs, raw, _ = api("POST", "/api/publish", big)
    eq(status, 413, "a body over http_max_body")
    eq(api("GET", "/api/stats")[0], 200, "still serving")


if __name__ == "__main__":
    H.main(S)
