/*
 * test_outq.c - the per-connection output queue (src/outq.c).
 *
 * Append and coalescing into the tail chunk, peek marking chunks in flight
 * so that later appends never touch memory handed to a write, partial
 * writes that end mid-chunk or span chunks, clear (ASan checks leaks), and
 * shared refcounted buffers: one frame queued on many queues is referenced,
 * never copied, freed with its last reference, and never coalesced into.
 */
#include "outq.h"
#include "errors.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

/* Everything queued, in order, gathered from a peek. */
static size_t gather(mw_outq_t *q, char *out, size_t cap, int *nbufs) {
    uv_buf_t iov[MW_OUTQ_MAX_IOV];
    int n = mw_outq_peek(q, iov, MW_OUTQ_MAX_IOV);
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        if (len + iov[i].len <= cap)
            memcpy(out + len, iov[i].base, iov[i].len);
        len += iov[i].len;
    }
    if (nbufs)
        *nbufs = n;
    return len;
}

static void test_empty_queue(void) {
    mw_outq_t q;
    mw_outq_init(&q);
    uv_buf_t iov[4];
    CHECK_EQ(mw_outq_peek(&q, iov, 4), 0);
    CHECK_EQ(q.bytes, 0);
    CHECK_EQ(mw_outq_append(&q, "x", 0), 0);
    CHECK(q.ents == NULL); /* nothing allocated for an empty append */
    CHECK_EQ(mw_outq_peek(&q, iov, 4), 0);
    mw_outq_written(&q, 0);
    mw_outq_clear(&q);
    CHECK(q.ents == NULL && q.count == 0);
}

static void test_small_appends_coalesce(void) {
    mw_outq_t q;
    mw_outq_init(&q);
    CHECK_EQ(mw_outq_append(&q, "abc", 3), 0);
    CHECK_EQ(mw_outq_append(&q, "def", 3), 0);
    CHECK_EQ(mw_outq_append(&q, "g", 1), 0);
    CHECK_EQ(q.bytes, 7);
    CHECK_EQ(q.count, 1);
    char out[64];
    int n;
    CHECK_EQ(gather(&q, out, sizeof out, &n), 7);
    CHECK_EQ(n, 1);
    CHECK_MEM(out, 7, "abcdefg", 7);
    mw_outq_clear(&q);
    CHECK_EQ(q.bytes, 0);
}

static void test_large_append_gets_its_own_chunk(void) {
    mw_outq_t q;
    mw_outq_init(&q);
    size_t big = 10000;
    char *data = malloc(big);
    REQUIRE(data);
    for (size_t i = 0; i < big; i++)
        data[i] = (char)('a' + i % 26);
    CHECK_EQ(mw_outq_append(&q, "hdr", 3), 0);
    CHECK_EQ(mw_outq_append(&q, data, big), 0);
    CHECK_EQ(mw_outq_append(&q, "tail", 4), 0);
    CHECK_EQ(q.bytes, big + 7);
    char *out = malloc(big + 7);
    REQUIRE(out);
    CHECK_EQ(gather(&q, out, big + 7, NULL), big + 7);
    CHECK_MEM(out, 3, "hdr", 3);
    CHECK_MEM(out + 3, big, data, big);
    CHECK_MEM(out + 3 + big, 4, "tail", 4);
    mw_outq_written(&q, big + 7);
    CHECK_EQ(q.bytes, 0);
    CHECK_EQ(q.count, 0);
    mw_outq_clear(&q);
    CHECK(q.ents == NULL);
    free(out);
    free(data);
    mw_outq_clear(&q);
}

/* After peek, the peeked buffers belong to the write in progress: an
 * append must go to a new chunk and leave them byte for byte the same. */
