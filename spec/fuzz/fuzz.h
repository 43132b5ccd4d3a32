/*
 * fuzz.h - what the libFuzzer targets in spec/fuzz/ share: a check that
 * aborts (libFuzzer then saves the input as a crash), and the split
 * schedules that cut one input into the reads a socket could have made.
 *
 * Each target feeds its input several ways — in one read, one byte per
 * read, and in reads of pseudo-random sizes — and compares the results.
 * The random sizes come from a hash of the input, so a crash file always
 * replays the same reads.
 */
#ifndef MW_FUZZ_H
#define MW_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* FUZZ_CHECK is assert() that NDEBUG cannot remove: a broken invariant is
 * a finding, reported like any crash. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

enum { FUZZ_WHOLE, FUZZ_BYTES, FUZZ_RANDOM, FUZZ_NSPLITS };

typedef struct {
    int mode;
    uint64_t state; /* xorshift64 state for FUZZ_RANDOM */
} fuzz_split_t;

static inline fuzz_split_t fuzz_split_init(int mode, const uint8_t *data, size_t len) {
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ data[i]) * 0x100000001b3ULL;
    fuzz_split_t s = {mode, h | 1};
    return s;
}

static inline uint64_t fuzz_rand(fuzz_split_t *s) {
    s->state ^= s->state << 13;
    s->state ^= s->state >> 7;
    s->state ^= s->state << 17;
    return s->state;
}

/* fuzz_next_chunk returns the size of the next read (at least 1 when
 * left > 0). Random reads are mostly small, sometimes the whole rest. */
static inline size_t fuzz_next_chunk(fuzz_split_t *s, size_t left) {
    size_t n = left;
    if (s->mode == FUZZ_BYTES) {
        n = 1;
    } else if (s->mode == FUZZ_RANDOM) {
        uint64_t r = fuzz_rand(s);
        switch (r & 3) {
        case 0: n = 1 + (r >> 8) % 4; break;
        case 1: n = 1 + (r >> 8) % 32; break;
        case 2: n = 1 + (r >> 8) % 512; break;
        default: break;
        }
    }
    return n < left ? n : left;
}

#endif
