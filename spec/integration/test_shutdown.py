#!/usr/bin/python3
"""Graceful shutdown: SIGTERM / SIGINT close every client with 1001 and exit 0
once they answered, or at shutdown_timeout. Every case starts its own server
(examples/echo, shutdown_timeout = 3000 ms through MOONWIRE_SHUTDOWN_TIMEOUT,
close_timeout = 60 s so that nothing but shutdown_timeout ends a client that
never answers).

No case depends on the machine's speed: the bounds are LIMIT, shutdown_timeout
plus 10 s (only a server that does not exit at shutdown_timeout misses it),
and, for "exits without waiting", a shutdown_timeout of 60 s against a bound of
15 s."""

import asyncio
import os
import signal
import sys
import time

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import OP_CLOSE, OP_TEXT, build_frame, check, close_payload, eq  # noqa: E402

S = H.Suite("moonwire graceful shutdown")
SHUTDOWN_MS = 3000
LIMIT = SHUTDOWN_MS / 1000.0 + 10.0
PATIENT_SHUTDOWN_MS = 60000
PROMPT_S = 15.0


def start(ctx, app=None, key=None, shutdown_ms=SHUTDOWN_MS):
    return ctx.start(key or "srv-%d" % len(ctx.servers), app or ctx.example("echo"),
                     env={"MOONWIRE_SHUTDOWN_TIMEOUT": str(shutdown_ms),
                          "MOONWIRE_CLOSE_TIMEOUT": "60000"})


def connect_n(ctx, srv, n):
    cs = [ctx.track(srv.client()) for _ in range(n)]
    for i, c in enumerate(cs):
        c.roundtrip("hello-%d" % i)
    return cs


def read_close(c):
    """Next frame must be a close; returns its code (None when empty)."""
    while True:
        f = c.recv_frame()
        if f.opcode == OP_CLOSE:
            return f.close_code()
        check(f.opcode in (0, 1, 2, 0xA), "unexpected frame before close: %r" % f)


def timed_exit(srv, t0):
    rc = srv.wait_exit(LIMIT - (time.monotonic() - t0) + 0.05)
    dt = time.monotonic() - t0
    if rc is None:
        srv.stop(signal.SIGKILL, timeout=2)
        raise H.Failure("process still running %.1fs after the signal (limit %.1fs)" % (dt, LIMIT))
    eq(rc, 0, "exit status")
    return dt


def graceful(sig, answer):
    def run(ctx):
        srv = start(ctx)
        cs = connect_n(ctx, srv, 3)
        t0 = time.monotonic()
        srv.send_signal(sig)
        for i, c in enumerate(cs):
            eq(read_close(c), 1001, "close code for client %d" % i)
            if answer:
                c.send(build_frame(OP_CLOSE, close_payload(1001)))
        for c in cs:
            c.expect_eof(LIMIT)
        timed_exit(srv, t0)
    return run


S.add("SIGTERM: 3 clients (answering the close) get 1001, exit 0 in time", graceful(signal.SIGTERM, True), timeout=40)
S.add("SIGINT: 3 clients (answering the close) get 1001, exit 0 in time", graceful(signal.SIGINT, True), timeout=40)
S.add("SIGTERM: 3 clients that never answer the close, still exit 0 in time", graceful(signal.SIGTERM, False), timeout=40)
S.add("SIGINT: 3 clients that never answer the close, still exit 0 in time", graceful(signal.SIGINT, False), timeout=40)


@S.case("SIGTERM: exits without waiting for shutdown_timeout once every client completed "
        "the close handshake", timeout=40)
