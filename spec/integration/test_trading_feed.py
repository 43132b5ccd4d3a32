#!/usr/bin/python3
"""examples/trading-feed against the real binary, with real clients
(python3-websockets) and a real nats-server: the @aladdin/websocket
client protocol (shared/seeds/000, "Message Protocol"), spoken as a client
written against the guide speaks it, fed from NATS subjects and from a
backend's POST /api/emit.

Servers: "feed" (the app's settings, NATS_URL of a nats-server this test
starts on a free port), "short" (authTimeout under a second), "heartbeat"
(pings every 1.5 s, a pong expected within 1 s), "strict" (a rate limit of 5 messages a minute, so that the
sixth is refused whatever the machine's speed), "nonats" (NATS_URL of a
port nobody listens on: it must serve all the same) and "workers"
(workers = 2: every worker has its own NATS subscription and broadcasts
to its own members, so each subscriber gets an event once). Tokens are HS256,
signed here with Python's hmac. NATS messages are published with the NATS
text protocol over a plain socket (CONNECT, PUB, PING/PONG).
"""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

S = H.Suite("moonwire examples/trading-feed (@aladdin/websocket guide, websockets client, nats-server)")
RECV_TIMEOUT = 5.0
SECRET = "trading-feed-integration-secret-32b"
KEY = "feed-api-key"
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def hs256(claims, secret=SECRET):
    part = lambda obj: b64url(json.dumps(obj, separators=(",", ":")).encode("utf-8"))  # noqa: E731
    signing = part({"alg": "HS256", "typ": "JWT"}) + "." + part(claims)
    mac = hmac.new(secret.encode("utf-8"), signing.encode("ascii"), hashlib.sha256).digest()
    return signing + "." + b64url(mac)


# --------------------------------------------------------------------------
# nats-server
# --------------------------------------------------------------------------

class Nats:
    """A nats-server on a free loopback port, for the suite's life."""

    def __init__(self, workdir):
        self.port = H.free_port()
        self.log = os.path.join(workdir, "nats.log")
        self.proc = None

    def start(self):
        self._err = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port)],
            stdin=subprocess.DEVNULL, stdout=self._err, stderr=self._err)
        H.poll(self._answers, timeout=10, what="nats-server answering on %d" % self.port)

    def _answers(self):
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=1)
        except OSError:
            return False
        try:
            return s.recv(4096).startswith(b"INFO ")
        except OSError:
            return False
        finally:
            s.close()

    def kill(self):
        """SIGKILL, as a crash; start() brings it back on the same port."""
        self.proc.kill()
        self.proc.wait(timeout=5)
        self._err.close()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if not self._err.closed:
            self._err.close()

    def publish(self, subject, payload):
        """PUB subject payload, then PING: the server's PONG says it has
        processed the PUB (NATS handles a connection's commands in order)."""
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        try:
            f = s.makefile("rb")
            check(f.readline().startswith(b"INFO "), "nats INFO")
            s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n'
                      + b"PUB %s %d\r\n" % (subject.encode("ascii"), len(data)) + data
                      + b"\r\nPING\r\n")
            line = f.readline()
            eq(line, b"PONG\r\n", "nats answer to PING")
        finally:
            s.close()


@S.setup
def start_servers(ctx):
    nats = Nats(ctx.tmpdir("moonwire-nats-"))
    nats.start()
    ctx.nats = nats
    app = ctx.example("trading-feed")
    common = {"JWT_SECRET": SECRET, "MOONWIRE_API_KEY": KEY}
    ctx.start("feed", app, env=dict(common, NATS_URL="nats://127.0.0.1:%d" % nats.port))
    ctx.start("short", app, env=dict(common, MOONWIRE_AUTH_TIMEOUT="800"))
    ctx.start("heartbeat", app, env=dict(common, PING_INTERVAL="1500", PONG_TIMEOUT="1000"))
    ctx.start("strict", app, env=dict(common, RATE_LIMIT_WINDOW_MS="60000",
                                      RATE_LIMIT_MAX_MESSAGES="5"))
    ctx.start("nonats", app, env=dict(common, NATS_URL="nats://127.0.0.1:%d" % H.free_port()))
    ctx.start("workers", app, env=dict(common, NATS_URL="nats://127.0.0.1:%d" % nats.port,
                                       MOONWIRE_WORKERS="2"))


