/*
 * fuzz_protocol.c - libFuzzer target: the JSON envelope decoder
 * (lua/moonwire/protocol.lua's decode, with Debian's lua-cjson), run in an
 * embedded LuaJIT state.
 *
 * Why: every text message a client sends reaches protocol.decode first.
 * Its contract is to return a message, or nil, code, message[, id] — never
 * to raise: a raise is logged as an internal error with a traceback, and a
 * client able to trigger that at will floods the log. Any raise here is a
 * finding (abort). Beyond that, whatever decode accepts must be answerable:
 * the reply and the error envelope for it encode, carry the request's id
 * unchanged (it is how a client matches them), and (when the payload is
 * UTF-8, as a text frame's always is) encode to UTF-8 the server may send.
 *
 * The decoding and the checks are in fuzz_protocol.lua, next to this file.
 * Like busted, this harness embeds LuaJIT itself; the include boundary of
 * docs/architecture.md (only src/lua/ includes lua.h; lint_lua_boundary)
 * covers the server's sources under src/, not the specs. libFuzzer sees no
 * coverage inside LuaJIT or cjson (Debian's builds), so the Lua lines that
 * ran (a line hook) and the shape of what decode returned go to libFuzzer's
 * extra counters instead; the JIT is off so that the hook sees every line,
 * every time.
 */
#include "fuzz.h"
#include "lua/json_lua.h"
#include "utf8.h"

#include <lauxlib.h>
#include <lua.h>
#include <luajit.h>
#include <lualib.h>
#include <string.h>

/* Extra coverage, read by libFuzzer after each input (and cleared): the
 * first half for shapes of decoded values (fuzz_protocol.lua's feature),
 * the second for the Lua lines that ran. */
__attribute__((section("__libfuzzer_extra_counters"))) static uint8_t extra[1024];

static void bump(size_t i) {
    if (extra[i] != 255)
        extra[i]++;
}

static void on_line(lua_State *L, lua_Debug *ar) {
    (void)L;
    bump(512 + (size_t)ar->currentline % 512);
}

static int feature(lua_State *L) {
    bump((size_t)luaL_checkinteger(L, 1) % 512);
    return 0;
}

static lua_State *L;

/* lua_close frees what cjson's configs hold (through __gc): without it
 * LeakSanitizer reports them when the fuzzer exits. */
static void teardown(void) {
    lua_close(L);
}

static void setup(void) {
    L = luaL_newstate();
    FUZZ_CHECK(L != NULL);
    luaL_openlibs(L);
    FUZZ_CHECK(luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF));
    lua_getglobal(L, "package");
    lua_pushstring(L, MW_FUZZ_LUA_DIR "/?.lua;" MW_FUZZ_LUA_DIR "/?/init.lua");
    lua_setfield(L, -2, "path");
    /* moonwire.core with what the protocol needs: json_level */
    lua_getfield(L, -1, "loaded");
    lua_newtable(L);
    mw_lua_inject_json_api(L);
    lua_setfield(L, -2, "moonwire.core");
    lua_pop(L, 2);
    int rc = luaL_loadfile(L, MW_FUZZ_DIR "/fuzz_protocol.lua");
    if (rc == 0) {
        lua_pushcfunction(L, feature);
        /* stack: chunk feature */
        rc = lua_pcall(L, 1, 1, 0);
    }
    if (rc != 0) {
        fprintf(stderr, "fuzz_protocol: %s\n", lua_tostring(L, -1));
        abort();
    }
    /* stack: check */
    lua_sethook(L, on_line, LUA_MASKLINE, 0);
    atexit(teardown);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
    if (!L)
        setup();
    lua_pushvalue(L, 1);
    lua_pushlstring(L, (const char *)data, len);
    /* stack: check fn payload */
    if (lua_pcall(L, 1, 2, 0) != 0) {
        fprintf(stderr, "fuzz_protocol: raised: %s\n", lua_tostring(L, -1));
        abort();
    }
    /* stack: check answer1 answer2 */
    if (mw_utf8_valid(data, len)) {
        for (int i = 2; i <= 3; i++) {
            size_t n;
            const char *s = lua_tolstring(L, i, &n);
            FUZZ_CHECK(!s || mw_utf8_valid((const uint8_t *)s, n));
        }
    }
    lua_settop(L, 1);
    return 0;
}
