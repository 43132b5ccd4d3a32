/*
 * test_driver.c - moonwire.core as a Lua C module (moonwire/core.so), with
 * a driver that runs the real server under busted.
 *
 * luaopen_moonwire_core returns the primitive table the server injects
 * (api.c) plus core.test_server, which builds a complete worker inside the
 * busted process: its own uv loop, an mw_config_t from the descriptors'
 * defaults, the app's config.lua and the spec's overrides (through the
 * setters config.lua goes through), a server on a virtual clock, and a
 * script attached to the busted state (mw_script_attach) whose handlers
 * are the spec's runtime. Its clients are the other ends of socketpairs the
 * server adopts as if accepted over TCP (test_client.c speaks WebSocket on
 * them), so everything between the socket and Lua is the production code:
 * HTTP parsing, the handshake, framing, UTF-8, limits, rooms, fan-out,
 * backpressure, dedupe, throttles, deadlines and heartbeats.
 *
 * Nothing here runs on its own: a spec turns the loop (run: until nothing
 * moves) and the clock (advance). Log lines go to the current server's
 * list (mw_log_set_sink) for harness:logs().
 */
#include "../errors.h"
#include "../log.h"
#include "../metrics.h"
#include "../server.h"
#include "api.h"
#include "config_lua.h"
#include "script.h"
#include "test_client.h"

#include <lauxlib.h>
#include <lua.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SERVER_MT "moonwire.test_server"
#define CLIENT_MT "moonwire.test_client"
/* advance() moves the clock in steps this long and turns the loop between
 * them, so a reply (a pong) is read before the next pass, as with timers. */
#define ADVANCE_STEP_MS 10
/* run() gives up on a loop that never goes quiet (an app that answers
 * every message with a message to itself, forever). */
#define MAX_ROUNDS 1000000

typedef struct test_server test_server_t;
typedef struct test_client test_client_t;

/* One per loaded module: the primitives' context and the server they act
 * on now (the one a spec last used). */
typedef struct {
    mw_lua_core_t *core;
    test_server_t *current;
} driver_t;

/* The driver the log sink feeds: the module's latest load (busted's
 * insulation loads it again for every spec file). */
static driver_t *log_driver;

typedef struct {
    int level;
    char *msg;
} log_line_t;

struct test_server {
    driver_t *drv;
    lua_State *L;      /* busted's main thread: config loading on reload */
    int overrides_ref; /* the spec's config overrides, or LUA_NOREF */
    char *reload_err;  /* why the last reload failed, or NULL */
    uv_loop_t loop;
    int loop_ready;
    mw_config_t cfg;
    int cfg_ready;
    mw_shdicts_t *dicts; /* cfg's shared_dicts, the server's own */
    int app_ref;         /* config's app table, or LUA_NOREF */
    char *app_dir;
    mw_script_t *script;
    const mw_app_t *inner; /* the script's callbacks */
    mw_app_callbacks_t cbs;
    mw_app_t app; /* cbs with this struct as data: forwards to inner */
    int detached; /* closing: nothing reaches Lua any more */
    mw_server_t *server;
    uint64_t opened_id; /* the id of the last client the app opened */
    int next_port;

    test_client_t **clients;
    size_t nclients, clients_cap;

    log_line_t *logs;
    size_t nlogs, logs_cap;
};

struct test_client {
    test_server_t *srv; /* NULL once the server is closed */
    mw_test_client_t *c;
    uint64_t id; /* 0: the upgrade was refused or has not finished */
    int port;    /* the peer port the server was told: how fw_open finds it */
};

/* The server the primitives and the log act on. */
static void activate(test_server_t *t) {
    t->drv->current = t;
    mw_lua_core_set_server(t->drv->core, t->server);
    mw_lua_core_set_shdicts(t->drv->core, t->dicts);
}

/* Logging: lines go to the current server; with none, to stderr. */
static void log_sink(void *data, mw_log_level level, const char *msg) {
    driver_t *drv = data;
    test_server_t *t = drv->current;
    if (!t) {
        if (level >= MW_LOG_WARN)
            fprintf(stderr, "moonwire: %s\n", msg);
        return;
    }
    if (t->nlogs == t->logs_cap) {
        size_t cap = t->logs_cap ? t->logs_cap * 2 : 32;
        log_line_t *l = realloc(t->logs, cap * sizeof *l);
        if (!l)
            return;
        t->logs = l;
        t->logs_cap = cap;
    }
    char *copy = strdup(msg);
    if (!copy)
        return;
    t->logs[t->nlogs].level = (int)level;
    t->logs[t->nlogs++].msg = copy;
}

/* The app callbacks, forwarded to the script unless the server is being
 * torn down (the spec's runtime must not run from a finalizer). open also
 * records the id, so connect() can hand it to the spec. */
static int fw_upgrade(void *data, mw_conn_t *c, const mw_client_info_t *info, char *msg,
                      size_t msglen) {
    test_server_t *t = data;
    if (t->detached || !t->inner->cb->upgrade)
        return 0;
    return t->inner->cb->upgrade(t->inner->data, c, info, msg, msglen);
}

