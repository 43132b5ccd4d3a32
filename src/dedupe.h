/*
 * dedupe.h - duplicate suppression: has this client already been sent
 * this event?
 *
 * A client that opted in remembers the hashes of the last few event ids
 * delivered to it (a ring of event_cache_max_size entries, the oldest
 * forgotten first), so an event that reaches it twice (published again,
 * through two rooms) is queued once. Idle clients and clients that never
 * opted in hold nothing: the ring is allocated on the first event.
 */
#ifndef MW_DEDUPE_H
#define MW_DEDUPE_H

#include <stddef.h>
#include <stdint.h>

typedef struct mw_dedupe {
    uint64_t *seen; /* ring of hashes; NULL until the first event */
    uint32_t cap, n, pos;
} mw_dedupe_t;

/* mw_dedupe_hash turns an event id into the key the rings keep (FNV-1a;
 * 0 is reserved for "no event id", what a NULL id gives). */
uint64_t mw_dedupe_hash(const char *id, size_t len);

/* mw_dedupe_check records hash h in d, whose ring holds cap entries (the
 * capacity is fixed at the first call). Returns 1 when h was already
 * there (a duplicate: do not deliver), else 0, also when there is no
 * memory to remember it: delivering twice beats losing a message. */
int mw_dedupe_check(mw_dedupe_t *d, uint32_t cap, uint64_t h);

/* mw_dedupe_clear forgets everything (opting out, freeing the client). */
void mw_dedupe_clear(mw_dedupe_t *d);

#endif
