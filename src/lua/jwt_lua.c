/*
 * jwt_lua.c - moonwire.core.jwt_*: the JWT primitives of src/jwt.c for Lua.
 *
 * A separate file from api.c because these primitives have a second life:
 * besides joining moonwire.core inside the server, they are built as the
 * Lua C module moonwire/core/jwt.so, so lua/moonwire/jwt.lua runs with the
 * real crypto under plain busted (app and runtime specs) as well. They need
 * no server and hold no state beyond parsed keys.
 *
 * Conventions as in api.c: misuse (a wrong argument type) raises; a token
 * or key that fails returns nil and the short stable string of its mw_err
 * ("invalid signature", "malformed token"). Secrets are plain Lua strings;
 * public keys are parsed once by jwt_key into a userdata that frees its
 * EVP_PKEY when collected. JSON is never touched here.
 */
#include "jwt_lua.h"
#include "../errors.h"
#include "../jwt.h"

#include <lauxlib.h>

static const char key_mt; /* registry key of the key metatable: its address is unique */

/* A key userdata holds a pointer, so __gc can free and clear it (a second
 * __gc call, or a key used after, then sees NULL). */
typedef struct {
    mw_jwt_key_t *key;
} key_box_t;

static int push_error(lua_State *L, int rc) {
    lua_pushnil(L);
    lua_pushstring(L, mw_strerror(rc));
    return 2;
}

static key_box_t *to_box(lua_State *L, int idx) {
    key_box_t *box = lua_touserdata(L, idx);
    if (!box || !lua_getmetatable(L, idx))
        return NULL;
    /* stack: ... mt */
    lua_pushlightuserdata(L, (void *)&key_mt);
    lua_rawget(L, LUA_REGISTRYINDEX);
    /* stack: ... mt key_mt */
    int ours = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return ours ? box : NULL;
}

static int key_gc(lua_State *L) {
    key_box_t *box = to_box(L, 1);
    if (box) {
        mw_jwt_key_free(box->key);
        box->key = NULL;
    }
    return 0;
}

static const char *type_name(mw_jwt_key_type type) {
    switch (type) {
    case MW_JWT_KEY_HMAC: return "hmac";
    case MW_JWT_KEY_RSA: return "rsa";
    case MW_JWT_KEY_EC: return "ec";
    }
    return "unknown";
}

static int key_tostring(lua_State *L) {
    key_box_t *box = to_box(L, 1);
    lua_pushfstring(L, "moonwire.jwt.key (%s)",
                    box && box->key ? type_name(mw_jwt_key_get_type(box->key)) : "freed");
    return 1;
}

/* push_key_mt leaves the key metatable on the stack, creating it once per
 * state. __metatable hides it from Lua, so no script can call __gc. */
static void push_key_mt(lua_State *L) {
    lua_pushlightuserdata(L, (void *)&key_mt);
    lua_rawget(L, LUA_REGISTRYINDEX);
    if (lua_istable(L, -1))
        return;
    lua_pop(L, 1);
    lua_createtable(L, 0, 3);
    lua_pushcfunction(L, key_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, key_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "moonwire.jwt.key");
    lua_setfield(L, -2, "__metatable");
    lua_pushlightuserdata(L, (void *)&key_mt);
    lua_pushvalue(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);
}

/* core.jwt_key(pem) -> key | nil, "unsupported key" | "key too small" */
static int mw_lua_jwt_key(lua_State *L) {
    size_t len;
    const char *pem = luaL_checklstring(L, 1, &len);
    key_box_t *box = lua_newuserdata(L, sizeof *box);
    box->key = NULL;
    /* stack: pem box */
    push_key_mt(L);
    lua_setmetatable(L, -2);
    int rc = mw_jwt_key_pem(&box->key, pem, len);
    if (rc != 0)
        return push_error(L, rc);
    return 1;
}

/* check_key returns the key at idx: a key from jwt_key, or a secret string
 * made into a temporary HMAC key (*tmp, which the caller frees). */
static const mw_jwt_key_t *check_key(lua_State *L, int idx, mw_jwt_key_t **tmp, int *rc) {
    *tmp = NULL;
    *rc = 0;
    if (lua_type(L, idx) == LUA_TSTRING) {
        size_t len;
        const char *secret = lua_tolstring(L, idx, &len);
        *rc = mw_jwt_key_secret(tmp, secret, len);
        return *tmp;
    }
    key_box_t *box = to_box(L, idx);
    if (!box)
        luaL_argerror(L, idx, "secret string or jwt key expected");
    if (!box->key)
        luaL_argerror(L, idx, "jwt key was freed");
    return box->key;
}

/* core.jwt_key_type(key) -> "hmac" (a secret string) | "rsa" | "ec" */
static int mw_lua_jwt_key_type(lua_State *L) {
    if (lua_type(L, 1) == LUA_TSTRING) {
        lua_pushliteral(L, "hmac");
        return 1;
    }
    mw_jwt_key_t *tmp;
    int rc;
    const mw_jwt_key_t *key = check_key(L, 1, &tmp, &rc);
    lua_pushstring(L, type_name(mw_jwt_key_get_type(key)));
    return 1;
}

static int push_parts(lua_State *L, const mw_jwt_parts_t *parts) {
    lua_pushlstring(L, (const char *)parts->header, parts->header_len);
    lua_pushlstring(L, (const char *)parts->payload, parts->payload_len);
    return 2;
}

