/*
 * config_lua.c - config.lua -> mw_config_t.
 *
 * config.lua is Lua so it can compute values (os.getenv, arithmetic), but
 * what it returns is checked against the C descriptor table key by key:
 * an unknown key or a wrong type is an error naming that key, never a
 * silently ignored setting.
 */
#include "config_lua.h"
#include "../errors.h"

#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int type_error(char *err, size_t errlen, const char *file, const char *key, const char *want,
                      lua_State *L, int idx) {
    snprintf(err, errlen, "%s: %s: must be %s (got %s)", file, key, want, luaL_typename(L, idx));
    return MW_ECONFIG;
}

static int apply(lua_State *L, const char *file, const char *key, mw_config_t *cfg, int *app_ref,
                 char *err, size_t errlen) {
    /* stack: ... value */
    char msg[512];
    int rc = 0;
    const mw_config_desc_t *d = mw_config_find(key);
    if (!d) {
        snprintf(err, errlen, "%s: %s: unknown key", file, key);
        return MW_ECONFIG;
    }
    switch (d->type) {
    case MW_CONF_INT: {
        if (lua_type(L, -1) != LUA_TNUMBER)
            return type_error(err, errlen, file, key, "an integer", L, -1);
        lua_Number n = lua_tonumber(L, -1);
        if (n != floor(n) || n > 9.0e15 || n < -9.0e15) {
            snprintf(err, errlen, "%s: %s: must be an integer (got %g)", file, key, n);
            return MW_ECONFIG;
        }
        rc = mw_config_set_int(cfg, key, (long long)n, msg, sizeof msg);
        break;
    }
    case MW_CONF_BOOL:
        if (lua_type(L, -1) != LUA_TBOOLEAN)
            return type_error(err, errlen, file, key, "a boolean", L, -1);
        rc = mw_config_set_bool(cfg, key, lua_toboolean(L, -1), msg, sizeof msg);
        break;
    case MW_CONF_STRING:
        if (lua_type(L, -1) != LUA_TSTRING)
            return type_error(err, errlen, file, key, "a string", L, -1);
        rc = mw_config_set_string(cfg, key, lua_tostring(L, -1), msg, sizeof msg);
        break;
    case MW_CONF_STRLIST: {
        if (lua_type(L, -1) != LUA_TTABLE)
            return type_error(err, errlen, file, key, "an array of strings", L, -1);
        const char *items[MW_CONFIG_MAX_SUBPROTOCOLS];
        int n = (int)lua_objlen(L, -1);
        /* { cache = "10m" } is not { "cache:10m" }: say so, do not read it as {} */
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {
            lua_pop(L, 1);
            if (lua_type(L, -1) != LUA_TNUMBER) {
                lua_pop(L, 1);
                snprintf(err, errlen, "%s: %s: must be an array of strings (got named keys)", file,
                         key);
                return MW_ECONFIG;
            }
        }
        if (n > MW_CONFIG_MAX_SUBPROTOCOLS) {
            snprintf(err, errlen, "%s: %s: too many entries (at most %d)", file, key,
                     MW_CONFIG_MAX_SUBPROTOCOLS);
            return MW_ECONFIG;
        }
        for (int i = 0; i < n; i++) {
            lua_rawgeti(L, -1, i + 1);
            if (lua_type(L, -1) != LUA_TSTRING) {
                snprintf(err, errlen, "%s: %s[%d]: must be a string (got %s)", file, key, i + 1,
                         luaL_typename(L, -1));
                lua_pop(L, 1);
                return MW_ECONFIG;
            }
            items[i] = lua_tostring(L, -1); /* anchored by the table */
            lua_pop(L, 1);
        }
        rc = mw_config_set_strlist(cfg, key, items, n, msg, sizeof msg);
        break;
    }
    case MW_CONF_TABLE:
        if (lua_type(L, -1) != LUA_TTABLE)
            return type_error(err, errlen, file, key, "a table", L, -1);
        lua_pushvalue(L, -1);
        *app_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        break;
    }
    if (rc) {
        snprintf(err, errlen, "%s: %s", file, msg);
        return rc;
    }
    return 0;
}

/* is_group tells whether key names a group of options written as a table
 * in config.lua (rate_limit = { window_ms = ... } for rate_limit_window_ms). */
static int is_group(const char *key) {
    size_t n, klen = strlen(key);
    const mw_config_desc_t *d = mw_config_descs(&n);
    for (size_t i = 0; i < n; i++)
        if (strncmp(d[i].name, key, klen) == 0 && d[i].name[klen] == '_')
            return 1;
    return 0;
}

