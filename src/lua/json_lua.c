/*
 * json_lua.c - moonwire.core.json_level: one level of a JSON text as Lua
 * values, the rest kept as the client's bytes (lua/moonwire/json.lua).
 *
 * Payloads pass through the server unchanged (issue 9): what Lua does not
 * read is never decoded, and what it forwards unchanged is spliced back as
 * the original text. So a JSON text is decoded one level at a time: the
 * members of an object (or the elements of an array) become Lua values,
 * except that a member which is itself an object of more than
 * EAGER_OBJECT_MAX bytes becomes an empty "lazy" table carrying the given
 * metatable, whose text is recorded in a weak table (raw_of[t] = text);
 * json.lua decodes it when Lua first reads it. Arrays (so `#` works on
 * them; Lua 5.1 tables have no __len) and small objects are decoded at
 * once and recorded in raw_of too, their own large objects again lazy, as
 * long as the call's budget lasts (EAGER_BUDGET_FACTOR: what deep nesting
 * would otherwise cost); past it they are lazy as well.
 *
 * Values are those lua-cjson gives (protocol.lua's settings): strings
 * decoded by mw_envelope_string (cjson's rules, checked by fuzz_envelope),
 * numbers by strtod (cjson's fpconv_strtod is strtod in the C locale:
 * 1e400 is inf, -0 is -0), null as cjson.null (a NULL light userdata).
 * Validation is src/envelope.c's, over the whole text, before anything is
 * returned.
 */
#include "json_lua.h"
#include "../envelope.h"
#include "../errors.h"

#include <lauxlib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* What one level's visitor needs: where the text is, and the stack slots
 * of the metatable, the raw_of table and the table being filled. */
typedef struct {
    lua_State *L;
    const char *json;
    int lazy_mt, raw_of, table;
    lua_Integer n;  /* elements so far, for an array */
    size_t *budget; /* bytes of nested containers this call may still decode at once */
    const char *want;
    size_t want_len;
    mw_envelope_span_t want_raw; /* the raw text of the member `want` */
} level_t;

static int fill(lua_State *L, const char *json, size_t len, int lazy_mt, int raw_of, int table,
                size_t *budget, mw_json_kind_t *top, mw_json_error_t *err, level_t *out);

/* Pushes the decoded string of span; returns 0 or an mw_err. */
static int push_string(lua_State *L, const char *json, const mw_envelope_span_t *span) {
    if (!span->escaped) {
        lua_pushlstring(L, json + span->off + 1, span->len - 2);
        return 0;
    }
    char stack[256];
    char *buf = span->len <= sizeof stack ? stack : malloc(span->len);
    if (!buf)
        return MW_ENOMEM;
    size_t n = 0;
    int rc = mw_envelope_string(json, span, buf, span->len, &n);
    if (rc == 0)
        lua_pushlstring(L, buf, n);
    if (buf != stack)
        free(buf);
    return rc;
}

static int push_number(lua_State *L, const char *json, const mw_envelope_span_t *span) {
    char stack[64];
    char *buf = span->len < sizeof stack ? stack : malloc(span->len + 1);
    if (!buf)
        return MW_ENOMEM;
    memcpy(buf, json + span->off, span->len);
    buf[span->len] = '\0';
    lua_pushnumber(L, strtod(buf, NULL));
    if (buf != stack)
        free(buf);
    return 0;
}

/* Records raw_of[t] = the span's text for the table at the top. */
static void record_raw(lua_State *L, const char *json, const mw_envelope_span_t *span, int raw_of) {
    lua_pushvalue(L, -1);
    lua_pushlstring(L, json + span->off, span->len);
    lua_rawset(L, raw_of);
}

/* Objects up to this size are decoded at once, like arrays: reading a
 * small object costs less decoded with its parent than as a lazy table
 * decoded on first use (a second call, scan and metamethod); forwarded
 * unchanged, it is still written as its text (json.lua compares it). */
#define EAGER_OBJECT_MAX 256

/* Decoding a container at once scans and copies its text once more, so
 * arrays of large arrays nested deep would cost depth x size (a 1 MiB
 * message of 62 nested arrays: 205 ms and 62 MiB of copies, against 27 ms
 * for lua-cjson). One call decodes at once at most this many times the
 * text's length; containers past that are left lazy like large objects. */