static void test_append_never_touches_in_flight_memory(void) {
    mw_outq_t q;
    mw_outq_init(&q);
    CHECK_EQ(mw_outq_append(&q, "abcdef", 6), 0);
    uv_buf_t iov[4];
    REQUIRE(mw_outq_peek(&q, iov, 4) == 1);
    CHECK_EQ(iov[0].len, 6);
    char *base = iov[0].base;
    char snapshot[64];
    /* Snapshot the in-flight bytes. */
    memcpy(snapshot, base, 6);
    CHECK_EQ(q.inflight, 1);

    CHECK_EQ(mw_outq_append(&q, "XYZ", 3), 0);
    CHECK_EQ(mw_outq_append(&q, "W", 1), 0); /* coalesces into the new tail */
    CHECK(q.count >= 2);
    CHECK_MEM(base, 6, snapshot, 6);
    CHECK_EQ(iov[0].len, 6);
    CHECK_EQ(q.bytes, 10);

    /* The write completes: the in-flight chunk goes, the new one remains. */
    mw_outq_written(&q, 6);
    CHECK_EQ(q.inflight, 0);
    CHECK_EQ(q.bytes, 4);
    char out[64];
    int n;
    CHECK_EQ(gather(&q, out, sizeof out, &n), 4);
    CHECK_EQ(n, 1);
    CHECK_MEM(out, 4, "XYZW", 4);
    mw_outq_clear(&q);
}

static void test_partial_write_mid_chunk(void) {
    mw_outq_t q;
    mw_outq_init(&q);
    CHECK_EQ(mw_outq_append(&q, "0123456789", 10), 0);
    uv_buf_t iov[4];
    REQUIRE(mw_outq_peek(&q, iov, 4) == 1);
    mw_outq_written(&q, 4);
    CHECK_EQ(q.bytes, 6);
    CHECK_EQ(q.inflight, 0);
    REQUIRE(mw_outq_peek(&q, iov, 4) == 1);
    CHECK_MEM(iov[0].base, iov[0].len, "456789", 6);
    mw_outq_written(&q, 0); /* a write of nothing (the kernel took 0 bytes) */
    CHECK_EQ(q.bytes, 6);
    /* A second partial write in the same chunk. */
    REQUIRE(mw_outq_peek(&q, iov, 4) == 1);
    mw_outq_written(&q, 2);
    CHECK_EQ(q.bytes, 4);

    /* Not in flight any more: new bytes coalesce after the rest. */
    CHECK_EQ(mw_outq_append(&q, "ab", 2), 0);
    char out[64];
    int n;
    CHECK_EQ(gather(&q, out, sizeof out, &n), 6);
    CHECK_EQ(n, 1);
    CHECK_MEM(out, 6, "6789ab", 6);
    mw_outq_written(&q, 6);
    CHECK_EQ(q.bytes, 0);
    CHECK(q.ents != NULL && q.cap <= 64);    /* a small ring is kept for the next batch */
    CHECK_EQ(mw_outq_append(&q, "z", 1), 0); /* and reused */
    CHECK_EQ(q.count, 1);
    CHECK_EQ(q.bytes, 1);
    mw_outq_clear(&q);
    CHECK(q.ents == NULL);
}

/* Three chunks (each append made while the tail was in flight); a write
 * that ends inside the second. */
static void test_partial_write_across_chunks(void) {
    mw_outq_t q;
    mw_outq_init(&q);
    uv_buf_t iov[4];
    CHECK_EQ(mw_outq_append(&q, "AAAA", 4), 0);
    CHECK_EQ(mw_outq_peek(&q, iov, 4), 1);
    CHECK_EQ(mw_outq_append(&q, "BBBB", 4), 0);
    CHECK_EQ(mw_outq_peek(&q, iov, 4), 2);
    CHECK_EQ(mw_outq_append(&q, "CCCC", 4), 0);
    REQUIRE(mw_outq_peek(&q, iov, 4) == 3);
    CHECK_MEM(iov[0].base, iov[0].len, "AAAA", 4);
    CHECK_MEM(iov[1].base, iov[1].len, "BBBB", 4);
    CHECK_MEM(iov[2].base, iov[2].len, "CCCC", 4);
    mw_outq_written(&q, 6);
    CHECK_EQ(q.bytes, 6);
    REQUIRE(mw_outq_peek(&q, iov, 4) == 2);
    CHECK_MEM(iov[0].base, iov[0].len, "BB", 2);
    CHECK_MEM(iov[1].base, iov[1].len, "CCCC", 4);
    mw_outq_written(&q, 2); /* exactly to a chunk boundary */
    REQUIRE(mw_outq_peek(&q, iov, 4) == 1);
    CHECK_MEM(iov[0].base, iov[0].len, "CCCC", 4);
    mw_outq_clear(&q);
}

