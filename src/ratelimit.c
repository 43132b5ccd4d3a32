/*
 * ratelimit.c - GCRA (see ratelimit.h). A cell's state is its theoretical
 * arrival time: each allowed event pushes it one interval further; an event
 * is refused when that time is more than the tolerance ahead of now.
 */
#include "ratelimit.h"

void mw_rate_init(mw_rate_t *r, uint64_t window_ms, uint64_t max) {
    if (window_ms == 0 || max == 0) {
        r->interval_us = r->tolerance_us = 0;
        return;
    }
    uint64_t window_us = window_ms * 1000;
    r->interval_us = window_us / max;
    if (r->interval_us == 0)
        r->interval_us = 1; /* more than one event per microsecond: as good as unlimited */
    r->tolerance_us = window_us - r->interval_us;
}

int mw_rate_enabled(const mw_rate_t *r) {
    return r->interval_us != 0;
}

int mw_rate_take(const mw_rate_t *r, uint64_t *tat, uint64_t now_us) {
    if (!r->interval_us)
        return 1;
    uint64_t t = *tat > now_us ? *tat : now_us;
    if (t - now_us > r->tolerance_us)
        return 0;
    *tat = t + r->interval_us;
    return 1;
}

int mw_rate_idle(uint64_t tat, uint64_t now_us) {
    return tat <= now_us;
}
