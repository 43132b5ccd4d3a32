/*
 * api.c - moonwire.core: small, strict primitives exposed to Lua.
 *
 * Every Lua-callable C function lives here and is named after its Lua path
 * (mw_lua_send implements moonwire.core.send). They follow one convention:
 * misuse (wrong types, an invalid close code) raises; a failure the caller
 * must handle (the client is gone) returns nil and a short stable string.
 * The friendly API apps use is the Lua facade in lua/moonwire/. The one
 * exception is the JWT primitives: they live in jwt_lua.c, because they
 * also build as a standalone Lua module, and join the same table here.
 */
#include "api.h"
#include "nats_lua.h"
#include "json_lua.h"
#include "jwt_lua.h"
#include "keylimit_lua.h"
#include "shdict_lua.h"
#include "hub_lua.h"
#include "redis_lua.h"
#include "wsclient_lua.h"
#include "sched_lua.h"
#include "../errors.h"
#include "../log.h"
#include "../conn.h"
#include "../fanout.h"
#include "../health.h"
#include "../latency.h"
#include "../names.h"
#include "../rooms.h"
#include "../state.h"
#include "../throttle.h"
#include "../watchdog.h"
#include "../ws.h"

#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define MW_STR_(x) #x
#define MW_STR(x) MW_STR_(x)

#ifndef MW_VERSION
#define MW_VERSION "0.0.0"
#endif

/* What core.label keeps per label: its watchdog label and its route. */
typedef struct {
    unsigned wd, route;
} label_ids_t;

/* What every primitive reaches through its first upvalue: the server it
 * acts on and the client of the message being handled, so the reply to a
 * message goes to the connection in hand instead of being looked up again. */
struct mw_lua_core {
    mw_server_t *server; /* NULL while checking an app or scaffolding */
    mw_conn_t *current;  /* the client whose message is being handled, or NULL */
    mw_watchdog_t *wd;   /* core.label / core.running report to it, or NULL */
    mw_sched_t *sched;   /* the tasks of this state (sched.h), or NULL */
    mw_lua_ffi_t ffi;    /* what core._ffi points to (api.h) */
    unsigned route;      /* the route the running message was routed to (0: none yet) */
    /* core.label's labels, by the id Lua passes to core.running: each with
     * its watchdog label and its route ("type.action", for /metrics). */
    mw_names_t labels, routes;
    label_ids_t *ids; /* ids[label - 1] */
    unsigned nids;

    mw_connreg_t *redis;   /* the Redis handles (redis_lua.c, connreg.h) */
    mw_latency_t *latency; /* core.observe records into it, or NULL */
    mw_shdicts_t *shdicts; /* core.shdict's dicts, or NULL */
    unsigned shdicts_gen;  /* bumped by each mw_lua_core_set_shdicts */
};

static mw_lua_core_t *ctx_of(lua_State *L) {
    return lua_touserdata(L, lua_upvalueindex(1));
}

void mw_lua_core_set_server(mw_lua_core_t *ctx, mw_server_t *s) {
    ctx->server = s;
}

void mw_lua_core_set_current(mw_lua_core_t *ctx, mw_conn_t *c) {
    ctx->current = c;
}

void mw_lua_core_set_watchdog(mw_lua_core_t *ctx, mw_watchdog_t *w) {
    ctx->wd = w;
}

void mw_lua_core_set_sched(mw_lua_core_t *ctx, mw_sched_t *s) {
    ctx->sched = s;
}

mw_sched_t *mw_lua_core_sched(const mw_lua_core_t *ctx) {
    return ctx->sched;
}

mw_server_t *mw_lua_core_server(const mw_lua_core_t *ctx) {
    return ctx->server;
}

unsigned *mw_lua_core_route(mw_lua_core_t *ctx) {
    return &ctx->route;
}

const char *mw_lua_core_route_name(const mw_lua_core_t *ctx, unsigned route) {
    return mw_names_get(&ctx->routes, route);
}

void mw_lua_core_set_latency(mw_lua_core_t *ctx, mw_latency_t *l) {
    ctx->latency = l;
}

void mw_lua_core_set_redis(mw_lua_core_t *ctx, mw_connreg_t *r) {
    ctx->redis = r;
}

void mw_lua_core_set_shdicts(mw_lua_core_t *ctx, mw_shdicts_t *set) {
    ctx->shdicts = set;
    ctx->shdicts_gen++;
}

mw_shdicts_t *mw_lua_core_shdicts(const mw_lua_core_t *ctx, unsigned *generation) {
    *generation = ctx->shdicts_gen;
    return ctx->shdicts;
}

mw_connreg_t *mw_lua_core_redis(const mw_lua_core_t *ctx) {
    return ctx->redis;
}

/* One policy when there is no server (moonwire check, scaffolding): every
 * primitive that acts on clients or rooms fails with nil, "not serving". */
static int not_serving(lua_State *L) {
    lua_pushnil(L);
    lua_pushliteral(L, "not serving");
    return 2;
}