/* Peek with fewer buffers than chunks: only those are in flight, and the
 * unpeeked tail still takes new bytes. */
static void test_peek_limited_iov(void) {
    mw_outq_t q;
    mw_outq_init(&q);
    uv_buf_t iov[4];
    CHECK_EQ(mw_outq_append(&q, "1", 1), 0);
    mw_outq_peek(&q, iov, 4);
    CHECK_EQ(mw_outq_append(&q, "2", 1), 0);
    mw_outq_peek(&q, iov, 4);
    CHECK_EQ(mw_outq_append(&q, "3", 1), 0);
    REQUIRE(mw_outq_peek(&q, iov, 2) == 2);
    char *second = iov[1].base;
    CHECK_EQ(mw_outq_append(&q, "4", 1), 0); /* the third chunk is not in flight */
    CHECK_MEM(second, 1, "2", 1);
    CHECK_EQ(iov[1].len, 1);
    mw_outq_written(&q, 2);
    char out[16];
    int n;
    CHECK_EQ(gather(&q, out, sizeof out, &n), 2);
    CHECK_EQ(n, 1);
    CHECK_MEM(out, 2, "34", 2);
    mw_outq_clear(&q);
}

/* Many chunks: peek stops at the iov limit, and everything comes out in
 * order over several writes. */
static void test_many_chunks_in_order(void) {
    mw_outq_t q;
    mw_outq_init(&q);
    uv_buf_t iov[MW_OUTQ_MAX_IOV];
    char expect[200 * 5], got[200 * 5];
    size_t elen = 0, glen = 0;
    for (int i = 0; i < 200; i++) {
        char s[8];
        int n = snprintf(s, sizeof s, "%04d|", i);
        CHECK_EQ(mw_outq_append(&q, s, (size_t)n), 0);
        memcpy(expect + elen, s, (size_t)n);
        elen += (size_t)n;
        mw_outq_peek(&q, iov, MW_OUTQ_MAX_IOV); /* force a chunk per append */
    }
    CHECK_EQ(q.bytes, elen);
    for (int rounds = 0; q.bytes > 0 && rounds < 100; rounds++) {
        int n = mw_outq_peek(&q, iov, MW_OUTQ_MAX_IOV);
        REQUIRE(n >= 1 && n <= MW_OUTQ_MAX_IOV);
        /* The kernel takes all but the last 3 bytes of the first buffers. */
        size_t total = 0;
        for (int i = 0; i < n; i++)
            total += iov[i].len;
        size_t take = total > 3 ? total - 3 : total;
        size_t left = take;
        for (int i = 0; i < n && left; i++) {
            size_t k = iov[i].len < left ? iov[i].len : left;
            memcpy(got + glen, iov[i].base, k);
            glen += k;
            left -= k;
        }
        mw_outq_written(&q, take);
    }
    CHECK_EQ(q.bytes, 0);
    CHECK_MEM(got, glen, expect, elen);
    mw_outq_clear(&q);
}

