/*
 * stats.h - the stats zone: where each worker of `workers = N` leaves a
 * snapshot of its numbers for the others, so that /health and /metrics
 * answer for the whole server whichever worker the kernel gave the
 * connection (docs/architecture.md, "The stats zone").
 *
 * One memfd, made by the supervisor like the shared dicts and inherited by
 * every worker (MW_STATS_FD), with one slot per worker. A slot holds two
 * buffers and two generation counters: the worker writes snapshot n into
 * buffer n % 2 between `begun = n` and `done = n`; a reader copies buffer
 * done % 2 and keeps the copy only if `begun` has not reached done + 2
 * meanwhile (the only write that could have touched that buffer). So a
 * reader never takes a lock and never waits for a writer: a worker stopped
 * (SIGSTOP) or killed in the middle of a write leaves the previous
 * snapshot readable, merely old. Only the worker of a slot writes its
 * snapshots; the supervisor writes the slot's pid and restart count.
 *
 * A snapshot is the fixed numbers /health shows per worker and the
 * worker's metrics exposition (metrics.h, in its internal form that says
 * how each family merges). The zone knows nothing of their meaning: merging
 * is expo.h's, publishing and reading for the server is aggregate.h's.
 */
#ifndef MW_STATS_H
#define MW_STATS_H

#include <stddef.h>
#include <stdint.h>

/* The most bytes of exposition a snapshot holds. */
#define MW_STATS_TEXT_MAX (1024 * 1024)

typedef struct mw_stats mw_stats_t;

/* The fixed numbers of a snapshot. Counters count since the first worker
 * of the slot started (a restarted worker carries its predecessor's on). */
typedef struct {
    int64_t pid;           /* the process that published it */
    uint64_t published_ms; /* when, on the monotonic clock (the same in every process) */
    uint64_t started_ms;   /* when that process started, on the wall clock */
    uint64_t connections;  /* gauges */
    uint64_t rooms;
    uint64_t dropped; /* counters */
    uint64_t refused;
    uint64_t rate_limited;
    uint64_t reloads;
} mw_stats_numbers_t;

/* A reader's copy of a snapshot; its text buffer is reused from one read
 * to the next. A zeroed one is empty. */
typedef struct {
    mw_stats_numbers_t n;
    char *text; /* len bytes, not NUL-terminated; malloc'd */
    size_t len, cap;
} mw_stats_snapshot_t;

/* mw_stats_create maps a new zone of nworkers slots (1..64), each for
 * snapshots of up to text_max bytes of text, on a memfd (close-on-exec,
 * its descriptor in *fd, for workers to attach; pages are taken only as
 * they are written). Returns 0, MW_EINVAL or MW_ENOMEM. */
int mw_stats_create(mw_stats_t **out, int nworkers, size_t text_max, int *fd);

/* mw_stats_attach maps the zone another process made on the memfd fd.
 * Returns 0, MW_EINVAL (not a stats zone) or MW_ENOMEM. The fd stays the
 * caller's. */
int mw_stats_attach(mw_stats_t **out, int fd);

/* mw_stats_free unmaps the zone (the data stays for the other mappers). */
void mw_stats_free(mw_stats_t *st);

/* How many slots (workers 1..N), and when the zone was made (the wall
 * clock in ms: the server's start). */
int mw_stats_workers(const mw_stats_t *st);
uint64_t mw_stats_created_ms(const mw_stats_t *st);

/* The supervisor's side: worker (1..N) now runs as pid, or has exited
 * (pid 0). mw_stats_spawned counts a restart when the slot ran before. */
void mw_stats_spawned(mw_stats_t *st, int worker, int64_t pid);
void mw_stats_exited(mw_stats_t *st, int worker);

/* mw_stats_process is what the supervisor says of worker's slot: the pid
 * running it now (0: none) and how many times it was started again. */
void mw_stats_process(const mw_stats_t *st, int worker, int64_t *pid, uint32_t *restarts);

/* mw_stats_publish makes n and the concatenation of text (len bytes) and
 * text2 (len2 bytes) worker's snapshot. Only the worker of the slot calls
 * it. Returns 0, MW_ETOOBIG (over the zone's text_max: nothing is
 * published) or MW_EINVAL (no such slot). Lock-free: a plain copy and two
 * stores. */
int mw_stats_publish(mw_stats_t *st, int worker, const mw_stats_numbers_t *n, const char *text,
                     size_t len, const char *text2, size_t len2);

/* mw_stats_read copies worker's last snapshot into snap. Returns 0,
 * MW_ENOTFOUND (it never published), MW_ENOMEM, or MW_EBUSY when the
 * writer published twice during each of several copies (then snap's len
 * is 0). Never waits. */
int mw_stats_read(const mw_stats_t *st, int worker, mw_stats_snapshot_t *snap);

/* mw_stats_snapshot_free frees snap's text (snap may be reused). */
void mw_stats_snapshot_free(mw_stats_snapshot_t *snap);

#endif