/* to_id converts a Lua number to a client id: 0 when it is not a positive
 * integer a double holds exactly. The range is checked before the cast,
 * since converting NaN, a negative or a too-large double to an unsigned
 * integer is undefined behaviour in C, and ids can come from client data
 * (room:broadcast(msg, { exclude = data.x })). */
static uint64_t to_id(lua_Number n) {
    if (!(n >= 1 && n <= 9007199254740992.0) || n != floor(n))
        return 0;
    return (uint64_t)n;
}

static uint64_t check_id(lua_State *L, int idx) {
    uint64_t id = to_id(luaL_checknumber(L, idx));
    if (id == 0)
        luaL_argerror(L, idx, "client id must be a positive integer");
    return id;
}

/* find_client: the client with this id, or NULL (the message's own client
 * without a lookup). */
static mw_conn_t *find_client(mw_lua_core_t *ctx, uint64_t id) {
    mw_conn_t *c = ctx->current;
    if (c && mw_conn_id(c) == id)
        return c;
    return mw_server_client(ctx->server, id);
}

/* client_of is the client a primitive acts on: NULL, with what to return
 * pushed (*nret values: nil, "not serving" or nil, "closed"), when there
 * is no server or no such client (or, with need_open, it is closing). */
static mw_conn_t *client_of(lua_State *L, uint64_t id, int need_open, int *nret) {
    mw_lua_core_t *ctx = ctx_of(L);
    if (!ctx->server) {
        *nret = not_serving(L);
        return NULL;
    }
    mw_conn_t *c = find_client(ctx, id);
    if (!c || (need_open && !mw_conn_is_open(c))) {
        *nret = mw_lua_push_result(L, MW_ECLOSED);
        return NULL;
    }
    return c;
}