static void test_clear(void) {
    mw_outq_t q;
    mw_outq_init(&q);
    uv_buf_t iov[4];
    CHECK_EQ(mw_outq_append(&q, "abc", 3), 0);
    mw_outq_peek(&q, iov, 4);
    CHECK_EQ(mw_outq_append(&q, "def", 3), 0);
    mw_outq_clear(&q); /* ASan: both chunks freed */
    CHECK(q.ents == NULL && q.count == 0);
    CHECK_EQ(q.bytes, 0);
    CHECK_EQ(q.inflight, 0);
    CHECK_EQ(mw_outq_peek(&q, iov, 4), 0);
    /* Usable again after clear. */
    CHECK_EQ(mw_outq_append(&q, "x", 1), 0);
    CHECK_EQ(q.bytes, 1);
    mw_outq_clear(&q);
}

static void test_shared_buffer_is_referenced_not_copied(void) {
    mw_buf_t *frame = mw_buf_new(16);
    REQUIRE(frame != NULL);
    memcpy(frame->data, "\x81\x05hello", 7);
    frame->len = 7;
    mw_outq_t qs[3];
    for (int i = 0; i < 3; i++) {
        mw_outq_init(&qs[i]);
        CHECK_EQ(mw_outq_push(&qs[i], frame), 0);
    }
    CHECK_EQ(frame->refs, 4);
    uv_buf_t iov[4];
    CHECK_EQ(mw_outq_peek(&qs[1], iov, 4), 1);
    CHECK(iov[0].base == frame->data); /* the very same bytes */
    mw_outq_written(&qs[1], 3);        /* partial: offset moves, buffer stays */
    CHECK_EQ(frame->refs, 4);
    CHECK_EQ(qs[1].bytes, 4);
    mw_outq_written(&qs[1], 4);
    CHECK_EQ(frame->refs, 3);
    mw_outq_clear(&qs[0]);
    CHECK_EQ(frame->refs, 2);
    mw_buf_unref(frame); /* the producer's reference */
    CHECK_EQ(qs[2].bytes, 7);
    mw_outq_clear(&qs[2]); /* the last reference frees it (ASan) */
    mw_outq_clear(&qs[1]); /* its emptied ring was kept */
}

static void test_append_after_shared_starts_a_new_entry(void) {
    mw_buf_t *frame = mw_buf_new(64); /* room to spare: must still not be written */
    REQUIRE(frame != NULL);
    memcpy(frame->data, "shared", 6);
    frame->len = 6;
    mw_outq_t q;
    mw_outq_init(&q);
    CHECK_EQ(mw_outq_push(&q, frame), 0);
    CHECK_EQ(mw_outq_append(&q, "own", 3), 0);
    CHECK_EQ(q.count, 2);
    CHECK_EQ(frame->len, 6);
    char out[32];
    CHECK_EQ(gather(&q, out, sizeof out, NULL), 9);
    CHECK_MEM(out, 9, "sharedown", 9);
    mw_outq_clear(&q);
    CHECK_EQ(frame->refs, 1);
    mw_buf_unref(frame);
}

static void test_ring_grows_and_wraps(void) {
    /* Interleave writes and pushes so the ring wraps, then grows. */
    mw_buf_t *b = mw_buf_new(1);
    REQUIRE(b != NULL);
    b->data[0] = 'x';
    b->len = 1;
    mw_outq_t q;
    mw_outq_init(&q);
    for (int i = 0; i < 6; i++)
        CHECK_EQ(mw_outq_push(&q, b), 0);
    mw_outq_written(&q, 4); /* head moves to 4 of 8 */
    for (int i = 0; i < 30; i++)
        CHECK_EQ(mw_outq_push(&q, b), 0);
    CHECK_EQ(q.count, 32);
    CHECK_EQ(q.bytes, 32);
    CHECK_EQ(b->refs, 33);
    uv_buf_t iov[MW_OUTQ_MAX_IOV];
    CHECK_EQ(mw_outq_peek(&q, iov, MW_OUTQ_MAX_IOV), 32);
    mw_outq_written(&q, 32);
    CHECK_EQ(b->refs, 1);
    CHECK(q.ents != NULL); /* 32 entries: kept */
    /* A ring grown past 64 entries is freed when it empties. */
    for (int i = 0; i < 100; i++)
        CHECK_EQ(mw_outq_push(&q, b), 0);
    CHECK(q.cap > 64);
    while (q.count) {
        int n = mw_outq_peek(&q, iov, MW_OUTQ_MAX_IOV);
        size_t len = 0;
        for (int i = 0; i < n; i++)
            len += iov[i].len;
        mw_outq_written(&q, len);
    }
    CHECK(q.ents == NULL);
    CHECK_EQ(b->refs, 1);
    mw_buf_unref(b);
}

