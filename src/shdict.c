/*
 * shdict.c - shared dicts (shdict.h): one shared mapping per dict holding
 * its header, lock, hash buckets and an arena of items.
 *
 * The arena is a boundary-tag allocator: every block starts with its size
 * and the size of the block before it, so a freed block merges with free
 * neighbours in O(1), and free blocks sit in one list per power of two
 * (first fit from the request's class up). Every item is one block: a node
 * (hash chain, LRU links, expiry, value) followed by the key and, for a
 * string, the value.
 *
 * Nothing inside a zone is a pointer: every link (hash chains, LRU, free
 * lists, the buckets, the arena's bounds) is a ref_t, an offset from the
 * zone's first byte (0: none, since the header is there). A zone therefore
 * works wherever it is mapped: a worker exec'd by the supervisor maps the
 * same memfd at another address and follows the same links.
 */
#include "shdict.h"
#include "errors.h"
#include "shm.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC 0x6d777332u /* "mws2": the layout with offsets */
#define ALIGN 16
#define NBINS 40
#define EVICT_TRIES 30  /* items evicted at most for one write (OpenResty's figure) */
#define RECLAIM_STEPS 3 /* expired items reclaimed from the LRU end per write */
#define ALLOC_SCAN 8    /* blocks of a request's own size class tried before bigger ones */

/* An offset from the zone's base; 0 is no item (the header is there). */
typedef uint64_t ref_t;

/* A block of the arena. The low bit of size marks it used. A free block
 * has its list links where a used one has its payload. */
typedef struct block {
    size_t size;        /* of the whole block, header included; | 1 when used */
    size_t prev;        /* size of the block before it, 0 for the first */
    ref_t fnext, fprev; /* its free list */
} block_t;

#define HDR offsetof(block_t, fnext)
#define MIN_BLOCK ((sizeof(block_t) + ALIGN - 1) & ~(size_t)(ALIGN - 1))

typedef struct node {
    ref_t hnext;      /* hash chain */
    ref_t prev, next; /* LRU: next goes toward the least recently used */
    uint64_t expires; /* ms on the caller's clock; 0: never */
    double number;
    uint32_t hash;
    uint32_t vlen;
    uint32_t flags;
    uint16_t klen;
    uint8_t type;
    char data[]; /* key, then a string value */
} node_t;

struct mw_shdict {
    pthread_mutex_t lock;
    uint32_t magic;
    int busy; /* set while a change is under way: a holder that dies leaves it set */
    char name[MW_SHDICT_NAME_MAX + 1];
    size_t map_size;
    ref_t buckets;   /* ref_t[nbuckets]: the hash chains' heads */
    size_t nbuckets; /* a power of two */
    node_t lru;      /* sentinel: lru.next most recent, lru.prev least */
    ref_t arena, arena_end;
    ref_t bins[NBINS];
    uint64_t binmap; /* bit i: bins[i] is not empty */
    size_t free_bytes;
    size_t keys;
    uint64_t evictions, recoveries;
};

#define LRU ((ref_t)offsetof(struct mw_shdict, lru)) /* the sentinel's ref */

/* ---- offsets ---- */

static ref_t ref_of(const mw_shdict_t *d, const void *p) {
    return (ref_t)((const char *)p - (const char *)d);
}

static block_t *blk(mw_shdict_t *d, ref_t r) {
    return r ? (block_t *)((char *)d + r) : NULL;
}

static node_t *nd(mw_shdict_t *d, ref_t r) {
    return r ? (node_t *)((char *)d + r) : NULL;
}

/* bucket is the head of hash h's chain. */
static ref_t *bucket(mw_shdict_t *d, uint32_t h) {
    return (ref_t *)((char *)d + d->buckets) + (h & (d->nbuckets - 1));
}

/* ---- the arena ---- */

static size_t bsize(const block_t *b) {
    return b->size & ~(size_t)1;
}

static int bused(const block_t *b) {
    return (int)(b->size & 1);
}

static block_t *bnext(const block_t *b) {
    return (block_t *)((char *)b + bsize(b));
}

/* bin_of is a size's class: 0 up to MIN_BLOCK, then i for sizes in
 * (MIN_BLOCK * 2^(i-1), MIN_BLOCK * 2^i], so every block of a class above
 * a request's fits it. */
