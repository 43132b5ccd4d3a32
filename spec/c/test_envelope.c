/*
 * test_envelope.c - the one-pass JSON scanner and its member visitor
 * (src/envelope.c).
 *
 * The visitor itself: members of an object and elements of an array in
 * order with exact spans, nested values as one member, scalars visiting
 * nothing, a visit stopping the scan, visits before an error, err NULL.
 * Then, through a helper that locates the envelope keys on top of it (as a
 * caller does): every kind of value under every envelope key, with spans
 * checked as byte-exact slices of the input; numbers cjson would round or
 * overflow; empties and nested empties; duplicate keys (last wins) and
 * escaped keys; key order; escaped and non-BMP strings decoded; a 1 MiB
 * data; the depth limit; malformed JSON before, inside and after data,
 * every truncation and trailing garbage; and each documented difference
 * from lua-cjson.
 */
#include "envelope.h"
#include "errors.h"
#include "test.h"

#include <stdlib.h>

static const mw_json_kind_t no_kind = MW_JSON_NONE;

/* The six keys that route a message, located as a caller of the module
 * does: each member of the top-level object is visited, its key decoded
 * with mw_envelope_string and compared with the names, and the last of
 * duplicate keys wins (as in the table cjson builds). */
enum { F_TYPE, F_ACTION, F_ID, F_DATA, F_ROOM, F_EVENT_ID, NFIELDS };
static const char *const field_names[NFIELDS] = {"type", "action", "id",
                                                 "data", "room",   "event_id"};

typedef struct {
    mw_envelope_span_t field[NFIELDS];
    size_t err_pos;       /* MW_EJSON: where the scanner stopped */
    const char *err_what; /* and why; NULL on success */
    mw_json_kind_t top;   /* the kind of the whole text, when valid */
} envelope_t;

struct locating {
    const char *json;
    envelope_t *env;
};

static int locate_field(void *data, const mw_json_member_t *m) {
    struct locating *l = data;
    char key[16];
    size_t n;
    if (m->key.kind == MW_JSON_NONE) /* an element of a top-level array */
        return 0;
    /* a key that does not fit names no field; any other failure is a bug */
    int rc = mw_envelope_string(l->json, &m->key, key, sizeof key, &n);
    if (rc == MW_ETOOBIG)
        return 0;
    if (rc != 0)
        return rc;
    for (int f = 0; f < NFIELDS; f++)
        if (n == strlen(field_names[f]) && memcmp(key, field_names[f], n) == 0)
            l->env->field[f] = m->value;
    return 0;
}

/* Returns 0 (an object: the fields set), MW_EJSON (nothing set) or
 * MW_ENOTOBJ (valid JSON, not an object; env->top says what). */
static int locate(const char *json, size_t len, envelope_t *env) {
    static const envelope_t empty;
    *env = empty;
    struct locating l = {json, env};
    mw_json_error_t err = {99, "stale"};
    mw_json_kind_t top = MW_JSON_NONE;
    int rc = mw_envelope_members(json, len, locate_field, &l, &top, &err);
    if (rc != 0) {
        *env = empty; /* visits before the error are discarded */
        env->err_pos = err.pos;
        env->err_what = err.what;
        return rc;
    }
    if (err.what != NULL || err.pos != 0)
        return MW_EINVAL; /* fails every check of a valid text */
    env->top = top;
    if (top != MW_JSON_OBJECT) {
        *env = empty; /* an array visits its elements, none a field */
        env->top = top;
        return MW_ENOTOBJ;
    }
    return 0;
}

static int scan(const char *json, envelope_t *env) {
    return locate(json, strlen(json), env);
}

/* The field's raw text must be exactly `raw`, and its kind `kind`. */
#define CHECK_FIELD(json, env, f, k, raw)                                                          \
    do {                                                                                           \
        const mw_envelope_span_t *s_ = &(env).field[f];                                            \
        CHECK_EQ(s_->kind, k);                                                                     \
        CHECK_MEM((json) + s_->off, s_->len, raw, strlen(raw));                                    \
    } while (0)

#define CHECK_ABSENT(env, f)                                                                       \
    do {                                                                                           \
        CHECK_EQ((env).field[f].kind, no_kind);                                                    \
        CHECK_EQ((env).field[f].len, 0);                                                           \
    } while (0)

/* The decoded string of field f must be the len bytes of want. */
static int decodes_to(const char *json, const envelope_t *env, int f, const char *want,
                      size_t len) {
    const mw_envelope_span_t *s = &env->field[f];
    char *buf = malloc(s->len + 1);
    size_t n = 0;
    int ok = buf && mw_envelope_string(json, s, buf, s->len, &n) == 0 && n == len &&
             memcmp(buf, want, len) == 0;
    free(buf);
    return ok;
}

/* What a visitor saw: up to 16 members, copied. */
typedef struct {
    mw_json_member_t m[16];
    int n;
    int stop_at; /* return 42 from the visit of member stop_at (1-based) */
} seen_t;

static int record(void *data, const mw_json_member_t *m) {
    seen_t *s = data;
    if (s->n < 16)
        s->m[s->n] = *m;
    s->n++;
    return s->n == s->stop_at ? 42 : 0;
}

