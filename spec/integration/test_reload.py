#!/usr/bin/python3
"""Hot reload: controllers change under a connected client, without dropping it.

fixtures/reload is copied to a temp dir and served with reload = true; the
cases run in order and share that server and one long-lived client.

With workers (MW_TEST_WORKERS=2), each worker watches the files and
reloads on its own, a few milliseconds apart: a reload is done when the
supervisor logs its one line for every worker ("reloaded the app on
workers 1-2"), and a client that connects after that line gets the new
code whichever worker serves it.
"""

import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

S = H.Suite("moonwire hot reload")
RELOAD_DEADLINE = 10.0

VER_TEMPLATE = """local ver = {}

function ver.get()
    return { version = %d }
end

return ver
"""

# a syntax error on line 4 (unfinished expression)
VER_SYNTAX_ERROR = """local ver = {}

function ver.get()
    return { version = = 99 }
end

return ver
"""
SYNTAX_LINE = 4

# a runtime error at load time, on line 3
VER_LOAD_ERROR = """local ver = {}

error("top-level failure while loading")

function ver.get()
    return { version = 98 }
end

return ver
"""
LOAD_LINE = 3

# returns a number instead of a table (line 7 is the return)
VER_BAD_RETURN = """local ver = {}

function ver.get()
    return { version = 97 }
end

return 42
"""
BAD_RETURN_LINE = 7


class State:
    srv = None
    app = None
    client = None
    version = 1


def ver_path():
    return os.path.join(State.app, "controllers", "ver.lua")


@S.setup
def start(ctx):
    State.app = ctx.copy_app(ctx.fixture("reload"))
    State.srv = ctx.start("reload", State.app)
    State.client = H.JsonClient(State.srv)   # not tracked: lives across cases


@S.teardown
def stop(ctx):
    if State.client:
        State.client.close()


def get_version(c=None):
    r = (c or State.client).request("ver", "get")
    check(r.get("type") != "error", "ver.get returned an error: %r" % r)
    return r["data"]["version"]


def wait_version(want, c=None):
    H.poll(lambda: get_version(c) == want, timeout=RELOAD_DEADLINE, interval=0.1,
           what="the connected client to get version %d" % want)


def health():
    return State.srv.health()


def nworkers():
    """How many workers serve (/health's workers), 0 for one process."""
    return len(health().get("workers") or [])


def wait_reloaded_everywhere(start):
    """With workers, waits for the supervisor's line saying that every
    worker reloaded since log offset start. One process: its reply already
    said so."""
    n = nworkers()
    if n:
        State.srv.wait_log(r"reloaded the app on workers 1-%d \(file change\)" % n,
                           start=start, timeout=RELOAD_DEADLINE)


def assert_connected(c=None):
    c = c or State.client
    check(not c.raw.eof, "client was disconnected")
    r = c.request("store", "get", {"key": "kept"})
    check(r.get("type") == "store", "client broken after reload: %r" % r)


@S.case("baseline: version 1, client.data stored, no reload error")
def test_baseline_version_1(ctx):
    eq(get_version(), 1, "version")
    r = State.client.request("store", "set", {"key": "kept", "value": "before-reload"})
    eq(r.get("data"), {"ok": True}, "store.set")
    h = health()
    eq(h.get("last_reload_error"), None, "last_reload_error")
    State.reloads0 = h["reloads"]


@S.case("edit: same connected client gets the new reply (version 2)", timeout=20)
def test_edit_seen_by_connected_client(ctx):
    start = len(State.srv.log())
    H.write_file(ver_path(), VER_TEMPLATE % 2)
    wait_version(2)
    assert_connected()
    wait_reloaded_everywhere(start)


@S.case("edit: client.data set before the reload is still readable")
def test_edit_keeps_client_data(ctx):
    r = State.client.request("store", "get", {"key": "kept"})
    eq(r["data"].get("value"), "before-reload", "client.data after reload")


@S.case("edit: /health reloads increased, last_reload_error null")
def test_edit_counted_in_health(ctx):
    h = H.poll(lambda: (lambda h: h if h["reloads"] > State.reloads0 else None)(health()),
               timeout=5, what="reloads to increase")
    eq(h.get("last_reload_error"), None, "last_reload_error")


