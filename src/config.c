/*
 * config.c - option descriptors, defaults, validation and overrides.
 *
 * The descriptor table below is the single list of options. Defaults are
 * written as text and parsed by mw_config_set_text, so a default can never
 * be a value the parser would refuse.
 */
#include "config.h"
#include "errors.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const log_formats[] = {"text", "json", NULL};
static const char *const policies[] = {"drop", "close", NULL};
static const char *const tls_versions[] = {"1.2", "1.3", NULL};

static const mw_config_desc_t descs[] = {
    {"host", MW_CONF_STRING, "0.0.0.0", 0, 0, NULL,
     "address to listen on (IPv4 or IPv6; \"::\" listens on both)"},
    {"port", MW_CONF_INT, "8080", 0, 65535, NULL, "TCP port (0 picks a free one)"},
    {"tls_port", MW_CONF_INT, "-1", -1, 65535, NULL,
     "separate wss:// port, port stays ws:// (-1: with tls_cert, port is wss://)"},
    {"tls_cert", MW_CONF_STRING, "", 0, 0, NULL,
     "PEM certificate chain file; with tls_key, serves wss:// (SIGHUP reloads it)"},
    {"tls_key", MW_CONF_STRING, "", 0, 0, NULL, "PEM private key file (unencrypted) of tls_cert"},
    {"tls_min_version", MW_CONF_STRING, "1.2", 0, 0, tls_versions,
     "lowest TLS version accepted: 1.2 or 1.3"},
    {"path", MW_CONF_STRING, "/", 0, 0, NULL,
     "WebSocket endpoint path; \"*\" accepts the upgrade on any path"},
    {"subprotocols", MW_CONF_STRLIST, "", 0, 0, NULL,
     "subprotocols the server speaks, in order of preference"},
    {"max_message_size", MW_CONF_INT, "1048576", 1, 1LL << 31, NULL,
     "largest message accepted, in bytes (larger: close 1009)"},
    {"max_header_bytes", MW_CONF_INT, "8192", 256, 1 << 20, NULL,
     "largest HTTP request head, in bytes (larger: 431)"},
    {"handshake_timeout", MW_CONF_INT, "10000", 1, 3600000, NULL,
     "ms a client has to send a complete HTTP request"},
    {"close_timeout", MW_CONF_INT, "5000", 1, 3600000, NULL,
     "ms to wait for the peer's close frame after sending ours"},
    {"shutdown_timeout", MW_CONF_INT, "5000", 1, 3600000, NULL,
     "ms graceful shutdown waits for clients before dropping them"},
    {"welcome", MW_CONF_BOOL, "true", 0, 0, NULL,
     "send a system.connected event with the client id on connect"},
    {"log_level", MW_CONF_STRING, "info", 0, 0, log_levels, "debug, info, warn or error"},
    {"log_format", MW_CONF_STRING, "text", 0, 0, log_formats, "text or json lines"},
    {"reload", MW_CONF_BOOL, "true", 0, 0, NULL, "reload the app when its files change"},
    {"reload_debounce", MW_CONF_INT, "100", 0, 60000, NULL,
     "ms of quiet after a file change before reloading"},
    {"max_connections_per_room", MW_CONF_INT, "0", 0, 10000000, NULL,
     "members a room may have (0: unlimited); a join past it fails with ROOM_FULL"},
    {"max_rooms_per_client", MW_CONF_INT, "100", 0, 1000000, NULL,
     "rooms one client may be in (0: unlimited)"},
    {"client_can_join_multiple_rooms", MW_CONF_BOOL, "true", 0, 0, NULL,
     "false: joining a room moves the client out of its previous one"},
    {"max_buffered_bytes", MW_CONF_INT, "4194304", 1024, 1LL << 34, NULL,
     "output a client may have queued before broadcasts to it are dropped or it is closed"},
    {"slow_consumer_policy", MW_CONF_STRING, "drop", 0, 0, policies,
     "past max_buffered_bytes: drop (skip broadcasts, counted) or close (1013)"},
    {"event_cache_max_size", MW_CONF_INT, "128", 1, 65536, NULL,
     "event ids remembered per client for duplicate suppression"},
    {"dedupe", MW_CONF_BOOL, "false", 0, 0, NULL,
     "clients start opted in to duplicate suppression"},
    {"presence", MW_CONF_STRLIST, "", 0, 0, NULL,
     "rooms with presence events (names; a trailing * matches a prefix)"},
    {"system_controller", MW_CONF_BOOL, "true", 0, 0, NULL,
     "mount the built-in system controller (join, leave, publish, ping, ...)"},
    {"allow_client_broadcast", MW_CONF_BOOL, "false", 0, 0, NULL,
     "let clients use system.broadcast to message everyone"},
    {"max_connections", MW_CONF_INT, "0", 0, 10000000, NULL,
     "WebSocket clients connected at once (0: as many as open files allow); "
     "past it the upgrade gets 503"},
    {"max_connections_per_ip", MW_CONF_INT, "0", 0, 10000000, NULL,
     "connections one source address may have open (0: unlimited); past it: 429"},
    {"connection_rate_per_ip", MW_CONF_INT, "0", 0, 1000000, NULL,
     "new connections per second from one source address (0: unlimited); past it: 429"},
    {"allowed_origins", MW_CONF_STRLIST, "", 0, 0, NULL,
     "Origin values accepted at the upgrade (empty: any); others get 403"},
    {"rate_limit_window_ms", MW_CONF_INT, "1000", 1, 3600000, NULL,
     "rate_limit.window_ms: the window of the per-connection message limit"},
    {"rate_limit_max_messages", MW_CONF_INT, "0", 0, 10000000, NULL,
     "rate_limit.max_messages: messages per window per connection (0: unlimited); "
     "past it: RATE_LIMIT_EXCEEDED"},
    {"rate_limit_max_violations", MW_CONF_INT, "10", 0, 1000000, NULL,
     "rate_limit.max_violations: refused messages in a row before close 1008 (0: never)"},
    {"ping_interval", MW_CONF_INT, "25000", 0, 3600000, NULL,
     "ms between protocol pings to each client (0: none)"},
    {"pong_timeout", MW_CONF_INT, "10000", 1, 3600000, NULL,
     "ms a client has to answer a ping before it is dropped"},
    {"app_ping", MW_CONF_BOOL, "false", 0, 0, NULL,
     "with each protocol ping, also send the protocol's system ping event"},
    {"inactive_time", MW_CONF_INT, "0", 0, 86400000, NULL,
     "ms without a message from a client before it is closed (0: never)"},
    {"inactive_check_interval", MW_CONF_INT, "1000", 100, 3600000, NULL,
     "ms between checks for inactive clients"},
    {"jwt_secret", MW_CONF_STRING, "", 0, 0, NULL,
     "jwt.secret: HMAC key for HS256/384/512 tokens (empty: none)"},
    {"jwt_public_key", MW_CONF_STRING, "", 0, 0, NULL,
     "jwt.public_key: PEM file with the RSA or EC public key for RS256/ES256 tokens"},
    {"jwt_algorithms", MW_CONF_STRLIST, "", 0, 0, NULL,
     "jwt.algorithms: accepted algorithms (empty: those the configured key allows)"},
    {"jwt_issuer", MW_CONF_STRING, "", 0, 0, NULL, "jwt.issuer: required iss claim (empty: any)"},
    {"jwt_audience", MW_CONF_STRING, "", 0, 0, NULL,
     "jwt.audience: required aud claim (empty: any)"},
    {"jwt_leeway", MW_CONF_INT, "0", 0, 86400, NULL,
     "jwt.leeway: seconds of clock skew allowed for exp and nbf"},
    {"auth_at_upgrade", MW_CONF_BOOL, "false", 0, 0, NULL,
     "a valid credential is required at the upgrade (401 otherwise)"},
    {"require_auth", MW_CONF_BOOL, "false", 0, 0, NULL,
     "a client not authenticated at the upgrade must send an auth message in auth_timeout"},
    {"auth_timeout", MW_CONF_INT, "5000", 1, 3600000, NULL,
     "ms an unauthenticated client has to authenticate (then close 1008)"},
    {"max_connections_per_user", MW_CONF_INT, "0", 0, 10000000, NULL,
     "connections one user may have open (0: unlimited); past it close 1008"},
    {"script_timeout", MW_CONF_INT, "5000", 0, 3600000, NULL,
     "ms one call into Lua may run before it is interrupted (0: no watchdog)"},
    {"lua_memory_limit", MW_CONF_INT, "268435456", 0, 1LL << 40, NULL,
     "bytes the Lua heap may hold (0: unlimited)"},
    {"app", MW_CONF_TABLE, NULL, 0, 0, NULL, "free-form settings for the application"},
};