/* core.jwt_decode(token) -> header_json, payload_json | nil, err
 * (the signature is NOT checked: for reading the header only) */
static int mw_lua_jwt_decode(lua_State *L) {
    size_t len;
    const char *token = luaL_checklstring(L, 1, &len);
    unsigned char buf[MW_JWT_MAX_TOKEN];
    mw_jwt_parts_t parts;
    int rc = mw_jwt_decode(token, len, buf, sizeof buf, &parts);
    if (rc != 0)
        return push_error(L, rc);
    return push_parts(L, &parts);
}

/* core.jwt_verify(token, key_or_secret, alg) -> header_json, payload_json | nil, err */
static int mw_lua_jwt_verify(lua_State *L) {
    size_t len, alen;
    const char *token = luaL_checklstring(L, 1, &len);
    const char *name = luaL_checklstring(L, 3, &alen);
    mw_jwt_key_t *tmp;
    int rc;
    const mw_jwt_key_t *key = check_key(L, 2, &tmp, &rc);
    if (rc != 0)
        return push_error(L, rc);
    int alg = mw_jwt_alg_parse(name, alen);
    unsigned char buf[MW_JWT_MAX_TOKEN];
    mw_jwt_parts_t parts;
    rc = alg < 0 ? alg : mw_jwt_verify(key, (mw_jwt_alg)alg, token, len, buf, sizeof buf, &parts);
    mw_jwt_key_free(tmp);
    if (rc != 0)
        return push_error(L, rc);
    return push_parts(L, &parts);
}

/* core.jwt_sign(header_json, payload_json, secret, alg) -> token | nil, err */
static int mw_lua_jwt_sign(lua_State *L) {
    size_t hlen, plen, alen;
    const char *header = luaL_checklstring(L, 1, &hlen);
    const char *payload = luaL_checklstring(L, 2, &plen);
    const char *name = luaL_checklstring(L, 4, &alen);
    mw_jwt_key_t *tmp;
    int rc;
    const mw_jwt_key_t *key = check_key(L, 3, &tmp, &rc);
    if (rc != 0)
        return push_error(L, rc);
    int alg = mw_jwt_alg_parse(name, alen);
    char out[MW_JWT_MAX_TOKEN + 1];
    size_t outlen = 0;
    rc = alg < 0 ? alg
                 : mw_jwt_sign(key, (mw_jwt_alg)alg, header, hlen, payload, plen, out, sizeof out,
                               &outlen);
    mw_jwt_key_free(tmp);
    if (rc != 0)
        return push_error(L, rc);
    lua_pushlstring(L, out, outlen);
    return 1;
}

/* core.jwt_b64url_decode(s) -> bytes | nil, "malformed token": unpadded
 * base64url, as JWS and JWK "k" members carry keys and parts. Capped at
 * MW_JWT_MAX_TOKEN input bytes, what a token or key ever needs. */
static int mw_lua_jwt_b64url_decode(lua_State *L) {
    size_t len;
    const char *in = luaL_checklstring(L, 1, &len);
    luaL_argcheck(L, len <= MW_JWT_MAX_TOKEN, 1, "longer than jwt_max_token");
    unsigned char out[(MW_JWT_MAX_TOKEN + 3) / 4 * 3];
    size_t outlen = 0;
    int rc = mw_jwt_b64url_decode(in, len, out, &outlen);
    if (rc != 0)
        return push_error(L, rc);
    lua_pushlstring(L, (const char *)out, outlen);
    return 1;
}

/* core.jwt_b64url_encode(bytes) -> unpadded base64url. */
static int mw_lua_jwt_b64url_encode(lua_State *L) {
    size_t len;
    const char *in = luaL_checklstring(L, 1, &len);
    luaL_argcheck(L, len <= MW_JWT_MAX_TOKEN, 1, "longer than jwt_max_token");
    char out[(MW_JWT_MAX_TOKEN * 4 + 2) / 3 + 1];
    size_t outlen = 0;
    mw_jwt_b64url_encode(in, len, out, &outlen);
    lua_pushlstring(L, out, outlen);
    return 1;
}

/* clang-format off */
static const luaL_Reg jwt_fns[] = {
    {"jwt_key", mw_lua_jwt_key},
    {"jwt_key_type", mw_lua_jwt_key_type},
    {"jwt_decode", mw_lua_jwt_decode},
    {"jwt_verify", mw_lua_jwt_verify},
    {"jwt_sign", mw_lua_jwt_sign},
    {"jwt_b64url_decode", mw_lua_jwt_b64url_decode},
    {"jwt_b64url_encode", mw_lua_jwt_b64url_encode},
    {NULL, NULL},
};
/* clang-format on */

void mw_lua_inject_jwt_api(lua_State *L) {
    /* stack: ... core */
    luaL_register(L, NULL, jwt_fns);
    lua_pushinteger(L, MW_JWT_MAX_TOKEN);
    lua_setfield(L, -2, "jwt_max_token");
}

/* The module under plain LuaJIT (busted). It also carries the moonwire
 * version, which the server's moonwire.core has as `version`: specs read
 * the same string (lua/moonwire/version.lua). */
int luaopen_moonwire_core_jwt(lua_State *L) {
    lua_createtable(L, 0, 7);
    mw_lua_inject_jwt_api(L);
    lua_pushstring(L, MW_VERSION);
    lua_setfield(L, -2, "version");
    return 1;
}
