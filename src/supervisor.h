/*
 * supervisor.h - `workers = N`: one master process that binds the
 * listeners and keeps N worker processes running.
 *
 * The nginx model: the master binds every listening socket once, then
 * starts each worker as a fresh `moonwire serve` process (uv_spawn, so no
 * thread or Lua state crosses a fork) that inherits the sockets and
 * accepts from them. A worker has its own loop and Lua state; one that
 * exits without being asked (a crash, a runaway loop past script_timeout
 * that had to be killed) is started again with backoff while the others
 * keep serving. SIGHUP is passed on to every worker over the hub (each
 * reloads and reports its outcome; the master logs one line per distinct
 * outcome, naming the workers), SIGTERM and SIGINT by signal (each shuts
 * down gracefully), and the master exits when the last one has.
 *
 * A worker learns that it is one from its environment: MW_WORKER (its
 * number, 1..N), MW_LISTEN_FDS (the inherited listeners, in the order
 * mw_server_listen opens them) and MW_SHDICT_FDS (the memfds of the
 * shared dicts the master made, in the order of shared_dicts, inherited
 * after the listeners; the worker attaches them instead of making its own)
 * and MW_STATS_FD (the stats zone, where each worker leaves its numbers
 * for the others' /health and /metrics: aggregate.h), MW_LIMITS_FD (the
 * connection counts the limits check for the whole server: shlimits.h)
 * and MW_READY_FD (a pipe it writes once it serves: a worker that exits
 * before it ever did stops the server, see supervisor.c).
 */
#ifndef MW_SUPERVISOR_H
#define MW_SUPERVISOR_H

#include "config.h"

/* The most listeners a server opens: ws/wss, a separate wss, the API. */
#define MW_MAX_LISTENERS 3

/* mw_supervisor_run binds cfg's listeners, starts nworkers workers
 * (cfg's workers, 0 resolved to the number of cores) running argv (the
 * master's own command line) and supervises them until
 * they all exited after SIGTERM/SIGINT. Returns the exit status: 0 after a
 * graceful stop, 1 when the listeners cannot be bound, 2 for a bad host,
 * and the worker's own status when a worker failed before it served. */
int mw_supervisor_run(const mw_config_t *cfg, int nworkers, char **argv);

/* mw_worker_id is this process's worker number (1..N), or 0 when it is not
 * a worker of a supervisor. */
int mw_worker_id(void);

/* mw_worker_watch_parent makes a worker receive SIGTERM when its
 * supervisor dies. Returns 0, or -1 when the supervisor is already gone
 * (the worker should exit). Does nothing outside a worker. */
int mw_worker_watch_parent(void);

/* mw_worker_listen_fds reads MW_LISTEN_FDS into fds (at most
 * MW_MAX_LISTENERS). Returns how many, 0 when not a worker. */
int mw_worker_listen_fds(int *fds);

/* mw_worker_shdict_fds reads MW_SHDICT_FDS into fds (at most max).
 * Returns how many, 0 when not a worker or there are none. */
int mw_worker_shdict_fds(int *fds, int max);

/* mw_worker_stats_fd is MW_STATS_FD, the memfd of the stats zone (stats.h),
 * or -1 when not a worker or the supervisor has none. */
int mw_worker_stats_fd(void);

/* mw_worker_limits_fd is MW_LIMITS_FD, the memfd of the server-wide
 * connection counts (shlimits.h), or -1 outside a worker. */
int mw_worker_limits_fd(void);

/* mw_worker_ready tells the supervisor this worker listens and runs its
 * app (a byte on MW_READY_FD): from then on, its exit is a crash to
 * restart, not a boot failure that stops the server. Does nothing outside
 * a worker or after the first call. */
void mw_worker_ready(void);

#endif
