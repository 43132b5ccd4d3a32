/*
 * shdict_lua.c - moonwire.core.shdict(name): a handle on one shared dict
 * (src/shdict.h) with OpenResty's ngx.shared.DICT methods, times in ms.
 *
 * A handle borrows its dict from the context's set and remembers the
 * set's generation: when the set changes (a test server closes, another
 * starts), it finds its dict again by name, or raises, never touching an
 * unmapped zone. Values are read into the handle's own buffer under the
 * dict's lock and pushed after it is released: nothing that can raise
 * (Lua allocation) runs while the lock is held.
 *
 * The convention of api.c: misuse (a bad key, value or ttl) raises; a
 * refusal is nil and a reason ("not found", "exists", "no memory", "value
 * too large", "not a number").
 */
#include "shdict_lua.h"
#include "../errors.h"
#include "../metrics.h"
#include "../shdict.h"
#include "../state.h"

#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define SHDICT_MT "moonwire.core.shdict"
#define MAX_TTL_MS 9007199254740992.0 /* 2^53: exact in a double */
#define DEFAULT_MAX_KEYS 1024         /* get_keys() without max, as OpenResty */

typedef struct {
    mw_lua_core_t *ctx;
    mw_shdict_t *d;
    unsigned gen;
    char *buf; /* the last string value read */
    size_t cap;
    char name[MW_SHDICT_NAME_MAX + 1];
} handle_t;

/* check_dict returns the handle's dict, found again if the set changed. */
static handle_t *check_handle(lua_State *L) {
    handle_t *h = luaL_checkudata(L, 1, SHDICT_MT);
    unsigned gen;
    mw_shdicts_t *set = mw_lua_core_shdicts(h->ctx, &gen);
    if (gen != h->gen) {
        h->d = mw_shdicts_find(set, h->name, strlen(h->name));
        h->gen = gen;
    }
    if (!h->d)
        luaL_error(L, "shared dict \"%s\" is gone", h->name);
    return h;
}

/* now_ms: the server's clock (the virtual one in specs), else the
 * monotonic one, which is the same in every process of the machine. */
static uint64_t now_ms(const handle_t *h) {
    mw_server_t *s = mw_lua_core_server(h->ctx);
    return (s ? mw_server_now_ns(s) : uv_hrtime()) / 1000000u;
}

static const char *check_key(lua_State *L, int arg, size_t *len) {
    int t = lua_type(L, arg);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
        luaL_argerror(L, arg, "key must be a string");
    const char *k = lua_tolstring(L, arg, len);
    if (*len > MW_SHDICT_KEY_MAX)
        luaL_argerror(L, arg, "key longer than 1024 bytes");
    return k;
}

/* check_ttl reads an optional ttl in ms: nil or 0 is never. */
static uint64_t check_ttl(lua_State *L, int arg) {
    if (lua_isnoneornil(L, arg))
        return 0;
    lua_Number n = luaL_checknumber(L, arg);
    if (!(n >= 0 && n <= MAX_TTL_MS))
        luaL_argerror(L, arg, "ttl must be a number of ms >= 0");
    return (uint64_t)ceil(n);
}

static mw_shdict_value_t check_value(lua_State *L, int arg) {
    mw_shdict_value_t v = {.type = MW_SHDICT_NIL};
    switch (lua_type(L, arg)) {
    case LUA_TNONE:
    case LUA_TNIL: break;
    case LUA_TBOOLEAN:
        v.type = MW_SHDICT_BOOLEAN;
        v.boolean = lua_toboolean(L, arg);
        break;
    case LUA_TNUMBER:
        v.type = MW_SHDICT_NUMBER;
        v.number = lua_tonumber(L, arg);
        break;
    case LUA_TSTRING:
        v.type = MW_SHDICT_STRING;
        v.str = lua_tolstring(L, arg, &v.len);
        break;
    default: luaL_argerror(L, arg, "value must be a string, number, boolean or nil");
    }
    return v;
}

static int fail(lua_State *L, const char *why) {
    lua_pushnil(L);
    lua_pushstring(L, why);
    return 2;
}

