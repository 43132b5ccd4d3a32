/*
 * keylimit.h - rate limits per key: "at most N events per window for each
 * user" (or room, or channel), for the limits an app declares in Lua
 * (moonwire.handlers.with_rate_limit, the rate_limit middleware).
 *
 * A table has one limit and a cell (ratelimit.h) per key, a key being any
 * byte string the app chooses. It is bounded: it never holds more than
 * max_keys cells. A cell back to full says nothing a fresh cell would not,
 * so each call forgets a few such idle keys from the least recently used
 * end (no timer, no sweep pass); when the table is still full of keys that
 * are counting, the least recently used one is forgotten (its limit starts
 * over) and counted as evicted, so a flood of new keys costs the oldest
 * key its history rather than memory or time.
 */
#ifndef MW_KEYLIMIT_H
#define MW_KEYLIMIT_H

#include <stddef.h>
#include <stdint.h>

/* The longest key a table takes, in bytes. */
#define MW_KEYLIMIT_KEY_MAX 1024

typedef struct mw_keylimit mw_keylimit_t;

/* mw_keylimit_create makes a table limiting each key to max events per
 * window_ms, holding at most max_keys keys. Returns 0, MW_EINVAL (a zero
 * argument) or MW_ENOMEM. */
int mw_keylimit_create(mw_keylimit_t **out, uint64_t window_ms, uint64_t max, size_t max_keys);

void mw_keylimit_free(mw_keylimit_t *t);

/* mw_keylimit_take counts one event of the len bytes at key at now_us.
 * Returns 0 (allowed), MW_ERATE (over the limit: nothing is counted and
 * *retry_us, when retry_us is not NULL, is how long until an event of this
 * key would be allowed), MW_EINVAL (a key over MW_KEYLIMIT_KEY_MAX bytes)
 * or MW_ENOMEM. */
int mw_keylimit_take(mw_keylimit_t *t, const char *key, size_t len, uint64_t now_us,
                     uint64_t *retry_us);

/* mw_keylimit_sweep forgets every idle key. Returns how many keys remain. */
size_t mw_keylimit_sweep(mw_keylimit_t *t, uint64_t now_us);

/* mw_keylimit_size is how many keys the table holds now. */
size_t mw_keylimit_size(const mw_keylimit_t *t);

/* mw_keylimit_evicted is how many keys still counting were forgotten
 * because the table was full. */
uint64_t mw_keylimit_evicted(const mw_keylimit_t *t);

#endif
