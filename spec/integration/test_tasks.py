#!/usr/bin/python3
"""Lua that waits, on the real binary: handlers in tasks, per-client order,
max_pending_messages backpressure, disconnects and reloads while handlers
wait, timers, and an authenticate hook that waits.

Fixture: fixtures/tasks. Handlers wait on named gates that the test opens
from another client (work.open; the gates are a shared dict, so the opener
may be served by another worker), so no case races a sleep against its own
requests: every check is about order, never about how fast the machine is.
"""

import json
import os
import re
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

S = H.Suite("moonwire tasks")


class State:
    app = None
    srv = None


@S.setup
def start(ctx):
    State.app = ctx.copy_app(ctx.fixture("tasks"))
    State.srv = ctx.start("tasks", State.app)


def client(ctx, **kw):
    return ctx.track(H.JsonClient(State.srv, **kw))


def open_gate(ctx, name):
    c = client(ctx)
    eq(c.request("work", "open", {"name": name}).get("data"), True, "open " + name)
    c.close()


def no_frame_yet(c, wait=0.3):
    """True when the server has sent c nothing for `wait` seconds."""
    if c.raw.buf:
        return False
    c.raw.sock.settimeout(wait)
    try:
        c.raw.sock.recv(1, socket.MSG_PEEK)
        return False
    except socket.timeout:
        return True
    finally:
        c.raw.sock.settimeout(H.SOCK_TIMEOUT)


@S.case("a handler that waits does not delay other clients")
def test_waiting_does_not_block(ctx):
    a, b = client(ctx), client(ctx)
    a.send({"type": "work", "action": "gate", "id": "a1", "data": {"name": "g-block"}})
    for i in range(20):
        eq(b.request("work", "quick", {"n": i}).get("data", {}).get("n"), i, "b's reply")
    check(no_frame_yet(a), "a got nothing while its handler waits")
    open_gate(ctx, "g-block")
    events = [a.recv(), a.recv()]
    eq(events[0].get("action"), "after_gate", "the handler's own send first")
    eq(events[1].get("id"), "a1", "then the reply")


@S.case("one client's messages are handled in arrival order, under load, across clients")
def test_order(ctx):
    clients = [client(ctx) for _ in range(3)]
    n = 150
    for k, c in enumerate(clients):
        batch = []
        for i in range(n):
            if i % 3 == 0:
                msg = {"type": "work", "action": "nap", "id": i, "data": {"ms": 1, "n": i}}
            else:
                msg = {"type": "work", "action": "quick", "id": i, "data": {"n": i}}
            batch.append(H.build_frame(H.OP_TEXT, json.dumps(msg).encode()))
        c.raw.send(b"".join(batch))  # all at once: they queue behind the naps
    for c in clients:
        ids = [c.recv().get("id") for _ in range(n)]
        eq(ids, list(range(n)), "replies in the order sent")


@S.case("max_pending_messages stops reading that socket; nothing is lost; others are served",
        timeout=90)
def test_backpressure(ctx):
    a, b = client(ctx), client(ctx)
    a.send({"type": "work", "action": "gate", "id": "first", "data": {"name": "g-pressure"}})
    # 64 KiB messages, many more than the kernel's socket buffers hold:
    # with reading stopped, the sender must block.
    pad = "x" * 60000
    count = 400
    frames = b"".join(
        H.build_frame(H.OP_TEXT, json.dumps(
            {"type": "work", "action": "quick", "id": i, "data": {"n": i, "pad": pad}}).encode())
        for i in range(count))
    done = threading.Event()

    def send_all():
        try:
            a.raw.sock.sendall(frames)
        finally:
            done.set()
    threading.Thread(target=send_all, daemon=True).start()
    # The server holds a's socket: the sender cannot finish while the gate
    # is closed (24 MiB against a few MiB of buffers), whatever the speed.
    check(not done.wait(3.0), "the server kept reading a client whose handler waits")
    eq(b.request("work", "quick", {"n": 1}).get("data", {}).get("n"), 1, "b is served meanwhile")
    open_gate(ctx, "g-pressure")
    check(done.wait(60.0), "the sender finished once the gate opened")
    got = []
    while len(got) < count + 2:
        got.append(a.recv())
    eq(got[0].get("action"), "after_gate", "the gate's event")
    eq(got[1].get("id"), "first", "the gate's reply")
    eq([m.get("id") for m in got[2:]], list(range(count)), "every queued message, in order")