def test_sigterm_exits_after_close_handshakes(ctx):
    srv = start(ctx, shutdown_ms=PATIENT_SHUTDOWN_MS)
    cs = connect_n(ctx, srv, 3)
    t0 = time.monotonic()
    srv.send_signal(signal.SIGTERM)
    for c in cs:
        eq(read_close(c), 1001, "close code")
        c.send(build_frame(OP_CLOSE, close_payload(1001)))
        c.expect_eof(PROMPT_S)
        c.close()
    rc = srv.wait_exit(PROMPT_S)
    dt = time.monotonic() - t0
    check(rc is not None, "still running %.1fs after SIGTERM although every client had closed "
                          "(shutdown_timeout %d s)" % (dt, PATIENT_SHUTDOWN_MS // 1000))
    eq(rc, 0, "exit status")


@S.case("SIGTERM: no clients -> exit 0 promptly")
def test_sigterm_no_clients_exits_0(ctx):
    srv = start(ctx)
    t0 = time.monotonic()
    srv.send_signal(signal.SIGTERM)
    timed_exit(srv, t0)


@S.case("SIGTERM while on_start still runs (just after 'listening on'): a graceful exit 0")
def test_sigterm_during_on_start(ctx):
    app = ctx.tmpdir()
    os.makedirs(os.path.join(app, "controllers"))
    H.write_file(os.path.join(app, "config.lua"), "return {}\n")
    # on_start keeps the loop busy for a second after the listeners are up:
    # the signal arrives in that window (the harness returns on "listening
    # on"). Before the fix the default action killed the process (-15).
    H.write_file(os.path.join(app, "app.lua"), """local M = {}
function M.on_start()
    local t = os.clock()
    while os.clock() - t < 1 do end
end
return M
""")
    srv = start(ctx, app=app)
    t0 = time.monotonic()
    srv.send_signal(signal.SIGTERM)
    timed_exit(srv, t0)


@S.case("SIGTERM: stops accepting new connections while draining", timeout=40)
def test_sigterm_stops_accepting(ctx):
    srv = start(ctx)
    cs = connect_n(ctx, srv, 2)
    t0 = time.monotonic()
    srv.send_signal(signal.SIGTERM)
    for c in cs:
        eq(read_close(c), 1001, "close code")
    # the clients do not answer, so the server is still draining now
    try:
        late = H.RawClient(srv.connect_host, srv.port, timeout=2)
    except OSError:
        late = None  # refused: fine
    if late is not None:
        ctx.track(late)
        try:
            status, _ = late.handshake(expect=None)
            check(status != 101, "a new WebSocket was accepted during shutdown")
        except (H.Failure, OSError):
            pass  # closed without a response: fine
    timed_exit(srv, t0)


@S.case("SIGTERM: client in the middle of a fragmented message gets 1001", timeout=40)
def test_sigterm_mid_fragment_1001(ctx):
    srv = start(ctx)
    c = connect_n(ctx, srv, 1)[0]
    c.send(build_frame(OP_TEXT, b"unfinished", fin=False))
    t0 = time.monotonic()
    srv.send_signal(signal.SIGTERM)
    eq(read_close(c), 1001, "close code")
    c.send(build_frame(OP_CLOSE, close_payload(1001)))
    c.expect_eof(LIMIT)
    timed_exit(srv, t0)


@S.case("SIGTERM: websockets clients see close code 1001", timeout=40)
def test_sigterm_websockets_clients_1001(ctx):
    srv = start(ctx, ctx.fixture("basic"))

    async def go():
        wss = []
        for _ in range(3):
            ws = await websockets.connect(srv.url(), open_timeout=5, close_timeout=2, ping_interval=None)
            await asyncio.wait_for(ws.recv(), 5)  # welcome
            wss.append(ws)
        t0 = time.monotonic()
        srv.send_signal(signal.SIGTERM)
        for ws in wss:
            await asyncio.wait_for(ws.wait_closed(), LIMIT)
            eq(ws.close_code, 1001, "close code seen by the websockets client")
        return t0

    t0 = asyncio.run(asyncio.wait_for(go(), LIMIT + 10))
    timed_exit(srv, t0)


@S.case("SIGTERM: JSON app (with Lua runtime) exits 0 with an idle and a busy client", timeout=40)
def test_sigterm_json_app_exits_0(ctx):
    srv = start(ctx, ctx.fixture("basic"))
    idle = ctx.track(H.JsonClient(srv, welcome=True))
    busy = ctx.track(H.JsonClient(srv, welcome=True))
    for i in range(5):
        busy.send({"type": "greet", "action": "hello", "data": {"name": str(i)}, "id": i})
    t0 = time.monotonic()
    srv.send_signal(signal.SIGTERM)
    for c in (idle, busy):
        while True:
            f = c.raw.recv_frame()
            if f.opcode == OP_CLOSE:
                eq(f.close_code(), 1001, "close code")
                break
    timed_exit(srv, t0)


if __name__ == "__main__":
    H.main(S)
