/*
 * outq.c - the ring of output entries.
 *
 * Coalescing: an append goes into the tail entry's buffer when this queue
 * is its only owner, the tail is not in flight, the entry ends where the
 * buffer's data ends, and there is room. Otherwise a new buffer of at least
 * MIN_CHUNK bytes starts a new entry. When the queue empties, a small ring
 * is kept for the next batch (growing it again per batch costs mallocs on
 * every recipient of a busy room); the owner frees it with mw_outq_clear
 * once the connection is idle, and a large ring is freed at once.
 *
 * Chunk cache: the MIN_CHUNK buffers that carry each batch of replies are
 * the one allocation a steady echo made per batch (a malloc when the first
 * reply of a read is queued, a free when the flush pass has written it).
 * A freed chunk goes on a free list instead, and the next batch takes it
 * from there. All reads of a loop iteration come before its flush pass, so
 * the list holds up to one chunk per connection that replied in one
 * iteration; the cron gives back, once a second, the chunks no batch
 * needed during the last second (mw_buf_cache_trim). The server runs one
 * loop per process on one thread, so the list is per loop.
 */
#include "outq.h"
#include "errors.h"

#include <stdlib.h>
#include <string.h>

#define MIN_CHUNK 4096
#define KEEP_RING 64   /* entries (1 KiB) kept when a queue empties */
#define CACHE_MAX 4096 /* chunks (16 MiB) the free list may hold at most */

/* The free list of MIN_CHUNK buffers, linked through their data. `low` is
 * the fewest it held since the last trim: that many were not needed. One
 * per thread (a loop runs on one thread), so loops never share it. */
static _Thread_local struct {
    mw_buf_t *head;
    size_t count, low;
} cache;

/* The link is kept in the data, which starts 12 bytes in: memcpy, since
 * that is not a pointer's alignment. */
static mw_buf_t *next_of(const mw_buf_t *b) {
    mw_buf_t *next;
    memcpy(&next, b->data, sizeof next);
    return next;
}

static void set_next(mw_buf_t *b, mw_buf_t *next) {
    memcpy(b->data, &next, sizeof next);
}

/* chunk_new returns an empty MIN_CHUNK buffer with one reference. */
static mw_buf_t *chunk_new(void) {
    mw_buf_t *b = cache.head;
    if (!b)
        return mw_buf_new(MIN_CHUNK);
    cache.head = next_of(b);
    if (--cache.count < cache.low)
        cache.low = cache.count;
    b->refs = 1;
    b->len = 0;
    return b;
}

mw_buf_t *mw_buf_new(size_t cap) {
    if (cap > UINT32_MAX - sizeof(mw_buf_t))
        return NULL;
    mw_buf_t *b = malloc(sizeof *b + cap);
    if (!b)
        return NULL;
    b->refs = 1;
    b->len = 0;
    b->cap = (uint32_t)cap;
    return b;
}

void mw_buf_unref(mw_buf_t *b) {
    if (!b || --b->refs != 0)
        return;
    if (b->cap == MIN_CHUNK && cache.count < CACHE_MAX) {
        set_next(b, cache.head);
        cache.head = b;
        cache.count++;
        return;
    }
    free(b);
}

size_t mw_buf_cache_trim(void) {
    size_t n = cache.low;
    for (size_t i = 0; i < n; i++) {
        mw_buf_t *b = cache.head;
        cache.head = next_of(b);
        free(b);
    }
    cache.count -= n;
    cache.low = cache.count;
    return cache.count;
}

void mw_buf_cache_release(void) {
    cache.low = cache.count;
    mw_buf_cache_trim();
}

void mw_outq_init(mw_outq_t *q) {
    memset(q, 0, sizeof *q);
}

static mw_outq_ent_t *at(const mw_outq_t *q, uint32_t i) {
    return &q->ents[(q->head + i) & (q->cap - 1)];
}

static int push_entry(mw_outq_t *q, mw_buf_t *b, uint32_t off, uint32_t len) {
    if (q->count == q->cap) {
        uint32_t cap = q->cap ? q->cap * 2 : 8;
        mw_outq_ent_t *ents = malloc((size_t)cap * sizeof *ents);
        if (!ents)
            return MW_ENOMEM;
        for (uint32_t i = 0; i < q->count; i++)
            ents[i] = *at(q, i);
        free(q->ents);
        q->ents = ents;
        q->cap = cap;
        q->head = 0;
    }
    mw_outq_ent_t *e = at(q, q->count);
    e->buf = b;
    e->off = off;
    e->len = len;
    q->count++;
    q->bytes += len;
    return 0;
}

int mw_outq_append(mw_outq_t *q, const void *data, size_t len) {
    if (len == 0)
        return 0;
    if (q->count > q->inflight) {
        mw_outq_ent_t *t = at(q, q->count - 1);
        mw_buf_t *b = t->buf;
        if (b->refs == 1 && t->off + t->len == b->len && b->cap - b->len >= len) {
            memcpy(b->data + b->len, data, len);
            b->len += (uint32_t)len;
            t->len += (uint32_t)len;
            q->bytes += len;
            return 0;
        }
    }
    mw_buf_t *b = len > MIN_CHUNK ? mw_buf_new(len) : chunk_new();
    if (!b)
        return MW_ENOMEM;
    memcpy(b->data, data, len);
    b->len = (uint32_t)len;
    if (push_entry(q, b, 0, (uint32_t)len) != 0) {
        mw_buf_unref(b);
        return MW_ENOMEM;
    }
    return 0;
}

int mw_outq_push(mw_outq_t *q, mw_buf_t *b) {
    if (b->len == 0)
        return 0;
    if (push_entry(q, b, 0, b->len) != 0)
        return MW_ENOMEM;
    mw_buf_ref(b);
    return 0;
}

int mw_outq_peek(mw_outq_t *q, uv_buf_t *iov, int max) {
    int n = 0;
    for (; n < max && (uint32_t)n < q->count; n++) {
        mw_outq_ent_t *e = at(q, (uint32_t)n);
        iov[n] = uv_buf_init(e->buf->data + e->off, e->len);
    }
    q->inflight = (uint32_t)n;
    return n;
}

void mw_outq_written(mw_outq_t *q, size_t n) {
    q->inflight = 0;
    q->bytes -= n;
    while (n > 0 && q->count > 0) {
        mw_outq_ent_t *e = at(q, 0);
        if (n < e->len) {
            e->off += (uint32_t)n;
            e->len -= (uint32_t)n;
            return;
        }
        n -= e->len;
        mw_buf_unref(e->buf);
        q->head = (q->head + 1) & (q->cap - 1);
        q->count--;
    }
    if (q->count == 0) {
        q->head = 0;
        if (q->cap > KEEP_RING)
            mw_outq_clear(q);
    }
}

void mw_outq_clear(mw_outq_t *q) {
    for (uint32_t i = 0; i < q->count; i++)
        mw_buf_unref(at(q, i)->buf);
    free(q->ents);
    mw_outq_init(q);
}
