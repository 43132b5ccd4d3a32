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
#include "jwt_lua.h"
#include "../errors.h"
#include "../log.h"
#include "../pubsub.h"
#include "../rooms.h"
#include "../watchdog.h"
#include "../ws.h"

#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <uv.h>

#ifndef MW_VERSION
#define MW_VERSION "0.0.0"
#endif

static const char server_key; /* registry key: its address is unique */

void mw_lua_set_server(lua_State *L, mw_server_t *s) {
    lua_pushlightuserdata(L, (void *)&server_key);
    lua_pushlightuserdata(L, s);
    lua_rawset(L, LUA_REGISTRYINDEX);
}

static mw_server_t *get_server(lua_State *L) {
    lua_pushlightuserdata(L, (void *)&server_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    mw_server_t *s = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return s;
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

static int push_result(lua_State *L, int rc) {
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
    mw_server_t *s = get_server(L);
    if (!s)
        return push_result(L, MW_ECLOSED);
    return push_result(L, mw_server_send(s, id, binary, data, len));
}

/* core.close(id, code, reason) -> true | nil, "closed" */
static int mw_lua_close(lua_State *L) {
    uint64_t id = check_id(L, 1);
    lua_Integer code = luaL_optinteger(L, 2, 1000);
    size_t len = 0;
    const char *reason = luaL_optlstring(L, 3, "", &len);
    if (!mw_ws_close_code_sendable((unsigned)code) || code > 65535)
        return luaL_argerror(L, 2, "not a close code a server may send");
    if (len > 123)
        return luaL_argerror(L, 3, "close reason longer than 123 bytes");
    mw_server_t *s = get_server(L);
    if (!s)
        return push_result(L, MW_ECLOSED);
    int rc = mw_server_close_client(s, id, (uint16_t)code, reason, len);
    if (rc == MW_EINVAL)
        return luaL_argerror(L, 3, "close reason must be valid UTF-8");
    return push_result(L, rc);
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
    struct timeval tv;
    gettimeofday(&tv, NULL);
    lua_pushnumber(L, (lua_Number)((uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000));
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
    if (*len == 0 || *len > MW_ROOM_NAME_MAX)
        luaL_argerror(L, idx, "room name must be 1 to 256 bytes");
    return name;
}

static mw_server_t *need_server(lua_State *L) {
    mw_server_t *s = get_server(L);
    if (!s)
        luaL_error(L, "rooms are only available while serving");
    return s;
}

/* core.join(id, room) -> count, moved_from | nil, err */
static int mw_lua_join(lua_State *L) {
    uint64_t id = check_id(L, 1);
    size_t len;
    const char *name = check_room(L, 2, &len);
    char moved[MW_ROOM_NAME_MAX + 1];
    int n = mw_pubsub_join(need_server(L), id, name, len, moved);
    if (n < 0)
        return push_result(L, n);
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
    int n = mw_pubsub_leave(need_server(L), id, name, len);
    if (n == MW_ENOTFOUND) {
        lua_pushnil(L);
        lua_pushliteral(L, "not joined");
        return 2;
    }
    if (n < 0)
        return push_result(L, n);
    lua_pushinteger(L, n);
    return 1;
}

typedef struct {
    lua_State *L;
    int n;
} collect_t;

static void collect_name(void *ud, const char *name, size_t len) {
    collect_t *c = ud;
    lua_pushlstring(c->L, name, len);
    lua_rawseti(c->L, -2, ++c->n);
}

static void collect_id(void *ud, uint64_t id) {
    collect_t *c = ud;
    lua_pushnumber(c->L, (lua_Number)id);
    lua_rawseti(c->L, -2, ++c->n);
}

/* core.rooms(id) -> { names } | nil, "closed" */
static int mw_lua_rooms(lua_State *L) {
    uint64_t id = check_id(L, 1);
    collect_t c = {L, 0};
    lua_newtable(L);
    int n = mw_pubsub_rooms(need_server(L), id, collect_name, &c);
    if (n < 0)
        return push_result(L, n);
    return 1;
}

/* core.members(room) -> { ids } */
static int mw_lua_members(lua_State *L) {
    size_t len;
    const char *name = check_room(L, 1, &len);
    collect_t c = {L, 0};
    lua_newtable(L);
    mw_pubsub_members(need_server(L), name, len, collect_id, &c);
    return 1;
}

/* core.count(room) -> n */
static int mw_lua_count(lua_State *L) {
    size_t len;
    const char *name = check_room(L, 1, &len);
    lua_pushinteger(L, (lua_Integer)mw_pubsub_count(need_server(L), name, len));
    return 1;
}

/* core.room_count() -> n */
static int mw_lua_room_count(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)mw_pubsub_room_count(need_server(L)));
    return 1;
}

static uint64_t opt_id(lua_State *L, int idx) {
    return lua_isnoneornil(L, idx) || (lua_isnumber(L, idx) && lua_tonumber(L, idx) == 0)
               ? 0
               : check_id(L, idx);
}

static int push_fanout(lua_State *L, int rc, const mw_fanout_result_t *res) {
    if (rc != 0)
        return push_result(L, rc);
    lua_pushinteger(L, (lua_Integer)res->delivered);
    lua_pushinteger(L, (lua_Integer)res->dropped);
    return 2;
}

/* core.broadcast(room, payload, is_binary, exclude_id, event_id) -> delivered, dropped */
static int mw_lua_broadcast(lua_State *L) {
    size_t rlen, len, elen = 0;
    const char *room = check_room(L, 1, &rlen);
    const char *data = luaL_checklstring(L, 2, &len);
    int binary = lua_toboolean(L, 3);
    uint64_t exclude = opt_id(L, 4);
    const char *event = luaL_optlstring(L, 5, NULL, &elen);
    mw_fanout_result_t res;
    int rc = mw_pubsub_broadcast(need_server(L), room, rlen, binary, data, len, exclude, event,
                                 elen, &res);
    return push_fanout(L, rc, &res);
}

/* core.send_many(ids, payload, is_binary, event_id) -> delivered, dropped */
static int mw_lua_send_many(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    size_t len, elen = 0;
    const char *data = luaL_checklstring(L, 2, &len);
    int binary = lua_toboolean(L, 3);
    const char *event = luaL_optlstring(L, 4, NULL, &elen);
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
    mw_server_t *s = get_server(L);
    int rc = s ? mw_pubsub_send_many(s, ids, n, binary, data, len, event, elen, &res) : MW_ECLOSED;
    if (ids != stackids)
        free(ids);
    return push_fanout(L, rc, &res);
}

/* core.broadcast_all(payload, is_binary, exclude_id, event_id) -> delivered, dropped */
static int mw_lua_broadcast_all(lua_State *L) {
    size_t len, elen = 0;
    const char *data = luaL_checklstring(L, 1, &len);
    int binary = lua_toboolean(L, 2);
    uint64_t exclude = opt_id(L, 3);
    const char *event = luaL_optlstring(L, 4, NULL, &elen);
    mw_fanout_result_t res;
    int rc = mw_pubsub_broadcast_all(need_server(L), binary, data, len, exclude, event, elen, &res);
    return push_fanout(L, rc, &res);
}

/* core.dedupe(id, enabled) -> true | nil, "closed" */
static int mw_lua_dedupe(lua_State *L) {
    uint64_t id = check_id(L, 1);
    return push_result(L, mw_pubsub_dedupe(need_server(L), id, lua_toboolean(L, 2)));
}

/* core.client_stats(id) -> { buffered =, dropped = } | nil, "closed" */
static int mw_lua_client_stats(lua_State *L) {
    uint64_t id = check_id(L, 1);
    size_t buffered;
    uint64_t dropped;
    int rc = mw_pubsub_client_stats(need_server(L), id, &buffered, &dropped);
    if (rc != 0)
        return push_result(L, rc);
    lua_createtable(L, 0, 2);
    lua_pushnumber(L, (lua_Number)buffered);
    lua_setfield(L, -2, "buffered");
    lua_pushnumber(L, (lua_Number)dropped);
    lua_setfield(L, -2, "dropped");
    return 1;
}

/* core.set_reply(name, payload, is_binary) -> true: a message the C core
 * sends by itself ("rate_limited", "ping"), encoded by the app's protocol. */
static int mw_lua_set_reply(lua_State *L) {
    static const char *const names[] = {"rate_limited", "ping", NULL};
    int which = luaL_checkoption(L, 1, NULL, names);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    int binary = lua_toboolean(L, 3);
    mw_server_t *s = get_server(L);
    if (!s)
        return push_result(L, MW_ECLOSED);
    return push_result(L, mw_server_set_reply(s, (mw_reply_t)which, data, len, binary));
}

/* core.set_expiry(id, ms, code, reason) -> true | nil, "closed": the C core
 * closes the client with code/reason after ms (authentication timeout,
 * token expiry) unless called again; core.set_expiry(id) cancels. */
static int mw_lua_set_expiry(lua_State *L) {
    uint64_t id = check_id(L, 1);
    mw_server_t *s = get_server(L);
    if (!s)
        return push_result(L, MW_ECLOSED);
    if (lua_isnoneornil(L, 2))
        return push_result(L, mw_server_set_expiry(s, id, -1, 0, NULL, 0));
    lua_Number ms = luaL_checknumber(L, 2);
    if (!(ms >= 0 && ms < 9.0e15))
        luaL_argerror(L, 2, "milliseconds must be a non-negative number");
    lua_Integer code = luaL_checkinteger(L, 3);
    size_t len;
    const char *reason = luaL_optlstring(L, 4, "", &len);
    if (code < 0 || code > 65535 || !mw_ws_close_code_sendable((unsigned)code))
        luaL_argerror(L, 3, "not a close code a server may send");
    if (len > 123)
        luaL_argerror(L, 4, "reason longer than 123 bytes");
    return push_result(L, mw_server_set_expiry(s, id, (int64_t)ms, (uint16_t)code, reason, len));
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
    mw_server_t *s = get_server(L);
    if (!s)
        return push_result(L, MW_ECLOSED);
    return push_result(L,
                       mw_server_throttle(s, id, (unsigned)slot, (uint64_t)window, (uint64_t)max));
}

/* core.label(text) -> id. Registers, once per route, what the watchdog
 * reports for a dispatch it cannot interrupt ("chat.send
 * (controllers/chat.lua:12)"): C keeps a copy, so the watchdog thread never
 * reads Lua memory. Returns 0 when there is no watchdog (script_timeout = 0)
 * or too many labels. The upvalue is the watchdog, when there is one. */
static int mw_lua_label(lua_State *L) {
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    mw_watchdog_t *w = lua_touserdata(L, lua_upvalueindex(1));
    lua_pushinteger(L, w ? (lua_Integer)mw_watchdog_intern(w, text, len) : 0);
    return 1;
}

/* core.running(id) -> nothing: the current dispatch runs the label with
 * this id (from core.label). Called for every message: one atomic store. */
static int mw_lua_running(lua_State *L) {
    mw_watchdog_t *w = lua_touserdata(L, lua_upvalueindex(1));
    lua_Integer id = lua_tointeger(L, 1);
    if (w && id > 0 && id <= MW_WATCHDOG_LABELS)
        mw_watchdog_running(w, (unsigned)id);
    return 0;
}

/* Installs core.label and core.running with w (or NULL) as upvalue. */
static void push_watchdog_fns(lua_State *L, mw_watchdog_t *w) {
    /* stack: ... core */
    lua_pushlightuserdata(L, w);
    lua_pushcclosure(L, mw_lua_label, 1);
    lua_setfield(L, -2, "label");
    lua_pushlightuserdata(L, w);
    lua_pushcclosure(L, mw_lua_running, 1);
    lua_setfield(L, -2, "running");
}

void mw_lua_set_watchdog(lua_State *L, mw_watchdog_t *w) {
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    lua_getfield(L, -1, "moonwire.core");
    /* stack: ... package loaded core */
    push_watchdog_fns(L, w);
    lua_pop(L, 3);
}

void mw_lua_inject_core_api(lua_State *L) {
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
        {"throttle", mw_lua_throttle},
        {NULL, NULL},
    };
    /* stack: ... */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    /* stack: ... package loaded */
    lua_createtable(L, 0, 26);
    luaL_register(L, NULL, fns);
    mw_lua_inject_jwt_api(L); /* jwt_*: src/lua/jwt_lua.c */
    push_watchdog_fns(L, NULL);
    lua_pushstring(L, MW_VERSION);
    lua_setfield(L, -2, "version");
    /* stack: ... package loaded core */
    lua_setfield(L, -2, "moonwire.core");
    lua_pop(L, 2);
}