@S.teardown
def stop_nats(ctx):
    ctx.nats.stop()


async def open_ws(srv):
    return await websockets.connect(srv.url("/ws"), open_timeout=5, close_timeout=2,
                                    ping_interval=None)


async def recv(ws, timeout=RECV_TIMEOUT):
    raw = await asyncio.wait_for(ws.recv(), timeout)
    check(isinstance(raw, str), "server sent a binary frame: %r" % raw[:60])
    try:
        return json.loads(raw), raw
    except ValueError:
        raise H.Failure("server sent invalid JSON: %r" % raw[:200])


async def recv_json(ws, timeout=RECV_TIMEOUT):
    return (await recv(ws, timeout))[0]


async def send(ws, obj):
    await ws.send(json.dumps(obj))


async def connected(srv):
    """A client past the connected message: (ws, the message)."""
    ws = await open_ws(srv)
    msg = await recv_json(ws)
    eq(msg["type"], "connected", "first message")
    return ws, msg


async def login(srv, sub="user-123"):
    ws, _ = await connected(srv)
    await send(ws, {"type": "auth", "token": hs256({"sub": sub})})
    msg = await recv_json(ws)
    while msg["type"] == "ping":
        # the heartbeat server pings every client every 1.5 s: on a busy
        # machine one may come before the answer; answer it as a client does
        await send(ws, {"type": "pong", "timestamp": msg["timestamp"]})
        msg = await recv_json(ws)
    eq(msg["type"], "authenticated", "auth answer")
    return ws


async def subscribe(ws, channel):
    await send(ws, {"type": "subscribe", "channel": channel})
    msg = await recv_json(ws)
    eq((msg["type"], msg["channel"]), ("subscribed", channel), "subscribe answer")


async def nothing_more(ws, timeout=0.5):
    """The client gets nothing more (the server's PONG to our ping comes
    after anything sent before it)."""
    await asyncio.wait_for(await ws.ping(), 5)
    try:
        raw = await asyncio.wait_for(ws.recv(), timeout)
        raise H.Failure("unexpected message: %r" % raw[:200])
    except asyncio.TimeoutError:
        pass


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
    return status, json.loads(answer) if answer else None


# --------------------------------------------------------------------------
# connection and authentication
# --------------------------------------------------------------------------

@S.acase("connection: {type: connected, clientId: UUID, timestamp}, keys in the guide's order")
async def test_connected(ctx):
    ws = await open_ws(ctx.servers["feed"])
    try:
        before = int(time.time() * 1000)
        msg, raw = await recv(ws)
        eq(list(msg), ["type", "clientId", "timestamp"], "keys")
        eq(msg["type"], "connected", "type")
        check(len(msg["clientId"]) == 36 and msg["clientId"][14] == "4", "UUID v4 clientId")
        check(abs(msg["timestamp"] - before) < 60000, "timestamp is ms since the epoch")
        check(raw.startswith('{"type":"connected","clientId":"'), "bytes: %r" % raw)
    finally:
        await ws.close()


@S.acase("auth: a JWT auth message answers authenticated with userId = sub")
async def test_auth(ctx):
    ws, _ = await connected(ctx.servers["feed"])
    try:
        await send(ws, {"type": "auth", "token": hs256({"sub": "user-123"})})
        msg, raw = await recv(ws)
        eq(list(msg), ["type", "userId", "timestamp"], "keys")
        eq((msg["type"], msg["userId"]), ("authenticated", "user-123"), "answer")
    finally:
        await ws.close()


@S.acase("auth: an invalid token gets Invalid token, then close 1008")
async def test_auth_refused(ctx):
    ws, _ = await connected(ctx.servers["feed"])
    try:
        await send(ws, {"type": "auth", "token": hs256({"sub": "u"}, secret="another-secret-xx")})
        msg = await recv_json(ws)
        eq((msg["type"], msg["message"]), ("error", "Invalid token"), "error")
        await asyncio.wait_for(ws.wait_closed(), 5)
        eq(ws.close_code, 1008, "close code")
    finally:
        await ws.close()


