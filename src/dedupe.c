/*
 * dedupe.c - the per-client ring of recently delivered event hashes.
 *
 * A linear scan: the default ring holds 128 hashes (1 KiB, one or two
 * cache lines' worth of compares per delivery to an opted-in client). A
 * hash set would be the change if very large caches were wanted.
 */
#include "dedupe.h"

#include <stdlib.h>

uint64_t mw_dedupe_hash(const char *id, size_t len) {
    if (!id)
        return 0;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)id[i];
        h *= 0x100000001b3ULL;
    }
    return h ? h : 1;
}

int mw_dedupe_check(mw_dedupe_t *d, uint32_t cap, uint64_t h) {
    if (!d->seen) {
        if (cap == 0 || !(d->seen = malloc(cap * sizeof *d->seen)))
            return 0;
        d->cap = cap;
        d->n = d->pos = 0;
    }
    for (uint32_t i = 0; i < d->n; i++)
        if (d->seen[i] == h)
            return 1;
    d->seen[d->pos] = h;
    d->pos = (d->pos + 1) % d->cap;
    if (d->n < d->cap)
        d->n++;
    return 0;
}

void mw_dedupe_clear(mw_dedupe_t *d) {
    free(d->seen);
    d->seen = NULL;
    d->cap = d->n = d->pos = 0;
}
