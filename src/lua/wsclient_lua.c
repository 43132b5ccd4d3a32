/*
 * wsclient_lua.c - moonwire.core.wsc_*: outgoing WebSocket connections
 * from Lua, the C side of lua/moonwire/websocket.lua (src/wsclient.c is
 * the client).
 *
 * A connection is a full userdata (a box) pointing to a malloc'd record
 * that the C callbacks hold, so that the collector may take the box while
 * the loop still calls back: the box's __gc drops the connection. Waiting
 * (connect, receive, close) parks the calling task (sched.h): one wait for
 * the receiver, one for connect or close. A receive timeout is a timer of
 * this file (timers.h), not the scheduler's, so that a message arriving
 * after a timeout is queued rather than lost. Messages that arrive while
 * nobody receives are queued; past max_queue messages (or max_queue_bytes)
 * reading stops, and TCP pushes back on the server, until the queue is
 * down to half (the server's own max_pending_messages rule).
 *
 * Connections belong to the app (scheduler) that opened them. A reload
 * keeps them (the old code's tasks hold them); the server's stop drops
 * them (mw_lua_wsclient_stop).
 */
#include "wsclient_lua.h"
#include "../errors.h"
#include "../list.h"
#include "../state.h"
#include "../timers.h"
#include "../wsclient.h"
#include "sched.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MS 86400000.0
#define MAX_HEADERS 32
#define DEFAULT_MAX_QUEUE 1000
#define DEFAULT_MAX_QUEUE_BYTES (16u << 20)
#define BOX_MT "moonwire.wsclient"

enum { S_CONNECTING, S_OPEN, S_CLOSING, S_CLOSED };
static const char *const state_names[] = {"connecting", "open", "closing", "closed"};

typedef struct qmsg {
    struct qmsg *next;
    int binary;
    size_t len;
    char data[];
} qmsg_t;

typedef struct reg {
    mw_list_t conns;
    lua_State *T; /* a thread that never runs: for luaL_unref from callbacks */
} reg_t;

typedef struct lws {
    reg_t *reg; /* NULL once the registry is gone (the state closes) */
    mw_list_t link;
    mw_wsclient_t *c; /* NULL once closed */
    mw_sched_t *sched;
    mw_server_t *srv;
    int state;
    int box_ref;   /* anchors the box while connect waits */
    mw_wait_t *rw; /* the receiver */
    mw_timer_t *rtimer;
    mw_wait_t *cw; /* connect or close */
    qmsg_t *qhead, *qtail;
    size_t qcount, qbytes, max_queue, max_queue_bytes;
    int paused;
    int busy; /* inside a callback, which may resume a task (and collect the box) */
    int gone; /* the box was collected meanwhile: the callback frees h */
    unsigned close_code;
    char close_reason[124];
    size_t close_reason_len;
    char err[256];
} lws_t;

static int reg_key; /* its address keys the registry in LUA_REGISTRYINDEX */

static int nil_err(lua_State *L, const char *err) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
}

static lws_t *check_h(lua_State *L, int arg) {
    lws_t **box = luaL_checkudata(L, arg, BOX_MT);
    return *box;
}

/* ---- waking ---------------------------------------------------------------- */

static int push_nothing(lua_State *co, void *data) {
    (void)co;
    (void)data;
    return 0;
}

static int push_box(lua_State *co, void *data) {
    lws_t *h = data;
    lua_rawgeti(co, LUA_REGISTRYINDEX, h->box_ref);
    return 1;
}

static int push_err(lua_State *co, void *data) {
    return nil_err(co, data);
}

static int push_true(lua_State *co, void *data) {
    (void)data;
    lua_pushboolean(co, 1);
    return 1;
}

typedef struct {
    const char *p;
    size_t len;
    int binary;
} msgv_t;

static int push_msg(lua_State *co, void *data) {
    const msgv_t *m = data;
    lua_pushlstring(co, m->p, m->len);
    lua_pushstring(co, m->binary ? "binary" : "text");
    return 2;
}

/* wake_r ends the receiver's wait with push's values; MW_ECLOSED when the
 * receiving task is gone (the values were not taken). */
static int wake_r(lws_t *h, mw_wait_push_fn push, void *data) {
    mw_wait_t *w = h->rw;
    if (!w)
        return MW_ECLOSED;
    h->rw = NULL;
    if (h->rtimer) {
        mw_timer_stop(h->rtimer);
        h->rtimer = NULL;
    }
    return mw_wait_done(w, push, data);
}