/* The span must be exactly json[off, off + strlen(raw)) == raw, of kind k. */
#define CHECK_SPAN(json, span, k, at, raw)                                                         \
    do {                                                                                           \
        CHECK_EQ((span).kind, k);                                                                  \
        CHECK_EQ((span).off, at);                                                                  \
        CHECK_MEM((json) + (span).off, (span).len, raw, strlen(raw));                              \
    } while (0)

/* An object's members in order, duplicates included, with the spans of
 * their keys and values; whitespace is in neither. */
static void test_members_object(void) {
    const char *j = " { \"a\" : 1 ,\"b\\n\":\"x\\\"y\", \"c\":{\"d\":[1,{}]},\"a\":null,\"\":[] } ";
    seen_t s = {.n = 0};
    mw_json_kind_t top = MW_JSON_NONE;
    mw_json_error_t err = {7, "stale"};
    REQUIRE(mw_envelope_members(j, strlen(j), record, &s, &top, &err) == 0);
    CHECK_EQ(top, MW_JSON_OBJECT);
    CHECK_EQ(err.pos, 0);
    CHECK(err.what == NULL);
    REQUIRE(s.n == 5);
    CHECK_SPAN(j, s.m[0].key, MW_JSON_STRING, 3, "\"a\"");
    CHECK_SPAN(j, s.m[0].value, MW_JSON_NUMBER, 9, "1");
    CHECK(!s.m[0].key.escaped);
    CHECK_SPAN(j, s.m[1].key, MW_JSON_STRING, 12, "\"b\\n\"");
    CHECK(s.m[1].key.escaped);
    CHECK_SPAN(j, s.m[1].value, MW_JSON_STRING, 18, "\"x\\\"y\"");
    CHECK(s.m[1].value.escaped);
    CHECK_SPAN(j, s.m[2].key, MW_JSON_STRING, 26, "\"c\"");
    CHECK_SPAN(j, s.m[2].value, MW_JSON_OBJECT, 30, "{\"d\":[1,{}]}");
    CHECK(!s.m[2].value.escaped);
    CHECK_SPAN(j, s.m[3].key, MW_JSON_STRING, 43, "\"a\"");
    CHECK_SPAN(j, s.m[3].value, MW_JSON_NULL, 47, "null");
    CHECK_SPAN(j, s.m[4].key, MW_JSON_STRING, 52, "\"\"");
    CHECK_SPAN(j, s.m[4].value, MW_JSON_ARRAY, 55, "[]");

    /* a key decodes with mw_envelope_string like any string span */
    char buf[8];
    size_t n = 0;
    CHECK_EQ(mw_envelope_string(j, &s.m[1].key, buf, sizeof buf, &n), 0);
    CHECK_MEM(buf, n, "b\n", 2);
}

/* An array's elements in order: no key (kind MW_JSON_NONE, len 0), and a
 * nested array or object is one element, whatever it holds. */
static void test_members_array(void) {
    const char *j =
        "[1,\"two\" , [3,[4,{\"k\":5}]],{\"k\":{\"l\":[]}},true,false,null,-0.5e1,[],{}]";
    static const struct {
        mw_json_kind_t kind;
        size_t off;
        const char *raw;
    } want[] = {
        {MW_JSON_NUMBER, 1, "1"},
        {MW_JSON_STRING, 3, "\"two\""},
        {MW_JSON_ARRAY, 11, "[3,[4,{\"k\":5}]]"},
        {MW_JSON_OBJECT, 27, "{\"k\":{\"l\":[]}}"},
        {MW_JSON_TRUE, 42, "true"},
        {MW_JSON_FALSE, 47, "false"},
        {MW_JSON_NULL, 53, "null"},
        {MW_JSON_NUMBER, 58, "-0.5e1"},
        {MW_JSON_ARRAY, 65, "[]"},
        {MW_JSON_OBJECT, 68, "{}"},
    };
    seen_t s = {.n = 0};
    mw_json_kind_t top = MW_JSON_NONE;
    REQUIRE(mw_envelope_members(j, strlen(j), record, &s, &top, NULL) == 0);
    CHECK_EQ(top, MW_JSON_ARRAY);
    REQUIRE(s.n == (int)(sizeof want / sizeof want[0]));
    for (int i = 0; i < s.n; i++) {
        CHECK_EQ(s.m[i].key.kind, MW_JSON_NONE);
        CHECK_EQ(s.m[i].key.len, 0);
        CHECK_SPAN(j, s.m[i].value, want[i].kind, want[i].off, want[i].raw);
    }
}

/* A scalar or an empty container at the top level visits nothing and says
 * what it is in *top; visit may be NULL (validation only). */
static void test_members_scalar_and_empty(void) {
    static const struct {
        const char *text;
        mw_json_kind_t top;
    } texts[] = {
        {"1", MW_JSON_NUMBER},  {" -0.5e-3 ", MW_JSON_NUMBER}, {"\"s\"", MW_JSON_STRING},
        {"true", MW_JSON_TRUE}, {"false", MW_JSON_FALSE},      {"null\n", MW_JSON_NULL},
        {"{}", MW_JSON_OBJECT}, {" [ ] ", MW_JSON_ARRAY},      {"{ }", MW_JSON_OBJECT},
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        seen_t s = {.n = 0};
        mw_json_kind_t top = MW_JSON_NONE;
        CHECK_EQ(mw_envelope_members(texts[i].text, strlen(texts[i].text), record, &s, &top, NULL),
                 0);
        CHECK_EQ(s.n, 0);
        CHECK_EQ(top, texts[i].top);
        top = MW_JSON_NONE;
        CHECK_EQ(mw_envelope_members(texts[i].text, strlen(texts[i].text), NULL, NULL, &top, NULL),
                 0);
        CHECK_EQ(top, texts[i].top);
    }
    /* top may be NULL */
    CHECK_EQ(mw_envelope_members("[1]", 3, NULL, NULL, NULL, NULL), 0);
}

