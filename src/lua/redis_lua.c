/*
 * redis_lua.c - moonwire.core.redis_*: Redis from Lua, the C side of
 * lua/moonwire/redis.lua (src/redis.c is the client).
 *
 * Handles are shared: opening the same URL, password, db and connect
 * timeout again in the same app gives the handle already open, so every
 * handler pipelines on one connection. A command parks the calling task
 * (sched.h) and its reply is pushed onto the task's thread as Lua values
 * when it comes; a pipeline parks once for all its commands. A pub/sub
 * message starts a task of its own (mw_sched_spawn). Handles belong to the
 * app (the scheduler) that opened them and go when the server stops.
 *
 * C callbacks that must build Lua values outside a task (a pipeline's
 * replies as they come, a message's arguments) use a thread of the state
 * that never runs: a stack to work on, whatever thread the loop was turned
 * from. Replies are plain values: a nil reply is nil at the top and
 * moonwire.redis.null (a NULL light userdata, cjson.null) inside a list.
 */
#include "redis_lua.h"
#include "connreg.h"
#include "../errors.h"
#include "../log.h"
#include "../redis.h"
#include "../state.h"
#include "sched.h"

#include <lauxlib.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MS 86400000.0 /* a day: the longest timeout */
#define ARGV_STACK 16     /* arguments held without malloc */

/* A handle's key: url \n password \n db \n connect timeout. A
 * subscription's keep: the runtime's own (moonwire.cluster), a reload
 * keeps it. */
typedef struct {
    mw_connreg_conn_t base;
    mw_redis_t *r;
} lconn_t;

typedef struct {
    mw_connreg_sub_t base;
    mw_redis_sub_t *sub;
} lsub_t;

typedef struct {
    mw_lua_core_t *ctx;
    mw_connreg_t *reg;
} upv_t;

static upv_t up(lua_State *L) {
    return (upv_t){lua_touserdata(L, lua_upvalueindex(1)), lua_touserdata(L, lua_upvalueindex(2))};
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

static lconn_t *find_conn(mw_connreg_t *reg, lua_State *L, int arg) {
    return conn_of(mw_connreg_conn(reg, L, arg));
}

static lsub_t *find_sub(mw_connreg_t *reg, lua_State *L, int arg) {
    return sub_of(mw_connreg_sub(reg, L, arg));
}

/* ---- replies to Lua values ------------------------------------------------ */

/* push_value pushes one reply; inside a list (nested) a nil is null and an
 * error is { err = "..." }, so that lists keep their length. */
static void push_value(lua_State *L, const redisReply *r, int nested) {
    if (!lua_checkstack(L, 3)) { /* hiredis nests 7 levels at most: never */
        lua_pushnil(L);
        return;
    }
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS: lua_pushlstring(L, r->str, r->len); break;
    case REDIS_REPLY_INTEGER: lua_pushnumber(L, (lua_Number)r->integer); break;
    case REDIS_REPLY_ARRAY:
        lua_createtable(L, (int)r->elements, 0);
        for (size_t i = 0; i < r->elements; i++) {
            push_value(L, r->element[i], 1);
            lua_rawseti(L, -2, (int)i + 1);
        }
        break;
    case REDIS_REPLY_ERROR:
        lua_createtable(L, 0, 1);
        lua_pushlstring(L, r->str, r->len);
        lua_setfield(L, -2, "err");
        break;
    default: /* REDIS_REPLY_NIL */
        if (nested)
            lua_pushlightuserdata(L, NULL);
        else
            lua_pushnil(L);
    }
}

/* ---- arguments ------------------------------------------------------------ */

typedef struct {
    const char *small[ARGV_STACK];
    size_t small_len[ARGV_STACK];
    const char **argv;
    size_t *lens;
} args_t;

static int args_init(args_t *a, int n) {
    a->argv = a->small;
    a->lens = a->small_len;
    if (n <= ARGV_STACK)
        return 0;
    a->argv = malloc((size_t)n * sizeof *a->argv);
    a->lens = malloc((size_t)n * sizeof *a->lens);
    if (!a->argv || !a->lens) {
        free(a->argv);
        free(a->lens);
        a->argv = a->small;
        a->lens = a->small_len;
        return MW_ENOMEM;
    }
    return 0;
}

static void args_free(args_t *a) {
    if (a->argv != a->small) {
        free(a->argv);
        free(a->lens);
    }
}

