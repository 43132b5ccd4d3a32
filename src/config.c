/*
 * config.c - option descriptors, defaults, validation and overrides.
 *
 * The descriptor table below is the single list of options: each line names
 * the option once, and the macros derive the struct field (offset, size,
 * list count) from that name, refusing to compile when the field's type
 * does not match the option's. Everything else (setters, getters, init,
 * free, diff, --help) walks the table. Defaults are written as text and
 * parsed by mw_config_set_text, so a default can never be a value the
 * parser would refuse.
 */
#include "config.h"
#include "errors.h"
#include "rooms.h"
#include "shdict.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Validators (mw_config_valid_fn): NULL when acceptable, else the reason. */

static const char *valid_path(const char *v) {
    return !strcmp(v, "*") || v[0] == '/' ? NULL : "must start with \"/\" or be \"*\"";
}

static const char *valid_host(const char *v) {
    return v[0] ? NULL : "must not be empty";
}

/* valid_token: RFC 7230 token characters, what a subprotocol name (or a JWS
 * algorithm name) may contain. */
static const char *valid_token(const char *v) {
    static const char *const msg = "entries must be non-empty HTTP tokens";
    if (!*v)
        return msg;
    for (; *v; v++)
        if (!isalnum((unsigned char)*v) && !strchr("!#$%&'*+-.^_`|~", *v))
            return msg;
    return NULL;
}

/* valid_room_pattern: a room name, optionally ending in "*" (a prefix). */
static const char *valid_room_pattern(const char *v) {
    return mw_room_name_valid(v, strlen(v)) ? NULL : "entries must be " MW_ROOM_NAME_RULE;
}

/* valid_redis_url: empty (none), redis://... or unix://... (moonwire.redis). */
static const char *valid_redis_url(const char *v) {
    if (!*v || !strncmp(v, "redis://", 8) || !strncmp(v, "unix://", 7))
        return NULL;
    return "must be a redis:// or unix:// URL (or empty)";
}

/* valid_node_id: empty (a random id per start) or up to 64 of [A-Za-z0-9_.-]:
 * it goes into Redis channel names and message headers (moonwire.cluster). */
