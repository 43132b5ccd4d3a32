/*
 * paths.h - where the runtime's Lua files are.
 */
#ifndef MW_PATHS_H
#define MW_PATHS_H

#include <stddef.h>

/* mw_paths_lua_dir finds the folder holding moonwire/runtime.lua:
 * $MOONWIRE_LUA_DIR, then <exe>/../share/moonwire/lua (installed), then the
 * source tree this binary was built from, then the install prefix.
 * Returns 0 or MW_ENOTFOUND (out then holds the last place tried). */
int mw_paths_lua_dir(char *out, size_t outlen);

/* mw_paths_lua_cdir finds the folder holding the compiled Lua modules
 * (moonwire/core/jwt.so), which `moonwire test` puts on LUA_CPATH because
 * specs run under plain LuaJIT: $MOONWIRE_LUA_CDIR, then <exe>/lua (the
 * build tree), then <exe>/../<libdir>/moonwire/lua (installed), then the
 * install prefix. Returns 0 or MW_ENOTFOUND. */
int mw_paths_lua_cdir(char *out, size_t outlen);

#endif
