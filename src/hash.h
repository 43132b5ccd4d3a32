/*
 * hash.h - the seeded hash of the tables whose keys come from outside:
 * room names (rooms.c), source addresses (iptable.c) and the keys an app
 * rate-limits (keylimit.c).
 *
 * FNV-1a over a seed chosen at random when the table is made keeps chains
 * short against chosen keys; the last step folds the high bits into the
 * low ones, which pick the bucket.
 */
#ifndef MW_HASH_H
#define MW_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* mw_hash_seed is a new table's seed: random, or the clock when the
 * system has no randomness to give. */
static inline uint64_t mw_hash_seed(void) {
    uint64_t seed;
    if (uv_random(NULL, NULL, &seed, sizeof seed, 0, NULL) != 0)
        seed = (uint64_t)uv_hrtime();
    return seed;
}

/* mw_hash hashes the len bytes at key under seed. */
static inline uint64_t mw_hash(uint64_t seed, const void *key, size_t len) {
    const unsigned char *p = key;
    uint64_t h = 0xcbf29ce484222325ULL ^ seed;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h ^ (h >> 29);
}

#endif
