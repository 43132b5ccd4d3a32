/*
 * hubd.c - the supervisor's end of the hub (hubd.h).
 *
 * Channels are a chained hash table (mw_hash, seeded) of name -> mask of
 * subscribed worker slots. A published record is forwarded from the
 * buffer it was read into: copied once into one refcounted block (the
 * origin's number written in), which every receiving worker's write
 * points to; freed after the last write. Whatever goes to a worker in one
 * loop iteration (records passed on, ACKs, a starting worker's copy of
 * the store) is queued, in order, and written at the iteration's end with
 * one write of all its blocks: a burst a worker sent in one write leaves
 * in one write to each other worker. The SUB and UNSUB records of one
 * read are confirmed by one ACK, queued once they are applied.
 *
 * The store is a second table, of (worker slot, key) -> the SET record
 * that made it, kept as the block passed on to the other workers: a
 * worker that starts gets every other worker's blocks written to its
 * socket, no copy made.
 */
#include "hubd.h"
#include "errors.h"
#include "hash.h"
#include "hub.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A worker that stopped reading (SIGSTOP, a busy loop) holds at most this
 * much of what is forwarded to it; beyond, records to it are dropped. */
#define MAX_QUEUED (64u << 20)
#define INITIAL_BUCKETS 256

typedef struct channel {
    struct channel *next;
    uint64_t mask;
    size_t len;
    char name[];
} channel_t;

/* A record passed on to one or several workers, or kept in the store:
 * one copy, counted references. */
typedef struct {
    int refs;
    size_t len;
    char bytes[];
} block_t;

/* A worker's entry in the store: its SET record holds key and value. */
typedef struct entry {
    struct entry *next;
    int slot;
    block_t *block;
    const char *key; /* in block */
    size_t key_len;
} entry_t;

/* What goes to one worker in one loop iteration: its blocks, in order,
 * then the write that carries them all (the request and the references
 * in one allocation, freed when the write is done). */
typedef struct {
    uv_write_t req;
    size_t n, cap;
    size_t bytes; /* of the blocks */
    block_t *blocks[];
} queue_t;

typedef struct {
    mw_hubd_t *hub;
    int slot;
    int attached; /* the pipe is open */
    int child_fd; /* the worker's end until it is spawned, else -1 */
    uv_pipe_t pipe;
    queue_t *queue; /* this iteration's blocks to the worker, or NULL */
    mw_hub_reader_t reader;
    uint64_t acks_owed; /* SUB and UNSUB applied in this read, to confirm */
} peer_t;

struct mw_hubd {
    uv_loop_t *loop;
    uint64_t seed;
    channel_t **buckets;
    size_t nbuckets, nchannels;
    entry_t **entries;
    size_t nentry_buckets, nentries;
    int freeing, closing;       /* mw_hubd_free called; handles still closing */
    uv_check_t flush_check;     /* the end of an iteration: after its I/O */
    uv_prepare_t flush_prepare; /* or before the loop waits for I/O */
    uint64_t queued;            /* the slots with a queue to write */
    uv_buf_t *bufs;             /* room for a queue's buffers */
    size_t bufs_cap;
    uint64_t forwarded, dropped;
    mw_hubd_report_cb report;
    void *report_data;
    peer_t peers[MW_HUBD_MAX_WORKERS];
};

int mw_hubd_create(mw_hubd_t **out, uv_loop_t *loop) {
    mw_hubd_t *h = calloc(1, sizeof *h);
    if (!h || !(h->buckets = calloc(INITIAL_BUCKETS, sizeof *h->buckets)) ||
        !(h->entries = calloc(INITIAL_BUCKETS, sizeof *h->entries))) {
        if (h)
            free(h->buckets);
        free(h);
        return MW_ENOMEM;
    }
    h->loop = loop;
    h->seed = mw_hash_seed();
    /* Neither keeps the loop alive; initialising them cannot fail. */
    uv_check_init(loop, &h->flush_check);
    uv_prepare_init(loop, &h->flush_prepare);
    uv_unref((uv_handle_t *)&h->flush_check);
    uv_unref((uv_handle_t *)&h->flush_prepare);
    h->flush_check.data = h->flush_prepare.data = h;
    h->nbuckets = h->nentry_buckets = INITIAL_BUCKETS;
    for (int i = 0; i < MW_HUBD_MAX_WORKERS; i++) {
        h->peers[i].hub = h;
        h->peers[i].slot = i;
        h->peers[i].child_fd = -1;
    }
    *out = h;
    return 0;
}

