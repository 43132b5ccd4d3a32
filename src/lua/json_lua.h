/*
 * json_lua.h - moonwire.core.json_level (json_lua.c says why and how).
 */
#ifndef MW_JSON_LUA_H
#define MW_JSON_LUA_H

#include <lua.h>

/* Sets json_level in the table at the top of the stack (moonwire.core). */
void mw_lua_inject_json_api(lua_State *L);

#endif
