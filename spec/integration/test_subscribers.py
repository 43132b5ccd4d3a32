#!/usr/bin/python3
"""The event bus in the real binary: subscribers files, POST /api/emit, the
server's own events, hot reload of subscribers, and the command line.

fixtures/bus (copied, since cases edit it) has three subscribers: the
queue dashboard (job.{completed,error} -> the room "jobs"), a greeter
(client.connected -> a greeting sent to the new client by id) and one
that raises. python3-websockets clients receive what the subscribers
send. Reload: an edited subscriber takes over while clients stay
connected; a broken one refuses the reload, names file:line in /health
and keeps the old subscriber running; fixed, it loads. `moonwire check`
lists subscribers; `moonwire new subscriber` adds one that check lists.
"""

import asyncio
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

import websockets  # noqa: E402

S = H.Suite("moonwire subscribers")
AUTH = [("Authorization", "apikey it-api-key")]
RECV_TIMEOUT = 5.0
RELOAD_DEADLINE = 10.0


class State:
    srv = None
    app = None


@S.setup
def start(ctx):
    State.app = ctx.copy_app(ctx.fixture("bus"))
    State.srv = ctx.start("bus", State.app)


def emit(body, headers=AUTH):
    status, _, raw = H.http_request("127.0.0.1", State.srv.port, "POST", "/api/emit",
                                    headers=headers, body=body)
    doc = None
    try:
        doc = json.loads(raw.decode("utf-8"))
    except ValueError:
        pass
    return status, doc


def reloaded(before, n, what):
    """Waits until every worker has reloaded n times more than /health's
    reloads `before` counted: it adds one per worker's reload, each as of
    that worker's last published numbers (never ahead of it)."""
    H.poll(lambda: State.srv.health()["reloads"] >= before + n * State.srv.workers(),
           timeout=RELOAD_DEADLINE, what=what)


async def recv(ws):
    return json.loads(await asyncio.wait_for(ws.recv(), RECV_TIMEOUT))


async def open_ws():
    """A client, past the greeting the greeter subscriber sends it."""
    ws = await websockets.connect(State.srv.url("/"), open_timeout=5, close_timeout=2,
                                  ping_interval=None)
    greet = await recv(ws)
    eq((greet.get("type"), greet.get("action")), ("greet", "hello"), "greeting %r" % greet)
    return ws, greet


async def request(ws, action, data):
    await ws.send(json.dumps({"type": "room", "action": action, "data": data, "id": action}))
    while True:
        msg = await recv(ws)
        if msg.get("id") == action:
            return msg


def sub_path(name):
    return os.path.join(State.app, "subscribers", name + ".lua")


@S.acase("client.connected: the greeter subscriber sends each new client a greeting")
async def test_greeting(ctx):
    ws, greet = await open_ws()
    eq(greet["data"], {"version": 1}, "greeting data")
    await ws.close()


@S.acase("POST /api/emit: job events reach the room through the queue dashboard")
async def test_api_emit(ctx):
    ws, _ = await open_ws()
    await request(ws, "join", {"room": "jobs"})
    status, doc = emit({"channel": "job.completed", "message": {"id": 7, "took_ms": 12}})
    eq(status, 200, "status (%r)" % doc)
    eq(doc, {"channel": "job.completed", "subscribers": 1}, "answer")
    msg = await recv(ws)
    eq((msg["type"], msg["action"], msg["data"]), ("queue", "done", {"id": 7, "took_ms": 12}),
       "forwarded event")
    emit({"channel": "job.error", "message": {"id": 8}})
    msg = await recv(ws)
    eq((msg["action"], msg["data"]), ("errored", {"id": 8}), "error event")
    eq(emit({"channel": "job.queued", "message": {}})[1]["subscribers"], 0, "nobody subscribes")
    await ws.close()


@S.case("POST /api/emit: bad bodies answer 400 naming the field; no key 401")
def test_api_emit_bad(ctx):
    status, doc = emit({"message": {}})
    eq(status, 400, "no channel")
    check("channel" in doc["error"]["message"], "names channel: %r" % doc)
    status, doc = emit({"channel": "x"})
    eq(status, 400, "no message")
    check("message" in doc["error"]["message"], "names message: %r" % doc)
    eq(emit({"channel": "job.completed", "message": 1}, headers=[])[0], 401, "without the key")


@S.acase("a raising subscriber is logged with its name and file:line; the server serves on")
async def test_raising_subscriber(ctx):
    eq(emit({"channel": "boom", "message": {}})[1]["subscribers"], 1, "started")
    State.srv.wait_log(r"subscriber 'boom' \(.*subscribers/broken\.lua:\d+\) failed on 'boom': "
                       r".*broken\.lua:6: exploded on boom")
    ws, _ = await open_ws()
    eq((await request(ws, "emit", {"channel": "boom", "message": {}}))["data"], {"started": 1},
       "emit from a controller")
    await ws.close()