#define NDESCS (sizeof descs / sizeof descs[0])

const mw_config_desc_t *mw_config_descs(size_t *n) {
    *n = NDESCS;
    return descs;
}

const mw_config_desc_t *mw_config_find(const char *key) {
    for (size_t i = 0; i < NDESCS; i++)
        if (strcmp(descs[i].name, key) == 0)
            return &descs[i];
    return NULL;
}

static int fail(char *err, size_t errlen, const char *key, const char *msg) {
    snprintf(err, errlen, "%s: %s", key, msg);
    return MW_ECONFIG;
}

static int *int_field(mw_config_t *c, const char *key) {
    if (!strcmp(key, "port"))
        return &c->port;
    if (!strcmp(key, "tls_port"))
        return &c->tls_port;
    if (!strcmp(key, "max_header_bytes"))
        return &c->max_header_bytes;
    if (!strcmp(key, "handshake_timeout"))
        return &c->handshake_timeout;
    if (!strcmp(key, "close_timeout"))
        return &c->close_timeout;
    if (!strcmp(key, "shutdown_timeout"))
        return &c->shutdown_timeout;
    if (!strcmp(key, "reload_debounce"))
        return &c->reload_debounce;
    if (!strcmp(key, "welcome"))
        return &c->welcome;
    if (!strcmp(key, "reload"))
        return &c->reload;
    if (!strcmp(key, "max_connections_per_room"))
        return &c->max_connections_per_room;
    if (!strcmp(key, "max_rooms_per_client"))
        return &c->max_rooms_per_client;
    if (!strcmp(key, "client_can_join_multiple_rooms"))
        return &c->client_can_join_multiple_rooms;
    if (!strcmp(key, "event_cache_max_size"))
        return &c->event_cache_max_size;
    if (!strcmp(key, "dedupe"))
        return &c->dedupe;
    if (!strcmp(key, "system_controller"))
        return &c->system_controller;
    if (!strcmp(key, "allow_client_broadcast"))
        return &c->allow_client_broadcast;
    if (!strcmp(key, "max_connections"))
        return &c->max_connections;
    if (!strcmp(key, "max_connections_per_ip"))
        return &c->max_connections_per_ip;
    if (!strcmp(key, "connection_rate_per_ip"))
        return &c->connection_rate_per_ip;
    if (!strcmp(key, "rate_limit_window_ms"))
        return &c->rate_limit_window_ms;
    if (!strcmp(key, "rate_limit_max_messages"))
        return &c->rate_limit_max_messages;
    if (!strcmp(key, "rate_limit_max_violations"))
        return &c->rate_limit_max_violations;
    if (!strcmp(key, "ping_interval"))
        return &c->ping_interval;
    if (!strcmp(key, "pong_timeout"))
        return &c->pong_timeout;
    if (!strcmp(key, "inactive_time"))
        return &c->inactive_time;
    if (!strcmp(key, "app_ping"))
        return &c->app_ping;
    if (!strcmp(key, "inactive_check_interval"))
        return &c->inactive_check_interval;
    if (!strcmp(key, "jwt_leeway"))
        return &c->jwt_leeway;
    if (!strcmp(key, "auth_at_upgrade"))
        return &c->auth_at_upgrade;
    if (!strcmp(key, "require_auth"))
        return &c->require_auth;
    if (!strcmp(key, "auth_timeout"))
        return &c->auth_timeout;
    if (!strcmp(key, "max_connections_per_user"))
        return &c->max_connections_per_user;
    if (!strcmp(key, "script_timeout"))
        return &c->script_timeout;
    return NULL;
}

