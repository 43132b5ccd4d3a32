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

/* mw_lua_apply_config applies each key of the table at idx, as
 * mw_lua_load_config does for the table config.lua returns (app specs use
 * it for their overrides); errors start with source. An `app` key replaces
 * *app_ref (the old reference is left to the caller). Returns 0 or
 * MW_ECONFIG. */
int mw_lua_apply_config(lua_State *L, int idx, const char *source, mw_config_t *cfg, int *app_ref,
                        char *err, size_t errlen);

/* mw_lua_push_config pushes the resolved configuration as the table
 * runtime.init receives: every option of the descriptor table by name,
 * and `app` (the table referenced by app_ref, or an empty one). Built from
 * the descriptors, so a new option reaches Lua without code here. */
void mw_lua_push_config(lua_State *L, const mw_config_t *cfg, int app_ref);

#endif
