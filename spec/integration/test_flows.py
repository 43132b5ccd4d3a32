#!/usr/bin/python3
"""Normal flows with a real client (python3-websockets, asyncio).

The default JSON protocol (fixtures/basic and examples/hello): welcome event,
request/reply, error envelopes, Lua errors, per-client data, many concurrent
clients, /health, subprotocol negotiation, IPv6.
"""

import asyncio
import json
import os
import re
import socket
import sys

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

S = H.Suite("moonwire flows (python websockets client)")
RECV_TIMEOUT = 5.0


@S.setup
def start_basic(ctx):
    ctx.start("basic", ctx.fixture("basic"))


def basic(ctx):
    return ctx.servers["basic"]


def lazy_server(ctx, key, app, **kw):
    if key not in ctx.servers:
        ctx.start(key, app, **kw)
    return ctx.servers[key]


async def open_ws(srv, path="/", welcome=True, **kw):
    kw.setdefault("open_timeout", 5)
    kw.setdefault("close_timeout", 2)
    kw.setdefault("ping_interval", None)
    ws = await websockets.connect(srv.url(path), **kw)
    if welcome:
        w = await recv_json(ws)
        check(w.get("type") == "system" and w.get("action") == "connected",
              "first message is not the welcome event: %r" % w)
        ws.welcome = w
    return ws


async def recv_json(ws, timeout=RECV_TIMEOUT):
    raw = await asyncio.wait_for(ws.recv(), timeout)
    check(isinstance(raw, str), "server sent a binary frame: %r" % raw[:60])
    try:
        return json.loads(raw)
    except ValueError:
        raise H.Failure("server sent invalid JSON: %r" % raw[:200])


async def request(ws, type_, action, data=None, id_="r1"):
    msg = {"type": type_, "action": action}
    if data is not None:
        msg["data"] = data
    if id_ is not None:
        msg["id"] = id_
    await ws.send(json.dumps(msg))
    return await recv_json(ws)


def expect_error(msg, code, id_=None):
    eq(msg.get("type"), "error", "envelope type (%r)" % msg)
    err = msg.get("error")
    check(isinstance(err, dict), "error field is not an object: %r" % msg)
    eq(err.get("code"), code, "error code (%r)" % msg)
    check(isinstance(err.get("message"), str) and err["message"], "error message missing: %r" % msg)
    if id_ is not None:
        eq(msg.get("id"), id_, "error id (%r)" % msg)
    return err


async def still_works(ws, tag="alive"):
    r = await request(ws, "greet", "hello", {"name": tag}, id_="alive-" + tag)
    eq(r.get("data"), {"message": "hello " + tag}, "reply after error")


# --------------------------------------------------------------------------
# welcome and request/reply
# --------------------------------------------------------------------------

@S.acase("welcome: system/connected event first, with client_id and ts")
async def test_welcome_event_first(ctx):
    ws = await open_ws(basic(ctx))
    try:
        w = ws.welcome
        check(isinstance(w.get("data"), dict), "welcome data: %r" % w)
        cid = w["data"].get("client_id")
        check(isinstance(cid, int) and not isinstance(cid, bool), "client_id not an integer: %r" % w)
        check(isinstance(w.get("ts"), (int, float)), "ts missing or not a number: %r" % w)
    finally:
        await ws.close()


@S.acase("welcome: two clients get distinct client_ids")
async def test_welcome_distinct_client_ids(ctx):
    a = await open_ws(basic(ctx))
    b = await open_ws(basic(ctx))
    try:
        check(a.welcome["data"]["client_id"] != b.welcome["data"]["client_id"], "same client_id")
        ra = await request(a, "greet", "whoami")
        eq(ra["data"]["id"], a.welcome["data"]["client_id"], "client.id vs welcome client_id")
    finally:
        await a.close()
        await b.close()


@S.acase("request: greet.hello with string id -> reply with same type/action/id")
async def test_request_reply_echoes_string_id(ctx):
    ws = await open_ws(basic(ctx))
    try:
        r = await request(ws, "greet", "hello", {"name": "Ada"}, id_="r1")
        eq(r.get("type"), "greet", "type")
        eq(r.get("action"), "hello", "action")
        eq(r.get("id"), "r1", "id")
        eq(r.get("data"), {"message": "hello Ada"}, "data")
    finally:
        await ws.close()


@S.acase("request: numeric id is echoed as a number")
async def test_request_numeric_id_echoed(ctx):
    ws = await open_ws(basic(ctx))
    try:
        r = await request(ws, "greet", "hello", {}, id_=42)
        eq(r.get("id"), 42, "id")
        eq(r.get("data"), {"message": "hello world"}, "data")
    finally:
        await ws.close()