/* apply_group applies every field of a group table as "<group>_<field>";
 * an unknown field is named "<group>.<field>", a bad value by its full key
 * ("<group>_<field>: must be ..."). */
static int apply_group(lua_State *L, const char *file, const char *group, mw_config_t *cfg,
                       int *app_ref, char *err, size_t errlen) {
    int rc = 0;
    lua_pushnil(L);
    while (rc == 0 && lua_next(L, -2) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            snprintf(err, errlen, "%s: %s: keys must be strings (got %s)", file, group,
                     luaL_typename(L, -2));
            lua_pop(L, 2);
            return MW_ECONFIG;
        }
        char name[128];
        snprintf(name, sizeof name, "%s_%s", group, lua_tostring(L, -2));
        const mw_config_desc_t *d = mw_config_find(name);
        if (!d || d->type == MW_CONF_TABLE) {
            snprintf(err, errlen, "%s: %s.%s: unknown key", file, group, lua_tostring(L, -2));
            lua_pop(L, 2);
            return MW_ECONFIG;
        }
        rc = apply(L, file, name, cfg, app_ref, err, errlen);
        lua_pop(L, 1);
    }
    if (rc)
        lua_pop(L, 1); /* the key lua_next left */
    return rc;
}

int mw_lua_apply_config(lua_State *L, int idx, const char *source, mw_config_t *cfg, int *app_ref,
                        char *err, size_t errlen) {
    int top = lua_gettop(L);
    if (idx < 0)
        idx = top + idx + 1;
    int rc = 0;
    lua_pushnil(L);
    while (rc == 0 && lua_next(L, idx) != 0) {
        /* stack: ... key value */
        if (lua_type(L, -2) != LUA_TSTRING) {
            snprintf(err, errlen, "%s: keys must be strings (got %s)", source,
                     luaL_typename(L, -2));
            rc = MW_ECONFIG;
            break;
        }
        const char *key = lua_tostring(L, -2);
        if (!mw_config_find(key) && lua_type(L, -1) == LUA_TTABLE && is_group(key))
            rc = apply_group(L, source, key, cfg, app_ref, err, errlen);
        else
            rc = apply(L, source, key, cfg, app_ref, err, errlen);
        lua_pop(L, 1);
    }
    lua_settop(L, top);
    return rc;
}

int mw_lua_load_config(lua_State *L, const char *path, mw_config_t *cfg, int *app_ref, char *err,
                       size_t errlen) {
    *app_ref = LUA_NOREF;
    if (access(path, F_OK) != 0)
        return 0;
    int top = lua_gettop(L);
    if (luaL_loadfile(L, path) != 0 || lua_pcall(L, 0, 1, 0) != 0) {
        snprintf(err, errlen, "%s", lua_tostring(L, -1));
        lua_settop(L, top);
        return MW_ECONFIG;
    }
    /* stack: ... result */
    if (lua_type(L, -1) != LUA_TTABLE) {
        snprintf(err, errlen, "%s: must return a table (got %s)", path, luaL_typename(L, -1));
        lua_settop(L, top);
        return MW_ECONFIG;
    }
    int rc = mw_lua_apply_config(L, -1, path, cfg, app_ref, err, errlen);
    lua_settop(L, top);
    return rc;
}

void mw_lua_push_config(lua_State *L, const mw_config_t *cfg, int app_ref) {
    size_t n;
    const mw_config_desc_t *d = mw_config_descs(&n);
    lua_createtable(L, 0, (int)n);
    for (size_t i = 0; i < n; i++) {
        switch (d[i].type) {
        case MW_CONF_INT: lua_pushnumber(L, (lua_Number)mw_config_get_int(cfg, d[i].name)); break;
        case MW_CONF_BOOL: lua_pushboolean(L, mw_config_get_bool(cfg, d[i].name)); break;
        case MW_CONF_STRING: lua_pushstring(L, mw_config_get_string(cfg, d[i].name)); break;
        case MW_CONF_STRLIST: {
            int count;
            char *const *items = mw_config_get_strlist(cfg, d[i].name, &count);
            lua_createtable(L, count, 0);
            for (int j = 0; j < count; j++) {
                lua_pushstring(L, items[j]);
                lua_rawseti(L, -2, j + 1);
            }
            break;
        }
        case MW_CONF_TABLE:
            if (app_ref != LUA_NOREF)
                lua_rawgeti(L, LUA_REGISTRYINDEX, app_ref);
            else
                lua_newtable(L);
            break;
        }
        lua_setfield(L, -2, d[i].name);
    }
}
