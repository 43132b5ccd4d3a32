/*
 * throttle.c - the message-rate decisions of one connection.
 */
#include "throttle.h"
#include "errors.h"

#include <stdlib.h>
#include <string.h>

mw_throttle_verdict_t mw_throttle_message(mw_throttle_t *t, const mw_rate_t *rate,
                                          uint32_t max_violations, uint64_t now_us) {
    if (mw_rate_take(rate, &t->msg_tat, now_us)) {
        t->violations = 0;
        return MW_THROTTLE_PASS;
    }
    t->violations++;
    if (max_violations && t->violations >= max_violations)
        return MW_THROTTLE_CLOSE;
    return MW_THROTTLE_REFUSE;
}

int mw_throttle_route(mw_throttle_t *t, unsigned slot, uint64_t window_ms, uint64_t max,
                      uint64_t now_us) {
    if (slot >= MW_MAX_THROTTLES)
        return MW_EINVAL;
    if (slot >= t->nroutes) {
        uint64_t *cells = realloc(t->routes, (slot + 1) * sizeof *cells);
        if (!cells)
            return MW_ENOMEM;
        memset(cells + t->nroutes, 0, (slot + 1 - t->nroutes) * sizeof *cells);
        t->routes = cells;
        t->nroutes = (uint8_t)(slot + 1);
    }
    mw_rate_t r;
    mw_rate_init(&r, window_ms, max);
    return mw_rate_take(&r, &t->routes[slot], now_us) ? 0 : MW_ERATE;
}

void mw_throttle_free(mw_throttle_t *t) {
    free(t->routes);
    t->routes = NULL;
    t->nroutes = 0;
}