void mw_hubd_on_report(mw_hubd_t *h, mw_hubd_report_cb cb, void *data) {
    h->report = cb;
    h->report_data = data;
}

/* ---- blocks and writes --------------------------------------------------- */

/* block_of copies record raw (n bytes) into a new block, with the origin's
 * number (slot + 1, or 0 for the supervisor) written in. */
static block_t *block_of(const char *raw, size_t n, int from) {
    block_t *b = malloc(sizeof *b + n);
    if (!b)
        return NULL;
    b->refs = 1;
    b->len = n;
    memcpy(b->bytes, raw, n);
    b->bytes[MW_HUB_WORKER_AT] = (char)(from + 1);
    return b;
}

static void release(block_t *b) {
    if (--b->refs == 0)
        free(b);
}

static void on_written(uv_write_t *req, int status) {
    (void)status; /* a worker gone shows up on its read side */
    queue_t *q = (queue_t *)req;
    for (size_t i = 0; i < q->n; i++)
        release(q->blocks[i]);
    free(q);
}

static void on_flush_check(uv_check_t *c);
static void on_flush_prepare(uv_prepare_t *c);

/* enqueue adds block b to what goes to worker p at the end of this loop
 * iteration. Returns 0, or -1 when memory ran out (not queued). */
static int enqueue(mw_hubd_t *h, peer_t *p, block_t *b) {
    queue_t *q = p->queue;
    if (!q || q->n == q->cap) {
        size_t cap = q ? q->cap * 2 : 64;
        queue_t *grown = realloc(q, sizeof *q + cap * sizeof q->blocks[0]);
        if (!grown)
            return -1;
        if (!q)
            grown->n = grown->bytes = 0;
        grown->cap = cap;
        p->queue = q = grown;
    }
    q->blocks[q->n++] = b;
    q->bytes += b->len;
    b->refs++;
    if (!h->queued) {
        uv_check_start(&h->flush_check, on_flush_check);
        uv_prepare_start(&h->flush_prepare, on_flush_prepare);
    }
    h->queued |= (uint64_t)1 << p->slot;
    return 0;
}

/* drop_queue forgets what was queued to worker p (it is detached). */
static void drop_queue(mw_hubd_t *h, peer_t *p) {
    queue_t *q = p->queue;
    if (!q)
        return;
    p->queue = NULL;
    h->queued &= ~((uint64_t)1 << p->slot);
    for (size_t i = 0; i < q->n; i++)
        release(q->blocks[i]);
    free(q);
}

/* flush_peer writes worker p's queue: one write of all its blocks. */
static void flush_peer(mw_hubd_t *h, peer_t *p) {
    queue_t *q = p->queue;
    p->queue = NULL;
    if (!q)
        return;
    if (h->bufs_cap < q->n) {
        uv_buf_t *bufs = realloc(h->bufs, q->n * sizeof *bufs);
        if (!bufs) {
            h->dropped += q->n;
            on_written(&q->req, 0);
            return;
        }
        h->bufs = bufs;
        h->bufs_cap = q->n;
    }
    for (size_t i = 0; i < q->n; i++)
        h->bufs[i] = uv_buf_init(q->blocks[i]->bytes, (unsigned)q->blocks[i]->len);
    /* libuv copies the buffers' list; the blocks stay until on_written */
    if (uv_write(&q->req, (uv_stream_t *)&p->pipe, h->bufs, (unsigned)q->n, on_written) != 0) {
        h->dropped += q->n;
        on_written(&q->req, 0);
    }
}