@S.acase("request: without id -> no reply")
async def test_request_without_id_gets_no_reply(ctx):
    ws = await open_ws(basic(ctx))
    try:
        await ws.send(json.dumps({"type": "greet", "action": "hello", "data": {"name": "x"}}))
        r = await request(ws, "greet", "hello", {"name": "y"}, id_="second")
        eq(r.get("id"), "second", "first message after an id-less request")
    finally:
        await ws.close()


@S.acase("request: nested unicode data round-trips through JSON")
async def test_request_unicode_round_trip(ctx):
    ws = await open_ws(basic(ctx))
    data = {"text": "héllo wörld € 😀 κόσμε", "list": [1, 2.5, True, None, "x"],
            "nested": {"a": {"b": {"c": [1, {"d": "e"}]}}}, "empty": {}}
    try:
        r = await request(ws, "greet", "echo", data, id_="u1")
        got = r.get("data")
        eq(got.get("text"), data["text"], "unicode text")
        eq(got.get("nested"), data["nested"], "nested")
        eq(got.get("list")[:3], [1, 2.5, True], "list head")
    finally:
        await ws.close()


@S.acase("request: 500 KB JSON message and reply", timeout=40)
async def test_request_500kb_message_and_reply(ctx):
    ws = await open_ws(basic(ctx), max_size=4 * 1048576)
    blob = "z" * 500000
    try:
        r = await request(ws, "greet", "echo", {"blob": blob}, id_="big")
        eq(len(r["data"]["blob"]), len(blob), "blob length")
    finally:
        await ws.close()


@S.acase("request: pipelined requests are answered in order")
async def test_request_pipelined_in_order(ctx):
    ws = await open_ws(basic(ctx))
    try:
        for i in range(50):
            await ws.send(json.dumps({"type": "greet", "action": "hello",
                                      "data": {"name": str(i)}, "id": "p%d" % i}))
        for i in range(50):
            r = await recv_json(ws)
            eq(r.get("id"), "p%d" % i, "reply order")
            eq(r["data"]["message"], "hello %d" % i, "reply data")
    finally:
        await ws.close()


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------

@S.acase("error: malformed JSON -> INVALID_MESSAGE, connection stays open")
async def test_malformed_json_stays_open(ctx):
    ws = await open_ws(basic(ctx))
    try:
        await ws.send('{"type": "greet", "action": ')
        expect_error(await recv_json(ws), "INVALID_MESSAGE")
        await still_works(ws)
    finally:
        await ws.close()


@S.acase("error: JSON array / string / number -> INVALID_MESSAGE")
async def test_json_non_object_is_invalid(ctx):
    ws = await open_ws(basic(ctx))
    try:
        for bad in ("[1,2,3]", '"just a string"', "42", "null", "[]"):
            await ws.send(bad)
            expect_error(await recv_json(ws), "INVALID_MESSAGE")
        await still_works(ws)
    finally:
        await ws.close()


@S.acase("error: empty text message -> INVALID_MESSAGE")
async def test_empty_text_is_invalid(ctx):
    ws = await open_ws(basic(ctx))
    try:
        await ws.send("")
        expect_error(await recv_json(ws), "INVALID_MESSAGE")
        await still_works(ws)
    finally:
        await ws.close()


@S.acase("error: missing type (with id) -> INVALID_MESSAGE carrying the id")
async def test_missing_type_error_carries_id(ctx):
    ws = await open_ws(basic(ctx))
    try:
        await ws.send(json.dumps({"action": "hello", "id": "m1"}))
        expect_error(await recv_json(ws), "INVALID_MESSAGE", "m1")
        await ws.send(json.dumps({"type": "greet", "id": "m2"}))
        expect_error(await recv_json(ws), "INVALID_MESSAGE", "m2")
    finally:
        await ws.close()


@S.acase("error: unknown type -> NOT_FOUND with id")
async def test_unknown_type_not_found(ctx):
    ws = await open_ws(basic(ctx))
    try:
        expect_error(await request(ws, "nosuch", "hello", {}, id_="n1"), "NOT_FOUND", "n1")
        await still_works(ws)
    finally:
        await ws.close()


@S.acase("error: unknown action -> NOT_FOUND with id")
async def test_unknown_action_not_found(ctx):
    ws = await open_ws(basic(ctx))
    try:
        expect_error(await request(ws, "greet", "nosuch", {}, id_="n2"), "NOT_FOUND", "n2")
        await still_works(ws)
    finally:
        await ws.close()