static void fw_open(void *data, mw_conn_t *c) {
    test_server_t *t = data;
    t->opened_id = mw_conn_id(c);
    /* A client whose upgrade the app decided later (an authenticate hook
     * that waited) learns its id here: each has its own peer port. */
    char addr[48];
    int port = mw_conn_peer(c, addr, sizeof addr);
    for (size_t i = 0; i < t->nclients; i++)
        if (t->clients[i]->port == port && !t->clients[i]->id)
            t->clients[i]->id = mw_conn_id(c);
    if (!t->detached && t->inner->cb->open)
        t->inner->cb->open(t->inner->data, c);
}

static void fw_message(void *data, mw_conn_t *c, int binary, const char *payload, size_t len) {
    test_server_t *t = data;
    if (!t->detached && t->inner->cb->message)
        t->inner->cb->message(t->inner->data, c, binary, payload, len);
}

static int fw_close(void *data, mw_conn_t *c, unsigned code, const char *reason, size_t len) {
    test_server_t *t = data;
    if (!t->detached && t->inner->cb->close)
        return t->inner->cb->close(t->inner->data, c, code, reason, len);
    return 0;
}

static int fw_http(void *data, mw_conn_t *c, const mw_request_t *req) {
    test_server_t *t = data;
    if (t->detached || !t->inner->cb->http)
        return MW_ENOTFOUND;
    return t->inner->cb->http(t->inner->data, c, req);
}

static void set_reload_err(test_server_t *t, const char *err) {
    free(t->reload_err);
    t->reload_err = err ? strdup(err) : NULL;
}

static int fw_reload(void *data, const mw_config_t *cfg, char *err, size_t errlen) {
    test_server_t *t = data;
    if (t->detached || !t->inner->cb->reload)
        return 0;
    int rc = t->inner->cb->reload(t->inner->data, cfg, err, errlen);
    if (rc != 0)
        set_reload_err(t, err);
    return rc;
}

static void fw_idle(void *data) {
    test_server_t *t = data;
    if (!t->detached && t->inner->cb->idle)
        t->inner->cb->idle(t->inner->data);
}

static void fw_health(void *data, FILE *out) {
    test_server_t *t = data;
    if (!t->detached && t->inner->cb->health)
        t->inner->cb->health(t->inner->data, out);
}

static void fw_stop(void *data) {
    test_server_t *t = data;
    if (!t->detached && t->inner->cb->stop)
        t->inner->cb->stop(t->inner->data);
}

static void fw_metrics(void *data, FILE *out) {
    test_server_t *t = data;
    if (!t->detached && t->inner->cb->metrics)
        t->inner->cb->metrics(t->inner->data, out);
}

static size_t pump_clients(test_server_t *t) {
    size_t moved = 0;
    for (size_t i = 0; i < t->nclients; i++)
        moved += mw_test_client_pump(t->clients[i]->c);
    return moved;
}

/* run_until_idle alternates the clients' I/O with non-blocking turns of
 * the loop until two rounds in a row move no byte and leave the loop
 * nothing due (uv_backend_timeout is 0 while callbacks are pending, such
 * as handles being closed). Returns 0, or -1 if it never settles. */
static int run_until_idle(test_server_t *t) {
    int quiet = 0;
    for (long rounds = 0; quiet < 2; rounds++) {
        if (rounds >= MAX_ROUNDS)
            return -1;
        size_t moved = pump_clients(t);
        uv_run(&t->loop, UV_RUN_NOWAIT);
        moved += pump_clients(t);
        if (moved == 0 && uv_backend_timeout(&t->loop) != 0)
            quiet++;
        else
            quiet = 0;
    }
    return 0;
}

static test_server_t *check_server(lua_State *L, int idx) {
    test_server_t **box = luaL_checkudata(L, idx, SERVER_MT);
    if (!*box)
        luaL_error(L, "test server is closed");
    return *box;
}

static test_client_t *check_client(lua_State *L, int idx) {
    test_client_t *tc = luaL_checkudata(L, idx, CLIENT_MT);
    if (!tc->srv)
        luaL_error(L, "test client's server is closed");
    activate(tc->srv);
    return tc;
}

static void run_or_raise(lua_State *L, test_server_t *t) {
    if (run_until_idle(t) != 0)
        luaL_error(L, "the server's loop never went idle (%d rounds)", MAX_ROUNDS);
}

/* server_close detaches the app, drops every connection, lets the loop
 * close the handles and frees everything. The clients' userdata stay, with
 * their frames, but can no longer do anything. */