static long long *wide_field(mw_config_t *c, const char *key) {
    if (!strcmp(key, "max_message_size"))
        return &c->max_message_size;
    if (!strcmp(key, "max_buffered_bytes"))
        return &c->max_buffered_bytes;
    if (!strcmp(key, "lua_memory_limit"))
        return &c->lua_memory_limit;
    return NULL;
}

/* list_field returns the array and count of a list option. */
static char **list_field(mw_config_t *c, const char *key, int **n) {
    if (!strcmp(key, "presence")) {
        *n = &c->npresence;
        return c->presence;
    }
    if (!strcmp(key, "allowed_origins")) {
        *n = &c->nallowed_origins;
        return c->allowed_origins;
    }
    if (!strcmp(key, "jwt_algorithms")) {
        *n = &c->njwt_algorithms;
        return c->jwt_algorithms;
    }
    *n = &c->nsubprotocols;
    return c->subprotocols;
}

static char **string_field(mw_config_t *c, const char *key) {
    if (!strcmp(key, "host"))
        return &c->host;
    if (!strcmp(key, "path"))
        return &c->path;
    if (!strcmp(key, "tls_cert"))
        return &c->tls_cert;
    if (!strcmp(key, "tls_key"))
        return &c->tls_key;
    if (!strcmp(key, "tls_min_version"))
        return &c->tls_min_version;
    if (!strcmp(key, "log_level"))
        return &c->log_level;
    if (!strcmp(key, "log_format"))
        return &c->log_format;
    if (!strcmp(key, "slow_consumer_policy"))
        return &c->slow_consumer_policy;
    if (!strcmp(key, "jwt_secret"))
        return &c->jwt_secret;
    if (!strcmp(key, "jwt_public_key"))
        return &c->jwt_public_key;
    if (!strcmp(key, "jwt_issuer"))
        return &c->jwt_issuer;
    if (!strcmp(key, "jwt_audience"))
        return &c->jwt_audience;
    return NULL;
}

