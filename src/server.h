/*
 * server.h - the owner of everything a worker runs: the loop, listeners,
 * connections, the script (Lua app), configuration and counters.
 *
 * Lifecycle: mw_server_create -> mw_server_listen -> mw_server_run (returns
 * after a graceful shutdown) -> mw_server_free.
 */
#ifndef MW_SERVER_H
#define MW_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"

typedef struct mw_server mw_server_t;
typedef struct mw_script mw_script_t;

/* mw_server_create makes a server for cfg (borrowed; must outlive it) on
 * loop. app_dir is watched for hot reload. Returns 0 or MW_ENOMEM. */
int mw_server_create(mw_server_t **out, uv_loop_t *loop, const mw_config_t *cfg,
                     const char *app_dir, mw_script_t *script);

/* mw_server_listen binds and listens on cfg->host:cfg->port and logs the
 * URL. With tls_cert set it first loads the certificate: then port serves
 * wss://, or tls_port does and port stays ws://. Returns 0, MW_ECONFIG (a
 * bad host or TLS file), MW_ENOMEM or MW_EIO (the error is logged). */
int mw_server_listen(mw_server_t *s);

/* mw_server_run installs signal handlers (SIGTERM/SIGINT: graceful
 * shutdown, SIGHUP: reload the app and the TLS certificate) and the file watchers, runs the loop
 * until the shutdown completes, and returns the process exit status. */
int mw_server_run(mw_server_t *s);

/* mw_server_shutdown stops accepting, closes every client with 1001 and
 * lets the loop end once they are gone or shutdown_timeout has passed. */
void mw_server_shutdown(mw_server_t *s);

/* mw_server_reload reloads the app now (file change or SIGHUP), recording
 * the outcome for /health. */
void mw_server_reload(mw_server_t *s, const char *why);

/* mw_server_send sends a message to the client with this id.
 * Returns 0, MW_ECLOSED (no such open client), MW_EUTF8 or MW_ENOMEM. */
int mw_server_send(mw_server_t *s, uint64_t id, int binary, const void *data, size_t len);

/* Replies the C core sends without calling Lua, encoded by the app's
 * protocol (the runtime sets them at start and after every reload). */
typedef enum {
    MW_REPLY_RATE_LIMITED, /* a message refused by rate_limit */
    MW_REPLY_PING,         /* the app protocol's ping event (app_ping) */
    MW_REPLY_COUNT
} mw_reply_t;

/* mw_server_set_reply stores a copy of a reply. Returns 0, MW_EINVAL or
 * MW_ENOMEM (the previous reply stays). */
int mw_server_set_reply(mw_server_t *s, mw_reply_t which, const void *data, size_t len, int binary);

/* Per-route throttles: slots 0..MW_MAX_THROTTLES-1, numbered by Lua. */
#define MW_MAX_THROTTLES 64

/* mw_server_throttle: see mw_conn_throttle; MW_ECLOSED for an unknown id. */
int mw_server_throttle(mw_server_t *s, uint64_t id, unsigned slot, uint64_t window_ms,
                       uint64_t max);

/* mw_server_set_expiry: see mw_conn_set_expiry; MW_ECLOSED for an unknown id. */
int mw_server_set_expiry(mw_server_t *s, uint64_t id, int64_t ms, uint16_t code, const char *reason,
                         size_t len);

/* mw_server_close_client starts the closing handshake with that client.
 * Returns 0, MW_ECLOSED or MW_EINVAL (code or reason not sendable). */
int mw_server_close_client(mw_server_t *s, uint64_t id, uint16_t code, const char *reason,
                           size_t len);

void mw_server_free(mw_server_t *s);

#endif