@S.acase("auth: messages before auth get Authentication required")
async def test_auth_required(ctx):
    ws, _ = await connected(ctx.servers["feed"])
    try:
        await send(ws, {"type": "subscribe", "channel": "orders"})
        msg = await recv_json(ws)
        eq((msg["type"], msg["message"]), ("error", "Authentication required"), "error")
    finally:
        await ws.close()


@S.acase("auth: a client that does not authenticate within authTimeout is closed with 1008")
async def test_auth_timeout(ctx):
    ws, _ = await connected(ctx.servers["short"])
    try:
        # No timing asserted: the server closes it when authTimeout passes.
        await asyncio.wait_for(ws.wait_closed(), 10)
        eq(ws.close_code, 1008, "close code")
        eq(ws.close_reason, "authentication timeout", "close reason")
    finally:
        await ws.close()


# --------------------------------------------------------------------------
# subscriptions, ping/pong, rate limit
# --------------------------------------------------------------------------

@S.acase("subscribe/unsubscribe: subscribed and unsubscribed answers; events stop after")
async def test_subscribe(ctx):
    srv = ctx.servers["feed"]
    ws = await login(srv)
    try:
        await send(ws, {"type": "subscribe", "channel": "portfolio"})
        msg, raw = await recv(ws)
        eq(list(msg), ["type", "channel", "timestamp"], "keys")
        eq((msg["type"], msg["channel"]), ("subscribed", "portfolio"), "subscribed")
        eq(emit(srv, "portfolio.updated", {"eventId": "p-1", "value": 10}),
           (200, {"channel": "portfolio.updated", "subscribers": 1}), "emit")
        eq(await recv_json(ws), {"eventId": "p-1", "value": 10}, "event")
        await send(ws, {"type": "unsubscribe", "channel": "portfolio"})
        msg = await recv_json(ws)
        eq((msg["type"], msg["channel"]), ("unsubscribed", "portfolio"), "unsubscribed")
        emit(srv, "portfolio.updated", {"eventId": "p-2", "value": 11})
        await nothing_more(ws)
        await send(ws, {"type": "subscribe"})
        eq((await recv_json(ws))["message"], "Channel is required", "no channel")
    finally:
        await ws.close()


@S.acase("ping/pong: a client that answers the JSON ping stays; one that does not is closed 1001")
async def test_ping_pong(ctx):
    srv = ctx.servers["heartbeat"]
    good = await login(srv, "good")
    bad = await login(srv, "bad")
    try:
        # The good client answers two pings; the bad one reads them and
        # never answers.
        pings = 0
        while pings < 2:
            msg, raw = await recv(good, 10)
            eq(list(msg), ["type", "timestamp"], "ping keys")
            eq(msg["type"], "ping", "ping")
            await send(good, {"type": "pong", "timestamp": msg["timestamp"]})
            pings += 1
        msg = await recv_json(bad, 10)
        eq(msg["type"], "ping", "the silent client's ping")
        await asyncio.wait_for(bad.wait_closed(), 10)
        eq((bad.close_code, bad.close_reason), (1001, "Ping timeout"), "close")
        check(good.open, "the answering client is still open")
        await send(good, {"type": "ping", "timestamp": 1})
        while True:
            msg = await recv_json(good, 10)
            if msg["type"] == "pong":
                break
            eq(msg["type"], "ping", "server ping in between")
    finally:
        await good.close()
        await bad.close()


@S.acase("rate limit: past maxMessages per window the guide's error, and the client stays")
async def test_rate_limit(ctx):
    ws = await login(ctx.servers["strict"])     # the auth message is the first of 5
    try:
        for _ in range(4):
            await send(ws, {"type": "ping"})
            eq((await recv_json(ws))["type"], "pong", "within the limit")
        await send(ws, {"type": "ping"})
        msg, raw = await recv(ws)
        eq(list(msg), ["type", "message", "timestamp"], "keys")
        eq((msg["type"], msg["message"]), ("error", "Rate limit exceeded"), "error")
        check(abs(msg["timestamp"] - time.time() * 1000) < 60000, "timestamp is now")
        for _ in range(20):
            await send(ws, {"type": "subscribe", "channel": "orders"})
            eq((await recv_json(ws))["message"], "Rate limit exceeded", "still limited")
        check(ws.open, "not closed for it")
    finally:
        await ws.close()