#define EAGER_BUDGET_FACTOR 8

/* Pushes an empty lazy table for span, its text recorded. */
static void push_lazy(level_t *lv, const mw_envelope_span_t *span) {
    lua_State *L = lv->L;
    lua_createtable(L, 0, 0);
    lua_pushvalue(L, lv->lazy_mt);
    lua_setmetatable(L, -2);
    record_raw(L, lv->json, span, lv->raw_of);
}

/* Pushes the Lua value of span: scalars decoded, a large object as a lazy
 * table, an array or small object filled one level (within the budget).
 * Returns 0 or an mw_err. */
static int push_value(level_t *lv, const mw_envelope_span_t *span) {
    lua_State *L = lv->L;
    switch (span->kind) {
    case MW_JSON_STRING: return push_string(L, lv->json, span);
    case MW_JSON_NUMBER: return push_number(L, lv->json, span);
    case MW_JSON_TRUE: lua_pushboolean(L, 1); return 0;
    case MW_JSON_FALSE: lua_pushboolean(L, 0); return 0;
    case MW_JSON_NULL: lua_pushlightuserdata(L, NULL); return 0;
    case MW_JSON_OBJECT:
    case MW_JSON_ARRAY: {
        if ((span->kind == MW_JSON_OBJECT && span->len > EAGER_OBJECT_MAX) ||
            span->len > *lv->budget) {
            push_lazy(lv, span);
            return 0;
        }
        *lv->budget -= span->len;
        lua_createtable(L, 0, 0);
        record_raw(L, lv->json, span, lv->raw_of);
        mw_json_error_t err;
        return fill(L, lv->json + span->off, span->len, lv->lazy_mt, lv->raw_of, lua_gettop(L),
                    lv->budget, NULL, &err, NULL);
    }
    default: return MW_EINVAL;
    }
}

static int visit(void *data, const mw_json_member_t *m) {
    level_t *lv = data;
    lua_State *L = lv->L;
    if (!lua_checkstack(L, 8))
        return MW_ENOMEM;
    int rc;
    if (m->key.kind == MW_JSON_STRING) {
        if ((rc = push_string(L, lv->json, &m->key)))
            return rc;
        if (lv->want) {
            size_t klen;
            const char *k = lua_tolstring(L, -1, &klen);
            if (klen == lv->want_len && memcmp(k, lv->want, klen) == 0)
                lv->want_raw = m->value; /* a later duplicate wins */
        }
    } else {
        lua_pushinteger(L, ++lv->n);
    }
    if ((rc = push_value(lv, &m->value))) {
        lua_pop(L, 1);
        return rc;
    }
    lua_rawset(L, lv->table);
    return 0;
}

/* Fills the table at stack slot `table` with the members of json[0, len). */
static int fill(lua_State *L, const char *json, size_t len, int lazy_mt, int raw_of, int table,
                size_t *budget, mw_json_kind_t *top, mw_json_error_t *err, level_t *out) {
    level_t lv = {.L = L,
                  .json = json,
                  .lazy_mt = lazy_mt,
                  .raw_of = raw_of,
                  .table = table,
                  .budget = budget};
    if (out) {
        lv.want = out->want;
        lv.want_len = out->want_len;
    }
    int rc = mw_envelope_members(json, len, visit, &lv, top, err);
    if (out)
        out->want_raw = lv.want_raw;
    return rc;
}

/* Strings from this length on are kept as text even when lua-cjson would
 * write them the same: copying the text back costs less than cjson's
 * escaping loop over every byte (docs/performance.md, "Payloads kept raw"). */
#define RAW_STRING_MIN 256

/* Whether json.lua should keep the text of the scalar at span: 1 when
 * lua-cjson would write its value as other bytes (a string with an escape,
 * a '/' or a DEL: cjson writes "\/" and "\u007f"; any number: cjson
 * writes %.14g); 2 for a long string that cjson would write the same (its
 * text is the value in quotes: json.lua splices it without a copy). */