long long mw_config_get_int(const mw_config_t *cfg, const char *key) {
    long long *wide = wide_field((mw_config_t *)cfg, key);
    return wide ? *wide : *int_field((mw_config_t *)cfg, key);
}

int mw_config_get_bool(const mw_config_t *cfg, const char *key) {
    return *int_field((mw_config_t *)cfg, key);
}

const char *mw_config_get_string(const mw_config_t *cfg, const char *key) {
    return *string_field((mw_config_t *)cfg, key);
}

char *const *mw_config_get_strlist(const mw_config_t *cfg, const char *key, int *n) {
    int *count;
    char **items = list_field((mw_config_t *)cfg, key, &count);
    *n = *count;
    return items;
}

static const mw_config_desc_t *typed(const char *key, mw_conf_type type, char *err, size_t errlen,
                                     int *rc) {
    const mw_config_desc_t *d = mw_config_find(key);
    *rc = 0;
    if (!d) {
        *rc = fail(err, errlen, key, "unknown key");
        return NULL;
    }
    if (d->type != type) {
        static const char *names[] = {"an integer", "a boolean", "a string", "an array of strings",
                                      "a table"};
        char msg[64];
        snprintf(msg, sizeof msg, "must be %s", names[d->type]);
        *rc = fail(err, errlen, key, msg);
        return NULL;
    }
    return d;
}

int mw_config_set_int(mw_config_t *cfg, const char *key, long long v, char *err, size_t errlen) {
    int rc;
    const mw_config_desc_t *d = typed(key, MW_CONF_INT, err, errlen, &rc);
    if (!d)
        return rc;
    if (v < d->min || v > d->max) {
        char msg[128];
        snprintf(msg, sizeof msg, "must be between %lld and %lld (got %lld)", d->min, d->max, v);
        return fail(err, errlen, key, msg);
    }
    long long *wide = wide_field(cfg, key);
    if (wide)
        *wide = v;
    else
        *int_field(cfg, key) = (int)v;
    return 0;
}

int mw_config_set_bool(mw_config_t *cfg, const char *key, int v, char *err, size_t errlen) {
    int rc;
    if (!typed(key, MW_CONF_BOOL, err, errlen, &rc))
        return rc;
    *int_field(cfg, key) = v ? 1 : 0;
    return 0;
}