static const char *reason(int rc) {
    switch (rc) {
    case MW_ENOTFOUND: return "not found";
    case MW_EDUP: return "exists";
    case MW_ETOOBIG: return "value too large";
    case MW_ENOMEM: return "no memory";
    case MW_EINVAL: return "not a number";
    default: return mw_strerror(rc);
    }
}

/* core.shdict(name) -> dict | nil, "no such dict" */
static int l_shdict(lua_State *L) {
    mw_lua_core_t *ctx = lua_touserdata(L, lua_upvalueindex(1));
    size_t len;
    const char *name = luaL_checklstring(L, 1, &len);
    unsigned gen;
    mw_shdict_t *d = mw_shdicts_find(mw_lua_core_shdicts(ctx, &gen), name, len);
    if (!d)
        return fail(L, "no such dict");
    handle_t *h = lua_newuserdata(L, sizeof *h);
    memset(h, 0, sizeof *h);
    h->ctx = ctx;
    h->d = d;
    h->gen = gen;
    memcpy(h->name, name, len + 1);
    luaL_getmetatable(L, SHDICT_MT);
    lua_setmetatable(L, -2);
    return 1;
}

/* dict:get(key) -> value, flags (flags only when not 0) | nil */
static int l_get(lua_State *L) {
    handle_t *h = check_handle(L);
    size_t klen;
    const char *key = check_key(L, 2, &klen);
    mw_shdict_value_t v;
    int rc = mw_shdict_get(h->d, key, klen, now_ms(h), &v, &h->buf, &h->cap);
    if (rc == MW_ENOTFOUND) {
        lua_pushnil(L);
        return 1;
    }
    if (rc != 0)
        return luaL_error(L, "out of memory");
    switch (v.type) {
    case MW_SHDICT_BOOLEAN: lua_pushboolean(L, v.boolean); break;
    case MW_SHDICT_NUMBER: lua_pushnumber(L, v.number); break;
    case MW_SHDICT_STRING: lua_pushlstring(L, v.len ? v.str : "", v.len); break;
    default: lua_pushnil(L);
    }
    if (v.flags == 0)
        return 1;
    lua_pushnumber(L, v.flags);
    return 2;
}

/* store: dict:set / safe_set / add / safe_add / replace (key, value,
 * ttl_ms?, flags?) -> true, forcible | nil, err. forcible is true when
 * other keys were evicted to make room. */
static int store(lua_State *L, int mode) {
    handle_t *h = check_handle(L);
    size_t klen;
    const char *key = check_key(L, 2, &klen);
    mw_shdict_value_t v = check_value(L, 3);
    uint64_t ttl = check_ttl(L, 4);
    lua_Number flags = luaL_optnumber(L, 5, 0);
    if (!(flags >= 0 && flags <= 4294967295.0) || flags != floor(flags))
        return luaL_argerror(L, 5, "flags must be an integer 0..2^32-1");
    v.flags = (uint32_t)flags;
    int evicted = 0;
    int rc = mw_shdict_set(h->d, key, klen, &v, ttl, now_ms(h), mode, &evicted);
    if (rc != 0)
        return fail(L, reason(rc));
    lua_pushboolean(L, 1);
    lua_pushboolean(L, evicted);
    return 2;
}

static int l_set(lua_State *L) {
    return store(L, MW_SHDICT_SET);
}

static int l_safe_set(lua_State *L) {
    return store(L, MW_SHDICT_SET | MW_SHDICT_SAFE);
}

static int l_add(lua_State *L) {
    return store(L, MW_SHDICT_ADD);
}

static int l_safe_add(lua_State *L) {
    return store(L, MW_SHDICT_ADD | MW_SHDICT_SAFE);
}

static int l_replace(lua_State *L) {
    return store(L, MW_SHDICT_REPLACE);
}

/* dict:incr(key, n, init?, init_ttl_ms?) -> the new value | nil, err */
static int l_incr(lua_State *L) {
    handle_t *h = check_handle(L);
    size_t klen;
    const char *key = check_key(L, 2, &klen);
    double n = luaL_checknumber(L, 3);
    double init = 0;
    int has_init = !lua_isnoneornil(L, 4);
    if (has_init)
        init = luaL_checknumber(L, 4);
    uint64_t ttl = check_ttl(L, 5);
    double out = 0;
    int rc = mw_shdict_incr(h->d, key, klen, n, has_init ? &init : NULL, ttl, now_ms(h), &out);
    if (rc != 0)
        return fail(L, reason(rc));
    lua_pushnumber(L, out);
    return 1;
}

