/*
 * shdict_lua.h - moonwire.core.shdict: shared dicts (src/shdict.h) as Lua
 * objects (shdict_lua.c), what lua/moonwire/shared.lua hands to apps.
 */
#ifndef MW_SHDICT_LUA_H
#define MW_SHDICT_LUA_H

#include <stdio.h>

#include <lua.h>

#include "api.h"

/* Sets core.shdict in the table at the top of the stack (moonwire.core):
 * core.shdict(name) -> dict | nil, "no such dict", over the dicts of ctx
 * (mw_lua_core_set_shdicts), on the clock of its server. */
void mw_lua_inject_shdict_api(lua_State *L, mw_lua_core_t *ctx);

/* mw_lua_shdict_metrics writes moonwire_shdict_* for every dict of ctx:
 * bytes, free bytes, keys, evictions and lock recoveries, by dict. */
void mw_lua_shdict_metrics(mw_lua_core_t *ctx, FILE *out);

#endif