static void server_close(lua_State *L, test_server_t *t) {
    /* The app gives up what waits (its timers live in the server) while
     * the server and its connections still exist. */
    if (t->server && t->inner && !t->detached && t->inner->cb->stop)
        t->inner->cb->stop(t->inner->data);
    t->detached = 1;
    if (t->server) {
        mw_server_abort(t->server);
        uv_run(&t->loop, UV_RUN_DEFAULT);
        mw_server_free(t->server);
    }
    if (t->loop_ready) {
        uv_run(&t->loop, UV_RUN_DEFAULT);
        uv_loop_close(&t->loop);
    }
    for (size_t i = 0; i < t->nclients; i++) {
        mw_test_client_drop(t->clients[i]->c);
        t->clients[i]->srv = NULL;
    }
    free(t->clients);
    mw_script_free(t->script);
    if (t->app_ref != LUA_NOREF)
        luaL_unref(L, LUA_REGISTRYINDEX, t->app_ref);
    if (t->overrides_ref != LUA_NOREF)
        luaL_unref(L, LUA_REGISTRYINDEX, t->overrides_ref);
    free(t->reload_err);
    if (t->cfg_ready)
        mw_config_free(&t->cfg);
    for (size_t i = 0; i < t->nlogs; i++)
        free(t->logs[i].msg);
    free(t->logs);
    free(t->app_dir);
    if (t->drv->current == t) {
        t->drv->current = NULL;
        mw_lua_core_set_server(t->drv->core, NULL);
        mw_lua_core_set_shdicts(t->drv->core, NULL);
    }
    unsigned gen;
    if (t->dicts && mw_lua_core_shdicts(t->drv->core, &gen) == t->dicts) /* setup failed */
        mw_lua_core_set_shdicts(t->drv->core, t->drv->current ? t->drv->current->dicts : NULL);
    mw_shdicts_free(t->dicts);
    free(t);
}

/* layer_config builds cfg as the server does (defaults, config.lua, then
 * the spec's overrides where the server would apply the environment and
 * flags), leaving the `app` table's reference in *app_ref. Returns 0 or
 * MW_ECONFIG / MW_ENOMEM with err. */
static int layer_config(test_server_t *t, mw_config_t *cfg, int *app_ref, char *err,
                        size_t errlen) {
    lua_State *L = t->L;
    char path[4096];
    *app_ref = LUA_NOREF;
    if (mw_config_init(cfg) != 0) {
        snprintf(err, errlen, "out of memory");
        return MW_ENOMEM;
    }
    snprintf(path, sizeof path, "%s/config.lua", t->app_dir);
    int rc = mw_lua_load_config(L, path, cfg, app_ref, err, errlen);
    if (rc == 0 && t->overrides_ref != LUA_NOREF) {
        int file_ref = *app_ref;
        lua_rawgeti(L, LUA_REGISTRYINDEX, t->overrides_ref);
        rc = mw_lua_apply_config(L, -1, "opts.config", cfg, app_ref, err, errlen);
        lua_pop(L, 1);
        if (file_ref != *app_ref && file_ref != LUA_NOREF)
            luaL_unref(L, LUA_REGISTRYINDEX, file_ref);
    }
    if (rc == 0)
        rc = mw_config_check(cfg, err, errlen);
    if (rc != 0 && *app_ref != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, *app_ref);
        *app_ref = LUA_NOREF;
    }
    return rc;
}

/* reload_config is the server's config loader (a reload rereads
 * config.lua): the same layers again; the new `app` table replaces the
 * old one. */
static int reload_config(void *data, mw_config_t *out, char *err, size_t errlen) {
    test_server_t *t = data;
    int app_ref;
    int rc = layer_config(t, out, &app_ref, err, errlen);
    if (rc != 0) {
        set_reload_err(t, err);
        return rc;
    }
    if (t->app_ref != LUA_NOREF)
        luaL_unref(t->L, LUA_REGISTRYINDEX, t->app_ref);
    t->app_ref = app_ref;
    return 0;
}

/* setup builds the server of core.test_server from its options table (at
 * index 1). Returns 0, or an error message pushed on the stack. */
static int setup(lua_State *L, test_server_t *t) {
    char err[1024];
    lua_getfield(L, 1, "app_dir");
    const char *dir = luaL_optstring(L, -1, ".");
    t->app_dir = strdup(dir);
    lua_pop(L, 1);
    if (!t->app_dir) {
        lua_pushliteral(L, "out of memory");
        return -1;
    }
    lua_getfield(L, 1, "config");
    if (lua_istable(L, -1))
        t->overrides_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    else
        lua_pop(L, 1);
    t->cfg_ready = 1; /* from here on, cfg is freed with the server */
    if (layer_config(t, &t->cfg, &t->app_ref, err, sizeof err) != 0) {
        lua_pushstring(L, err);
        return -1;
    }
    int drc = mw_shdicts_create(&t->dicts, t->cfg.shared_dicts, t->cfg.nshared_dicts);
    if (drc != 0) {
        lua_pushfstring(L, "shared_dicts: %s", mw_strerror(drc));
        return -1;
    }
    /* the app's top level, loaded by handlers below, finds them */
    mw_lua_core_set_shdicts(t->drv->core, t->dicts);
    lua_getfield(L, 1, "handlers");
    if (!lua_istable(L, -1))
        luaL_argerror(L, 1, "handlers must be a table of functions");
    int rc = mw_script_attach(&t->script, L, -1, t->drv->core);
    lua_pop(L, 1);
    if (rc == 0 && uv_loop_init(&t->loop) != 0)
        rc = MW_EIO;
    t->loop_ready = rc == 0;
    if (rc == 0) {
        t->inner = mw_script_app(t->script);
        t->cbs = (mw_app_callbacks_t){
            .upgrade = fw_upgrade,
            .open = fw_open,
            .message = fw_message,
            .close = fw_close,
            .http = fw_http,
            .reload = fw_reload,
            .idle = fw_idle,
            .health = fw_health,
            .metrics = fw_metrics,
            .stop = fw_stop,
        };
        t->app.cb = &t->cbs;
        t->app.data = t;
        rc = mw_server_create(&t->server, &t->loop, &t->cfg, t->app_dir, &t->app);
    }
    if (rc != 0) {
        lua_pushstring(L, mw_strerror(rc));
        return -1;
    }
    lua_getfield(L, 1, "clock");
    uint64_t start = lua_isnumber(L, -1) ? (uint64_t)lua_tonumber(L, -1)
                                         : mw_server_wall_ms(t->server); /* still the real clock */
    lua_pop(L, 1);
    mw_server_use_virtual_clock(t->server, start);
    mw_server_set_config_loader(t->server, reload_config, t);
    mw_server_start(t->server);
    t->next_port = 40000;
    activate(t);
    return 0;
}

