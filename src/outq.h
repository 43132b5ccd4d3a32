/*
 * outq.h - a connection's output queue.
 *
 * Bytes waiting to be written to one socket, as a list of chunks. Nothing is
 * allocated while the queue is empty, so an idle connection costs no output
 * memory. Chunks handed to the kernel (in flight) are never modified; new
 * bytes go to a fresh tail chunk.
 */
#ifndef MW_OUTQ_H
#define MW_OUTQ_H

#include <stddef.h>
#include <uv.h>

typedef struct mw_outq_chunk mw_outq_chunk_t;

typedef struct {
    mw_outq_chunk_t *head, *tail;
    size_t bytes;    /* total queued, including in flight */
    int inflight;    /* chunks at the head handed to a write */
} mw_outq_t;

#define MW_OUTQ_MAX_IOV 64

void mw_outq_init(mw_outq_t *q);

/* mw_outq_append copies len bytes to the end of the queue.
 * Returns 0 or MW_ENOMEM. */
int mw_outq_append(mw_outq_t *q, const void *data, size_t len);

/* mw_outq_peek fills iov with up to max buffers from the head and returns
 * how many; those chunks are in flight until mw_outq_written. */
int mw_outq_peek(mw_outq_t *q, uv_buf_t *iov, int max);

/* mw_outq_written drops n bytes from the head (n may end mid-chunk) and
 * clears the in-flight mark. */
void mw_outq_written(mw_outq_t *q, size_t n);

/* mw_outq_clear frees every chunk. */
void mw_outq_clear(mw_outq_t *q);

#endif