/* misuse pushes what a primitive returns for a mistake in the app's call:
 * nil, the message and true, which tells lua/moonwire/redis.lua to raise
 * it at the app's line. Returns 3. */
static int misuse(lua_State *L, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    lua_pushnil(L);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_pushboolean(L, 1);
    return 3;
}

/* check_args tells whether the n values from stack index first on can be
 * the arguments of a command (strings or numbers): 0, or misuse's 3. */
static int check_args(lua_State *L, int first, int n) {
    for (int i = 0; i < n; i++) {
        int t = lua_type(L, first + i);
        if (t != LUA_TSTRING && t != LUA_TNUMBER)
            return misuse(L, "redis %s: argument %d is a %s (string or number expected)",
                          i > 0 && lua_type(L, first) == LUA_TSTRING ? lua_tostring(L, first)
                                                                     : "command",
                          i + 1, lua_typename(L, t));
    }
    return 0;
}

/* take_args fills a with the n values from first on, numbers converted to
 * strings in place (check_args passed). */
static void take_args(lua_State *L, args_t *a, int first, int n) {
    for (int i = 0; i < n; i++)
        a->argv[i] = lua_tolstring(L, first + i, &a->lens[i]);
}

/* refuse_command: 0, or misuse's 3 when Redis must not get the command on
 * the shared connection (a's arrays are then freed). */
static int refuse_command(lua_State *L, args_t *a, int argc, const char *where) {
    const char *why = mw_redis_check_command(argc, a->argv, a->lens);
    if (!why)
        return 0;
    const char *name = a->argv[0]; /* a Lua string on the stack or in the table */
    args_free(a);
    return misuse(L, "redis %s%s: %s", where, name, why);
}

/* ---- open ------------------------------------------------------------------ */

/* core.redis_check(url) -> true | nil, err: the URL, without a server. */
static int l_check(lua_State *L) {
    char err[256];
    int rc = mw_redis_check_url(luaL_checkstring(L, 1), err, sizeof err);
    if (rc == MW_EINVAL)
        return nil_err(L, err);
    return mw_lua_push_result(L, rc);
}

/* core.redis_open(url, password, db, connect_timeout_ms) -> id | nil, err */
static int l_open(lua_State *L) {
    upv_t u = up(L);
    const char *url = luaL_checkstring(L, 1);
    const char *pw = luaL_optstring(L, 2, NULL);
    lua_Number db = luaL_optnumber(L, 3, 0);
    luaL_argcheck(L, db >= 0 && db <= 1000000 && db == (int)db, 3, "db must be a whole number");
    uint64_t ct = check_ms(L, 4);
    char err[256];
    int rc = mw_redis_check_url(url, err, sizeof err);
    if (rc != 0)
        return rc == MW_EINVAL ? nil_err(L, err) : mw_lua_push_result(L, rc);
    mw_server_t *srv = mw_lua_core_server(u.ctx);
    mw_sched_t *s = mw_lua_core_sched(u.ctx);
    if (!srv || !s)
        return nil_err(L, "not serving");
    lua_pushfstring(L, "%s\n%s%s\n%d\n%f", url, pw ? "+" : "-", pw ? pw : "", (int)db, (double)ct);
    const char *key = lua_tostring(L, -1);
    mw_connreg_conn_t *open = mw_connreg_find(u.reg, s, key);
    if (open) {
        lua_pushnumber(L, (lua_Number)open->id);
        return 1;
    }
    lconn_t *c = calloc(1, sizeof *c);
    if (!c)
        return mw_lua_push_result(L, MW_ENOMEM);
    mw_redis_opts_t o = {.url = url, .password = pw, .db = (int)db, .connect_timeout_ms = ct};
    rc = mw_redis_create(&c->r, srv->loop, &o, err, sizeof err);
    /* Another handle of this app with the same name (the same server and
     * db under another password, timeout or spelling of the URL): this one
     * is "name#2", "name#3", ..., so that /metrics has one series each. */
    int same = 0;
    for (mw_connreg_conn_t *o2 = NULL; rc == 0 && (o2 = mw_connreg_next(u.reg, s, o2));) {
        const char *a = mw_redis_name(conn_of(o2)->r), *b = mw_redis_name(c->r);
        size_t bl = strlen(b);
        same += strncmp(a, b, bl) == 0 && (a[bl] == '\0' || a[bl] == '#');
    }
    if (rc == 0 && same) {
        char name[600];
        snprintf(name, sizeof name, "%s#%d", mw_redis_name(c->r), same + 1);
        mw_redis_free(c->r);
        o.name = name;
        rc = mw_redis_create(&c->r, srv->loop, &o, err, sizeof err);
    }
    if (rc == 0 && (rc = mw_connreg_add(u.reg, &c->base, s, key)) != 0)
        mw_redis_free(c->r);
    if (rc != 0) {
        free(c);
        return rc == MW_EINVAL ? nil_err(L, err) : mw_lua_push_result(L, rc);
    }
    lua_pushnumber(L, (lua_Number)c->base.id);
    return 1;
}