@S.case("edit: each reload is logged once (one line per outcome)")
def test_each_reload_logged_once(ctx):
    h = health()
    if "workers" in h:
        # reloads sums the workers' (protocol.md), each published within
        # a second: every worker's reloads, the same number
        h = H.poll(lambda: (lambda h: h if len({w["reloads"] for w in h["workers"]}) == 1
                            else None)(health()), timeout=5, what="every worker's reloads")
    lines = [l for l in State.srv.log().splitlines() if "reload" in l]
    ok = [l for l in lines if "reloaded the app" in l]
    if "workers" in h:
        # one line per reload of every worker, naming all of them
        own = h["workers"][0]["reloads"]
        eq(len(ok), own, "'reloaded the app' lines vs each worker's reloads: %r" % lines)
        eq(h["reloads"], own * len(h["workers"]), "reloads: the sum of the workers'")
        for line in ok:
            check(re.search(r"reloaded the app on workers 1-%d " % len(h["workers"]), line)
                  and "[worker" not in line, "one line for every worker: %r" % line)
    else:
        eq(len(ok), h["reloads"], "'reloaded the app' lines vs /health reloads: %r" % lines)
    eq([l for l in lines if "reloaded app" in l], [], "the runtime's own reload lines")


@S.case("edit: a client connected after the reload also sees version 2")
def test_edit_seen_by_new_client(ctx):
    c = ctx.track(H.JsonClient(State.srv))
    eq(get_version(c), 2, "version for a new client")


@S.case("edit: three quick successive edits end on the last version", timeout=20)
def test_quick_edits_end_on_last(ctx):
    for v in (3, 4, 5):
        H.write_file(ver_path(), VER_TEMPLATE % v)
        time.sleep(0.02)
    wait_version(5)
    assert_connected()


def reload_error_contains(fragment):
    def f():
        e = health().get("last_reload_error")
        return e if isinstance(e, str) and fragment in e else None
    return f


def broken_case(content, line, fragment_name):
    def run(ctx):
        before = get_version()
        start = len(State.srv.log())
        H.write_file(ver_path(), content)
        want = "ver.lua:%d" % line
        err = H.poll(reload_error_contains(want), timeout=RELOAD_DEADLINE, interval=0.1,
                     what="/health last_reload_error to contain %r (%s)" % (want, fragment_name))
        H.poll(lambda: want in State.srv.log()[start:], timeout=5,
               what="server log to contain %r" % want)
        # the old code keeps serving, the client stays connected
        eq(get_version(), before, "version served while the new code is broken")
        assert_connected()
        # fix it
        State.version = before + 1
        H.write_file(ver_path(), VER_TEMPLATE % State.version)
        wait_version(State.version)
        H.poll(lambda: health().get("last_reload_error") is None, timeout=5,
               what="last_reload_error to return to null")
        assert_connected()
    return run


S.add("syntax error: old code serves, error names ver.lua:LINE, fix clears it",
      broken_case(VER_SYNTAX_ERROR, SYNTAX_LINE, "syntax error"), timeout=40)
S.add("load-time runtime error: same behaviour as a syntax error",
      broken_case(VER_LOAD_ERROR, LOAD_LINE, "load-time error"), timeout=40)
S.add("controller returning a non-table: same behaviour",
      broken_case(VER_BAD_RETURN, BAD_RETURN_LINE, "bad return"), timeout=40)


@S.case("new controller file: its route appears without a restart", timeout=20)
def test_new_controller_route_appears(ctx):
    path = os.path.join(State.app, "controllers", "extra.lua")
    H.write_file(path, 'local extra = {}\nfunction extra.ping() return { pong = true } end\nreturn extra\n')

    def ok():
        r = State.client.request("extra", "ping")
        return r.get("data") == {"pong": True}
    H.poll(ok, timeout=RELOAD_DEADLINE, interval=0.1, what="extra.ping to be routed")
    assert_connected()


@S.case("removed controller file: its route goes away (NOT_FOUND)", timeout=20)
def test_removed_controller_route_goes(ctx):
    os.unlink(os.path.join(State.app, "controllers", "extra.lua"))

    def gone():
        r = State.client.request("extra", "ping")
        return r.get("type") == "error" and r["error"]["code"] == "NOT_FOUND"
    H.poll(gone, timeout=RELOAD_DEADLINE, interval=0.1, what="extra.ping to be NOT_FOUND")
    assert_connected()


