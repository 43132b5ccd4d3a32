/*
 * fuzz_envelope.c - libFuzzer target: the one-pass JSON scanner and its
 * member visitor (src/envelope.c), checked against lua-cjson in an
 * embedded LuaJIT.
 *
 * Why: the scanner reads every byte a client sends before anything else,
 * and the runtime trusts the spans it visits to decode one level of a
 * value at a time and to forward the rest unchanged (src/lua/json_lua.c).
 * So beyond "never crash, never read past the input": every member's key
 * and value spans are slices of the input, in order, that scan again as
 * one JSON value of the reported kind; a visit that returns nonzero stops
 * the scan after exactly the members visited before; and what the scanner
 * says agrees with cjson (configured as lua/moonwire/protocol.lua does;
 * fuzz_envelope.lua): when both accept a text, the members visited,
 * decoded by cjson one by one, make up cjson's decode of the whole text's
 * top level (an object's keys with the last duplicate winning, an array's
 * elements in order, a scalar with no member at all), and
 * mw_envelope_string gives cjson's string for every key and string value;
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

/* The members one scan visited, copied (an input of n bytes has fewer
 * than n members). */
typedef struct {
    mw_json_member_t *m;
    size_t n, cap;
    size_t stop_at; /* return 42 from the visit of member stop_at (1-based); 0: never */
} members_t;

static int collect(void *data, const mw_json_member_t *member) {
    members_t *ms = data;
    if (ms->n == ms->cap) {
        ms->cap = ms->cap ? 2 * ms->cap : 16;
        ms->m = realloc(ms->m, ms->cap * sizeof *ms->m);
        FUZZ_CHECK(ms->m != NULL);
    }
    ms->m[ms->n++] = *member;
    return ms->n == ms->stop_at ? 42 : 0;
}

static int same_span(const mw_envelope_span_t *a, const mw_envelope_span_t *b) {
    return a->off == b->off && a->len == b->len && a->kind == b->kind && a->escaped == b->escaped;
}

/* Whether a text cjson accepts may be refused, given where and why the
 * scanner stopped: a raw control character in a string, a number strtod
 * takes but RFC 8259 does not ("1.", "-.5"), or a NUL byte (cjson reads
 * no further). */
static int documented_difference(const uint8_t *data, size_t len, const mw_json_error_t *err) {
    size_t at = err->pos;
    if (at < len && data[at] == 0)
        return 1;
    if (at < len && data[at] < 0x20 && strstr(err->what, "control character"))
        return 1;
    /* "1." ends the number at a non-digit or at the end of the input */
    if ((strstr(err->what, "digit expected") || strstr(err->what, "end of input")) &&
        ((at < len && data[at] == '.') || (at > 0 && data[at - 1] == '.')))
        return 1;
    return 0;
}

/* A span of a member: inside the input, one JSON value of its kind that
 * scans again alone (visiting nothing for a scalar), with `escaped` true
 * exactly for a string with a backslash. */
