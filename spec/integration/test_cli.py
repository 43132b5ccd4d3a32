#!/usr/bin/python3
"""Command line and configuration: --version/--help, check, new, test, config
validation (exit 2 naming the key), MOONWIRE_* environment overrides, flags."""

import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import OP_BINARY, OP_TEXT, build_frame, check, eq  # noqa: E402

S = H.Suite("moonwire CLI and config")

GREET = 'local greet = {}\nfunction greet.hello() return { message = "hi" } end\nreturn greet\n'


def cli(ctx, *args, env=None, timeout=20):
    try:
        return H.run_cli(ctx.binary, args, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise H.Failure("'moonwire %s' did not exit within %ds" % (" ".join(args), timeout))


def make_app(ctx, config="return {}\n", controllers=None, name="app"):
    d = os.path.join(ctx.tmpdir(), name)
    os.makedirs(os.path.join(d, "controllers"))
    with open(os.path.join(d, "config.lua"), "w") as f:
        f.write(config)
    for fname, src in (controllers or {"greet.lua": GREET}).items():
        with open(os.path.join(d, "controllers", fname), "w") as f:
            f.write(src)
    return d


def serve_args(app):
    return ["serve", app, "--host", "127.0.0.1", "--port", "0"]


# --------------------------------------------------------------------------
# basic commands
# --------------------------------------------------------------------------

@S.case("--version prints a version and exits 0")
def test_version_exits_0(ctx):
    rc, out, err = cli(ctx, "--version")
    eq(rc, 0, "exit status")
    check(re.search(r"\d+\.\d+", out + err), "no version number in %r" % (out + err))


# --------------------------------------------------------------------------
# one version: CMake's project version, in the binary, in Lua and in the docs
# --------------------------------------------------------------------------

VERSIONS = """local versions = {}
-- The _VERSION of each runtime module named in data.modules.
function versions.of(client, data)
    local out = {}
    for _, name in ipairs(data.modules) do
        out[name] = require(name)._VERSION or false
    end
    return out
end
return versions
"""

VERSION_SPEC = """local testing = require "moonwire.testing"
local moonwire = require "moonwire"

describe("the version under moonwire test", function()
    it("is the binary's, in the core specs run on and in every module", function()
        local want = os.getenv("MW_EXPECT_VERSION")
        assert.equal(want, moonwire._VERSION)
        assert.equal(want, require("moonwire.core").version)
        for name in os.getenv("MW_EXPECT_MODULES"):gmatch("[^,]+") do
            assert.equal(want, require(name)._VERSION, name)
        end
    end)
end)
"""


def binary_version(ctx):
    rc, out, err = cli(ctx, "--version")
    eq(rc, 0, "--version exit status")
    m = re.fullmatch(r"moonwire (\d+\.\d+\.\d+)\n", out)
    check(m, "--version printed %r" % out)
    return m.group(1)


def runtime_modules(ctx):
    """Every module of lua/moonwire/ (moonwire.version is where they read it)."""
    d = os.path.join(ctx.root, "lua", "moonwire")
    names = []
    for f in sorted(os.listdir(d)):
        if f.endswith(".lua") and f != "version.lua":
            names.append("moonwire" if f == "init.lua" else "moonwire." + f[:-4])
    check("moonwire" in names and "moonwire.testing" in names, "runtime modules: %r" % names)
    return names


def busted_env(ctx):
    """Under ASan the compiled Lua module needs the ASan runtime preloaded
    into LuaJIT (as spec/tests.cmake does for the busted runs)."""
    if not ctx.sanitized():
        return {}
    lib = subprocess.run(["cc", "-print-file-name=libasan.so"], stdout=subprocess.PIPE,
                         check=True).stdout.decode().strip()
    return {"LD_PRELOAD": lib, "ASAN_OPTIONS": "detect_leaks=0"}


@S.case("version: --version is moonwire._VERSION and every module's, served and under test",
        timeout=60)
def version_is_one(ctx):
    want = binary_version(ctx)
    modules = runtime_modules(ctx)
    app = make_app(ctx, controllers={"versions.lua": VERSIONS})
    srv = ctx.start("versions", app)
    c = ctx.track(H.JsonClient(srv))
    r = c.request("versions", "of", {"modules": modules})
    eq(r.get("data"), {name: want for name in modules}, "_VERSION of each module, served")
    ctx.close_clients()
    srv.stop()
    os.makedirs(os.path.join(app, "spec"))
    with open(os.path.join(app, "spec", "version_spec.lua"), "w") as f:
        f.write(VERSION_SPEC)
    env = dict(busted_env(ctx), MW_EXPECT_VERSION=want, MW_EXPECT_MODULES=",".join(modules))
    rc, out, err = cli(ctx, "test", app, env=env, timeout=50)
    eq(rc, 0, "moonwire test exit status (out %r err %r)" % (out[-600:], err[-400:]))


@S.case("version: no doc says \"since\" a version later than --version")
def version_docs_agree(ctx):
    want = tuple(int(x) for x in binary_version(ctx).split("."))
    files = [os.path.join(ctx.root, "README.md")]
    for top, _dirs, names in os.walk(os.path.join(ctx.root, "docs")):
        files += [os.path.join(top, n) for n in names if n.endswith(".md")]
    later, seen = [], 0
    for path in files:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                for m in re.finditer(r"\bsince\W{0,4}(\d+)\.(\d+)\.(\d+)", line, re.I):
                    seen += 1
                    if tuple(int(x) for x in m.groups()) > want:
                        later.append("%s:%d: %s" % (os.path.relpath(path, ctx.root), n, m.group(0)))
    check(seen > 0, "no \"since X.Y.Z\" found in the docs: the pattern is stale")
    check(not later, "docs promise versions later than %s: %s" % (".".join(map(str, want)), later))


@S.case("--help exits 0 and lists the commands")
def test_help_lists_commands(ctx):
    rc, out, err = cli(ctx, "--help")
    eq(rc, 0, "exit status")
    text = out + err
    for word in ("serve", "check", "new", "test", "max_message_size", "handshake_timeout"):
        check(word in text, "--help does not mention %r: %r" % (word, text[:500]))


@S.case("unknown command exits 2")
def test_unknown_command_exits_2(ctx):
    rc, out, err = cli(ctx, "frobnicate")
    eq(rc, 2, "exit status")
    check(err.strip() != "", "no message on stderr")


@S.case("unknown option exits 2")
def test_unknown_option_exits_2(ctx):
    rc, out, err = cli(ctx, "serve", ctx.example("echo"), "--no-such-flag")
    eq(rc, 2, "exit status")


@S.case("check examples/hello exits 0 and prints greet.hello, greet.shout")
def test_check_hello_prints_routes(ctx):
    rc, out, err = cli(ctx, "check", ctx.example("hello"))
    eq(rc, 0, "exit status (stderr %r)" % err[-500:])
    check("greet.hello" in out and "greet.shout" in out, "routes not printed: %r" % out)
    check("_check_name" not in out, "private helper listed as a route: %r" % out)


@S.case("check fixtures/basic prints every route")
def test_check_basic_prints_every_route(ctx):
    rc, out, err = cli(ctx, "check", ctx.fixture("basic"))
    eq(rc, 0, "exit status (stderr %r)" % err[-500:])
    for r in ("boom.fail", "boom.index", "greet.deny", "greet.echo", "greet.hello",
              "greet.whoami", "store.get", "store.set"):
        check(r in out, "route %s missing from %r" % (r, out))
    for r in ("greet.badsend", "greet.bye", "greet.notify", "greet.unencodable"):
        check(r in out, "route %s missing from %r" % (r, out))


@S.case("check an app with a syntax error exits non-zero naming file:line")
def test_check_syntax_error_names_file_line(ctx):
    bad = 'local m = {}\n\nfunction m.x()\n    return { = }\nend\nreturn m\n'
    app = make_app(ctx, controllers={"greet.lua": GREET, "broken.lua": bad})
    rc, out, err = cli(ctx, "check", app)
    check(rc != 0, "exit status 0 for a broken app")
    check("broken.lua:4" in out + err, "file:line missing: %r" % (out + err)[-600:])


@S.case("check an app whose controller errors at load time exits non-zero naming file:line")
def test_check_load_error_names_file_line(ctx):
    bad = 'local m = {}\nlocal x = nil\nlocal y = x.field\nreturn m\n'
    app = make_app(ctx, controllers={"loadfail.lua": bad})
    rc, out, err = cli(ctx, "check", app)
    check(rc != 0, "exit status 0 for a broken app")
    check("loadfail.lua:3" in out + err, "file:line missing: %r" % (out + err)[-600:])


@S.case("serve an app with a syntax error exits non-zero naming file:line")
def test_serve_syntax_error_names_file_line(ctx):
    bad = 'local m = {}\nfunction m.x(\nreturn m\n'
    app = make_app(ctx, controllers={"broken.lua": bad})
    rc, out, err = cli(ctx, *serve_args(app))
    check(rc != 0, "serve started with a broken controller")
    check(re.search(r"broken\.lua:\d+", out + err), "file:line missing: %r" % (out + err)[-600:])


@S.case("serve a missing app folder exits non-zero")
def test_serve_missing_app_exits_nonzero(ctx):
    rc, out, err = cli(ctx, *serve_args(os.path.join(ctx.tmpdir(), "does-not-exist")))
    check(rc != 0, "exit status 0")
    check(err.strip() != "", "no message on stderr")


# --------------------------------------------------------------------------
# config validation -> exit 2 naming the key
# --------------------------------------------------------------------------

def bad_config(config, key, status=2):
    def run(ctx):
        app = make_app(ctx, config=config)
        args = serve_args(app)
        if "port" in config:  # let the config's own port be the one in use
            args = args[:-2]
        rc, out, err = cli(ctx, *args, timeout=10)
        eq(rc, status, "exit status (stderr %r)" % err[-400:])
        check(key in err, "stderr does not name %r: %r" % (key, err[-600:]))
    return run


S.add("config: unknown key -> exit 2 naming it",
      bad_config('return { welcome = true, no_such_option = 1 }\n', "no_such_option"))
S.add("config: port = \"abc\" -> exit 2 naming port",
      bad_config('return { port = "abc" }\n', "port"))
S.add("config: port = 70000 -> exit 2 naming port",
      bad_config('return { port = 70000 }\n', "port"))
S.add("config: port = -1 -> exit 2 naming port",
      bad_config('return { port = -1 }\n', "port"))
S.add("config: welcome = \"yes\" -> exit 2 naming welcome",
      bad_config('return { welcome = "yes" }\n', "welcome"))
S.add("config: max_message_size = \"big\" -> exit 2 naming max_message_size",
      bad_config('return { max_message_size = "big" }\n', "max_message_size"))
S.add("config: subprotocols = \"chat\" (not an array) -> exit 2 naming subprotocols",
      bad_config('return { subprotocols = "chat" }\n', "subprotocols"))
S.add("config: handshake_timeout = {} -> exit 2 naming handshake_timeout",
      bad_config('return { handshake_timeout = {} }\n', "handshake_timeout"))
S.add("config: log_level = \"loud\" -> exit 2 naming log_level",
      bad_config('return { log_level = "loud" }\n', "log_level"))
S.add("config: log_format = \"xml\" -> exit 2 naming log_format",
      bad_config('return { log_format = "xml" }\n', "log_format"))
S.add("config: path = \"ws\" (no leading slash) -> exit 2 naming path",
      bad_config('return { path = "ws" }\n', "path"))
S.add("config: app = 5 (not a table) -> exit 2 naming app",
      bad_config('return { app = 5 }\n', "app"))


S.add("config: shared_dicts = { \"cache\" } (no size) -> exit 2 naming shared_dicts",
      bad_config('return { shared_dicts = { "cache" } }\n', "shared_dicts"))
S.add("config: shared_dicts = { cache = \"1m\" } (named keys) -> exit 2 naming shared_dicts",
      bad_config('return { shared_dicts = { cache = "1m" } }\n', "shared_dicts"))
S.add("config: a shared dict named twice -> exit 2 naming shared_dicts",
      bad_config('return { shared_dicts = { "a:16k", "a:1m" } }\n', "shared_dicts"))

COUNTER = """
local moonwire = require "moonwire"
local hits = assert(moonwire.shared.dict("hits"))  -- at the top level: check finds it too
local M = {}
function M.hit(client, data)
    local n = assert(hits:incr(data.page, 1, 0))
    return { n = n, keys = hits:get_keys() }
end
return M
"""


@S.case("shared_dicts: check and serve map them; a handler counts in one; /metrics shows it")
def test_shared_dicts_serve(ctx):
    app = make_app(ctx, config='return { shared_dicts = { "hits:64k" } }\n',
                   controllers={"counter.lua": COUNTER})
    rc, out, err = cli(ctx, "check", app)
    eq(rc, 0, "check exit status (stderr %r)" % err[-400:])
    srv = ctx.start("shdict", app)
    c = ctx.track(H.JsonClient(srv))
    eq(c.request("counter", "hit", {"page": "/a"}).get("data"), {"n": 1, "keys": ["/a"]}, "first")
    eq(c.request("counter", "hit", {"page": "/a"}).get("data"), {"n": 2, "keys": ["/a"]}, "second")
    c2 = ctx.track(H.JsonClient(srv))
    eq(c2.request("counter", "hit", {"page": "/a"}).get("data", {}).get("n"), 3, "another client")
    status, headers, body = H.http_request(srv.connect_host, srv.port, "GET", "/metrics")
    eq(status, 200, "GET /metrics")
    text = body.decode()
    check('moonwire_shdict_keys{dict="hits"} 1' in text, "no keys sample: %r" % text[-800:])
    check(re.search(r'moonwire_shdict_bytes\{dict="hits"\} 6\d{4}', text), "no bytes sample")
    check('moonwire_shdict_evictions_total{dict="hits"} 0' in text, "no evictions sample")
    ctx.close_clients()
    srv.stop()


@S.case("config: syntax error in config.lua -> non-zero naming config.lua:LINE")
def test_config_syntax_error_names_line(ctx):
    app = make_app(ctx, config='return {\n    welcome = true,\n    port = ,\n}\n')
    rc, out, err = cli(ctx, *serve_args(app))
    check(rc != 0, "exit status 0")
    check("config.lua:3" in err, "config.lua:3 not named: %r" % err[-600:])


@S.case("config: config.lua returning a non-table -> non-zero")
def test_config_non_table_exits_nonzero(ctx):
    app = make_app(ctx, config='return 42\n')
    rc, out, err = cli(ctx, *serve_args(app))
    check(rc != 0, "exit status 0")
    check("config" in err, "stderr does not mention config: %r" % err[-400:])


# --------------------------------------------------------------------------
# environment and flags
# --------------------------------------------------------------------------

@S.case("env: MOONWIRE_PORT selects the port")
def test_env_port_selects_port(ctx):
    port = H.free_port()
    srv = ctx.start("envport", ctx.example("echo"), env={"MOONWIRE_PORT": str(port)},
                    use_port_flag=False)
    eq(srv.port, port, "listening port")
    ctx.track(srv.client()).roundtrip()
    ctx.close_clients()
    srv.stop()


@S.case("env: --port flag overrides MOONWIRE_PORT")
def test_port_flag_overrides_env(ctx):
    p_env, p_flag = H.free_port(), H.free_port()
    srv = ctx.start("flagport", ctx.example("echo"), env={"MOONWIRE_PORT": str(p_env)},
                    port=p_flag)
    eq(srv.port, p_flag, "listening port")
    ctx.track(srv.client()).roundtrip()
    ctx.close_clients()
    srv.stop()


@S.case("env: --host flag overrides MOONWIRE_HOST")
def test_host_flag_overrides_env(ctx):
    srv = ctx.start("flaghost", ctx.example("echo"), env={"MOONWIRE_HOST": "203.0.113.7"})
    ctx.track(srv.client()).roundtrip()
    ctx.close_clients()
    srv.stop()


@S.case("env: MOONWIRE_MAX_MESSAGE_SIZE=100 -> 100 bytes echoed, 101 and 200 get 1009")
def test_env_max_message_size_closes_1009(ctx):
    srv = ctx.start("smallmax", ctx.example("echo"), env={"MOONWIRE_MAX_MESSAGE_SIZE": "100"})
    c = ctx.track(srv.client())
    c.send_frame(OP_TEXT, b"a" * 100)
    c.expect_echo(OP_TEXT, b"a" * 100)
    c.send_frame(OP_BINARY, b"b" * 200)
    c.expect_close(1009)
    c2 = ctx.track(srv.client())
    c2.send(build_frame(OP_TEXT, b"x" * 60, fin=False) + build_frame(0, b"y" * 41))
    c2.expect_close(1009)
    ctx.close_clients()
    srv.stop()


@S.case("config: max_message_size = 64 in config.lua -> 65-byte message gets 1009")
def test_config_max_message_size_closes_1009(ctx):
    app = make_app(ctx, config="return { max_message_size = 64, welcome = false }\n")
    srv = ctx.start("cfgmax", app)
    c = ctx.track(srv.client())
    c.send_frame(OP_TEXT, b"{" + b" " * 63)
    op, data = c.recv_message()  # a JSON error reply for the 64-byte message, not a close
    check(b"INVALID_MESSAGE" in data, "64-byte message was not processed: %r" % data[:100])
    c.send_frame(OP_TEXT, b"x" * 65)
    c.expect_close(1009)
    ctx.close_clients()
    srv.stop()


@S.case("env: MOONWIRE_MAX_HEADER_BYTES=1024 -> 2 KB of headers get 431; 7 KB fine by default")
def test_env_max_header_bytes_431(ctx):
    small = ctx.start("smallhdr", ctx.example("echo"), env={"MOONWIRE_MAX_HEADER_BYTES": "1024"})
    req = H.build_request(extra=[("X-Pad", "p" * 2000)])[0]
    s = ctx.track(H.RawClient(small.connect_host, small.port))
    s.send_background(req)
    eq(H.read_http_head(s.sock)[0], 431, "status with 2 KB of headers")
    ctx.track(small.client()).roundtrip()
    dflt = ctx.start("dflthdr", ctx.example("echo"))
    ctx.track(dflt.client(extra=[("X-Pad", "p" * 7000)])).roundtrip()
    ctx.close_clients()
    small.stop()
    dflt.stop()


@S.case("env: MOONWIRE_CLOSE_TIMEOUT=1000 (over config.lua's 60 s) bounds a server-initiated "
        "close the client ignores", timeout=40)
def test_env_close_timeout_bounds_close(ctx):
    # config.lua says 60 s, the environment 1 s: the TCP close coming within
    # 20 s (a bound no machine is slow enough to reach) shows the
    # environment won; coming after 1 s shows the server did wait for it.
    app = ctx.copy_app(ctx.fixture("basic"))
    cfg = os.path.join(app, "config.lua")
    with open(cfg) as f:
        text = f.read()
    with open(cfg, "w") as f:
        f.write(text.replace("return {", "return {\n    close_timeout = 60000,", 1))
    srv = ctx.start("closeto", app, env={"MOONWIRE_CLOSE_TIMEOUT": "1000"})
    c = ctx.track(H.JsonClient(srv, welcome=True))
    t0 = time.monotonic()
    c.send({"type": "greet", "action": "bye", "id": "x"})
    while True:
        f = c.raw.recv_frame()
        if f.opcode == 0x8:
            eq(f.close_code(), 4000, "close code")
            break
    # do not answer the close: the server must drop the TCP connection itself
    c.raw.expect_eof(20.0)
    dt = time.monotonic() - t0
    check(dt >= 0.9, "TCP closed after %.2fs, before close_timeout (1 s)" % dt)
    ctx.close_clients()
    srv.stop()


@S.case("env: MOONWIRE_PORT=abc -> exit 2 naming port")
def test_env_bad_port_exits_2(ctx):
    rc, out, err = cli(ctx, "serve", ctx.example("echo"), "--host", "127.0.0.1",
                       env={"MOONWIRE_PORT": "abc"})
    eq(rc, 2, "exit status (stderr %r)" % err[-300:])
    check("port" in err.lower(), "stderr does not name port: %r" % err[-400:])


@S.case("env: unknown MOONWIRE_PROT -> exit 2 naming it")
def test_env_unknown_key_exits_2(ctx):
    rc, out, err = cli(ctx, *serve_args(ctx.example("echo")), env={"MOONWIRE_PROT": "1"}, timeout=10)
    eq(rc, 2, "exit status (stderr %r)" % err[-300:])
    check("MOONWIRE_PROT" in err or "prot" in err, "stderr does not name it: %r" % err[-400:])


@S.case("env: MOONWIRE_SUBPROTOCOLS=b,a sets the preference list")
def test_env_subprotocols_preference(ctx):
    srv = ctx.start("envsub", ctx.example("echo"), env={"MOONWIRE_SUBPROTOCOLS": "b,a"})
    c = ctx.track(H.RawClient(srv.connect_host, srv.port))
    status, headers = c.handshake(extra=[("Sec-WebSocket-Protocol", "a, b")])
    eq(H.header_all(headers, "Sec-WebSocket-Protocol"), ["b"], "selected subprotocol")
    ctx.close_clients()
    srv.stop()


@S.case("env: MOONWIRE_WELCOME=true turns the welcome event on")
def test_env_welcome_turns_welcome_on(ctx):
    app = make_app(ctx, config="return { welcome = false }\n")
    srv = ctx.start("envwelcome", app, env={"MOONWIRE_WELCOME": "true"})
    c = ctx.track(H.JsonClient(srv, welcome=True))
    eq((c.welcome.get("type"), c.welcome.get("action")), ("system", "connected"), "welcome event")
    ctx.close_clients()
    srv.stop()


@S.case("flag: --port with a busy port exits non-zero")
def test_busy_port_exits_nonzero(ctx):
    srv = ctx.start("busy", ctx.example("echo"))
    rc, out, err = cli(ctx, "serve", ctx.example("echo"), "--host", "127.0.0.1",
                       "--port", str(srv.port))
    check(rc != 0, "second server on a busy port exited 0")
    check(err.strip() != "", "no message on stderr")
    ctx.close_clients()
    srv.stop()


@S.case("log_format = json: every stderr line is a JSON object")
def test_log_format_json_lines(ctx):
    srv = ctx.start("jsonlog", ctx.example("echo"), env={"MOONWIRE_LOG_FORMAT": "json"})
    ctx.track(srv.client()).roundtrip()
    ctx.close_clients()
    srv.stop()
    lines = [ln for ln in srv.log().splitlines() if ln.strip()]
    check(lines, "no log lines")
    for ln in lines:
        try:
            obj = json.loads(ln)
        except ValueError:
            raise H.Failure("not a JSON log line: %r" % ln[:200])
        check(isinstance(obj, dict), "log line is not an object: %r" % ln[:200])


# --------------------------------------------------------------------------
# new / test
# --------------------------------------------------------------------------

@S.case("new creates an app; check, test and serve accept it", timeout=60)
def test_new_app_passes_check_test_serve(ctx):
    dest = os.path.join(ctx.tmpdir(), "myapp")
    rc, out, err = cli(ctx, "new", dest)
    eq(rc, 0, "new exit status (stderr %r)" % err[-400:])
    check(os.path.isfile(os.path.join(dest, "config.lua")), "no config.lua created")
    check(os.path.isdir(os.path.join(dest, "controllers")), "no controllers/ created")
    rc, out, err = cli(ctx, "check", dest)
    eq(rc, 0, "check exit status (stderr %r)" % err[-400:])
    rc, out, err = cli(ctx, "test", dest, env=busted_env(ctx), timeout=50)
    eq(rc, 0, "test exit status (out %r err %r)" % (out[-400:], err[-400:]))
    srv = ctx.start("newapp", dest)
    ctx.track(srv.client()).close()
    ctx.close_clients()
    srv.stop()


@S.case("test exits non-zero when an app spec fails", timeout=60)
def test_test_exits_nonzero_on_failing_spec(ctx):
    dest = os.path.join(ctx.tmpdir(), "failapp")
    rc, out, err = cli(ctx, "new", dest)
    eq(rc, 0, "new exit status")
    os.makedirs(os.path.join(dest, "spec"), exist_ok=True)
    with open(os.path.join(dest, "spec", "zz_failing_spec.lua"), "w") as f:
        f.write('describe("deliberate", function()\n'
                '  it("fails", function() assert.are.equal(1, 2) end)\n'
                'end)\n')
    rc, out, err = cli(ctx, "test", dest, env=busted_env(ctx), timeout=50)
    check(rc != 0, "test exited 0 with a failing spec (out %r)" % out[-400:])


@S.case("new refuses to overwrite an existing app")
def test_new_refuses_to_overwrite(ctx):
    dest = make_app(ctx, config="return { welcome = true } -- mine\n")
    rc, out, err = cli(ctx, "new", dest)
    check(rc != 0, "new over an existing app exited 0")
    with open(os.path.join(dest, "config.lua")) as f:
        eq(f.read(), "return { welcome = true } -- mine\n", "config.lua content")


if __name__ == "__main__":
    H.main(S)