int mw_lua_push_result(lua_State *L, int rc) {
    if (rc == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushnil(L);
    lua_pushstring(L, mw_strerror(rc));
    return 2;
}

/* core.send(id, payload, is_binary) -> true | nil, "closed" | "invalid utf-8" */
static int mw_lua_send(lua_State *L) {
    uint64_t id = check_id(L, 1);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    int binary = lua_toboolean(L, 3);
    int nret;
    mw_conn_t *c = client_of(L, id, 0, &nret);
    return c ? mw_lua_push_result(L, mw_conn_send(c, binary, data, len)) : nret;
}

/* check_close_args raises unless code and reason may go in a close frame
 * the server sends (ws.h has the rule). */
static void check_close_args(lua_State *L, int code_idx, lua_Integer code, const char *reason,
                             size_t len) {
    if (code < 0 || code > 65535 || !mw_ws_close_code_sendable((unsigned)code))
        luaL_argerror(L, code_idx, "not a close code a server may send");
    if (!mw_ws_close_valid((unsigned)code, reason, len))
        luaL_argerror(
            L, code_idx + 1,
            "close reason must be valid UTF-8 of at most " MW_STR(MW_WS_CLOSE_REASON_MAX) " bytes");
}

/* core.close(id, code, reason) -> true | nil, "closed" */
static int mw_lua_close(lua_State *L) {
    uint64_t id = check_id(L, 1);
    lua_Integer code = luaL_optinteger(L, 2, 1000);
    size_t len = 0;
    const char *reason = luaL_optlstring(L, 3, "", &len);
    check_close_args(L, 2, code, reason, len);
    int nret;
    mw_conn_t *c = client_of(L, id, 0, &nret);
    return c ? mw_lua_push_result(L, mw_conn_close(c, (uint16_t)code, reason, len)) : nret;
}

/* core.log(level, msg) */
static int mw_lua_log(lua_State *L) {
    const char *level = luaL_checkstring(L, 1);
    const char *msg = luaL_checkstring(L, 2);
    int lv = mw_log_level_parse(level);
    if (lv < 0)
        return luaL_argerror(L, 1, "level must be debug, info, warn or error");
    mw_log((mw_log_level)lv, "%s", msg);
    return 0;
}

/* core.now() -> whole milliseconds since the epoch */
static int mw_lua_now(lua_State *L) {
    /* The server's clock (virtual under specs), the system's without one. */
    lua_pushnumber(L, (lua_Number)mw_server_wall_ms(ctx_of(L)->server));
    return 1;
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* core.scandir(path) -> { {name=, type="file"|"dir"}, ... } sorted | nil, err */
static int mw_lua_scandir(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    uv_fs_t req;
    uv_dirent_t ent;
    int n = uv_fs_scandir(NULL, &req, path, 0, NULL);
    if (n < 0) {
        uv_fs_req_cleanup(&req);
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", path, uv_strerror(n));
        return 2;
    }
    /* Collect "<type><name>" strings, sort by name, then build the table. */
    char **items = calloc((size_t)n + 1, sizeof *items);
    int count = 0;
    while (items && uv_fs_scandir_next(&req, &ent) != UV_EOF) {
        size_t len = strlen(ent.name);
        char *item = malloc(len + 2);
        if (!item)
            break;
        item[0] = ent.type == UV_DIRENT_DIR ? 'd' : 'f';
        memcpy(item + 1, ent.name, len + 1);
        items[count++] = item;
    }
    uv_fs_req_cleanup(&req);
    if (!items)
        return luaL_error(L, "out of memory");
    for (int i = 0; i < count; i++)
        items[i]++; /* sort on the name */
    qsort(items, (size_t)count, sizeof *items, compare_names);
    lua_createtable(L, count, 0);
    for (int i = 0; i < count; i++) {
        char *item = items[i] - 1;
        lua_createtable(L, 0, 2);
        lua_pushstring(L, item + 1);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, item[0] == 'd' ? "dir" : "file");
        lua_setfield(L, -2, "type");
        lua_rawseti(L, -2, i + 1);
        free(item);
    }
    free(items);
    return 1;
}

/* Room names are checked here too (the runtime checks first and answers
 * INVALID_ROOM); reaching C with a bad one is a bug in the caller. */
static const char *check_room(lua_State *L, int idx, size_t *len) {
    const char *name = luaL_checklstring(L, idx, len);
    if (!mw_room_name_valid(name, *len))
        luaL_argerror(L, idx, "room name must be 1 to " MW_STR(MW_ROOM_NAME_MAX) " bytes");
    return name;
}

/* core.join(id, room) -> count, moved_from | nil, err */
static int mw_lua_join(lua_State *L) {
    uint64_t id = check_id(L, 1);
    size_t len;
    const char *name = check_room(L, 2, &len);
    int nret;
    mw_conn_t *c = client_of(L, id, 1, &nret);
    if (!c)
        return nret;
    char moved[MW_ROOM_NAME_MAX + 1];
    int n = mw_conn_join(c, name, len, moved);
    if (n < 0)
        return mw_lua_push_result(L, n);
    lua_pushinteger(L, n);
    if (moved[0])
        lua_pushstring(L, moved);
    else
        lua_pushnil(L);
    return 2;
}

/* core.leave(id, room) -> count | nil, "not joined" | "closed" */
static int mw_lua_leave(lua_State *L) {
    uint64_t id = check_id(L, 1);
    size_t len;
    const char *name = check_room(L, 2, &len);
    int nret;
    mw_conn_t *c = client_of(L, id, 0, &nret);
    if (!c)
        return nret;
    int n = mw_conn_leave(c, name, len);
    if (n == MW_ENOTFOUND) {
        lua_pushnil(L);
        lua_pushliteral(L, "not joined");
        return 2;
    }
    if (n < 0)
        return mw_lua_push_result(L, n);
    lua_pushinteger(L, n);
    return 1;
}

/* core.rooms(id) -> { names } | nil, "closed" */
static int mw_lua_rooms(lua_State *L) {
    uint64_t id = check_id(L, 1);
    int nret;
    mw_conn_t *c = client_of(L, id, 0, &nret);
    if (!c)
        return nret;
    mw_room_client_t *rc = mw_conn_rooms(c);
    lua_createtable(L, (int)rc->n, 0);
    for (uint32_t i = 0; i < rc->n; i++) {
        size_t len;
        const char *name = mw_room_name(mw_room_client_room(rc, i), &len);
        lua_pushlstring(L, name, len);
        lua_rawseti(L, -2, (int)i + 1);
    }
    return 1;
}

/* core.members(room) -> { ids } */
static int mw_lua_members(lua_State *L) {
    size_t len;
    const char *name = check_room(L, 1, &len);
    mw_lua_core_t *ctx = ctx_of(L);
    if (!ctx->server)
        return not_serving(L);
    mw_room_t *room = mw_rooms_find(mw_server_rooms(ctx->server), name, len);
    size_t n = room ? mw_room_size(room) : 0;
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushnumber(L, (lua_Number)mw_conn_id(mw_room_member(room, i)));
        lua_rawseti(L, -2, (int)i + 1);
    }
    return 1;
}

/* core.count(room) -> n */
static int mw_lua_count(lua_State *L) {
    size_t len;
    const char *name = check_room(L, 1, &len);
    mw_lua_core_t *ctx = ctx_of(L);
    if (!ctx->server)
        return not_serving(L);
    mw_room_t *room = mw_rooms_find(mw_server_rooms(ctx->server), name, len);
    lua_pushinteger(L, room ? (lua_Integer)mw_room_size(room) : 0);
    return 1;
}

/* core.room_count() -> n */
static int mw_lua_room_count(lua_State *L) {
    mw_lua_core_t *ctx = ctx_of(L);
    if (!ctx->server)
        return not_serving(L);
    lua_pushinteger(L, (lua_Integer)mw_rooms_size(mw_server_rooms(ctx->server)));
    return 1;
}

