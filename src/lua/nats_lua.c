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
#include "../errors.h"
#include "../idmap.h"
#include "../list.h"
#include "../log.h"
#include "../nats.h"
#include "../state.h"
#include "sched.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MS 86400000.0 /* a day: the longest timeout */

typedef struct reg reg_t;

typedef struct lconn {
    reg_t *reg;
    mw_nats_t *n;
    mw_sched_t *sched; /* the app that opened it */
    uint64_t id;
    char *key; /* url \n name \n user \n password \n token \n timeout */
    mw_list_t link;
} lconn_t;

typedef struct lsub {
    reg_t *reg;
    lconn_t *conn;
    mw_nats_sub_t *sub;
    uint64_t id;
    int fn_ref;
    mw_list_t link;
} lsub_t;

struct reg {
    lua_State *T; /* never resumed: the stack C callbacks work on */
    mw_idmap_t conn_ids, sub_ids;
    mw_list_t conns, subs;
    uint64_t next_id;
};

static char reg_key;

static reg_t *get_reg(lua_State *L) {
    lua_pushlightuserdata(L, &reg_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    reg_t *r = lua_touserdata(L, -1);
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

static void *find(mw_idmap_t *m, lua_State *L, int arg) {
    lua_Number id = luaL_checknumber(L, arg);
    return id >= 1 && id <= 9007199254740992.0 ? mw_idmap_get(m, (uint64_t)id) : NULL;
}

/* core.nats_open(url, name, user, password, token, timeout_ms) -> id | nil, err */
static int l_open(lua_State *L) {
    mw_lua_core_t *ctx = ctx_of(L);
    reg_t *reg = get_reg(L);
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
    for (mw_list_t *n = reg->conns.next; n != &reg->conns; n = n->next) {
        lconn_t *c = mw_list_entry(n, lconn_t, link);
        if (c->sched == s && strcmp(c->key, key) == 0) {
            lua_pushnumber(L, (lua_Number)c->id);
            return 1;
        }
    }
    lconn_t *c = calloc(1, sizeof *c);
    char *k = strdup(key);
    if (!c || !k || mw_idmap_put(&reg->conn_ids, reg->next_id + 1, c) != 0) {
        free(c);
        free(k);
        return mw_lua_push_result(L, MW_ENOMEM);
    }
    rc = mw_nats_create(&c->n, srv->loop, &o, err, sizeof err);
    if (rc != 0) {
        mw_idmap_del(&reg->conn_ids, reg->next_id + 1);
        free(c);
        free(k);
        return rc == MW_EINVAL ? nil_err(L, err) : mw_lua_push_result(L, rc);
    }
    c->reg = reg;
    c->sched = s;
    c->key = k;
    c->id = ++reg->next_id;
    mw_list_insert_tail(&reg->conns, &c->link);
    lua_pushnumber(L, (lua_Number)c->id);
    return 1;
}

/* core.nats_status(id) -> up, last_error | nil, "closed" */
static int l_status(lua_State *L) {
    lconn_t *c = find(&get_reg(L)->conn_ids, L, 1);
    if (!c)
        return nil_err(L, "closed");
    lua_pushboolean(L, mw_nats_up(c->n));
    lua_pushstring(L, mw_nats_last_error(c->n));
    return 2;
}

/* core.nats_publish(id, subject, data[, reply]) -> true | nil, err */
static int l_publish(lua_State *L) {
    lconn_t *c = find(&get_reg(L)->conn_ids, L, 1);
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
    lua_State *T = s->reg->T;
    int base = lua_gettop(T);
    lua_rawgeti(T, LUA_REGISTRYINDEX, s->fn_ref);
    lua_pushstring(T, m->subject);
    lua_pushlstring(T, m->data ? m->data : "", m->len);
    if (m->reply)
        lua_pushstring(T, m->reply);
    else
        lua_pushnil(T);
    int rc = mw_sched_spawn(T, s->conn->sched, base + 1, 3);
    lua_settop(T, base);
    if (rc != 0)
        mw_log_warn("nats %s: a message on %s was dropped: %s", mw_nats_name(s->conn->n),
                    m->subject, mw_strerror(rc));
}

/* core.nats_subscribe(id, subject, queue, fn) -> sub id | nil, err */
static int l_subscribe(lua_State *L) {
    mw_lua_core_t *ctx = ctx_of(L);
    reg_t *reg = get_reg(L);
    lconn_t *c = find(&reg->conn_ids, L, 1);
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
    sub->reg = reg;
    sub->conn = c;
    int rc = mw_idmap_put(&reg->sub_ids, reg->next_id + 1, sub);
    if (rc == 0 && (rc = mw_nats_subscribe(c->n, subject, queue, on_message, sub, &sub->sub)) != 0)
        mw_idmap_del(&reg->sub_ids, reg->next_id + 1);
    if (rc != 0) {
        free(sub);
        return rc == MW_EINVAL ? nil_err(L, "invalid subject") : mw_lua_push_result(L, rc);
    }
    sub->id = ++reg->next_id;
    lua_pushvalue(L, 4);
    sub->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    mw_list_insert_tail(&reg->subs, &sub->link);
    lua_pushnumber(L, (lua_Number)sub->id);
    return 1;
}

static void sub_free(lsub_t *s) {
    mw_nats_unsubscribe(s->conn->n, s->sub);
    mw_idmap_del(&s->reg->sub_ids, s->id);
    luaL_unref(s->reg->T, LUA_REGISTRYINDEX, s->fn_ref);
    mw_list_remove(&s->link);
    free(s);
}

/* core.nats_unsubscribe(sub) -> true | nil, "closed" */
static int l_unsubscribe(lua_State *L) {
    lsub_t *s = find(&get_reg(L)->sub_ids, L, 1);
    if (!s)
        return nil_err(L, "closed");
    sub_free(s);
    lua_pushboolean(L, 1);
    return 1;
}

/* core.nats_unsubscribe_all(): every subscription of the running app (a
 * reload replaces the code whose functions they call). */
static int l_unsubscribe_all(lua_State *L) {
    reg_t *reg = get_reg(L);
    mw_sched_t *s = mw_lua_core_sched(ctx_of(L));
    for (mw_list_t *n = reg->subs.next, *next; n != &reg->subs; n = next) {
        next = n->next;
        lsub_t *sub = mw_list_entry(n, lsub_t, link);
        if (sub->conn->sched == s)
            sub_free(sub);
    }
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
    lconn_t *c = find(&get_reg(L)->conn_ids, L, 1);
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
    lconn_t *c = find(&get_reg(L)->conn_ids, L, 1);
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

static void conn_free(lconn_t *c) {
    reg_t *reg = c->reg;
    for (mw_list_t *n = reg->subs.next, *next; n != &reg->subs; n = next) {
        next = n->next;
        lsub_t *sub = mw_list_entry(n, lsub_t, link);
        if (sub->conn == c)
            sub_free(sub);
    }
    mw_idmap_del(&reg->conn_ids, c->id);
    mw_list_remove(&c->link);
    mw_nats_free(c->n); /* pending requests end with "closed" now */
    free(c->key);
    free(c);
}

/* core.nats_close(id) -> true: the connection goes for every user of it. */
static int l_close(lua_State *L) {
    lconn_t *c = find(&get_reg(L)->conn_ids, L, 1);
    if (c)
        conn_free(c);
    lua_pushboolean(L, 1);
    return 1;
}

void mw_lua_nats_stop(lua_State *L, mw_sched_t *s) {
    reg_t *reg = get_reg(L);
    if (!reg)
        return;
    for (mw_list_t *n = reg->conns.next, *next; n != &reg->conns; n = next) {
        next = n->next;
        lconn_t *c = mw_list_entry(n, lconn_t, link);
        if (c->sched == s)
            conn_free(c);
    }
}

void mw_lua_nats_metrics(lua_State *L, mw_sched_t *s, FILE *out) {
    reg_t *reg = get_reg(L);
    if (!reg)
        return;
    size_t n = 0;
    for (mw_list_t *l = reg->conns.next; l != &reg->conns; l = l->next)
        n += mw_list_entry(l, lconn_t, link)->sched == s;
    mw_nats_t **ns = n ? malloc(n * sizeof *ns) : NULL;
    if (!ns)
        return;
    n = 0;
    for (mw_list_t *l = reg->conns.next; l != &reg->conns; l = l->next) {
        lconn_t *c = mw_list_entry(l, lconn_t, link);
        if (c->sched == s)
            ns[n++] = c->n;
    }
    mw_nats_metrics(out, ns, n);
    free(ns);
}

/* The registry's __gc (the state closes): connections still open belong to
 * a server that never stopped, whose loop may be gone; they are left, only
 * the registry's memory goes. */
static int l_reg_gc(lua_State *L) {
    reg_t *reg = lua_touserdata(L, 1);
    while (!mw_list_empty(&reg->subs))
        mw_list_remove(reg->subs.next);
    while (!mw_list_empty(&reg->conns))
        mw_list_remove(reg->conns.next);
    mw_idmap_free(&reg->conn_ids);
    mw_idmap_free(&reg->sub_ids);
    return 0;
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
        reg_t *reg = lua_newuserdata(L, sizeof *reg);
        memset(reg, 0, sizeof *reg);
        mw_idmap_init(&reg->conn_ids);
        mw_idmap_init(&reg->sub_ids);
        mw_list_init(&reg->conns);
        mw_list_init(&reg->subs);
        reg->T = lua_newthread(L);
        lua_setfield(L, LUA_REGISTRYINDEX, "moonwire.nats.T");
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, l_reg_gc);
        lua_setfield(L, -2, "__gc");
        lua_setmetatable(L, -2);
        lua_pushlightuserdata(L, &reg_key);
        lua_insert(L, -2);
        lua_rawset(L, LUA_REGISTRYINDEX);
    }
    for (const luaL_Reg *f = fns; f->name; f++) {
        lua_pushlightuserdata(L, ctx);
        lua_pushcclosure(L, f->func, 1);
        lua_setfield(L, -2, f->name);
    }
}
