/*
 * test_utf8.c - the incremental UTF-8 validator (src/utf8.c).
 *
 * Covers valid 1-4 byte forms and every boundary code point, overlongs,
 * surrogates, values past U+10FFFF, stray and missing continuation bytes,
 * fail-fast position, sticky failure, every split of every valid sequence
 * across feeds, the Autobahn case 6 vectors, and an exhaustive comparison of
 * all 1-3 byte inputs (and many 4 byte ones) with a reference decoder.
 */
#include "errors.h"
#include "utf8.h"
#include "test.h"

#include <stdint.h>

typedef struct {
    const char *name;
    const uint8_t *p;
    size_t len;
} vec_t;

#define V(name, ...)                                                                               \
    { name, (const uint8_t[]){__VA_ARGS__}, sizeof((uint8_t[]){__VA_ARGS__}) }

static const vec_t valid_vecs[] = {
    V("U+0000", 0x00),
    V("U+007F", 0x7F),
    V("U+0080", 0xC2, 0x80),
    V("U+00A9", 0xC2, 0xA9),
    V("U+07FF", 0xDF, 0xBF),
    V("U+0800", 0xE0, 0xA0, 0x80),
    V("U+20AC", 0xE2, 0x82, 0xAC),
    V("U+D7FF", 0xED, 0x9F, 0xBF),
    V("U+E000", 0xEE, 0x80, 0x80),
    V("U+FFFD", 0xEF, 0xBF, 0xBD),
    V("U+FFFF", 0xEF, 0xBF, 0xBF),
    V("U+10000", 0xF0, 0x90, 0x80, 0x80),
    V("U+1F600", 0xF0, 0x9F, 0x98, 0x80),
    V("U+3FFFF", 0xF0, 0xBF, 0xBF, 0xBF),
    V("U+40000", 0xF1, 0x80, 0x80, 0x80),
    V("U+FFFFF", 0xF3, 0xBF, 0xBF, 0xBF),
    V("U+100000", 0xF4, 0x80, 0x80, 0x80),
    V("U+10FFFF", 0xF4, 0x8F, 0xBF, 0xBF),
    /* Autobahn 6.2.1: "κόσμε" */
    V("kosme", 0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5),
    V("ascii", 'H', 'e', 'l', 'l', 'o'),
    V("mixed", 'a', 0xC2, 0x80, 'b', 0xE0, 0xA0, 0x80, 'c', 0xF4, 0x8F, 0xBF, 0xBF, 'd'),
};

/* Invalid inputs and the index of the first byte that makes them invalid:
 * a fail-fast validator must report the error exactly when that byte is fed. */
typedef struct {
    vec_t v;
    size_t bad; /* index of the offending byte */
} bad_vec_t;

#define B(bad, name, ...)                                                                          \
    { V(name, __VA_ARGS__), bad }

