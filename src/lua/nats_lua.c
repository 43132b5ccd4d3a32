/*
 * nats_lua.c - moonwire.core.nats_*: NATS from Lua, the C side of
 * lua/moonwire/nats.lua (src/nats.c is the client).
 *
 * Connections are shared: opening the same URL with the same options again
 * in the same app gives the connection already open. A request parks the
 * calling task (sched.h) until the reply, its timeout, or the close. A
 * subscription's message starts a task of its own (mw_sched_spawn): every
 * callback here runs on the loop thread, since src/nats.c marshals cnats's
 * threads into the loop before calling them. Connections belong to the app
 * (the scheduler) that opened them and go when the server stops.
 */
#include "nats_lua.h"
#include "connreg.h"
#include "../errors.h"
#include "../log.h"
#include "../nats.h"
#include "../state.h"
#include "sched.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MS 86400000.0 /* a day: the longest timeout */

/* A connection's key: url \n name \n user \n password \n token \n timeout */
typedef struct {
    mw_connreg_conn_t base;
    mw_nats_t *n;
} lconn_t;

typedef struct {
    mw_connreg_sub_t base;
    mw_nats_sub_t *sub;
} lsub_t;

static char reg_key; /* its address keys the registry in LUA_REGISTRYINDEX */

static mw_connreg_t *get_reg(lua_State *L) {
    lua_pushlightuserdata(L, &reg_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    mw_connreg_t *r = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return r;
}

static mw_lua_core_t *ctx_of(lua_State *L) {
    return lua_touserdata(L, lua_upvalueindex(1));
}

static int nil_err(lua_State *L, const char *err) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
}

static uint64_t check_ms(lua_State *L, int arg) {
    lua_Number ms = luaL_optnumber(L, arg, 0);
    luaL_argcheck(L, ms >= 0 && ms <= MAX_MS, arg, "milliseconds must be from 0 to 86400000");
    return (uint64_t)(ms + 0.999);
}

static lconn_t *conn_of(mw_connreg_conn_t *c) {
    return c ? mw_list_entry(c, lconn_t, base) : NULL;
}

static lsub_t *sub_of(mw_connreg_sub_t *s) {
    return s ? mw_list_entry(s, lsub_t, base) : NULL;
}

static lconn_t *find_conn(lua_State *L, int arg) {
    return conn_of(mw_connreg_conn(get_reg(L), L, arg));
}

/* core.nats_open(url, name, user, password, token, timeout_ms) -> id | nil, err */
static int l_open(lua_State *L) {
    mw_lua_core_t *ctx = ctx_of(L);
    mw_connreg_t *reg = get_reg(L);
    const char *url = luaL_checkstring(L, 1);
    mw_nats_opts_t o = {
        .url = url,
        .name = luaL_optstring(L, 2, NULL),
        .user = luaL_optstring(L, 3, NULL),
        .password = luaL_optstring(L, 4, NULL),
        .token = luaL_optstring(L, 5, NULL),
        .connect_timeout_ms = check_ms(L, 6),
    };
    char err[256];
    int rc = mw_nats_check_url(url, err, sizeof err);
    if (rc != 0)
        return nil_err(L, err);
    mw_server_t *srv = mw_lua_core_server(ctx);
    mw_sched_t *s = mw_lua_core_sched(ctx);
    if (!srv || !s || !reg)
        return nil_err(L, "not serving");
    lua_pushfstring(L, "%s\n%s\n%s\n%s\n%s\n%f", url, o.name ? o.name : "", o.user ? o.user : "",
                    o.password ? o.password : "", o.token ? o.token : "",
                    (double)o.connect_timeout_ms);
    const char *key = lua_tostring(L, -1);
    mw_connreg_conn_t *open = mw_connreg_find(reg, s, key);
    if (open) {
        lua_pushnumber(L, (lua_Number)open->id);
        return 1;
    }
    lconn_t *c = calloc(1, sizeof *c);
    if (!c)
        return mw_lua_push_result(L, MW_ENOMEM);
    rc = mw_nats_create(&c->n, srv->loop, &o, err, sizeof err);
    if (rc == 0 && (rc = mw_connreg_add(reg, &c->base, s, key)) != 0)
        mw_nats_free(c->n);
    if (rc != 0) {
        free(c);
        return rc == MW_EINVAL ? nil_err(L, err) : mw_lua_push_result(L, rc);
    }
    lua_pushnumber(L, (lua_Number)c->base.id);
    return 1;
}

/* core.nats_status(id) -> up, last_error | nil, "closed" */
static int l_status(lua_State *L) {
    lconn_t *c = find_conn(L, 1);
    if (!c)
        return nil_err(L, "closed");
    lua_pushboolean(L, mw_nats_up(c->n));
    lua_pushstring(L, mw_nats_last_error(c->n));
    return 2;
}

