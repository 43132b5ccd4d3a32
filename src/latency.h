/*
 * latency.h - how long handling a message takes, per route, kept as a
 * Prometheus histogram (GET /metrics, docs/protocol.md).
 *
 * Routes are small numbers the app's side hands out (names.h); 0 is the
 * route of a message that was never routed. Recording a duration is, on
 * the per-message path, a lookup by the duration's top bit and one to
 * three compares, then two additions; the table grows only when a route
 * is seen for the first time. A zeroed mw_latency_t is an empty one. Bounds are fixed, from
 * 25 microseconds (a handler that never waits) to 10 seconds (one that
 * waits on a slow backend).
 */
#ifndef MW_LATENCY_H
#define MW_LATENCY_H

#include <stdint.h>
#include <stdio.h>

/* Finite upper bounds; a last bucket (+Inf) holds the rest. */
#define MW_LATENCY_BUCKETS 18

typedef struct {
    uint64_t counts[MW_LATENCY_BUCKETS + 1]; /* per bucket, not cumulative */
    uint64_t sum_ns;
} mw_latency_route_t;

typedef struct {
    mw_latency_route_t *routes; /* by route number */
    unsigned n;
    uint8_t first[64]; /* by the top bit of a duration: the first bucket it can be in */
} mw_latency_t;

/* mw_latency_observe records that a message of this route took ns
 * nanoseconds. Out of memory (a route seen for the first time), the
 * duration is not recorded. */
void mw_latency_observe(mw_latency_t *l, unsigned route, uint64_t ns);

/* The label value of a route number (NULL: leave the route out). */
typedef const char *(*mw_latency_name_fn)(void *data, unsigned route);

/* mw_latency_write writes the family moonwire_<family> (HELP, TYPE
 * histogram, then _bucket, _sum and _count per route that recorded
 * anything, labelled route="<name>"). Sums are in seconds. */
void mw_latency_write(const mw_latency_t *l, FILE *out, const char *family, const char *help,
                      mw_latency_name_fn name, void *data);

/* mw_latency_bound_ns is the upper bound of bucket b (< MW_LATENCY_BUCKETS). */
uint64_t mw_latency_bound_ns(int b);

void mw_latency_free(mw_latency_t *l);

#endif