static uint64_t opt_id(lua_State *L, int idx) {
    return lua_isnoneornil(L, idx) || (lua_isnumber(L, idx) && lua_tonumber(L, idx) == 0)
               ? 0
               : check_id(L, idx);
}

static int push_fanout(lua_State *L, int rc, const mw_fanout_result_t *res) {
    if (rc != 0)
        return mw_lua_push_result(L, rc);
    lua_pushinteger(L, (lua_Integer)res->delivered);
    lua_pushinteger(L, (lua_Integer)res->dropped);
    return 2;
}

/* check_fanout_msg reads (payload, is_binary[, exclude_id], event_id) from
 * stack index idx on; with_exclude says whether exclude_id is among them. */
static void check_fanout_msg(lua_State *L, int idx, int with_exclude, mw_fanout_msg_t *m) {
    m->data = luaL_checklstring(L, idx, &m->len);
    m->binary = lua_toboolean(L, idx + 1);
    m->exclude_id = with_exclude ? opt_id(L, idx + 2) : 0;
    m->event_len = 0;
    m->event_id = luaL_optlstring(L, idx + 2 + (with_exclude ? 1 : 0), NULL, &m->event_len);
}

/* core.broadcast(room, payload, is_binary, exclude_id, event_id) -> delivered, dropped */
static int mw_lua_broadcast(lua_State *L) {
    size_t rlen;
    const char *room = check_room(L, 1, &rlen);
    mw_fanout_msg_t m;
    check_fanout_msg(L, 2, 1, &m);
    mw_lua_core_t *ctx = ctx_of(L);
    if (!ctx->server)
        return not_serving(L);
    mw_fanout_result_t res;
    return push_fanout(L, mw_fanout_room(ctx->server, room, rlen, &m, &res), &res);
}

/* core.send_many(ids, payload, is_binary, event_id) -> delivered, dropped */
static int mw_lua_send_many(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    mw_fanout_msg_t m;
    check_fanout_msg(L, 2, 0, &m);
    mw_lua_core_t *ctx = ctx_of(L);
    if (!ctx->server)
        return not_serving(L);
    size_t n = lua_objlen(L, 1);
    uint64_t stackids[256];
    uint64_t *ids = n <= 256 ? stackids : malloc(n * sizeof *ids);
    if (!ids)
        return luaL_error(L, "out of memory");
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, 1, (int)i + 1);
        ids[i] = to_id(lua_tonumber(L, -1)); /* 0 matches no client: skipped */
        lua_pop(L, 1);
    }
    mw_fanout_result_t res;
    int rc = mw_fanout_clients(ctx->server, ids, n, &m, &res);
    if (ids != stackids)
        free(ids);
    return push_fanout(L, rc, &res);
}

/* core.broadcast_all(payload, is_binary, exclude_id, event_id) -> delivered, dropped */
static int mw_lua_broadcast_all(lua_State *L) {
    mw_fanout_msg_t m;
    check_fanout_msg(L, 1, 1, &m);
    mw_lua_core_t *ctx = ctx_of(L);
    if (!ctx->server)
        return not_serving(L);
    mw_fanout_result_t res;
    return push_fanout(L, mw_fanout_all(ctx->server, &m, &res), &res);
}

/* core.dedupe(id, enabled) -> true | nil, "closed" */
static int mw_lua_dedupe(lua_State *L) {
    uint64_t id = check_id(L, 1);
    int nret;
    mw_conn_t *c = client_of(L, id, 1, &nret);
    if (!c)
        return nret;
    mw_conn_set_dedupe(c, lua_toboolean(L, 2));
    return mw_lua_push_result(L, 0);
}

/* core.client_stats(id) -> { buffered =, dropped = } | nil, "closed" */
static int mw_lua_client_stats(lua_State *L) {
    uint64_t id = check_id(L, 1);
    int nret;
    mw_conn_t *c = client_of(L, id, 0, &nret);
    if (!c)
        return nret;
    size_t buffered;
    uint64_t dropped;
    mw_conn_stats(c, &buffered, &dropped);
    lua_createtable(L, 0, 2);
    lua_pushnumber(L, (lua_Number)buffered);
    lua_setfield(L, -2, "buffered");
    lua_pushnumber(L, (lua_Number)dropped);
    lua_setfield(L, -2, "dropped");
    return 1;
}

/* core.set_reply(name, payload, is_binary, ts_offset, ts_len) -> true: a
 * message the C core sends by itself ("rate_limited", "ping"), encoded by
 * the app's protocol; the ts_len bytes at ts_offset (0-based), when given,
 * are replaced by the time of each send. */