def rename_save(path, text):
    """How many editors save: write a temp file, then rename it over the original."""
    tmp = path + ".tmp~"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


@S.case("atomic save (write temp + rename) is picked up, twice in a row", timeout=30)
def test_atomic_save_picked_up(ctx):
    for _ in range(2):
        State.version += 1
        rename_save(ver_path(), VER_TEMPLATE % State.version)
        wait_version(State.version)
    State.version += 1
    H.write_file(ver_path(), VER_TEMPLATE % State.version)
    wait_version(State.version)  # in-place edits still seen after renames
    assert_connected()


@S.case("delete and re-create a controller file is picked up", timeout=20)
def test_delete_and_recreate_picked_up(ctx):
    os.unlink(ver_path())
    State.version += 1
    H.write_file(ver_path(), VER_TEMPLATE % State.version)
    wait_version(State.version)


@S.case("an app-local module required by a controller reloads when edited", timeout=30)
def test_app_module_edit_reloads(ctx):
    lib = os.path.join(State.app, "lib", "num.lua")
    H.write_file(lib, "return %d\n" % (State.version + 100))
    H.write_file(ver_path(), 'local num = require "lib.num"\nlocal ver = {}\n'
                             'function ver.get() return { version = num } end\nreturn ver\n')
    wait_version(State.version + 100)
    H.write_file(lib, "return %d\n" % (State.version + 200))
    wait_version(State.version + 200)
    State.version += 201
    H.write_file(ver_path(), VER_TEMPLATE % State.version)
    wait_version(State.version)


@S.case("app.lua syntax error: old code serves, error names app.lua:LINE, fix clears it", timeout=30)
def test_app_lua_syntax_error_keeps_old_code(ctx):
    path = os.path.join(State.app, "app.lua")
    start = len(State.srv.log())
    H.write_file(path, "local hooks = {}\n\nfunction hooks.on_connect(\nreturn hooks\n")
    try:
        H.poll(reload_error_contains("app.lua:4"), timeout=RELOAD_DEADLINE, interval=0.1,
               what="last_reload_error to contain app.lua:4")
        # with workers the line comes once every worker has tried
        H.poll(lambda: "app.lua:4" in State.srv.log()[start:], timeout=RELOAD_DEADLINE,
               what="app.lua:4 in the log")
        eq(get_version(), State.version, "version while app.lua is broken")
    finally:
        # fixed whatever happened: the cases after this one need the app
        H.write_file(path, "local hooks = {}\nreturn hooks\n")
    H.poll(lambda: health().get("last_reload_error") is None, timeout=RELOAD_DEADLINE,
           what="last_reload_error to return to null")
    assert_connected()


@S.case("many clients: 20 connected clients all see the new code and stay connected", timeout=30)
def test_reload_reaches_20_clients(ctx):
    clients = [ctx.track(H.JsonClient(State.srv)) for _ in range(20)]
    for c in clients:
        eq(get_version(c), State.version, "version before")
    State.version += 1
    H.write_file(ver_path(), VER_TEMPLATE % State.version)
    for c in clients:
        wait_version(State.version, c)
    for c in clients:
        check(not c.raw.eof, "a client was disconnected by the reload")


@S.case("SIGHUP triggers a reload (reloads increases)", timeout=20)
def test_sighup_reloads(ctx):
    before = State.srv.fresh_health()["reloads"]
    State.srv.send_signal(signal.SIGHUP)
    H.poll(lambda: health()["reloads"] > before, timeout=RELOAD_DEADLINE, interval=0.1,
           what="reloads to increase after SIGHUP")
    check(State.srv.alive(), "server died on SIGHUP")
    assert_connected()