static const bad_vec_t invalid_vecs[] = {
    B(0, "overlong C0 80", 0xC0, 0x80),
    B(0, "overlong C1 BF", 0xC1, 0xBF),
    B(1, "overlong E0 80 80", 0xE0, 0x80, 0x80),
    B(1, "overlong E0 9F BF", 0xE0, 0x9F, 0xBF),
    B(1, "overlong F0 80 80 80", 0xF0, 0x80, 0x80, 0x80),
    B(1, "overlong F0 8F BF BF", 0xF0, 0x8F, 0xBF, 0xBF),
    B(1, "surrogate ED A0 80", 0xED, 0xA0, 0x80),
    B(1, "surrogate ED AD BF", 0xED, 0xAD, 0xBF),
    B(1, "surrogate ED BF BF", 0xED, 0xBF, 0xBF),
    B(1, "U+110000 F4 90 80 80", 0xF4, 0x90, 0x80, 0x80),
    B(1, "F4 BF BF BF", 0xF4, 0xBF, 0xBF, 0xBF),
    B(0, "F5", 0xF5, 0x80, 0x80, 0x80),
    B(0, "F7", 0xF7, 0xBF, 0xBF, 0xBF),
    B(0, "F8 (5-byte form)", 0xF8, 0x88, 0x80, 0x80, 0x80),
    B(0, "FC (6-byte form)", 0xFC, 0x84, 0x80, 0x80, 0x80, 0x80),
    B(0, "FE", 0xFE),
    B(0, "FF", 0xFF),
    B(0, "lone continuation 80", 0x80),
    B(0, "lone continuation BF", 0xBF),
    B(2, "continuation after ASCII", 'a', 'b', 0x80, 'c'),
    B(1, "C2 then ASCII", 0xC2, 0x41),
    B(1, "C2 then lead byte", 0xC2, 0xC2, 0x80),
    B(2, "E2 82 then ASCII", 0xE2, 0x82, 0x41),
    B(3, "F0 9F 98 then ASCII", 0xF0, 0x9F, 0x98, 0x41),
    B(3, "extra continuation", 0xC2, 0x80, 'x', 0x80),
    /* Autobahn 6.3.1: "κόσμε" + ED A0 80 (a surrogate) + "edited" */
    B(12, "autobahn 6.3.1", 0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5, 0xED,
      0xA0, 0x80, 0x65, 0x64, 0x69, 0x74, 0x65, 0x64),
    /* Autobahn 6.4.1-6.4.2: "κόσμε" + F4 90 80 80 + "edited" */
    B(12, "autobahn 6.4.1", 0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5, 0xF4,
      0x90, 0x80, 0x80, 0x65, 0x64, 0x69, 0x74, 0x65, 0x64),
    /* Autobahn 6.4.3-6.4.4: the 4-byte form of U+0 after "κόσμε" */
    B(12, "autobahn 6.4.3", 0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5, 0xF0,
      0x80, 0x80, 0x80, 0x65, 0x64, 0x69, 0x74, 0x65, 0x64),
};

/* Truncated at the end: every prefix is fine, but the input is not. */
static const vec_t truncated_vecs[] = {
    V("C2", 0xC2),
    V("E2 82", 0xE2, 0x82),
    V("E0", 0xE0),
    V("F0 9F 98", 0xF0, 0x9F, 0x98),
    V("F4 8F", 0xF4, 0x8F),
    V("kosme + CE", 0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5, 0xCE),
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Feeds p in the given chunk sizes (the last one repeats); returns the first
 * error, or the result of finish. */
static int feed_chunks(const uint8_t *p, size_t len, size_t chunk) {
    mw_utf8_t st = MW_UTF8_INIT;
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        int rc = mw_utf8_feed(&st, p + off, n);
        if (rc)
            return rc;
    }
    return mw_utf8_finish(&st);
}

/* Feeds one byte at a time; returns the index of the byte at which feed
 * failed, or -1 when every feed returned 0. */
static long fail_index(const uint8_t *p, size_t len) {
    mw_utf8_t st = MW_UTF8_INIT;
    for (size_t i = 0; i < len; i++)
        if (mw_utf8_feed(&st, p + i, 1) != 0)
            return (long)i;
    return -1;
}

static void test_valid_vectors(void) {
    for (size_t i = 0; i < COUNT(valid_vecs); i++) {
        const vec_t *v = &valid_vecs[i];
        mw_utf8_t st = MW_UTF8_INIT;
        if (mw_utf8_feed(&st, v->p, v->len) != 0 || mw_utf8_finish(&st) != 0)
            fprintf(stderr, "  refused: %s\n", v->name);
        CHECK_EQ(mw_utf8_valid(v->p, v->len), 1);
        CHECK_EQ(feed_chunks(v->p, v->len, 1), 0);
    }
    CHECK_EQ(mw_utf8_valid(NULL, 0), 1);
    mw_utf8_t st = MW_UTF8_INIT;
    CHECK_EQ(mw_utf8_feed(&st, NULL, 0), 0);
    CHECK_EQ(mw_utf8_finish(&st), 0);
}

