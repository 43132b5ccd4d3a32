/*
 * test_config.c - option descriptors, defaults and setters (src/config.c).
 *
 * Defaults, typed setters with bounds and wrong types, text parsing as for
 * environment variables and flags, choices, path rules, subprotocol lists,
 * mw_config_apply_env with a fake envp, and that every error names the key
 * (or the variable); that each descriptor reaches a field of its own, which
 * options need a restart, mw_config_diff and mw_config_copy_live. Leaks are
 * left for ASan to find.
 */
#include "config.h"
#include "errors.h"
#include "test.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

static int starts_with(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

#define CHECK_PREFIX(s, prefix)                                                                    \
    do {                                                                                           \
        if (!starts_with((s), (prefix))) {                                                         \
            test_fail_at(__FILE__, __LINE__);                                                      \
            fprintf(stderr, "\"%s\" does not start with \"%s\"\n", (s), (prefix));                 \
        }                                                                                          \
    } while (0)

#define CHECK_CONTAINS(s, part)                                                                    \
    do {                                                                                           \
        if (!strstr((s), (part))) {                                                                \
            test_fail_at(__FILE__, __LINE__);                                                      \
            fprintf(stderr, "\"%s\" does not contain \"%s\"\n", (s), (part));                      \
        }                                                                                          \
    } while (0)

static void test_defaults(void) {
    mw_config_t c;
    REQUIRE(mw_config_init(&c) == 0);
    CHECK_STR(c.host, "0.0.0.0");
    CHECK_EQ(c.port, 8080);
    CHECK_STR(c.path, "/");
    CHECK_EQ(c.nsubprotocols, 0);
    CHECK_EQ(c.max_message_size, 1048576);
    CHECK_EQ(c.max_header_bytes, 8192);
    CHECK_EQ(c.handshake_timeout, 10000);
    CHECK_EQ(c.close_timeout, 5000);
    CHECK_EQ(c.shutdown_timeout, 5000);
    CHECK_EQ(c.welcome, 1);
    CHECK_STR(c.log_level, "info");
    CHECK_STR(c.log_format, "text");
    CHECK_EQ(c.reload, 1);
    CHECK_EQ(c.reload_debounce, 100);
    mw_config_free(&c);
    CHECK(c.host == NULL && c.path == NULL && c.log_level == NULL && c.log_format == NULL);
}

static void test_descriptor_table(void) {
    size_t n;
    const mw_config_desc_t *d = mw_config_descs(&n);
    CHECK_EQ(n, 68);
    for (size_t i = 0; i < n; i++) {
        CHECK(mw_config_find(d[i].name) == &d[i]);
        CHECK(d[i].help && d[i].help[0]);
        if (d[i].type == MW_CONF_INT) {
            long long v = strtoll(d[i].default_value, NULL, 10);
            CHECK(d[i].min <= v && v <= d[i].max);
        }
    }
    CHECK(mw_config_find("nope") == NULL);
    CHECK(mw_config_find("PORT") == NULL);
    CHECK(mw_config_find("") == NULL);
    CHECK_EQ(mw_config_find("port")->type, MW_CONF_INT);
    CHECK_EQ(mw_config_find("app")->type, MW_CONF_TABLE);

    /* --help lists every option. */
    FILE *f = tmpfile();
    REQUIRE(f);
    mw_config_print_help(f);
    long size = ftell(f);
    REQUIRE(size > 0);
    char *text = calloc(1, (size_t)size + 1);
    rewind(f);
    CHECK_EQ(fread(text, 1, (size_t)size, f), size);
    for (size_t i = 0; i < n; i++)
        CHECK(strstr(text, d[i].name) != NULL);
    free(text);
    fclose(f);
}

/* The options a reload cannot apply (the server's listeners, TLS, watchers,
 * Lua VM limits, room limits and heartbeat timers are set up once). */
static const char *const restart_only[] = {"host",
                                           "port",
                                           "tls_port",
                                           "tls_cert",
                                           "tls_key",
                                           "tls_min_version",
                                           "reload",
                                           "script_timeout",
                                           "lua_memory_limit",
                                           "event_cache_max_size",
                                           "max_connections_per_room",
                                           "max_rooms_per_client",
                                           "client_can_join_multiple_rooms",
                                           "ping_interval",
                                           "pong_timeout",
                                           "inactive_time",
                                           "inactive_check_interval",
                                           "api_port",
                                           "api_host",
                                           "cluster",
                                           "node_id",
                                           "presence_ttl",
                                           "workers",
                                           "shared_dicts"};
#define NRESTART (sizeof restart_only / sizeof restart_only[0])

/* Each descriptor's field: inside mw_config_t, wide enough for its bounds,
 * and no two options sharing bytes (an option is one line, so a copied
 * line with a stale field would show up here). */
static void test_descriptor_fields(void) {
    size_t n;
    const mw_config_desc_t *d = mw_config_descs(&n);
    for (size_t i = 0; i < n; i++) {
        if (d[i].type == MW_CONF_TABLE)
            continue;
        size_t size = d[i].type == MW_CONF_STRING    ? sizeof(char *)
                      : d[i].type == MW_CONF_STRLIST ? MW_CONFIG_MAX_SUBPROTOCOLS * sizeof(char *)
                                                     : d[i].size;
        CHECK(d[i].offset + size <= sizeof(mw_config_t));
        if (d[i].type == MW_CONF_INT && d[i].size == sizeof(int))
            CHECK(d[i].min >= INT_MIN && d[i].max <= INT_MAX);
        if (d[i].type == MW_CONF_INT)
            CHECK(d[i].size == sizeof(int) || d[i].size == sizeof(long long));
        if (d[i].type == MW_CONF_BOOL)
            CHECK_EQ(d[i].size, sizeof(int));
        for (size_t j = 0; j < i; j++) {
            if (d[j].type == MW_CONF_TABLE)
                continue;
            if (d[i].offset == d[j].offset) {
                test_fail_at(__FILE__, __LINE__);
                fprintf(stderr, "%s and %s share a field\n", d[i].name, d[j].name);
            }
        }
        if (d[i].type == MW_CONF_STRLIST) {
            CHECK(d[i].count_offset + sizeof(int) <= sizeof(mw_config_t));
            CHECK(d[i].count_offset != d[i].offset);
        }
    }
    CHECK_EQ(mw_config_find("max_message_size")->size, sizeof(long long));
    CHECK_EQ(mw_config_find("lua_memory_limit")->size, sizeof(long long));
    CHECK_EQ(mw_config_find("port")->size, sizeof(int));
    CHECK(mw_config_find("path")->valid != NULL);
    CHECK(mw_config_find("host")->valid != NULL);
    CHECK(mw_config_find("presence")->valid != NULL);
    CHECK(mw_config_find("allowed_origins")->valid != NULL);
    CHECK(mw_config_find("subprotocols")->valid != NULL);
    CHECK(mw_config_find("jwt_algorithms")->valid != NULL);
    CHECK(mw_config_find("jwt_issuer")->valid == NULL);
}

/* live is 0 exactly for the restart-only options, app included as live. */
static void test_live_flags(void) {
    size_t n;
    const mw_config_desc_t *d = mw_config_descs(&n);
    size_t restart = 0;
    for (size_t i = 0; i < n; i++) {
        int listed = 0;
        for (size_t j = 0; j < NRESTART; j++)
            listed |= strcmp(d[i].name, restart_only[j]) == 0;
        if (listed == d[i].live) {
            test_fail_at(__FILE__, __LINE__);
            fprintf(stderr, "%s: live is %d\n", d[i].name, d[i].live);
        }
        restart += !d[i].live;
    }
    CHECK_EQ(restart, NRESTART);
    CHECK_EQ(mw_config_find("app")->live, 1);

    /* --help marks the restart-only ones, and only those. */
    FILE *f = tmpfile();
    REQUIRE(f);
    mw_config_print_help(f);
    long size = ftell(f);
    char *text = calloc(1, (size_t)size + 1);
    rewind(f);
    CHECK_EQ(fread(text, 1, (size_t)size, f), size);
    fclose(f);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char name[64];
        if (line[0] != ' ' || sscanf(line, " %63s", name) != 1)
            continue;
        const mw_config_desc_t *o = mw_config_find(name);
        if (!o)
            continue;
        int marked = strstr(line, "[restart]") != NULL;
        if (marked != !o->live) {
            test_fail_at(__FILE__, __LINE__);
            fprintf(stderr, "help line of %s: %s\n", name, line);
        }
    }
    free(text);
}