static int mw_lua_set_reply(lua_State *L) {
    static const char *const names[] = {"rate_limited", "ping", NULL};
    int which = luaL_checkoption(L, 1, NULL, names);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    int binary = lua_toboolean(L, 3);
    lua_Integer off = luaL_optinteger(L, 4, 0), tslen = luaL_optinteger(L, 5, 0);
    if (off < 0 || tslen < 0 || (size_t)off > len || (size_t)tslen > len - (size_t)off)
        return luaL_argerror(L, 4, "time stamp outside the payload");
    mw_lua_core_t *ctx = ctx_of(L);
    if (!ctx->server)
        return not_serving(L);
    return mw_lua_push_result(L, mw_server_set_reply(ctx->server, (mw_reply_t)which, data, len,
                                                     binary, (size_t)off, (size_t)tslen));
}

/* core.claim_user(id, user) -> count | nil, err: counts client id as one
 * of user's connections for the whole server (workers = N) until it
 * closes, and returns how many that user has, this one included; nil,
 * "not found" when the server has no shared counts (workers = 1). */
static int mw_lua_claim_user(lua_State *L) {
    uint64_t id = check_id(L, 1);
    size_t len;
    const char *user = luaL_checklstring(L, 2, &len);
    int nret;
    mw_conn_t *c = client_of(L, id, 0, &nret);
    if (!c)
        return nret;
    uint32_t count;
    int rc = mw_conn_claim_user(c, user, len, &count);
    if (rc != 0)
        return mw_lua_push_result(L, rc);
    lua_pushinteger(L, (lua_Integer)count);
    return 1;
}

/* core.set_expiry(id, ms, code, reason) -> true | nil, "closed": the C core
 * closes the client with code/reason after ms (authentication timeout,
 * token expiry) unless called again; core.set_expiry(id) cancels. */
static int mw_lua_set_expiry(lua_State *L) {
    uint64_t id = check_id(L, 1);
    int cancel = lua_isnoneornil(L, 2);
    lua_Number ms = cancel ? -1 : luaL_checknumber(L, 2);
    lua_Integer code = 0;
    size_t len = 0;
    const char *reason = NULL;
    if (!cancel) {
        if (!(ms >= 0 && ms < 9.0e15))
            luaL_argerror(L, 2, "milliseconds must be a non-negative number");
        code = luaL_checkinteger(L, 3);
        reason = luaL_optlstring(L, 4, "", &len);
        check_close_args(L, 3, code, reason, len);
    }
    int nret;
    mw_conn_t *c = client_of(L, id, 0, &nret);
    if (!c)
        return nret;
    return mw_lua_push_result(L, mw_conn_set_expiry(c, (int64_t)ms, (uint16_t)code, reason, len));
}

/* core.throttle(id, slot, window_ms, max) -> true | nil, "rate limited" |
 * nil, "closed": one message of the route numbered slot (0..63) against
 * max per window_ms for this client. */
static int mw_lua_throttle(lua_State *L) {
    uint64_t id = check_id(L, 1);
    lua_Integer slot = luaL_checkinteger(L, 2);
    lua_Integer window = luaL_checkinteger(L, 3);
    lua_Integer max = luaL_checkinteger(L, 4);
    if (slot < 0 || slot >= MW_MAX_THROTTLES)
        luaL_argerror(L, 2, "slot out of range");
    if (window < 1 || max < 1)
        luaL_argerror(L, window < 1 ? 3 : 4, "must be a positive integer");
    int nret;
    mw_conn_t *c = client_of(L, id, 0, &nret);
    if (!c)
        return nret;
    return mw_lua_push_result(L,
                              mw_conn_throttle(c, (unsigned)slot, (uint64_t)window, (uint64_t)max));
}

/* core.label(text) -> id. Registers, once per route, what the watchdog
 * reports for a dispatch it cannot interrupt ("chat.send
 * (controllers/chat.lua:12)"): C keeps a copy, so the watchdog thread never
 * reads Lua memory. The text up to its first space is the route
 * ("chat.send") that /metrics times the message under. The same text gets
 * the same id. Returns 0 past MW_WATCHDOG_LABELS labels or out of memory. */
static int mw_lua_label(lua_State *L) {
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    mw_lua_core_t *ctx = ctx_of(L);
    if (ctx->labels.n == ctx->nids) { /* room for a new label's ids first */
        unsigned n = ctx->nids ? ctx->nids * 2 : 16;
        label_ids_t *ids = realloc(ctx->ids, n * sizeof *ids);
        if (!ids) {
            lua_pushinteger(L, 0);
            return 1;
        }
        ctx->ids = ids;
        ctx->nids = n;
    }
    unsigned known = ctx->labels.n;
    unsigned id = mw_names_intern(&ctx->labels, text, len);
    if (id > known) { /* new */
        const char *space = memchr(text, ' ', len);
        ctx->ids[id - 1].wd = ctx->wd ? mw_watchdog_intern(ctx->wd, text, len) : 0;
        ctx->ids[id - 1].route =
            mw_names_intern(&ctx->routes, text, space ? (size_t)(space - text) : len);
    }
    lua_pushinteger(L, (lua_Integer)id);
    return 1;
}