/* core.redis_status(id) -> up, last_error, reconnects | nil, "closed".
 * reconnects grows each time a connection comes back (moonwire.cluster
 * republishes its presence then, however short the outage was). */
static int l_status(lua_State *L) {
    lconn_t *c = find_conn(up(L).reg, L, 1);
    if (!c)
        return nil_err(L, "closed");
    mw_redis_stats_t st;
    mw_redis_stats(c->r, &st);
    lua_pushboolean(L, mw_redis_up(c->r));
    lua_pushstring(L, mw_redis_last_error(c->r));
    lua_pushnumber(L, (lua_Number)st.reconnects);
    return 3;
}

/* ---- commands -------------------------------------------------------------- */

typedef struct {
    const redisReply *reply;
    int err;
} outcome_t;

static int push_outcome(lua_State *co, void *data) {
    const outcome_t *o = data;
    if (o->err)
        return nil_err(co, mw_strerror(o->err));
    if (o->reply->type == REDIS_REPLY_ERROR) {
        lua_pushnil(co);
        lua_pushlstring(co, o->reply->str, o->reply->len);
        return 2;
    }
    push_value(co, o->reply, 0);
    return 1;
}

static void on_call_reply(void *data, const redisReply *reply, int err) {
    outcome_t o = {reply, err};
    mw_wait_done(data, push_outcome, &o);
}

/* begin_wait parks the running task of L, or pushes nil, why. */
static mw_wait_t *begin_wait(lua_State *L, mw_lua_core_t *ctx) {
    const char *why = NULL;
    mw_wait_t *w = mw_wait_begin(L, mw_lua_core_sched(ctx), 0, &why);
    if (!w)
        nil_err(L, why);
    return w;
}

/* core.redis_call(id, timeout_ms, cmd, ...) -> reply | nil, err. Parks
 * the task until the reply; fails at once while Redis is down. */
static int l_call(lua_State *L) {
    upv_t u = up(L);
    lconn_t *c = find_conn(u.reg, L, 1);
    uint64_t timeout = check_ms(L, 2);
    int argc = lua_gettop(L) - 2;
    luaL_argcheck(L, argc >= 1, 3, "a command expected");
    if (!c)
        return nil_err(L, "closed");
    int bad = check_args(L, 3, argc);
    if (bad)
        return bad;
    args_t a;
    if (args_init(&a, argc) != 0)
        return mw_lua_push_result(L, MW_ENOMEM);
    take_args(L, &a, 3, argc);
    if ((bad = refuse_command(L, &a, argc, "")) != 0)
        return bad;
    mw_wait_t *w = begin_wait(L, u.ctx);
    if (!w) {
        args_free(&a);
        return 2;
    }
    int rc = mw_redis_command(c->r, argc, a.argv, a.lens, timeout, on_call_reply, w);
    args_free(&a);
    if (rc != 0) {
        mw_wait_cancel(w);
        return mw_lua_push_result(L, rc);
    }
    return mw_wait_yield(L);
}

static void on_send_reply(void *data, const redisReply *reply, int err) {
    (void)data;
    (void)reply;
    (void)err;
}

/* core.redis_send(id, cmd, ...) -> true | nil, err: sends without waiting
 * and drops the reply (moonwire.cluster's PUBLISH and presence writes:
 * callable outside a task, at most once). Fails at once while Redis is
 * down. */
static int l_send(lua_State *L) {
    upv_t u = up(L);
    lconn_t *c = find_conn(u.reg, L, 1);
    int argc = lua_gettop(L) - 1;
    luaL_argcheck(L, argc >= 1, 2, "a command expected");
    if (!c)
        return nil_err(L, "closed");
    int bad = check_args(L, 2, argc);
    if (bad)
        return bad;
    args_t a;
    if (args_init(&a, argc) != 0)
        return mw_lua_push_result(L, MW_ENOMEM);
    take_args(L, &a, 2, argc);
    if ((bad = refuse_command(L, &a, argc, "")) != 0)
        return bad;
    int rc = mw_redis_command(c->r, argc, a.argv, a.lens, 0, on_send_reply, NULL);
    args_free(&a);
    return mw_lua_push_result(L, rc);
}