/* A nonzero return from a visit stops the scan at once: it is returned,
 * nothing further is visited or checked, and *top is not set. */
static void test_members_visit_stops(void) {
    const char *j = "{\"a\":1,\"b\":2,\"c\":3}";
    seen_t s = {.n = 0, .stop_at = 2};
    mw_json_kind_t top = MW_JSON_NONE;
    mw_json_error_t err;
    CHECK_EQ(mw_envelope_members(j, strlen(j), record, &s, &top, &err), 42);
    CHECK_EQ(s.n, 2);
    CHECK_EQ(top, MW_JSON_NONE);
    CHECK(err.what == NULL);

    /* what follows the stop is never looked at, even if it is not JSON */
    j = "[1,2,3,oops";
    s = (seen_t){.n = 0, .stop_at = 3};
    CHECK_EQ(mw_envelope_members(j, strlen(j), record, &s, &top, &err), 42);
    CHECK_EQ(s.n, 3);
    CHECK(err.what == NULL);

    s = (seen_t){.n = 0, .stop_at = 1};
    CHECK_EQ(mw_envelope_members(j, strlen(j), record, &s, NULL, NULL), 42);
    CHECK_EQ(s.n, 1);
}

/* Members are visited as their values end, so an error further on comes
 * after some visits; it is still MW_EJSON with its position and reason,
 * and *top is not set. */