/* change_option sets d in c to a valid value other than its default. */
static int change_option(mw_config_t *c, const mw_config_desc_t *d) {
    char err[256];
    static const char *const candidates[] = {
        "/x", "x", "https://a.example", "redis://127.0.0.1:6390", "d:16k", NULL};
    switch (d->type) {
    case MW_CONF_INT: {
        long long v = strtoll(d->default_value, NULL, 10);
        return mw_config_set_int(c, d->name, v == d->max ? d->min : d->max, err, sizeof err);
    }
    case MW_CONF_BOOL:
        return mw_config_set_bool(c, d->name, !mw_config_get_bool(c, d->name), err, sizeof err);
    case MW_CONF_STRING:
        if (d->choices)
            return mw_config_set_string(
                c, d->name, strcmp(d->choices[0], d->default_value) ? d->choices[0] : d->choices[1],
                err, sizeof err);
        for (const char *const *v = candidates; *v; v++)
            if (mw_config_set_string(c, d->name, *v, err, sizeof err) == 0)
                return 0;
        return -1;
    case MW_CONF_STRLIST:
        for (const char *const *v = candidates; *v; v++)
            if (mw_config_set_strlist(c, d->name, v, 1, err, sizeof err) == 0)
                return 0;
        return -1;
    default: return -1;
    }
}

typedef struct {
    const char *names[64];
    int n;
} seen_t;

static void collect(void *ud, const mw_config_desc_t *d) {
    seen_t *s = ud;
    if (s->n < 64)
        s->names[s->n] = d->name;
    s->n++;
}

/* Changing any one option changes that option alone, as mw_config_diff
 * sees it: each descriptor reaches its own field, and diff compares it. */
static void test_each_option_has_its_own_field(void) {
    size_t n;
    const mw_config_desc_t *d = mw_config_descs(&n);
    mw_config_t base;
    REQUIRE(mw_config_init(&base) == 0);
    for (size_t i = 0; i < n; i++) {
        if (d[i].type == MW_CONF_TABLE)
            continue;
        mw_config_t c;
        REQUIRE(mw_config_init(&c) == 0);
        if (change_option(&c, &d[i]) != 0) {
            test_fail_at(__FILE__, __LINE__);
            fprintf(stderr, "cannot change %s\n", d[i].name);
        }
        seen_t seen = {{0}, 0};
        mw_config_diff(&base, &c, collect, &seen);
        if (seen.n != 1 || strcmp(seen.names[0], d[i].name) != 0) {
            test_fail_at(__FILE__, __LINE__);
            fprintf(stderr, "changing %s: diff saw %d options, first %s\n", d[i].name, seen.n,
                    seen.n ? seen.names[0] : "none");
        }
        mw_config_free(&c);
    }
    mw_config_free(&base);
}

