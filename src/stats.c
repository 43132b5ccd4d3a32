/*
 * stats.c - the stats zone (see stats.h): a header, then per worker a slot
 * header and two snapshot buffers, all at offsets from the mapping's start
 * (each process maps the memfd at an address of its own).
 *
 * The generation counters are C11 atomics in the shared mapping (lock-free
 * 64-bit atomics are address-free, so they work across processes). The
 * snapshot bytes themselves are copied with memcpy: a reader may copy
 * bytes a writer is changing, and throws that copy away, as a seqlock's
 * readers do; the fences order the copies against the counters.
 */
#include "stats.h"
#include "shm.h"
#include "errors.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAGIC 0x31746174737700ull /* "\0wstat1" */
#define LINE 64                   /* a cache line: slots do not share one */
#define READ_TRIES 8

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "the zone's counters must be lock-free");

typedef struct {
    uint64_t magic;
    uint32_t nworkers;
    uint32_t pad;
    uint64_t text_max;
    uint64_t buf_size;  /* bytes of one buffer: its header and text_max */
    uint64_t slot_size; /* bytes of a slot: its header and two buffers */
    uint64_t created_ms;
    uint64_t size; /* of the whole zone */
} zone_t;

typedef struct {
    _Atomic uint64_t begun, done; /* the worker's generations */
    _Atomic int64_t pid;          /* the supervisor's: the process running the slot now */
    _Atomic uint32_t restarts;
    _Atomic uint32_t spawned; /* it ran at least once */
} slot_t;

typedef struct {
    mw_stats_numbers_t n;
    uint64_t len;
    char text[]; /* text_max bytes */
} buf_t;

struct mw_stats {
    zone_t *z;
    size_t size;
};

static size_t round_up(size_t n, size_t to) {
    return (n + to - 1) / to * to;
}

static slot_t *slot(const mw_stats_t *st, int worker) {
    if (worker < 1 || (uint32_t)worker > st->z->nworkers)
        return NULL;
    return (slot_t *)((char *)st->z + round_up(sizeof(zone_t), LINE) +
                      (size_t)(worker - 1) * st->z->slot_size);
}

static buf_t *buffer(const mw_stats_t *st, slot_t *s, uint64_t gen) {
    return (buf_t *)((char *)s + round_up(sizeof(slot_t), LINE) + (gen & 1) * st->z->buf_size);
}

static uint64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int wrap(mw_stats_t **out, void *m, size_t size) {
    mw_stats_t *st = malloc(sizeof *st);
    if (!st) {
        munmap(m, size);
        return MW_ENOMEM;
    }
    st->z = m;
    st->size = size;
    *out = st;
    return 0;
}

int mw_stats_create(mw_stats_t **out, int nworkers, size_t text_max, int *fd) {
    *out = NULL;
    *fd = -1;
    if (nworkers < 1 || nworkers > 64 || text_max < 64 || text_max > (64u << 20))
        return MW_EINVAL;
    size_t buf_size = round_up(sizeof(buf_t) + text_max, LINE);
    size_t slot_size = round_up(sizeof(slot_t), LINE) + 2 * buf_size;
    size_t size = round_up(round_up(sizeof(zone_t), LINE) + (size_t)nworkers * slot_size, 4096);
    void *m;
    int f;
    int rc = mw_shm_create("moonwire-stats", size, &m, &f);
    if (rc != 0)
        return rc;
    zone_t *z = m;
    z->nworkers = (uint32_t)nworkers;
    z->text_max = text_max;
    z->buf_size = buf_size;
    z->slot_size = slot_size;
    z->created_ms = wall_ms();
    z->size = size;
    z->magic = MAGIC; /* last: an attacher checks it */
    rc = wrap(out, m, size);
    if (rc != 0) {
        close(f);
        return rc;
    }
    *fd = f;
    return 0;
}