int mw_config_set_string(mw_config_t *cfg, const char *key, const char *v, char *err,
                         size_t errlen) {
    int rc;
    const mw_config_desc_t *d = typed(key, MW_CONF_STRING, err, errlen, &rc);
    if (!d)
        return rc;
    if (d->choices) {
        int ok = 0;
        for (const char *const *c = d->choices; *c; c++)
            ok |= strcmp(*c, v) == 0;
        if (!ok) {
            char msg[160] = "must be one of";
            for (const char *const *c = d->choices; *c; c++) {
                strncat(msg, " ", sizeof msg - strlen(msg) - 1);
                strncat(msg, *c, sizeof msg - strlen(msg) - 1);
            }
            return fail(err, errlen, key, msg);
        }
    }
    if (!strcmp(key, "path") && strcmp(v, "*") != 0 && v[0] != '/')
        return fail(err, errlen, key, "must start with \"/\" or be \"*\"");
    if (!strcmp(key, "host") && v[0] == '\0')
        return fail(err, errlen, key, "must not be empty");
    char *copy = strdup(v);
    if (!copy)
        return MW_ENOMEM;
    char **field = string_field(cfg, key);
    free(*field);
    *field = copy;
    return 0;
}

static int valid_token(const char *s) {
    /* RFC 7230 token characters: what a subprotocol name may contain. */
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
            return 0;
    return 1;
}

static void clear_list(char **items, int *n) {
    for (int i = 0; i < *n; i++)
        free(items[i]);
    *n = 0;
}

/* valid_room_pattern: a room name (1..256 bytes), optionally ending in "*". */
static int valid_room_pattern(const char *s) {
    size_t n = strlen(s);
    return n > 0 && n <= 256;
}

/* valid_origin: "*", or an RFC 6454 serialized origin: scheme "://" host
 * with an optional port, no path, no spaces. */
static int valid_origin(const char *s) {
    if (!strcmp(s, "*"))
        return 1;
    const char *sep = strstr(s, "://");
    if (!sep || sep == s || !sep[3])
        return 0;
    for (const char *p = s; *p; p++)
        if (*p <= ' ' || *p == 0x7f || (p > sep + 2 && (*p == '/' || *p == '?' || *p == '#')))
            return 0;
    return 1;
}

int mw_config_set_strlist(mw_config_t *cfg, const char *key, const char *const *items, int n,
                          char *err, size_t errlen) {
    int rc;
    if (!typed(key, MW_CONF_STRLIST, err, errlen, &rc))
        return rc;
    if (n > MW_CONFIG_MAX_SUBPROTOCOLS)
        return fail(err, errlen, key, "too many entries (at most 16)");
    int is_presence = !strcmp(key, "presence");
    int is_origins = !strcmp(key, "allowed_origins");
    for (int i = 0; i < n; i++) {
        if (is_presence && !valid_room_pattern(items[i]))
            return fail(err, errlen, key, "entries must be room names of 1 to 256 bytes");
        if (is_origins && !valid_origin(items[i]))
            return fail(err, errlen, key,
                        "entries must be origins like \"https://example.com\" (or \"*\")");
        if (!is_presence && !is_origins && !valid_token(items[i]))
            return fail(err, errlen, key, "entries must be non-empty HTTP tokens");
    }
    int *count;
    char **list = list_field(cfg, key, &count);
    clear_list(list, count);
    for (int i = 0; i < n; i++) {
        list[i] = strdup(items[i]);
        if (!list[i])
            return MW_ENOMEM;
        *count = i + 1;
    }
    return 0;
}

int mw_config_set_text(mw_config_t *cfg, const char *key, const char *v, char *err, size_t errlen) {
    const mw_config_desc_t *d = mw_config_find(key);
    if (!d)
        return fail(err, errlen, key, "unknown key");
    switch (d->type) {
    case MW_CONF_INT: {
        char *end;
        errno = 0;
        long long n = strtoll(v, &end, 10);
        if (errno || end == v || *end != '\0') {
            char msg[160];
            snprintf(msg, sizeof msg, "must be an integer (got \"%.100s\")", v);
            return fail(err, errlen, key, msg);
        }
        return mw_config_set_int(cfg, key, n, err, errlen);
    }
    case MW_CONF_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "on"))
            return mw_config_set_bool(cfg, key, 1, err, errlen);
        if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "off"))
            return mw_config_set_bool(cfg, key, 0, err, errlen);
        return fail(err, errlen, key, "must be a boolean (true/false)");
    case MW_CONF_STRING: return mw_config_set_string(cfg, key, v, err, errlen);
    case MW_CONF_STRLIST: {
        char *copy = strdup(v), *save = NULL;
        const char *items[MW_CONFIG_MAX_SUBPROTOCOLS + 1];
        int n = 0;
        if (!copy)
            return MW_ENOMEM;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            while (*t == ' ')
                t++;
            char *e = t + strlen(t);
            while (e > t && e[-1] == ' ')
                *--e = '\0';
            if (n == MW_CONFIG_MAX_SUBPROTOCOLS + 1)
                break;
            items[n++] = t;
        }
        int rc = mw_config_set_strlist(cfg, key, items, n, err, errlen);
        free(copy);
        return rc;
    }
    case MW_CONF_TABLE:
    default: return fail(err, errlen, key, "can only be set in config.lua");
    }
}