static void check_span(const uint8_t *data, size_t len, const mw_envelope_span_t *s) {
    FUZZ_CHECK(s->kind != MW_JSON_NONE);
    FUZZ_CHECK(s->len > 0 && s->off < len && s->len <= len - s->off);
    const char *v = (const char *)data + s->off;
    mw_json_kind_t again = MW_JSON_NONE;
    mw_json_error_t err;
    FUZZ_CHECK(mw_envelope_members(v, s->len, NULL, NULL, &again, &err) == 0);
    FUZZ_CHECK(again == s->kind && err.what == NULL);
    switch (s->kind) {
    case MW_JSON_STRING: FUZZ_CHECK(v[0] == '"' && v[s->len - 1] == '"'); break;
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

/* Pushes the decoded string at a string span (mw_envelope_string), after
 * checking its length against the span's. */
static void push_string(const uint8_t *data, const mw_envelope_span_t *s) {
    char *buf = malloc(s->len);
    size_t n = 0;
    FUZZ_CHECK(buf && mw_envelope_string((const char *)data, s, buf, s->len, &n) == 0);
    FUZZ_CHECK(n + 2 <= s->len && (s->escaped || n + 2 == s->len));
    lua_pushlstring(L, buf, n);
    free(buf);
}

/* The checks that need no cjson: the members of a scan that succeeded. */
static void check_members(const uint8_t *data, size_t len, mw_json_kind_t top,
                          const members_t *ms) {
    size_t end = 0; /* where the previous member ended */
    if (top != MW_JSON_OBJECT && top != MW_JSON_ARRAY)
        FUZZ_CHECK(ms->n == 0);
    for (size_t i = 0; i < ms->n; i++) {
        const mw_json_member_t *m = &ms->m[i];
        if (top == MW_JSON_OBJECT) {
            FUZZ_CHECK(m->key.kind == MW_JSON_STRING);
            check_span(data, len, &m->key);
            FUZZ_CHECK(m->key.off > end);
            end = m->key.off + m->key.len;
        } else {
            FUZZ_CHECK(m->key.kind == MW_JSON_NONE && m->key.len == 0);
        }
        check_span(data, len, &m->value);
        FUZZ_CHECK(m->value.off > end);
        end = m->value.off + m->value.len;
    }
    FUZZ_CHECK(end < len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
    members_t ms = {0};
    mw_json_kind_t top = MW_JSON_NONE;
    mw_json_error_t err = {len + 1, "stale"};
    int rc = mw_envelope_members((const char *)data, len, collect, &ms, &top, &err);
    FUZZ_CHECK(rc == 0 || rc == MW_EJSON);
    if (rc == 0) {
        FUZZ_CHECK(err.what == NULL && err.pos == 0 && top != MW_JSON_NONE);
        check_members(data, len, top, &ms);
    } else {
        FUZZ_CHECK(err.what != NULL && err.pos <= len);
        /* err NULL gives the same result and visits */
        members_t again = {0};
        FUZZ_CHECK(mw_envelope_members((const char *)data, len, collect, &again, NULL, NULL) ==
                   MW_EJSON);
        FUZZ_CHECK(again.n == ms.n);
        free(again.m);
    }
    /* A visit that returns nonzero stops the scan: it is returned, *top is
     * left alone, and the members before were the same. */
    if (ms.n > 0) {
        members_t part = {.stop_at = 1 + (len * 31 + data[0]) % ms.n};
        mw_json_kind_t t = MW_JSON_NONE;
        FUZZ_CHECK(mw_envelope_members((const char *)data, len, collect, &part, &t, NULL) == 42);
        FUZZ_CHECK(part.n == part.stop_at && t == MW_JSON_NONE);
        for (size_t i = 0; i < part.n; i++)
            FUZZ_CHECK(same_span(&part.m[i].key, &ms.m[i].key) &&
                       same_span(&part.m[i].value, &ms.m[i].value));
        free(part.m);
    }

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
    lua_pushboolean(L, rc == 0);
    lua_pushinteger(L, rc == 0 ? top : MW_JSON_NONE);
    lua_createtable(L, rc == 0 ? (int)ms.n : 0, 0);
    /* stack: check check payload accepted top members */
    for (size_t i = 0; rc == 0 && i < ms.n; i++) {
        const mw_json_member_t *m = &ms.m[i];
        lua_createtable(L, 0, 5);
        if (m->key.kind == MW_JSON_STRING) {
            lua_pushlstring(L, (const char *)data + m->key.off, m->key.len);
            lua_setfield(L, -2, "kraw");
            push_string(data, &m->key);
            lua_setfield(L, -2, "key");
        }
        lua_pushlstring(L, (const char *)data + m->value.off, m->value.len);
        lua_setfield(L, -2, "raw");
        lua_pushinteger(L, m->value.kind);
        lua_setfield(L, -2, "kind");
        if (m->value.kind == MW_JSON_STRING) {
            push_string(data, &m->value);
            lua_setfield(L, -2, "str");
        }
        lua_rawseti(L, -2, (int)i + 1);
    }
    free(ms.m);
    /* stack: check check payload accepted top members */
    if (lua_pcall(L, 4, 1, 0) != 0) {
        fprintf(stderr, "fuzz_envelope: %s\n", lua_tostring(L, -1));
        abort();
    }
    /* stack: check cjson_accepted_refused */
    if (lua_toboolean(L, -1) && !documented_difference(data, len, &err)) {
        fprintf(stderr, "fuzz_envelope: cjson accepts, the scanner refuses: %s at %zu\n", err.what,
                err.pos);
        abort();
    }
    lua_settop(L, 1);
    __lsan_enable();
    return 0;
}