static int keep_text(const char *json, const mw_envelope_span_t *span) {
    if (span->kind == MW_JSON_NUMBER)
        return 1;
    if (span->kind != MW_JSON_STRING)
        return 0;
    if (span->escaped || memchr(json + span->off, '/', span->len) ||
        memchr(json + span->off, 0x7f, span->len))
        return 1;
    return span->len >= RAW_STRING_MIN ? 2 : 0;
}

static int is_ws(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static const char *kind_name(mw_json_kind_t kind) {
    switch (kind) {
    case MW_JSON_OBJECT: return "object";
    case MW_JSON_ARRAY: return "array";
    case MW_JSON_STRING: return "string";
    case MW_JSON_NUMBER: return "number";
    case MW_JSON_TRUE:
    case MW_JSON_FALSE: return "boolean";
    default: return "null";
    }
}

/* core.json_level(text, lazy_mt, raw_of [, target [, key]])
 *   -> value, kind [, raw]  |  nil, "malformed JSON: ..."
 * value: for an object or an array, `target` (or a new table) filled with
 * its members or elements; for a scalar, its value. kind:
 * "object", "array", "string", "number", "boolean" or "null". raw: when
 * `key` names a member of the object whose value is a string or number
 * that lua-cjson would write differently, that member's original text (so
 * json.lua can forward it unchanged); `true` when it is a long string that
 * lua-cjson would write as itself in quotes. A target given for a scalar
 * text is an error ("not an object or array"). */
static int mw_lua_json_level(lua_State *L) {
    size_t len;
    const char *json = luaL_checklstring(L, 1, &len);
    luaL_checktype(L, 2, LUA_TTABLE);
    luaL_checktype(L, 3, LUA_TTABLE);
    size_t want_len = 0;
    const char *want = luaL_optlstring(L, 5, NULL, &want_len);
    lua_settop(L, 4);
    /* stack: text lazy_mt raw_of target|nil */
    int target_given = !lua_isnil(L, 4);
    if (!target_given) {
        lua_pop(L, 1);
        lua_createtable(L, 0, 4);
    }
    level_t out = {.want = want, .want_len = want_len};
    mw_json_kind_t top = MW_JSON_NONE;
    mw_json_error_t err = {0};
    size_t budget = len <= SIZE_MAX / EAGER_BUDGET_FACTOR ? len * EAGER_BUDGET_FACTOR : SIZE_MAX;
    int rc = fill(L, json, len, 2, 3, 4, &budget, &top, &err, &out);
    if (rc == MW_EJSON) {
        lua_pushnil(L);
        lua_pushfstring(L, "malformed JSON: %s at character %d", err.what, (int)err.pos + 1);
        return 2;
    }
    if (rc) {
        lua_pushnil(L);
        lua_pushstring(L, mw_strerror(rc));
        return 2;
    }
    lua_settop(L, 4);
    if (top != MW_JSON_OBJECT && top != MW_JSON_ARRAY) {
        if (target_given) {
            lua_pushnil(L);
            lua_pushliteral(L, "not an object or array");
            return 2;
        }
        /* a scalar: its span is the text without the whitespace around it */
        size_t a = 0, b = len;
        while (a < b && is_ws(json[a]))
            a++;
        while (b > a && is_ws(json[b - 1]))
            b--;
        mw_envelope_span_t span = {.off = a, .len = b - a, .kind = top};
        span.escaped = top == MW_JSON_STRING && memchr(json + a, '\\', b - a) != NULL;
        level_t lv = {.L = L, .json = json, .lazy_mt = 2, .raw_of = 3, .budget = &budget};
        if ((rc = push_value(&lv, &span))) {
            lua_pushnil(L);
            lua_pushstring(L, mw_strerror(rc));
            return 2;
        }
    } else {
        lua_pushvalue(L, 4); /* the table filled above */
    }
    lua_pushstring(L, kind_name(top));
    int keep = out.want_raw.kind != MW_JSON_NONE ? keep_text(json, &out.want_raw) : 0;
    if (keep == 1) {
        lua_pushlstring(L, json + out.want_raw.off, out.want_raw.len);
        return 3;
    }
    if (keep == 2) {
        lua_pushboolean(L, 1);
        return 3;
    }
    return 2;
}

void mw_lua_inject_json_api(lua_State *L) {
    lua_pushcfunction(L, mw_lua_json_level);
    lua_setfield(L, -2, "json_level");
}
