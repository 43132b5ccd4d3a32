/*
 * api.c - moonwire.core: small, strict primitives exposed to Lua.
 *
 * Every Lua-callable C function lives here and is named after its Lua path
 * (mw_lua_send implements moonwire.core.send). They follow one convention:
 * misuse (wrong types, an invalid close code) raises; a failure the caller
 * must handle (the client is gone) returns nil and a short stable string.
 * The friendly API apps use is the Lua facade in lua/moonwire/.
 */
#include "api.h"
#include "../errors.h"
#include "../log.h"
#include "../ws.h"

#include <lauxlib.h>
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

static uint64_t check_id(lua_State *L, int idx) {
    lua_Number n = luaL_checknumber(L, idx);
    if (n < 1 || n != (lua_Number)(uint64_t)n)
        luaL_argerror(L, idx, "client id must be a positive integer");
    return (uint64_t)n;
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

void mw_lua_inject_core_api(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"send", mw_lua_send},   {"close", mw_lua_close},     {"log", mw_lua_log},
        {"now", mw_lua_now},     {"scandir", mw_lua_scandir}, {NULL, NULL},
    };
    /* stack: ... */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    /* stack: ... package loaded */
    lua_createtable(L, 0, 6);
    luaL_register(L, NULL, fns);
    lua_pushstring(L, MW_VERSION);
    lua_setfield(L, -2, "version");
    /* stack: ... package loaded core */
    lua_setfield(L, -2, "moonwire.core");
    lua_pop(L, 2);
}