static unsigned bin_of(size_t size) {
    if (size <= MIN_BLOCK)
        return 0;
    unsigned i = 64u - (unsigned)__builtin_clzll((unsigned long long)((size - 1) / MIN_BLOCK));
    return i < NBINS ? i : NBINS - 1;
}

static void bin_push(mw_shdict_t *d, block_t *b) {
    unsigned i = bin_of(bsize(b));
    ref_t r = ref_of(d, b);
    b->fprev = 0;
    b->fnext = d->bins[i];
    if (b->fnext)
        blk(d, b->fnext)->fprev = r;
    d->bins[i] = r;
    d->binmap |= 1ull << i;
}

static void bin_remove(mw_shdict_t *d, block_t *b) {
    if (b->fprev) {
        blk(d, b->fprev)->fnext = b->fnext;
    } else {
        unsigned i = bin_of(bsize(b));
        d->bins[i] = b->fnext;
        if (!b->fnext)
            d->binmap &= ~(1ull << i);
    }
    if (b->fnext)
        blk(d, b->fnext)->fprev = b->fprev;
}

/* is_last tells whether b ends the arena (its next would be the end). */
static int is_last(const mw_shdict_t *d, const block_t *b) {
    return ref_of(d, b) + bsize(b) >= d->arena_end;
}

/* take makes the free block b, of at least need bytes, a used one,
 * splitting off its tail as a free block when that is big enough. */
static block_t *take(mw_shdict_t *d, block_t *b, size_t need) {
    size_t have = bsize(b);
    bin_remove(d, b);
    if (have - need >= MIN_BLOCK) {
        block_t *rest = (block_t *)((char *)b + need);
        rest->size = have - need;
        rest->prev = need;
        if (!is_last(d, rest))
            bnext(rest)->prev = rest->size;
        bin_push(d, rest);
        have = need;
    }
    b->size = have | 1;
    d->free_bytes -= have;
    return b;
}

/* arena_alloc returns a used block of at least need bytes (header
 * included, rounded), or NULL. Bounded: a few blocks of need's own class
 * are tried (they may be smaller), then the first block of any higher
 * class, which always fits. */
static block_t *arena_alloc(mw_shdict_t *d, size_t need) {
    unsigned i = bin_of(need);
    int tries = ALLOC_SCAN;
    for (block_t *b = blk(d, d->bins[i]); b && tries-- > 0; b = blk(d, b->fnext))
        if (bsize(b) >= need)
            return take(d, b, need);
    uint64_t above = i + 1 < NBINS ? d->binmap >> (i + 1) << (i + 1) : 0;
    return above ? take(d, blk(d, d->bins[__builtin_ctzll(above)]), need) : NULL;
}

/* arena_free frees b and merges it with its free neighbours. */
static void arena_free(mw_shdict_t *d, block_t *b) {
    size_t size = bsize(b);
    d->free_bytes += size;
    if (!is_last(d, b)) {
        block_t *n = bnext(b);
        if (!bused(n)) {
            bin_remove(d, n);
            size += bsize(n);
        }
    }
    if (b->prev) {
        block_t *p = (block_t *)((char *)b - b->prev);
        if (!bused(p)) {
            bin_remove(d, p);
            size += bsize(p);
            b = p;
        }
    }
    b->size = size;
    if (!is_last(d, b))
        bnext(b)->prev = size;
    bin_push(d, b);
}

/* reset empties the dict: no keys, the arena one free block. */
static void reset(mw_shdict_t *d) {
    memset(bucket(d, 0), 0, d->nbuckets * sizeof(ref_t));
    d->lru.next = d->lru.prev = LRU;
    memset(d->bins, 0, sizeof d->bins);
    d->binmap = 0;
    block_t *b = blk(d, d->arena);
    b->size = (size_t)(d->arena_end - d->arena);
    b->prev = 0;
    bin_push(d, b);
    d->free_bytes = b->size;
    d->keys = 0;
}

/* ---- locking ---- */

