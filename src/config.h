/*
 * config.h - every server option, described once.
 *
 * One table of descriptors (name, field, type, default, bounds, validator,
 * live or restart-only, help) drives parsing, validation, environment
 * overrides, --help, the config table Lua sees and what a reload applies
 * (Redis's static_configs[] shape). Adding an option is its field below,
 * one line in that table and one row in docs/configuration.md.
 *
 * Values come from the app's config.lua (read by src/lua/), then
 * MOONWIRE_<KEY> environment variables, then command-line flags; each layer
 * goes through the same setters, so each error names the key the same way.
 */
#ifndef MW_CONFIG_H
#define MW_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#define MW_CONFIG_MAX_OPTIONS 128     /* at least the number of descriptors */
#define MW_CONFIG_MAX_SUBPROTOCOLS 16 /* also the bound of every list option */

typedef enum {
    MW_CONF_INT,     /* integer within [min, max] */
    MW_CONF_BOOL,    /* true/false */
    MW_CONF_STRING,  /* free string, optionally one of a fixed set */
    MW_CONF_STRLIST, /* array of strings (env/flags: comma-separated) */
    MW_CONF_TABLE    /* opaque table for the application (config.app) */
} mw_conf_type;

typedef struct mw_config {
    char *host;
    int port;
    int tls_port;   /* -1: when TLS is on, port itself serves wss:// */
    char *tls_cert; /* "" when TLS is off */
    char *tls_key;
    char *tls_min_version; /* "1.2" or "1.3" */
    char *path;
    char *subprotocols[MW_CONFIG_MAX_SUBPROTOCOLS];
    int nsubprotocols;
    long long max_message_size;
    int max_header_bytes;
    int handshake_timeout;      /* ms */
    int http_max_body;          /* bytes of a plain HTTP request's body */
    int http_keepalive_timeout; /* ms an idle keep-alive connection stays; 0: none */
    int close_timeout;          /* ms */
    int shutdown_timeout;       /* ms */
    int welcome;
    char *log_level;
    char *log_format;
    int reload;
    int reload_debounce; /* ms */
    /* rooms and fan-out */
    int max_connections_per_room; /* 0 = unlimited */
    int max_rooms_per_client;     /* 0 = unlimited */
    int client_can_join_multiple_rooms;
    long long max_buffered_bytes;
    char *slow_consumer_policy; /* "drop" or "close" */
    int event_cache_max_size;
    int dedupe;
    char *presence[MW_CONFIG_MAX_SUBPROTOCOLS];
    int npresence;
    int system_controller;
    int allow_client_broadcast;
    /* limits (docs/security.md) */
    int max_connections;        /* 0 = as many as open files allow */
    int max_connections_per_ip; /* 0 = unlimited */
    int connection_rate_per_ip; /* new connections per second, 0 = unlimited */
    char *allowed_origins[MW_CONFIG_MAX_SUBPROTOCOLS];
    int nallowed_origins; /* 0 = any origin */
    int rate_limit_window_ms;
    int rate_limit_max_messages;   /* 0 = unlimited */
    int rate_limit_max_violations; /* 0 = never close */
    int ping_interval;             /* ms, 0 = no pings */
    int pong_timeout;              /* ms */
    int app_ping;                  /* also send the protocol's ping event */
    int inactive_time;             /* ms, 0 = never */
    int inactive_check_interval;   /* ms */
    /* authentication (docs/security.md); the checks themselves are Lua */
    char *api_key;  /* Authorization: apikey KEY for /metrics and /api/ (apikey.c) */
    int api_port;   /* 0: /api/ on port; else /api/ only here */
    char *api_host; /* where api_port listens */
    char *jwt_secret;
    char *jwt_public_key; /* path of a PEM file */
    char *jwt_algorithms[MW_CONFIG_MAX_SUBPROTOCOLS];
    int njwt_algorithms;
    char *jwt_issuer;
    char *jwt_audience;
    int jwt_leeway; /* s */
    int auth_at_upgrade;
    int require_auth;
    int auth_timeout;             /* ms */
    int max_connections_per_user; /* 0 = unlimited */
    /* Lua isolation (docs/security.md) */
    int script_timeout;         /* ms; 0 = no watchdog */
    int max_pending_messages;   /* queued while a client's handler waits */
    long long lua_memory_limit; /* bytes; 0 = unlimited */
    int workers;                /* worker processes (supervisor.c); 1 = no supervisor */
    /* the event bus (docs/subscribers.md) */
    char *redis_url;        /* the app's Redis: ctx.redis of a subscriber */
    int subscriber_timeout; /* ms; 0 = no limit */
    int bus_max_depth;      /* nested emits */
    int bus_max_pending;    /* handlers in flight */
    /* nodes through Redis (docs/scaling.md) */
    int cluster;
    char *node_id;    /* "": a random id per start */
    int presence_ttl; /* ms */
    /* shared dicts (src/shdict.h): "name:size" entries, mapped at start */
    char *shared_dicts[MW_CONFIG_MAX_SUBPROTOCOLS];
    int nshared_dicts;
} mw_config_t;

