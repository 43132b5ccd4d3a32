/*
 * shlimits.c - the server-wide connection counts of `workers = N` (see
 * shlimits.h): a header, the shared rate cells, then one slice per
 * worker, all at offsets from the mapping's start (each process maps the
 * memfd at an address of its own). Counters are C11 atomics in the shared
 * mapping (lock-free atomics are address-free, so they work across
 * processes).
 */
#include "shlimits.h"
#include "errors.h"
#include "hash.h"
#include "shm.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC 0x32746d696c776dull /* "mwlimt2" */
#define LINE 64
#define PAGE 4096
#define MAX_WORKERS 64
#define MASK (MW_SHLIMITS_WIDTH - 1)

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2 && ATOMIC_INT_LOCK_FREE == 2,
               "the zone's counters must be lock-free");
_Static_assert((MW_SHLIMITS_WIDTH & MASK) == 0, "the width is a power of two");

typedef struct {
    uint64_t magic;
    uint32_t nworkers, width;
    uint64_t seed; /* hashes keys alike in every worker */
    uint64_t slice_size;
    uint64_t size;
} zone_t;

typedef _Atomic uint32_t row_t[MW_SHLIMITS_ROWS][MW_SHLIMITS_WIDTH];

/* Slices start on a page, so that one can be punched out of the memfd. */
typedef struct {
    _Atomic uint64_t clients;
    char pad[PAGE - sizeof(uint64_t)]; /* the hot counter on a page of its own */
    row_t ip, user, room;
} slice_t;

typedef struct {
    zone_t z;
    char pad[PAGE - sizeof(zone_t)];
    _Atomic uint64_t tat[MW_SHLIMITS_ROWS][MW_SHLIMITS_WIDTH]; /* connection_rate_per_ip */
} head_t;

_Static_assert(sizeof(slice_t) % PAGE == 0 && sizeof(head_t) % PAGE == 0, "slices are whole pages");

_Static_assert(sizeof(zone_t) <= LINE, "the header fits a line");

struct mw_shlimits {
    head_t *h;
    size_t size;
    int worker; /* 0: the supervisor's handle */
    int fd;     /* the supervisor's: the memfd, to punch a slice out; else -1 */
};

static size_t zone_size(int nworkers) {
    size_t n = sizeof(head_t) + (size_t)nworkers * sizeof(slice_t);
    return (n + 4095) / 4096 * 4096;
}

static slice_t *slice(const mw_shlimits_t *l, int worker) {
    return (slice_t *)((char *)l->h + sizeof(head_t) + (size_t)(worker - 1) * sizeof(slice_t));
}

/* indexes: a key's counter in each row, from its hash mixed again (the
 * murmur3 finalizer) so that both halves depend on every bit, the rows'
 * by double hashing (row r: h1 + r * h2, h2 odd). */
static void indexes(uint64_t hash, uint32_t idx[MW_SHLIMITS_ROWS]) {
    hash ^= hash >> 33;
    hash *= 0xff51afd7ed558ccdULL;
    hash ^= hash >> 33;
    hash *= 0xc4ceb9fe1a85ec53ULL;
    hash ^= hash >> 33;
    uint32_t h1 = (uint32_t)hash, h2 = (uint32_t)(hash >> 32) | 1u;
    for (uint32_t r = 0; r < MW_SHLIMITS_ROWS; r++)
        idx[r] = (h1 + r * h2) & MASK;
}

static int wrap(mw_shlimits_t **out, void *m, size_t size, int worker) {
    mw_shlimits_t *l = malloc(sizeof *l);
    if (!l) {
        munmap(m, size);
        return MW_ENOMEM;
    }
    l->h = m;
    l->size = size;
    l->worker = worker;
    l->fd = -1;
    *out = l;
    return 0;
}

int mw_shlimits_create(mw_shlimits_t **out, int nworkers, int *fd) {
    *out = NULL;
    *fd = -1;
    if (nworkers < 1 || nworkers > MAX_WORKERS)
        return MW_EINVAL;
    size_t size = zone_size(nworkers);
    void *m;
    int f;
    int rc = mw_shm_create("moonwire-limits", size, &m, &f);
    if (rc != 0)
        return rc;
    zone_t *z = &((head_t *)m)->z;
    z->nworkers = (uint32_t)nworkers;
    z->width = MW_SHLIMITS_WIDTH;
    z->seed = mw_hash_seed();
    z->slice_size = sizeof(slice_t);
    z->size = size;
    z->magic = MAGIC; /* last: an attacher checks it */
    rc = wrap(out, m, size, 0);
    if (rc != 0) {
        close(f);
        return rc;
    }
    (*out)->fd = f;
    *fd = f;
    return 0;
}