void mw__shdict_lock(mw_shdict_t *d) {
    int rc = pthread_mutex_lock(&d->lock);
    if (rc == EOWNERDEAD) {
        /* The holder died. Between busy = 1 and busy = 0 the lists may be
         * half-linked: start over empty rather than walk them. */
        if (d->busy) {
            reset(d);
            d->busy = 0;
        }
        d->recoveries++;
        pthread_mutex_consistent(&d->lock);
    }
}

void mw__shdict_unlock(mw_shdict_t *d) {
    pthread_mutex_unlock(&d->lock);
}

void mw__shdict_mark_busy(mw_shdict_t *d) {
    d->busy = 1;
}

/* ---- items ---- */

static uint32_t hash_key(const char *key, size_t len) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 16777619u;
    }
    return h;
}

static node_t *node_of(block_t *b) {
    return (node_t *)((char *)b + HDR);
}

static block_t *block_of(node_t *n) {
    return (block_t *)((char *)n - HDR);
}

static int expired(const node_t *n, uint64_t now) {
    return n->expires && n->expires <= now;
}

static void lru_unlink(mw_shdict_t *d, node_t *n) {
    nd(d, n->prev)->next = n->next;
    nd(d, n->next)->prev = n->prev;
}

static void lru_push(mw_shdict_t *d, node_t *n) {
    ref_t r = ref_of(d, n);
    n->prev = LRU;
    n->next = d->lru.next;
    nd(d, d->lru.next)->prev = r;
    d->lru.next = r;
}

/* find returns the node of key (expired or not). */
static node_t *find(mw_shdict_t *d, const char *key, size_t klen, uint32_t h) {
    for (node_t *n = nd(d, *bucket(d, h)); n; n = nd(d, n->hnext))
        if (n->hash == h && n->klen == klen && memcmp(n->data, key, klen) == 0)
            return n;
    return NULL;
}

/* remove_node unlinks n from its chain and the LRU and frees its block. */
static void remove_node(mw_shdict_t *d, node_t *n) {
    ref_t r = ref_of(d, n);
    ref_t *p = bucket(d, n->hash);
    while (*p != r)
        p = &nd(d, *p)->hnext;
    *p = n->hnext;
    lru_unlink(d, n);
    arena_free(d, block_of(n));
    d->keys--;
}

/* reclaim frees up to steps expired items from the LRU end (each write
 * does a few, so a dict nobody reads still gives back its dead keys). */
static void reclaim(mw_shdict_t *d, uint64_t now, size_t steps) {
    while (steps-- && d->lru.prev != LRU && expired(nd(d, d->lru.prev), now))
        remove_node(d, nd(d, d->lru.prev));
}