@S.case("reload = false: edits are not picked up until SIGHUP", timeout=30)
def test_reload_false_waits_for_sighup(ctx):
    app = ctx.copy_app(ctx.fixture("reload"))
    srv = ctx.start("noreload", app, env={"MOONWIRE_RELOAD": "false"})
    c = ctx.track(H.JsonClient(srv))
    eq(get_version(c), 1, "version")
    H.write_file(os.path.join(app, "controllers", "ver.lua"), VER_TEMPLATE % 77)
    time.sleep(1.5)  # negative check: give a (wrongly enabled) watcher time to fire
    eq(get_version(c), 1, "version without reload")
    srv.send_signal(signal.SIGHUP)
    wait_version(77, c)
    check(srv.health()["reloads"] >= 1, "reloads not counted for SIGHUP")


@S.case("the README tour: edit examples/hello's greet.lua under a connected client",
        timeout=30)
def test_readme_tour_edit_hello(ctx):
    app = ctx.copy_app(ctx.example("hello"))
    srv = ctx.start(None, app)
    try:
        c = ctx.track(H.JsonClient(srv, welcome=True))
        r = c.request("greet", "hello", {"name": "Ann"})
        eq(r["data"]["message"], "Hello, Ann!", "before the edit")
        path = os.path.join(app, "controllers", "greet.lua")
        with open(path) as f:
            src = f.read()
        check('"Hello, "' in src, "greet.lua no longer has the line the README edits")
        H.write_file(path, src.replace('"Hello, "', '"Hi, "', 1))
        H.poll(lambda: c.request("greet", "hello", {"name": "Ann"})["data"]["message"]
               == "Hi, Ann!", timeout=RELOAD_DEADLINE, interval=0.1,
               what="the same connected client to get the edited greeting")
        check(not c.raw.eof, "the client was disconnected by the reload")
        eq(srv.fresh_health()["connections"], 1, "connections after the reload")
    finally:
        ctx.close_clients()
        srv.stop()


@S.case("config.lua edited live: live options apply, restart-only ones are named", timeout=40)
def test_config_reload_live_and_restart(ctx):
    app = ctx.copy_app(ctx.fixture("reload"))
    srv = ctx.start("config-reload", app)
    try:
        first = ctx.track(H.JsonClient(srv, welcome=True))
        eq((first.welcome["type"], first.welcome["action"]), ("system", "connected"), "welcome")
        reloads0 = srv.fresh_health()["reloads"]
        # with workers, each worker's reload counts: wait for all of them
        n = srv.workers()
        H.write_file(os.path.join(app, "config.lua"),
                     "return { reload = true, reload_debounce = 100, welcome = false,\n"
                     "         max_rooms_per_client = 7 }\n")
        h = H.poll(lambda: (lambda h: h if h["reloads"] >= reloads0 + n else None)(srv.health()),
                   timeout=RELOAD_DEADLINE, what="the config edit to reload")
        eq(h["restart_required"], ["max_rooms_per_client"], "restart_required")
        eq(h["last_reload_error"], None, "last_reload_error")
        srv.wait_log(r"warn .*config: max_rooms_per_client changed; it needs a restart")
        # welcome is live: a new client gets no system.connected first.
        c = ctx.track(H.JsonClient(srv))
        c.send({"type": "ver", "action": "get", "id": "after"})
        eq(c.recv().get("id"), "after", "first message after welcome = false")
        check(not first.raw.eof, "a connected client was dropped by the config reload")
        # A broken config.lua fails the reload and keeps every option.
        H.write_file(os.path.join(app, "config.lua"),
                     "return { reload = true, reload_debounce = 100, welcome = 'yes' }\n")
        h = H.poll(lambda: (lambda h: h if h["last_reload_error"] else None)(srv.health()),
                   timeout=RELOAD_DEADLINE, what="the broken config to be reported")
        check("welcome" in h["last_reload_error"], "error names the key: %r" % h)
        c2 = ctx.track(H.JsonClient(srv))
        c2.send({"type": "ver", "action": "get", "id": "still"})
        eq(c2.recv().get("id"), "still", "welcome stays off after a failed config reload")
        warnings = [l for l in srv.log().splitlines() if "config: max_rooms_per_client" in l]
        eq(len(warnings), 1, "the restart warning is logged once")
    finally:
        ctx.close_clients()
        srv.stop()


@S.case("the server survived every reload")
def test_server_survived_reloads(ctx):
    check(State.srv.alive(), "server process died")
    eq(health().get("status"), "healthy", "status")
    assert_connected()


if __name__ == "__main__":
    H.main(S)
