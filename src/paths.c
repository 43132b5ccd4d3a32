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

/* holds says whether probe (a path relative to dir) is readable there. */
static int holds(const char *dir, const char *probe) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, probe);
    return access(path, R_OK) == 0;
}

/* search is the one folder search behind both public functions: the
 * environment variable env when set (it alone decides), else the first of
 * candidates (NULL-terminated) that holds probe. A relative candidate is
 * taken from the folder of this binary, an absolute one as it is. Returns
 * 0 or MW_ENOTFOUND; out holds the last place tried. */
static int search(char *out, size_t outlen, const char *env, const char *probe,
                  const char *const *candidates) {
    const char *e = getenv(env);
    if (e && *e) {
        snprintf(out, outlen, "%s", e);
        return holds(out, probe) ? 0 : MW_ENOTFOUND;
    }
    char exe[4096];
    size_t size = sizeof exe;
    char *slash = NULL;
    if (uv_exepath(exe, &size) == 0 && (slash = strrchr(exe, '/')) != NULL)
        *slash = '\0';
    for (; *candidates; candidates++) {
        if (**candidates == '/')
            snprintf(out, outlen, "%s", *candidates);
        else if (slash)
            snprintf(out, outlen, "%s/%s", exe, *candidates);
        else
            continue; /* the binary's folder is unknown */
        if (holds(out, probe))
            return 0;
    }
    return MW_ENOTFOUND;
}

int mw_paths_lua_dir(char *out, size_t outlen) {
    static const char *const candidates[] = {
        "../share/moonwire/lua", /* installed beside the binary */
#ifdef MW_SOURCE_LUA_DIR
        MW_SOURCE_LUA_DIR,
#endif
#ifdef MW_INSTALL_LUA_DIR
        MW_INSTALL_LUA_DIR,
#endif
        NULL,
    };
    return search(out, outlen, "MOONWIRE_LUA_DIR", "moonwire/runtime.lua", candidates);
}

/* The build tree is tried before the install locations: a binary run from
 * build/ must test against the modules built with it. */
int mw_paths_lua_cdir(char *out, size_t outlen) {
    static const char *const candidates[] = {
        "lua", /* the build tree */
#ifdef MW_LUA_CDIR_FROM_BIN
        MW_LUA_CDIR_FROM_BIN,
#endif
#ifdef MW_INSTALL_LUA_CDIR
        MW_INSTALL_LUA_CDIR,
#endif
        NULL,
    };
    return search(out, outlen, "MOONWIRE_LUA_CDIR", "moonwire/core/jwt.so", candidates);
}
