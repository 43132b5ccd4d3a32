/*
 * hub_lua.c - moonwire.core.hub_*: the hub (src/hub.h) from Lua.
 *
 *   core.hub_open(fn) -> worker number | nil, err   ("not a worker" outside
 *                        a supervisor's worker)
 *   core.hub_publish(channel, bytes) -> true | nil, err
 *   core.hub_subscribe(channel), core.hub_unsubscribe(channel) -> same
 *   core.hub_set(key, value), core.hub_del(key) -> same: this worker's
 *                        entries in the supervisor's store
 *   core.hub_up() -> whether the supervisor's end is there
 *   core.hub_pending() -> SUB/UNSUB not yet confirmed by the supervisor
 *
 * A worker has one hub socket, opened when its script starts
 * (mw_lua_hub_start: reload requests and reload outcomes go through it
 * whatever the app), and one fn, set once by the runtime's cluster (kept
 * across reloads: fn is runtime code). Every record starts fn in a task
 * of its own, as a Redis message does, in the order they came:
 * fn(bytes, channel, "pub", worker) for a message, fn(value, key, "set",
 * worker) and fn(nil, key, "del", worker) for another worker's entries,
 * fn(nil, nil, "exit", worker) when a worker is gone.
 */
#include "hub_lua.h"
#include "../errors.h"
#include "../hub.h"
#include "../log.h"
#include "../server.h"
#include "../state.h"
#include "../supervisor.h"
#include "sched.h"

#include <lauxlib.h>
#include <string.h>

/* The process's hub: one socket, one Lua state serving. */
static struct {
    mw_hub_t *hub;
    mw_server_t *srv; /* whose reloads are reported */
    mw_lua_core_t *ctx;
    lua_State *T; /* a thread that never runs: a stack for a message's arguments */
    int T_ref, fn_ref;
} the = {NULL, NULL, NULL, NULL, LUA_NOREF, LUA_NOREF};

/* report_reload sends a reload's outcome to the supervisor, which logs
 * one line for every worker with the same outcome (mw_reload_report_fn). */
static int report_reload(void *data, int ok, const char *why, const char *err) {
    (void)data;
    if (!mw_hub_up(the.hub))
        return MW_ECLOSED;
    char text[2048];
    int n = ok ? snprintf(text, sizeof text, "+%s", why)
               : snprintf(text, sizeof text, "-%s\n%s", why, err ? err : "");
    if (n < 0)
        return MW_EINVAL;
    size_t len = (size_t)n < sizeof text ? (size_t)n : sizeof text - 1;
    return mw_hub_send(the.hub, MW_HUB_REPORT, "reload", 6, text, len);
}

/* report_note sends a reload's other log line (mw_reload_note_fn) the
 * same way: "note", its level as a digit, then the text. */
static int report_note(void *data, int level, const char *text) {
    (void)data;
    if (!mw_hub_up(the.hub))
        return MW_ECLOSED;
    char buf[2048];
    int n = snprintf(buf, sizeof buf, "%d%s", level, text);
    if (n < 0)
        return MW_EINVAL;
    size_t len = (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1;
    return mw_hub_send(the.hub, MW_HUB_REPORT, "note", 4, buf, len);
}

static int nil_err(lua_State *L, const char *err) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
}

static void on_message(void *data, const mw_hub_record_t *rec) {
    (void)data;
    if (rec->op == MW_HUB_RELOAD) {
        /* the supervisor's SIGHUP, passed on; the outcome goes back */
        if (the.srv)
            mw_server_hangup(the.srv);
        return;
    }
    mw_sched_t *s = the.ctx ? mw_lua_core_sched(the.ctx) : NULL;
    if (!s || the.fn_ref == LUA_NOREF)
        return; /* no cluster on the hub (cluster = true: Redis) */
    static const char *const names[] = {
        [MW_HUB_PUB] = "pub", [MW_HUB_SET] = "set", [MW_HUB_DEL] = "del", [MW_HUB_EXIT] = "exit"};
    const char *op = rec->op < (int)(sizeof names / sizeof names[0]) ? names[rec->op] : NULL;
    if (!op)
        return;
    lua_State *T = the.T;
    int base = lua_gettop(T);
    lua_rawgeti(T, LUA_REGISTRYINDEX, the.fn_ref);
    if (rec->op == MW_HUB_PUB || rec->op == MW_HUB_SET)
        lua_pushlstring(T, rec->payload, rec->payload_len);
    else
        lua_pushnil(T);
    if (rec->op != MW_HUB_EXIT)
        lua_pushlstring(T, rec->channel, rec->channel_len);
    else
        lua_pushnil(T);
    lua_pushstring(T, op);
    lua_pushinteger(T, rec->worker);
    int rc = mw_sched_spawn(T, s, base + 1, 4);
    lua_settop(T, base);
    if (rc != 0)
        mw_log_warn("hub: a record (%s) from worker %d was dropped: %s", op, rec->worker,
                    mw_strerror(rc));
}