@S.acase("error: controller returns nil, {code, message} -> that error")
async def test_controller_error_return(ctx):
    ws = await open_ws(basic(ctx))
    try:
        err = expect_error(await request(ws, "greet", "deny", {}, id_="d1"), "AUTHORIZATION_FAILED", "d1")
        eq(err.get("message"), "not allowed here", "message")
        err = expect_error(await request(ws, "greet", "hello", {"name": 5}, id_="d2"), "INVALID_MESSAGE", "d2")
        eq(err.get("message"), "name must be a string", "message")
    finally:
        await ws.close()


def fixture_line(app_dir, fname, marker):
    with open(os.path.join(app_dir, "controllers", fname)) as f:
        for i, line in enumerate(f, 1):
            if marker in line:
                return i
    raise H.Failure("marker %s not in %s" % (marker, fname))


def check_internal(err):
    msg = err.get("message", "")
    for leak in (".lua", "kaboom", "secret", "traceback", "attempt to index", "/"):
        check(leak not in msg, "INTERNAL_ERROR message leaks %r: %r" % (leak, msg))


@S.acase("lua error: error() in a controller -> INTERNAL_ERROR, no leak, log has file:line")
async def test_lua_error_internal_error_with_file_line(ctx):
    srv = basic(ctx)
    ws = await open_ws(srv)
    other = await open_ws(srv)
    try:
        line = fixture_line(ctx.fixture("basic"), "boom.lua", "MARK:fail")
        start = len(srv.log())
        err = expect_error(await request(ws, "boom", "fail", {}, id_="b1"), "INTERNAL_ERROR", "b1")
        check_internal(err)
        H.poll(lambda: ("boom.lua:%d" % line) in srv.log()[start:], timeout=5,
               what="'boom.lua:%d' in the server log" % line)
        await still_works(ws, "after-boom")
        await still_works(other, "other")
    finally:
        await ws.close()
        await other.close()


@S.acase("lua error: indexing nil -> INTERNAL_ERROR, no leak, log has file:line")
async def test_lua_nil_index_internal_error_with_file_line(ctx):
    srv = basic(ctx)
    ws = await open_ws(srv)
    try:
        line = fixture_line(ctx.fixture("basic"), "boom.lua", "MARK:index")
        start = len(srv.log())
        err = expect_error(await request(ws, "boom", "index", {}, id_="b2"), "INTERNAL_ERROR", "b2")
        check_internal(err)
        H.poll(lambda: ("boom.lua:%d" % line) in srv.log()[start:], timeout=5,
               what="'boom.lua:%d' in the server log" % line)
        await still_works(ws)
    finally:
        await ws.close()


@S.acase("lua error: 20 errors in a row do not break the connection or the server")
async def test_lua_errors_in_a_row_keep_connection(ctx):
    ws = await open_ws(basic(ctx))
    try:
        for i in range(20):
            expect_error(await request(ws, "boom", "fail", {}, id_="e%d" % i), "INTERNAL_ERROR")
        await still_works(ws)
    finally:
        await ws.close()


@S.acase("error: binary frame to the JSON protocol -> INVALID_MESSAGE, stays open")
async def test_binary_frame_to_json_protocol_invalid(ctx):
    ws = await open_ws(basic(ctx))
    try:
        await ws.send(b'{"type":"greet","action":"hello","id":"x"}')
        expect_error(await recv_json(ws), "INVALID_MESSAGE")
        await still_works(ws)
    finally:
        await ws.close()


@S.acase("error: JSON nested 1000 levels deep -> INVALID_MESSAGE, no crash")
async def test_deeply_nested_json_invalid(ctx):
    ws = await open_ws(basic(ctx))
    try:
        await ws.send('{"type":"greet","action":"echo","data":' + "[" * 1000 + "]" * 1000 + "}")
        expect_error(await recv_json(ws), "INVALID_MESSAGE")
        await still_works(ws)
    finally:
        await ws.close()


@S.acase("error: NaN literal, object id, string data -> INVALID_MESSAGE")
async def test_nan_object_id_string_data_invalid(ctx):
    ws = await open_ws(basic(ctx))
    try:
        await ws.send('{"type":"greet","action":"echo","data":{"x":NaN},"id":"n"}')
        expect_error(await recv_json(ws), "INVALID_MESSAGE")
        await ws.send(json.dumps({"type": "greet", "action": "echo", "id": {"a": 1}}))
        expect_error(await recv_json(ws), "INVALID_MESSAGE")
        await ws.send(json.dumps({"type": "greet", "action": "echo", "data": "str", "id": "s"}))
        expect_error(await recv_json(ws), "INVALID_MESSAGE", "s")
        await still_works(ws)
    finally:
        await ws.close()


