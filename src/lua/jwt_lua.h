/*
 * jwt_lua.h - the JWT primitives of moonwire.core (src/jwt.c for Lua).
 */
#ifndef MW_LUA_JWT_LUA_H
#define MW_LUA_JWT_LUA_H

#include <lua.h>

/* mw_lua_inject_jwt_api adds jwt_key, jwt_key_type, jwt_decode, jwt_verify,
 * jwt_sign and jwt_max_token to the table on top of the stack (the
 * moonwire.core table being built by mw_lua_inject_core_api). */
void mw_lua_inject_jwt_api(lua_State *L);

/* luaopen_moonwire_core_jwt is the entry point of the same primitives built
 * as a Lua C module (moonwire/core/jwt.so), so lua/moonwire/jwt.lua also
 * works under plain busted + LuaJIT, where no server provides
 * moonwire.core. Returns one table. */
int luaopen_moonwire_core_jwt(lua_State *L);

#endif