@S.case("a client that leaves while its handler waits: the handler finishes, then on_disconnect")
def test_disconnect_while_waiting(ctx):
    log_start = len(State.srv.log())
    a = client(ctx)
    a.send({"type": "work", "action": "gate", "id": 1, "data": {"name": "g-leave"}})
    a.raw.send_close(1000)
    a.close()
    open_gate(ctx, "g-leave")
    State.srv.wait_log(r"on_disconnect \d+ 1000", start=log_start)
    text = State.srv.log()[log_start:]
    passed = text.find("gate g-leave passed")
    failed_send = text.find("send after gate g-leave: nil closed")
    gone = re.search(r"on_disconnect \d+ 1000", text).start()
    check(0 <= passed < gone, "the handler finished before on_disconnect")
    check(0 <= failed_send < gone, "its send returned nil, closed")
    H.poll(lambda: State.srv.fresh_health()["connections"] == 0, what="the client to be gone")


@S.case("an error after a wait answers INTERNAL_ERROR and names file:line")
def test_error_after_wait(ctx):
    log_start = len(State.srv.log())
    a = client(ctx)
    a.send({"type": "work", "action": "gate_then_fail", "id": "e", "data": {"name": "g-err"}})
    open_gate(ctx, "g-err")
    r = a.recv()
    eq(r.get("id"), "e", "the error's id")
    eq(r.get("error"), {"code": "INTERNAL_ERROR", "message": "internal error"}, "error")
    State.srv.wait_log(r"work\.gate_then_fail failed: \S*controllers/work\.lua:\d+: attempt to "
                       r"index local 't'", start=log_start)


@S.case("timers tick; an error in one is logged with file:line and it goes on")
def test_timers(ctx):
    c = client(ctx)
    H.poll(lambda: c.request("work", "ticks").get("data", {}).get("g1", 0) >= 5,
           what="g1 ticks past 5")
    State.srv.wait_log(r"lua error in timer: \S*app\.lua:\d+: tick three of g1 broke")


@S.case("a reload while a handler waits: it finishes on its code; new messages and timers "
        "run the new code", timeout=40)
def test_reload_while_waiting(ctx):
    log_start = len(State.srv.log())
    a = client(ctx)
    gate = os.path.join(ctx.tmpdir(), "g-reload")
    a.send({"type": "work", "action": "wait_file", "id": "old", "data": {"path": gate}})
    work = os.path.join(State.app, "controllers", "work.lua")
    with open(work) as f:
        text = f.read()
    H.write_file(work, text.replace("local VERSION = 1", "local VERSION = 2"))
    app_lua = os.path.join(State.app, "app.lua")
    with open(app_lua) as f:
        text = f.read()
    H.write_file(app_lua, text.replace('local GEN = "g1"', 'local GEN = "g2"'))
    State.srv.wait_log(r"on_start g2", start=log_start, timeout=15)
    b = client(ctx)
    H.poll(lambda: b.request("work", "quick", {"n": 1}).get("data", {}).get("version") == 2,
           what="new messages to run version 2")
    with open(gate, "w"):
        pass
    r = a.recv()
    eq(r.get("id"), "old", "the waiting handler's reply")
    eq(r.get("data"), {"path": gate, "version": 1}, "on the code it started with")
    # g1's timer was cancelled by the reload; g2's runs.
    counts = b.request("work", "ticks").get("data", {})
    check("g1" not in counts, "ticks live in app modules, loaded afresh")
    H.poll(lambda: b.request("work", "ticks").get("data", {}).get("g2", 0) >= 4,
           what="g2 ticks")
    later = State.srv.log()[log_start:]
    check("tick three of g1" not in later, "g1's timer no longer runs after the reload")


@S.case("an authenticate hook that waits: the upgrade is answered after it; frames sent "
        "right after the request are handled once open")
def test_auth_waits(ctx):
    raw = H.RawClient(State.srv.connect_host, State.srv.port)
    ctx.track(raw)
    req, _ = H.build_request("/?token=good")
    frame = H.build_frame(H.OP_TEXT, json.dumps(
        {"type": "work", "action": "quick", "id": "early", "data": {"n": 9}}).encode())
    raw.send(req + frame)  # one write: the frame arrives before the decision
    status, _, _, rest = H.read_http_head(raw.sock)
    eq(status, 101, "upgraded once the hook decided")
    raw.buf = rest
    op, data = raw.recv_message(allow_pong=True)
    r = json.loads(data.decode())
    eq(r.get("id"), "early", "the early frame's reply")
    eq(r.get("data", {}).get("n"), 9, "its data")

    bad = H.RawClient(State.srv.connect_host, State.srv.port)
    ctx.track(bad)
    req, _ = H.build_request("/?token=bad")
    bad.send(req)
    status, _, headers, rest = H.read_http_head(bad.sock)
    eq(status, 401, "refused after the wait")
    body = H.read_body(bad.sock, headers, rest)
    check(b"bad token" in body, "with the hook's message")


if __name__ == "__main__":
    H.main(S)
