/*
 * ratelimit.h - rate limits as GCRA cells: "at most N events per window".
 *
 * The generic cell rate algorithm is a token bucket stored as one number,
 * the time at which the bucket would be full again (the theoretical
 * arrival time). Eight bytes per limited thing, no timer, no refill pass:
 * cheap enough for every connection and every source address.
 */
#ifndef MW_RATELIMIT_H
#define MW_RATELIMIT_H

#include <stdint.h>

/* A limit: max events per window_ms, all of them allowed in one burst. */
typedef struct {
    uint64_t interval_us;  /* window / max: the spacing at the sustained rate */
    uint64_t tolerance_us; /* window - interval: how far ahead a burst may run */
} mw_rate_t;

/* mw_rate_init sets a limit of max events per window_ms. max == 0 or
 * window_ms == 0 means "no limit" (mw_rate_take always allows). */
void mw_rate_init(mw_rate_t *r, uint64_t window_ms, uint64_t max);

/* mw_rate_enabled tells whether r limits anything. */
int mw_rate_enabled(const mw_rate_t *r);

/* mw_rate_take counts one event at now_us against the cell *tat (0 for a
 * fresh cell). Returns 1 and updates *tat when allowed, 0 when over the
 * limit (the cell is left as it was, so refused events cost nothing). */
int mw_rate_take(const mw_rate_t *r, uint64_t *tat, uint64_t now_us);

/* mw_rate_idle tells whether a cell is back to full at now_us: its state no
 * longer matters and may be forgotten. */
int mw_rate_idle(uint64_t tat, uint64_t now_us);

#endif