@S.acase("error: a reply that cannot be encoded -> INTERNAL_ERROR, stays open")
async def test_unencodable_reply_internal_error(ctx):
    ws = await open_ws(basic(ctx))
    try:
        err = expect_error(await request(ws, "greet", "unencodable", {}, id_="u"), "INTERNAL_ERROR", "u")
        check_internal(err)
        await still_works(ws)
    finally:
        await ws.close()


@S.acase("lua: client:send of invalid UTF-8 text is refused, connection stays open")
async def test_lua_send_invalid_utf8_refused(ctx):
    ws = await open_ws(basic(ctx))
    try:
        r = await request(ws, "greet", "badsend", {}, id_="bs")
        eq(r.get("data", {}).get("ok"), False, "send result (%r)" % r)
        check("utf" in str(r["data"].get("err", "")).lower(), "error text: %r" % r)
        await still_works(ws)
    finally:
        await ws.close()


@S.acase("lua: client:emit event arrives before the reply")
async def test_lua_emit_before_reply(ctx):
    ws = await open_ws(basic(ctx))
    try:
        await ws.send(json.dumps({"type": "greet", "action": "notify", "data": {"n": 7}, "id": "e"}))
        ev = await recv_json(ws)
        eq((ev.get("type"), ev.get("action"), ev.get("data")), ("greet", "notice", {"n": 7}), "event")
        r = await recv_json(ws)
        eq((r.get("id"), r.get("data")), ("e", {"done": True}), "reply")
    finally:
        await ws.close()


@S.acase("lua: client:close(4000, 'bye') from a controller closes with 4000")
async def test_lua_close_with_4000(ctx):
    ws = await open_ws(basic(ctx))
    await ws.send(json.dumps({"type": "greet", "action": "bye", "id": "c"}))
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    except websockets.ConnectionClosed:
        pass
    eq(ws.close_code, 4000, "close code")
    eq(ws.close_reason, "bye", "close reason")


# --------------------------------------------------------------------------
# per-client data and hooks
# --------------------------------------------------------------------------

@S.acase("client.data: persists across messages and is per client")
async def test_client_data_persists_per_client(ctx):
    a = await open_ws(basic(ctx))
    b = await open_ws(basic(ctx))
    try:
        eq((await request(a, "store", "set", {"key": "k", "value": "A"}))["data"], {"ok": True}, "set")
        eq((await request(a, "store", "get", {"key": "k"}))["data"].get("value"), "A", "get on a")
        eq((await request(b, "store", "get", {"key": "k"}))["data"].get("value"), None, "get on b")
    finally:
        await a.close()
        await b.close()


@S.acase("hooks: app.lua on_connect ran for the client")
async def test_on_connect_hook_ran(ctx):
    ws = await open_ws(basic(ctx))
    try:
        eq((await request(ws, "store", "get", {"key": "hooked"}))["data"].get("value"), True,
           "client.data.hooked set by on_connect")
    finally:
        await ws.close()


# --------------------------------------------------------------------------
# concurrency
# --------------------------------------------------------------------------

@S.acase("concurrency: 100 clients x 10 requests, every reply matches", timeout=60)
async def test_concurrency_100_clients_replies_match(ctx):
    srv = basic(ctx)

    async def one(i):
        ws = await open_ws(srv)
        try:
            for j in range(10):
                await ws.send(json.dumps({"type": "greet", "action": "echo",
                                          "data": {"c": i, "n": j}, "id": "%d-%d" % (i, j)}))
            for j in range(10):
                r = await recv_json(ws, timeout=15)
                eq(r.get("id"), "%d-%d" % (i, j), "reply id")
                eq(r.get("data"), {"c": i, "n": j}, "reply data")
        finally:
            await ws.close()

    await asyncio.gather(*(one(i) for i in range(100)))


@S.acase("concurrency: a client that errors does not disturb 20 busy clients", timeout=40)
async def test_concurrency_erroring_client_isolated(ctx):
    srv = basic(ctx)
    stop = asyncio.Event()

    async def busy(i):
        ws = await open_ws(srv)
        n = 0
        try:
            while not stop.is_set() or n < 5:
                r = await request(ws, "greet", "hello", {"name": str(i)}, id_="b%d" % n)
                eq(r["data"]["message"], "hello %d" % i, "busy reply")
                n += 1
        finally:
            await ws.close()
        return n

    async def bad():
        ws = await open_ws(srv)
        try:
            for k in range(30):
                await ws.send("{not json" if k % 2 else json.dumps({"type": "boom", "action": "fail", "id": k}))
                m = await recv_json(ws)
                eq(m.get("type"), "error", "bad client gets errors")
        finally:
            await ws.close()
            stop.set()

    results = await asyncio.gather(bad(), *(busy(i) for i in range(20)))
    check(all(n >= 5 for n in results[1:]), "some busy clients made no progress: %r" % results[1:])


