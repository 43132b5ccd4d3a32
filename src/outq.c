/*
 * outq.c - chunked output queue.
 *
 * Small writes (a frame header, then its payload) are coalesced into the
 * tail chunk when it is not in flight, so a burst of small messages becomes
 * one write. Chunks are at least MIN_CHUNK bytes to make that worthwhile.
 */
#include "outq.h"
#include "errors.h"

#include <stdlib.h>
#include <string.h>

#define MIN_CHUNK 4096

struct mw_outq_chunk {
    mw_outq_chunk_t *next;
    size_t off, len, cap; /* consumed, filled, allocated */
    char data[];
};

void mw_outq_init(mw_outq_t *q) {
    memset(q, 0, sizeof *q);
}

static int tail_in_flight(const mw_outq_t *q) {
    if (q->inflight == 0)
        return 0;
    int i = 0;
    for (mw_outq_chunk_t *c = q->head; c; c = c->next, i++)
        if (c == q->tail)
            return i < q->inflight;
    return 0;
}

int mw_outq_append(mw_outq_t *q, const void *data, size_t len) {
    if (len == 0)
        return 0;
    mw_outq_chunk_t *t = q->tail;
    if (t && t->cap - t->len >= len && !tail_in_flight(q)) {
        memcpy(t->data + t->len, data, len);
        t->len += len;
        q->bytes += len;
        return 0;
    }
    size_t cap = len > MIN_CHUNK ? len : MIN_CHUNK;
    mw_outq_chunk_t *c = malloc(sizeof *c + cap);
    if (!c)
        return MW_ENOMEM;
    c->next = NULL;
    c->off = 0;
    c->len = len;
    c->cap = cap;
    memcpy(c->data, data, len);
    if (t)
        t->next = c;
    else
        q->head = c;
    q->tail = c;
    q->bytes += len;
    return 0;
}

int mw_outq_peek(mw_outq_t *q, uv_buf_t *iov, int max) {
    int n = 0;
    for (mw_outq_chunk_t *c = q->head; c && n < max; c = c->next, n++)
        iov[n] = uv_buf_init(c->data + c->off, (unsigned)(c->len - c->off));
    q->inflight = n;
    return n;
}

void mw_outq_written(mw_outq_t *q, size_t n) {
    q->inflight = 0;
    q->bytes -= n;
    while (n > 0 && q->head) {
        mw_outq_chunk_t *c = q->head;
        size_t avail = c->len - c->off;
        if (n < avail) {
            c->off += n;
            return;
        }
        n -= avail;
        q->head = c->next;
        if (!q->head)
            q->tail = NULL;
        free(c);
    }
}

void mw_outq_clear(mw_outq_t *q) {
    mw_outq_chunk_t *c = q->head;
    while (c) {
        mw_outq_chunk_t *next = c->next;
        free(c);
        c = next;
    }
    mw_outq_init(q);
}