/* A pipeline: one wait for n commands. Replies are stored as they come
 * into a results table (anchored in the registry, built on reg->T). */
typedef struct pipe pipe_t;
typedef struct {
    pipe_t *p;
    int idx;
} slot_t;

struct pipe {
    mw_connreg_t *reg;
    mw_wait_t *w;
    int expected, got, err;
    int results_ref, errors_ref;
    slot_t slots[];
};

static int push_pipe(lua_State *co, void *data) {
    pipe_t *p = data;
    if (p->err)
        return nil_err(co, mw_strerror(p->err));
    lua_rawgeti(co, LUA_REGISTRYINDEX, p->results_ref);
    lua_pushinteger(co, p->expected);
    lua_setfield(co, -2, "n");
    if (p->errors_ref != LUA_NOREF) {
        lua_rawgeti(co, LUA_REGISTRYINDEX, p->errors_ref);
        lua_setfield(co, -2, "errors");
    }
    return 1;
}

static void on_pipe_reply(void *data, const redisReply *reply, int err) {
    slot_t *s = data;
    pipe_t *p = s->p;
    lua_State *T = p->reg->T;
    p->got++;
    if (err && !p->err)
        p->err = err;
    if (!p->err) {
        lua_rawgeti(T, LUA_REGISTRYINDEX, p->results_ref);
        if (reply->type == REDIS_REPLY_ERROR) {
            lua_pushboolean(T, 0);
            lua_rawseti(T, -2, s->idx);
            if (p->errors_ref == LUA_NOREF) {
                lua_newtable(T);
                p->errors_ref = luaL_ref(T, LUA_REGISTRYINDEX);
            }
            lua_rawgeti(T, LUA_REGISTRYINDEX, p->errors_ref);
            lua_pushlstring(T, reply->str, reply->len);
            lua_rawseti(T, -2, s->idx);
            lua_pop(T, 1);
        } else {
            push_value(T, reply, 1);
            lua_rawseti(T, -2, s->idx);
        }
        lua_pop(T, 1);
    }
    if (p->got < p->expected)
        return;
    mw_wait_done(p->w, push_pipe, p);
    luaL_unref(T, LUA_REGISTRYINDEX, p->results_ref);
    luaL_unref(T, LUA_REGISTRYINDEX, p->errors_ref);
    free(p);
}

/* command_at takes the command in the table at the stack top (a pipeline's
 * entry i): its arguments in a, numbers converted to strings kept on the
 * stack (strings stay anchored by the table). Returns argc; 0 with
 * misuse's 3 values pushed for a bad entry; MW_ENOMEM. */
static int command_at(lua_State *L, args_t *a, int i) {
    int t = lua_gettop(L);
    if (!lua_istable(L, t)) {
        misuse(L, "redis pipeline: command %d is a %s (table expected)", i, luaL_typename(L, t));
        return 0;
    }
    int argc = (int)lua_objlen(L, t);
    if (argc < 1) {
        misuse(L, "redis pipeline: command %d is empty", i);
        return 0;
    }
    for (int k = 1; k <= argc; k++) {
        lua_rawgeti(L, t, k);
        int type = lua_type(L, -1);
        lua_pop(L, 1);
        if (type != LUA_TSTRING && type != LUA_TNUMBER) {
            misuse(L, "redis pipeline: command %d, argument %d is a %s (string or number expected)",
                   i, k, lua_typename(L, type));
            return 0;
        }
    }
    if (args_init(a, argc) != 0)
        return MW_ENOMEM;
    for (int k = 0; k < argc; k++) {
        if (!lua_checkstack(L, 2)) {
            args_free(a);
            return MW_ENOMEM;
        }
        lua_rawgeti(L, t, k + 1);
        int number = lua_type(L, -1) == LUA_TNUMBER;
        a->argv[k] = lua_tolstring(L, -1, &a->lens[k]);
        if (!number)
            lua_pop(L, 1);
    }
    return argc;
}

/* core.redis_pipeline(id, timeout_ms, { {cmd, ...}, ... }) -> results |
 * nil, err. The commands go out back to back; one wait for all. results[i]
 * is command i's reply (null for nil, false for a Redis error, whose text
 * is results.errors[i]); results.n is the count. A timeout or a lost
 * connection fails the whole pipeline. */
