#!/usr/bin/python3
"""examples/servercore against the real binary, a real redis-server and
real clients (python3-websockets): the flows of guide 002 (the ServerCore
WebSocket protocol handler), spoken as a client written against the guide
speaks them.

A redis-server is started by this test on a free port (no persistence)
and holds the app's tokens, users' roles and topics' roles (the key layout
of examples/servercore/README.md); the test stops it mid-way to see clean
answers while Redis is down, then starts it again. Three moonwire
servers: "core" (the example's defaults, SERVERCORE_API_KEY set),
"limited" (SERVERCORE_MAX_CONNECTIONS_PER_USER=1, SERVERCORE_RATE_LIMIT=5)
and "workers" (as core, with workers = 2).

With workers, the `delivered` of an answer counts the subscribers of the
worker that answered (docs/lua-api.md, room:broadcast): the cases that
check it exactly keep every worker but one stopped (SIGSTOP) while their
clients connect and their requests are answered, so one worker serves
them all (a no-op with one worker, as the core and limited servers run).
The "workers" case places clients on each worker the same way.
"""

import contextlib

import asyncio
import atexit
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

S = H.Suite("moonwire examples/servercore (guide 002, python websockets client, real Redis)")
RECV_TIMEOUT = 5.0
KEY = "it-servercore-key"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
DENIED = {"code": "INTERNAL_ERROR", "message": "Permission denied"}
UNAVAILABLE = {"code": "INTERNAL_ERROR", "message": "Permission check unavailable"}


class Redis:
    """A redis-server of this test's own, on a free port, driven with
    redis-cli. stop() kills it (as a crash: connections drop at once);
    start() brings it back on the same port."""

    def __init__(self):
        self.port = H.free_port()
        self.dir = tempfile.mkdtemp(prefix="moonwire-it-redis-")
        self.proc = None

    def start(self):
        for _ in range(5):
            self.proc = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", self.dir,
                 "--protected-mode", "no", "--loglevel", "warning"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and self.proc.poll() is None:
                if self.cli("PING") == "PONG":
                    return
                time.sleep(0.02)
            self.stop()
        raise H.Failure("redis-server on port %d did not answer" % self.port)

    def stop(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=5)
            self.proc = None

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def cli(self, *args):
        p = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port)] + list(args),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=10)
        return p.stdout.decode("utf-8", "replace").strip()

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def seed(self):
        """Tokens, roles and topic permissions of the cases below."""
        self.cli("FLUSHALL")
        self.cli("SET", "servercore:token:tok-alice", "alice")
        self.cli("SADD", "servercore:user:alice:roles", "admin", "user")
        self.cli("SET", "servercore:token:tok-bob", "bob")
        self.cli("SADD", "servercore:user:bob:roles", "user")
        self.cli("SADD", "servercore:topic:tasks.update:roles", "user", "admin")
        self.cli("SADD", "servercore:topic:admin.audit:roles", "admin")
        self.cli("SADD", "servercore:topic:news:roles", "*")
        self.cli("SADD", "servercore:topic:probe:roles", "*")


class State:
    redis = None


@S.setup
def start_servers(ctx):
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        raise H.Failure("redis-server and redis-cli are needed (Debian: redis-server)")
    State.redis = Redis()
    atexit.register(State.redis.close)  # also when the suite dies early
    State.redis.start()
    State.redis.seed()
    app = ctx.example("servercore")
    env = {"SERVERCORE_REDIS_URL": State.redis.url, "SERVERCORE_API_KEY": KEY,
           "SERVERCORE_REDIS_TIMEOUT": "2000"}
    # core and limited run one worker, also under MW_TEST_WORKERS and on a
    # machine with several cores: their cases check exact counts (/health's
    # connections and subscriptions right after a change), which with
    # workers reach the other workers' view a moment later
    # (docs/scaling.md). What crosses workers is the "workers" server's.
    one = dict(env, MOONWIRE_WORKERS="1")
    ctx.start("core", app, env=one)
    ctx.start("limited", app, env=dict(one, SERVERCORE_MAX_CONNECTIONS_PER_USER="1",
                                       SERVERCORE_RATE_LIMIT="5"))
    ctx.start("workers", app, env=dict(env, MOONWIRE_WORKERS="2"))


@S.teardown
def stop_redis(ctx):
    if State.redis:
        State.redis.close()


def core(ctx):
    return ctx.servers["core"]


