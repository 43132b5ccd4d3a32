/*
 * config_lua.h - reading an app's config.lua into mw_config_t.
 */
#ifndef MW_CONFIG_LUA_H
#define MW_CONFIG_LUA_H

#include <lua.h>
#include <stddef.h>

#include "../config.h"

/* mw_lua_load_config runs path (a chunk returning a table) and applies each
 * key through the config setters. The `app` table, if any, is left
 * referenced in the registry and its ref stored in *app_ref (LUA_NOREF when
 * absent). A missing file is not an error: the defaults stand.
 * Returns 0 or MW_ECONFIG with err ("config.lua: port: must be ..."). */
int mw_lua_load_config(lua_State *L, const char *path, mw_config_t *cfg, int *app_ref, char *err,
                       size_t errlen);

#endif