static int l_pipeline(lua_State *L) {
    upv_t u = up(L);
    lconn_t *c = find_conn(u.reg, L, 1);
    uint64_t timeout = check_ms(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    int n = (int)lua_objlen(L, 3);
    luaL_argcheck(L, n >= 1, 3, "at least one command expected");
    lua_settop(L, 3);
    /* Everything is checked before anything is sent. */
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, 3, i);
        args_t a;
        int argc = command_at(L, &a, i);
        if (argc == 0)
            return 3;
        if (argc < 0)
            return mw_lua_push_result(L, argc);
        char where[48];
        snprintf(where, sizeof where, "pipeline: command %d: ", i);
        if (refuse_command(L, &a, argc, where) != 0)
            return 3;
        args_free(&a);
        lua_settop(L, 3);
    }
    if (!c)
        return nil_err(L, "closed");
    pipe_t *p = calloc(1, sizeof *p + (size_t)n * sizeof(slot_t));
    if (!p)
        return mw_lua_push_result(L, MW_ENOMEM);
    mw_wait_t *w = begin_wait(L, u.ctx);
    if (!w) {
        free(p);
        return 2;
    }
    p->reg = u.reg;
    p->w = w;
    p->errors_ref = LUA_NOREF;
    lua_createtable(u.reg->T, n, 2);
    p->results_ref = luaL_ref(u.reg->T, LUA_REGISTRYINDEX);
    int sent = 0, rc = 0;
    for (int i = 1; i <= n && rc == 0; i++) {
        lua_rawgeti(L, 3, i);
        args_t a;
        int argc = command_at(L, &a, i); /* checked above: > 0 or MW_ENOMEM */
        p->slots[i - 1] = (slot_t){p, i};
        rc = argc < 0 ? argc
                      : mw_redis_command(c->r, argc, a.argv, a.lens, timeout, on_pipe_reply,
                                         &p->slots[i - 1]);
        if (argc > 0)
            args_free(&a);
        lua_settop(L, 3);
        if (rc == 0)
            sent++;
    }
    if (sent == 0) {
        mw_wait_cancel(w);
        luaL_unref(u.reg->T, LUA_REGISTRYINDEX, p->results_ref);
        free(p);
        return mw_lua_push_result(L, rc);
    }
    /* Only a resource failure stops a pipeline midway: those sent still
     * answer, then the wait ends with the error. */
    p->err = rc;
    p->expected = sent;
    return mw_wait_yield(L);
}

/* ---- pub/sub ---------------------------------------------------------------- */

/* on_message starts fn(message, channel, pattern) in a task of its own. */
static void on_message(void *data, const char *ch, size_t chlen, const char *pat, size_t patlen,
                       const char *msg, size_t len) {
    lsub_t *s = data;
    lua_State *T = s->base.reg->T;
    int base = lua_gettop(T);
    lua_rawgeti(T, LUA_REGISTRYINDEX, s->base.fn_ref);
    lua_pushlstring(T, msg, len);
    lua_pushlstring(T, ch, chlen);
    if (pat)
        lua_pushlstring(T, pat, patlen);
    else
        lua_pushnil(T);
    int rc = mw_sched_spawn(T, s->base.conn->sched, base + 1, 3);
    lua_settop(T, base);
    if (rc != 0)
        mw_log_warn("redis %s: a message on %.*s was dropped: %s",
                    mw_redis_name(conn_of(s->base.conn)->r), (int)chlen, ch, mw_strerror(rc));
}

/* core.redis_subscribe(id, name, is_pattern, fn[, keep]) -> sub id | nil,
 * err. keep: the runtime's own subscription (moonwire.cluster), made from
 * anywhere and kept across reloads (its fn is runtime code, not the app's). */