/* core.test_server{ app_dir =, config =, handlers =, clock = } -> server |
 * nil, err. app_dir's config.lua is read (when present), then config's
 * keys are applied over it; handlers are the runtime's upgrade, open,
 * message, disconnect and reload; clock is where the virtual clock starts
 * (ms since the epoch; default: now). */
static int l_test_server(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    /* The server calls back into L whenever a spec turns its loop: that
     * must be a thread that lives as long as it, the main one. */
    if (lua_pushthread(L) != 1)
        return luaL_error(L, "core.test_server must be called from the main thread");
    lua_pop(L, 1);
    driver_t *drv = lua_touserdata(L, lua_upvalueindex(1));
    test_server_t **box = lua_newuserdata(L, sizeof *box);
    *box = NULL;
    luaL_getmetatable(L, SERVER_MT);
    lua_setmetatable(L, -2);
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_setfield(L, -2, "driver");
    lua_setfenv(L, -2);
    int box_idx = lua_gettop(L);
    test_server_t *t = calloc(1, sizeof *t);
    if (!t)
        return luaL_error(L, "out of memory");
    t->drv = drv;
    t->L = L;
    t->app_ref = LUA_NOREF;
    t->overrides_ref = LUA_NOREF;
    *box = t;
    if (setup(L, t) != 0) {
        /* stack: ... box err */
        *box = NULL;
        server_close(L, t);
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    lua_settop(L, box_idx);
    return 1;
}

static int l_server_gc(lua_State *L) {
    test_server_t **box = luaL_checkudata(L, 1, SERVER_MT);
    if (*box) {
        server_close(L, *box);
        *box = NULL;
    }
    return 0;
}

/* server:config() -> the resolved configuration, as runtime.init takes it. */
static int l_server_config(lua_State *L) {
    test_server_t *t = check_server(L, 1);
    mw_lua_push_config(L, &t->cfg, t->app_ref);
    return 1;
}

/* server:activate(): the primitives act on this server from now on. */
static int l_server_activate(lua_State *L) {
    activate(check_server(L, 1));
    return 0;
}

static int l_server_run(lua_State *L) {
    test_server_t *t = check_server(L, 1);
    activate(t);
    run_or_raise(L, t);
    return 0;
}

/* server:advance(ms): the virtual clock moves ms forward in short steps,
 * with every periodic pass that falls due and the loop run between. */
static int l_server_advance(lua_State *L) {
    test_server_t *t = check_server(L, 1);
    lua_Number ms = luaL_checknumber(L, 2);
    luaL_argcheck(L, ms >= 0 && ms < 9.0e15, 2, "milliseconds must be a non-negative number");
    activate(t);
    uint64_t left = (uint64_t)ms;
    run_or_raise(L, t);
    while (left > 0) {
        uint64_t step = left < ADVANCE_STEP_MS ? left : ADVANCE_STEP_MS;
        mw_server_advance(t->server, step);
        left -= step;
        run_or_raise(L, t);
    }
    return 0;
}

/* server:wait(fn, ms) -> true | false: turns the loop in real time until
 * fn() returns true (true) or ms real milliseconds have passed (false),
 * for I/O that no virtual clock drives: a real Redis server's replies.
 * The server's own timers stay on the virtual clock. */
static int l_server_wait(lua_State *L) {
    test_server_t *t = check_server(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_Number ms = luaL_checknumber(L, 3);
    luaL_argcheck(L, ms >= 0 && ms <= 3600000, 3, "milliseconds from 0 to 3600000 expected");
    activate(t);
    uint64_t until = uv_hrtime() + (uint64_t)(ms * 1e6);
    for (;;) {
        run_or_raise(L, t);
        lua_pushvalue(L, 2);
        lua_call(L, 0, 1);
        int done = lua_toboolean(L, -1);
        lua_pop(L, 1);
        uint64_t now = uv_hrtime();
        if (done || now >= until) {
            lua_pushboolean(L, done);
            return 1;
        }
        /* Until the loop has something to read, or 10 ms (its real timers). */
        uint64_t left = (until - now) / 1000000 + 1;
        struct pollfd p = {.fd = uv_backend_fd(&t->loop), .events = POLLIN};
        poll(&p, 1, left < 10 ? (int)left : 10);
        activate(t);
    }
}

/* server:reload() -> true | nil, err: the server's reload (the SIGHUP and
 * file-watcher path): config.lua read again, live options applied, the
 * runtime's reload with the new configuration, the outcome logged and
 * counted in /health. */
static int l_server_reload(lua_State *L) {
    test_server_t *t = check_server(L, 1);
    activate(t);
    set_reload_err(t, NULL);
    mw_server_reload(t->server, "spec");
    mw_log_configure(MW_LOG_DEBUG, 0); /* the reload set the app's log_level */
    run_or_raise(L, t);
    if (t->reload_err) {
        lua_pushnil(L);
        lua_pushstring(L, t->reload_err);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* server:start(): the app's on_start, in a task, as the server runs it
 * once it listens (and after each reload). */
static int l_server_start(lua_State *L) {
    test_server_t *t = check_server(L, 1);
    activate(t);
    if (t->script)
        mw_script_start(t->script);
    run_or_raise(L, t);
    return 0;
}

static int l_server_now(lua_State *L) {
    test_server_t *t = check_server(L, 1);
    lua_pushnumber(L, (lua_Number)mw_server_wall_ms(t->server));
    return 1;
}

static int l_server_health(lua_State *L) {
    test_server_t *t = check_server(L, 1);
    activate(t);
    size_t len;
    char *json = mw_health_json(t->server, &len);
    if (!json)
        return luaL_error(L, "out of memory");
    lua_pushlstring(L, json, len);
    free(json);
    return 1;
}

/* server:metrics() -> the /metrics text. */
static int l_server_metrics(lua_State *L) {
    test_server_t *t = check_server(L, 1);
    activate(t);
    size_t len;
    char *text = mw_metrics_text(t->server, &len);
    if (!text)
        return luaL_error(L, "out of memory");
    lua_pushlstring(L, text, len);
    free(text);
    return 1;
}

/* server:logs() -> { { level =, message = }, ... } logged since the last call. */
static int l_server_logs(lua_State *L) {
    static const char *const names[] = {"debug", "info", "warn", "error"};
    test_server_t *t = check_server(L, 1);
    lua_createtable(L, (int)t->nlogs, 0);
    for (size_t i = 0; i < t->nlogs; i++) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, names[t->logs[i].level]);
        lua_setfield(L, -2, "level");
        lua_pushstring(L, t->logs[i].msg);
        lua_setfield(L, -2, "message");
        lua_rawseti(L, -2, (int)i + 1);
        free(t->logs[i].msg);
    }
    t->nlogs = 0;
    return 1;
}

static int l_server_close(lua_State *L) {
    return l_server_gc(L);
}

/* The request of server:connect, from the spec's info table. */
typedef struct {
    mw_header_t headers[MW_HTTP_MAX_HEADERS];
    int nheaders;
    mw_test_request_t req;
} request_t;

static void read_request(lua_State *L, int info, request_t *r) {
    memset(r, 0, sizeof *r);
    lua_getfield(L, info, "path");
    r->req.path = luaL_optstring(L, -1, "/");
    lua_getfield(L, info, "query");
    r->req.query = luaL_optstring(L, -1, "");
    lua_pop(L, 2); /* both strings are anchored by the info table */
    lua_getfield(L, info, "headers");
    if (lua_istable(L, -1)) {
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L, "headers must map names to strings");
            if (r->nheaders == MW_HTTP_MAX_HEADERS)
                luaL_error(L, "too many headers");
            r->headers[r->nheaders].name = lua_tostring(L, -2);
            r->headers[r->nheaders++].value = lua_tostring(L, -1);
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1); /* anchored by info too */
    r->req.headers = r->headers;
    r->req.nheaders = r->nheaders;
}

/* new_client pushes a new client userdata of server t (at stack index 1),
 * whose environment keeps the server alive, and makes the socketpair it
 * will speak through: sv[0] for the client, sv[1] for the server. */
static test_client_t *new_client(lua_State *L, test_server_t *t, int sv[2]) {
    if (t->nclients == t->clients_cap) {
        size_t cap = t->clients_cap ? t->clients_cap * 2 : 8;
        test_client_t **cl = realloc(t->clients, cap * sizeof *cl);
        if (!cl)
            luaL_error(L, "out of memory");
        t->clients = cl;
        t->clients_cap = cap;
    }
    test_client_t *tc = lua_newuserdata(L, sizeof *tc);
    memset(tc, 0, sizeof *tc);
    luaL_getmetatable(L, CLIENT_MT);
    lua_setmetatable(L, -2);
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "server");
    lua_setfenv(L, -2);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        luaL_error(L, "socketpair failed");
    return tc;
}

