/*
 * stats.h - latency histogram for moonwire-bench.
 *
 * A log-linear histogram (HdrHistogram's idea, much smaller): values below
 * 128 ns get their own bucket, every power of two above is split into 128
 * buckets, so a percentile is off by less than 0.8%. Recording is a few
 * integer operations and no allocation, which matters at millions of
 * samples per second.
 */
#ifndef MW_BENCH_STATS_H
#define MW_BENCH_STATS_H

#include <stdint.h>

typedef struct mw_bench_hist mw_bench_hist_t;

/* Returns a new empty histogram, or NULL when out of memory. */
mw_bench_hist_t *mw_bench_hist_new(void);
void mw_bench_hist_free(mw_bench_hist_t *h);
void mw_bench_hist_reset(mw_bench_hist_t *h);

/* Records one latency in nanoseconds. Never fails; values beyond about
 * 18 minutes land in the last bucket (max stays exact). */
void mw_bench_hist_record(mw_bench_hist_t *h, uint64_t ns);

uint64_t mw_bench_hist_count(const mw_bench_hist_t *h);
uint64_t mw_bench_hist_max(const mw_bench_hist_t *h);
double mw_bench_hist_mean(const mw_bench_hist_t *h);

/* The value (ns) below which `pct` percent of the samples fall: the upper
 * edge of the bucket holding that rank, clamped to max. 0 when empty. */
uint64_t mw_bench_hist_percentile(const mw_bench_hist_t *h, double pct);

#endif