# --------------------------------------------------------------------------
# /health
# --------------------------------------------------------------------------

@S.case("health: 200 JSON with the documented fields")
def test_health_documented_fields(ctx):
    srv = basic(ctx)
    status, headers, body = H.http_request(srv.connect_host, srv.port, "GET", "/health")
    eq(status, 200, "status")
    ctype = H.header(headers, "Content-Type") or ""
    check("json" in ctype.lower(), "Content-Type %r" % ctype)
    h = json.loads(body)
    eq(h.get("status"), "healthy", "status field")
    for k in ("connections", "rooms", "uptime_s", "reloads"):
        check(isinstance(h.get(k), (int, float)) and not isinstance(h.get(k), bool),
              "%s is not a number: %r" % (k, h))
        check(h[k] >= 0, "%s negative" % k)
    check("last_reload_error" in h, "last_reload_error missing: %r" % h)
    eq(h["last_reload_error"], None, "last_reload_error")


@S.acase("health: connections counts open websocket clients")
async def test_health_counts_websocket_clients(ctx):
    srv = basic(ctx)
    loop = asyncio.get_running_loop()

    async def conns():
        return (await loop.run_in_executor(None, srv.health))["connections"]

    async def wait_for(n):
        for _ in range(200):
            if await conns() == n:
                return
            await asyncio.sleep(0.05)
        raise H.Failure("connections stayed %r, want %d" % (await conns(), n))

    # with workers, connections sums each worker's last published count:
    # the base is one published after the earlier cases' clients left
    base = (await loop.run_in_executor(None, srv.fresh_health))["connections"]
    clients = [await open_ws(srv) for _ in range(5)]
    await wait_for(base + 5)
    for c in clients[:2]:
        await c.close()
    await wait_for(base + 3)
    for c in clients[2:]:
        await c.close()
    await wait_for(base)


@S.case("health: TCP connections that never upgraded are not counted")
def test_health_ignores_unupgraded_tcp(ctx):
    srv = basic(ctx)
    base = srv.fresh_health()["connections"]
    socks = [ctx.track(H.RawClient(srv.connect_host, srv.port)) for _ in range(3)]
    socks[0].send(b"GET / HTTP/1.1\r\nHost: x\r\n")
    h1 = srv.fresh_health()["connections"]
    eq(h1, base, "connections with 3 pending TCP connections")
    c = ctx.track(H.JsonClient(srv, welcome=True))
    H.poll(lambda: srv.health()["connections"] == base + 1, what="connections == base + 1")


@S.case("health: every field is in docs/protocol.md's /health table, and nothing else")
def test_health_fields_documented(ctx):
    with open(os.path.join(ctx.root, "docs", "protocol.md"), encoding="utf-8") as f:
        doc = f.read()
    row = re.compile(r"^\| `([a-z_.\[\]]+)` \|", re.M)
    section = doc.split("### /health fields", 1)[1].split("\n#", 1)[0]
    documented = set(row.findall(section))
    h = basic(ctx).health()
    if "worker" in h:
        # workers = N (MW_TEST_WORKERS): the fields of its own table too
        section = doc.split("#### /health with workers", 1)[1].split("\n#", 1)[0]
        documented |= set(row.findall(section))
    served = set(h)
    for k, v in h.items():
        if isinstance(v, dict):
            served |= {k + "." + sub for sub in v}
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            served |= {k + "[]." + sub for item in v for sub in item}
    eq(sorted(served - documented), [], "fields /health sends that the table lacks")
    eq(sorted(documented - served), [], "fields the table lists that /health does not send")


@S.case("health: uptime_s grows")
def test_health_uptime_grows(ctx):
    srv = basic(ctx)
    u0 = srv.health()["uptime_s"]
    H.poll(lambda: srv.health()["uptime_s"] > u0, timeout=4, interval=0.2, what="uptime_s to grow")


@S.case("health: plain GET of an unknown path -> 404")
def test_plain_get_unknown_path_404(ctx):
    srv = basic(ctx)
    status, _, _ = H.http_request(srv.connect_host, srv.port, "GET", "/definitely-not-here")
    eq(status, 404, "status")


# --------------------------------------------------------------------------
# subprotocols (fixture: subprotocols = {"b", "a"})
# --------------------------------------------------------------------------

