/*
 * test_config.c - option descriptors, defaults and setters (src/config.c).
 *
 * Defaults, typed setters with bounds and wrong types, text parsing as for
 * environment variables and flags, choices, path rules, subprotocol lists,
 * mw_config_apply_env with a fake envp, and that every error names the key
 * (or the variable). Leaks are left for ASan to find.
 */
#include "config.h"
#include "errors.h"
#include "test.h"

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
    CHECK_EQ(n, 53);
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

/* Set every string option many times over and free: ASan's leak checker
 * fails the run if anything is lost. */
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
    mw_config_free(&c);
}

static void test_free_releases_everything(void) {
    mw_config_t c;
    char err[256];
    REQUIRE(mw_config_init(&c) == 0);
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

int main(void) {
    RUN(test_defaults);
    RUN(test_descriptor_table);
    RUN(test_set_int);
    RUN(test_wrong_type_and_unknown_key);
    RUN(test_set_text);
    RUN(test_choices_and_path);
    RUN(test_subprotocols);
    RUN(test_allowed_origins);
    RUN(test_apply_env);
    RUN(test_getters);
    RUN(test_free_releases_everything);
    RUN(test_tls_options);
    return test_summary();
}