/* flush writes every worker's queue of this loop iteration. */
static void flush(mw_hubd_t *h) {
    uv_check_stop(&h->flush_check);
    uv_prepare_stop(&h->flush_prepare);
    while (h->queued) {
        int i = __builtin_ctzll(h->queued);
        h->queued &= h->queued - 1;
        flush_peer(h, &h->peers[i]);
    }
}

static void on_flush_check(uv_check_t *c) {
    flush(c->data);
}

static void on_flush_prepare(uv_prepare_t *c) {
    flush(c->data);
}

/* pass_on queues block b to worker p. Returns 0, or -1 when it is dropped
 * (counted): p is gone, past MAX_QUEUED, or memory ran out. */
static int pass_on(mw_hubd_t *h, peer_t *p, block_t *b) {
    size_t queued = p->queue ? p->queue->bytes : 0;
    if (!p->attached ||
        uv_stream_get_write_queue_size((uv_stream_t *)&p->pipe) + queued > MAX_QUEUED ||
        enqueue(h, p, b) != 0) {
        h->dropped++;
        return -1;
    }
    h->forwarded++;
    return 0;
}

/* to_others passes block b on to every attached worker but slot from. */
static void to_others(mw_hubd_t *h, int from, block_t *b) {
    for (int i = 0; i < MW_HUBD_MAX_WORKERS; i++)
        if (i != from && h->peers[i].attached)
            pass_on(h, &h->peers[i], b);
}

/* ---- channels ------------------------------------------------------------- */

static channel_t **find(mw_hubd_t *h, const char *name, size_t len) {
    channel_t **p = &h->buckets[mw_hash(h->seed, name, len) & (h->nbuckets - 1)];
    while (*p && ((*p)->len != len || memcmp((*p)->name, name, len) != 0))
        p = &(*p)->next;
    return p;
}

/* grow doubles the table once it holds as many channels as buckets. */
static void grow(mw_hubd_t *h) {
    size_t n = h->nbuckets * 2;
    channel_t **b = calloc(n, sizeof *b);
    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < h->nbuckets; i++)
        for (channel_t *c = h->buckets[i], *next; c; c = next) {
            next = c->next;
            size_t k = mw_hash(h->seed, c->name, c->len) & (n - 1);
            c->next = b[k];
            b[k] = c;
        }
    free(h->buckets);
    h->buckets = b;
    h->nbuckets = n;
}

static void subscribe(mw_hubd_t *h, int slot, const char *name, size_t len) {
    channel_t **p = find(h, name, len);
    if (!*p) {
        channel_t *c = malloc(sizeof *c + len);
        if (!c) {
            mw_log_error("hub: out of memory: worker %d not subscribed to a channel", slot + 1);
            return;
        }
        c->next = NULL;
        c->mask = 0;
        c->len = len;
        memcpy(c->name, name, len);
        *p = c;
        if (++h->nchannels > h->nbuckets)
            grow(h);
        p = find(h, name, len);
    }
    (*p)->mask |= (uint64_t)1 << slot;
}

static void unsubscribe_mask(mw_hubd_t *h, channel_t **p, uint64_t bits) {
    channel_t *c = *p;
    c->mask &= ~bits;
    if (c->mask == 0) {
        *p = c->next;
        free(c);
        h->nchannels--;
    }
}

/* publish passes record rec (its bytes: raw, n) on to every worker
 * subscribed to its channel except from (the origin). */
static void publish(mw_hubd_t *h, int from, const mw_hub_record_t *rec, const char *raw, size_t n) {
    channel_t *c = *find(h, rec->channel, rec->channel_len);
    uint64_t mask = c ? c->mask & ~((uint64_t)1 << from) : 0;
    if (!mask)
        return;
    block_t *b = block_of(raw, n, from);
    if (!b) {
        h->dropped++;
        return;
    }
    for (int i = 0; i < MW_HUBD_MAX_WORKERS && mask; i++) {
        if (!(mask & ((uint64_t)1 << i)))
            continue;
        mask &= ~((uint64_t)1 << i);
        pass_on(h, &h->peers[i], b);
    }
    release(b); /* this loop's reference: the writes hold theirs */
}

/* ---- the store -------------------------------------------------------------- */

