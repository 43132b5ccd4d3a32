/*
 * fuzz_envelope.c - libFuzzer target: the JSON envelope scanner
 * (src/envelope.c), checked against lua-cjson in an embedded LuaJIT.
 *
 * Why: the scanner reads every byte a client sends before anything else,
 * and the runtime trusts its spans to forward data unchanged and to read
 * type and action without cjson. So beyond "never crash, never read past
 * the input": every span is a slice of the input that scans again as one
 * JSON value, and what the scanner says agrees with cjson (configured as
 * lua/moonwire/protocol.lua does; fuzz_envelope.lua): when cjson accepts
 * an object the scanner accepts it too, each span decodes (with cjson) to
 * cjson's value of that key, and mw_envelope_string gives cjson's string;
 * when cjson rejects the text, so does the scanner. The only inputs cjson
 * accepts and the scanner may refuse are the documented ones (envelope.h),
 * checked here at the position the scanner reports.
 *
 * Like fuzz_protocol.c, this harness embeds LuaJIT itself (the lua.h
 * boundary of docs/architecture.md covers src/, not the specs).
 */
#include "envelope.h"
#include "errors.h"
#include "fuzz.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <sanitizer/lsan_interface.h>
#include <string.h>

static lua_State *L;

static void teardown(void) {
    lua_close(L);
}

static void setup(void) {
    L = luaL_newstate();
    FUZZ_CHECK(L != NULL);
    luaL_openlibs(L);
    if (luaL_loadfile(L, MW_FUZZ_DIR "/fuzz_envelope.lua") || lua_pcall(L, 0, 1, 0)) {
        fprintf(stderr, "fuzz_envelope: %s\n", lua_tostring(L, -1));
        abort();
    }
    /* stack: check */
    atexit(teardown);
}

/* Whether a text cjson accepts may be refused, given where and why the
 * scanner stopped: a raw control character in a string, a number strtod
 * takes but RFC 8259 does not ("1.", "-.5"), or a NUL byte (cjson reads
 * no further). */
static int documented_difference(const uint8_t *data, size_t len, const mw_envelope_t *env) {
    size_t at = env->err_pos;
    if (at < len && data[at] == 0)
        return 1;
    if (at < len && data[at] < 0x20 && strstr(env->err_what, "control character"))
        return 1;
    /* "1." ends the number at a non-digit or at the end of the input */
    if ((strstr(env->err_what, "digit expected") || strstr(env->err_what, "end of input")) &&
        ((at < len && data[at] == '.') || (at > 0 && data[at - 1] == '.')))
        return 1;
    return 0;
}

/* The checks that need no cjson. */
static void check_spans(const uint8_t *data, size_t len, int rc, const mw_envelope_t *env) {
    FUZZ_CHECK(rc == 0 || rc == MW_EJSON || rc == MW_ENOTOBJ);
    if (rc != 0) {
        FUZZ_CHECK(env->err_what != NULL && env->err_pos <= len);
        for (int f = 0; f < MW_ENVELOPE_NFIELDS; f++)
            FUZZ_CHECK(env->field[f].kind == MW_JSON_NONE && env->field[f].len == 0);
        return;
    }
    FUZZ_CHECK(env->err_what == NULL);
    for (int f = 0; f < MW_ENVELOPE_NFIELDS; f++) {
        const mw_envelope_span_t *s = &env->field[f];
        if (s->kind == MW_JSON_NONE) {
            FUZZ_CHECK(s->len == 0);
            continue;
        }
        FUZZ_CHECK(s->len > 0 && s->off < len && s->len <= len - s->off);
        const char *v = (const char *)data + s->off;
        /* the span alone is one JSON value of the same kind, nothing more */
        mw_envelope_t again;
        int rc2 = mw_envelope_scan(v, s->len, &again);
        FUZZ_CHECK(rc2 == (s->kind == MW_JSON_OBJECT ? 0 : MW_ENOTOBJ));
        FUZZ_CHECK(rc2 != MW_ENOTOBJ || again.err_pos == 0);
        switch (s->kind) {
        case MW_JSON_STRING: FUZZ_CHECK(v[0] == '"'); break;
        case MW_JSON_NUMBER: FUZZ_CHECK(v[0] == '-' || (v[0] >= '0' && v[0] <= '9')); break;
        case MW_JSON_OBJECT: FUZZ_CHECK(v[0] == '{' && v[s->len - 1] == '}'); break;
        case MW_JSON_ARRAY: FUZZ_CHECK(v[0] == '[' && v[s->len - 1] == ']'); break;
        case MW_JSON_TRUE: FUZZ_CHECK(s->len == 4 && !memcmp(v, "true", 4)); break;
        case MW_JSON_FALSE: FUZZ_CHECK(s->len == 5 && !memcmp(v, "false", 5)); break;
        case MW_JSON_NULL: FUZZ_CHECK(s->len == 4 && !memcmp(v, "null", 4)); break;
        default: FUZZ_CHECK(!"a kind");
        }
        FUZZ_CHECK(s->escaped == (s->kind == MW_JSON_STRING && memchr(v, '\\', s->len) != NULL));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
    mw_envelope_t env;
    int rc = mw_envelope_scan((const char *)data, len, &env);
    check_spans(data, len, rc, &env);

    /* What LuaJIT and cjson allocate from here on is not checked for
     * leaks: LeakSanitizer cannot see pointers held in LuaJIT's heap (its
     * own mmap'd arena, tagged pointers under GC64), so cjson's buffers
     * looked leaked whenever libFuzzer checked mid-run. The scanner and
     * the checks above stay under LeakSanitizer, and lua_close at exit
     * frees the rest. */
    __lsan_disable();
    if (!L)
        setup();

    lua_pushvalue(L, 1);
    lua_pushlstring(L, (const char *)data, len);
    lua_pushinteger(L, rc == 0 ? 0 : rc == MW_ENOTOBJ ? 1 : 2);
    lua_createtable(L, MW_ENVELOPE_NFIELDS, 0);
    /* stack: check check payload status fields */
    for (int f = 0; f < MW_ENVELOPE_NFIELDS; f++) {
        const mw_envelope_span_t *s = &env.field[f];
        lua_createtable(L, 0, 4);
        lua_pushstring(L, mw_envelope_field_name(f));
        lua_setfield(L, -2, "name");
        lua_pushlstring(L, (const char *)data + s->off, s->len);
        lua_setfield(L, -2, "raw");
        lua_pushinteger(L, s->kind);
        lua_setfield(L, -2, "kind");
        if (s->kind == MW_JSON_STRING) {
            char *buf = malloc(s->len);
            size_t n = 0;
            FUZZ_CHECK(buf && mw_envelope_string((const char *)data, s, buf, s->len, &n) == 0);
            FUZZ_CHECK(n + 2 <= s->len && (s->escaped || n + 2 == s->len));
            lua_pushlstring(L, buf, n);
            lua_setfield(L, -2, "str");
            free(buf);
        }
        lua_rawseti(L, -2, f + 1);
    }
    /* stack: check check payload status fields */
    if (lua_pcall(L, 3, 1, 0) != 0) {
        fprintf(stderr, "fuzz_envelope: %s\n", lua_tostring(L, -1));
        abort();
    }
    /* stack: check cjson_accepted_refused */
    if (lua_toboolean(L, -1) && !documented_difference(data, len, &env)) {
        fprintf(stderr, "fuzz_envelope: cjson accepts, the scanner refuses: %s at %zu\n",
                env.err_what, env.err_pos);
        abort();
    }
    lua_settop(L, 1);
    __lsan_enable();
    return 0;
}