static void test_invalid_vectors(void) {
    for (size_t i = 0; i < COUNT(invalid_vecs); i++) {
        const bad_vec_t *b = &invalid_vecs[i];
        mw_utf8_t st = MW_UTF8_INIT;
        int rc = mw_utf8_feed(&st, b->v.p, b->v.len);
        if (rc != MW_EUTF8)
            fprintf(stderr, "  accepted: %s\n", b->v.name);
        CHECK_EQ(rc, MW_EUTF8);
        CHECK_EQ(mw_utf8_finish(&st), MW_EUTF8);
        CHECK_EQ(mw_utf8_valid(b->v.p, b->v.len), 0);
    }
}

static void test_fails_fast_at_the_bad_byte(void) {
    for (size_t i = 0; i < COUNT(invalid_vecs); i++) {
        const bad_vec_t *b = &invalid_vecs[i];
        long at = fail_index(b->v.p, b->v.len);
        if (at != (long)b->bad)
            fprintf(stderr, "  %s: failed at %ld\n", b->v.name, at);
        CHECK_EQ(at, b->bad);
        /* The valid prefix before the bad byte is accepted in one feed. */
        mw_utf8_t st = MW_UTF8_INIT;
        CHECK_EQ(mw_utf8_feed(&st, b->v.p, b->bad), 0);
        /* The bad byte with valid ASCII after it still fails that feed. */
        uint8_t tail[8] = {b->v.p[b->bad], 'o', 'k', 'o', 'k', 'o', 'k', 'o'};
        CHECK_EQ(mw_utf8_feed(&st, tail, sizeof tail), MW_EUTF8);
    }
}

static void test_truncated_input_fails_on_finish(void) {
    for (size_t i = 0; i < COUNT(truncated_vecs); i++) {
        const vec_t *v = &truncated_vecs[i];
        mw_utf8_t st = MW_UTF8_INIT;
        CHECK_EQ(mw_utf8_feed(&st, v->p, v->len), 0);
        CHECK_EQ(mw_utf8_finish(&st), MW_EUTF8);
        CHECK_EQ(mw_utf8_valid(v->p, v->len), 0);
        CHECK_EQ(fail_index(v->p, v->len), -1);
    }
}

static void test_failure_is_sticky(void) {
    mw_utf8_t st = MW_UTF8_INIT;
    CHECK_EQ(mw_utf8_feed(&st, (const uint8_t *)"\xFF", 1), MW_EUTF8);
    CHECK_EQ(mw_utf8_feed(&st, (const uint8_t *)"abc", 3), MW_EUTF8);
    CHECK_EQ(mw_utf8_feed(&st, NULL, 0), MW_EUTF8);
    CHECK_EQ(mw_utf8_finish(&st), MW_EUTF8);

    /* A failure in the middle of a sequence, then what would complete it. */
    mw_utf8_t st2 = MW_UTF8_INIT;
    CHECK_EQ(mw_utf8_feed(&st2, (const uint8_t *)"\xE2", 1), 0);
    CHECK_EQ(mw_utf8_feed(&st2, (const uint8_t *)"A", 1), MW_EUTF8);
    CHECK_EQ(mw_utf8_feed(&st2, (const uint8_t *)"\x82\xAC", 2), MW_EUTF8);
    CHECK_EQ(mw_utf8_finish(&st2), MW_EUTF8);
}

/* Every valid vector split at every position into two feeds, then into
 * three feeds at every pair of positions. */
