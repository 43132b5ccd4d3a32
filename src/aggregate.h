/*
 * aggregate.h - /health and /metrics of the whole server when it runs as
 * `workers = N`: each worker publishes a snapshot of its numbers into its
 * slot of the stats zone (stats.h) about once a second and whenever it
 * answers one of them, and the worker that answers merges every slot
 * (expo.h), so the documents say the same whichever worker the kernel gave
 * the connection (docs/operations.md).
 *
 * Counters stay monotonic across a worker's restart: a worker started in
 * place of one that exited first reads the slot's last snapshot and
 * carries its counters on in every snapshot it publishes (its gauges, the
 * dead process's "now", are dropped). Between the exit and the new
 * worker's first snapshot, readers count the old snapshot's counters and
 * not its gauges. What a worker counted after its last snapshot, when it
 * was killed, is lost (at most a second's worth).
 *
 * Not used with workers = 1: then s->agg is NULL and the documents are the
 * process's own, as they always were.
 */
#ifndef MW_AGGREGATE_H
#define MW_AGGREGATE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* How often a worker publishes on its own. */
#define MW_AGGREGATE_PERIOD_MS 1000

typedef struct mw_aggregate mw_aggregate_t;
typedef struct mw_server mw_server_t;

/* The whole server's /health numbers. */
typedef struct {
    uint64_t connections, rooms;                      /* the running workers' */
    uint64_t dropped, refused, rate_limited, reloads; /* every worker's, exited ones' too */
} mw_aggregate_totals_t;

/* mw_aggregate_attach makes server s worker number worker (1..N) of the
 * stats zone on the memfd fd: maps it, takes the counters its slot's
 * previous process left, and dates the server's start (uptime,
 * moonwire_start_time_seconds) from the zone's, the supervisor's start.
 * Returns 0, MW_EINVAL (fd is no zone, or worker no slot of it) or
 * MW_ENOMEM; s->agg is then NULL. */
int mw_aggregate_attach(mw_server_t *s, int fd, int worker);

/* mw_aggregate_free unmaps the zone and frees what the worker kept. */
void mw_aggregate_free(mw_aggregate_t *a);

/* mw_aggregate_tick publishes this worker's snapshot when the last is
 * MW_AGGREGATE_PERIOD_MS old (the server's periodic pass calls it). */
void mw_aggregate_tick(mw_server_t *s);

/* mw_aggregate_publish publishes this worker's snapshot now (at exit). */
void mw_aggregate_publish(mw_server_t *s);

/* mw_aggregate_begin publishes this worker's snapshot (unless it did in
 * the last few milliseconds), reads every worker's and merges them: the
 * view the documents are answered from, until mw_aggregate_end. Sets *t.
 * Returns 0 or MW_ENOMEM. Never waits on another worker. */
int mw_aggregate_begin(mw_server_t *s, mw_aggregate_totals_t *t);

/* mw_aggregate_workers_json writes ,"workers":[...] of the view: per
 * worker its number, pid, whether it runs, its snapshot's age and its own
 * numbers (docs/protocol.md, /health fields). */
void mw_aggregate_workers_json(mw_server_t *s, FILE *out);

/* mw_aggregate_value sets *v to the whole server's value of the metric
 * sample series ("moonwire_lua_memory_bytes") in the view. Returns 0, or
 * MW_ENOTFOUND (no view, no such sample). */
int mw_aggregate_value(mw_server_t *s, const char *series, uint64_t *v);

void mw_aggregate_end(mw_server_t *s);

/* mw_aggregate_metrics renders the whole server's /metrics: the merged
 * families, then per worker moonwire_worker_*. Returns a malloc'd buffer
 * of *len bytes, or NULL (no memory). */
char *mw_aggregate_metrics(mw_server_t *s, size_t *len);

#endif