static const char *valid_node_id(const char *v) {
    size_t n = strlen(v);
    if (n > 64)
        return "must be at most 64 characters";
    for (size_t i = 0; i < n; i++) {
        char ch = v[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            return "may hold only letters, digits, '_', '.' and '-'";
    }
    return NULL;
}

/* valid_shared_dict: "name:size" (src/shdict.c says what is accepted). */
static const char *valid_shared_dict(const char *v) {
    char name[MW_SHDICT_NAME_MAX + 1];
    size_t size;
    return mw_shdict_parse_spec(v, name, &size);
}

/* valid_origin: "*", or an RFC 6454 serialized origin: scheme "://" host
 * with an optional port, no path, no spaces. */
static const char *valid_origin(const char *v) {
    static const char *const msg =
        "entries must be origins like \"https://example.com\" (or \"*\")";
    if (!strcmp(v, "*"))
        return NULL;
    const char *sep = strstr(v, "://");
    if (!sep || sep == v || !sep[3])
        return msg;
    for (const char *p = v; *p; p++)
        if (*p <= ' ' || *p == 0x7f || (p > sep + 2 && (*p == '/' || *p == '?' || *p == '#')))
            return msg;
    return NULL;
}

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const log_formats[] = {"text", "json", NULL};
static const char *const policies[] = {"drop", "close", NULL};
static const char *const tls_versions[] = {"1.2", "1.3", NULL};

/* The field-deriving macros. _Generic has no default branch, so an option
 * whose field has the wrong type is a compile error, not a wild write:
 * INT takes int or long long, BOOL int, STRING/ENUM char *, LIST an array
 * of char * with an int n<name> beside it. */
#define F(f) (((mw_config_t *)0)->f)
#define INT_SIZE(f) _Generic(F(f), int : sizeof(int), long long : sizeof(long long))
#define OFFSET_AS(f, T) _Generic(F(f), T : offsetof(mw_config_t, f))

#define INT(f, def, lo, hi, live_, help_)                                                          \
    {                                                                                              \
        .name = #f, .type = MW_CONF_INT, .default_value = def, .min = lo, .max = hi,               \
        .offset = offsetof(mw_config_t, f), .size = INT_SIZE(f), .live = live_, .help = help_      \
    }
#define BOOL(f, def, live_, help_)                                                                 \
    {                                                                                              \
        .name = #f, .type = MW_CONF_BOOL, .default_value = def, .offset = OFFSET_AS(f, int),       \
        .size = sizeof(int), .live = live_, .help = help_                                          \
    }
#define STRING(f, def, valid_, live_, help_)                                                       \
    {                                                                                              \
        .name = #f, .type = MW_CONF_STRING, .default_value = def, .valid = valid_,                 \
        .offset = OFFSET_AS(f, char *), .live = live_, .help = help_                               \
    }
#define ENUM(f, def, choices_, live_, help_)                                                       \
    {                                                                                              \
        .name = #f, .type = MW_CONF_STRING, .default_value = def, .choices = choices_,             \
        .offset = OFFSET_AS(f, char *), .live = live_, .help = help_                               \
    }
#define LIST(f, valid_, live_, help_)                                                              \
    {                                                                                              \
        .name = #f, .type = MW_CONF_STRLIST, .default_value = "", .valid = valid_,                 \
        .offset = OFFSET_AS(f, char **), .count_offset = OFFSET_AS(n##f, int), .live = live_,      \
        .help = help_                                                                              \
    }
#define TABLE(f, live_, help_)                                                                     \
    { .name = #f, .type = MW_CONF_TABLE, .live = live_, .help = help_ }

enum { RESTART = 0, LIVE = 1 };

static const mw_config_desc_t descs[] = {
    STRING(host, "0.0.0.0", valid_host, RESTART,
           "address to listen on (IPv4 or IPv6; \"::\" listens on both)"),
    INT(port, "8080", 0, 65535, RESTART, "TCP port (0 picks a free one)"),
    INT(tls_port, "-1", -1, 65535, RESTART,
        "separate wss:// port, port stays ws:// (-1: with tls_cert, port is wss://)"),
    STRING(tls_cert, "", NULL, RESTART,
           "PEM certificate chain file; with tls_key, serves wss:// (SIGHUP rereads the file)"),
    STRING(tls_key, "", NULL, RESTART, "PEM private key file (unencrypted) of tls_cert"),
    ENUM(tls_min_version, "1.2", tls_versions, RESTART, "lowest TLS version accepted: 1.2 or 1.3"),
    STRING(path, "/", valid_path, LIVE,
           "WebSocket endpoint path; \"*\" accepts the upgrade on any path"),
    LIST(subprotocols, valid_token, LIVE, "subprotocols the server speaks, in order of preference"),
    INT(max_message_size, "1048576", 1, 1LL << 31, LIVE,
        "largest message accepted, in bytes (larger: close 1009)"),
    INT(max_header_bytes, "8192", 256, 1 << 20, LIVE,
        "largest HTTP request head, in bytes (larger: 431)"),
    INT(handshake_timeout, "10000", 1, 3600000, LIVE,
        "ms a client has to send a complete HTTP request"),
    INT(http_max_body, "1048576", 0, 1 << 30, LIVE,
        "largest body of a plain HTTP request, in bytes (larger: 413)"),
    INT(http_keepalive_timeout, "5000", 0, 3600000, LIVE,
        "ms an idle keep-alive HTTP connection stays open (0: one request per connection)"),
    INT(close_timeout, "5000", 1, 3600000, LIVE,
        "ms to wait for the peer's close frame after sending ours"),
    INT(shutdown_timeout, "5000", 1, 3600000, LIVE,
        "ms graceful shutdown waits for clients before dropping them"),
    BOOL(welcome, "true", LIVE, "send a system.connected event with the client id on connect"),
    ENUM(log_level, "info", log_levels, LIVE, "debug, info, warn or error"),
    ENUM(log_format, "text", log_formats, LIVE, "text or json lines"),
    BOOL(reload, "true", RESTART, "reload the app when its files change"),
    INT(reload_debounce, "100", 0, 60000, LIVE, "ms of quiet after a file change before reloading"),
    INT(max_connections_per_room, "0", 0, 10000000, RESTART,
        "members a room may have (0: unlimited); a join past it fails with ROOM_FULL"),
    INT(max_rooms_per_client, "100", 0, 1000000, RESTART,
        "rooms one client may be in (0: unlimited)"),
    BOOL(client_can_join_multiple_rooms, "true", RESTART,
         "false: joining a room moves the client out of its previous one"),
    INT(max_buffered_bytes, "4194304", 1024, 1LL << 34, LIVE,
        "output a client may have queued before broadcasts to it are dropped or it is closed"),
    ENUM(slow_consumer_policy, "drop", policies, LIVE,
         "past max_buffered_bytes: drop (skip broadcasts, counted) or close (1013)"),
    INT(event_cache_max_size, "128", 1, 65536, RESTART,
        "event ids remembered per client for duplicate suppression"),
    BOOL(dedupe, "false", LIVE, "clients start opted in to duplicate suppression"),
    LIST(presence, valid_room_pattern, LIVE,
         "rooms with presence events (names; a trailing * matches a prefix)"),
    BOOL(system_controller, "true", LIVE,
         "mount the built-in system controller (join, leave, publish, ping, ...)"),
    BOOL(allow_client_broadcast, "false", LIVE,
         "let clients use system.broadcast to message everyone"),
    INT(max_connections, "0", 0, 10000000, LIVE,
        "WebSocket clients connected at once (0: as many as open files allow); "
        "past it the upgrade gets 503"),
    INT(max_connections_per_ip, "0", 0, 10000000, LIVE,
        "connections one source address may have open (0: unlimited); past it: 429"),
    INT(connection_rate_per_ip, "0", 0, 1000000, LIVE,
        "new connections per second from one source address (0: unlimited); past it: 429"),
    LIST(allowed_origins, valid_origin, LIVE,
         "Origin values accepted at the upgrade (empty: any); others get 403"),
    INT(rate_limit_window_ms, "1000", 1, 3600000, LIVE,
        "rate_limit.window_ms: the window of the per-connection message limit"),
    INT(rate_limit_max_messages, "0", 0, 10000000, LIVE,
        "rate_limit.max_messages: messages per window per connection (0: unlimited); "
        "past it: RATE_LIMIT_EXCEEDED"),
    INT(rate_limit_max_violations, "10", 0, 1000000, LIVE,
        "rate_limit.max_violations: refused messages in a row before close 1008 (0: never)"),
    INT(ping_interval, "25000", 0, 3600000, RESTART,
        "ms between protocol pings to each client (0: none)"),
    INT(pong_timeout, "10000", 1, 3600000, RESTART,
        "ms a client has to answer a ping before it is dropped"),
    BOOL(app_ping, "false", LIVE,
         "with each protocol ping, also send the protocol's system ping event"),
    INT(inactive_time, "0", 0, 86400000, RESTART,
        "ms without a message from a client before it is closed (0: never)"),
    INT(inactive_check_interval, "1000", 100, 3600000, RESTART,
        "ms between checks for inactive clients"),
    STRING(api_key, "", NULL, LIVE,
           "key of the server API (/api/) and /metrics, sent as Authorization: apikey KEY "
           "(empty: no API, /metrics open)"),
    INT(api_port, "0", 0, 65535, RESTART,
        "port of a listener that serves the server API alone (0: /api/ is served on port)"),
    STRING(api_host, "127.0.0.1", valid_host, RESTART, "address the api_port listener binds"),
    STRING(jwt_secret, "", NULL, LIVE,
           "jwt.secret: HMAC key for HS256/384/512 tokens (empty: none)"),
    STRING(jwt_public_key, "", NULL, LIVE,
           "jwt.public_key: PEM file with the RSA or EC public key for RS256/ES256 tokens"),
    LIST(jwt_algorithms, valid_token, LIVE,
         "jwt.algorithms: accepted algorithms (empty: those the configured key allows)"),
    STRING(jwt_issuer, "", NULL, LIVE, "jwt.issuer: required iss claim (empty: any)"),
    STRING(jwt_audience, "", NULL, LIVE, "jwt.audience: required aud claim (empty: any)"),
    INT(jwt_leeway, "0", 0, 86400, LIVE,
        "jwt.leeway: seconds of clock skew allowed for exp and nbf"),
    BOOL(auth_at_upgrade, "false", LIVE,
         "a valid credential is required at the upgrade (401 otherwise)"),
    BOOL(require_auth, "false", LIVE,
         "a client not authenticated at the upgrade must send an auth message in auth_timeout"),
    INT(auth_timeout, "5000", 1, 3600000, LIVE,
        "ms an unauthenticated client has to authenticate (then close 1008)"),
    INT(max_connections_per_user, "0", 0, 10000000, LIVE,
        "connections one user may have open (0: unlimited); past it close 1008"),
    INT(script_timeout, "5000", 0, 3600000, RESTART,
        "ms one call into Lua may run before it is interrupted (0: no watchdog)"),
    INT(lua_memory_limit, "268435456", 0, 1LL << 40, RESTART,
        "bytes the Lua heap may hold (0: unlimited)"),
    INT(max_pending_messages, "32", 1, 65536, LIVE,
        "messages of one client queued while its handler waits; past it reading stops"),
    STRING(redis_url, "", valid_redis_url, LIVE,
           "the app's Redis (redis://[:password@]host[:port][/db] or unix:///path): "
           "a subscriber's ctx.redis (empty: none)"),
    INT(subscriber_timeout, "30000", 0, 86400000, LIVE,
        "ms a subscriber's handler may take, waits included, before it is given up "
        "(0: no limit; a subscriber's own timeout wins)"),
    INT(bus_max_depth, "8", 1, 64, LIVE,
        "events a chain of subscribers may emit one inside another before emit refuses"),
    INT(bus_max_pending, "10000", 1, 10000000, LIVE,
        "subscriber handlers started and not finished; past it emit drops the event"),
    BOOL(cluster, "false", RESTART,
         "share rooms, users, presence, the server API and bus events with the other nodes "
         "through redis_url (docs/scaling.md)"),
    STRING(node_id, "", valid_node_id, RESTART,
           "this node's name in the cluster (empty: a random id per start)"),
    INT(presence_ttl, "15000", 1000, 3600000, RESTART,
        "ms after which a dead node's presence entries are gone (heartbeat every third of it)"),
    INT(workers, "0", 0, 64, RESTART,
        "worker processes serving the app (0: one per core; 1: one process, no supervisor)"),
    LIST(shared_dicts, valid_shared_dict, RESTART,
         "shared dicts as \"name:size\" (\"cache:10m\"; k, m, g): moonwire.shared.dict(name)"),
    TABLE(app, LIVE, "free-form settings for the application"),
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

/* Field access through a descriptor. */

static long long int_at(const mw_config_t *c, const mw_config_desc_t *d) {
    const char *p = (const char *)c + d->offset;
    return d->size == sizeof(long long) ? *(const long long *)p : *(const int *)p;
}

static void set_int_at(mw_config_t *c, const mw_config_desc_t *d, long long v) {
    char *p = (char *)c + d->offset;
    if (d->size == sizeof(long long))
        *(long long *)p = v;
    else
        *(int *)p = (int)v;
}

static char **string_at(const mw_config_t *c, const mw_config_desc_t *d) {
    return (char **)((char *)c + d->offset);
}

static char **list_at(const mw_config_t *c, const mw_config_desc_t *d, int **n) {
    *n = (int *)((char *)c + d->count_offset);
    return (char **)((char *)c + d->offset);
}

static void clear_list(char **items, int *n) {
    for (int i = 0; i < *n; i++) {
        free(items[i]);
        items[i] = NULL;
    }
    *n = 0;
}

/* same_value: whether option d has the same value in a and b. */
static int same_value(const mw_config_t *a, const mw_config_t *b, const mw_config_desc_t *d) {
    switch (d->type) {
    case MW_CONF_INT:
    case MW_CONF_BOOL: return int_at(a, d) == int_at(b, d);
    case MW_CONF_STRING: {
        const char *x = *string_at(a, d), *y = *string_at(b, d);
        return x == y || (x && y && strcmp(x, y) == 0);
    }
    case MW_CONF_STRLIST: {
        int *na, *nb;
        char **xa = list_at(a, d, &na), **xb = list_at(b, d, &nb);
        if (*na != *nb)
            return 0;
        for (int i = 0; i < *na; i++)
            if (strcmp(xa[i], xb[i]) != 0)
                return 0;
        return 1;
    }
    case MW_CONF_TABLE:
    default: return 1;
    }
}

/* Getters by name: an unknown key or another type reads as zero. */

static const mw_config_desc_t *find_typed(const char *key, mw_conf_type type) {
    const mw_config_desc_t *d = mw_config_find(key);
    return d && d->type == type ? d : NULL;
}

long long mw_config_get_int(const mw_config_t *cfg, const char *key) {
    const mw_config_desc_t *d = find_typed(key, MW_CONF_INT);
    return d ? int_at(cfg, d) : 0;
}

int mw_config_get_bool(const mw_config_t *cfg, const char *key) {
    const mw_config_desc_t *d = find_typed(key, MW_CONF_BOOL);
    return d ? (int)int_at(cfg, d) : 0;
}

const char *mw_config_get_string(const mw_config_t *cfg, const char *key) {
    const mw_config_desc_t *d = find_typed(key, MW_CONF_STRING);
    return d ? *string_at(cfg, d) : NULL;
}

char *const *mw_config_get_strlist(const mw_config_t *cfg, const char *key, int *n) {
    const mw_config_desc_t *d = find_typed(key, MW_CONF_STRLIST);
    int *count;
    if (!d) {
        *n = 0;
        return NULL;
    }
    char **items = list_at(cfg, d, &count);
    *n = *count;
    return items;
}

/* typed finds key for a setter of the given type, or explains in err. */
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
    set_int_at(cfg, d, v);
    return 0;
}

int mw_config_set_bool(mw_config_t *cfg, const char *key, int v, char *err, size_t errlen) {
    int rc;
    const mw_config_desc_t *d = typed(key, MW_CONF_BOOL, err, errlen, &rc);
    if (!d)
        return rc;
    set_int_at(cfg, d, v ? 1 : 0);
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
    const char *why = d->valid ? d->valid(v) : NULL;
    if (why)
        return fail(err, errlen, key, why);
    char *copy = strdup(v);
    if (!copy)
        return MW_ENOMEM;
    char **field = string_at(cfg, d);
    free(*field);
    *field = copy;
    return 0;
}

int mw_config_set_strlist(mw_config_t *cfg, const char *key, const char *const *items, int n,
                          char *err, size_t errlen) {
    int rc;
    const mw_config_desc_t *d = typed(key, MW_CONF_STRLIST, err, errlen, &rc);
    if (!d)
        return rc;
    if (n > MW_CONFIG_MAX_SUBPROTOCOLS)
        return fail(err, errlen, key, "too many entries (at most 16)");
    for (int i = 0; i < n && d->valid; i++) {
        const char *why = d->valid(items[i]);
        if (why)
            return fail(err, errlen, key, why);
    }
    int *count;
    char **list = list_at(cfg, d, &count);
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
        if (rc) {
            mw_config_free(cfg);
            return rc;
        }
    }
    return 0;
}

void mw_config_free(mw_config_t *cfg) {
    for (size_t i = 0; i < NDESCS; i++) {
        const mw_config_desc_t *d = &descs[i];
        if (d->type == MW_CONF_STRING) {
            free(*string_at(cfg, d));
        } else if (d->type == MW_CONF_STRLIST) {
            int *n;
            char **items = list_at(cfg, d, &n);
            clear_list(items, n);
        }
    }
    memset(cfg, 0, sizeof *cfg);
}

void mw_config_diff(const mw_config_t *a, const mw_config_t *b,
                    void (*each)(void *ud, const mw_config_desc_t *d), void *ud) {
    for (size_t i = 0; i < NDESCS; i++)
        if (descs[i].type != MW_CONF_TABLE && !same_value(a, b, &descs[i]))
            each(ud, &descs[i]);
}

int mw_config_copy_live(mw_config_t *dst, const mw_config_t *src) {
    /* Copy every string that will change into scratch first, so that
     * running out of memory leaves dst as it was; then move them in. */
    mw_config_t scratch;
    memset(&scratch, 0, sizeof scratch);
    for (size_t i = 0; i < NDESCS; i++) {
        const mw_config_desc_t *d = &descs[i];
        if (!d->live || same_value(dst, src, d))
            continue;
        if (d->type == MW_CONF_STRING) {
            const char *v = *string_at(src, d);
            if (v && !(*string_at(&scratch, d) = strdup(v)))
                goto nomem;
        } else if (d->type == MW_CONF_STRLIST) {
            int *from_n, *to_n;
            char **from = list_at(src, d, &from_n), **to = list_at(&scratch, d, &to_n);
            for (; *to_n < *from_n; (*to_n)++)
                if (!(to[*to_n] = strdup(from[*to_n])))
                    goto nomem;
        }
    }
    for (size_t i = 0; i < NDESCS; i++) {
        const mw_config_desc_t *d = &descs[i];
        if (!d->live || same_value(dst, src, d))
            continue;
        int *dst_n, *tmp_n;
        switch (d->type) {
        case MW_CONF_INT:
        case MW_CONF_BOOL: set_int_at(dst, d, int_at(src, d)); break;
        case MW_CONF_STRING:
            free(*string_at(dst, d));
            *string_at(dst, d) = *string_at(&scratch, d);
            *string_at(&scratch, d) = NULL;
            break;
        case MW_CONF_STRLIST: {
            char **to = list_at(dst, d, &dst_n), **tmp = list_at(&scratch, d, &tmp_n);
            clear_list(to, dst_n);
            memcpy(to, tmp, (size_t)*tmp_n * sizeof *tmp);
            *dst_n = *tmp_n;
            memset(tmp, 0, (size_t)*tmp_n * sizeof *tmp);
            *tmp_n = 0;
            break;
        }
        case MW_CONF_TABLE:
        default: break;
        }
    }
    return 0;
nomem:
    mw_config_free(&scratch);
    return MW_ENOMEM;
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
    if (cfg->api_port > 0 && !cfg->api_key[0])
        return fail(err, errlen, "api_port", "needs api_key (the server API is off without it)");
    if (cfg->api_port > 0 && (cfg->api_port == cfg->port || cfg->api_port == cfg->tls_port))
        return fail(err, errlen, "api_port", "must differ from port and tls_port");
    if (cfg->cluster && !cfg->redis_url[0])
        return fail(err, errlen, "cluster", "needs redis_url (the nodes meet through Redis)");
    for (int i = 0; i < cfg->nshared_dicts; i++)
        for (int j = 0; j < i; j++) {
            size_t n = strcspn(cfg->shared_dicts[i], ":");
            if (strncmp(cfg->shared_dicts[i], cfg->shared_dicts[j], n + 1) == 0)
                return fail(err, errlen, "shared_dicts", "a dict name appears twice");
        }
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
    int width = 0;
    for (size_t i = 0; i < NDESCS; i++)
        if ((int)strlen(descs[i].name) > width)
            width = (int)strlen(descs[i].name);
    for (size_t i = 0; i < NDESCS; i++) {
        const mw_config_desc_t *d = &descs[i];
        const char *def =
            d->default_value ? (d->default_value[0] ? d->default_value : "(none)") : "{}";
        fprintf(f, "  %-*s %-8s %-10s %s%s\n", width, d->name, types[d->type], def, d->help,
                d->live ? "" : " [restart]");
    }
    fprintf(f, "\nA reload (config.lua edited, or SIGHUP) applies every option but those\n"
               "marked [restart], which take effect when the server restarts.\n");
}
