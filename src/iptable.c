/*
 * iptable.c - a chained hash table of source addresses (see iptable.h).
 *
 * Addresses come from the network, so the hash is seeded at start-up
 * (hash.h) to keep chains short against chosen addresses (an IPv6 /64
 * gives an attacker plenty to choose from).
 */
#include "iptable.h"
#include "errors.h"
#include "hash.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef struct entry entry_t;
struct entry {
    entry_t *next;
    mw_ipkey_t key;
    uint32_t open; /* admitted connections still open */
    uint64_t tat;  /* new-connection rate cell */
};

struct mw_iptable {
    entry_t **buckets;
    size_t nbuckets, count;
    uint64_t seed;
};

#define INITIAL_BUCKETS 64

int mw_ipkey_from_sockaddr(const struct sockaddr *sa, mw_ipkey_t *key) {
    memset(key, 0, sizeof *key);
    if (sa->sa_family == AF_INET6) {
        memcpy(key->b, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return 0;
    }
    if (sa->sa_family == AF_INET) {
        key->b[10] = key->b[11] = 0xff;
        memcpy(key->b + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 0;
    }
    return MW_EINVAL;
}

static uint64_t hash_key(uint64_t seed, const mw_ipkey_t *k) {
    return mw_hash(seed, k->b, sizeof k->b);
}

int mw_iptable_create(mw_iptable_t **out) {
    mw_iptable_t *t = calloc(1, sizeof *t);
    if (!t)
        return MW_ENOMEM;
    t->buckets = calloc(INITIAL_BUCKETS, sizeof *t->buckets);
    if (!t->buckets) {
        free(t);
        return MW_ENOMEM;
    }
    t->nbuckets = INITIAL_BUCKETS;
    t->seed = mw_hash_seed();
    *out = t;
    return 0;
}

void mw_iptable_free(mw_iptable_t *t) {
    if (!t)
        return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        entry_t *e = t->buckets[i];
        while (e) {
            entry_t *next = e->next;
            free(e);
            e = next;
        }
    }
    free(t->buckets);
    free(t);
}

static entry_t **slot(const mw_iptable_t *t, const mw_ipkey_t *key) {
    entry_t **p = &t->buckets[hash_key(t->seed, key) & (t->nbuckets - 1)];
    while (*p && memcmp((*p)->key.b, key->b, 16) != 0)
        p = &(*p)->next;
    return p;
}

/* grow doubles the bucket array when the table is denser than one entry
 * per bucket. Failing to grow only makes chains longer. */
static void grow(mw_iptable_t *t) {
    size_t n = t->nbuckets * 2;
    entry_t **b = calloc(n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        entry_t *e = t->buckets[i];
        while (e) {
            entry_t *next = e->next;
            size_t j = hash_key(t->seed, &e->key) & (n - 1);
            e->next = b[j];
            b[j] = e;
            e = next;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
}

int mw_iptable_admit(mw_iptable_t *t, const mw_ipkey_t *key, uint64_t now_us, const mw_rate_t *rate,
                     uint32_t max_open) {
    entry_t **p = slot(t, key);
    entry_t *e = *p;
    if (!e) {
        if (t->count >= t->nbuckets) {
            grow(t);
            p = slot(t, key);
        }
        e = calloc(1, sizeof *e);
        if (!e)
            return MW_ENOMEM;
        e->key = *key;
        *p = e;
        t->count++;
    }
    if (max_open && e->open >= max_open)
        return MW_EBUSY;
    if (!mw_rate_take(rate, &e->tat, now_us))
        return MW_ERATE;
    e->open++;
    return 0;
}

void mw_iptable_release(mw_iptable_t *t, const mw_ipkey_t *key) {
    entry_t *e = *slot(t, key);
    if (e && e->open)
        e->open--;
}

uint32_t mw_iptable_open(const mw_iptable_t *t, const mw_ipkey_t *key) {
    entry_t *e = *slot(t, key);
    return e ? e->open : 0;
}

size_t mw_iptable_sweep(mw_iptable_t *t, uint64_t now_us) {
    for (size_t i = 0; i < t->nbuckets; i++) {
        entry_t **p = &t->buckets[i];
        while (*p) {
            entry_t *e = *p;
            if (e->open == 0 && mw_rate_idle(e->tat, now_us)) {
                *p = e->next;
                free(e);
                t->count--;
            } else {
                p = &e->next;
            }
        }
    }
    return t->count;
}