def raw_subproto(ctx, offer):
    srv = basic(ctx)
    extra = [("Sec-WebSocket-Protocol", offer)] if offer is not None else []
    c = ctx.track(H.RawClient(srv.connect_host, srv.port))
    status, headers = c.handshake(extra=extra)
    return H.header_all(headers, "Sec-WebSocket-Protocol")


@S.case("subprotocol: client offers 'a, b' -> server picks its preference 'b'")
def test_subprotocol_server_preference(ctx):
    eq(raw_subproto(ctx, "a, b"), ["b"], "Sec-WebSocket-Protocol")


@S.case("subprotocol: client offers 'a' -> 'a'")
def test_subprotocol_single_offer(ctx):
    eq(raw_subproto(ctx, "a"), ["a"], "Sec-WebSocket-Protocol")


@S.case("subprotocol: client offers 'c' only -> no Sec-WebSocket-Protocol header")
def test_subprotocol_no_match_no_header(ctx):
    eq(raw_subproto(ctx, "c"), [], "Sec-WebSocket-Protocol")


@S.case("subprotocol: client offers 'c, a' -> 'a' (never an unoffered one)")
def test_subprotocol_never_unoffered(ctx):
    eq(raw_subproto(ctx, "c, a"), ["a"], "Sec-WebSocket-Protocol")


@S.case("subprotocol: two header lines 'c' and 'a, b' -> 'b'")
def test_subprotocol_two_header_lines(ctx):
    srv = basic(ctx)
    c = ctx.track(H.RawClient(srv.connect_host, srv.port))
    status, headers = c.handshake(extra=[("Sec-WebSocket-Protocol", "c"), ("Sec-WebSocket-Protocol", "a, b")])
    eq(H.header_all(headers, "Sec-WebSocket-Protocol"), ["b"], "Sec-WebSocket-Protocol")


@S.case("subprotocol: none offered -> no Sec-WebSocket-Protocol header")
def test_subprotocol_none_offered_no_header(ctx):
    eq(raw_subproto(ctx, None), [], "Sec-WebSocket-Protocol")


@S.acase("subprotocol: websockets client offering ['a','b'] negotiates 'b'")
async def test_subprotocol_websockets_client_negotiates(ctx):
    ws = await open_ws(basic(ctx), subprotocols=["a", "b"])
    try:
        eq(ws.subprotocol, "b", "negotiated subprotocol")
        await still_works(ws)
    finally:
        await ws.close()


@S.acase("subprotocol: websockets client offering ['c'] connects without one")
async def test_subprotocol_websockets_client_no_match(ctx):
    ws = await open_ws(basic(ctx), subprotocols=["c"])
    try:
        eq(ws.subprotocol, None, "negotiated subprotocol")
    finally:
        await ws.close()


# --------------------------------------------------------------------------
# client behaviour: compression offer, pings, close
# --------------------------------------------------------------------------

@S.acase("client: permessage-deflate offer is handled (declined or negotiated)")
async def test_permessage_deflate_offer_handled(ctx):
    ws = await open_ws(basic(ctx), compression="deflate")
    try:
        await still_works(ws)
        r = await request(ws, "greet", "echo", {"s": "x" * 5000}, id_="z")
        eq(len(r["data"]["s"]), 5000, "echo through compression offer")
    finally:
        await ws.close()


@S.acase("client: ping from the client gets a pong")
async def test_client_ping_gets_pong(ctx):
    ws = await open_ws(basic(ctx))
    try:
        waiter = await ws.ping(b"hi")
        await asyncio.wait_for(waiter, 5)
    finally:
        await ws.close()


@S.acase("client: normal close handshake completes with 1000")
async def test_normal_close_handshake_1000(ctx):
    ws = await open_ws(basic(ctx))
    await ws.close(code=1000, reason="bye")
    await asyncio.wait_for(ws.wait_closed(), 5)
    eq(ws.close_code, 1000, "close code seen by the client")


# Close codes IANA registered after RFC 6455: 1012 Service Restart, 1013 Try
# Again Later (also the slow-consumer close), 1014 Bad Gateway. Either side may
# send them, and python3-websockets answers a server's close with the same
# code. A server that refused them would fail the client's close with 1002,
# or hold the connection after the client's answer until close_timeout: the
# server here waits 60 s, so a handshake done within 15 s (a bound no machine
# is slow enough to reach) shows that it did not wait.
LONG_CLOSE_TIMEOUT_MS = 60000
HANDSHAKE_BOUND_S = 15


def patient_server(ctx):
    return lazy_server(ctx, "patient", ctx.fixture("basic"),
                       env={"MOONWIRE_CLOSE_TIMEOUT": str(LONG_CLOSE_TIMEOUT_MS)})


