/*
 * config.h - every server option, described once.
 *
 * One table of descriptors (name, type, default, bounds, help) drives
 * parsing, validation, environment overrides, --help and the dump in
 * `moonwire check` (Redis's static_configs[] shape). Values come from the
 * app's config.lua (read by src/lua/), then MOONWIRE_<KEY> environment
 * variables, then command-line flags; each layer goes through the same
 * setters, so each error names the key the same way.
 */
#ifndef MW_CONFIG_H
#define MW_CONFIG_H

#include <stddef.h>
#include <stdio.h>

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
    int handshake_timeout; /* ms */
    int close_timeout;     /* ms */
    int shutdown_timeout;  /* ms */
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
    long long lua_memory_limit; /* bytes; 0 = unlimited */
} mw_config_t;

typedef struct {
    const char *name;
    mw_conf_type type;
    const char *default_value;  /* as text, parsed by the same code as env */
    long long min, max;         /* MW_CONF_INT */
    const char *const *choices; /* MW_CONF_STRING: NULL-terminated, or NULL */
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

/* mw_config_check checks the rules that tie options together, once every
 * layer is applied: tls_cert and tls_key come together, tls_port needs
 * them and differs from port. Returns 0, or MW_ECONFIG with a message in
 * err that starts with the key at fault. */
int mw_config_check(const mw_config_t *cfg, char *err, size_t errlen);

/* mw_config_apply_env applies every MOONWIRE_<KEY> variable in envp.
 * Variables that are not options (MOONWIRE_LUA_DIR) are skipped; any other
 * unknown MOONWIRE_ variable is an error naming it. */
int mw_config_apply_env(mw_config_t *cfg, char **envp, char *err, size_t errlen);

/* mw_config_print_help lists every option with its type, default and help. */
void mw_config_print_help(FILE *f);

#endif