int mw_config_init(mw_config_t *cfg) {
    char err[256];
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < NDESCS; i++) {
        if (!descs[i].default_value)
            continue;
        int rc = mw_config_set_text(cfg, descs[i].name, descs[i].default_value, err, sizeof err);
        if (rc)
            return rc;
    }
    return 0;
}

void mw_config_free(mw_config_t *cfg) {
    free(cfg->host);
    free(cfg->path);
    free(cfg->tls_cert);
    free(cfg->tls_key);
    free(cfg->tls_min_version);
    free(cfg->log_level);
    free(cfg->log_format);
    free(cfg->slow_consumer_policy);
    free(cfg->jwt_secret);
    free(cfg->jwt_public_key);
    free(cfg->jwt_issuer);
    free(cfg->jwt_audience);
    clear_list(cfg->jwt_algorithms, &cfg->njwt_algorithms);
    clear_list(cfg->subprotocols, &cfg->nsubprotocols);
    clear_list(cfg->presence, &cfg->npresence);
    clear_list(cfg->allowed_origins, &cfg->nallowed_origins);
    memset(cfg, 0, sizeof *cfg);
}

int mw_config_check(const mw_config_t *cfg, char *err, size_t errlen) {
    int cert = cfg->tls_cert[0] != '\0', key = cfg->tls_key[0] != '\0';
    if (cert && !key)
        return fail(err, errlen, "tls_key", "must be set when tls_cert is");
    if (key && !cert)
        return fail(err, errlen, "tls_cert", "must be set when tls_key is");
    if (cfg->tls_port >= 0 && !cert)
        return fail(err, errlen, "tls_port", "needs tls_cert and tls_key");
    if (cfg->tls_port > 0 && cfg->tls_port == cfg->port)
        return fail(err, errlen, "tls_port", "must differ from port");
    return 0;
}

int mw_config_apply_env(mw_config_t *cfg, char **envp, char *err, size_t errlen) {
    static const char prefix[] = "MOONWIRE_";
    for (char **e = envp; e && *e; e++) {
        if (strncmp(*e, prefix, sizeof prefix - 1) != 0)
            continue;
        const char *name = *e + sizeof prefix - 1;
        const char *eq = strchr(name, '=');
        if (!eq)
            continue;
        char key[64];
        size_t klen = (size_t)(eq - name);
        if (klen >= sizeof key) {
            snprintf(err, errlen, "%.*s: unknown environment variable", (int)(eq - *e), *e);
            return MW_ECONFIG;
        }
        for (size_t i = 0; i < klen; i++)
            key[i] = (char)tolower((unsigned char)name[i]);
        key[klen] = '\0';
        if (!strcmp(key, "lua_dir"))
            continue; /* where the runtime lives, not a server option */
        const mw_config_desc_t *d = mw_config_find(key);
        if (!d || d->type == MW_CONF_TABLE) {
            snprintf(err, errlen, "MOONWIRE_%.*s: unknown environment variable (no option \"%s\")",
                     (int)klen, name, key);
            return MW_ECONFIG;
        }
        char msg[256];
        int rc = mw_config_set_text(cfg, key, eq + 1, msg, sizeof msg);
        if (rc) {
            snprintf(err, errlen, "MOONWIRE_%.*s: %s", (int)klen, name, msg);
            return rc;
        }
    }
    return 0;
}

void mw_config_print_help(FILE *f) {
    static const char *types[] = {"integer", "boolean", "string", "strings", "table"};
    for (size_t i = 0; i < NDESCS; i++) {
        fprintf(f, "  %-18s %-8s %-10s %s\n", descs[i].name, types[descs[i].type],
                descs[i].default_value
                    ? (descs[i].default_value[0] ? descs[i].default_value : "(none)")
                    : "{}",
                descs[i].help);
    }
}