def disconnects(srv, code):
    status, _, body = H.http_request(srv.connect_host, srv.port, "GET", "/metrics")
    eq(status, 200, "/metrics status")
    m = re.search(r'^moonwire_disconnects_total\{code="%d"\} (\d+)$' % code, body.decode(), re.M)
    return int(m.group(1)) if m else 0


async def closed_promptly(ws, what):
    """Wait for the TCP close (recv() too ends only then), reading what comes."""
    async def drain():
        try:
            while True:
                await ws.recv()
        except websockets.ConnectionClosed:
            pass
        await ws.wait_closed()
    try:
        await asyncio.wait_for(drain(), HANDSHAKE_BOUND_S)
    except asyncio.TimeoutError:
        raise H.Failure("%s: the connection was still open %d s after the close frames "
                        "(the server waits for close_timeout, %d s)"
                        % (what, HANDSHAKE_BOUND_S, LONG_CLOSE_TIMEOUT_MS // 1000))


@S.acase("close: the server closes with 1013, the client echoes it: done at once, app sees 1013")
async def test_server_close_1013_echoed(ctx):
    srv = patient_server(ctx)
    before = disconnects(srv, 1013)
    ws = await open_ws(srv, close_timeout=HANDSHAKE_BOUND_S * 2)
    await ws.send(json.dumps({"type": "greet", "action": "later", "id": "l"}))
    await closed_promptly(ws, "after the client echoed 1013")
    eq((ws.close_code, ws.close_reason), (1013, "try again later"), "the server's close")
    # on_disconnect sees the client's answer, 1013 (not 1006 for no close)
    H.poll(lambda: disconnects(srv, 1013) == before + 1, timeout=10,
           what="moonwire_disconnects_total{code=\"1013\"} to count the client")


for _code in (1012, 1013, 1014):
    def _client_close(code):
        async def run(ctx):
            srv = patient_server(ctx)
            ws = await open_ws(srv, close_timeout=HANDSHAKE_BOUND_S * 2)
            await ws.close(code=code, reason="from the client")
            await closed_promptly(ws, "after the client's close %d" % code)
            eq(ws.close_code, code, "the code the server echoed")
            eq(ws.close_reason, "from the client", "the reason the server echoed")
        return run
    S.acase("close: a client closing with %d gets the same code back" % _code)(_client_close(_code))


# --------------------------------------------------------------------------
# examples/hello
# --------------------------------------------------------------------------

def hello_server(ctx):
    return lazy_server(ctx, "hello", ctx.example("hello"))


async def open_hello(ctx):
    """examples/hello has welcome = true."""
    return await open_ws(hello_server(ctx))


@S.acase("hello example: greet.hello replies 'Hello, NAME!' with a per-client count")
async def test_hello_example_greet_hello(ctx):
    ws = await open_hello(ctx)
    other = await open_hello(ctx)
    try:
        r = await request(ws, "greet", "hello", {"name": "Ada"}, id_="h1")
        eq((r.get("type"), r.get("action"), r.get("id")), ("greet", "hello", "h1"), "envelope")
        eq(r.get("data"), {"message": "Hello, Ada!", "count": 1}, "data")
        r = await request(ws, "greet", "hello", {"name": "Ada"}, id_="h2")
        eq(r["data"].get("count"), 2, "count on the same client")
        r = await request(other, "greet", "hello", {"name": "Bob"}, id_="h3")
        eq(r.get("data"), {"message": "Hello, Bob!", "count": 1}, "other client's count")
    finally:
        await ws.close()
        await other.close()


@S.acase("hello example: greet.shout emits greet/shouted then replies {sent=true}")
async def test_hello_example_greet_shout(ctx):
    ws = await open_hello(ctx)
    try:
        await ws.send(json.dumps({"type": "greet", "action": "shout", "data": {"name": "ada"}, "id": "s1"}))
        ev = await recv_json(ws)
        eq((ev.get("type"), ev.get("action")), ("greet", "shouted"), "event")
        eq(ev.get("data"), {"message": "HELLO, ADA!"}, "event data")
        check(isinstance(ev.get("ts"), (int, float)), "event ts missing: %r" % ev)
        check("id" not in ev, "event carries an id: %r" % ev)
        r = await recv_json(ws)
        eq((r.get("id"), r.get("data")), ("s1", {"sent": True}), "reply")
    finally:
        await ws.close()


@S.acase("hello example: bad names, unknown action, malformed JSON -> errors; stays open")
async def test_hello_example_errors_stay_open(ctx):
    ws = await open_hello(ctx)
    try:
        expect_error(await request(ws, "greet", "hello", {"name": ""}, id_="e1"), "INVALID_MESSAGE", "e1")
        expect_error(await request(ws, "greet", "hello", {"name": "x" * 65}, id_="e2"), "INVALID_MESSAGE", "e2")
        expect_error(await request(ws, "greet", "shout", {}, id_="e3"), "INVALID_MESSAGE", "e3")
        expect_error(await request(ws, "greet", "_check_name", {}, id_="e4"), "NOT_FOUND", "e4")
        expect_error(await request(ws, "greet", "no_such_action", {}, id_="e5"), "NOT_FOUND", "e5")
        await ws.send("{oops")
        expect_error(await recv_json(ws), "INVALID_MESSAGE")
        r = await request(ws, "greet", "hello", {"name": "again"}, id_="h9")
        eq(r.get("id"), "h9", "id after errors")
    finally:
        await ws.close()


# --------------------------------------------------------------------------
# IPv6
# --------------------------------------------------------------------------

def have_ipv6():
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


@S.acase("ipv6: serve --host ::1, handshake and request over [::1]")
async def test_ipv6_loopback(ctx):
    check(have_ipv6(), "this machine has no ::1 (cannot test IPv6)")
    srv = lazy_server(ctx, "ipv6", ctx.fixture("basic"), host="::1")
    check(re.search(r"listening on ws://\[::1\]:%d/" % srv.port, srv.log()) is not None,
          "log line does not show [::1]: %r" % srv.log()[:300])
    ws = await open_ws(srv)
    try:
        await still_works(ws, "v6")
    finally:
        await ws.close()


# --------------------------------------------------------------------------
# payloads pass through unchanged (issue 9), through the real binary
# --------------------------------------------------------------------------

# Texts lua-cjson used to change: 15-17 digit integers, 1e400, -0, 1E+2,
# empty arrays, key order, duplicate keys, escapes, non-BMP characters.
PASSTHROUGH = [
    '{"n":1700000000123456,"tags":[]}',
    '{"a":123456789012345,"b":12345678901234567,"c":1e400,"d":-0,"e":1E+2}',
    '{"z":1,"a":{"y":[],"x":{}},"z":2}',
    '{"s":"\\u00e9\\/\\n","t":"\U0001F600"}',
    '[[],{},[{}]]',
]


@S.acase("hub example: publish reaches the room byte for byte (no re-encoding)")
async def test_hub_publish_byte_exact(ctx):
    srv = lazy_server(ctx, "hub", ctx.example("hub"))
    a = await open_ws(srv, welcome=False)
    b = await open_ws(srv, welcome=False)
    try:
        for ws in (a, b):
            await ws.send('{"type":"subscribe","room":"r"}')
            eq(await recv_json(ws), {"type": "subscribed", "room": "r"}, "subscribed")
        for data in PASSTHROUGH:
            await a.send('{"type":"publish","room":"r","data":%s}' % data)
            for ws in (a, b):
                raw = await asyncio.wait_for(ws.recv(), RECV_TIMEOUT)
                check('"data":' + data in raw, "data changed on the way: sent %s, got %s"
                      % (data, raw))
            await a.send('{"type":"echo","data":%s}' % data)
            raw = await asyncio.wait_for(a.recv(), RECV_TIMEOUT)
            check('"data":' + data in raw, "echo changed data: sent %s, got %s" % (data, raw))
    finally:
        await a.close()
        await b.close()


@S.acase("system publish: data.data reaches the other members byte for byte")
async def test_system_publish_byte_exact(ctx):
    srv = basic(ctx)
    workers = srv.workers()
    a = await open_ws(srv)
    b = await open_ws(srv)
    try:
        for ws in (a, b):
            r = await request(ws, "system", "join", {"room": "pt"}, id_="j")
            eq(r.get("data", {}).get("room"), "pt", "joined")
        for data in PASSTHROUGH + ['12345678901234567', '"a\\/b"']:
            await a.send('{"type":"system","action":"publish","id":"p","data":{"room":"pt","data":%s}}'
                         % data)
            raw = await asyncio.wait_for(b.recv(), RECV_TIMEOUT)
            check(('"data":' + data + '}') in raw or ('"data":' + data + ',') in raw,
                  "data changed: sent %s, got %s" % (data, raw))
            r = await recv_json(a)
            # with workers, delivered counts the publisher's worker's
            # members only (docs/protocol.md): b may be on the other one
            delivered = r.get("data", {}).get("delivered")
            if workers == 1:
                eq(delivered, 1, "publish reply")
            else:
                check(delivered in (0, 1), "publish reply: delivered %r" % delivered)
    finally:
        await a.close()
        await b.close()


if __name__ == "__main__":
    H.main(S)
