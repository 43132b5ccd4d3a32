/*
 * expo.h - merging metrics expositions: the texts every worker publishes
 * (stats.h), summed into the one /metrics of the whole server.
 *
 * The input is the Prometheus text format as metrics.h writes it, in its
 * internal form: a family's TYPE line may name how its samples merge
 * ("# TYPE moonwire_x gauge max"). A sample is merged with the sample of
 * the same name and labels from the other texts: summed by default
 * (counters, histogram buckets, sums and counts, and gauges that are
 * amounts, such as connections), or the largest or smallest value for the
 * families that say max or min (a limit every worker has, a zone they
 * share, an up/down flag). Families keep the order in which they were
 * first seen, and samples their order within a family; a family or sample
 * only one text has is kept as it is.
 *
 * Values are exact: integers as 64-bit integers, decimals with up to nine
 * digits (the histograms' sums in seconds) as fixed-point nanounits;
 * anything else (exponents) falls back to a double.
 */
#ifndef MW_EXPO_H
#define MW_EXPO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct mw_expo mw_expo_t;

/* mw_expo_add flags. */
enum {
    /* Only counters and histograms: the numbers of a worker that no longer
     * runs still count, its gauges (what it had "now") do not. */
    MW_EXPO_COUNTERS_ONLY = 1
};

/* mw_expo_create makes an empty merge. Returns 0 or MW_ENOMEM. */
int mw_expo_create(mw_expo_t **out);

/* mw_expo_add merges the len bytes of text in. Lines that are neither
 * HELP, TYPE nor a sample are skipped. Returns 0 or MW_ENOMEM (part of
 * the text may then be in). */
int mw_expo_add(mw_expo_t *e, const char *text, size_t len, int flags);

/* mw_expo_write writes the merge in the text format; internal keeps each
 * TYPE line's merge rule (for a text that is merged again), otherwise the
 * output is plain Prometheus 0.0.4. */
void mw_expo_write(const mw_expo_t *e, FILE *out, int internal);

/* mw_expo_value sets *v to the merged value of the sample named series
 * (name and labels as written, e.g. "moonwire_rooms"), its integer part.
 * Returns 0 or MW_ENOTFOUND. */
int mw_expo_value(const mw_expo_t *e, const char *series, uint64_t *v);

void mw_expo_free(mw_expo_t *e);

#endif