@S.acase("errors: invalid JSON gets Invalid message format; unknown types get nothing")
async def test_errors(ctx):
    ws = await login(ctx.servers["feed"])
    try:
        await ws.send("{not json")
        msg = await recv_json(ws)
        eq((msg["type"], msg["message"]), ("error", "Invalid message format"), "error")
        await send(ws, {"type": "custom", "data": 1})
        await nothing_more(ws)
        check(ws.open, "still open")
    finally:
        await ws.close()


# --------------------------------------------------------------------------
# feed: event cache, NATS
# --------------------------------------------------------------------------

@S.acase("event cache: a duplicate event (same eventId) is dropped for a client that got it")
async def test_dedupe(ctx):
    srv = ctx.servers["feed"]
    ws = await login(srv)
    try:
        await subscribe(ws, "orders")
        emit(srv, "orders.created", {"eventId": "o-1", "orderId": "1"})
        emit(srv, "orders.created", {"eventId": "o-1", "orderId": "1"})
        emit(srv, "orders.updated", {"eventId": "o-2", "orderId": "1"})
        eq((await recv_json(ws))["eventId"], "o-1", "first")
        eq((await recv_json(ws))["eventId"], "o-2", "the next one; the duplicate is dropped")
        # through NATS too
        ctx.nats.publish("orders.created", {"eventId": "o-1", "orderId": "1"})
        ctx.nats.publish("orders.created", {"eventId": "o-3", "orderId": "3"})
        eq((await recv_json(ws))["eventId"], "o-3", "NATS duplicate dropped")
        await nothing_more(ws)
    finally:
        await ws.close()


@S.acase("NATS: a message on orders.created reaches the subscribers of channel orders only", 40)
async def test_nats(ctx):
    srv = ctx.servers["feed"]
    a = await login(srv, "a")
    b = await login(srv, "b")
    c = await login(srv, "c")
    try:
        await subscribe(a, "orders")
        await subscribe(b, "orders")
        await subscribe(c, "portfolio")
        # The app subscribes to NATS right after it starts; a first message
        # may precede that, so publish until one arrives.
        order = {"orderId": "123", "symbol": "BTCUSDT", "side": "buy"}
        deadline = time.monotonic() + 20
        while True:
            ctx.nats.publish("orders.created", order)
            try:
                got = await recv_json(a, 0.5)
                break
            except asyncio.TimeoutError:
                check(time.monotonic() < deadline, "no NATS message reached the client")
        eq(got, order, "the order event, as published")
        eq(await recv_json(b), order, "the other subscriber")
        # drain repeats of the warm-up loop, then check c got none
        ctx.nats.publish("portfolio.updated", {"eventId": "pf-1"})
        eq(await recv_json(c), {"eventId": "pf-1"}, "portfolio.* -> channel portfolio")
        ctx.nats.publish("trades.created", {"tradeId": "1"})
        ctx.nats.publish("orders.cancelled", b'{"eventId":"x-9", "orderId":"9"}')
        while True:
            msg, raw = await recv(a)
            if msg.get("eventId") == "x-9":
                eq(raw, '{"eventId":"x-9", "orderId":"9"}', "forwarded as published")
                break
            eq(msg, order, "only orders.* on channel orders")
    finally:
        await a.close()
        await b.close()
        await c.close()


async def login_on(srv, pid, sub):
    """A client logged in on worker pid (the other workers are stopped while
    it connects, so pid accepts it), subscribed to channel orders."""
    others = [p for p in H.children(srv.proc.pid) if p != pid]
    for p in others:
        os.kill(p, signal.SIGSTOP)
    try:
        ws = await login(srv, sub)
    finally:
        for p in others:
            os.kill(p, signal.SIGCONT)
    await subscribe(ws, "orders")
    return ws


async def collect_until(ws, key, end, want):
    """Values of `key` in the messages ws gets (but `end` and "warm") until
    it has had `end` and every value of `want`: events emitted on different
    workers may arrive in any order (one comes locally, another through the
    hub), so the end marker alone does not close the list."""
    seen, ended = [], False
    while not (ended and set(want) <= set(seen)):
        v = (await recv_json(ws)).get(key)
        if v == end:
            ended = True
        elif v != "warm":
            seen.append(v)
    return sorted(seen)