/* adopt_client hands sv[1] to the server as a connection from addr:port,
 * once the client side (sv[0]) was created with rc, and runs the loop. */
static void adopt_client(lua_State *L, test_server_t *t, test_client_t *tc, int sv[2], int rc,
                         const char *addr, int port) {
    if (rc != 0) {
        close(sv[0]);
        close(sv[1]);
        luaL_error(L, "cannot connect: %s", mw_strerror(rc));
    }
    tc->srv = t;
    t->clients[t->nclients++] = tc;
    rc = mw_server_adopt(t->server, sv[1], addr, port); /* owns sv[1] from here */
    if (rc != 0)
        luaL_error(L, "the server cannot adopt a connection: %s", mw_strerror(rc));
    run_or_raise(L, t);
}

/* server:connect{ path =, query =, headers =, remote_addr =, remote_port =,
 * auto_pong = } -> client, after its upgrade was answered. */
static int l_server_connect(lua_State *L) {
    test_server_t *t = check_server(L, 1);
    if (lua_isnoneornil(L, 2)) {
        lua_settop(L, 1);
        lua_newtable(L);
    }
    luaL_checktype(L, 2, LUA_TTABLE);
    activate(t);
    request_t r;
    read_request(L, 2, &r);
    lua_getfield(L, 2, "remote_addr");
    const char *addr = luaL_optstring(L, -1, "127.0.0.1");
    lua_getfield(L, 2, "remote_port");
    int port = (int)luaL_optinteger(L, -1, t->next_port);
    lua_getfield(L, 2, "auto_pong");
    int auto_pong = lua_isnil(L, -1) || lua_toboolean(L, -1);
    lua_pop(L, 1);
    t->next_port = t->next_port < 65535 ? t->next_port + 1 : 40000;

    int sv[2];
    test_client_t *tc = new_client(L, t, sv);
    int rc = mw_test_client_create(&tc->c, sv[0], &r.req);
    if (rc == 0)
        mw_test_client_auto_pong(tc->c, auto_pong);
    tc->port = port;
    t->opened_id = 0;
    adopt_client(L, t, tc, sv, rc, addr, port);
    if (mw_test_client_state_of(tc->c) == MW_TC_OPEN ||
        (mw_test_client_status(tc->c) == 101 && t->opened_id))
        tc->id = t->opened_id;
    return 1;
}

