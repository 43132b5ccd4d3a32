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
 * shutdown, SIGHUP: reload the app and the TLS certificate) and the file watchers, runs the loop until the
 * shutdown completes, and returns the process exit status. */
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

/* mw_server_close_client starts the closing handshake with that client.
 * Returns 0, MW_ECLOSED or MW_EINVAL (code or reason not sendable). */
int mw_server_close_client(mw_server_t *s, uint64_t id, uint16_t code, const char *reason,
                           size_t len);

void mw_server_free(mw_server_t *s);

#endif
