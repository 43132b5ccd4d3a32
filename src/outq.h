/*
 * outq.h - a connection's output queue, and the refcounted buffers it holds.
 *
 * The queue is a ring of (buffer, offset, length) entries. A broadcast frame
 * is built once into one mw_buf_t and every recipient's queue takes a
 * reference to it (Redis shares refcounted objects the same way), so
 * delivering to N clients costs N small ring entries, not N copies. Small
 * writes of one connection (a reply's header and payload) are coalesced
 * into a buffer only that queue owns. An idle connection's queue holds no
 * memory (its owner clears the small ring kept between batches).
 */
#ifndef MW_OUTQ_H
#define MW_OUTQ_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct mw_buf {
    uint32_t refs;
    uint32_t len, cap;
    char data[];
} mw_buf_t;

/* mw_buf_new allocates a buffer with one reference. NULL when out of memory. */
mw_buf_t *mw_buf_new(size_t cap);

static inline void mw_buf_ref(mw_buf_t *b) {
    b->refs++;
}

/* mw_buf_unref drops a reference and frees the buffer with the last one
 * (an output chunk goes to the chunk cache instead; see outq.c). */
void mw_buf_unref(mw_buf_t *b);

/* mw_buf_cache_trim frees the cached output chunks that no batch took
 * since the previous trim, and returns how many stay cached. Called once a
 * second by the cron. */
size_t mw_buf_cache_trim(void);

/* mw_buf_cache_release frees every cached output chunk (server exit). */
void mw_buf_cache_release(void);

typedef struct {
    mw_buf_t *buf;
    uint32_t off, len;
} mw_outq_ent_t;

typedef struct {
    mw_outq_ent_t *ents; /* ring */
    uint32_t head, count, cap;
    uint32_t inflight; /* entries at the head handed to a write */
    size_t bytes;      /* total queued, including in flight */
} mw_outq_t;

#define MW_OUTQ_MAX_IOV 64

void mw_outq_init(mw_outq_t *q);

/* mw_outq_append copies len bytes to the end of the queue.
 * Returns 0 or MW_ENOMEM. */
int mw_outq_append(mw_outq_t *q, const void *data, size_t len);

/* mw_outq_push queues a reference to all of b (the queue takes its own
 * reference). Returns 0 or MW_ENOMEM. */
int mw_outq_push(mw_outq_t *q, mw_buf_t *b);

/* mw_outq_peek fills iov with up to max buffers from the head and returns
 * how many; those entries are in flight until mw_outq_written. */
int mw_outq_peek(mw_outq_t *q, uv_buf_t *iov, int max);

/* mw_outq_written drops n bytes from the head (n may end mid-entry) and
 * clears the in-flight mark. A small ring is kept when the queue empties
 * (ents stays non-NULL); mw_outq_clear releases it. */
void mw_outq_written(mw_outq_t *q, size_t n);

/* mw_outq_clear releases every entry and the ring. */
void mw_outq_clear(mw_outq_t *q);

#endif