/* running records that the current dispatch runs label id: its route for
 * /metrics, its watchdog label (one atomic store). The id is range checked
 * as a double, before any conversion. */
static void running(mw_lua_core_t *ctx, double id) {
    if (!(id >= 1 && id <= ctx->labels.n))
        return;
    const label_ids_t *ids = &ctx->ids[(unsigned)id - 1];
    ctx->route = ids->route;
    if (ctx->wd && ids->wd)
        mw_watchdog_running(ctx->wd, ids->wd);
}

/* core.running(id) -> nothing: the current dispatch runs the label with
 * this id (from core.label). Called for every message. */
static int mw_lua_running(lua_State *L) {
    running(ctx_of(L), lua_tonumber(L, 1));
    return 0;
}

/* core.route(name) -> number: the route number /metrics times durations
 * under (moonwire_message_duration_seconds{route="name"}), the numbers
 * core.label gives its routes; 0 once the table is full. For durations Lua
 * measures itself (core.observe): a subscriber's, "bus:<name>". */
static int mw_lua_route(lua_State *L) {
    size_t len;
    const char *name = luaL_checklstring(L, 1, &len);
    mw_lua_core_t *ctx = ctx_of(L);
    lua_pushinteger(L, (lua_Integer)mw_names_intern(&ctx->routes, name, len));
    return 1;
}

/* core.clock() -> the server's clock in nanoseconds, the one message
 * durations are measured with (mw_server_now_ns: the virtual clock under
 * moonwire.testing); 0 with no server. A double: exact for 104 days of
 * uptime, to within a few nanoseconds for years. */
static int mw_lua_clock(lua_State *L) {
    mw_server_t *s = ctx_of(L)->server;
    lua_pushnumber(L, s ? (lua_Number)mw_server_now_ns(s) : 0);
    return 1;
}

/* core.observe(route, start) -> nothing: records that something of this
 * route (core.route) took from start (core.clock) until now. Nothing
 * without a server or for route 0. */
static int mw_lua_observe(lua_State *L) {
    lua_Number route = luaL_checknumber(L, 1);
    lua_Number start = luaL_checknumber(L, 2);
    mw_lua_core_t *ctx = ctx_of(L);
    if (!ctx->server || !ctx->latency || !(route >= 1 && route <= ctx->routes.n))
        return 0;
    lua_Number now = (lua_Number)mw_server_now_ns(ctx->server);
    uint64_t ns = now > start ? (uint64_t)(now - start) : 0;
    mw_latency_observe(ctx->latency, (unsigned)route, ns);
    return 0;
}

/* core.count_error(code) -> nothing: the runtime sent an error envelope
 * with this code (/metrics, moonwire_errors_total). */
static int mw_lua_count_error(lua_State *L) {
    size_t len;
    const char *code = luaL_checklstring(L, 1, &len);
    mw_lua_core_t *ctx = ctx_of(L);
    if (ctx->server)
        mw_server_count_error(ctx->server, code, len);
    return 0;
}

/* HTTP: answers to the requests runtime.http is given, the server's own
 * /health document, and the rooms the server API lists. */

/* check_request_id: a request id (mw_conn_request_id) from Lua. */
static uint64_t check_request_id(lua_State *L, int idx) {
    uint64_t id = to_id(luaL_checknumber(L, idx));
    if (id == 0)
        luaL_argerror(L, idx, "request id must be a positive integer");
    return id;
}

/* header_token: what an HTTP header name may be made of (RFC 9110 5.6.2). */
static int header_token(const char *s, size_t len) {
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 32 || ch >= 127 || strchr("\"(),/:;<=>?@[\\]{}", ch))
            return 0;
    }
    return 1;
}

/* core.http_respond(request_id, status, headers, body) -> true |
 * nil, "closed": answers the request (now, or after the handler waited).
 * headers maps names to strings or numbers; Content-Type among them is
 * the answer's type (default text/plain). Raises on a status outside
 * 200..599, a name that is not a token, a value with CR or LF, or one of
 * the headers the server writes (Content-Length, Transfer-Encoding,
 * Connection). */
