/*
 * throttle.h - how fast one connection may send: the per-connection
 * message limit (rate_limit) and the per-route limits apps declare with
 * _throttle, each a GCRA cell of ratelimit.h.
 *
 * These functions decide; the connection acts on the decision (drops the
 * message, answers RATE_LIMIT_EXCEEDED, closes with 1008). The state is
 * a few words kept only by connections that are limited.
 */
#ifndef MW_THROTTLE_H
#define MW_THROTTLE_H

#include <stdint.h>

#include "ratelimit.h"

/* Per-route throttles: slots 0..MW_MAX_THROTTLES-1, numbered by Lua. */
#define MW_MAX_THROTTLES 64

typedef struct mw_throttle {
    uint64_t msg_tat;    /* rate_limit's cell, in µs */
    uint32_t violations; /* messages refused by rate_limit in a row */
    uint8_t nroutes;
    uint64_t *routes; /* per-route cells, by slot; NULL until one is used */
} mw_throttle_t;

typedef enum {
    MW_THROTTLE_PASS,   /* let the message through */
    MW_THROTTLE_REFUSE, /* drop it and tell the client */
    MW_THROTTLE_CLOSE   /* max_violations refusals in a row: close 1008 */
} mw_throttle_verdict_t;

/* mw_throttle_message counts one message against rate at now_us;
 * max_violations 0 never closes. */
mw_throttle_verdict_t mw_throttle_message(mw_throttle_t *t, const mw_rate_t *rate,
                                          uint32_t max_violations, uint64_t now_us);

/* mw_throttle_route counts one message of the route in slot against max
 * per window_ms. Returns 0 (allowed), MW_ERATE (over), MW_EINVAL (slot
 * out of range) or MW_ENOMEM. */
int mw_throttle_route(mw_throttle_t *t, unsigned slot, uint64_t window_ms, uint64_t max,
                      uint64_t now_us);

void mw_throttle_free(mw_throttle_t *t);

#endif