static int wake_c(lws_t *h, mw_wait_push_fn push, void *data) {
    mw_wait_t *w = h->cw;
    if (!w)
        return MW_ECLOSED;
    h->cw = NULL;
    return mw_wait_done(w, push, data);
}

/* ---- the queue --------------------------------------------------------------- */

static void queue_clear(lws_t *h) {
    while (h->qhead) {
        qmsg_t *m = h->qhead;
        h->qhead = m->next;
        free(m);
    }
    h->qtail = NULL;
    h->qcount = h->qbytes = 0;
}

/* resume_reading reads again once the queue is down to half its bounds. */
static void resume_reading(lws_t *h) {
    if (h->paused && h->c && h->qcount <= h->max_queue / 2 && h->qbytes <= h->max_queue_bytes / 2) {
        h->paused = 0;
        mw_wsclient_pause(h->c, 0);
    }
}

/* ---- the connection's callbacks --------------------------------------------- */

static void drop_connection(lws_t *h) {
    if (h->c) {
        mw_wsclient_free(h->c);
        h->c = NULL;
    }
}

/* enter and leave bracket a callback: a task it resumes may drop the last
 * reference to the box, whose __gc then leaves the memory to leave(). */
static lws_t *enter(void *data) {
    lws_t *h = data;
    h->busy++;
    return h;
}

static void leave(lws_t *h) {
    if (--h->busy == 0 && h->gone)
        free(h);
}

static void on_open(void *data, int err, const char *why) {
    lws_t *h = enter(data);
    if (err) {
        h->state = S_CLOSED;
        snprintf(h->err, sizeof h->err, "%s", why);
        drop_connection(h);
        wake_c(h, push_err, h->err);
    } else {
        h->state = S_OPEN;
        if (wake_c(h, push_box, h) != 0)
            drop_connection(h); /* the task that connected is gone */
    }
    if (h->reg)
        luaL_unref(h->reg->T, LUA_REGISTRYINDEX, h->box_ref);
    h->box_ref = LUA_NOREF;
    leave(h);
}

static void on_message(void *data, int binary, const char *msg, size_t len) {
    lws_t *h = enter(data);
    msgv_t m = {msg, len, binary};
    if (!h->qhead && wake_r(h, push_msg, &m) == 0) {
        leave(h);
        return;
    }
    qmsg_t *q = malloc(sizeof *q + len);
    if (!q) {
        /* Out of memory: fail the connection rather than lose a message
         * silently. */
        mw_wsclient_close(h->c, 1011, "out of memory", 13);
        leave(h);
        return;
    }
    q->next = NULL;
    q->binary = binary;
    q->len = len;
    memcpy(q->data, msg, len);
    if (h->qtail)
        h->qtail->next = q;
    else
        h->qhead = q;
    h->qtail = q;
    h->qcount++;
    h->qbytes += len;
    if (!h->paused && (h->qcount >= h->max_queue || h->qbytes >= h->max_queue_bytes)) {
        h->paused = 1;
        mw_wsclient_pause(h->c, 1);
    }
    leave(h);
}

static void on_close(void *data, unsigned code, const char *reason, size_t len) {
    lws_t *h = enter(data);
    h->state = S_CLOSED;
    h->close_code = code;
    if (len > sizeof h->close_reason - 1)
        len = sizeof h->close_reason - 1;
    memcpy(h->close_reason, reason, len);
    h->close_reason[len] = '\0';
    h->close_reason_len = len;
    drop_connection(h);
    if (!h->qhead)
        wake_r(h, push_err, "closed");
    wake_c(h, push_true, NULL);
    leave(h);
}

/* ---- primitives -------------------------------------------------------------- */

static uint64_t opt_ms(lua_State *L, int t, const char *name) {
    lua_getfield(L, t, name);
    lua_Number ms = lua_isnil(L, -1) ? 0 : luaL_checknumber(L, -1);
    lua_pop(L, 1);
    if (!(ms >= 0 && ms <= MAX_MS))
        luaL_error(L, "option '%s': milliseconds from 0 to 86400000 expected", name);
    return (uint64_t)(ms + 0.999);
}

static size_t opt_size(lua_State *L, int t, const char *name) {
    lua_getfield(L, t, name);
    lua_Number n = lua_isnil(L, -1) ? 0 : luaL_checknumber(L, -1);
    lua_pop(L, 1);
    if (!(n >= 0 && n <= 1073741824.0))
        luaL_error(L, "option '%s': a size from 1 to 1073741824 expected", name);
    return (size_t)n;
}