static void test_diff(void) {
    mw_config_t a, b;
    char err[256];
    REQUIRE(mw_config_init(&a) == 0);
    REQUIRE(mw_config_init(&b) == 0);
    seen_t seen = {{0}, 0};
    mw_config_diff(&a, &b, collect, &seen);
    CHECK_EQ(seen.n, 0);
    mw_config_diff(&a, &a, collect, &seen);
    CHECK_EQ(seen.n, 0);

    CHECK_EQ(mw_config_set_text(&a, "subprotocols", "chat.v1,chat.v2", err, sizeof err), 0);
    CHECK_EQ(mw_config_set_text(&b, "subprotocols", "chat.v1,chat.v3", err, sizeof err), 0);
    CHECK_EQ(mw_config_set_text(&b, "port", "9000", err, sizeof err), 0);
    CHECK_EQ(mw_config_set_text(&b, "max_message_size", "4294967", err, sizeof err), 0);
    CHECK_EQ(mw_config_set_text(&b, "log_level", "debug", err, sizeof err), 0);
    CHECK_EQ(mw_config_set_text(&a, "presence", "lobby", err, sizeof err), 0);
    CHECK_EQ(mw_config_set_text(&b, "presence", "lobby,game:*", err, sizeof err), 0);
    /* The same values in other strings are not a change. */
    CHECK_EQ(mw_config_set_text(&a, "path", "/ws", err, sizeof err), 0);
    CHECK_EQ(mw_config_set_text(&b, "path", "/ws", err, sizeof err), 0);
    CHECK(a.path != b.path);
    mw_config_diff(&a, &b, collect, &seen);
    REQUIRE(seen.n == 5); /* in descriptor order */
    CHECK_STR(seen.names[0], "port");
    CHECK_STR(seen.names[1], "subprotocols");
    CHECK_STR(seen.names[2], "max_message_size");
    CHECK_STR(seen.names[3], "log_level");
    CHECK_STR(seen.names[4], "presence");
    /* Symmetric. */
    seen.n = 0;
    mw_config_diff(&b, &a, collect, &seen);
    CHECK_EQ(seen.n, 5);
    mw_config_free(&a);
    mw_config_free(&b);
}

static void test_copy_live(void) {
    mw_config_t dst, src;
    char err[256];
    REQUIRE(mw_config_init(&dst) == 0);
    REQUIRE(mw_config_init(&src) == 0);
    CHECK_EQ(mw_config_set_text(&dst, "presence", "a,b,c", err, sizeof err), 0);
    CHECK_EQ(mw_config_set_text(&src, "port", "9000", err, sizeof err), 0);          /* restart */
    CHECK_EQ(mw_config_set_text(&src, "host", "127.0.0.1", err, sizeof err), 0);     /* restart */
    CHECK_EQ(mw_config_set_text(&src, "ping_interval", "0", err, sizeof err), 0);    /* restart */
    CHECK_EQ(mw_config_set_text(&src, "lua_memory_limit", "0", err, sizeof err), 0); /* restart */
    CHECK_EQ(mw_config_set_text(&src, "path", "/ws", err, sizeof err), 0);
    CHECK_EQ(mw_config_set_text(&src, "subprotocols", "chat.v2,chat.v1", err, sizeof err), 0);
    CHECK_EQ(mw_config_set_text(&src, "max_message_size", "4294967", err, sizeof err), 0);
    CHECK_EQ(mw_config_set_text(&src, "welcome", "false", err, sizeof err), 0);
    CHECK_EQ(mw_config_set_text(&src, "slow_consumer_policy", "close", err, sizeof err), 0);
    CHECK_EQ(mw_config_set_text(&src, "jwt_secret", "s3cret", err, sizeof err), 0);
    CHECK_EQ(mw_config_set_text(&src, "presence", "", err, sizeof err), 0); /* cleared */
    const char *log_format = dst.log_format, *host = dst.host;

    CHECK_EQ(mw_config_copy_live(&dst, &src), 0);
    /* Live options now have src's values, in copies of their own. */
    CHECK_STR(dst.path, "/ws");
    CHECK(dst.path != src.path);
    REQUIRE(dst.nsubprotocols == 2);
    CHECK_STR(dst.subprotocols[0], "chat.v2");
    CHECK_STR(dst.subprotocols[1], "chat.v1");
    CHECK(dst.subprotocols[0] != src.subprotocols[0]);
    CHECK_EQ(dst.max_message_size, 4294967);
    CHECK_EQ(dst.welcome, 0);
    CHECK_STR(dst.slow_consumer_policy, "close");
    CHECK_STR(dst.jwt_secret, "s3cret");
    CHECK_EQ(dst.npresence, 0);
    CHECK(dst.presence[0] == NULL);
    /* Restart-only options are left alone, and so are unchanged strings. */
    CHECK_EQ(dst.port, 8080);
    CHECK_STR(dst.host, "0.0.0.0");
    CHECK(dst.host == host);
    CHECK_EQ(dst.ping_interval, 25000);
    CHECK_EQ(dst.lua_memory_limit, 268435456);
    CHECK(dst.log_format == log_format);

    /* What still differs is exactly the restart-only changes. */
    seen_t seen = {{0}, 0};
    mw_config_diff(&dst, &src, collect, &seen);
    REQUIRE(seen.n == 4);
    CHECK_STR(seen.names[0], "host");
    CHECK_STR(seen.names[1], "port");
    CHECK_STR(seen.names[2], "ping_interval");
    CHECK_STR(seen.names[3], "lua_memory_limit");
    for (int i = 0; i < seen.n; i++)
        CHECK_EQ(mw_config_find(seen.names[i])->live, 0);

    /* dst owns its copies: src can go first (ASan checks), and copying
     * again with nothing changed is a no-op. */
    mw_config_free(&src);
    REQUIRE(mw_config_init(&src) == 0);
    CHECK_EQ(mw_config_set_text(&src, "path", "/ws", err, sizeof err), 0);
    CHECK_EQ(mw_config_set_text(&src, "subprotocols", "chat.v2,chat.v1", err, sizeof err), 0);
    const char *path = dst.path;
    CHECK_EQ(mw_config_copy_live(&dst, &src), 0);
    CHECK(dst.path == path);
    CHECK_EQ(dst.max_message_size, 1048576); /* back to src's default */
    CHECK_STR(dst.subprotocols[1], "chat.v1");
    mw_config_free(&src);
    mw_config_free(&dst);
}