static size_t entry_bucket(const mw_hubd_t *h, size_t nbuckets, int slot, const char *key,
                           size_t len) {
    uint64_t seed = h->seed ^ ((uint64_t)(slot + 1) * 0x9E3779B97F4A7C15ULL);
    return mw_hash(seed, key, len) & (nbuckets - 1);
}

static entry_t **find_entry(mw_hubd_t *h, int slot, const char *key, size_t len) {
    entry_t **p = &h->entries[entry_bucket(h, h->nentry_buckets, slot, key, len)];
    while (*p && ((*p)->slot != slot || (*p)->key_len != len || memcmp((*p)->key, key, len) != 0))
        p = &(*p)->next;
    return p;
}

static void grow_entries(mw_hubd_t *h) {
    size_t n = h->nentry_buckets * 2;
    entry_t **b = calloc(n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < h->nentry_buckets; i++)
        for (entry_t *e = h->entries[i], *next; e; e = next) {
            next = e->next;
            size_t k = entry_bucket(h, n, e->slot, e->key, e->key_len);
            e->next = b[k];
            b[k] = e;
        }
    free(h->entries);
    h->entries = b;
    h->nentry_buckets = n;
}

/* store_set keeps worker from's SET record rec (raw, n bytes) in place of
 * the key's previous value, and passes it on to every other worker. */
static void store_set(mw_hubd_t *h, int from, const mw_hub_record_t *rec, const char *raw,
                      size_t n) {
    block_t *b = block_of(raw, n, from);
    if (!b) {
        mw_log_error("hub: out of memory: an entry of worker %d is not kept", from + 1);
        return;
    }
    const char *key = b->bytes + MW_HUB_HEADER;
    entry_t **p = find_entry(h, from, key, rec->channel_len);
    if (*p) {
        release((*p)->block);
        (*p)->block = b; /* the store's reference */
        (*p)->key = key;
    } else {
        entry_t *e = malloc(sizeof *e);
        if (!e) {
            mw_log_error("hub: out of memory: an entry of worker %d is not kept", from + 1);
            release(b);
            return;
        }
        e->next = NULL;
        e->slot = from;
        e->block = b; /* the store's reference */
        e->key = key;
        e->key_len = rec->channel_len;
        *p = e;
        if (++h->nentries > h->nentry_buckets)
            grow_entries(h);
    }
    to_others(h, from, b);
}

static void unlink_entry(mw_hubd_t *h, entry_t **p) {
    entry_t *e = *p;
    *p = e->next;
    release(e->block);
    free(e);
    h->nentries--;
}

/* store_del forgets worker from's key and tells the others. */
static void store_del(mw_hubd_t *h, int from, const mw_hub_record_t *rec, const char *raw,
                      size_t n) {
    entry_t **p = find_entry(h, from, rec->channel, rec->channel_len);
    if (!*p)
        return; /* never kept: nobody has it */
    unlink_entry(h, p);
    block_t *b = block_of(raw, n, from);
    if (!b) {
        h->dropped++;
        return;
    }
    to_others(h, from, b);
    release(b);
}

/* drop_entries forgets every entry of worker slot. */
static void drop_entries(mw_hubd_t *h, int slot) {
    for (size_t i = 0; i < h->nentry_buckets; i++)
        for (entry_t **p = &h->entries[i]; *p;) {
            if ((*p)->slot == slot)
                unlink_entry(h, p);
            else
                p = &(*p)->next;
        }
}

/* snapshot queues every other worker's entries to worker p, which has
 * just been attached: they come before anything else on its socket. */
static void snapshot(mw_hubd_t *h, peer_t *p) {
    for (size_t i = 0; i < h->nentry_buckets; i++)
        for (entry_t *e = h->entries[i]; e; e = e->next) {
            if (e->slot == p->slot)
                continue;
            if (enqueue(h, p, e->block) != 0) {
                mw_log_error("hub: out of memory: worker %d starts without the others' entries",
                             p->slot + 1);
                drop_queue(h, p); /* none rather than some */
                return;
            }
            h->forwarded++;
        }
}