static const char *opt_str(lua_State *L, int t, const char *name) {
    lua_getfield(L, t, name);
    const char *s = lua_isnil(L, -1) ? NULL : luaL_checkstring(L, -1);
    lua_pop(L, 1); /* the table keeps the string */
    return s;
}

static lws_t *new_box(lua_State *L) {
    lws_t **box = lua_newuserdata(L, sizeof *box);
    *box = NULL;
    luaL_getmetatable(L, BOX_MT);
    lua_setmetatable(L, -2);
    lws_t *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    mw_list_init(&h->link);
    h->box_ref = LUA_NOREF;
    *box = h;
    return h;
}

static reg_t *get_reg(lua_State *L) {
    lua_pushlightuserdata(L, &reg_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    reg_t *r = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return r;
}

/* core.wsc_connect(url, opts) -> handle | nil, err. opts: timeout,
 * close_timeout, protocols (a comma-separated string), headers ({name =
 * value}), max_message_size, max_queue, max_queue_bytes, tls_verify,
 * ca_file. Parks the task until the connection is open or failed. */
static int l_connect(lua_State *L) {
    mw_lua_core_t *ctx = lua_touserdata(L, lua_upvalueindex(1));
    const char *url = luaL_checkstring(L, 1);
    if (lua_isnoneornil(L, 2)) {
        lua_settop(L, 1);
        lua_newtable(L);
    }
    luaL_checktype(L, 2, LUA_TTABLE);
    mw_wsclient_opts_t o = {.url = url};
    o.timeout_ms = opt_ms(L, 2, "timeout");
    o.close_timeout_ms = opt_ms(L, 2, "close_timeout");
    o.max_message_size = opt_size(L, 2, "max_message_size");
    o.protocols = opt_str(L, 2, "protocols");
    o.ca_file = opt_str(L, 2, "ca_file");
    lua_getfield(L, 2, "tls_verify");
    o.tls_verify = lua_isnil(L, -1) ? 1 : lua_toboolean(L, -1);
    lua_pop(L, 1);
    size_t max_queue = opt_size(L, 2, "max_queue");
    size_t max_queue_bytes = opt_size(L, 2, "max_queue_bytes");
    mw_handshake_header_t hdrs[MAX_HEADERS];
    lua_getfield(L, 2, "headers");
    if (!lua_isnil(L, -1)) {
        luaL_checktype(L, -1, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                return luaL_error(L, "option 'headers': name = value strings expected");
            if (o.nheaders == MAX_HEADERS)
                return luaL_error(L, "option 'headers': at most %d headers", MAX_HEADERS);
            hdrs[o.nheaders].name = lua_tostring(L, -2);
            hdrs[o.nheaders].value = lua_tostring(L, -1); /* anchored by the table */
            lua_pop(L, 1);
            o.nheaders++;
        }
    }
    o.headers = hdrs; /* the strings stay anchored by the headers table on the stack */
    mw_sched_t *s = mw_lua_core_sched(ctx);
    mw_server_t *srv = mw_lua_core_server(ctx);
    reg_t *reg = get_reg(L);
    if (!s || !srv || !reg)
        return nil_err(L, "not serving");
    const char *why = NULL;
    mw_wait_t *w = mw_wait_begin(L, s, 0, &why);
    if (!w)
        return nil_err(L, why);
    lws_t *h = new_box(L);
    if (!h) {
        mw_wait_cancel(w);
        return mw_lua_push_result(L, MW_ENOMEM);
    }
    h->sched = s;
    h->srv = srv;
    h->max_queue = max_queue ? max_queue : DEFAULT_MAX_QUEUE;
    h->max_queue_bytes = max_queue_bytes ? max_queue_bytes : DEFAULT_MAX_QUEUE_BYTES;
    static const mw_wsclient_cbs_t cbs = {on_open, on_message, on_close};
    char err[256];
    int rc = mw_wsclient_connect(&h->c, srv->loop, &o, &cbs, h, err, sizeof err);
    if (rc != 0) {
        mw_wait_cancel(w);
        h->state = S_CLOSED;
        return nil_err(L, rc == MW_ENOMEM ? mw_strerror(rc) : err);
    }
    /* The task's stack does not keep the box across the yield. */
    h->box_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    h->reg = reg;
    mw_list_insert_tail(&reg->conns, &h->link);
    h->cw = w;
    return mw_wait_yield(L);
}

/* core.wsc_send(h, data, binary) -> true | nil, "closed" | nil, "output
 * buffer full" (max_buffered unsent bytes) | nil, "out of memory" */
static int l_send(lua_State *L) {
    lws_t *h = check_h(L, 1);
    size_t len;
    const char *p = luaL_checklstring(L, 2, &len);
    if (!h || !h->c || h->state != S_OPEN)
        return nil_err(L, "closed");
    int rc = mw_wsclient_send(h->c, lua_toboolean(L, 3), p, len);
    if (rc == MW_ECLOSED)
        return nil_err(L, "closed");
    if (rc == MW_ESLOW)
        return nil_err(L, "output buffer full");
    return mw_lua_push_result(L, rc);
}

static void on_recv_timeout(void *data) {
    lws_t *h = enter(data);
    h->rtimer = NULL; /* timers.c frees it */
    wake_r(h, push_err, "timeout");
    leave(h);
}

/* core.wsc_receive(h, timeout_ms) -> message, kind | nil, "timeout" |
 * nil, "closed" | nil, err, true (misuse: another task receives). */
static int l_receive(lua_State *L) {
    mw_lua_core_t *ctx = lua_touserdata(L, lua_upvalueindex(1));
    lws_t *h = check_h(L, 1);
    lua_Number ms = luaL_optnumber(L, 2, 0);
    luaL_argcheck(L, ms >= 0 && ms <= MAX_MS, 2, "milliseconds from 0 to 86400000 expected");
    if (!h)
        return nil_err(L, "closed");
    if (h->qhead) {
        qmsg_t *m = h->qhead;
        h->qhead = m->next;
        if (!h->qhead)
            h->qtail = NULL;
        h->qcount--;
        h->qbytes -= m->len;
        lua_pushlstring(L, m->data, m->len);
        lua_pushstring(L, m->binary ? "binary" : "text");
        free(m);
        resume_reading(h);
        return 2;
    }
    if (h->state == S_CLOSED || h->state == S_CLOSING || !h->c)
        return nil_err(L, "closed");
    if (h->rw) {
        lua_pushnil(L);
        lua_pushstring(L, "another task is already receiving on this connection");
        lua_pushboolean(L, 1);
        return 3;
    }
    const char *why = NULL;
    mw_wait_t *w = mw_wait_begin(L, mw_lua_core_sched(ctx), 0, &why);
    if (!w)
        return nil_err(L, why);
    if (ms > 0 && mw_timer_start(mw_server_timers(h->srv), (uint64_t)(ms + 0.999), on_recv_timeout,
                                 h, &h->rtimer) != 0) {
        mw_wait_cancel(w);
        return mw_lua_push_result(L, MW_ENOMEM);
    }
    h->rw = w;
    return mw_wait_yield(L);
}

/* core.wsc_close(h, code, reason) -> true: sends the close (messages still
 * queued are dropped) and parks until the peer answers or the close
 * timeout passes. true at once when already closed. */
static int l_close(lua_State *L) {
    mw_lua_core_t *ctx = lua_touserdata(L, lua_upvalueindex(1));
    lws_t *h = check_h(L, 1);
    lua_Number code = luaL_optnumber(L, 2, 1000);
    size_t rlen = 0;
    const char *reason = luaL_optlstring(L, 3, "", &rlen);
    /* Range first: the cast of a number out of int's range is undefined. */
    int icode = code >= 1000 && code <= 4999 && code == (int)code ? (int)code : 0;
    luaL_argcheck(
        L,
        icode == 1000 || (icode >= 3000 && icode <= 4999) ||
            (icode >= 1001 && icode <= 1014 && icode != 1004 && icode != 1005 && icode != 1006),
        2, "a close code an endpoint may send expected (1000, 1001-1014, 3000-4999)");
    luaL_argcheck(L, rlen <= 123, 3, "a close reason of at most 123 bytes expected");
    if (!h || !h->c || h->state == S_CLOSED) {
        lua_pushboolean(L, 1);
        return 1;
    }
    if (h->cw) {
        lua_pushnil(L);
        lua_pushstring(L, "another task is already closing this connection");
        lua_pushboolean(L, 1);
        return 3;
    }
    queue_clear(h);
    h->paused = 0; /* mw_wsclient_close reads again: the peer's close must come in */
    const char *why = NULL;
    mw_wait_t *w = mw_wait_begin(L, mw_lua_core_sched(ctx), 0, &why);
    if (!w) {
        /* Not in a task: close without waiting for the answer. */
        mw_wsclient_close(h->c, (unsigned)icode, reason, rlen);
        h->state = h->c ? S_CLOSING : h->state;
        lua_pushboolean(L, 1);
        return 1;
    }
    h->state = S_CLOSING;
    h->cw = w;
    if (mw_wsclient_close(h->c, (unsigned)icode, reason, rlen) != 0 && h->cw == w) {
        h->cw = NULL;
        mw_wait_cancel(w);
        lua_pushboolean(L, 1);
        return 1;
    }
    return mw_wait_yield(L); /* h->cw NULL: it closed inside mw_wsclient_close, resumed next */
}

/* core.wsc_info(h) -> state, close_code, close_reason, protocol, queued */
static int l_info(lua_State *L) {
    lws_t *h = check_h(L, 1);
    if (!h) {
        lua_pushstring(L, "closed");
        return 1;
    }
    lua_pushstring(L, state_names[h->state]);
    if (h->state == S_CLOSED && h->close_code)
        lua_pushinteger(L, (lua_Integer)h->close_code);
    else
        lua_pushnil(L);
    if (h->state == S_CLOSED && h->close_code)
        lua_pushlstring(L, h->close_reason, h->close_reason_len);
    else
        lua_pushnil(L);
    lua_pushstring(L, h->c ? mw_wsclient_protocol(h->c) : "");
    lua_pushinteger(L, (lua_Integer)h->qcount);
    return 5;
}

/* release_h ends everything h holds but its memory. */
static void release_h(lws_t *h) {
    drop_connection(h);
    if (h->rtimer) {
        mw_timer_stop(h->rtimer);
        h->rtimer = NULL;
    }
    if (h->rw) {
        mw_wait_done(h->rw, push_nothing, NULL);
        h->rw = NULL;
    }
    if (h->cw) {
        mw_wait_done(h->cw, push_nothing, NULL);
        h->cw = NULL;
    }
    queue_clear(h);
    if (h->state != S_CLOSED) {
        h->state = S_CLOSED;
        h->close_code = 1006;
    }
}

/* core.wsc_abort(h): drops the connection now, without a close handshake. */
static int l_abort(lua_State *L) {
    lws_t *h = check_h(L, 1);
    if (h && h->c) {
        drop_connection(h);
        h->state = S_CLOSED;
        h->close_code = 1006;
        wake_r(h, push_err, "closed");
        wake_c(h, push_true, NULL);
    }
    return 0;
}

/* The box's __gc: nobody can reach the connection any more. */
static int l_box_gc(lua_State *L) {
    lws_t **box = lua_touserdata(L, 1);
    lws_t *h = *box;
    if (!h)
        return 0;
    *box = NULL;
    if (h->reg)
        release_h(h);
    else
        queue_clear(h); /* the state closes: the loop may be gone */
    mw_list_remove(&h->link);
    if (h->busy)
        h->gone = 1;
    else
        free(h);
    return 0;
}

void mw_lua_wsclient_stop(lua_State *L, mw_sched_t *s) {
    reg_t *reg = get_reg(L);
    if (!reg)
        return;
    for (mw_list_t *n = reg->conns.next; n != &reg->conns; n = n->next) {
        lws_t *h = mw_list_entry(n, lws_t, link);
        if (h->sched != s)
            continue;
        release_h(h);
        if (h->box_ref != LUA_NOREF) { /* still connecting: nobody will take it */
            luaL_unref(reg->T, LUA_REGISTRYINDEX, h->box_ref);
            h->box_ref = LUA_NOREF;
        }
    }
}

/* The registry's __gc (the state closes): connections still listed keep
 * their memory until their box goes, and touch the loop no more. */
static int l_reg_gc(lua_State *L) {
    reg_t *reg = lua_touserdata(L, 1);
    while (!mw_list_empty(&reg->conns)) {
        lws_t *h = mw_list_entry(reg->conns.next, lws_t, link);
        h->reg = NULL;
        mw_list_remove(&h->link);
    }
    return 0;
}

void mw_lua_inject_wsclient_api(lua_State *L, mw_lua_core_t *ctx) {
    static const luaL_Reg fns[] = {
        {"wsc_connect", l_connect},
        {"wsc_send", l_send},
        {"wsc_receive", l_receive},
        {"wsc_close", l_close},
        {"wsc_info", l_info},
        {"wsc_abort", l_abort},
        {NULL, NULL},
    };
    if (luaL_newmetatable(L, BOX_MT)) {
        lua_pushcfunction(L, l_box_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    lua_pushlightuserdata(L, &reg_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    int have = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (!have) {
        reg_t *reg = lua_newuserdata(L, sizeof *reg);
        mw_list_init(&reg->conns);
        reg->T = lua_newthread(L);
        lua_setfield(L, LUA_REGISTRYINDEX, "moonwire.wsclient.T");
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
