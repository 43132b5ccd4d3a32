/*
 * api.h - the moonwire.core primitives (the only C functions Lua can call)
 * and the registry slot through which they reach the server.
 */
#ifndef MW_LUA_API_H
#define MW_LUA_API_H

#include <lua.h>

#include "../server.h"
#include "../watchdog.h"

/* mw_lua_inject_core_api builds the moonwire.core table and registers it in
 * package.loaded. */
void mw_lua_inject_core_api(lua_State *L);

/* mw_lua_set_server records the server the primitives act on (NULL while
 * checking an app or scaffolding). */
void mw_lua_set_server(lua_State *L, mw_server_t *s);

/* mw_lua_set_watchdog gives core.label and core.running the watchdog they
 * report to (NULL: none, script_timeout = 0). Call it before the runtime
 * registers its routes. */
void mw_lua_set_watchdog(lua_State *L, mw_watchdog_t *w);

#endif