static int mw_lua_http_respond(lua_State *L) {
    uint64_t id = check_request_id(L, 1);
    lua_Integer status = luaL_checkinteger(L, 2);
    if (status < 200 || status > 599)
        luaL_argerror(L, 2, "status must be 200..599");
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TTABLE);
    size_t blen = 0;
    const char *body = luaL_optlstring(L, 4, "", &blen);
    const char *ctype = "text/plain; charset=utf-8";
    char headers[MW_CONN_HEADERS_MAX + 1];
    size_t hlen = 0;
    if (lua_istable(L, 3)) {
        lua_pushnil(L);
        while (lua_next(L, 3) != 0) {
            size_t nlen, vlen;
            if (lua_type(L, -2) != LUA_TSTRING ||
                (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER))
                return luaL_argerror(L, 3, "headers must map names to strings or numbers");
            const char *name = lua_tolstring(L, -2, &nlen);
            lua_pushvalue(L, -1); /* a number's string, without changing the table */
            const char *value = lua_tolstring(L, -1, &vlen);
            if (!header_token(name, nlen))
                return luaL_error(L, "bad header name '%s'", name);
            if (memchr(value, '\r', vlen) || memchr(value, '\n', vlen) || strlen(value) != vlen)
                return luaL_error(L, "bad value of header '%s' (CR, LF or NUL)", name);
            if (strcasecmp(name, "content-type") == 0) {
                if (vlen > 100)
                    return luaL_error(L, "Content-Type over 100 bytes");
                if (lua_type(L, -2) != LUA_TSTRING)
                    return luaL_error(L, "Content-Type must be a string");
                ctype = lua_tostring(L, -2); /* the table's own string: anchored by it */
            } else if (strcasecmp(name, "content-length") == 0 ||
                       strcasecmp(name, "transfer-encoding") == 0 ||
                       strcasecmp(name, "connection") == 0) {
                return luaL_error(L, "header '%s' is written by the server", name);
            } else {
                if (hlen + nlen + vlen + 4 > MW_CONN_HEADERS_MAX)
                    return luaL_error(L, "headers over %d bytes", MW_CONN_HEADERS_MAX);
                memcpy(headers + hlen, name, nlen);
                memcpy(headers + hlen + nlen, ": ", 2);
                memcpy(headers + hlen + nlen + 2, value, vlen);
                memcpy(headers + hlen + nlen + 2 + vlen, "\r\n", 2);
                hlen += nlen + vlen + 4;
            }
            lua_pop(L, 2);
        }
    }
    headers[hlen] = '\0';
    mw_lua_core_t *ctx = ctx_of(L);
    if (!ctx->server)
        return not_serving(L);
    int rc = mw_server_http_respond(ctx->server, id, (int)status, hlen ? headers : NULL, ctype,
                                    body, blen);
    return mw_lua_push_result(L, rc);
}

/* core.health() -> the server's /health document (JSON text). */
static int mw_lua_health(lua_State *L) {
    mw_lua_core_t *ctx = ctx_of(L);
    if (!ctx->server)
        return not_serving(L);
    size_t len = 0;
    char *json = mw_health_json(ctx->server, &len);
    if (!json)
        return luaL_error(L, "out of memory");
    lua_pushlstring(L, json, len);
    free(json);
    return 1;
}

/* core.set_health_route(on) -> true: GET and HEAD /health go to the app's
 * routes (on) or get the server's own document (off). */
static int mw_lua_set_health_route(lua_State *L) {
    int on = lua_toboolean(L, 1);
    mw_lua_core_t *ctx = ctx_of(L);
    if (!ctx->server)
        return not_serving(L);
    mw_server_set_health_route(ctx->server, on);
    return mw_lua_push_result(L, 0);
}

/* core.set_rooms_elsewhere(n): rooms with members on other workers only
 * (moonwire.cluster keeps the count), for /health and /metrics. */
static int mw_lua_set_rooms_elsewhere(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1);
    mw_lua_core_t *ctx = ctx_of(L);
    if (!ctx->server)
        return not_serving(L);
    mw_server_set_rooms_elsewhere(ctx->server, n > 0 ? (uint64_t)n : 0);
    return mw_lua_push_result(L, 0);
}

static void push_room_name(void *ud, const mw_room_t *room) {
    lua_State *L = ud;
    size_t len;
    const char *name = mw_room_name(room, &len);
    lua_pushlstring(L, name, len);
    lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
}

/* core.room_names() -> { names } of every room that exists, unsorted. */
static int mw_lua_room_names(lua_State *L) {
    mw_lua_core_t *ctx = ctx_of(L);
    if (!ctx->server)
        return not_serving(L);
    mw_rooms_t *rooms = mw_server_rooms(ctx->server);
    lua_createtable(L, (int)mw_rooms_size(rooms), 0);
    mw_rooms_each(rooms, push_room_name, L);
    return 1;
}

/* The FFI versions of core.send, core.running and core.now (api.h,
 * mw_lua_ffi_t): plain C functions a compiled trace calls directly. They
 * never touch the Lua state, raise or call back into Lua, which FFI calls
 * must not; what the classic function would answer by raising or with
 * "not serving" they leave to it (MW_LUA_FFI_CLASSIC). */

/* send: 0 (sent), an mw_err (mw_strerror names it, as core.send's second
 * value), or MW_LUA_FFI_CLASSIC for no server or an id that is not a
 * positive integer. */
static int ffi_send(mw_lua_core_t *ctx, double id, const char *data, size_t len, int binary) {
    uint64_t cid = to_id(id);
    if (!ctx->server || cid == 0)
        return MW_LUA_FFI_CLASSIC;
    mw_conn_t *c = find_client(ctx, cid);
    if (!c)
        return MW_ECLOSED;
    return mw_conn_send(c, binary, data, len);
}