/* A growing byte string for build_request (the Lua stack is busy with
 * lua_next there, so no luaL_Buffer). */
typedef struct {
    char *data;
    size_t len, cap;
    int failed;
} text_t;

static void text_add(text_t *t, const char *s, size_t n) {
    if (t->failed)
        return;
    if (t->len + n > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 512;
        while (cap < t->len + n)
            cap *= 2;
        char *d = realloc(t->data, cap);
        if (!d) {
            t->failed = 1;
            return;
        }
        t->data = d;
        t->cap = cap;
    }
    memcpy(t->data + t->len, s, n);
    t->len += n;
}

static void text_str(text_t *t, const char *s) {
    text_add(t, s, strlen(s));
}

/* build_request pushes the bytes of a plain HTTP request from the spec's
 * table at idx: method (GET), path (/), query, headers (name -> string),
 * body; Host, Content-Length (with a body, unless Transfer-Encoding or
 * Content-Length is given) and Connection: close are added unless given.
 * raw = "..." is sent as it is instead. */
static void build_request(lua_State *L, int idx) {
    lua_getfield(L, idx, "raw");
    if (lua_isstring(L, -1))
        return;
    lua_pop(L, 1);
    lua_getfield(L, idx, "method");
    const char *method = luaL_optstring(L, -1, "GET");
    lua_getfield(L, idx, "path");
    const char *path = luaL_optstring(L, -1, "/");
    lua_getfield(L, idx, "query");
    const char *query = luaL_optstring(L, -1, "");
    lua_getfield(L, idx, "body");
    size_t blen = 0;
    const char *body = luaL_optlstring(L, -1, "", &blen);
    lua_getfield(L, idx, "headers");
    int headers = lua_gettop(L); /* the strings above stay anchored by their table */
    int has_host = 0, has_conn = 0, has_len = 0;
    text_t t = {0};
    text_str(&t, method);
    text_str(&t, " ");
    text_str(&t, path);
    if (query[0]) {
        text_str(&t, "?");
        text_str(&t, query);
    }
    text_str(&t, " HTTP/1.1\r\n");
    if (lua_istable(L, headers)) {
        lua_pushnil(L);
        while (lua_next(L, headers) != 0) {
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING) {
                free(t.data);
                luaL_error(L, "headers must map names to strings");
            }
            const char *name = lua_tostring(L, -2);
            has_host |= strcasecmp(name, "host") == 0;
            has_conn |= strcasecmp(name, "connection") == 0;
            has_len |= strcasecmp(name, "content-length") == 0 ||
                       strcasecmp(name, "transfer-encoding") == 0;
            text_str(&t, name);
            text_str(&t, ": ");
            text_str(&t, lua_tostring(L, -1));
            text_str(&t, "\r\n");
            lua_pop(L, 1);
        }
    }
    if (!has_host)
        text_str(&t, "Host: moonwire.test\r\n");
    if (!has_conn)
        text_str(&t, "Connection: close\r\n");
    if (blen && !has_len) {
        char cl[64];
        snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", blen);
        text_str(&t, cl);
    }
    text_str(&t, "\r\n");
    text_add(&t, body, blen);
    if (t.failed) {
        free(t.data);
        luaL_error(L, "out of memory");
    }
    lua_pushlstring(L, t.data, t.len);
    free(t.data);
}

/* server:request{ method =, path =, query =, headers =, body = } (or
 * { raw = bytes }) -> client, once the loop went idle: a plain HTTP
 * request on a new connection; client:status() and client:headers() read
 * the answer (status 0: none yet, the app has not answered). */