static int l_subscribe(lua_State *L) {
    upv_t u = up(L);
    lconn_t *c = find_conn(u.reg, L, 1);
    size_t len;
    const char *name = luaL_checklstring(L, 2, &len);
    int is_pattern = lua_toboolean(L, 3);
    luaL_checktype(L, 4, LUA_TFUNCTION);
    int keep = lua_toboolean(L, 5);
    luaL_argcheck(L, len > 0, 2, "a channel name expected");
    if (!c)
        return nil_err(L, "closed");
    /* Only app code that the server runs (a task) subscribes: a reload
     * drops what the old code subscribed, and on_start subscribes again. */
    mw_sched_t *s = mw_lua_core_sched(u.ctx);
    mw_task_t *t = s ? mw_sched_running(s) : NULL;
    if (!keep && (!t || mw_task_thread(t) != L))
        return nil_err(L, "cannot subscribe here (only in on_start, a handler, hook, timer or "
                          "spawned task)");
    lsub_t *sub = calloc(1, sizeof *sub);
    if (!sub)
        return mw_lua_push_result(L, MW_ENOMEM);
    sub->base.keep = keep;
    int rc = mw_redis_subscribe(c->r, name, len, is_pattern, on_message, sub, &sub->sub);
    if (rc == 0 && (rc = mw_connreg_add_sub(u.reg, &sub->base, &c->base, L, 4)) != 0)
        mw_redis_unsubscribe(c->r, sub->sub);
    if (rc != 0) {
        free(sub);
        return mw_lua_push_result(L, rc);
    }
    lua_pushnumber(L, (lua_Number)sub->base.id);
    return 1;
}

/* core.redis_unsubscribe(sub) -> true | nil, "closed" */
static int l_unsubscribe(lua_State *L) {
    mw_connreg_sub_t *s = mw_connreg_sub(up(L).reg, L, 1);
    if (!s)
        return nil_err(L, "closed");
    mw_connreg_unsubscribe(s);
    lua_pushboolean(L, 1);
    return 1;
}

/* core.redis_sub_active(sub) -> whether Redis confirmed it */
static int l_sub_active(lua_State *L) {
    lsub_t *s = find_sub(up(L).reg, L, 1);
    lua_pushboolean(L, s && mw_redis_sub_active(s->sub));
    return 1;
}

/* core.redis_unsubscribe_all(): every subscription of the running app
 * (a reload replaces the code whose functions they call). */
static int l_unsubscribe_all(lua_State *L) {
    upv_t u = up(L);
    mw_connreg_unsubscribe_all(u.reg, mw_lua_core_sched(u.ctx));
    return 0;
}

/* ---- the registry ------------------------------------------------------------ */

/* The registry's ops (connreg.h): the client's side of closing. */
static void free_conn(mw_connreg_conn_t *base) {
    lconn_t *c = conn_of(base);
    mw_redis_free(c->r); /* pending commands end with "closed" now */
    free(c);
}

static void free_sub(mw_connreg_sub_t *base) {
    lsub_t *s = sub_of(base);
    mw_redis_unsubscribe(conn_of(base->conn)->r, s->sub);
    free(s);
}

static const mw_connreg_ops_t ops = {free_conn, free_sub};

void mw_lua_redis_stop(mw_lua_core_t *ctx, mw_sched_t *s) {
    mw_connreg_t *reg = mw_lua_core_redis(ctx);
    if (reg)
        mw_connreg_stop(reg, s);
}

void mw_lua_redis_metrics(mw_lua_core_t *ctx, mw_sched_t *s, FILE *out) {
    mw_connreg_t *reg = mw_lua_core_redis(ctx);
    size_t n = reg ? mw_connreg_count(reg, s) : 0;
    mw_redis_t **rs = n ? malloc(n * sizeof *rs) : NULL;
    if (!rs)
        return;
    n = 0;
    for (mw_connreg_conn_t *c = NULL; (c = mw_connreg_next(reg, s, c));)
        rs[n++] = conn_of(c)->r;
    mw_redis_metrics(out, rs, n);
    free(rs);
}

void mw_lua_inject_redis_api(lua_State *L, mw_lua_core_t *ctx) {
    static const luaL_Reg fns[] = {
        {"redis_check", l_check},
        {"redis_open", l_open},
        {"redis_status", l_status},
        {"redis_call", l_call},
        {"redis_send", l_send},
        {"redis_pipeline", l_pipeline},
        {"redis_subscribe", l_subscribe},
        {"redis_unsubscribe", l_unsubscribe},
        {"redis_sub_active", l_sub_active},
        {"redis_unsubscribe_all", l_unsubscribe_all},
        {NULL, NULL},
    };
    mw_connreg_t *reg = mw_connreg_new(L, &ops);
    lua_setfield(L, -2, "_redis"); /* the core table keeps it */
    mw_lua_core_set_redis(ctx, reg);
    for (const luaL_Reg *f = fns; f->name; f++) {
        lua_pushlightuserdata(L, ctx);
        lua_pushlightuserdata(L, reg);
        lua_pushcclosure(L, f->func, 2);
        lua_setfield(L, -2, f->name);
    }
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "redis_null");
}