/* open_hub opens this worker's socket to the supervisor on the server's
 * loop (once): from then on the supervisor's reload requests are served
 * and every reload's outcome goes to it. */
static int open_hub(lua_State *L, mw_lua_core_t *ctx) {
    if (the.hub)
        return 0;
    int fd = mw_hub_worker_fd();
    if (fd < 0)
        return MW_ENOTFOUND;
    mw_server_t *srv = mw_lua_core_server(ctx);
    if (!srv)
        return MW_ECLOSED;
    int rc = mw_hub_open(&the.hub, srv->loop, fd, on_message, NULL);
    if (rc != 0)
        return rc;
    the.ctx = ctx;
    the.srv = srv;
    mw_server_set_reload_report(srv, report_reload, NULL);
    mw_server_set_reload_note(srv, report_note);
    the.T = lua_newthread(L);
    the.T_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

void mw_lua_hub_start(lua_State *L, mw_lua_core_t *ctx) {
    if (mw_hub_worker_fd() < 0)
        return;
    int rc = open_hub(L, ctx);
    if (rc != 0)
        mw_log_error("workers: cannot open the hub: %s", mw_strerror(rc));
}

static int l_open(lua_State *L) {
    mw_lua_core_t *ctx = lua_touserdata(L, lua_upvalueindex(1));
    luaL_checktype(L, 1, LUA_TFUNCTION);
    if (mw_hub_worker_fd() < 0)
        return nil_err(L, "not a worker");
    if (the.fn_ref != LUA_NOREF)
        return nil_err(L, "already open");
    int rc = open_hub(L, ctx);
    if (rc == MW_ECLOSED)
        return nil_err(L, "not serving");
    if (rc != 0)
        return mw_lua_push_result(L, rc);
    lua_pushvalue(L, 1);
    the.fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushinteger(L, mw_worker_id());
    return 1;
}

static int send_op(lua_State *L, int op) {
    size_t chlen, len = 0;
    const char *ch = luaL_checklstring(L, 1, &chlen);
    const char *msg = op == MW_HUB_PUB || op == MW_HUB_SET ? luaL_checklstring(L, 2, &len) : NULL;
    if (!the.hub)
        return nil_err(L, "closed");
    return mw_lua_push_result(L, mw_hub_send(the.hub, op, ch, chlen, msg, len));
}

static int l_publish(lua_State *L) {
    return send_op(L, MW_HUB_PUB);
}

static int l_subscribe(lua_State *L) {
    return send_op(L, MW_HUB_SUB);
}

static int l_unsubscribe(lua_State *L) {
    return send_op(L, MW_HUB_UNSUB);
}

static int l_set(lua_State *L) {
    return send_op(L, MW_HUB_SET);
}

static int l_del(lua_State *L) {
    return send_op(L, MW_HUB_DEL);
}

static int l_up(lua_State *L) {
    lua_pushboolean(L, mw_hub_up(the.hub));
    return 1;
}

static int l_pending(lua_State *L) {
    lua_pushnumber(L, (lua_Number)mw_hub_pending(the.hub));
    return 1;
}

void mw_lua_hub_health(FILE *f) {
    if (!the.hub)
        return;
    int up = mw_hub_up(the.hub);
    uint64_t pending = mw_hub_pending(the.hub);
    fprintf(f, ",\"hub\":{\"up\":%s,\"pending_subscriptions\":%llu,\"ready\":%s}",
            up ? "true" : "false", (unsigned long long)pending,
            up && pending == 0 ? "true" : "false");
}

void mw_lua_hub_stop(lua_State *L) {
    if (!the.hub)
        return;
    mw_hub_close(the.hub);
    the.hub = NULL;
    if (the.srv) {
        mw_server_set_reload_report(the.srv, NULL, NULL);
        mw_server_set_reload_note(the.srv, NULL);
    }
    the.srv = NULL;
    the.ctx = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, the.fn_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, the.T_ref);
    the.fn_ref = the.T_ref = LUA_NOREF;
    the.T = NULL;
}

void mw_lua_inject_hub_api(lua_State *L, mw_lua_core_t *ctx) {
    static const luaL_Reg fns[] = {
        {"hub_open", l_open},
        {"hub_publish", l_publish},
        {"hub_subscribe", l_subscribe},
        {"hub_unsubscribe", l_unsubscribe},
        {"hub_set", l_set},
        {"hub_del", l_del},
        {"hub_up", l_up},
        {"hub_pending", l_pending},
        {NULL, NULL},
    };
    for (const luaL_Reg *f = fns; f->name; f++) {
        lua_pushlightuserdata(L, ctx);
        lua_pushcclosure(L, f->func, 1);
        lua_setfield(L, -2, f->name);
    }
}