static void test_members_visits_before_error(void) {
    static const struct {
        const char *json;
        int visits;
        size_t pos;
        const char *what;
    } cases[] = {
        {"{\"a\":1,\"b\":[2],\"c\":tru}", 2, 22, "invalid literal"},
        {"[1,2", 2, 4, "unexpected end of input"},
        {"[1,{\"x\":[]},3 4]", 3, 14, "',' or ']' expected"},
        {"{\"a\":{}}x", 1, 8, "unexpected characters after the value"},
        {"{\"a\":\"s\",\"b\":\"\x01\"}", 1, 14, "control character in string (must be escaped)"},
        {"{\"a\":[[[]]],\"b\" 1}", 1, 16, "':' expected"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        seen_t s = {.n = 0};
        mw_json_kind_t top = MW_JSON_NONE;
        mw_json_error_t err = {0, NULL};
        const char *j = cases[i].json;
        CHECK_EQ(mw_envelope_members(j, strlen(j), record, &s, &top, &err), MW_EJSON);
        CHECK_EQ(s.n, cases[i].visits);
        CHECK_EQ(err.pos, cases[i].pos);
        CHECK_STR(err.what, cases[i].what);
        CHECK_EQ(top, MW_JSON_NONE);
        /* err NULL: the same result, nothing written through it */
        seen_t s2 = {.n = 0};
        CHECK_EQ(mw_envelope_members(j, strlen(j), record, &s2, NULL, NULL), MW_EJSON);
        CHECK_EQ(s2.n, cases[i].visits);
    }
    /* the first member of the first case, visited before the error */
    seen_t s = {.n = 0};
    const char *j = cases[0].json;
    mw_envelope_members(j, strlen(j), record, &s, NULL, NULL);
    CHECK_SPAN(j, s.m[1].value, MW_JSON_ARRAY, 11, "[2]");
}

static void test_hub_echo(void) {
    const char *j = "{\"type\":\"echo\",\"data\":\"000000000042xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                    "xxxxxxxxxxxxxxxxx\"}";
    envelope_t env;
    REQUIRE(scan(j, &env) == 0);
    CHECK(env.err_what == NULL);
    CHECK_FIELD(j, env, F_TYPE, MW_JSON_STRING, "\"echo\"");
    CHECK_FIELD(j, env, F_DATA, MW_JSON_STRING,
                "\"000000000042xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"");
    CHECK(!env.field[F_TYPE].escaped);
    CHECK_ABSENT(env, F_ACTION);
    CHECK_ABSENT(env, F_ID);
    CHECK_ABSENT(env, F_ROOM);
    CHECK_ABSENT(env, F_EVENT_ID);
    CHECK(decodes_to(j, &env, F_TYPE, "echo", 4));
}

static void test_default_protocol(void) {
    const char *j = " {\"type\": \"chat\" ,\"action\":\"send\",\n\t\"data\" : {\"room\":\"lobby\","
                    "\"text\":\"hi\",\"n\":1700000000123456} ,\"id\":\"r1\",\"room\":\"r\","
                    "\"event_id\":\"e-7\"}\r\n";
    envelope_t env;
    REQUIRE(scan(j, &env) == 0);
    CHECK_FIELD(j, env, F_TYPE, MW_JSON_STRING, "\"chat\"");
    CHECK_FIELD(j, env, F_ACTION, MW_JSON_STRING, "\"send\"");
    CHECK_FIELD(j, env, F_DATA, MW_JSON_OBJECT,
                "{\"room\":\"lobby\",\"text\":\"hi\",\"n\":1700000000123456}");
    CHECK_FIELD(j, env, F_ID, MW_JSON_STRING, "\"r1\"");
    /* the top-level room, not the one inside data */
    CHECK_FIELD(j, env, F_ROOM, MW_JSON_STRING, "\"r\"");
    CHECK_FIELD(j, env, F_EVENT_ID, MW_JSON_STRING, "\"e-7\"");
    CHECK(decodes_to(j, &env, F_ACTION, "send", 4));
    CHECK(decodes_to(j, &env, F_EVENT_ID, "e-7", 3));
}

static const struct {
    const char *text;
    mw_json_kind_t kind;
} values[] = {
    {"\"s\"", MW_JSON_STRING},
    {"\"\"", MW_JSON_STRING},
    {"0", MW_JSON_NUMBER},
    {"-0", MW_JSON_NUMBER},
    {"1E+2", MW_JSON_NUMBER},
    {"1e400", MW_JSON_NUMBER},
    {"-1e-400", MW_JSON_NUMBER},
    {"2.5e-3", MW_JSON_NUMBER},
    {"123456789012345", MW_JSON_NUMBER},     /* 15 digits */
    {"1700000000123456", MW_JSON_NUMBER},    /* 16 */
    {"12345678901234567", MW_JSON_NUMBER},   /* 17 */
    {"-9007199254740993", MW_JSON_NUMBER},   /* 2^53 + 1: not a double */
    {"0.30000000000000004", MW_JSON_NUMBER}, /* 17 significant digits */
    {"{}", MW_JSON_OBJECT},
    {"[]", MW_JSON_ARRAY},
    {"{ }", MW_JSON_OBJECT},
    {"[ ]", MW_JSON_ARRAY},
    {"{\"a\":[],\"b\":{},\"c\":[[],{}],\"d\":{\"e\":{\"f\":[]}}}", MW_JSON_OBJECT},
    {"[[],[[]],{},{\"x\":{}},[{}]]", MW_JSON_ARRAY},
    {"{\"type\":\"inner\",\"data\":1,\"z\":[1,2,{\"id\":3}]}", MW_JSON_OBJECT},
    {"[1,\"two\",true,false,null,-3.5e1,{\"k\":\"v\"}]", MW_JSON_ARRAY},
    {"true", MW_JSON_TRUE},
    {"false", MW_JSON_FALSE},
    {"null", MW_JSON_NULL},
};

/* Every kind of value under every key, first, last and in the middle of
 * the envelope, with and without whitespace around it. */
static void test_every_kind_every_key(void) {
    char j[512];
    for (int f = 0; f < NFIELDS; f++) {
        const char *key = field_names[f];
        for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
            const char *fmts[] = {"{\"%s\":%s}", "{\"x\":1,\"%s\": %s ,\"y\":[2]}",
                                  "{\"x\":{\"a\":[]},\"%s\":\n%s\n}"};
            for (int k = 0; k < 3; k++) {
                snprintf(j, sizeof j, fmts[k], key, values[v].text);
                envelope_t env;
                int rc = scan(j, &env);
                CHECK_EQ(rc, 0);
                if (rc) {
                    fprintf(stderr, "    rejected: %s (%s at %zu)\n", j, env.err_what, env.err_pos);
                    continue;
                }
                CHECK_FIELD(j, env, f, values[v].kind, values[v].text);
                for (int g = 0; g < NFIELDS; g++)
                    if (g != f)
                        CHECK_ABSENT(env, g);
            }
        }
    }
}

/* As in the table cjson builds, the last of duplicate keys wins, whatever
 * the kinds; keys are compared after their escapes are decoded. */
static void test_duplicate_keys(void) {
    envelope_t env;
    const char *j = "{\"type\":\"a\",\"data\":{\"x\":1},\"type\":\"b\",\"data\":[],\"data\":7}";
    REQUIRE(scan(j, &env) == 0);
    CHECK_FIELD(j, env, F_TYPE, MW_JSON_STRING, "\"b\"");
    CHECK_FIELD(j, env, F_DATA, MW_JSON_NUMBER, "7");

    j = "{\"type\":\"a\\n\",\"type\":null}";
    REQUIRE(scan(j, &env) == 0);
    CHECK_FIELD(j, env, F_TYPE, MW_JSON_NULL, "null");
    CHECK(!env.field[F_TYPE].escaped);

    j = "{\"type\":\"a\",\"typ\\u0065\":\"b\"}";
    REQUIRE(scan(j, &env) == 0);
    CHECK_FIELD(j, env, F_TYPE, MW_JSON_STRING, "\"b\"");

    j = "{\"\\u0069\\u0064\":5,\"ev\\u0065nt_id\":\"E\",\"\\/id\":1,\"id\\u0000\":2,\"ID\":3}";
    REQUIRE(scan(j, &env) == 0);
    CHECK_FIELD(j, env, F_ID, MW_JSON_NUMBER, "5");
    CHECK_FIELD(j, env, F_EVENT_ID, MW_JSON_STRING, "\"E\"");

    /* near misses name no field */
    j = "{\"typ\":1,\"types\":2,\"Type\":3,\"event_ids\":4,\"\\u0074ypex\":5,\"d\\u00e1ta\":6}";
    REQUIRE(scan(j, &env) == 0);
    for (int f = 0; f < NFIELDS; f++)
        CHECK_ABSENT(env, f);
}

/* Keys in any order; keys named like fields inside nested values do not
 * count. */
static void test_key_order(void) {
    envelope_t env;
    const char *j = "{\"id\":9,\"data\":{\"type\":\"no\",\"action\":\"no\",\"id\":\"no\"},"
                    "\"action\":\"go\",\"room\":[\"type\"],\"type\":\"t\"}";
    REQUIRE(scan(j, &env) == 0);
    CHECK_FIELD(j, env, F_ID, MW_JSON_NUMBER, "9");
    CHECK_FIELD(j, env, F_ACTION, MW_JSON_STRING, "\"go\"");
    CHECK_FIELD(j, env, F_TYPE, MW_JSON_STRING, "\"t\"");
    CHECK_FIELD(j, env, F_ROOM, MW_JSON_ARRAY, "[\"type\"]");
    CHECK_FIELD(j, env, F_DATA, MW_JSON_OBJECT,
                "{\"type\":\"no\",\"action\":\"no\",\"id\":\"no\"}");
    CHECK(env.field[F_ID].off < env.field[F_DATA].off);
}

static void test_escaped_and_non_bmp_strings(void) {
    envelope_t env;
    /* escapes of every kind, a surrogate pair, raw UTF-8 of 2, 3, 4 bytes */
    const char *j = "{\"type\":\"q\\\"b\\\\s\\/b\\bf\\fn\\nr\\rt\\t\",\"action\":\"\\u00e9\\u20AC"
                    "\\ud83d\\ude00\\uDBFF\\uDFFF\\u0000.\",\"room\":\"\xc3\xa9\xe2\x82\xac"
                    "\xf0\x9f\x98\x80\",\"data\":\"\\u0041\"}";
    REQUIRE(scan(j, &env) == 0);
    CHECK(env.field[F_TYPE].escaped);
    CHECK(env.field[F_ACTION].escaped);
    CHECK(!env.field[F_ROOM].escaped);
    CHECK(decodes_to(j, &env, F_TYPE, "q\"b\\s/b\bf\fn\nr\rt\t", 16));
    CHECK(decodes_to(j, &env, F_ACTION, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\0.",
                     15));
    CHECK(decodes_to(j, &env, F_ROOM, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9));
    CHECK(decodes_to(j, &env, F_DATA, "A", 1));
    CHECK_FIELD(j, env, F_DATA, MW_JSON_STRING, "\"\\u0041\"");
}

static void test_string_decode_limits(void) {
    envelope_t env;
    const char *j = "{\"type\":\"abc\\u00e9\",\"id\":1}";
    REQUIRE(scan(j, &env) == 0);
    char buf[16];
    size_t n = 99;
    /* 5 bytes decoded: a buffer of 5 is enough, 4 is not */
    CHECK_EQ(mw_envelope_string(j, &env.field[F_TYPE], buf, 5, &n), 0);
    CHECK_MEM(buf, n, "abc\xc3\xa9", 5);
    CHECK_EQ(mw_envelope_string(j, &env.field[F_TYPE], buf, 4, &n), MW_ETOOBIG);
    CHECK_EQ(mw_envelope_string(j, &env.field[F_TYPE], buf, 0, &n), MW_ETOOBIG);
    CHECK_EQ(mw_envelope_string(j, &env.field[F_ID], buf, sizeof buf, &n), MW_EINVAL);
    CHECK_EQ(mw_envelope_string(j, &env.field[F_DATA], buf, sizeof buf, &n), MW_EINVAL);

    j = "{\"type\":\"\"}";
    REQUIRE(scan(j, &env) == 0);
    n = 99;
    CHECK_EQ(mw_envelope_string(j, &env.field[F_TYPE], buf, 0, &n), 0);
    CHECK_EQ(n, 0);

    /* a span that is not a valid string is refused, not decoded */
    mw_envelope_span_t bad = {0, 6, MW_JSON_STRING, true};
    CHECK_EQ(mw_envelope_string("\"\\ud800\"", &bad, buf, sizeof buf, &n), MW_EINVAL);
    bad.len = 4;
    CHECK_EQ(mw_envelope_string("\"\\q\"", &bad, buf, sizeof buf, &n), MW_EINVAL);
    CHECK_EQ(mw_envelope_string("\"a\"b\"", &(mw_envelope_span_t){0, 5, MW_JSON_STRING, false}, buf,
                                sizeof buf, &n),
             MW_EINVAL);
}

/* Strings are scanned 64, 16, 8 and 1 bytes at a time: a control
 * character, an escape or the closing quote is found at every offset of
 * strings of every length around those steps. */
static void test_string_every_offset(void) {
    char j[256];
    envelope_t env;
    for (size_t n = 0; n < 200; n++) {
        memcpy(j, "{\"data\":\"", 9);
        memset(j + 9, 'x', n);
        memcpy(j + 9 + n, "\"}", 2);
        REQUIRE(locate(j, 11 + n, &env) == 0);
        CHECK_EQ(env.field[F_DATA].off, 8);
        CHECK_EQ(env.field[F_DATA].len, n + 2);
        CHECK(!env.field[F_DATA].escaped);
        for (size_t at = 0; at < n; at++) {
            j[9 + at] = '\x1f';
            CHECK_EQ(locate(j, 11 + n, &env), MW_EJSON);
            CHECK_EQ(env.err_pos, 9 + at);
            j[9 + at] = '\\'; /* \x: an invalid escape, or \" with the quote */
            int rc = locate(j, 11 + n, &env);
            CHECK_EQ(rc, MW_EJSON);
            CHECK_EQ(env.err_pos, at + 1 < n ? 9 + at : 11 + n);
            j[9 + at] = '"'; /* the string ends early */
            CHECK_EQ(locate(j, 11 + n, &env), MW_EJSON);
            CHECK_EQ(env.err_pos, 10 + at);
            j[9 + at] = 'x';
        }
        if (n >= 2) {
            memcpy(j + 9 + n - 2, "\\n", 2);
            REQUIRE(locate(j, 11 + n, &env) == 0);
            CHECK(env.field[F_DATA].escaped);
        }
    }
}

/* A 1 MiB data, as a string and as an array of numbers; the spans are the
 * exact slices. */
static void test_one_mib_data(void) {
    size_t big = 1 << 20;
    char *j = malloc(big + 256);
    REQUIRE(j != NULL);
    size_t off = (size_t)sprintf(j, "{\"type\":\"t\",\"data\":\"");
    for (size_t i = 0; i < big; i++)
        j[off + i] = (char)('a' + i % 26);
    memcpy(j + off + 100, "\\u00e9\\\"", 8); /* escapes in the middle */
    off += big;
    off += (size_t)sprintf(j + off, "\",\"id\":1}");
    envelope_t env;
    REQUIRE(locate(j, off, &env) == 0);
    CHECK_EQ(env.field[F_DATA].off, 19);
    CHECK_EQ(env.field[F_DATA].len, big + 2);
    CHECK_FIELD(j, env, F_ID, MW_JSON_NUMBER, "1");
    CHECK(env.field[F_DATA].escaped);

    /* a control character near the end is still found */
    j[off - 20] = '\x1f';
    CHECK_EQ(locate(j, off, &env), MW_EJSON);
    CHECK_EQ(env.err_pos, off - 20);

    /* an array: [0,1,2,...] of about 1 MiB */
    off = (size_t)sprintf(j, "{\"data\":[");
    for (unsigned i = 0; off < big; i++)
        off += (size_t)sprintf(j + off, "%u,", i);
    off += (size_t)sprintf(j + off - 1, "],\"type\":\"x\"}") - 1;
    REQUIRE(locate(j, off, &env) == 0);
    CHECK_EQ(env.field[F_DATA].kind, MW_JSON_ARRAY);
    CHECK_EQ(env.field[F_DATA].off, 8);
    CHECK_EQ(j[8 + env.field[F_DATA].len - 1], ']');
    CHECK_FIELD(j, env, F_TYPE, MW_JSON_STRING, "\"x\"");
    free(j);
}

/* 64 levels (the envelope counts as one) pass, 65 do not, as with cjson's
 * decode_max_depth(64); a deep input costs no stack. */
static void test_depth_limit(void) {
    char j[400];
    envelope_t env;
    for (int levels = 63; levels <= 64; levels++) {
        /* {"data": then objects and arrays in turn, around a 0 */
        size_t n = (size_t)sprintf(j, "{\"data\":");
        for (int i = 0; i < levels; i++)
            n += (size_t)sprintf(j + n, "%s", i % 2 ? "[" : "{\"k\":");
        j[n++] = '0';
        for (int i = levels - 1; i >= 0; i--)
            j[n++] = i % 2 ? ']' : '}';
        j[n++] = '}';
        int rc = locate(j, n, &env);
        if (levels == 63) {
            CHECK_EQ(rc, 0);
            CHECK_EQ(env.field[F_DATA].kind, MW_JSON_OBJECT);
            CHECK_EQ(env.field[F_DATA].len, n - 9);
        } else {
            CHECK_EQ(rc, MW_EJSON);
            CHECK_STR(env.err_what, "objects and arrays nested too deeply");
            CHECK_EQ(j[env.err_pos], '['); /* the 65th opening */
            CHECK_EQ(env.err_pos, 8 + 32 * 5 + 31);
        }
    }
    /* a megabyte of '[' is an error, not a crash */
    size_t big = 1 << 20;
    char *deep = malloc(big);
    REQUIRE(deep != NULL);
    memset(deep, '[', big);
    CHECK_EQ(locate(deep, big, &env), MW_EJSON);
    CHECK_EQ(env.err_pos, MW_ENVELOPE_MAX_DEPTH);
    free(deep);
}

/* Valid JSON that is not an object: accepted, its kind in *top, and no
 * field located (not even the "type" inside a top-level array). */
static void test_not_an_object(void) {
    static const struct {
        const char *text;
        mw_json_kind_t top;
    } texts[] = {
        {"[]", MW_JSON_ARRAY},  {"1", MW_JSON_NUMBER},  {"\"s\"", MW_JSON_STRING},
        {"null", MW_JSON_NULL}, {"true", MW_JSON_TRUE}, {"  [1,{\"type\":2}]\n", MW_JSON_ARRAY},
        {"-0", MW_JSON_NUMBER},
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        envelope_t env;
        CHECK_EQ(scan(texts[i].text, &env), MW_ENOTOBJ);
        CHECK_EQ(env.top, texts[i].top);
        CHECK(env.err_what == NULL);
        for (int f = 0; f < NFIELDS; f++)
            CHECK_ABSENT(env, f);
    }
}

static const struct {
    const char *json;
    size_t pos;
    const char *what;
} malformed[] = {
    /* empty, whitespace, before the envelope */
    {"", 0, "unexpected end of input"},
    {" \n", 2, "unexpected end of input"},
    {"x{}", 0, "value expected"},
    {"\xef\xbb\xbf{}", 0, "value expected"}, /* a BOM: cjson rejects it too */
    {"{,\"type\":1}", 1, "object key (a string) expected"},
    /* around and inside type/action, before data */
    {"{type:1}", 1, "object key (a string) expected"},
    {"{'type':1}", 1, "object key (a string) expected"},
    {"{\"type\" 1}", 8, "':' expected"},
    {"{\"type\"::1}", 8, "value expected"},
    {"{\"type\":}", 8, "value expected"},
    {"{\"type\":\"a\" \"action\":\"b\"}", 12, "',' or '}' expected"},
    {"{\"type\":\"a\",}", 12, "object key (a string) expected"},
    {"{\"type\":\"a\\x\"}", 10, "invalid escape"},
    {"{\"type\":\"\\u12\"}", 9, "invalid \\u escape (bad hex digits or unpaired surrogate)"},
    {"{\"type\":\"\\u12g4\"}", 9, "invalid \\u escape (bad hex digits or unpaired surrogate)"},
    {"{\"type\":\"\\ud800\"}", 9, "invalid \\u escape (bad hex digits or unpaired surrogate)"},
    {"{\"type\":\"\\ud800\\u0041\"}", 9,
     "invalid \\u escape (bad hex digits or unpaired surrogate)"},
    {"{\"type\":\"\\udc00\\ud800\"}", 9,
     "invalid \\u escape (bad hex digits or unpaired surrogate)"},
    {"{\"type\":\"\\ud800x\\udc00\"}", 9,
     "invalid \\u escape (bad hex digits or unpaired surrogate)"},
    {"{\"ty\\pe\":1}", 4, "invalid escape"},
    /* numbers and literals */
    {"{\"id\":01}", 7, "',' or '}' expected"},
    {"{\"id\":-01}", 8, "',' or '}' expected"},
    {"{\"id\":+1}", 6, "value expected"},
    {"{\"id\":.5}", 6, "value expected"},
    {"{\"id\":0x10}", 7, "',' or '}' expected"},
    {"{\"id\":1e}", 8, "digit expected in number"},
    {"{\"id\":1e+}", 9, "digit expected in number"},
    {"{\"id\":-}", 7, "digit expected in number"},
    {"{\"id\":-inf}", 7, "digit expected in number"},
    {"{\"id\":NaN}", 6, "value expected"},
    {"{\"id\":Infinity}", 6, "value expected"},
    {"{\"id\":tru}", 9, "invalid literal"},
    {"{\"id\":True}", 6, "value expected"},
    {"{\"id\":nul}", 9, "invalid literal"},
    {"{\"id\":fals", 10, "unexpected end of input"},
    {"{\"id\":truex}", 10, "',' or '}' expected"},
    {"{\"id\":1 2}", 8, "',' or '}' expected"},
    /* inside data */
    {"{\"data\":{\"a\":1,}}", 15, "object key (a string) expected"},
    {"{\"data\":[1,]}", 11, "value expected"},
    {"{\"data\":[1 2]}", 11, "',' or ']' expected"},
    {"{\"data\":[1,,2]}", 11, "value expected"},
    {"{\"data\":{\"a\"}}", 12, "':' expected"},
    {"{\"data\":{\"a\":1]}", 14, "',' or '}' expected"},
    {"{\"data\":[1}}", 10, "',' or ']' expected"},
    {"{\"data\":{1:2}}", 9, "object key (a string) expected"},
    {"{\"data\":[\"a\",\"b\\\"]}", 19, "unexpected end of input"},
    {"{\"data\":{\"a\":[{\"b\":[}]}]}", 20, "value expected"},
    {"{\"data\":{\"a\":\"\x01\"}}", 14, "control character in string (must be escaped)"},
    /* after data */
    {"{\"data\":{},\"id\":}", 16, "value expected"},
    {"{\"data\":{},\"id\":\"r1\",}", 21, "object key (a string) expected"},
    {"{\"data\":{} \"id\":1}", 11, "',' or '}' expected"},
    {"{\"data\":{}]", 10, "',' or '}' expected"},
    /* trailing garbage */
    {"{\"type\":\"a\"}x", 12, "unexpected characters after the value"},
    {"{\"type\":\"a\"}}", 12, "unexpected characters after the value"},
    {"{\"type\":\"a\"} {}", 13, "unexpected characters after the value"},
    {"{\"type\":\"a\"},", 12, "unexpected characters after the value"},
    {"{}\f", 2, "unexpected characters after the value"}, /* form feed is not whitespace */
    {"[1] 2", 4, "unexpected characters after the value"},
};

static void test_malformed(void) {
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        envelope_t env;
        int rc = scan(malformed[i].json, &env);
        CHECK_EQ(rc, MW_EJSON);
        CHECK_EQ(env.err_pos, malformed[i].pos);
        CHECK_STR(env.err_what, malformed[i].what);
        if (rc != MW_EJSON || env.err_pos != malformed[i].pos)
            fprintf(stderr, "    in %s\n", malformed[i].json);
        for (int f = 0; f < NFIELDS; f++)
            CHECK_ABSENT(env, f);
    }
}