def limited(ctx):
    return ctx.servers["limited"]


def worker_pids(srv):
    """The worker processes of srv (none with one worker: it serves itself)."""
    return H.children(srv.proc.pid)


@contextlib.contextmanager
def only(srv, pid):
    """Every worker of srv but pid stopped: what connects, and each request,
    is served by pid (pid None: nothing stopped)."""
    others = [p for p in worker_pids(srv) if p != pid] if pid else []
    for p in others:
        os.kill(p, signal.SIGSTOP)
    try:
        yield
    finally:
        for p in others:
            try:
                os.kill(p, signal.SIGCONT)
            except ProcessLookupError:
                pass


def one_worker(srv):
    """A worker of srv to pin a case to (None with one worker)."""
    pids = worker_pids(srv)
    return pids[0] if pids else None


def check_metadata(msg):
    meta = msg.get("metadata")
    check(isinstance(meta, dict) and sorted(meta) == ["timestamp", "version"],
          "metadata: %r" % msg)
    eq(meta["version"], "1.0.0", "metadata.version")
    ts = meta["timestamp"]
    check(isinstance(ts, int) and not isinstance(ts, bool), "timestamp not an integer: %r" % msg)
    # Date.now(): milliseconds, near this machine's clock
    check(abs(ts - time.time() * 1000) < 60_000, "timestamp not now in ms: %r" % msg)


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
    check_metadata(msg)
    return msg


async def open_ws(srv, token=None, header=False, path="/ws"):
    headers = {}
    if token and header:
        headers["Authorization"] = "Bearer " + token
    elif token:
        path += "?token=" + token
    return await websockets.connect(srv.url(path), open_timeout=10, close_timeout=2,
                                    ping_interval=None, extra_headers=headers)


_ids = [0]


async def request(ws, action, payload=None, raw=False):
    """Sends {id, type:'request', action, payload?} and returns the message
    that answers it (events that come first are skipped)."""
    _ids[0] += 1
    rid = "it-%d" % _ids[0]
    msg = {"id": rid, "type": "request", "action": action}
    if payload is not None:
        msg["payload"] = payload
    await ws.send(json.dumps(msg))
    while True:
        text = await recv_raw(ws)
        got = json.loads(text)
        if got.get("id") == rid:
            check_metadata(got)
            return (got, text) if raw else got
        check(got.get("type") == "event", "unexpected message %r" % got)


async def subscribe(ws, topic):
    return await request(ws, "subscribe", {"topic": topic})


async def expect_event(ws, timeout=RECV_TIMEOUT):
    msg = await recv_json(ws, timeout)
    eq(msg.get("type"), "event", "an event (%r)" % msg)
    check(UUID_RE.match(msg.get("id", "")), "event id is not a UUID: %r" % msg)
    return msg


async def expect_nothing(ws):
    """Nothing was sent to ws: its next message answers a ping."""
    got = await request(ws, "ping")
    eq(got["type"], "response", "answer to ping")


def http(srv, method, path, body=None, headers=(("Authorization", "apikey " + KEY),),
         raw=False):
    """(status, headers, decoded JSON or raw body) of one HTTP request (the
    raw body with raw=True)."""
    s = H.connect(srv.connect_host, srv.port)
    try:
        data = b""
        if body is not None:
            data = (body if isinstance(body, str) else json.dumps(body)).encode("utf-8")
        req = "%s %s HTTP/1.1\r\nHost: it\r\nConnection: close\r\n" % (method, path)
        req += "".join("%s: %s\r\n" % kv for kv in headers)
        if body is not None:
            req += "Content-Type: application/json\r\nContent-Length: %d\r\n" % len(data)
        s.sendall(req.encode("latin-1") + b"\r\n" + data)
        status, _, hdrs, rest = H.read_http_head(s)
        answer = H.read_body(s, hdrs, rest)
    finally:
        s.close()
    if not raw and (H.header(hdrs, "Content-Type") or "").startswith("application/json"):
        return status, hdrs, json.loads(answer.decode("utf-8"))
    return status, hdrs, answer


async def close_all(*clients):
    for ws in clients:
        await ws.close()


# --------------------------------------------------------------------------
# authentication
# --------------------------------------------------------------------------

