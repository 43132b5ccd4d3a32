/*
 * stats.c - the latency histogram of moonwire-bench (see stats.h).
 *
 * Owns only counters. Bucket b < 128 holds the value b; above that, a value
 * v with its highest set bit at e (e >= 7) goes to (e - 6) * 128 + the 7
 * bits below the highest one. 41 powers of two cover ~18 minutes in ns.
 */
#include "stats.h"

#include <stdlib.h>
#include <string.h>

#define SUB_BITS 7
#define SUB_COUNT (1u << SUB_BITS)
#define MAX_EXP 40
#define NBUCKETS ((MAX_EXP - SUB_BITS + 2) * SUB_COUNT)

struct mw_bench_hist {
    uint64_t count, max;
    double sum;
    uint64_t buckets[NBUCKETS];
};

static unsigned bucket_of(uint64_t v) {
    if (v < SUB_COUNT)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    if (e > MAX_EXP)
        return NBUCKETS - 1;
    unsigned sub = (unsigned)(v >> (e - SUB_BITS)) & (SUB_COUNT - 1);
    return (e - SUB_BITS + 1) * SUB_COUNT + sub;
}

/* The largest value that maps to bucket b. */
static uint64_t bucket_top(unsigned b) {
    if (b < SUB_COUNT)
        return b;
    unsigned e = b / SUB_COUNT + SUB_BITS - 1;
    uint64_t sub = b % SUB_COUNT;
    uint64_t lo = (1ull << e) | (sub << (e - SUB_BITS));
    return lo + (1ull << (e - SUB_BITS)) - 1;
}

mw_bench_hist_t *mw_bench_hist_new(void) {
    return calloc(1, sizeof(mw_bench_hist_t));
}

void mw_bench_hist_free(mw_bench_hist_t *h) {
    free(h);
}

void mw_bench_hist_reset(mw_bench_hist_t *h) {
    memset(h, 0, sizeof(*h));
}

void mw_bench_hist_record(mw_bench_hist_t *h, uint64_t ns) {
    h->buckets[bucket_of(ns)]++;
    h->count++;
    h->sum += (double)ns;
    if (ns > h->max)
        h->max = ns;
}

uint64_t mw_bench_hist_count(const mw_bench_hist_t *h) {
    return h->count;
}

uint64_t mw_bench_hist_max(const mw_bench_hist_t *h) {
    return h->max;
}

double mw_bench_hist_mean(const mw_bench_hist_t *h) {
    return h->count ? h->sum / (double)h->count : 0.0;
}

uint64_t mw_bench_hist_percentile(const mw_bench_hist_t *h, double pct) {
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)((double)h->count * pct / 100.0 + 0.5);
    if (rank < 1)
        rank = 1;
    if (rank > h->count)
        rank = h->count;
    uint64_t seen = 0;
    for (unsigned b = 0; b < NBUCKETS; b++) {
        seen += h->buckets[b];
        if (seen >= rank) {
            uint64_t top = bucket_top(b);
            return top < h->max ? top : h->max;
        }
    }
    return h->max;
}