static int l_server_request(lua_State *L) {
    test_server_t *t = check_server(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    activate(t);
    build_request(L, 2);
    size_t len;
    const char *bytes = lua_tolstring(L, -1, &len);
    int sv[2];
    test_client_t *tc = new_client(L, t, sv);
    int rc = mw_test_client_create_raw(&tc->c, sv[0], bytes, len);
    int port = t->next_port;
    t->next_port = t->next_port < 65535 ? t->next_port + 1 : 40000;
    adopt_client(L, t, tc, sv, rc, "127.0.0.1", port);
    return 1;
}

/* client:headers() -> { [lower-case name] = value } of the answer to a
 * request (repeated names joined with ", "). */
static int l_client_headers(lua_State *L) {
    test_client_t *tc = luaL_checkudata(L, 1, CLIENT_MT);
    lua_newtable(L);
    if (!tc->c)
        return 1;
    size_t len;
    const char *h = mw_test_client_headers(tc->c, &len), *end = h + len;
    while (h < end) {
        const char *nl = memchr(h, '\n', (size_t)(end - h));
        const char *colon = memchr(h, ':', (size_t)((nl ? nl : end) - h));
        if (!nl || !colon)
            break;
        char name[256];
        size_t n = (size_t)(colon - h) < sizeof name - 1 ? (size_t)(colon - h) : sizeof name - 1;
        for (size_t i = 0; i < n; i++)
            name[i] = (char)((h[i] >= 'A' && h[i] <= 'Z') ? h[i] + 32 : h[i]);
        name[n] = '\0';
        lua_getfield(L, -1, name);
        if (lua_isstring(L, -1)) {
            lua_pushliteral(L, ", ");
            lua_pushlstring(L, colon + 1, (size_t)(nl - colon - 1));
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushlstring(L, colon + 1, (size_t)(nl - colon - 1));
        }
        lua_setfield(L, -2, name);
        h = nl + 1;
    }
    return 1;
}

static int l_client_gc(lua_State *L) {
    test_client_t *tc = luaL_checkudata(L, 1, CLIENT_MT);
    test_server_t *t = tc->srv;
    if (t) {
        for (size_t i = 0; i < t->nclients; i++) {
            if (t->clients[i] == tc) {
                t->clients[i] = t->clients[--t->nclients];
                break;
            }
        }
        tc->srv = NULL;
    }
    mw_test_client_free(tc->c);
    tc->c = NULL;
    return 0;
}

/* client:id() -> the server's id for it, or nil when not connected. */
static int l_client_id(lua_State *L) {
    test_client_t *tc = luaL_checkudata(L, 1, CLIENT_MT);
    if (!tc->id)
        return 0;
    lua_pushnumber(L, (lua_Number)tc->id);
    return 1;
}

/* client:status() -> HTTP status of the upgrade response, and its body. */
static int l_client_status(lua_State *L) {
    test_client_t *tc = luaL_checkudata(L, 1, CLIENT_MT);
    if (!tc->c)
        return 0;
    size_t len;
    const char *body = mw_test_client_body(tc->c, &len);
    lua_pushinteger(L, mw_test_client_status(tc->c));
    lua_pushlstring(L, body, len);
    return 2;
}

/* client:state() -> "connecting" | "open" | "refused" | "closed" */
static int l_client_state(lua_State *L) {
    static const char *const names[] = {"connecting", "open", "refused", "closed"};
    test_client_t *tc = luaL_checkudata(L, 1, CLIENT_MT);
    lua_pushstring(L, tc->c ? names[mw_test_client_state_of(tc->c)] : "closed");
    return 1;
}

/* client:send(payload, is_binary) -> true | nil, err: queues one masked
 * frame (written by the next run). */
static int l_client_send(lua_State *L) {
    test_client_t *tc = check_client(L, 1);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    int binary = lua_toboolean(L, 3);
    return mw_lua_push_result(L, mw_test_client_send(tc->c, binary ? 2 : 1, data, len));
}

/* client:send_frame(opcode, payload) -> true | nil, err: any frame, for
 * specs of the protocol (a ping, a reserved opcode). */
static int l_client_send_frame(lua_State *L) {
    test_client_t *tc = check_client(L, 1);
    lua_Integer opcode = luaL_checkinteger(L, 2);
    luaL_argcheck(L, opcode >= 0 && opcode <= 15, 2, "opcode must be 0..15");
    size_t len;
    const char *data = luaL_optlstring(L, 3, "", &len);
    return mw_lua_push_result(L, mw_test_client_send(tc->c, (uint8_t)opcode, data, len));
}

/* client:close(code, reason) -> true | nil, err: a close frame (no code:
 * an empty one). */
static int l_client_close(lua_State *L) {
    test_client_t *tc = check_client(L, 1);
    lua_Integer code = luaL_optinteger(L, 2, 0);
    luaL_argcheck(L, code >= 0 && code <= 65535, 2, "close code must be 0..65535");
    size_t len;
    const char *reason = luaL_optlstring(L, 3, "", &len);
    return mw_lua_push_result(L, mw_test_client_close(tc->c, (uint16_t)code, reason, len));
}

/* client:drop(): the socket closes without a close frame (a lost peer). */
static int l_client_drop(lua_State *L) {
    test_client_t *tc = check_client(L, 1);
    mw_test_client_drop(tc->c);
    return 0;
}

static int l_client_pause_reading(lua_State *L) {
    mw_test_client_pause(check_client(L, 1)->c, 1);
    return 0;
}

static int l_client_resume_reading(lua_State *L) {
    mw_test_client_pause(check_client(L, 1)->c, 0);
    return 0;
}

static int l_client_closed_first(lua_State *L) {
    test_client_t *tc = luaL_checkudata(L, 1, CLIENT_MT);
    lua_pushboolean(L, tc->c && mw_test_client_closed_first(tc->c));
    return 1;
}

/* client:frames(from) -> the frames received, from index from (default 1):
 * { type = "text"|"binary"|"close"|"ping"|"pong", payload =, binary = }
 * and, for close, code and reason. */
static int l_client_frames(lua_State *L) {
    test_client_t *tc = luaL_checkudata(L, 1, CLIENT_MT);
    lua_Integer from = luaL_optinteger(L, 2, 1);
    size_t n = 0;
    const mw_test_frame_t *f = tc->c ? mw_test_client_frames(tc->c, &n) : NULL;
    lua_createtable(L, n >= (size_t)from ? (int)(n - (size_t)from + 1) : 0, 0);
    int k = 0;
    for (size_t i = from > 1 ? (size_t)from - 1 : 0; i < n; i++) {
        const char *type = f[i].opcode == 1    ? "text"
                           : f[i].opcode == 2  ? "binary"
                           : f[i].opcode == 8  ? "close"
                           : f[i].opcode == 9  ? "ping"
                           : f[i].opcode == 10 ? "pong"
                                               : "other";
        lua_createtable(L, 0, 5);
        lua_pushstring(L, type);
        lua_setfield(L, -2, "type");
        lua_pushinteger(L, f[i].opcode);
        lua_setfield(L, -2, "opcode");
        lua_pushlstring(L, f[i].payload, f[i].len);
        lua_setfield(L, -2, f[i].opcode == 8 ? "reason" : "payload");
        lua_pushboolean(L, f[i].opcode == 2);
        lua_setfield(L, -2, "binary");
        if (f[i].opcode == 8) {
            lua_pushinteger(L, f[i].code);
            lua_setfield(L, -2, "code");
        }
        lua_rawseti(L, -2, ++k);
    }
    return 1;
}

static int l_driver_gc(lua_State *L) {
    driver_t *drv = lua_touserdata(L, 1);
    if (log_driver == drv) {
        mw_log_set_sink(NULL, NULL);
        log_driver = NULL;
    }
    drv->current = NULL;
    return 0;
}

static void new_metatable(lua_State *L, const char *name, const luaL_Reg *methods,
                          lua_CFunction gc) {
    luaL_newmetatable(L, name);
    lua_newtable(L);
    luaL_register(L, NULL, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
}

int luaopen_moonwire_core(lua_State *L) {
    static const luaL_Reg server_methods[] = {
        {"config", l_server_config},   {"activate", l_server_activate},
        {"run", l_server_run},         {"advance", l_server_advance},
        {"now", l_server_now},         {"health", l_server_health},
        {"metrics", l_server_metrics}, {"logs", l_server_logs},
        {"connect", l_server_connect}, {"request", l_server_request},
        {"reload", l_server_reload},   {"start", l_server_start},
        {"close", l_server_close},     {NULL, NULL},
    };
    static const luaL_Reg client_methods[] = {
        {"id", l_client_id},
        {"status", l_client_status},
        {"state", l_client_state},
        {"send", l_client_send},
        {"send_frame", l_client_send_frame},
        {"close", l_client_close},
        {"drop", l_client_drop},
        {"pause_reading", l_client_pause_reading},
        {"resume_reading", l_client_resume_reading},
        {"closed_first", l_client_closed_first},
        {"frames", l_client_frames},
        {"headers", l_client_headers},
        {NULL, NULL},
    };
    new_metatable(L, SERVER_MT, server_methods, l_server_gc);
    luaL_getmetatable(L, SERVER_MT); /* server:wait, for a real Redis */
    lua_getfield(L, -1, "__index");
    lua_pushcfunction(L, l_server_wait);
    lua_setfield(L, -2, "wait");
    lua_pop(L, 2);
    new_metatable(L, CLIENT_MT, client_methods, l_client_gc);
    /* A client whose server is gone would make the server write to a
     * closed socketpair: that must be an EPIPE, not the end of busted. */
    signal(SIGPIPE, SIG_IGN);

    mw_lua_core_t *core = mw_lua_push_core(L);
    /* stack: core */
    driver_t *drv = lua_newuserdata(L, sizeof *drv);
    memset(drv, 0, sizeof *drv);
    drv->core = core;
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, l_driver_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    /* Servers keep their driver alive and the driver its table (and so
     * the primitives' context), whatever order they are collected in. */
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "core");
    lua_setfenv(L, -2);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "_driver"); /* lives as long as the table */
    lua_pushcclosure(L, l_test_server, 1);
    lua_setfield(L, -2, "test_server");
    mw_log_configure(MW_LOG_DEBUG, 0);
    mw_log_set_sink(log_sink, drv);
    log_driver = drv;
    return 1;
}