@S.acase("connect with a token in the query string: authenticated as its user")
async def test_token_query(ctx):
    ws = await open_ws(core(ctx), "tok-alice")
    try:
        got = await request(ws, "whoami")
        eq(got["payload"], {"authenticated": True, "user": "alice", "roles": ["admin", "user"]},
           "whoami")
    finally:
        await ws.close()


@S.acase("connect with a bearer token in the Authorization header: authenticated")
async def test_token_header(ctx):
    ws = await open_ws(core(ctx), "tok-bob", header=True)
    try:
        eq((await request(ws, "whoami"))["payload"],
           {"authenticated": True, "user": "bob", "roles": ["user"]}, "whoami")
    finally:
        await ws.close()


@S.acase("connect without a token, or with an unknown one: allowed, unauthenticated")
async def test_no_token(ctx):
    a = await open_ws(core(ctx))
    b = await open_ws(core(ctx), "tok-nobody")
    try:
        for ws in (a, b):
            eq((await request(ws, "whoami"))["payload"],
               {"authenticated": False, "user": None, "roles": []}, "whoami")
    finally:
        await close_all(a, b)


@S.acase("connections per user: the second connection of a user is closed with 1008")
async def test_connections_per_user(ctx):
    first = await open_ws(limited(ctx), "tok-alice")
    second = await open_ws(limited(ctx), "tok-alice")
    try:
        try:
            await asyncio.wait_for(second.recv(), RECV_TIMEOUT)
            raise H.Failure("the second connection got a message")
        except websockets.ConnectionClosed as e:
            eq((e.rcvd.code, e.rcvd.reason), (1008, "too many connections for this user"),
               "close")
        eq((await request(first, "ping"))["type"], "response", "the first stays")
    finally:
        await close_all(first, second)


# --------------------------------------------------------------------------
# request/response
# --------------------------------------------------------------------------

@S.acase("request/response: the response carries the request's id and action, guide's order")
async def test_request_response(ctx):
    ws = await open_ws(core(ctx))
    try:
        got, text = await request(ws, "ping", raw=True)
        check(re.match(r'^\{"id":"it-\d+","type":"response","action":"ping",'
                       r'"payload":\{"pong":true\},"metadata":\{"timestamp":\d{13},'
                       r'"version":"1\.0\.0"\}\}$', text), "response text: %r" % text)
        # several in flight, answered in order, each by its id
        for i in range(5):
            await ws.send(json.dumps({"id": "m%d" % i, "type": "request", "action": "ping"}))
        for i in range(5):
            eq((await recv_json(ws))["id"], "m%d" % i, "response order")
    finally:
        await ws.close()


@S.acase("messages of another type than request are ignored")
async def test_ignored_types(ctx):
    ws = await open_ws(core(ctx))
    try:
        for t in ("response", "event", "error"):
            await ws.send(json.dumps({"id": "x", "type": t, "action": "ping"}))
        await expect_nothing(ws)
    finally:
        await ws.close()


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------

@S.acase("malformed messages: sendError's message, a fresh id, action 'error'")
async def test_malformed(ctx):
    ws = await open_ws(core(ctx))
    try:
        await ws.send("{not json")
        text = await recv_raw(ws)
        check(re.match(r'^\{"id":"[0-9a-f-]{36}","type":"error","action":"error","payload":'
                       r'\{"code":"INVALID_MESSAGE","message":"Invalid message: malformed JSON"\},'
                       r'"metadata":\{"timestamp":\d{13},"version":"1\.0\.0"\}\}$', text),
              "error text: %r" % text)
        check(UUID_RE.match(json.loads(text)["id"]), "error id is not a UUID")
        await ws.send(json.dumps({"id": "q1", "type": "query", "action": "ping"}))
        got = await recv_json(ws)
        eq((got["id"], got["type"], got["payload"]["code"]), ("q1", "error", "INVALID_MESSAGE"),
           "unknown type")
        await ws.send(json.dumps({"type": "request", "action": "ping"}))
        got = await recv_json(ws)
        eq(got["payload"]["message"], "Invalid message: id must be a non-empty string", "no id")
        check(UUID_RE.match(got["id"]), "generated id")
    finally:
        await ws.close()


@S.acase("unknown action: NOT_FOUND with the request's id; the connection goes on")
async def test_unknown_action(ctx):
    ws = await open_ws(core(ctx))
    try:
        got = await request(ws, "launch")
        eq((got["type"], got["action"], got["payload"]),
           ("error", "error", {"code": "NOT_FOUND", "message": "Unknown action: launch"}),
           "unknown action")
        eq((await request(ws, "ping"))["type"], "response", "still served")
    finally:
        await ws.close()


