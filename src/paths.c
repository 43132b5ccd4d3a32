/*
 * paths.c - locating the runtime Lua files and compiled Lua modules, so the
 * same binary works from the build tree and after `make install`.
 */
#include "paths.h"
#include "errors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

static int has_runtime(const char *dir) {
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/moonwire/runtime.lua", dir);
    return access(probe, R_OK) == 0;
}

int mw_paths_lua_dir(char *out, size_t outlen) {
    const char *env = getenv("MOONWIRE_LUA_DIR");
    if (env && *env) {
        snprintf(out, outlen, "%s", env);
        return has_runtime(out) ? 0 : MW_ENOTFOUND;
    }
    char exe[4096];
    size_t size = sizeof exe;
    if (uv_exepath(exe, &size) == 0) {
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(out, outlen, "%s/../share/moonwire/lua", exe);
            if (has_runtime(out))
                return 0;
        }
    }
#ifdef MW_SOURCE_LUA_DIR
    snprintf(out, outlen, "%s", MW_SOURCE_LUA_DIR);
    if (has_runtime(out))
        return 0;
#endif
#ifdef MW_INSTALL_LUA_DIR
    snprintf(out, outlen, "%s", MW_INSTALL_LUA_DIR);
    if (has_runtime(out))
        return 0;
#endif
    return MW_ENOTFOUND;
}

static int has_cmodule(const char *dir) {
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/moonwire/core/jwt.so", dir);
    return access(probe, R_OK) == 0;
}

/* The build tree is tried before the install locations: a binary run from
 * build/ must test against the modules built with it. */
int mw_paths_lua_cdir(char *out, size_t outlen) {
    const char *env = getenv("MOONWIRE_LUA_CDIR");
    if (env && *env) {
        snprintf(out, outlen, "%s", env);
        return has_cmodule(out) ? 0 : MW_ENOTFOUND;
    }
    char exe[4096];
    size_t size = sizeof exe;
    if (uv_exepath(exe, &size) == 0) {
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(out, outlen, "%s/lua", exe);
            if (has_cmodule(out))
                return 0;
#ifdef MW_LUA_CDIR_FROM_BIN
            snprintf(out, outlen, "%s/%s", exe, MW_LUA_CDIR_FROM_BIN);
            if (has_cmodule(out))
                return 0;
#endif
        }
    }
#ifdef MW_INSTALL_LUA_CDIR
    snprintf(out, outlen, "%s", MW_INSTALL_LUA_CDIR);
    if (has_cmodule(out))
        return 0;
#endif
    return MW_ENOTFOUND;
}