int mw_stats_attach(mw_stats_t **out, int fd) {
    *out = NULL;
    void *m;
    size_t size;
    int rc = mw_shm_attach(fd, sizeof(zone_t), SIZE_MAX, &m, &size);
    if (rc != 0)
        return rc;
    const zone_t *z = m;
    /* Someone else's zone: its header must describe this very mapping. */
    size_t buf_size = round_up(sizeof(buf_t) + z->text_max, LINE);
    size_t slot_size = round_up(sizeof(slot_t), LINE) + 2 * buf_size;
    if (z->magic != MAGIC || z->size != size || z->nworkers < 1 || z->nworkers > 64 ||
        z->text_max > (64u << 20) || z->buf_size != buf_size || z->slot_size != slot_size ||
        round_up(sizeof(zone_t), LINE) + z->nworkers * slot_size > size) {
        munmap(m, size);
        return MW_EINVAL;
    }
    return wrap(out, m, size);
}

void mw_stats_free(mw_stats_t *st) {
    if (!st)
        return;
    munmap(st->z, st->size);
    free(st);
}

int mw_stats_workers(const mw_stats_t *st) {
    return (int)st->z->nworkers;
}

uint64_t mw_stats_created_ms(const mw_stats_t *st) {
    return st->z->created_ms;
}

void mw_stats_spawned(mw_stats_t *st, int worker, int64_t pid) {
    slot_t *s = slot(st, worker);
    if (!s)
        return;
    if (atomic_exchange(&s->spawned, 1))
        atomic_fetch_add(&s->restarts, 1);
    atomic_store(&s->pid, pid);
}

void mw_stats_exited(mw_stats_t *st, int worker) {
    slot_t *s = slot(st, worker);
    if (s)
        atomic_store(&s->pid, 0);
}

void mw_stats_process(const mw_stats_t *st, int worker, int64_t *pid, uint32_t *restarts) {
    slot_t *s = slot(st, worker);
    *pid = s ? atomic_load(&s->pid) : 0;
    *restarts = s ? atomic_load(&s->restarts) : 0;
}

int mw_stats_publish(mw_stats_t *st, int worker, const mw_stats_numbers_t *n, const char *text,
                     size_t len, const char *text2, size_t len2) {
    slot_t *s = slot(st, worker);
    if (!s)
        return MW_EINVAL;
    if (len > st->z->text_max || len2 > st->z->text_max - len)
        return MW_ETOOBIG;
    /* The slot's generations go on from whatever wrote last, a previous
     * process of this worker included (done is what readers trust). */
    uint64_t gen = atomic_load_explicit(&s->done, memory_order_relaxed) + 1;
    buf_t *b = buffer(st, s, gen);
    atomic_store_explicit(&s->begun, gen, memory_order_relaxed);
    atomic_thread_fence(memory_order_release); /* begun before any byte of b */
    b->n = *n;
    b->len = len + len2;
    if (len)
        memcpy(b->text, text, len);
    if (len2)
        memcpy(b->text + len, text2, len2);
    atomic_store_explicit(&s->done, gen, memory_order_release); /* every byte before done */
    return 0;
}

int mw_stats_read(const mw_stats_t *st, int worker, mw_stats_snapshot_t *snap) {
    slot_t *s = slot(st, worker);
    if (!s)
        return MW_EINVAL;
    for (int tries = 0; tries < READ_TRIES; tries++) {
        uint64_t gen = atomic_load_explicit(&s->done, memory_order_acquire);
        if (gen == 0)
            return MW_ENOTFOUND;
        const buf_t *b = buffer(st, s, gen);
        mw_stats_numbers_t n = b->n;
        /* len may be torn by a later write: bounded before use, and the
         * whole copy is checked below. */
        size_t len = (size_t) * (const volatile uint64_t *)&b->len;
        if (len > st->z->text_max)
            continue;
        if (len > snap->cap) {
            char *p = realloc(snap->text, len);
            if (!p)
                return MW_ENOMEM;
            snap->text = p;
            snap->cap = len;
        }
        if (len)
            memcpy(snap->text, b->text, len);
        atomic_thread_fence(memory_order_acquire); /* the copy before begun */
        if (atomic_load_explicit(&s->begun, memory_order_relaxed) < gen + 2) {
            snap->n = n;
            snap->len = len;
            return 0;
        }
    }
    snap->len = 0; /* what was copied is not a snapshot */
    return MW_EBUSY;
}

void mw_stats_snapshot_free(mw_stats_snapshot_t *snap) {
    free(snap->text);
    snap->text = NULL;
    snap->len = snap->cap = 0;
}