@S.acase("rate limiting: past SERVERCORE_RATE_LIMIT, RATE_LIMIT_EXCEEDED errors")
async def test_rate_limit(ctx):
    ws = await open_ws(limited(ctx))
    try:
        # 12 at once: 5 pass (the burst), the rest is refused unless the
        # sending took over a second; under 10 refusals in a row (which
        # would close the connection).
        for i in range(12):
            await ws.send(json.dumps({"id": "r%d" % i, "type": "request", "action": "ping"}))
        got = [await recv_json(ws) for _ in range(12)]
        errors = [m for m in got if m["type"] == "error"]
        check(errors and all(m["payload"]["code"] == "RATE_LIMIT_EXCEEDED" and
                             m["action"] == "error" and UUID_RE.match(m["id"])
                             for m in errors), "errors: %r" % errors)
        check(len(got) - len(errors) >= 5, "responses within the limit: %r" % got)
    finally:
        await ws.close()


# --------------------------------------------------------------------------
# subscriptions and broadcasts
# --------------------------------------------------------------------------

@S.acase("subscribe: allowed by the user's roles in Redis, else 'Permission denied'")
async def test_subscribe_permission(ctx):
    bob = await open_ws(core(ctx), "tok-bob")
    anon = await open_ws(core(ctx))
    try:
        got = await subscribe(bob, "tasks.update")
        eq((got["type"], got["action"], got["payload"]),
           ("response", "subscribe", {"topic": "tasks.update", "subscribed": True}), "allowed")
        got = await subscribe(bob, "admin.audit")
        eq((got["type"], got["action"], got["payload"]), ("error", "error", DENIED), "denied")
        check(got["id"].startswith("it-"), "the error answers the request")
        eq((await subscribe(anon, "tasks.update"))["payload"], DENIED, "anonymous, role topic")
        eq((await subscribe(anon, "news"))["type"], "response", "anonymous, '*' topic")
        eq((await request(bob, "subscriptions"))["payload"], {"topics": ["tasks.update"]},
           "bob's subscriptions")
        got = await request(bob, "unsubscribe", {"topic": "tasks.update"})
        eq(got["payload"], {"topic": "tasks.update", "subscribed": False}, "unsubscribe")
    finally:
        await close_all(bob, anon)


@S.acase("a backend publishes through the server API: subscribers get the guide's event")
async def test_api_publish(ctx):
    srv = core(ctx)
    pin = one_worker(srv)
    with only(srv, pin):
        a = await open_ws(srv, "tok-alice")
        b = await open_ws(srv, "tok-bob")
        outsider = await open_ws(srv)
    try:
        await subscribe(a, "tasks.update")
        await subscribe(b, "tasks.update")
        with only(srv, pin):
            status, _, doc = http(srv, "POST", "/api/publish",
                                  '{"room":"tasks.update","data":{"taskId":"123", '
                                  '"status":"completed"}}')
        eq((status, doc), (200, {"room": "tasks.update", "delivered": 2, "dropped": 0}),
           "publish answer")
        texts = [await recv_raw(a), await recv_raw(b)]
        for text in texts:
            check(re.match(r'^\{"id":"[0-9a-f-]{36}","type":"event","action":"tasks\.update",'
                           r'"payload":\{"taskId":"123", "status":"completed"\},"metadata":'
                           r'\{"timestamp":\d{13},"version":"1\.0\.0"\}\}$', text),
                  "event text: %r" % text)
        eq(json.loads(texts[0])["id"], json.loads(texts[1])["id"], "one event, one id")
        await expect_nothing(outsider)
        status, _, _ = http(core(ctx), "POST", "/api/publish", {"room": "tasks.update",
                                                                 "data": 1}, headers=())
        eq(status, 401, "publish without the key")
    finally:
        await close_all(a, b, outsider)


