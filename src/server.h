/*
 * server.h - the owner of everything a worker runs: the loop, listeners,
 * connections, configuration and counters, and the application it calls
 * through the callback table of app.h.
 *
 * Lifecycle: mw_server_create -> mw_server_listen -> mw_server_run (returns
 * after a graceful shutdown) -> mw_server_free.
 */
#ifndef MW_SERVER_H
#define MW_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "app.h"
#include "config.h"
#include "health.h"
#include "state.h"

/* mw_server_create makes a server for cfg (borrowed; must outlive it; a
 * reload may change its live options) on
 * loop, calling app (copied) for everything that enters the application.
 * app_dir is watched for hot reload. Returns 0 or MW_ENOMEM. */
int mw_server_create(mw_server_t **out, uv_loop_t *loop, mw_config_t *cfg, const char *app_dir,
                     const mw_app_t *app);

/* mw_server_set_config_loader makes each reload reread the configuration
 * with load: changed live options apply at once (the app gets them too),
 * each changed restart-only option is logged once with a warning and
 * listed in /health under restart_required. */
void mw_server_set_config_loader(mw_server_t *s, mw_config_loader_fn load, void *data);

/* mw_server_set_reload_report sends each reload's outcome to report
 * instead of the log (NULL: the log again); what report refuses is
 * logged as before. */
void mw_server_set_reload_report(mw_server_t *s, mw_reload_report_fn report, void *data);

/* mw_server_set_reload_note sends a reload's other log lines (a changed
 * restart-only option, the TLS certificate reread or not) to note as
 * well, with report's data (NULL: the log again). */
void mw_server_set_reload_note(mw_server_t *s, mw_reload_note_fn note);

/* mw_server_use_virtual_clock makes the server's time start_ms and move
 * only with mw_server_advance (for specs: heartbeats, throttle windows and
 * timeouts without waiting). Call it before mw_server_start. */
void mw_server_use_virtual_clock(mw_server_t *s, uint64_t start_ms);

/* mw_server_start starts the periodic passes (deadlines, heartbeats, idle
 * work) and the once-per-iteration flush, without listeners, signals or
 * file watchers: what a server needs to serve connections it is given
 * (mw_server_adopt). mw_server_run calls it. Returns 0. */
int mw_server_start(mw_server_t *s);

/* mw_server_advance moves the virtual clock forward by ms, running each
 * periodic pass when it falls due on the way, as the real timers would.
 * Does nothing on a real clock. */
void mw_server_advance(mw_server_t *s, uint64_t ms);

/* mw_server_adopt serves a connected stream socket (a socketpair end) as a
 * new connection, exactly like an accepted TCP one; peer_addr/peer_port are
 * what the app is told about the peer. The server owns fd from here on.
 * Returns 0, MW_ENOMEM or MW_EIO. */
int mw_server_adopt(mw_server_t *s, int fd, const char *peer_addr, int peer_port);

/* mw_server_abort drops every connection at once and closes the server's
 * handles; run the loop until it returns, then mw_server_free. */
void mw_server_abort(mw_server_t *s);

/* mw_server_attach_limits makes s count its connections for max_connections,
 * max_connections_per_ip, connection_rate_per_ip and
 * max_connections_per_user in the supervisor's zone on fd (shlimits.h), as
 * worker, instead of in its own tables. Returns 0, MW_EINVAL or MW_ENOMEM
 * (then s keeps counting alone). */
int mw_server_attach_limits(mw_server_t *s, int fd, int worker);

/* mw_server_set_listen_fds hands a worker the listening sockets its
 * supervisor bound (supervisor.h), in the order mw_server_listen opens
 * listeners: it listens on those instead of binding. */
#define MW_SERVER_MAX_LISTEN_FDS 3
void mw_server_set_listen_fds(mw_server_t *s, const int *fds, int n);

/* mw_server_set_worker makes worker `worker` (1..nworkers) of a
 * supervisor number its clients worker, worker + nworkers, ... so that a
 * client id names one client on the whole machine, whichever worker
 * serves it (an app keys shared dicts and messages' `from` by it). A
 * worker restarted in the same slot numbers from the start again. */
void mw_server_set_worker(mw_server_t *s, int worker, int nworkers);

/* mw_server_listen binds and listens on cfg->host:cfg->port and logs the
 * URL. With tls_cert set it first loads the certificate: then port serves
 * wss://, or tls_port does and port stays ws://. Returns 0, MW_ECONFIG (a
 * bad host or TLS file), MW_ENOMEM or MW_EIO (the error is logged). */
int mw_server_listen(mw_server_t *s);

/* mw_server_arm installs the signal handlers (SIGTERM/SIGINT: graceful
 * shutdown, SIGHUP: reload the app and the TLS certificate) and the file
 * watchers, once. Call it as soon as the server listens: a SIGTERM or a
 * file change once "listening on" is logged, while on_start still runs, is
 * then handled when the loop runs, not a kill or a change missed. */
void mw_server_arm(mw_server_t *s);

/* mw_server_run arms the server (if not done yet), runs the loop until the
 * shutdown completes, and returns the process exit status. */
int mw_server_run(mw_server_t *s);

/* mw_server_shutdown stops accepting, closes every client with 1001 and
 * lets the loop end once they are gone or shutdown_timeout has passed. */
void mw_server_shutdown(mw_server_t *s);

/* mw_server_reload reloads the app now (file change or SIGHUP), recording
 * the outcome for /health. */
void mw_server_reload(mw_server_t *s, const char *why);

/* mw_server_hangup does what SIGHUP does: reload the app (why "SIGHUP")
 * and, with TLS, the certificate. A supervisor asks its workers for it
 * over the hub (a signal could reach a worker before its handler). */
void mw_server_hangup(mw_server_t *s);

/* mw_server_set_reply stores a copy of a reply. When ts_len > 0, the
 * ts_len bytes at ts_off are a time stamp: each send puts the server's
 * wall-clock milliseconds there, so an event the core sends by itself
 * carries the time it is sent. Returns 0, MW_EINVAL (a stamp outside the
 * reply) or MW_ENOMEM (the previous reply stays). */
int mw_server_set_reply(mw_server_t *s, mw_reply_t which, const void *data, size_t len, int binary,
                        size_t ts_off, size_t ts_len);

/* mw_server_http_respond answers the HTTP request request_id (given to the
 * app with its http callback: mw_conn_request_id) with status, extra
 * header lines, content type and body, as mw_conn_respond says; during
 * the callback or at any time after. Returns 0, MW_ECLOSED (no request
 * with this id waits: answered already, or the client is gone) or
 * MW_EINVAL (see mw_conn_respond; the request still waits). */
int mw_server_http_respond(mw_server_t *s, uint64_t request_id, int status, const char *headers,
                           const char *content_type, const void *body, size_t len);

/* mw_server_set_health_route sends GET and HEAD /health to the app's http
 * callback (app = 1: the app serves its own /health) or answers them with
 * the core's document (app = 0, the default). */
void mw_server_set_health_route(mw_server_t *s, int app);

/* mw_server_set_rooms_elsewhere tells the core how many rooms have
 * members on other workers and none here (the Lua cluster's copy of the
 * hub's store knows them): /health's rooms and moonwire_rooms then count
 * every room of the server once. 0 with one process. */
void mw_server_set_rooms_elsewhere(mw_server_t *s, uint64_t n);

void mw_server_free(mw_server_t *s);

#endif