static void ffi_running(mw_lua_core_t *ctx, double id) {
    running(ctx, id);
}

static double ffi_now(mw_lua_core_t *ctx) {
    return (double)mw_server_wall_ms(ctx->server);
}

/* The context's __gc: it owns the label tables. */
static int core_gc(lua_State *L) {
    mw_lua_core_t *ctx = lua_touserdata(L, 1);
    mw_names_free(&ctx->labels);
    mw_names_free(&ctx->routes);
    free(ctx->ids);
    ctx->ids = NULL;
    return 0;
}

mw_lua_core_t *mw_lua_push_core(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"send", mw_lua_send},
        {"close", mw_lua_close},
        {"log", mw_lua_log},
        {"now", mw_lua_now},
        {"scandir", mw_lua_scandir},
        {"join", mw_lua_join},
        {"leave", mw_lua_leave},
        {"rooms", mw_lua_rooms},
        {"members", mw_lua_members},
        {"count", mw_lua_count},
        {"room_count", mw_lua_room_count},
        {"broadcast", mw_lua_broadcast},
        {"send_many", mw_lua_send_many},
        {"broadcast_all", mw_lua_broadcast_all},
        {"dedupe", mw_lua_dedupe},
        {"client_stats", mw_lua_client_stats},
        {"set_reply", mw_lua_set_reply},
        {"set_expiry", mw_lua_set_expiry},
        {"claim_user", mw_lua_claim_user},
        {"throttle", mw_lua_throttle},
        {"label", mw_lua_label},
        {"running", mw_lua_running},
        {"http_respond", mw_lua_http_respond},
        {"health", mw_lua_health},
        {"set_health_route", mw_lua_set_health_route},
        {"set_rooms_elsewhere", mw_lua_set_rooms_elsewhere},
        {"room_names", mw_lua_room_names},
        {"count_error", mw_lua_count_error},
        {"route", mw_lua_route},
        {"clock", mw_lua_clock},
        {"observe", mw_lua_observe},
        {NULL, NULL},
    };
    lua_createtable(L, 0, 32);
    /* The context lives as a userdata in the table (so it lives as long as
     * the table) and reaches every function as a light upvalue. */
    mw_lua_core_t *ctx = lua_newuserdata(L, sizeof *ctx);
    memset(ctx, 0, sizeof *ctx);
    mw_names_init(&ctx->labels, MW_WATCHDOG_LABELS);
    mw_names_init(&ctx->routes, MW_WATCHDOG_LABELS);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, core_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    ctx->ffi = (mw_lua_ffi_t){.ctx = ctx,
                              .send = ffi_send,
                              .running = ffi_running,
                              .now = ffi_now,
                              .strerror = mw_strerror};
    lua_setfield(L, -2, "_context");
    /* The FFI entry points, as a pointer lua/moonwire/core_ffi.lua casts. */
    lua_pushlightuserdata(L, &ctx->ffi);
    lua_setfield(L, -2, "_ffi");
    for (const luaL_Reg *f = fns; f->name; f++) {
        lua_pushlightuserdata(L, ctx);
        lua_pushcclosure(L, f->func, 1);
        lua_setfield(L, -2, f->name);
    }
    mw_lua_inject_jwt_api(L);        /* jwt_*: src/lua/jwt_lua.c */
    mw_lua_inject_json_api(L);       /* json_level: src/lua/json_lua.c */
    mw_lua_inject_sched_api(L, ctx); /* sleep, spawn, timer: src/lua/sched_lua.c */
    mw_lua_inject_redis_api(L, ctx); /* redis_*: src/lua/redis_lua.c */
    mw_lua_inject_hub_api(L, ctx);   /* hub_*: the workers' hub, src/lua/hub_lua.c */
    mw_lua_inject_nats_api(L, ctx);  /* nats_*: src/lua/nats_lua.c */
    /* keylimit: src/lua/keylimit_lua.c */
    mw_lua_inject_keylimit_api(L, ctx);
    mw_lua_inject_shdict_api(L, ctx); /* shdict: src/lua/shdict_lua.c */
    /* wsc_*: the WebSocket client, src/lua/wsclient_lua.c */
    mw_lua_inject_wsclient_api(L, ctx);
    lua_pushstring(L, MW_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushinteger(L, MW_ROOM_NAME_MAX);
    lua_setfield(L, -2, "room_name_max");
    lua_pushinteger(L, MW_WS_CLOSE_REASON_MAX);
    lua_setfield(L, -2, "close_reason_max");
    lua_pushinteger(L, MW_MAX_THROTTLES);
    lua_setfield(L, -2, "max_throttles");
    return ctx;
}

mw_lua_core_t *mw_lua_inject_core_api(lua_State *L) {
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    /* stack: ... package loaded */
    mw_lua_core_t *ctx = mw_lua_push_core(L);
    lua_setfield(L, -2, "moonwire.core");
    lua_pop(L, 2);
    return ctx;
}