@S.acase("a backend's filtered broadcast (POST /broadcast): only subscribers with a role")
async def test_filtered_broadcast(ctx):
    srv = core(ctx)
    pin = one_worker(srv)
    with only(srv, pin):
        alice = await open_ws(srv, "tok-alice")
        bob = await open_ws(srv, "tok-bob")
        anon = await open_ws(srv)
    try:
        for ws in (alice, bob, anon):
            eq((await subscribe(ws, "news"))["type"], "response", "subscribe news")
        # the guide's ServerEvents.BROADCAST, as a backend sends it
        with only(srv, pin):
            status, _, doc = http(srv, "POST", "/broadcast", {
                "topic": "news", "data": {"taskId": "123", "status": "completed"},
                "filter": {"roles": ["admin"]}})
        eq((status, doc), (200, {"topic": "news", "delivered": 1, "dropped": 0}), "answer")
        ev = await expect_event(alice)
        eq((ev["action"], ev["payload"]), ("news", {"taskId": "123", "status": "completed"}),
           "event")
        await expect_nothing(bob)
        await expect_nothing(anon)
        with only(srv, pin):
            status, _, doc = http(srv, "POST", "/broadcast",
                                  {"topic": "news", "data": 2,
                                   "filter": {"roles": ["user", "x"]}})
        eq(doc["delivered"], 2, "delivered to users")
        eq((await expect_event(alice))["payload"], 2, "alice (admin and user)")
        eq((await expect_event(bob))["payload"], 2, "bob (user)")
        await expect_nothing(anon)
        status, hdrs, _ = http(core(ctx), "POST", "/broadcast", {"topic": "news", "data": 3},
                               headers=(("Authorization", "apikey wrong"),))
        eq((status, H.header(hdrs, "WWW-Authenticate")), (401, "apikey"), "wrong key")
        status, _, doc = http(core(ctx), "POST", "/broadcast", '{"topic":"news"}')
        eq((status, doc["error"]["code"]), (400, "BAD_REQUEST"), "no data")
        await expect_nothing(anon)
    finally:
        await close_all(alice, bob, anon)


# --------------------------------------------------------------------------
# /health
# --------------------------------------------------------------------------

@S.acase("/health: the guide's shape and key order, with live counts")
async def test_health(ctx):
    srv = core(ctx)
    status, hdrs, raw = http(srv, "GET", "/health", headers=(), raw=True)
    eq(status, 200, "status")
    eq(H.header(hdrs, "Content-Type"), "application/json", "Content-Type")
    check(re.match(rb'^\{"healthy":true,"connections":\d+,"rooms":\d+,'
                   rb'"details":\{"subscriptions":\d+\}\}$', raw), "health body: %r" % raw)
    before = json.loads(raw)
    ws = await open_ws(srv, "tok-alice")
    try:
        await subscribe(ws, "tasks.update")
        await subscribe(ws, "admin.audit")
        doc = H.poll(lambda: (lambda d: d if d["connections"] == before["connections"] + 1
                              else None)(srv.health()), what="the new connection counted")
        eq(doc["details"]["subscriptions"], before["details"]["subscriptions"] + 2,
           "subscriptions")
        check(doc["rooms"] >= 2, "rooms: %r" % doc)
    finally:
        await ws.close()
    H.poll(lambda: srv.health() == before, what="/health back to %r" % before)


# --------------------------------------------------------------------------
# workers = 2
# --------------------------------------------------------------------------

PROBE_WAIT = 1.0        # how long one probe is waited for before the next
PROBE_DEADLINE = 60.0   # how long the other worker may take to hear the bus


async def next_event(ws, timeout=RECV_TIMEOUT):
    """The next event that is not a probe."""
    while True:
        ev = await expect_event(ws)
        if ev["action"] != "probe":
            return ev


async def answer_comes_next(ws, who):
    """Nothing but probes was sent to ws: the next other message it reads
    answers a ping."""
    _ids[0] += 1
    rid = "it-%d" % _ids[0]
    await ws.send(json.dumps({"id": rid, "type": "request", "action": "ping"}))
    while True:
        got = json.loads(await recv_raw(ws))
        if got.get("action") != "probe":
            break
    eq((got.get("id"), got.get("type")), (rid, "response"), "%s: the next message" % who)


@S.acase("with workers = 2: a filtered broadcast reaches the matching subscribers of both "
         "workers, each once; /health counts both workers' subscriptions", timeout=90)
