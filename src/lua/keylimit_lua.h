/*
 * keylimit_lua.h - moonwire.core.keylimit: rate limits per key
 * (src/keylimit.h) as Lua objects (keylimit_lua.c).
 */
#ifndef MW_KEYLIMIT_LUA_H
#define MW_KEYLIMIT_LUA_H

#include <lua.h>

#include "api.h"

/* Sets core.keylimit in the table at the top of the stack (moonwire.core);
 * its limiters read the clock of the server ctx acts on. */
void mw_lua_inject_keylimit_api(lua_State *L, mw_lua_core_t *ctx);

#endif