@S.acase("reload: an edited subscriber takes over; connected clients stay", timeout=30)
async def test_reload_edit(ctx):
    ws, _ = await open_ws()
    await request(ws, "join", {"room": "jobs"})
    with open(sub_path("queue")) as f:
        src = f.read()
    before = State.srv.fresh_health()["reloads"]
    H.write_file(sub_path("queue"), src.replace('"done"', '"finished"'))
    reloaded(before, 1, "the reload")
    emit({"channel": "job.completed", "message": {"id": 9}})
    msg = await recv(ws)
    eq((msg["action"], msg["data"]), ("finished", {"id": 9}), "the new code's event")
    H.write_file(sub_path("queue"), src)
    reloaded(before, 2, "the second reload")
    await ws.close()


@S.acase("reload: a broken subscriber refuses the reload, shows in /health, keeps the old one",
       timeout=40)
async def test_reload_broken(ctx):
    before = State.srv.fresh_health()["reloads"]
    H.write_file(sub_path("extra"), 'return { channel = "a", match = "b", '
                                    'handle = function() end }\n')
    H.poll(lambda: (State.srv.health().get("last_reload_error") or "").find("extra.lua") >= 0,
           timeout=RELOAD_DEADLINE, what="the reload error in /health")
    err = State.srv.health()["last_reload_error"]
    check("extra.lua:1: a subscriber takes one of channel, channels or match, not both" in err,
          "reload error: %r" % err)
    eq(State.srv.fresh_health()["reloads"], before, "reloads (the failed one does not count)")
    ws, _ = await open_ws()   # the old greeter still runs
    await request(ws, "join", {"room": "jobs"})
    emit({"channel": "job.completed", "message": {"id": 10}})
    eq((await recv(ws))["action"], "done", "the old queue dashboard")
    H.write_file(sub_path("extra"), 'return { channel = "extra", handle = function(ctx)\n'
                                    '  ctx.server.room("jobs"):broadcast({ type = "extra" })\n'
                                    'end }\n')
    reloaded(before, 1, "the fixed reload")
    eq(State.srv.health().get("last_reload_error"), None, "the error cleared")
    eq(emit({"channel": "extra", "message": {}})[1]["subscribers"], 1, "the new subscriber")
    eq((await recv(ws))["type"], "extra", "its event")
    await ws.close()
    os.remove(sub_path("extra"))
    H.poll(lambda: emit({"channel": "extra", "message": {}})[1]["subscribers"] == 0,
           timeout=RELOAD_DEADLINE, what="the removed subscriber to go")


@S.case("moonwire check lists subscribers; moonwire new subscriber adds one it lists")
def test_cli(ctx):
    app = ctx.copy_app(ctx.fixture("bus"))
    rc, out, err = H.run_cli(ctx.binary, ["check", app])
    eq(rc, 0, "check exit (%s)" % err)
    check("subscribers:\n" in out, "a subscribers section: %r" % out)
    check("queue-dashboard  [job.{completed,error}]  priority 20  " in out
          and "subscribers/queue.lua:" in out and "-- job events to the jobs room" in out,
          "the queue dashboard line: %r" % out)
    rc, out, err = H.run_cli(ctx.binary, ["new", "subscriber", "audit", app])
    eq(rc, 0, "new subscriber exit (%s)" % err)
    check(os.path.exists(os.path.join(app, "subscribers", "audit.lua")), "the file")
    check(os.path.exists(os.path.join(app, "spec", "audit_subscriber_spec.lua")), "its spec")
    rc, out, _ = H.run_cli(ctx.binary, ["check", app])
    check("audit  [audit.*]  priority 0" in out, "check lists it: %r" % out)
    rc, _, err = H.run_cli(ctx.binary, ["new", "subscriber", "audit", app])
    check(rc != 0 and "already exists" in err, "a second one is refused: %r" % err)
    rc, _, err = H.run_cli(ctx.binary, ["new", "subscriber", "9bad", app])
    check(rc != 0 and "invalid subscriber name" in err, "a bad name: %r" % err)
    H.write_file(os.path.join(app, "subscribers", "bad.lua"), 'return 42\n')
    rc, _, err = H.run_cli(ctx.binary, ["check", app])
    check(rc != 0 and "bad.lua:1: a subscriber must be a table, got number" in err,
          "check refuses a broken subscriber: %r" % err)


if __name__ == "__main__":
    sys.exit(S.main())