int mw_hubd_reload(mw_hubd_t *h, int slot) {
    if (slot < 0 || slot >= MW_HUBD_MAX_WORKERS || !h->peers[slot].attached)
        return MW_EINVAL;
    char raw[MW_HUB_HEADER];
    mw_hub_record_write(raw, MW_HUB_RELOAD, 0, NULL, 0, NULL, 0);
    block_t *b = block_of(raw, sizeof raw, -1);
    if (!b)
        return MW_ENOMEM;
    int rc = pass_on(h, &h->peers[slot], b) == 0 ? 0 : MW_EIO;
    release(b);
    return rc;
}

/* tell_exit tells every other worker that worker slot is gone. */
static void tell_exit(mw_hubd_t *h, int slot) {
    char raw[MW_HUB_HEADER];
    mw_hub_record_write(raw, MW_HUB_EXIT, 0, NULL, 0, NULL, 0);
    block_t *b = block_of(raw, sizeof raw, slot);
    if (!b) {
        mw_log_error("hub: out of memory: the others are not told that worker %d exited", slot + 1);
        return;
    }
    to_others(h, slot, b);
    release(b);
}

/* ---- reading the workers ------------------------------------------------------ */

/* send_ack tells worker p that n more of its SUB and UNSUB records are
 * applied: what any worker publishes after this reaches p per them. */
static void send_ack(mw_hubd_t *h, peer_t *p, uint64_t n) {
    char raw[MW_HUB_HEADER + 20], digits[21];
    int len = snprintf(digits, sizeof digits, "%llu", (unsigned long long)n);
    mw_hub_record_write(raw, MW_HUB_ACK, 0, NULL, 0, digits, (size_t)len);
    block_t *b = block_of(raw, mw_hub_record_size(0, (size_t)len), -1);
    if (!b || enqueue(h, p, b) != 0)
        mw_log_error("hub: out of memory: worker %d's subscriptions are not confirmed",
                     p->slot + 1);
    if (b)
        release(b);
}

static void on_record(void *data, const mw_hub_record_t *rec) {
    peer_t *p = data;
    mw_hubd_t *h = p->hub;
    /* The raw record starts MW_HUB_HEADER bytes before its channel. */
    const char *raw = rec->channel - MW_HUB_HEADER;
    size_t n = MW_HUB_HEADER + rec->channel_len + rec->payload_len;
    switch (rec->op) {
    case MW_HUB_SUB:
        subscribe(h, p->slot, rec->channel, rec->channel_len);
        p->acks_owed++;
        break;
    case MW_HUB_UNSUB: {
        channel_t **c = find(h, rec->channel, rec->channel_len);
        if (*c)
            unsubscribe_mask(h, c, (uint64_t)1 << p->slot);
        p->acks_owed++;
        break;
    }
    case MW_HUB_PUB: publish(h, p->slot, rec, raw, n); break;
    case MW_HUB_SET: store_set(h, p->slot, rec, raw, n); break;
    case MW_HUB_DEL: store_del(h, p->slot, rec, raw, n); break;
    case MW_HUB_REPORT:
        if (h->report)
            h->report(h->report_data, p->slot + 1, rec->channel, rec->channel_len, rec->payload,
                      rec->payload_len);
        break;
    default: break; /* ACK and EXIT go to workers, not from them */
    }
}