int mw_shlimits_attach(mw_shlimits_t **out, int fd, int worker) {
    *out = NULL;
    void *m;
    size_t size;
    int rc = mw_shm_attach(fd, sizeof(head_t), SIZE_MAX, &m, &size);
    if (rc != 0)
        return rc;
    const zone_t *z = &((const head_t *)m)->z;
    if (z->magic != MAGIC || z->size != size || z->width != MW_SHLIMITS_WIDTH ||
        z->slice_size != sizeof(slice_t) || z->nworkers < 1 || z->nworkers > MAX_WORKERS ||
        zone_size((int)z->nworkers) != size || worker < 1 || (uint32_t)worker > z->nworkers) {
        munmap(m, size);
        return MW_EINVAL;
    }
    return wrap(out, m, size, worker);
}

void mw_shlimits_free(mw_shlimits_t *l) {
    if (!l)
        return;
    munmap(l->h, l->size);
    free(l);
}

void mw_shlimits_clear(mw_shlimits_t *l, int worker) {
    if (worker < 1 || (uint32_t)worker > l->h->z.nworkers)
        return;
    slice_t *s = slice(l, worker);
    /* Punched out of the memfd: zeros in every mapping, the memory given
     * back. A handle without the fd (or a kernel that refuses) stores the
     * zeros instead, only where the worker wrote. */
    off_t off = (off_t)((char *)s - (char *)l->h);
    if (l->fd >= 0 && fallocate(l->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off,
                                (off_t)sizeof(slice_t)) == 0) {
        atomic_thread_fence(memory_order_seq_cst);
        return;
    }
    atomic_store_explicit(&s->clients, 0, memory_order_relaxed);
    row_t *kinds[] = {&s->ip, &s->user, &s->room};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
        for (int r = 0; r < MW_SHLIMITS_ROWS; r++)
            for (int i = 0; i < MW_SHLIMITS_WIDTH; i++)
                if (atomic_load_explicit(&(*kinds[k])[r][i], memory_order_relaxed))
                    atomic_store_explicit(&(*kinds[k])[r][i], 0, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
}

void mw_shlimits_set_clients(mw_shlimits_t *l, uint64_t n) {
    atomic_store_explicit(&slice(l, l->worker)->clients, n, memory_order_relaxed);
}

uint64_t mw_shlimits_clients(const mw_shlimits_t *l) {
    uint64_t n = 0;
    for (uint32_t w = 1; w <= l->h->z.nworkers; w++)
        n += atomic_load_explicit(&slice(l, (int)w)->clients, memory_order_relaxed);
    return n;
}

/* count is the whole server's count of the key at idx in rows: the
 * smallest row's sum over every slice. */
static uint32_t count(const mw_shlimits_t *l, size_t rows_off, const uint32_t idx[]) {
    uint32_t best = UINT32_MAX;
    for (int r = 0; r < MW_SHLIMITS_ROWS; r++) {
        uint64_t sum = 0;
        for (uint32_t w = 1; w <= l->h->z.nworkers; w++) {
            row_t *rows = (row_t *)((char *)slice(l, (int)w) + rows_off);
            sum += atomic_load_explicit(&(*rows)[r][idx[r]], memory_order_seq_cst);
        }
        if (sum < best)
            best = sum > UINT32_MAX ? UINT32_MAX : (uint32_t)sum;
    }
    return best;
}

/* add adds delta (+1 or -1) to the key's counters in this worker's slice. */
static void add(mw_shlimits_t *l, size_t rows_off, const uint32_t idx[], int delta) {
    row_t *rows = (row_t *)((char *)slice(l, l->worker) + rows_off);
    for (int r = 0; r < MW_SHLIMITS_ROWS; r++) {
        if (delta > 0)
            atomic_fetch_add_explicit(&(*rows)[r][idx[r]], 1, memory_order_seq_cst);
        else if (atomic_load_explicit(&(*rows)[r][idx[r]], memory_order_relaxed) > 0)
            atomic_fetch_sub_explicit(&(*rows)[r][idx[r]], 1, memory_order_seq_cst);
    }
}

/* rate_take is mw_rate_take on the key's shared cells: the key's cell is
 * the latest of its rows (each row is at least as far ahead as the key
 * alone would be, since every row moves on each admission of the key),
 * and an admission moves every row on by one interval. */
static int rate_take(mw_shlimits_t *l, const mw_rate_t *rate, const uint32_t idx[],
                     uint64_t now_us) {
    if (!mw_rate_enabled(rate))
        return 1;
    uint64_t earliest = UINT64_MAX;
    for (int r = 0; r < MW_SHLIMITS_ROWS; r++) {
        uint64_t t = atomic_load_explicit(&l->h->tat[r][idx[r]], memory_order_relaxed);
        if (t < now_us)
            t = now_us;
        if (t < earliest)
            earliest = t;
    }
    if (earliest - now_us > rate->tolerance_us)
        return 0;
    for (int r = 0; r < MW_SHLIMITS_ROWS; r++) {
        _Atomic uint64_t *cell = &l->h->tat[r][idx[r]];
        uint64_t old = atomic_load_explicit(cell, memory_order_relaxed), t;
        do
            t = (old > now_us ? old : now_us) + rate->interval_us;
        while (!atomic_compare_exchange_weak_explicit(cell, &old, t, memory_order_relaxed,
                                                      memory_order_relaxed));
    }
    return 1;
}

int mw_shlimits_ip_admit(mw_shlimits_t *l, const mw_ipkey_t *key, uint64_t now_us,
                         const mw_rate_t *rate, uint32_t max_open) {
    uint32_t idx[MW_SHLIMITS_ROWS];
    indexes(mw_hash(l->h->z.seed, key->b, sizeof key->b), idx);
    /* take the place first, then look: two workers racing for the last
     * place may both be refused, never both admitted */
    add(l, offsetof(slice_t, ip), idx, 1);
    if (max_open && count(l, offsetof(slice_t, ip), idx) > max_open) {
        add(l, offsetof(slice_t, ip), idx, -1);
        return MW_EBUSY;
    }
    if (!rate_take(l, rate, idx, now_us)) {
        add(l, offsetof(slice_t, ip), idx, -1);
        return MW_ERATE;
    }
    return 0;
}

void mw_shlimits_ip_release(mw_shlimits_t *l, const mw_ipkey_t *key) {
    uint32_t idx[MW_SHLIMITS_ROWS];
    indexes(mw_hash(l->h->z.seed, key->b, sizeof key->b), idx);
    add(l, offsetof(slice_t, ip), idx, -1);
}

uint32_t mw_shlimits_ip_open(const mw_shlimits_t *l, const mw_ipkey_t *key) {
    uint32_t idx[MW_SHLIMITS_ROWS];
    indexes(mw_hash(l->h->z.seed, key->b, sizeof key->b), idx);
    return count(l, offsetof(slice_t, ip), idx);
}

uint64_t mw_shlimits_hash(const mw_shlimits_t *l, const char *key, size_t len) {
    return mw_hash(l->h->z.seed, key, len);
}

/* claim and release count one more or one less of a key in this worker's
 * slice of the sketch at off (user or room); claim returns the whole
 * server's count, this one included. */
static uint32_t claim(mw_shlimits_t *l, size_t off, uint64_t hash) {
    uint32_t idx[MW_SHLIMITS_ROWS];
    indexes(hash, idx);
    add(l, off, idx, 1);
    return count(l, off, idx);
}

static void release(mw_shlimits_t *l, size_t off, uint64_t hash) {
    uint32_t idx[MW_SHLIMITS_ROWS];
    indexes(hash, idx);
    add(l, off, idx, -1);
}

uint32_t mw_shlimits_user_claim(mw_shlimits_t *l, uint64_t hash) {
    return claim(l, offsetof(slice_t, user), hash);
}

void mw_shlimits_user_release(mw_shlimits_t *l, uint64_t hash) {
    release(l, offsetof(slice_t, user), hash);
}

uint32_t mw_shlimits_room_claim(mw_shlimits_t *l, uint64_t hash) {
    return claim(l, offsetof(slice_t, room), hash);
}

void mw_shlimits_room_release(mw_shlimits_t *l, uint64_t hash) {
    release(l, offsetof(slice_t, room), hash);
}