static void test_set_int(void) {
    mw_config_t c;
    char err[256] = "";
    REQUIRE(mw_config_init(&c) == 0);
    CHECK_EQ(mw_config_set_int(&c, "port", 9000, err, sizeof err), 0);
    CHECK_EQ(c.port, 9000);
    CHECK_EQ(mw_config_set_int(&c, "port", 0, err, sizeof err), 0);
    CHECK_EQ(mw_config_set_int(&c, "port", 65535, err, sizeof err), 0);
    CHECK_EQ(c.port, 65535);

    CHECK_EQ(mw_config_set_int(&c, "port", 65536, err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "port: ");
    CHECK_CONTAINS(err, "65536");
    CHECK_EQ(c.port, 65535); /* unchanged */
    CHECK_EQ(mw_config_set_int(&c, "port", -1, err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "port: ");

    CHECK_EQ(mw_config_set_int(&c, "max_message_size", 1LL << 31, err, sizeof err), 0);
    CHECK_EQ(c.max_message_size, 1LL << 31);
    CHECK_EQ(mw_config_set_int(&c, "max_message_size", (1LL << 31) + 1, err, sizeof err),
             MW_ECONFIG);
    CHECK_PREFIX(err, "max_message_size: ");
    CHECK_EQ(mw_config_set_int(&c, "max_message_size", 0, err, sizeof err), MW_ECONFIG);
    CHECK_EQ(c.max_message_size, 1LL << 31);

    CHECK_EQ(mw_config_set_int(&c, "max_header_bytes", 255, err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "max_header_bytes: ");
    CHECK_EQ(mw_config_set_int(&c, "reload_debounce", 0, err, sizeof err), 0);
    CHECK_EQ(c.reload_debounce, 0);
    CHECK_EQ(mw_config_set_int(&c, "handshake_timeout", 0, err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "handshake_timeout: ");

    /* Lua isolation: 0 turns each off; negative or huge values name the key. */
    CHECK_EQ(c.script_timeout, 5000);
    CHECK_EQ(c.lua_memory_limit, 268435456);
    CHECK_EQ(mw_config_set_int(&c, "script_timeout", 0, err, sizeof err), 0);
    CHECK_EQ(c.script_timeout, 0);
    CHECK_EQ(mw_config_set_int(&c, "script_timeout", -1, err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "script_timeout: ");
    CHECK_EQ(mw_config_set_int(&c, "lua_memory_limit", 0, err, sizeof err), 0);
    CHECK_EQ(mw_config_set_int(&c, "lua_memory_limit", 1LL << 40, err, sizeof err), 0);
    CHECK_EQ(c.lua_memory_limit, 1LL << 40);
    CHECK_EQ(mw_config_set_int(&c, "lua_memory_limit", (1LL << 40) + 1, err, sizeof err),
             MW_ECONFIG);
    CHECK_PREFIX(err, "lua_memory_limit: ");
    CHECK_EQ(mw_config_set_text(&c, "lua_memory_limit", "64MB", err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "lua_memory_limit: ");

    /* workers: 0 by default, "one per core" (main.c), past 64 refused. */
    CHECK_EQ(c.workers, 0);
    CHECK_EQ(mw_config_set_int(&c, "workers", 1, err, sizeof err), 0);
    CHECK_EQ(c.workers, 1);
    CHECK_EQ(mw_config_set_int(&c, "workers", 65, err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "workers: ");
    CHECK_EQ(mw_config_set_int(&c, "workers", -1, err, sizeof err), MW_ECONFIG);

    /* A value that would overflow int is refused, not truncated. */
    CHECK_EQ(mw_config_set_int(&c, "close_timeout", 1LL << 32, err, sizeof err), MW_ECONFIG);
    CHECK_EQ(c.close_timeout, 5000);
    mw_config_free(&c);
}

static void test_wrong_type_and_unknown_key(void) {
    mw_config_t c;
    char err[256] = "";
    REQUIRE(mw_config_init(&c) == 0);
    CHECK_EQ(mw_config_set_string(&c, "port", "80", err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "port: ");
    CHECK_CONTAINS(err, "integer");
    CHECK_EQ(c.port, 8080);
    CHECK_EQ(mw_config_set_bool(&c, "port", 1, err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "port: ");
    CHECK_EQ(mw_config_set_int(&c, "welcome", 0, err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "welcome: ");
    CHECK_CONTAINS(err, "boolean");
    CHECK_EQ(c.welcome, 1);
    CHECK_EQ(mw_config_set_int(&c, "host", 1, err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "host: ");
    const char *items[] = {"a"};
    CHECK_EQ(mw_config_set_strlist(&c, "path", items, 1, err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "path: ");
    CHECK_EQ(mw_config_set_string(&c, "subprotocols", "a", err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "subprotocols: ");
    CHECK_EQ(mw_config_set_int(&c, "app", 1, err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "app: ");

    CHECK_EQ(mw_config_set_int(&c, "nope", 1, err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "nope: ");
    CHECK_CONTAINS(err, "unknown key");
    CHECK_EQ(mw_config_set_text(&c, "nope", "1", err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "nope: ");
    CHECK_CONTAINS(err, "unknown key");
    CHECK_EQ(mw_config_set_string(&c, "Host", "x", err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "Host: ");

    /* A short error buffer is truncated, never overrun (ASan checks). */
    char tiny[6];
    CHECK_EQ(mw_config_set_int(&c, "port", 70000, tiny, sizeof tiny), MW_ECONFIG);
    CHECK_STR(tiny, "port:");
    mw_config_free(&c);
}

static void test_set_text(void) {
    mw_config_t c;
    char err[256] = "";
    REQUIRE(mw_config_init(&c) == 0);
    CHECK_EQ(mw_config_set_text(&c, "port", "9000", err, sizeof err), 0);
    CHECK_EQ(c.port, 9000);
    static const char *const bad_ints[] = {
        "abc", "", "80x", "8 0", "1e3", "0x50", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad_ints / sizeof bad_ints[0]; i++) {
        err[0] = '\0';
        CHECK_EQ(mw_config_set_text(&c, "port", bad_ints[i], err, sizeof err), MW_ECONFIG);
        CHECK_PREFIX(err, "port: ");
    }
    CHECK_EQ(mw_config_set_text(&c, "port", "70000", err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "port: ");
    CHECK_CONTAINS(err, "70000");
    CHECK_EQ(c.port, 9000);

    static const char *const truthy[] = {"true", "1", "yes", "on"};
    static const char *const falsy[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        CHECK_EQ(mw_config_set_text(&c, "welcome", falsy[i], err, sizeof err), 0);
        CHECK_EQ(c.welcome, 0);
        CHECK_EQ(mw_config_set_text(&c, "welcome", truthy[i], err, sizeof err), 0);
        CHECK_EQ(c.welcome, 1);
    }
    CHECK_EQ(mw_config_set_text(&c, "reload", "maybe", err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "reload: ");
    CHECK_EQ(mw_config_set_text(&c, "reload", "", err, sizeof err), MW_ECONFIG);
    CHECK_EQ(c.reload, 1);

    CHECK_EQ(mw_config_set_text(&c, "host", "::", err, sizeof err), 0);
    CHECK_STR(c.host, "::");
    CHECK_EQ(mw_config_set_text(&c, "host", "", err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "host: ");
    CHECK_STR(c.host, "::");

    CHECK_EQ(mw_config_set_text(&c, "app", "x", err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "app: ");
    mw_config_free(&c);
}

static void test_choices_and_path(void) {
    mw_config_t c;
    char err[256] = "";
    REQUIRE(mw_config_init(&c) == 0);
    CHECK_EQ(mw_config_set_string(&c, "log_level", "loud", err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "log_level: ");
    CHECK_CONTAINS(err, "debug");
    CHECK_CONTAINS(err, "error");
    CHECK_STR(c.log_level, "info");
    CHECK_EQ(mw_config_set_text(&c, "log_level", "INFO", err, sizeof err), MW_ECONFIG);
    CHECK_EQ(mw_config_set_text(&c, "log_level", "", err, sizeof err), MW_ECONFIG);
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    for (size_t i = 0; i < 4; i++) {
        CHECK_EQ(mw_config_set_text(&c, "log_level", levels[i], err, sizeof err), 0);
        CHECK_STR(c.log_level, levels[i]);
    }
    CHECK_EQ(mw_config_set_string(&c, "log_format", "json", err, sizeof err), 0);
    CHECK_STR(c.log_format, "json");
    CHECK_EQ(mw_config_set_string(&c, "log_format", "xml", err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "log_format: ");

    CHECK_EQ(mw_config_set_string(&c, "path", "chat", err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "path: ");
    CHECK_EQ(mw_config_set_string(&c, "path", "", err, sizeof err), MW_ECONFIG);
    CHECK_EQ(mw_config_set_string(&c, "path", "**", err, sizeof err), MW_ECONFIG);
    CHECK_STR(c.path, "/");
    CHECK_EQ(mw_config_set_string(&c, "path", "*", err, sizeof err), 0);
    CHECK_STR(c.path, "*");
    CHECK_EQ(mw_config_set_string(&c, "path", "/chat", err, sizeof err), 0);
    CHECK_STR(c.path, "/chat");
    mw_config_free(&c);
}

static void test_subprotocols(void) {
    mw_config_t c;
    char err[256] = "";
    REQUIRE(mw_config_init(&c) == 0);
    CHECK_EQ(mw_config_set_text(&c, "subprotocols", "a, b", err, sizeof err), 0);
    REQUIRE(c.nsubprotocols == 2);
    CHECK_STR(c.subprotocols[0], "a");
    CHECK_STR(c.subprotocols[1], "b");
    CHECK_EQ(mw_config_set_text(&c, "subprotocols", " chat.v2 ,superchat", err, sizeof err), 0);
    REQUIRE(c.nsubprotocols == 2);
    CHECK_STR(c.subprotocols[0], "chat.v2");
    CHECK_STR(c.subprotocols[1], "superchat");

    /* Invalid tokens are refused and leave the old list. */
    static const char *const bad[] = {"a b",   "a, ,b", "a;b",       "a,b/c",
                                      "\"a\"", "a,{b}", "a,\xc3\xa9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        CHECK_EQ(mw_config_set_text(&c, "subprotocols", bad[i], err, sizeof err), MW_ECONFIG);
        CHECK_PREFIX(err, "subprotocols: ");
        CHECK_EQ(c.nsubprotocols, 2);
        CHECK_STR(c.subprotocols[0], "chat.v2");
    }
    const char *empty_item[] = {""};
    CHECK_EQ(mw_config_set_strlist(&c, "subprotocols", empty_item, 1, err, sizeof err), MW_ECONFIG);

    /* At most 16. */
    char list[256] = "";
    for (int i = 0; i < 16; i++)
        sprintf(list + strlen(list), "%sp%d", i ? "," : "", i);
    CHECK_EQ(mw_config_set_text(&c, "subprotocols", list, err, sizeof err), 0);
    CHECK_EQ(c.nsubprotocols, 16);
    CHECK_STR(c.subprotocols[15], "p15");
    strcat(list, ",p16");
    CHECK_EQ(mw_config_set_text(&c, "subprotocols", list, err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "subprotocols: ");
    CHECK_EQ(c.nsubprotocols, 16);
    strcat(list, ",p17,p18");
    CHECK_EQ(mw_config_set_text(&c, "subprotocols", list, err, sizeof err), MW_ECONFIG);

    /* The typed setter, and clearing with an empty list. */
    const char *items[] = {"x", "y", "z"};
    CHECK_EQ(mw_config_set_strlist(&c, "subprotocols", items, 3, err, sizeof err), 0);
    CHECK_EQ(c.nsubprotocols, 3);
    CHECK(c.subprotocols[0] != items[0]); /* copied */
    CHECK_STR(c.subprotocols[2], "z");
    CHECK_EQ(mw_config_set_text(&c, "subprotocols", "", err, sizeof err), 0);
    CHECK_EQ(c.nsubprotocols, 0);
    mw_config_free(&c);
}

static void test_allowed_origins(void) {
    mw_config_t c;
    char err[256] = "";
    REQUIRE(mw_config_init(&c) == 0);
    CHECK_EQ(c.nallowed_origins, 0);
    CHECK_EQ(mw_config_set_text(&c, "allowed_origins", "https://example.com, http://localhost:3000",
                                err, sizeof err),
             0);
    REQUIRE(c.nallowed_origins == 2);
    CHECK_STR(c.allowed_origins[1], "http://localhost:3000");
    CHECK_EQ(mw_config_set_text(&c, "allowed_origins", "*", err, sizeof err), 0);
    CHECK_EQ(c.nallowed_origins, 1);
    /* Not an origin: no scheme, a path, spaces, nothing after "://". */
    static const char *const bad[] = {"example.com", "https://example.com/app",
                                      "https://",    "://example.com",
                                      "https://a b", "https://x?y"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        CHECK_EQ(mw_config_set_text(&c, "allowed_origins", bad[i], err, sizeof err), MW_ECONFIG);
        CHECK_PREFIX(err, "allowed_origins: ");
        CHECK_EQ(c.nallowed_origins, 1);
    }
    mw_config_free(&c);
}

static void test_shared_dicts(void) {
    mw_config_t c;
    char err[256] = "";
    REQUIRE(mw_config_init(&c) == 0);
    CHECK_EQ(c.nshared_dicts, 0);
    CHECK(mw_config_find("shared_dicts")->live == 0); /* mapped before the workers fork */
    CHECK_EQ(mw_config_set_text(&c, "shared_dicts", "cache:10m,counters:64k", err, sizeof err), 0);
    REQUIRE(c.nshared_dicts == 2);
    CHECK_STR(c.shared_dicts[1], "counters:64k");
    CHECK_EQ(mw_config_check(&c, err, sizeof err), 0);
    static const char *const bad[] = {"cache",     "cache:",   "cache:10x",
                                      "ca che:1m", "cache:1k", ":1m"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        CHECK_EQ(mw_config_set_text(&c, "shared_dicts", bad[i], err, sizeof err), MW_ECONFIG);
        CHECK_PREFIX(err, "shared_dicts: ");
        CHECK_EQ(c.nshared_dicts, 2);
    }
    /* the same name twice: caught once every layer is applied */
    CHECK_EQ(mw_config_set_text(&c, "shared_dicts", "a:1m,b:1m,a:2m", err, sizeof err), 0);
    CHECK_EQ(mw_config_check(&c, err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "shared_dicts: ");
    /* a name that is a prefix of another is not a duplicate */
    CHECK_EQ(mw_config_set_text(&c, "shared_dicts", "ab:1m,a:1m", err, sizeof err), 0);
    CHECK_EQ(mw_config_check(&c, err, sizeof err), 0);
    mw_config_free(&c);
}

static void test_apply_env(void) {
    mw_config_t c;
    char err[256] = "";
    REQUIRE(mw_config_init(&c) == 0);
    char *env[] = {"PATH=/usr/bin",
                   "MOONWIRE_PORT=9000",
                   "MOONWIRE_LUA_DIR=/opt/lua",
                   "MOONWIRE_LOG_LEVEL=debug",
                   "MOONWIRE_SUBPROTOCOLS=chat, superchat",
                   "MOONWIRE_WELCOME=false",
                   "XMOONWIRE_PORT=1",
                   "MOONWIRE_NOEQUALS",
                   NULL};
    CHECK_EQ(mw_config_apply_env(&c, env, err, sizeof err), 0);
    CHECK_EQ(c.port, 9000);
    CHECK_STR(c.log_level, "debug");
    CHECK_EQ(c.welcome, 0);
    REQUIRE(c.nsubprotocols == 2);
    CHECK_STR(c.subprotocols[1], "superchat");

    CHECK_EQ(mw_config_apply_env(&c, NULL, err, sizeof err), 0);
    char *none[] = {NULL};
    CHECK_EQ(mw_config_apply_env(&c, none, err, sizeof err), 0);

    char *nope[] = {"MOONWIRE_PORT=9001", "MOONWIRE_NOPE=1", NULL};
    CHECK_EQ(mw_config_apply_env(&c, nope, err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "MOONWIRE_NOPE");

    char *bad_port[] = {"MOONWIRE_PORT=x", NULL};
    CHECK_EQ(mw_config_apply_env(&c, bad_port, err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "MOONWIRE_PORT");
    CHECK_CONTAINS(err, "port: ");
    CHECK_EQ(mw_config_apply_env(&c, (char *[]){"MOONWIRE_PORT=70000", NULL}, err, sizeof err),
             MW_ECONFIG);
    CHECK_PREFIX(err, "MOONWIRE_PORT");
    CHECK_CONTAINS(err, "port: ");

    /* config.app is Lua-only. */
    char *app[] = {"MOONWIRE_APP=x", NULL};
    CHECK_EQ(mw_config_apply_env(&c, app, err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "MOONWIRE_APP");

    /* A very long unknown name is refused without overrunning anything. */
    char longvar[200];
    memset(longvar, 'A', sizeof longvar);
    memcpy(longvar, "MOONWIRE_", 9);
    strcpy(longvar + 190, "=1");
    char *longenv[] = {longvar, NULL};
    CHECK_EQ(mw_config_apply_env(&c, longenv, err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "MOONWIRE_AAAA");
    mw_config_free(&c);
}

/* The getters read back what the setters stored, for every descriptor type
 * (the Lua config table is built from them). */
static void test_getters(void) {
    mw_config_t c;
    char err[256];
    REQUIRE(mw_config_init(&c) == 0);
    CHECK_EQ(mw_config_set_int(&c, "max_message_size", 4096, err, sizeof err), 0);
    CHECK_EQ(mw_config_set_int(&c, "port", 9001, err, sizeof err), 0);
    CHECK_EQ(mw_config_set_bool(&c, "welcome", 0, err, sizeof err), 0);
    CHECK_EQ(mw_config_set_string(&c, "path", "/ws", err, sizeof err), 0);
    CHECK_EQ(mw_config_set_text(&c, "subprotocols", "b, a", err, sizeof err), 0);
    CHECK_EQ(mw_config_get_int(&c, "max_message_size"), 4096);
    CHECK_EQ(mw_config_get_int(&c, "port"), 9001);
    CHECK_EQ(mw_config_get_bool(&c, "welcome"), 0);
    CHECK_EQ(mw_config_get_bool(&c, "reload"), 1);
    CHECK_STR(mw_config_get_string(&c, "path"), "/ws");
    CHECK_STR(mw_config_get_string(&c, "log_format"), "text");
    int n = 0;
    char *const *items = mw_config_get_strlist(&c, "subprotocols", &n);
    REQUIRE(n == 2);
    CHECK_STR(items[0], "b");
    CHECK_STR(items[1], "a");
    /* An unknown key or another type reads as nothing. */
    CHECK_EQ(mw_config_get_int(&c, "nope"), 0);
    CHECK_EQ(mw_config_get_int(&c, "welcome"), 0);
    CHECK_EQ(mw_config_get_bool(&c, "port"), 0);
    CHECK(mw_config_get_string(&c, "port") == NULL);
    n = 5;
    CHECK(mw_config_get_strlist(&c, "path", &n) == NULL);
    CHECK_EQ(n, 0);
    mw_config_free(&c);
}

/* Set every string and list option, and some many times over, and free:
 * ASan's leak checker fails the run if anything is lost. */
static void test_free_releases_everything(void) {
    mw_config_t c;
    char err[256];
    REQUIRE(mw_config_init(&c) == 0);
    size_t nd;
    const mw_config_desc_t *d = mw_config_descs(&nd);
    for (size_t i = 0; i < nd; i++)
        if (d[i].type == MW_CONF_STRING || d[i].type == MW_CONF_STRLIST)
            CHECK_EQ(change_option(&c, &d[i]), 0);
    for (int i = 0; i < 50; i++) {
        CHECK_EQ(mw_config_set_text(&c, "host", "127.0.0.1", err, sizeof err), 0);
        CHECK_EQ(mw_config_set_text(&c, "path", "/ws", err, sizeof err), 0);
        CHECK_EQ(mw_config_set_text(&c, "log_level", "warn", err, sizeof err), 0);
        CHECK_EQ(mw_config_set_text(&c, "log_format", "json", err, sizeof err), 0);
        CHECK_EQ(mw_config_set_text(&c, "subprotocols", "a,b,c", err, sizeof err), 0);
        CHECK_EQ(mw_config_set_text(&c, "subprotocols", "a b", err, sizeof err), MW_ECONFIG);
    }
    mw_config_free(&c);
    CHECK_EQ(c.nsubprotocols, 0);
    CHECK(c.subprotocols[0] == NULL);
    mw_config_free(&c); /* a freed config is all zero: freeing it again is safe */
}

static void test_tls_options(void) {
    mw_config_t c;
    char err[256] = "";
    REQUIRE(mw_config_init(&c) == 0);
    CHECK_EQ(c.tls_port, -1);
    CHECK_STR(c.tls_cert, "");
    CHECK_STR(c.tls_key, "");
    CHECK_STR(c.tls_min_version, "1.2");
    CHECK_EQ(mw_config_check(&c, err, sizeof err), 0); /* TLS off */

    CHECK_EQ(mw_config_set_text(&c, "tls_min_version", "1.1", err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "tls_min_version: must be one of 1.2 1.3");
    CHECK_EQ(mw_config_set_text(&c, "tls_port", "-2", err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "tls_port: ");

    /* Both files or neither; tls_port needs them and a port of its own. */
    CHECK_EQ(mw_config_set_text(&c, "tls_cert", "/etc/cert.pem", err, sizeof err), 0);
    CHECK_EQ(mw_config_check(&c, err, sizeof err), MW_ECONFIG);
    CHECK_STR(err, "tls_key: must be set when tls_cert is");
    CHECK_EQ(mw_config_set_text(&c, "tls_key", "/etc/key.pem", err, sizeof err), 0);
    CHECK_EQ(mw_config_check(&c, err, sizeof err), 0);
    CHECK_EQ(mw_config_set_text(&c, "tls_cert", "", err, sizeof err), 0);
    CHECK_EQ(mw_config_check(&c, err, sizeof err), MW_ECONFIG);
    CHECK_STR(err, "tls_cert: must be set when tls_key is");
    CHECK_EQ(mw_config_set_text(&c, "tls_key", "", err, sizeof err), 0);
    CHECK_EQ(mw_config_set_text(&c, "tls_port", "8443", err, sizeof err), 0);
    CHECK_EQ(mw_config_check(&c, err, sizeof err), MW_ECONFIG);
    CHECK_STR(err, "tls_port: needs tls_cert and tls_key");
    CHECK_EQ(mw_config_set_text(&c, "tls_cert", "c.pem", err, sizeof err), 0);
    CHECK_EQ(mw_config_set_text(&c, "tls_key", "k.pem", err, sizeof err), 0);
    CHECK_EQ(mw_config_check(&c, err, sizeof err), 0);
    CHECK_EQ(mw_config_set_text(&c, "tls_port", "8080", err, sizeof err), 0);
    CHECK_EQ(mw_config_check(&c, err, sizeof err), MW_ECONFIG);
    CHECK_STR(err, "tls_port: must differ from port");
    CHECK_EQ(mw_config_set_text(&c, "port", "0", err, sizeof err), 0);
    CHECK_EQ(mw_config_set_text(&c, "tls_port", "0", err, sizeof err), 0);
    CHECK_EQ(mw_config_check(&c, err, sizeof err), 0); /* both picked by the kernel */
    CHECK_STR(mw_config_get_string(&c, "tls_cert"), "c.pem");
    CHECK_EQ(mw_config_get_int(&c, "tls_port"), 0);
    mw_config_free(&c);
}

/* The event bus's options: defaults, bounds, and redis_url's form. */
static void test_bus_options(void) {
    mw_config_t c;
    char err[256] = "";
    REQUIRE(mw_config_init(&c) == 0);
    CHECK_STR(c.redis_url, "");
    CHECK_EQ(c.subscriber_timeout, 30000);
    CHECK_EQ(c.bus_max_depth, 8);
    CHECK_EQ(c.bus_max_pending, 10000);
    CHECK_EQ(mw_config_find("subscriber_timeout")->live, 1);
    CHECK_EQ(mw_config_set_text(&c, "redis_url", "redis://127.0.0.1:6379/0", err, sizeof err), 0);
    CHECK_EQ(mw_config_set_text(&c, "redis_url", "unix:///run/redis.sock", err, sizeof err), 0);
    CHECK_EQ(mw_config_set_text(&c, "redis_url", "http://x", err, sizeof err), MW_ECONFIG);
    CHECK_STR(err, "redis_url: must be a redis:// or unix:// URL (or empty)");
    CHECK_EQ(mw_config_set_text(&c, "bus_max_depth", "0", err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "bus_max_depth: must be between 1 and 64");
    CHECK_EQ(mw_config_set_text(&c, "subscriber_timeout", "0", err, sizeof err), 0);
    mw_config_free(&c);
}

/* The HTTP limits and the server API's listener: defaults, bounds, and the
 * rules that tie api_port to api_key and to the other ports. */
static void test_http_and_api_options(void) {
    mw_config_t c;
    char err[256] = "";
    REQUIRE(mw_config_init(&c) == 0);
    CHECK_EQ(c.http_max_body, 1048576);
    CHECK_EQ(c.http_keepalive_timeout, 5000);
    CHECK_EQ(c.api_port, 0);
    CHECK_STR(c.api_host, "127.0.0.1");
    CHECK_EQ(mw_config_find("http_max_body")->live, 1);
    CHECK_EQ(mw_config_find("http_keepalive_timeout")->live, 1);
    CHECK_EQ(mw_config_set_text(&c, "http_max_body", "-1", err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "http_max_body: must be between 0 and 1073741824");
    CHECK_EQ(mw_config_set_text(&c, "http_keepalive_timeout", "0", err, sizeof err), 0);
    CHECK_EQ(mw_config_set_text(&c, "api_host", "", err, sizeof err), MW_ECONFIG);
    CHECK_STR(err, "api_host: must not be empty");
    CHECK_EQ(mw_config_check(&c, err, sizeof err), 0);
    CHECK_EQ(mw_config_set_text(&c, "api_port", "9001", err, sizeof err), 0);
    CHECK_EQ(mw_config_check(&c, err, sizeof err), MW_ECONFIG);
    CHECK_STR(err, "api_port: needs api_key (the server API is off without it)");
    CHECK_EQ(mw_config_set_text(&c, "api_key", "k", err, sizeof err), 0);
    CHECK_EQ(mw_config_check(&c, err, sizeof err), 0);
    CHECK_EQ(mw_config_set_text(&c, "api_port", "8080", err, sizeof err), 0);
    CHECK_EQ(mw_config_check(&c, err, sizeof err), MW_ECONFIG);
    CHECK_STR(err, "api_port: must differ from port and tls_port");
    mw_config_free(&c);
}

/* cluster needs redis_url; node_id goes into channel names. */
static void test_cluster_options(void) {
    mw_config_t c;
    char err[256];
    REQUIRE(mw_config_init(&c) == 0);
    CHECK_EQ(c.cluster, 0);
    CHECK_STR(c.node_id, "");
    CHECK_EQ(c.presence_ttl, 15000);
    CHECK_EQ(mw_config_set_text(&c, "cluster", "true", err, sizeof err), 0);
    CHECK_EQ(mw_config_check(&c, err, sizeof err), MW_ECONFIG);
    CHECK_STR(err, "cluster: needs redis_url (the nodes meet through Redis)");
    CHECK_EQ(mw_config_set_text(&c, "redis_url", "redis://127.0.0.1:6379/0", err, sizeof err), 0);
    CHECK_EQ(mw_config_check(&c, err, sizeof err), 0);
    CHECK_EQ(mw_config_set_text(&c, "node_id", "a b", err, sizeof err), MW_ECONFIG);
    CHECK_STR(err, "node_id: may hold only letters, digits, '_', '.' and '-'");
    CHECK_EQ(mw_config_set_text(&c, "node_id", "node-1.eu_west", err, sizeof err), 0);
    CHECK_EQ(mw_config_set_text(&c, "presence_ttl", "999", err, sizeof err), MW_ECONFIG);
    mw_config_free(&c);
}

int main(void) {
    RUN(test_defaults);
    RUN(test_descriptor_table);
    RUN(test_cluster_options);
    RUN(test_descriptor_fields);
    RUN(test_live_flags);
    RUN(test_each_option_has_its_own_field);
    RUN(test_diff);
    RUN(test_copy_live);
    RUN(test_set_int);
    RUN(test_wrong_type_and_unknown_key);
    RUN(test_set_text);
    RUN(test_choices_and_path);
    RUN(test_subprotocols);
    RUN(test_allowed_origins);
    RUN(test_shared_dicts);
    RUN(test_apply_env);
    RUN(test_getters);
    RUN(test_free_releases_everything);
    RUN(test_tls_options);
    RUN(test_http_and_api_options);
    RUN(test_bus_options);
    return test_summary();
}