static size_t item_size(size_t klen, const mw_shdict_value_t *v) {
    size_t n = HDR + sizeof(node_t) + klen + (v->type == MW_SHDICT_STRING ? v->len : 0);
    n = (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    return n < MIN_BLOCK ? MIN_BLOCK : n;
}

static void fill(node_t *n, const mw_shdict_value_t *v, uint64_t ttl, uint64_t now) {
    n->type = (uint8_t)v->type;
    n->flags = v->flags;
    n->expires = ttl ? now + ttl : 0;
    n->number = v->type == MW_SHDICT_NUMBER ? v->number
                                            : (double)(v->type == MW_SHDICT_BOOLEAN && v->boolean);
    n->vlen = v->type == MW_SHDICT_STRING ? (uint32_t)v->len : 0;
    if (n->vlen)
        memcpy(n->data + n->klen, v->str, n->vlen);
}

/* store writes a new item; old (or NULL) is the key's current node, which
 * it replaces. Without room, evicts from the LRU end unless safe. */
static int store(mw_shdict_t *d, const char *key, size_t klen, uint32_t h, node_t *old,
                 const mw_shdict_value_t *v, uint64_t ttl, uint64_t now, int safe, int *evicted) {
    size_t need = item_size(klen, v);
    if (need > d->arena_end - d->arena || v->len > UINT32_MAX)
        return MW_ETOOBIG;
    if (old && bsize(block_of(old)) >= need && bsize(block_of(old)) - need < MIN_BLOCK) {
        fill(old, v, ttl, now); /* same room: rewrite in place */
        lru_unlink(d, old);
        lru_push(d, old);
        return 0;
    }
    block_t *b = arena_alloc(d, need);
    if (!b && old && !safe) {
        remove_node(d, old);
        old = NULL;
        b = arena_alloc(d, need);
    }
    for (int i = 0; !b && !safe && i < EVICT_TRIES && d->lru.prev != LRU; i++) {
        node_t *victim = nd(d, d->lru.prev);
        if (!expired(victim, now)) {
            d->evictions++;
            if (evicted)
                *evicted = 1;
        }
        remove_node(d, victim);
        b = arena_alloc(d, need);
    }
    if (!b)
        return MW_ENOMEM;
    if (old)
        remove_node(d, old);
    node_t *n = node_of(b);
    n->hash = h;
    n->klen = (uint16_t)klen;
    memcpy(n->data, key, klen);
    fill(n, v, ttl, now);
    ref_t *head = bucket(d, h);
    n->hnext = *head;
    *head = ref_of(d, n);
    lru_push(d, n);
    d->keys++;
    return 0;
}

/* ---- the API ---- */

/* valid_args tells whether a dict may be named name and be size bytes. */
static int valid_args(const char *name, size_t size) {
    size_t nlen = strlen(name);
    return nlen > 0 && nlen <= MW_SHDICT_NAME_MAX && size >= MW_SHDICT_MIN_SIZE &&
           size <= (size_t)MW_SHDICT_MAX_SIZE;
}

/* init_zone lays out a new dict over the size bytes at m: the header and
 * its lock, the buckets, the arena as one free block. */
static int init_zone(void *m, const char *name, size_t size) {
    mw_shdict_t *d = m;
    memset(d, 0, sizeof *d);
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    int rc = pthread_mutex_init(&d->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    if (rc != 0)
        return MW_ENOMEM;
    memcpy(d->name, name, strlen(name) + 1);
    d->map_size = size;
    /* One bucket per 512 bytes of zone, a power of two: short chains for
     * items of a few hundred bytes, 1/64 of the zone for the table. */
    size_t nb = 16;
    while (nb * 512 < size)
        nb <<= 1;
    d->nbuckets = nb;
    d->buckets = (sizeof *d + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    d->arena = (d->buckets + nb * sizeof(ref_t) + ALIGN - 1) & ~(ref_t)(ALIGN - 1);
    d->arena_end = size & ~(size_t)(ALIGN - 1);
    reset(d);
    d->magic = MAGIC; /* last: an attacher checks it */
    return 0;
}

int mw_shdict_create(mw_shdict_t **out, const char *name, size_t size) {
    *out = NULL;
    if (!valid_args(name, size))
        return MW_EINVAL;
    void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return MW_ENOMEM;
    if (init_zone(m, name, size) != 0) {
        munmap(m, size);
        return MW_ENOMEM;
    }
    *out = m;
    return 0;
}

int mw_shdict_create_fd(mw_shdict_t **out, const char *name, size_t size, int *fd) {
    *out = NULL;
    *fd = -1;
    if (!valid_args(name, size))
        return MW_EINVAL;
    char label[MW_SHDICT_NAME_MAX + 24];
    snprintf(label, sizeof label, "moonwire-shdict-%s", name);
    void *m;
    int f;
    int rc = mw_shm_create(label, size, &m, &f);
    if (rc != 0)
        return rc;
    if (init_zone(m, name, size) != 0) {
        munmap(m, size);
        close(f);
        return MW_ENOMEM;
    }
    *out = m;
    *fd = f;
    return 0;
}

int mw_shdict_attach(mw_shdict_t **out, int fd) {
    *out = NULL;
    void *m;
    size_t size;
    int rc = mw_shm_attach(fd, MW_SHDICT_MIN_SIZE, (size_t)MW_SHDICT_MAX_SIZE, &m, &size);
    if (rc != 0)
        return rc;
    mw_shdict_t *d = m;
    /* Someone else's zone: its header must describe this very mapping. */
    if (d->magic != MAGIC || d->map_size != size || !memchr(d->name, '\0', sizeof d->name) ||
        d->nbuckets == 0 || (d->nbuckets & (d->nbuckets - 1)) != 0 || d->arena >= d->arena_end ||
        d->arena_end > size || d->buckets + d->nbuckets * sizeof(ref_t) > d->arena) {
        munmap(m, size);
        return MW_EINVAL;
    }
    *out = d;
    return 0;
}

void mw_shdict_free(mw_shdict_t *d) {
    if (d)
        munmap(d, d->map_size);
}

const char *mw_shdict_name(const mw_shdict_t *d) {
    return d->name;
}

const char *mw_shdict_parse_spec(const char *spec, char *name, size_t *size) {
    const char *colon = strchr(spec, ':');
    if (!colon || colon == spec)
        return "entries must be \"name:size\" (\"cache:10m\")";
    size_t nlen = (size_t)(colon - spec);
    if (nlen > MW_SHDICT_NAME_MAX)
        return "a dict name is at most 64 bytes";
    for (size_t i = 0; i < nlen; i++)
        if (!isalnum((unsigned char)spec[i]) && spec[i] != '_' && spec[i] != '-')
            return "a dict name is letters, digits, _ and -";
    const char *s = colon + 1;
    if (!isdigit((unsigned char)*s))
        return "a size is a number of bytes, with k, m or g (\"10m\")";
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    unsigned long long mult = 1;
    if (*end == 'k' || *end == 'K')
        mult = 1024, end++;
    else if (*end == 'm' || *end == 'M')
        mult = 1024 * 1024, end++;
    else if (*end == 'g' || *end == 'G')
        mult = 1024 * 1024 * 1024, end++;
    if (*end)
        return "a size is a number of bytes, with k, m or g (\"10m\")";
    if (v > (unsigned long long)MW_SHDICT_MAX_SIZE / mult || v * mult < MW_SHDICT_MIN_SIZE ||
        v * mult > (unsigned long long)MW_SHDICT_MAX_SIZE)
        return "a dict's size is 16k..16g";
    memcpy(name, spec, nlen);
    name[nlen] = '\0';
    *size = (size_t)(v * mult);
    return NULL;
}

int mw_shdict_get(mw_shdict_t *d, const char *key, size_t klen, uint64_t now_ms,
                  mw_shdict_value_t *out, char **buf, size_t *cap) {
    if (klen > MW_SHDICT_KEY_MAX)
        return MW_EINVAL;
    uint32_t h = hash_key(key, klen);
    int rc = 0;
    mw__shdict_lock(d);
    d->busy = 1;
    node_t *n = find(d, key, klen, h);
    if (!n || expired(n, now_ms)) {
        if (n)
            remove_node(d, n); /* dead on read */
        rc = MW_ENOTFOUND;
    } else {
        if (n->vlen > *cap) {
            char *nb = realloc(*buf, n->vlen);
            if (!nb)
                rc = MW_ENOMEM;
            else
                *buf = nb, *cap = n->vlen;
        }
        if (rc == 0) {
            out->type = (mw_shdict_type)n->type;
            out->number = n->number;
            out->boolean = n->type == MW_SHDICT_BOOLEAN && n->number != 0;
            out->flags = n->flags;
            out->len = n->vlen;
            out->str = *buf;
            if (n->vlen)
                memcpy(*buf, n->data + n->klen, n->vlen);
            lru_unlink(d, n);
            lru_push(d, n);
        }
    }
    d->busy = 0;
    mw__shdict_unlock(d);
    return rc;
}

int mw_shdict_set(mw_shdict_t *d, const char *key, size_t klen, const mw_shdict_value_t *v,
                  uint64_t ttl_ms, uint64_t now_ms, int mode, int *evicted) {
    if (klen > MW_SHDICT_KEY_MAX)
        return MW_EINVAL;
    if (evicted)
        *evicted = 0;
    uint32_t h = hash_key(key, klen);
    int rc = 0;
    mw__shdict_lock(d);
    d->busy = 1;
    node_t *n = find(d, key, klen, h);
    if (n && expired(n, now_ms)) {
        remove_node(d, n);
        n = NULL;
    }
    reclaim(d, now_ms, RECLAIM_STEPS); /* stops at the first live item: n stays */
    int op = mode & 3;
    if (op == MW_SHDICT_ADD && n)
        rc = MW_EDUP;
    else if (op == MW_SHDICT_REPLACE && !n)
        rc = MW_ENOTFOUND;
    else if (v->type == MW_SHDICT_NIL) {
        if (n)
            remove_node(d, n);
    } else
        rc = store(d, key, klen, h, n, v, ttl_ms, now_ms, mode & MW_SHDICT_SAFE, evicted);
    d->busy = 0;
    mw__shdict_unlock(d);
    return rc;
}

int mw_shdict_incr(mw_shdict_t *d, const char *key, size_t klen, double n, const double *init,
                   uint64_t init_ttl_ms, uint64_t now_ms, double *out) {
    if (klen > MW_SHDICT_KEY_MAX)
        return MW_EINVAL;
    uint32_t h = hash_key(key, klen);
    int rc = 0;
    mw__shdict_lock(d);
    d->busy = 1;
    node_t *node = find(d, key, klen, h);
    if (node && expired(node, now_ms)) {
        remove_node(d, node);
        node = NULL;
    }
    if (node) {
        if (node->type != MW_SHDICT_NUMBER) {
            rc = MW_EINVAL;
        } else {
            node->number += n;
            *out = node->number;
            lru_unlink(d, node);
            lru_push(d, node);
        }
    } else if (!init) {
        rc = MW_ENOTFOUND;
    } else {
        reclaim(d, now_ms, RECLAIM_STEPS);
        mw_shdict_value_t v = {.type = MW_SHDICT_NUMBER, .number = *init + n};
        rc = store(d, key, klen, h, NULL, &v, init_ttl_ms, now_ms, 0, NULL);
        if (rc == 0)
            *out = v.number;
    }
    d->busy = 0;
    mw__shdict_unlock(d);
    return rc;
}

int mw_shdict_delete(mw_shdict_t *d, const char *key, size_t klen) {
    mw_shdict_value_t nil = {.type = MW_SHDICT_NIL};
    return mw_shdict_set(d, key, klen, &nil, 0, 0, MW_SHDICT_SET, NULL);
}

/* live finds key's node under the lock, reclaiming it when expired. */
static node_t *live(mw_shdict_t *d, const char *key, size_t klen, uint64_t now) {
    node_t *n = find(d, key, klen, hash_key(key, klen));
    if (n && expired(n, now)) {
        remove_node(d, n);
        n = NULL;
    }
    return n;
}

int mw_shdict_ttl(mw_shdict_t *d, const char *key, size_t klen, uint64_t now_ms, uint64_t *ttl_ms) {
    if (klen > MW_SHDICT_KEY_MAX)
        return MW_EINVAL;
    mw__shdict_lock(d);
    d->busy = 1;
    node_t *n = live(d, key, klen, now_ms);
    if (n)
        *ttl_ms = n->expires ? n->expires - now_ms : 0;
    d->busy = 0;
    mw__shdict_unlock(d);
    return n ? 0 : MW_ENOTFOUND;
}

int mw_shdict_expire(mw_shdict_t *d, const char *key, size_t klen, uint64_t ttl_ms,
                     uint64_t now_ms) {
    if (klen > MW_SHDICT_KEY_MAX)
        return MW_EINVAL;
    mw__shdict_lock(d);
    d->busy = 1;
    node_t *n = live(d, key, klen, now_ms);
    if (n)
        n->expires = ttl_ms ? now_ms + ttl_ms : 0;
    d->busy = 0;
    mw__shdict_unlock(d);
    return n ? 0 : MW_ENOTFOUND;
}

void mw_shdict_flush_all(mw_shdict_t *d) {
    mw__shdict_lock(d);
    d->busy = 1;
    reset(d);
    d->busy = 0;
    mw__shdict_unlock(d);
}

size_t mw_shdict_flush_expired(mw_shdict_t *d, uint64_t now_ms, size_t max) {
    size_t count = 0;
    mw__shdict_lock(d);
    d->busy = 1;
    for (node_t *n = nd(d, d->lru.prev); n != &d->lru && (max == 0 || count < max);) {
        node_t *prev = nd(d, n->prev);
        if (expired(n, now_ms)) {
            remove_node(d, n);
            count++;
        }
        n = prev;
    }
    d->busy = 0;
    mw__shdict_unlock(d);
    return count;
}

size_t mw_shdict_keys(mw_shdict_t *d, uint64_t now_ms, size_t max,
                      void (*each)(void *ud, const char *key, size_t klen), void *ud) {
    size_t count = 0;
    mw__shdict_lock(d);
    for (node_t *n = nd(d, d->lru.next); n != &d->lru && (max == 0 || count < max);
         n = nd(d, n->next)) {
        if (expired(n, now_ms))
            continue;
        each(ud, n->data, n->klen);
        count++;
    }
    mw__shdict_unlock(d);
    return count;
}

size_t mw_shdict_capacity(const mw_shdict_t *d) {
    return (size_t)(d->arena_end - d->arena);
}

size_t mw_shdict_free_space(mw_shdict_t *d) {
    mw__shdict_lock(d);
    size_t n = d->free_bytes;
    mw__shdict_unlock(d);
    return n;
}

void mw_shdict_stats(mw_shdict_t *d, mw_shdict_stats_t *out) {
    mw__shdict_lock(d);
    out->keys = d->keys;
    out->evictions = d->evictions;
    out->recoveries = d->recoveries;
    mw__shdict_unlock(d);
}

/* ---- the set of dicts ---- */

typedef struct {
    mw_shdict_t *d;
    int fd; /* its memfd, kept open to hand to workers; -1 when none */
} entry_t;

struct mw_shdicts {
    size_t n;
    entry_t e[];
};

static mw_shdicts_t *set_new(int n) {
    mw_shdicts_t *set = calloc(1, sizeof *set + (size_t)(n > 0 ? n : 0) * sizeof(entry_t));
    return set;
}

int mw_shdicts_create(mw_shdicts_t **out, char *const *specs, int n) {
    *out = NULL;
    mw_shdicts_t *set = set_new(n);
    if (!set)
        return MW_ENOMEM;
    for (int i = 0; i < n; i++) {
        char name[MW_SHDICT_NAME_MAX + 1];
        size_t size;
        int rc = mw_shdict_parse_spec(specs[i], name, &size) ? MW_EINVAL : 0;
        if (rc == 0 && mw_shdicts_find(set, name, strlen(name)))
            rc = MW_EINVAL;
        entry_t *e = &set->e[set->n];
        if (rc == 0)
            rc = mw_shdict_create_fd(&e->d, name, size, &e->fd);
        if (rc != 0) {
            mw_shdicts_free(set);
            return rc;
        }
        set->n++;
    }
    *out = set;
    return 0;
}

int mw_shdicts_attach(mw_shdicts_t **out, const int *fds, int n) {
    *out = NULL;
    mw_shdicts_t *set = set_new(n);
    if (!set)
        return MW_ENOMEM;
    for (int i = 0; i < n; i++) {
        entry_t *e = &set->e[set->n];
        int rc = mw_shdict_attach(&e->d, fds[i]);
        if (rc == 0 && mw_shdicts_find(set, e->d->name, strlen(e->d->name))) {
            mw_shdict_free(e->d);
            rc = MW_EINVAL;
        }
        if (rc != 0) {
            for (size_t j = 0; j < set->n; j++)
                set->e[j].fd = -1; /* still the caller's */
            mw_shdicts_free(set);
            return rc;
        }
        e->fd = fds[i];
        fcntl(e->fd, F_SETFD, FD_CLOEXEC); /* inherited without: no further */
        set->n++;
    }
    *out = set;
    return 0;
}

void mw_shdicts_free(mw_shdicts_t *set) {
    if (!set)
        return;
    for (size_t i = 0; i < set->n; i++) {
        mw_shdict_free(set->e[i].d);
        if (set->e[i].fd >= 0)
            close(set->e[i].fd);
    }
    free(set);
}

mw_shdict_t *mw_shdicts_find(const mw_shdicts_t *set, const char *name, size_t len) {
    for (size_t i = 0; set && i < set->n; i++)
        if (strlen(set->e[i].d->name) == len && memcmp(set->e[i].d->name, name, len) == 0)
            return set->e[i].d;
    return NULL;
}

mw_shdict_t *mw_shdicts_at(const mw_shdicts_t *set, size_t i) {
    return set && i < set->n ? set->e[i].d : NULL;
}

int mw_shdicts_fd(const mw_shdicts_t *set, size_t i) {
    return set && i < set->n ? set->e[i].fd : -1;
}
