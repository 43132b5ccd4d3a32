/*
 * keylimit_lua.c - moonwire.core.keylimit(window_ms, max, max_keys): a
 * limiter object, one mw_keylimit_t owned by a userdata (freed with it),
 * for the rate limits apps declare in Lua (moonwire.handlers and the
 * rate_limit middleware). Its clock is the server's (the virtual one under
 * moonwire.testing), read at each take.
 *
 * The convention of api.c: misuse raises; a refusal is nil, "rate
 * limited" and how many milliseconds until the key may act again.
 */
#include "keylimit_lua.h"
#include "../errors.h"
#include "../keylimit.h"
#include "../state.h"

#include <lauxlib.h>
#include <math.h>
#include <uv.h>

#define KEYLIMIT_MT "moonwire.core.keylimit"
/* The largest window and table a limiter takes: a day, and a million keys
 * (a bound the app sets lower; each key costs about 64 bytes plus its text). */
#define MAX_WINDOW_MS 86400000.0
#define MAX_KEYS 1000000.0

typedef struct {
    mw_keylimit_t *t;
    mw_lua_core_t *ctx;
} limiter_t;

static limiter_t *check_limiter(lua_State *L) {
    limiter_t *l = luaL_checkudata(L, 1, KEYLIMIT_MT);
    if (!l->t)
        luaL_error(L, "limiter already freed");
    return l;
}

/* now_us: the server's clock, or the monotonic one with no server. */
static uint64_t now_us(const limiter_t *l) {
    mw_server_t *s = mw_lua_core_server(l->ctx);
    return (s ? mw_server_now_ns(s) : uv_hrtime()) / 1000u;
}

static uint64_t check_count(lua_State *L, int arg, double max, const char *what) {
    lua_Number n = luaL_checknumber(L, arg);
    if (!(n >= 1 && n <= max) || n != floor(n))
        luaL_argerror(L, arg, what);
    return (uint64_t)n;
}

/* core.keylimit(window_ms, max, max_keys) -> limiter: at most max events
 * per window_ms for each key, remembering at most max_keys keys. */
static int l_keylimit(lua_State *L) {
    uint64_t window = check_count(L, 1, MAX_WINDOW_MS, "window must be 1..86400000 ms");
    uint64_t max = check_count(L, 2, 1e9, "max must be a positive integer");
    uint64_t keys = check_count(L, 3, MAX_KEYS, "max_keys must be 1..1000000");
    limiter_t *l = lua_newuserdata(L, sizeof *l);
    l->t = NULL;
    l->ctx = lua_touserdata(L, lua_upvalueindex(1));
    luaL_getmetatable(L, KEYLIMIT_MT);
    lua_setmetatable(L, -2);
    if (mw_keylimit_create(&l->t, window, max, (size_t)keys) != 0)
        return luaL_error(L, "out of memory");
    return 1;
}

/* limiter:take(key) -> true | nil, "rate limited", retry_ms. key is a
 * string or a number (its decimal text); raises on another type or a key
 * over MW_KEYLIMIT_KEY_MAX bytes. */
static int l_take(lua_State *L) {
    limiter_t *l = check_limiter(L);
    int t = lua_type(L, 2);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
        return luaL_argerror(L, 2, "key must be a string or a number");
    size_t len;
    const char *key = lua_tolstring(L, 2, &len);
    uint64_t retry = 0;
    int rc = mw_keylimit_take(l->t, key, len, now_us(l), &retry);
    if (rc == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    if (rc == MW_EINVAL) {
        lua_pushfstring(L, "key longer than %d bytes", MW_KEYLIMIT_KEY_MAX);
        return luaL_argerror(L, 2, lua_tostring(L, -1));
    }
    if (rc == MW_ENOMEM)
        return luaL_error(L, "out of memory");
    lua_pushnil(L);
    lua_pushliteral(L, "rate limited");
    lua_pushnumber(L, ceil((double)retry / 1000.0));
    return 3;
}

/* limiter:size() -> how many keys it holds now. */
static int l_size(lua_State *L) {
    lua_pushnumber(L, (lua_Number)mw_keylimit_size(check_limiter(L)->t));
    return 1;
}

/* limiter:evicted() -> how many counting keys a full table forgot. */
static int l_evicted(lua_State *L) {
    lua_pushnumber(L, (lua_Number)mw_keylimit_evicted(check_limiter(L)->t));
    return 1;
}

/* limiter:sweep() -> keys left once every idle one is forgotten. */
static int l_sweep(lua_State *L) {
    limiter_t *l = check_limiter(L);
    lua_pushnumber(L, (lua_Number)mw_keylimit_sweep(l->t, now_us(l)));
    return 1;
}

static int l_gc(lua_State *L) {
    limiter_t *l = luaL_checkudata(L, 1, KEYLIMIT_MT);
    mw_keylimit_free(l->t);
    l->t = NULL;
    return 0;
}

void mw_lua_inject_keylimit_api(lua_State *L, mw_lua_core_t *ctx) {
    static const luaL_Reg methods[] = {
        {"take", l_take},   {"size", l_size}, {"evicted", l_evicted},
        {"sweep", l_sweep}, {NULL, NULL},
    };
    if (luaL_newmetatable(L, KEYLIMIT_MT)) {
        lua_newtable(L);
        luaL_register(L, NULL, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    lua_pushlightuserdata(L, ctx);
    lua_pushcclosure(L, l_keylimit, 1);
    lua_setfield(L, -2, "keylimit");
}