async def test_workers(ctx):
    srv = ctx.servers["workers"]
    pids = H.poll(lambda: (lambda p: p if len(p) == 2 else None)(worker_pids(srv)),
                  what="two workers")
    w1, w2 = pids
    with only(srv, w1):
        alice = await open_ws(srv, "tok-alice")    # admin, user
    with only(srv, w2):
        bob = await open_ws(srv, "tok-bob")        # user
        anon = await open_ws(srv)
    try:
        for ws in (alice, bob, anon):
            eq((await subscribe(ws, "news"))["type"], "response", "subscribe news")
        eq((await subscribe(bob, "probe"))["type"], "response", "subscribe probe")
        # w2 takes the bus from w1 once the supervisor has its subscription:
        # probes (filtered broadcasts to bob's other topic) until one arrives
        deadline = time.monotonic() + PROBE_DEADLINE
        while True:
            with only(srv, w1):
                status, _, doc = http(srv, "POST", "/broadcast", {
                    "topic": "probe", "data": 0, "filter": {"roles": ["user"]}})
            eq((status, doc["delivered"]), (200, 0), "probe answered by w1")
            try:
                eq((await expect_event(bob, PROBE_WAIT))["action"], "probe", "probe")
                break
            except asyncio.TimeoutError:
                check(time.monotonic() < deadline, "no probe reached worker 2")

        # answered by w1: alice (w1) counted; bob (w2) gets it from w2
        with only(srv, w1):
            status, _, doc = http(srv, "POST", "/broadcast",
                                  {"topic": "news", "data": 1, "filter": {"roles": ["user"]}})
        eq((status, doc), (200, {"topic": "news", "delivered": 1, "dropped": 0}), "answer (w1)")
        a, b = await next_event(alice), await next_event(bob)
        eq((a["payload"], b["payload"]), (1, 1), "payloads")
        eq(a["id"], b["id"], "one event, one id on both workers")
        # answered by w2, which has no admin: alice on w1 still gets it
        with only(srv, w2):
            status, _, doc = http(srv, "POST", "/broadcast", {
                "topic": "news", "data": {"n": 2}, "filter": {"roles": ["admin"]}})
        eq((status, doc), (200, {"topic": "news", "delivered": 0, "dropped": 0}), "answer (w2)")
        eq((await next_event(alice))["payload"], {"n": 2}, "admin on w1")
        # each once, and nothing to those without the role
        for ws, who in ((alice, "alice"), (bob, "bob"), (anon, "anon")):
            await answer_comes_next(ws, who)

        # /health, from either worker: 3 connections, 2 topics, 4 subscriptions
        want = {"healthy": True, "connections": 3, "rooms": 2, "details": {"subscriptions": 4}}
        for pid in (w1, w2):
            def health(pid=pid):
                with only(srv, pid):
                    _, _, doc = http(srv, "GET", "/health", headers=())
                return doc
            H.poll(lambda: health() == want, what="/health of worker %d = %r" % (pid, want))
    finally:
        await close_all(alice, bob, anon)


# --------------------------------------------------------------------------
# Redis stopped (keep these last: they stop and restart Redis)
# --------------------------------------------------------------------------

@S.acase("Redis stopped: a subscribe gets a clean error, tokens let in unauthenticated; "
       "back when Redis is", timeout=60)
async def test_redis_down(ctx):
    srv = core(ctx)
    bob = await open_ws(srv, "tok-bob")
    try:
        eq((await subscribe(bob, "tasks.update"))["type"], "response", "subscribe with Redis")
        State.redis.stop()
        got = await subscribe(bob, "admin.audit")
        eq((got["type"], got["action"], got["payload"]), ("error", "error", UNAVAILABLE),
           "subscribe without Redis")
        late = await open_ws(srv, "tok-alice")
        try:
            eq((await request(late, "whoami"))["payload"]["authenticated"], False,
               "a token while Redis is down")
        finally:
            await late.close()
        eq((await request(bob, "ping"))["type"], "response", "requests without Redis")
        check(srv.health()["healthy"] is True, "healthy")
        check(srv.alive(), "server alive")
        State.redis.start()
        State.redis.seed()
        deadline = time.monotonic() + 20
        while True:
            got = await subscribe(bob, "tasks.update")
            if got["type"] == "response":
                break
            check(time.monotonic() < deadline, "no subscribe after Redis came back: %r" % got)
            await asyncio.sleep(0.2)
        again = await open_ws(srv, "tok-alice")
        try:
            eq((await request(again, "whoami"))["payload"]["authenticated"], True,
               "tokens validated again")
        finally:
            await again.close()
    finally:
        await bob.close()
    check("permission check for topic" in srv.log(), "the failure is logged")


if __name__ == "__main__":
    sys.exit(S.main())