/* core.nats_publish(id, subject, data[, reply]) -> true | nil, err */
static int l_publish(lua_State *L) {
    lconn_t *c = find_conn(L, 1);
    const char *subject = luaL_checkstring(L, 2);
    size_t len;
    const char *data = luaL_checklstring(L, 3, &len);
    const char *reply = luaL_optstring(L, 4, NULL);
    if (!c)
        return nil_err(L, "closed");
    int rc = mw_nats_publish(c->n, subject, reply, data, len);
    if (rc == MW_EINVAL)
        return nil_err(L, "invalid subject");
    return mw_lua_push_result(L, rc);
}

/* on_message starts fn(subject, data, reply) in a task of its own. */
static void on_message(void *data, const mw_nats_msg_t *m) {
    lsub_t *s = data;
    lua_State *T = s->base.reg->T;
    int base = lua_gettop(T);
    lua_rawgeti(T, LUA_REGISTRYINDEX, s->base.fn_ref);
    lua_pushstring(T, m->subject);
    lua_pushlstring(T, m->data ? m->data : "", m->len);
    if (m->reply)
        lua_pushstring(T, m->reply);
    else
        lua_pushnil(T);
    int rc = mw_sched_spawn(T, s->base.conn->sched, base + 1, 3);
    lua_settop(T, base);
    if (rc != 0)
        mw_log_warn("nats %s: a message on %s was dropped: %s",
                    mw_nats_name(conn_of(s->base.conn)->n), m->subject, mw_strerror(rc));
}

/* core.nats_subscribe(id, subject, queue, fn) -> sub id | nil, err */
static int l_subscribe(lua_State *L) {
    mw_lua_core_t *ctx = ctx_of(L);
    lconn_t *c = find_conn(L, 1);
    const char *subject = luaL_checkstring(L, 2);
    const char *queue = luaL_optstring(L, 3, NULL);
    luaL_checktype(L, 4, LUA_TFUNCTION);
    if (!c)
        return nil_err(L, "closed");
    /* Only app code that the server runs (a task) subscribes: a reload
     * drops what the old code subscribed, and on_start subscribes again. */
    mw_sched_t *s = mw_lua_core_sched(ctx);
    mw_task_t *t = s ? mw_sched_running(s) : NULL;
    if (!t || mw_task_thread(t) != L)
        return nil_err(L, "cannot subscribe here (only in on_start, a handler, hook, timer or "
                          "spawned task)");
    lsub_t *sub = calloc(1, sizeof *sub);
    if (!sub)
        return mw_lua_push_result(L, MW_ENOMEM);
    int rc = mw_nats_subscribe(c->n, subject, queue, on_message, sub, &sub->sub);
    if (rc == 0 && (rc = mw_connreg_add_sub(get_reg(L), &sub->base, &c->base, L, 4)) != 0)
        mw_nats_unsubscribe(c->n, sub->sub);
    if (rc != 0) {
        free(sub);
        return rc == MW_EINVAL ? nil_err(L, "invalid subject") : mw_lua_push_result(L, rc);
    }
    lua_pushnumber(L, (lua_Number)sub->base.id);
    return 1;
}

/* core.nats_unsubscribe(sub) -> true | nil, "closed" */
static int l_unsubscribe(lua_State *L) {
    mw_connreg_sub_t *s = mw_connreg_sub(get_reg(L), L, 1);
    if (!s)
        return nil_err(L, "closed");
    mw_connreg_unsubscribe(s);
    lua_pushboolean(L, 1);
    return 1;
}

/* core.nats_unsubscribe_all(): every subscription of the running app (a
 * reload replaces the code whose functions they call). */
static int l_unsubscribe_all(lua_State *L) {
    mw_connreg_unsubscribe_all(get_reg(L), mw_lua_core_sched(ctx_of(L)));
    return 0;
}

typedef struct {
    const mw_nats_msg_t *m;
    int err;
} outcome_t;

static int push_reply(lua_State *co, void *data) {
    const outcome_t *o = data;
    if (o->err)
        return nil_err(co, mw_strerror(o->err));
    lua_pushstring(co, o->m->subject);
    lua_pushlstring(co, o->m->data ? o->m->data : "", o->m->len);
    if (o->m->reply)
        lua_pushstring(co, o->m->reply);
    else
        lua_pushnil(co);
    return 3;
}

static void on_reply(void *data, const mw_nats_msg_t *m, int err) {
    outcome_t o = {m, err};
    mw_wait_done(data, push_reply, &o);
}

/* core.nats_request(id, subject, data, timeout_ms) -> subject, data, reply
 * | nil, err ("timeout", "no responders", "not connected", "closed").
 * Parks the task until the reply. */