/* A written batch's chunk is reused by the next batch (no malloc per
 * batch), and the trim frees only what a whole interval did not need. */
static void test_chunk_cache_reuses_and_trims(void) {
    mw_buf_cache_release();
    mw_outq_t q;
    mw_outq_init(&q);
    CHECK_EQ(mw_outq_append(&q, "reply", 5), 0);
    mw_buf_t *first = q.ents[q.head].buf;
    uv_buf_t iov[4];
    CHECK_EQ(mw_outq_peek(&q, iov, 4), 1);
    mw_outq_written(&q, 5);
    CHECK_EQ(mw_buf_cache_trim(), 1); /* cached, and needed since the last trim */
    CHECK_EQ(mw_outq_append(&q, "again", 5), 0);
    CHECK(q.ents[q.head].buf == first); /* taken from the cache */
    CHECK_EQ(q.ents[q.head].buf->len, 5);
    char out[16];
    CHECK_EQ(gather(&q, out, sizeof out, NULL), 5);
    CHECK_MEM(out, 5, "again", 5);
    mw_outq_written(&q, 5);
    /* Two chunks live at once (two connections in one iteration), then
     * both back: the next interval takes one, so one is trimmed. */
    mw_outq_t q2;
    mw_outq_init(&q2);
    CHECK_EQ(mw_outq_append(&q, "a", 1), 0);
    CHECK_EQ(mw_outq_append(&q2, "b", 1), 0);
    mw_outq_peek(&q, iov, 4);
    mw_outq_written(&q, 1);
    mw_outq_peek(&q2, iov, 4);
    mw_outq_written(&q2, 1);
    CHECK_EQ(mw_buf_cache_trim(), 2); /* both were in use this interval */
    CHECK_EQ(mw_outq_append(&q, "c", 1), 0);
    mw_outq_peek(&q, iov, 4);
    mw_outq_written(&q, 1);
    CHECK_EQ(mw_buf_cache_trim(), 1); /* only one was needed */
    CHECK_EQ(mw_buf_cache_trim(), 0); /* and then none */
    /* A large buffer is never cached. */
    static char big[8192];
    CHECK_EQ(mw_outq_append(&q, big, sizeof big), 0);
    mw_outq_peek(&q, iov, 4);
    mw_outq_written(&q, sizeof big);
    CHECK_EQ(mw_buf_cache_trim(), 0);
    mw_outq_clear(&q);
    mw_outq_clear(&q2);
    mw_buf_cache_release();
}

int main(void) {
    RUN(test_empty_queue);
    RUN(test_small_appends_coalesce);
    RUN(test_large_append_gets_its_own_chunk);
    RUN(test_append_never_touches_in_flight_memory);
    RUN(test_partial_write_mid_chunk);
    RUN(test_partial_write_across_chunks);
    RUN(test_peek_limited_iov);
    RUN(test_many_chunks_in_order);
    RUN(test_clear);
    RUN(test_shared_buffer_is_referenced_not_copied);
    RUN(test_append_after_shared_starts_a_new_entry);
    RUN(test_ring_grows_and_wraps);
    RUN(test_chunk_cache_reuses_and_trims);
    return test_summary();
}