static void on_alloc(uv_handle_t *handle, size_t size, uv_buf_t *buf) {
    (void)size;
    peer_t *p = handle->data;
    mw_hub_reader_alloc(&p->reader, buf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    (void)buf;
    peer_t *p = s->data;
    if (nread == 0)
        return;
    int rc = nread < 0 ? MW_ECLOSED : mw_hub_reader_take(&p->reader, (size_t)nread, on_record, p);
    if (rc == 0 && p->acks_owed > 0) {
        send_ack(p->hub, p, p->acks_owed);
        p->acks_owed = 0;
    }
    if (rc != 0) {
        if (rc != MW_ECLOSED)
            mw_log_error("hub: worker %d sent a bad record: its socket is closed", p->slot + 1);
        mw_hubd_detach(p->hub, p->slot);
    }
}

static void maybe_free(mw_hubd_t *h) {
    if (!h->freeing || h->closing > 0)
        return;
    for (size_t i = 0; i < h->nbuckets; i++)
        for (channel_t *c = h->buckets[i], *next; c; c = next) {
            next = c->next;
            free(c);
        }
    for (size_t i = 0; i < h->nentry_buckets; i++)
        while (h->entries[i])
            unlink_entry(h, &h->entries[i]);
    free(h->buckets);
    free(h->entries);
    free(h->bufs);
    free(h);
}

static void on_closed(uv_handle_t *handle) {
    peer_t *p = handle->data;
    mw_hubd_t *h = p->hub;
    mw_hub_reader_free(&p->reader);
    h->closing--;
    maybe_free(h);
}

/* on_hub_closed: one of the hub's own handles (flush_check, flush_prepare). */
static void on_hub_closed(uv_handle_t *handle) {
    mw_hubd_t *h = handle->data;
    h->closing--;
    maybe_free(h);
}

int mw_hubd_attach(mw_hubd_t *h, int slot, int *child_fd) {
    if (slot < 0 || slot >= MW_HUBD_MAX_WORKERS)
        return MW_EINVAL;
    peer_t *p = &h->peers[slot];
    if (p->attached || p->child_fd >= 0)
        mw_hubd_detach(h, slot);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return MW_EIO;
    int rc = uv_pipe_init(h->loop, &p->pipe, 0);
    if (rc == 0) {
        p->pipe.data = p;
        if ((rc = uv_pipe_open(&p->pipe, sv[0])) == 0)
            rc = uv_read_start((uv_stream_t *)&p->pipe, on_alloc, on_read);
        if (rc != 0) {
            h->closing++;
            uv_close((uv_handle_t *)&p->pipe, on_closed);
            sv[0] = -1; /* closed with the pipe, or not opened: closed below */
        }
    }
    if (rc != 0) {
        if (sv[0] >= 0)
            close(sv[0]);
        close(sv[1]);
        return MW_EIO;
    }
    /* The hub does not keep the supervisor's loop alive: its workers do. */
    uv_unref((uv_handle_t *)&p->pipe);
    p->attached = 1;
    p->acks_owed = 0;
    p->child_fd = sv[1];
    *child_fd = sv[1];
    snapshot(h, p);
    return 0;
}

void mw_hubd_spawned(mw_hubd_t *h, int slot) {
    peer_t *p = &h->peers[slot];
    if (p->child_fd >= 0) {
        close(p->child_fd);
        p->child_fd = -1;
    }
}

void mw_hubd_detach(mw_hubd_t *h, int slot) {
    peer_t *p = &h->peers[slot];
    mw_hubd_spawned(h, slot);
    if (!p->attached)
        return;
    p->attached = 0;
    uint64_t bit = (uint64_t)1 << slot;
    for (size_t i = 0; i < h->nbuckets; i++)
        for (channel_t **c = &h->buckets[i]; *c;) {
            channel_t *cur = *c;
            if (cur->mask & bit) {
                unsubscribe_mask(h, c, bit);
                if (*c != cur)
                    continue; /* cur was freed; *c is the next one */
            }
            c = &cur->next;
        }
    drop_entries(h, slot);
    drop_queue(h, p);
    if (!h->freeing)
        tell_exit(h, slot);
    h->closing++;
    uv_close((uv_handle_t *)&p->pipe, on_closed);
}

void mw_hubd_free(mw_hubd_t *h) {
    if (!h)
        return;
    h->freeing = 1; /* nobody to tell of the exits */
    for (int i = 0; i < MW_HUBD_MAX_WORKERS; i++)
        mw_hubd_detach(h, i);
    h->closing += 2;
    uv_close((uv_handle_t *)&h->flush_check, on_hub_closed);
    uv_close((uv_handle_t *)&h->flush_prepare, on_hub_closed);
}

uint64_t mw_hubd_forwarded(const mw_hubd_t *h) {
    return h->forwarded;
}

uint64_t mw_hubd_dropped(const mw_hubd_t *h) {
    return h->dropped;
}

size_t mw_hubd_entries(const mw_hubd_t *h) {
    return h->nentries;
}