static int l_request(lua_State *L) {
    mw_lua_core_t *ctx = ctx_of(L);
    lconn_t *c = find_conn(L, 1);
    const char *subject = luaL_checkstring(L, 2);
    size_t len;
    const char *data = luaL_checklstring(L, 3, &len);
    uint64_t timeout = check_ms(L, 4);
    if (!c)
        return nil_err(L, "closed");
    const char *why = NULL;
    mw_wait_t *w = mw_wait_begin(L, mw_lua_core_sched(ctx), 0, &why);
    if (!w)
        return nil_err(L, why);
    int rc = mw_nats_request(c->n, subject, data, len, timeout, on_reply, w);
    if (rc != 0) {
        mw_wait_cancel(w);
        if (rc == MW_EINVAL)
            return nil_err(L, "invalid subject");
        return mw_lua_push_result(L, rc);
    }
    return mw_wait_yield(L);
}

static int push_ready(lua_State *co, void *data) {
    int err = *(const int *)data;
    if (err)
        return nil_err(co, mw_strerror(err));
    lua_pushboolean(co, 1);
    return 1;
}

static void on_ready(void *data, int err) {
    mw_wait_done(data, push_ready, &err);
}

/* core.nats_ready(id) -> true | nil, err: parks the task until the first
 * attempt to connect has ended (at once when it has). */
static int l_ready(lua_State *L) {
    lconn_t *c = find_conn(L, 1);
    if (!c)
        return nil_err(L, "closed");
    if (!mw_nats_connecting(c->n)) {
        lua_pushboolean(L, 1);
        return 1;
    }
    const char *why = NULL;
    mw_wait_t *w = mw_wait_begin(L, mw_lua_core_sched(ctx_of(L)), 0, &why);
    if (!w)
        return nil_err(L, why);
    int rc = mw_nats_when_ready(c->n, on_ready, w);
    if (rc != 0) {
        mw_wait_cancel(w);
        return mw_lua_push_result(L, rc);
    }
    return mw_wait_yield(L);
}

/* The registry's ops (connreg.h): the client's side of closing. */
static void free_conn(mw_connreg_conn_t *base) {
    lconn_t *c = conn_of(base);
    mw_nats_free(c->n); /* pending requests end with "closed" now */
    free(c);
}

static void free_sub(mw_connreg_sub_t *base) {
    lsub_t *s = sub_of(base);
    mw_nats_unsubscribe(conn_of(base->conn)->n, s->sub);
    free(s);
}

static const mw_connreg_ops_t ops = {free_conn, free_sub};

/* core.nats_close(id) -> true: the connection goes for every user of it. */
static int l_close(lua_State *L) {
    mw_connreg_conn_t *c = mw_connreg_conn(get_reg(L), L, 1);
    if (c)
        mw_connreg_close(c);
    lua_pushboolean(L, 1);
    return 1;
}

void mw_lua_nats_stop(lua_State *L, mw_sched_t *s) {
    mw_connreg_t *reg = get_reg(L);
    if (reg)
        mw_connreg_stop(reg, s);
}

void mw_lua_nats_metrics(lua_State *L, mw_sched_t *s, FILE *out) {
    mw_connreg_t *reg = get_reg(L);
    size_t n = reg ? mw_connreg_count(reg, s) : 0;
    mw_nats_t **ns = n ? malloc(n * sizeof *ns) : NULL;
    if (!ns)
        return;
    n = 0;
    for (mw_connreg_conn_t *c = NULL; (c = mw_connreg_next(reg, s, c));)
        ns[n++] = conn_of(c)->n;
    mw_nats_metrics(out, ns, n);
    free(ns);
}

void mw_lua_inject_nats_api(lua_State *L, mw_lua_core_t *ctx) {
    static const luaL_Reg fns[] = {
        {"nats_open", l_open},
        {"nats_status", l_status},
        {"nats_ready", l_ready},
        {"nats_publish", l_publish},
        {"nats_subscribe", l_subscribe},
        {"nats_unsubscribe", l_unsubscribe},
        {"nats_unsubscribe_all", l_unsubscribe_all},
        {"nats_request", l_request},
        {"nats_close", l_close},
        {NULL, NULL},
    };
    if (!get_reg(L)) {
        lua_pushlightuserdata(L, &reg_key);
        mw_connreg_new(L, &ops);
        lua_rawset(L, LUA_REGISTRYINDEX);
    }
    for (const luaL_Reg *f = fns; f->name; f++) {
        lua_pushlightuserdata(L, ctx);
        lua_pushcclosure(L, f->func, 1);
        lua_setfield(L, -2, f->name);
    }
}
