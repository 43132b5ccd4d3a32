/*
 * keylimit.c - a chained hash table of GCRA cells with a least recently
 * used list (see keylimit.h).
 *
 * Keys come from the app, often from client data (a user id, a room
 * name), so the hash is seeded at creation (hash.h) to keep chains short
 * against chosen keys. The LRU list
 * runs from the least recently used entry (head->next) to the most
 * recently used (head->prev); every take moves its key to the end.
 */
#include "keylimit.h"
#include "errors.h"
#include "hash.h"
#include "list.h"
#include "ratelimit.h"

#include <stdlib.h>
#include <string.h>

typedef struct entry entry_t;
struct entry {
    entry_t *next; /* hash chain */
    mw_list_t lru;
    uint64_t tat; /* the key's cell */
    uint64_t hash;
    size_t len;
    char key[];
};

struct mw_keylimit {
    mw_rate_t rate;
    entry_t **buckets;
    size_t nbuckets, count, max_keys;
    uint64_t seed, evicted;
    mw_list_t lru;
};

#define INITIAL_BUCKETS 16
/* Idle keys each take may forget: more than one, so that the table
 * shrinks faster than a steady stream of new keys grows it. */
#define IDLE_PER_TAKE 2

int mw_keylimit_create(mw_keylimit_t **out, uint64_t window_ms, uint64_t max, size_t max_keys) {
    if (window_ms == 0 || max == 0 || max_keys == 0)
        return MW_EINVAL;
    mw_keylimit_t *t = calloc(1, sizeof *t);
    if (!t)
        return MW_ENOMEM;
    t->buckets = calloc(INITIAL_BUCKETS, sizeof *t->buckets);
    if (!t->buckets) {
        free(t);
        return MW_ENOMEM;
    }
    t->nbuckets = INITIAL_BUCKETS;
    t->max_keys = max_keys;
    mw_rate_init(&t->rate, window_ms, max);
    mw_list_init(&t->lru);
    t->seed = mw_hash_seed();
    *out = t;
    return 0;
}

void mw_keylimit_free(mw_keylimit_t *t) {
    if (!t)
        return;
    while (!mw_list_empty(&t->lru)) {
        entry_t *e = mw_list_entry(t->lru.next, entry_t, lru);
        mw_list_remove(&e->lru);
        free(e);
    }
    free(t->buckets);
    free(t);
}

/* slot is where key's entry is in its chain, or where it would go. */
static entry_t **slot(const mw_keylimit_t *t, uint64_t hash, const char *key, size_t len) {
    entry_t **p = &t->buckets[hash & (t->nbuckets - 1)];
    while (*p && ((*p)->hash != hash || (*p)->len != len || memcmp((*p)->key, key, len) != 0))
        p = &(*p)->next;
    return p;
}

/* forget unlinks e from its chain and the LRU list and frees it. */
static void forget(mw_keylimit_t *t, entry_t *e) {
    entry_t **p = slot(t, e->hash, e->key, e->len);
    *p = e->next;
    mw_list_remove(&e->lru);
    free(e);
    t->count--;
}

/* grow doubles the bucket array when the table is denser than one entry
 * per bucket. Failing to grow only makes chains longer. */
static void grow(mw_keylimit_t *t) {
    size_t n = t->nbuckets * 2;
    entry_t **b = calloc(n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        entry_t *e = t->buckets[i];
        while (e) {
            entry_t *next = e->next;
            size_t j = e->hash & (n - 1);
            e->next = b[j];
            b[j] = e;
            e = next;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
}

/* forget_idle forgets up to n idle keys from the least recently used end. */
static void forget_idle(mw_keylimit_t *t, uint64_t now_us, int n) {
    while (n-- > 0 && !mw_list_empty(&t->lru)) {
        entry_t *e = mw_list_entry(t->lru.next, entry_t, lru);
        if (!mw_rate_idle(e->tat, now_us))
            return;
        forget(t, e);
    }
}

int mw_keylimit_take(mw_keylimit_t *t, const char *key, size_t len, uint64_t now_us,
                     uint64_t *retry_us) {
    if (len > MW_KEYLIMIT_KEY_MAX)
        return MW_EINVAL;
    forget_idle(t, now_us, IDLE_PER_TAKE);
    uint64_t hash = mw_hash(t->seed, key, len);
    entry_t **p = slot(t, hash, key, len);
    entry_t *e = *p;
    if (!e) {
        if (t->count >= t->max_keys) {
            forget(t, mw_list_entry(t->lru.next, entry_t, lru));
            t->evicted++;
            p = slot(t, hash, key, len);
        }
        if (t->count >= t->nbuckets) {
            grow(t);
            p = slot(t, hash, key, len);
        }
        e = malloc(sizeof *e + len);
        if (!e)
            return MW_ENOMEM;
        e->next = NULL;
        e->tat = 0;
        e->hash = hash;
        e->len = len;
        memcpy(e->key, key, len);
        mw_list_init(&e->lru);
        *p = e;
        t->count++;
    } else {
        mw_list_remove(&e->lru);
    }
    mw_list_insert_tail(&t->lru, &e->lru);
    if (mw_rate_take(&t->rate, &e->tat, now_us))
        return 0;
    if (retry_us)
        *retry_us = e->tat - now_us - t->rate.tolerance_us;
    return MW_ERATE;
}

size_t mw_keylimit_sweep(mw_keylimit_t *t, uint64_t now_us) {
    mw_list_t *n = t->lru.next;
    while (n != &t->lru) {
        entry_t *e = mw_list_entry(n, entry_t, lru);
        n = n->next;
        if (mw_rate_idle(e->tat, now_us))
            forget(t, e);
    }
    return t->count;
}

size_t mw_keylimit_size(const mw_keylimit_t *t) {
    return t->count;
}

uint64_t mw_keylimit_evicted(const mw_keylimit_t *t) {
    return t->evicted;
}