static void test_every_split_of_valid_sequences(void) {
    for (size_t v = 0; v < COUNT(valid_vecs); v++) {
        const uint8_t *p = valid_vecs[v].p;
        size_t len = valid_vecs[v].len;
        for (size_t i = 0; i <= len; i++) {
            mw_utf8_t st = MW_UTF8_INIT;
            CHECK_EQ(mw_utf8_feed(&st, p, i), 0);
            CHECK_EQ(mw_utf8_feed(&st, p + i, len - i), 0);
            CHECK_EQ(mw_utf8_finish(&st), 0);
            for (size_t j = i; j <= len; j++) {
                mw_utf8_t s3 = MW_UTF8_INIT;
                CHECK_EQ(mw_utf8_feed(&s3, p, i), 0);
                CHECK_EQ(mw_utf8_feed(&s3, p + i, j - i), 0);
                CHECK_EQ(mw_utf8_feed(&s3, p + j, len - j), 0);
                CHECK_EQ(mw_utf8_finish(&s3), 0);
            }
        }
    }
}

/* The narrowed range of the byte after E0, ED, F0 and F4 must survive a
 * feed boundary. */
static void test_every_split_of_invalid_sequences(void) {
    for (size_t v = 0; v < COUNT(invalid_vecs); v++) {
        const uint8_t *p = invalid_vecs[v].v.p;
        size_t len = invalid_vecs[v].v.len;
        for (size_t i = 0; i <= len; i++) {
            mw_utf8_t st = MW_UTF8_INIT;
            int r1 = mw_utf8_feed(&st, p, i);
            int r2 = mw_utf8_feed(&st, p + i, len - i);
            CHECK_EQ(r1 == MW_EUTF8 || r2 == MW_EUTF8, 1);
            CHECK_EQ(r1 == MW_EUTF8, i > invalid_vecs[v].bad);
            CHECK_EQ(mw_utf8_finish(&st), MW_EUTF8);
        }
    }
}

static void test_an_empty_feed_keeps_the_state(void) {
    mw_utf8_t st = MW_UTF8_INIT;
    CHECK_EQ(mw_utf8_feed(&st, (const uint8_t *)"\xF0", 1), 0);
    CHECK_EQ(mw_utf8_feed(&st, NULL, 0), 0);
    CHECK_EQ(mw_utf8_finish(&st), MW_EUTF8);
    CHECK_EQ(mw_utf8_feed(&st, (const uint8_t *)"\x8F", 1), MW_EUTF8); /* overlong */
}

/* Reference: decode one sequence the slow way. Returns its length if p[0..len)
 * is exactly one well-formed UTF-8 scalar value, else 0. */