/* dict:delete(key) -> true */
static int l_delete(lua_State *L) {
    handle_t *h = check_handle(L);
    size_t klen;
    const char *key = check_key(L, 2, &klen);
    mw_shdict_delete(h->d, key, klen);
    lua_pushboolean(L, 1);
    return 1;
}

/* dict:ttl(key) -> ms left (0: never expires) | nil, "not found" */
static int l_ttl(lua_State *L) {
    handle_t *h = check_handle(L);
    size_t klen;
    const char *key = check_key(L, 2, &klen);
    uint64_t ttl = 0;
    int rc = mw_shdict_ttl(h->d, key, klen, now_ms(h), &ttl);
    if (rc != 0)
        return fail(L, reason(rc));
    lua_pushnumber(L, (lua_Number)ttl);
    return 1;
}

/* dict:expire(key, ttl_ms) -> true | nil, "not found" (0: never) */
static int l_expire(lua_State *L) {
    handle_t *h = check_handle(L);
    size_t klen;
    const char *key = check_key(L, 2, &klen);
    luaL_checknumber(L, 3);
    uint64_t ttl = check_ttl(L, 3);
    int rc = mw_shdict_expire(h->d, key, klen, ttl, now_ms(h));
    if (rc != 0)
        return fail(L, reason(rc));
    lua_pushboolean(L, 1);
    return 1;
}

/* dict:flush_all() -> true */
static int l_flush_all(lua_State *L) {
    handle_t *h = check_handle(L);
    mw_shdict_flush_all(h->d);
    lua_pushboolean(L, 1);
    return 1;
}

static size_t check_max(lua_State *L, int arg, size_t dflt) {
    if (lua_isnoneornil(L, arg))
        return dflt;
    lua_Number n = luaL_checknumber(L, arg);
    if (!(n >= 0 && n <= 1e12) || n != floor(n))
        luaL_argerror(L, arg, "max must be an integer >= 0 (0: all)");
    return (size_t)n;
}

/* dict:flush_expired(max?) -> how many expired keys were reclaimed */
static int l_flush_expired(lua_State *L) {
    handle_t *h = check_handle(L);
    size_t max = check_max(L, 2, 0);
    lua_pushnumber(L, (lua_Number)mw_shdict_flush_expired(h->d, now_ms(h), max));
    return 1;
}

/* Keys gathered under the lock: lengths and bytes, back to back. */
typedef struct {
    char *buf;
    size_t len, cap;
    int oom;
} keys_t;

static void gather(void *ud, const char *key, size_t klen) {
    keys_t *k = ud;
    size_t need = k->len + sizeof klen + klen;
    if (k->oom)
        return;
    if (need > k->cap) {
        size_t cap = k->cap ? k->cap : 1024;
        while (cap < need)
            cap *= 2;
        char *nb = realloc(k->buf, cap);
        if (!nb) {
            k->oom = 1;
            return;
        }
        k->buf = nb;
        k->cap = cap;
    }
    memcpy(k->buf + k->len, &klen, sizeof klen);
    memcpy(k->buf + k->len + sizeof klen, key, klen);
    k->len = need;
}

/* dict:get_keys(max?) -> { key, ... }, most recently used first; max
 * defaults to 1024, 0 is all (which holds the lock for the whole walk). */
static int l_get_keys(lua_State *L) {
    handle_t *h = check_handle(L);
    size_t max = check_max(L, 2, DEFAULT_MAX_KEYS);
    keys_t k = {0};
    size_t n = mw_shdict_keys(h->d, now_ms(h), max, gather, &k);
    if (k.oom) {
        free(k.buf);
        return luaL_error(L, "out of memory");
    }
    lua_createtable(L, (int)(n < 1u << 20 ? n : 1u << 20), 0);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        size_t klen;
        memcpy(&klen, k.buf + off, sizeof klen);
        lua_pushlstring(L, k.buf + off + sizeof klen, klen); /* may raise: k.buf leaks then */
        lua_rawseti(L, -2, (int)i + 1);
        off += sizeof klen + klen;
    }
    free(k.buf);
    return 1;
}

