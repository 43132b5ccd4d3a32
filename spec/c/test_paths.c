/*
 * test_paths.c - finding the runtime's Lua files and compiled Lua modules
 * (src/paths.c).
 *
 * The environment variable decides alone when set, found or not; without
 * it, a binary in the build tree finds the source tree's lua/ and the build
 * tree's compiled modules (<exe>/lua). The installed layout is covered by
 * the integration_install test.
 */
#include "paths.h"
#include "errors.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

static char tmp[256];

/* make_file creates tmp/<rel>, with its folders. */
static int make_file(const char *rel) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmp, rel);
    for (char *p = path + strlen(tmp) + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0700);
            *p = '/';
        }
    }
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fclose(f);
    return 0;
}

static void test_env_decides_alone(void) {
    char out[4096];
    char dir[300];
    snprintf(dir, sizeof dir, "%s/lua", tmp);
    setenv("MOONWIRE_LUA_DIR", dir, 1);
    CHECK_EQ(mw_paths_lua_dir(out, sizeof out), MW_ENOTFOUND); /* no fallback */
    CHECK(strcmp(out, dir) == 0);
    REQUIRE(make_file("lua/moonwire/runtime.lua") == 0);
    CHECK_EQ(mw_paths_lua_dir(out, sizeof out), 0);
    CHECK(strcmp(out, dir) == 0);
    unsetenv("MOONWIRE_LUA_DIR");

    snprintf(dir, sizeof dir, "%s/clua", tmp);
    setenv("MOONWIRE_LUA_CDIR", dir, 1);
    CHECK_EQ(mw_paths_lua_cdir(out, sizeof out), MW_ENOTFOUND);
    CHECK(strcmp(out, dir) == 0);
    REQUIRE(make_file("clua/moonwire/core/jwt.so") == 0);
    CHECK_EQ(mw_paths_lua_cdir(out, sizeof out), 0);
    CHECK(strcmp(out, dir) == 0);
    unsetenv("MOONWIRE_LUA_CDIR");
}

/* An empty variable counts as unset. */
static void test_build_tree(void) {
    char out[4096], want[4200], exe[4096];
    setenv("MOONWIRE_LUA_DIR", "", 1);
    CHECK_EQ(mw_paths_lua_dir(out, sizeof out), 0);
    CHECK(strcmp(out, MW_SOURCE_LUA_DIR) == 0);
    unsetenv("MOONWIRE_LUA_DIR");

    size_t size = sizeof exe;
    REQUIRE(uv_exepath(exe, &size) == 0);
    *strrchr(exe, '/') = '\0';
    snprintf(want, sizeof want, "%s/lua", exe); /* the test sits beside the server */
    CHECK_EQ(mw_paths_lua_cdir(out, sizeof out), 0);
    CHECK(strcmp(out, want) == 0);
}

int main(void) {
    snprintf(tmp, sizeof tmp, "/tmp/mw-test-paths-XXXXXX");
    if (!mkdtemp(tmp))
        return 1;
    unsetenv("MOONWIRE_LUA_DIR");
    unsetenv("MOONWIRE_LUA_CDIR");
    RUN(test_env_decides_alone);
    RUN(test_build_tree);
    static const char *made[] = {
        "lua/moonwire/runtime.lua", "lua/moonwire",  "lua",  "clua/moonwire/core/jwt.so",
        "clua/moonwire/core",       "clua/moonwire", "clua", ""};
    for (size_t i = 0; i < sizeof made / sizeof made[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", tmp, made[i]);
        remove(path); /* files, then the folders, emptied */
    }
    return test_summary();
}