static size_t ref_one(const uint8_t *p, size_t len) {
    uint32_t cp;
    size_t n;
    if (p[0] < 0x80) {
        cp = p[0], n = 1;
    } else if ((p[0] & 0xE0) == 0xC0) {
        cp = p[0] & 0x1F, n = 2;
    } else if ((p[0] & 0xF0) == 0xE0) {
        cp = p[0] & 0x0F, n = 3;
    } else if ((p[0] & 0xF8) == 0xF0) {
        cp = p[0] & 0x07, n = 4;
    } else {
        return 0;
    }
    if (n > len)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

static int ref_valid(const uint8_t *p, size_t len) {
    size_t i = 0;
    while (i < len) {
        size_t n = ref_one(p + i, len - i);
        if (!n)
            return 0;
        i += n;
    }
    return 1;
}

static void test_exhaustive_against_reference(void) {
    uint8_t b[4];
    long mismatches = 0;
    for (unsigned x = 0; x < 256; x++) {
        b[0] = (uint8_t)x;
        mismatches += mw_utf8_valid(b, 1) != ref_valid(b, 1);
        for (unsigned y = 0; y < 256; y++) {
            b[1] = (uint8_t)y;
            mismatches += mw_utf8_valid(b, 2) != ref_valid(b, 2);
            for (unsigned z = 0; z < 256; z++) {
                b[2] = (uint8_t)z;
                if (mw_utf8_valid(b, 3) != ref_valid(b, 3)) {
                    if (mismatches < 5)
                        fprintf(stderr, "  mismatch %02X %02X %02X\n", x, y, z);
                    mismatches++;
                }
            }
        }
    }
    /* 4 bytes: every lead from F0 and every second byte, with the other two
     * continuation bytes at and just outside their range. */
    static const uint8_t edge[] = {0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xFF};
    for (unsigned x = 0xF0; x < 256; x++)
        for (unsigned y = 0; y < 256; y++)
            for (size_t z = 0; z < sizeof edge; z++)
                for (size_t w = 0; w < sizeof edge; w++) {
                    b[0] = (uint8_t)x, b[1] = (uint8_t)y, b[2] = edge[z], b[3] = edge[w];
                    mismatches += mw_utf8_valid(b, 4) != ref_valid(b, 4);
                }
    CHECK_EQ(mismatches, 0);
}

/* The eight-bytes-at-a-time ASCII skip: a sequence (valid or not) placed at
 * every offset of a long ASCII run, fed whole and split at every position,
 * must give the reference answer, so no byte is ever skipped unchecked.
 * mw_utf8_valid's own ASCII scans (64 bytes a step with SSE2, then
 * sixteen, then an overlapping last word) are checked at every length up
 * to the run's, which spans three 64-byte steps and a remainder. */
static void test_sequences_inside_long_ascii_runs(void) {
    static const char *const seqs[] = {"\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\x80",
                                       "\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xE2\x82",
                                       "\xFF"};
    uint8_t b[200];
    long mismatches = 0;
    for (size_t k = 0; k < sizeof seqs / sizeof *seqs; k++) {
        size_t n = strlen(seqs[k]);
        for (size_t at = 0; at + n <= sizeof b; at++) {
            memset(b, 'a', sizeof b);
            memcpy(b + at, seqs[k], n);
            int want = ref_valid(b, sizeof b);
            mismatches += mw_utf8_valid(b, sizeof b) != want;
            for (size_t len = at + n; len <= sizeof b; len++)
                mismatches += mw_utf8_valid(b, len) != ref_valid(b, len);
            for (size_t cut = 0; cut <= sizeof b; cut++) {
                mw_utf8_t st = MW_UTF8_INIT;
                int ok = mw_utf8_feed(&st, b, cut) == 0 &&
                         mw_utf8_feed(&st, b + cut, sizeof b - cut) == 0 &&
                         mw_utf8_finish(&st) == 0;
                mismatches += ok != want;
            }
        }
    }
    CHECK_EQ(mismatches, 0);
}

/* Every scalar value, encoded, is valid; every surrogate, encoded, is not. */
static void test_every_code_point(void) {
    long bad = 0;
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        uint8_t b[4];
        size_t n;
        if (cp < 0x80) {
            b[0] = (uint8_t)cp, n = 1;
        } else if (cp < 0x800) {
            b[0] = (uint8_t)(0xC0 | cp >> 6), b[1] = (uint8_t)(0x80 | (cp & 0x3F)), n = 2;
        } else if (cp < 0x10000) {
            b[0] = (uint8_t)(0xE0 | cp >> 12), b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
            b[2] = (uint8_t)(0x80 | (cp & 0x3F)), n = 3;
        } else {
            b[0] = (uint8_t)(0xF0 | cp >> 18), b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
            b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F)), b[3] = (uint8_t)(0x80 | (cp & 0x3F));
            n = 4;
        }
        int want = !(cp >= 0xD800 && cp <= 0xDFFF);
        bad += mw_utf8_valid(b, n) != want;
    }
    CHECK_EQ(bad, 0);
}

int main(void) {
    RUN(test_valid_vectors);
    RUN(test_invalid_vectors);
    RUN(test_fails_fast_at_the_bad_byte);
    RUN(test_truncated_input_fails_on_finish);
    RUN(test_failure_is_sticky);
    RUN(test_every_split_of_valid_sequences);
    RUN(test_every_split_of_invalid_sequences);
    RUN(test_sequences_inside_long_ascii_runs);
    RUN(test_an_empty_feed_keeps_the_state);
    RUN(test_exhaustive_against_reference);
    RUN(test_every_code_point);
    return test_summary();
}