/* Every proper prefix of an envelope is rejected (nothing scans past the
 * end), and so is a control character or NUL put at any position; a '#'
 * anywhere but inside a string, too. */
static void test_truncated_and_inserted(void) {
    const char *j =
        "{\"type\":\"chat\",\"action\":\"send\",\"data\":{\"room\":\"lobby\",\"n\":-1.5e+3,"
        "\"t\":[true,false,null,{},[]],\"u\":\"\\u00e9\"},\"id\":\"r1\"}";
    size_t len = strlen(j);
    envelope_t env;
    REQUIRE(locate(j, len, &env) == 0);
    for (size_t n = 0; n < len; n++) {
        /* a copy of exactly n bytes, so that ASan sees any read past it */
        char *cut = malloc(n ? n : 1);
        REQUIRE(cut != NULL);
        memcpy(cut, j, n);
        CHECK_EQ(locate(cut, n, &env), MW_EJSON);
        CHECK(env.err_pos <= n);
        free(cut);
    }
    char *ins = malloc(len + 1);
    REQUIRE(ins != NULL);
    int in_string = 0;
    for (size_t at = 0; at <= len; at++) {
        const char bytes[] = {'\x01', '\0', '\x1f', '#'};
        for (size_t b = 0; b < sizeof bytes; b++) {
            memcpy(ins, j, at);
            ins[at] = bytes[b];
            memcpy(ins + at + 1, j + at, len - at);
            int rc = locate(ins, len + 1, &env);
            /* within an escape the error is where the escape starts */
            int in_escape = memchr(j + (at > 5 ? at - 5 : 0), '\\', at > 5 ? 5 : at) != NULL;
            if (bytes[b] == '#' && in_string && !in_escape) {
                CHECK_EQ(rc, 0);
            } else {
                CHECK_EQ(rc, MW_EJSON);
                CHECK(in_escape ? env.err_pos <= at : env.err_pos == at);
            }
        }
        /* whether position at + 1 is inside a string of j */
        if (at < len && j[at] == '"' && (at == 0 || j[at - 1] != '\\'))
            in_string = !in_string;
    }
    free(ins);
}