/* dict:capacity() -> bytes items may take; dict:free_space() -> bytes free */
static int l_capacity(lua_State *L) {
    handle_t *h = check_handle(L);
    lua_pushnumber(L, (lua_Number)mw_shdict_capacity(h->d));
    return 1;
}

static int l_free_space(lua_State *L) {
    handle_t *h = check_handle(L);
    lua_pushnumber(L, (lua_Number)mw_shdict_free_space(h->d));
    return 1;
}

static int l_name(lua_State *L) {
    handle_t *h = luaL_checkudata(L, 1, SHDICT_MT);
    lua_pushstring(L, h->name);
    return 1;
}

static int l_gc(lua_State *L) {
    handle_t *h = luaL_checkudata(L, 1, SHDICT_MT);
    free(h->buf);
    h->buf = NULL;
    h->cap = 0;
    return 0;
}

static int l_tostring(lua_State *L) {
    handle_t *h = luaL_checkudata(L, 1, SHDICT_MT);
    lua_pushfstring(L, "moonwire.shared.dict(\"%s\")", h->name);
    return 1;
}

void mw_lua_inject_shdict_api(lua_State *L, mw_lua_core_t *ctx) {
    static const luaL_Reg methods[] = {
        {"get", l_get},
        {"set", l_set},
        {"safe_set", l_safe_set},
        {"add", l_add},
        {"safe_add", l_safe_add},
        {"replace", l_replace},
        {"incr", l_incr},
        {"delete", l_delete},
        {"ttl", l_ttl},
        {"expire", l_expire},
        {"flush_all", l_flush_all},
        {"flush_expired", l_flush_expired},
        {"get_keys", l_get_keys},
        {"capacity", l_capacity},
        {"free_space", l_free_space},
        {"name", l_name},
        {NULL, NULL},
    };
    if (luaL_newmetatable(L, SHDICT_MT)) {
        lua_newtable(L);
        luaL_register(L, NULL, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushliteral(L, "moonwire.shared.dict");
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
    lua_pushlightuserdata(L, ctx);
    lua_pushcclosure(L, l_shdict, 1);
    lua_setfield(L, -2, "shdict");
    lua_pushinteger(L, MW_SHDICT_KEY_MAX);
    lua_setfield(L, -2, "shdict_key_max");
}

void mw_lua_shdict_metrics(mw_lua_core_t *ctx, FILE *out) {
    unsigned gen;
    mw_shdicts_t *set = mw_lua_core_shdicts(ctx, &gen);
    if (!mw_shdicts_at(set, 0))
        return;
    static const struct {
        const char *name, *type, *help;
    } fam[] = {
        /* "max": every worker reads the same zone (metrics.h) */
        {"shdict_bytes", "gauge max", "Bytes a shared dict's items may take (its capacity)."},
        {"shdict_free_bytes", "gauge max", "Bytes of a shared dict not taken by items."},
        {"shdict_keys", "gauge max",
         "Keys a shared dict holds, expired ones not yet reclaimed included."},
        {"shdict_evictions_total", "counter max",
         "Live keys evicted from a shared dict to make room for a write."},
        {"shdict_recoveries_total", "counter max",
         "Times a process took a shared dict's lock from one that died holding it."},
    };
    for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
        mw_metrics_family(out, fam[f].name, fam[f].type, fam[f].help);
        mw_shdict_t *d;
        for (size_t i = 0; (d = mw_shdicts_at(set, i)) != NULL; i++) {
            mw_shdict_stats_t st;
            mw_shdict_stats(d, &st);
            uint64_t v = f == 0   ? mw_shdict_capacity(d)
                         : f == 1 ? mw_shdict_free_space(d)
                         : f == 2 ? st.keys
                         : f == 3 ? st.evictions
                                  : st.recoveries;
            mw_metrics_sample(out, fam[f].name, "dict", mw_shdict_name(d), v);
        }
    }
}