@S.acase("workers = 2: a NATS event and a bus event reach subscribers on both workers once", 90)
async def test_workers(ctx):
    srv = ctx.servers["workers"]
    H.poll(lambda: len(H.children(srv.proc.pid)) == 2, timeout=15, what="two workers")
    w1, w2 = H.children(srv.proc.pid)
    a = await login_on(srv, w1, "a")
    b = await login_on(srv, w2, "b")
    try:
        # Each worker subscribes to NATS when it starts, and the bus events
        # of one worker reach the other once the hub has its subscription:
        # send warm-up events until both clients have one of each.
        for kind in ("nats", "bus"):
            waiting = [a, b]
            deadline = time.monotonic() + 30
            while waiting:
                if kind == "nats":
                    ctx.nats.publish("orders.created", {"orderId": "warm"})
                else:
                    eq(emit(srv, "orders.created", {"orderId": "warm"})[0], 200, "emit")
                for ws in list(waiting):
                    try:
                        await recv_json(ws, 0.5)
                        waiting.remove(ws)
                    except asyncio.TimeoutError:
                        check(time.monotonic() < deadline, "no %s warm-up reached a client" % kind)
        # Events without an eventId: the per-client cache would hide a
        # duplicate that has one. Each must come once, on either worker.
        for i in range(5):
            ctx.nats.publish("orders.created", {"orderId": "n%d" % i})
        ctx.nats.publish("orders.created", {"orderId": "n-end"})
        for name, ws in (("a (worker 1)", a), ("b (worker 2)", b)):
            want = ["n%d" % i for i in range(5)]
            eq(await collect_until(ws, "orderId", "n-end", want), want,
               "NATS events at %s, each once" % name)
        for i in range(5):
            eq(emit(srv, "orders.created", {"orderId": "b%d" % i})[0], 200, "emit")
        eq(emit(srv, "orders.created", {"orderId": "b-end"})[0], 200, "emit")
        for name, ws in (("a (worker 1)", a), ("b (worker 2)", b)):
            want = ["b%d" % i for i in range(5)]
            eq(await collect_until(ws, "orderId", "b-end", want), want,
               "bus events at %s, each once" % name)
        await nothing_more(a)
        await nothing_more(b)
    finally:
        await a.close()
        await b.close()


@S.acase("NATS down: a server whose NATS does not answer serves its clients")
async def test_nats_down(ctx):
    srv = ctx.servers["nonats"]
    ws = await login(srv)
    try:
        await subscribe(ws, "orders")
        emit(srv, "orders.created", {"eventId": "n-1"})
        eq(await recv_json(ws), {"eventId": "n-1"}, "bus events still flow")
        check(srv.alive(), "server alive")
    finally:
        await ws.close()


@S.acase("NATS killed and restarted: clients are served meanwhile, and the feed resumes", 60)
async def test_nats_restart(ctx):
    srv = ctx.servers["feed"]
    ws = await login(srv)
    try:
        await subscribe(ws, "orders")
        ctx.nats.kill()
        # Served while NATS is away: answers, and events from the bus.
        await send(ws, {"type": "ping"})
        eq((await recv_json(ws))["type"], "pong", "pong while NATS is down")
        emit(srv, "orders.created", {"eventId": "during"})
        eq(await recv_json(ws), {"eventId": "during"}, "bus event while NATS is down")
        ctx.nats.start()
        # moonwire.nats reconnects by itself (backoff up to 5 s): publish
        # until a message arrives; those published before the reconnect
        # are lost (core NATS, at most once).
        deadline = time.monotonic() + 30
        while True:
            ctx.nats.publish("orders.created", {"orderId": "after"})
            try:
                got = await recv_json(ws, 0.5)
                break
            except asyncio.TimeoutError:
                check(time.monotonic() < deadline, "the feed did not resume")
        eq(got, {"orderId": "after"}, "NATS event after the restart")
        check(srv.alive(), "server alive")
    finally:
        await ws.close()


if __name__ == "__main__":
    sys.exit(S.main())