/* Where lua-cjson is laxer than RFC 8259 the scanner is not, because the
 * bytes are forwarded as they are (docs/protocol.md). And like cjson it
 * does not validate UTF-8 inside strings. */
static void test_cjson_differences(void) {
    envelope_t env;
    CHECK_EQ(scan("{\"id\":1.}", &env), MW_EJSON);
    CHECK_EQ(env.err_pos, 8);
    CHECK_EQ(scan("{\"id\":-.5}", &env), MW_EJSON);
    CHECK_EQ(env.err_pos, 7);
    CHECK_EQ(scan("{\"id\":1.e5}", &env), MW_EJSON);
    CHECK_EQ(env.err_pos, 8);
    CHECK_EQ(scan("{\"type\":\"a\tb\"}", &env), MW_EJSON);
    CHECK_EQ(env.err_pos, 10);
    CHECK_EQ(locate("{}\0garbage", 10, &env), MW_EJSON);
    CHECK_EQ(env.err_pos, 2);

    const char *j = "{\"type\":\"\xff\xfe\xc0\xaf\xed\xa0\x80\"}";
    REQUIRE(scan(j, &env) == 0);
    CHECK(decodes_to(j, &env, F_TYPE, "\xff\xfe\xc0\xaf\xed\xa0\x80", 7));
    /* outside strings a non-ASCII byte is an error, as for cjson */
    CHECK_EQ(scan("{\"id\":\xc3\xa9}", &env), MW_EJSON);
    CHECK_EQ(scan("{\"id\":1}\xc2\xa0", &env), MW_EJSON);
}

int main(void) {
    RUN(test_members_object);
    RUN(test_members_array);
    RUN(test_members_scalar_and_empty);
    RUN(test_members_visit_stops);
    RUN(test_members_visits_before_error);
    RUN(test_hub_echo);
    RUN(test_default_protocol);
    RUN(test_every_kind_every_key);
    RUN(test_duplicate_keys);
    RUN(test_key_order);
    RUN(test_escaped_and_non_bmp_strings);
    RUN(test_string_decode_limits);
    RUN(test_string_every_offset);
    RUN(test_one_mib_data);
    RUN(test_depth_limit);
    RUN(test_not_an_object);
    RUN(test_malformed);
    RUN(test_truncated_and_inserted);
    RUN(test_cjson_differences);
    return test_summary();
}