/* mw_config_valid_fn checks one value of a string option, or one entry of
 * a list option: NULL when v is acceptable, else why not ("must not be
 * empty"), which the setter puts after the key. */
typedef const char *mw_config_valid_fn(const char *v);

/* One option. The struct field is found by offset, so the descriptor line
 * is the only place an option is named (Redis's standardConfig shape); the
 * table in config.c builds these with macros that check the field's type. */
typedef struct {
    const char *name; /* also the field's name in mw_config_t */
    mw_conf_type type;
    const char *default_value;  /* as text, parsed by the same code as env */
    long long min, max;         /* MW_CONF_INT */
    const char *const *choices; /* MW_CONF_STRING: NULL-terminated, or NULL */
    mw_config_valid_fn *valid;  /* STRING: the value, STRLIST: each entry; or NULL */
    size_t offset;              /* of the field in mw_config_t (not MW_CONF_TABLE) */
    size_t size;                /* MW_CONF_INT: sizeof the field (int or long long) */
    size_t count_offset;        /* MW_CONF_STRLIST: of the int holding the count */
    int live;                   /* 1: a reload applies a change; 0: needs a restart */
    const char *help;
} mw_config_desc_t;

/* mw_config_init fills cfg with every default. Returns 0 or MW_ENOMEM. */
int mw_config_init(mw_config_t *cfg);

/* mw_config_free releases the strings cfg owns. */
void mw_config_free(mw_config_t *cfg);

/* mw_config_find returns the descriptor of key, or NULL when unknown. */
const mw_config_desc_t *mw_config_find(const char *key);

/* mw_config_descs returns the descriptor table and its length. */
const mw_config_desc_t *mw_config_descs(size_t *n);

/* Typed setters used when reading config.lua. Each returns 0, or MW_ECONFIG
 * with a message in err that starts with the key ("port: must be ..."). */
int mw_config_set_int(mw_config_t *cfg, const char *key, long long v, char *err, size_t errlen);
int mw_config_set_bool(mw_config_t *cfg, const char *key, int v, char *err, size_t errlen);
int mw_config_set_string(mw_config_t *cfg, const char *key, const char *v, char *err,
                         size_t errlen);
int mw_config_set_strlist(mw_config_t *cfg, const char *key, const char *const *items, int n,
                          char *err, size_t errlen);

/* mw_config_set_text parses v according to the key's type, as given in an
 * environment variable or on the command line. Same return as the setters;
 * an unknown key is MW_ECONFIG too ("unknown key"). */
int mw_config_set_text(mw_config_t *cfg, const char *key, const char *v, char *err, size_t errlen);

/* Typed getters, so code that walks the descriptor table (the Lua config
 * table, dumps) needs no per-key code. The key must exist with that type. */
long long mw_config_get_int(const mw_config_t *cfg, const char *key);
int mw_config_get_bool(const mw_config_t *cfg, const char *key);
const char *mw_config_get_string(const mw_config_t *cfg, const char *key);
char *const *mw_config_get_strlist(const mw_config_t *cfg, const char *key, int *n);

/* mw_config_diff calls each(ud, d) for every option whose value differs
 * between a and b, in descriptor order. MW_CONF_TABLE options (app) are
 * skipped: their value lives in Lua. */
void mw_config_diff(const mw_config_t *a, const mw_config_t *b,
                    void (*each)(void *ud, const mw_config_desc_t *d), void *ud);

/* mw_config_copy_live copies the value of every live option (d->live) from
 * src into dst, deep-copying strings and lists; restart-only options of dst
 * are left as they are, and so are options whose value is already equal
 * (their strings keep their address). All or nothing: on MW_ENOMEM dst is
 * unchanged. Returns 0 or MW_ENOMEM. */
int mw_config_copy_live(mw_config_t *dst, const mw_config_t *src);

/* mw_config_check checks the rules that tie options together, once every
 * layer is applied: tls_cert and tls_key come together, tls_port needs
 * them and differs from port. Returns 0, or MW_ECONFIG with a message in
 * err that starts with the key at fault. */
int mw_config_check(const mw_config_t *cfg, char *err, size_t errlen);

/* mw_config_apply_env applies every MOONWIRE_<KEY> variable in envp.
 * Variables that are not options (MOONWIRE_LUA_DIR) are skipped; any other
 * unknown MOONWIRE_ variable is an error naming it. */
int mw_config_apply_env(mw_config_t *cfg, char **envp, char *err, size_t errlen);

/* mw_config_print_help lists every option with its type, default and help,
 * marking with "[restart]" those a reload does not apply. */
void mw_config_print_help(FILE *f);

#endif
