/*
 * hubd.c - the supervisor's end of the hub (hubd.h).
 *
 * Channels are a chained hash table (mw_hash, seeded) of name -> mask of
 * subscribed worker slots. A published record is forwarded from the
 * buffer it was read into: copied once into one refcounted block, which
 * every receiving worker's write points to; freed after the last write.
 * The SUB and UNSUB records of one read are confirmed by one ACK, sent
 * once they are applied.
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

typedef struct {
    mw_hubd_t *hub;
    int slot;
    int attached; /* the pipe is open */
    int child_fd; /* the worker's end until it is spawned, else -1 */
    uv_pipe_t pipe;
    mw_hub_reader_t reader;
    uint64_t acks_owed; /* SUB and UNSUB applied in this read, to confirm */
} peer_t;

struct mw_hubd {
    uv_loop_t *loop;
    uint64_t seed;
    channel_t **buckets;
    size_t nbuckets, nchannels;
    int freeing, closing; /* mw_hubd_free called; pipes still closing */
    uint64_t forwarded, dropped;
    peer_t peers[MW_HUBD_MAX_WORKERS];
};

/* A record forwarded to several workers: one copy, counted references. */
typedef struct {
    int refs;
    size_t len;
    char bytes[];
} block_t;

typedef struct {
    uv_write_t req;
    block_t *block;
} fwd_t;

int mw_hubd_create(mw_hubd_t **out, uv_loop_t *loop) {
    mw_hubd_t *h = calloc(1, sizeof *h);
    if (!h || !(h->buckets = calloc(INITIAL_BUCKETS, sizeof *h->buckets))) {
        free(h);
        return MW_ENOMEM;
    }
    h->loop = loop;
    h->seed = mw_hash_seed();
    h->nbuckets = INITIAL_BUCKETS;
    for (int i = 0; i < MW_HUBD_MAX_WORKERS; i++) {
        h->peers[i].hub = h;
        h->peers[i].slot = i;
        h->peers[i].child_fd = -1;
    }
    *out = h;
    return 0;
}

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

static void on_forwarded(uv_write_t *req, int status) {
    (void)status; /* a worker gone shows up on its read side */
    fwd_t *f = (fwd_t *)req;
    if (--f->block->refs == 0)
        free(f->block);
    free(f);
}

/* publish passes record rec (its bytes: raw, n) on to every worker
 * subscribed to its channel except from (the origin). */
static void publish(mw_hubd_t *h, int from, const mw_hub_record_t *rec, const char *raw, size_t n) {
    channel_t *c = *find(h, rec->channel, rec->channel_len);
    uint64_t mask = c ? c->mask & ~((uint64_t)1 << from) : 0;
    if (!mask)
        return;
    block_t *b = malloc(sizeof *b + n);
    if (!b) {
        h->dropped++;
        return;
    }
    b->refs = 1; /* held by this loop until every write is queued */
    b->len = n;
    memcpy(b->bytes, raw, n);
    for (int i = 0; i < MW_HUBD_MAX_WORKERS && mask; i++) {
        if (!(mask & ((uint64_t)1 << i)))
            continue;
        mask &= ~((uint64_t)1 << i);
        peer_t *p = &h->peers[i];
        if (!p->attached || uv_stream_get_write_queue_size((uv_stream_t *)&p->pipe) > MAX_QUEUED) {
            h->dropped++;
            continue;
        }
        fwd_t *f = malloc(sizeof *f);
        if (!f) {
            h->dropped++;
            continue;
        }
        f->block = b;
        b->refs++;
        uv_buf_t buf = uv_buf_init(b->bytes, (unsigned)n);
        if (uv_write(&f->req, (uv_stream_t *)&p->pipe, &buf, 1, on_forwarded) != 0) {
            b->refs--;
            free(f);
            h->dropped++;
            continue;
        }
        h->forwarded++;
    }
    if (--b->refs == 0)
        free(b);
}

/* An ACK on its way: the request and the record it writes. */
typedef struct {
    uv_write_t req;
    char rec[MW_HUB_HEADER + 20];
} ack_t;

static void on_acked(uv_write_t *req, int status) {
    (void)status;
    free(req);
}

/* send_ack tells worker p that n more of its SUB and UNSUB records are
 * applied: what any worker publishes after this reaches p per them. */
static void send_ack(peer_t *p, uint64_t n) {
    ack_t *a = malloc(sizeof *a);
    if (!a) {
        mw_log_error("hub: out of memory: worker %d's subscriptions are not confirmed",
                     p->slot + 1);
        return;
    }
    char digits[21];
    int len = snprintf(digits, sizeof digits, "%llu", (unsigned long long)n);
    mw_hub_record_write(a->rec, MW_HUB_ACK, NULL, 0, digits, (size_t)len);
    uv_buf_t buf = uv_buf_init(a->rec, (unsigned)mw_hub_record_size(0, (size_t)len));
    if (uv_write(&a->req, (uv_stream_t *)&p->pipe, &buf, 1, on_acked) != 0)
        free(a);
}

static void on_record(void *data, const mw_hub_record_t *rec) {
    peer_t *p = data;
    mw_hubd_t *h = p->hub;
    if (rec->op == MW_HUB_SUB) {
        subscribe(h, p->slot, rec->channel, rec->channel_len);
        p->acks_owed++;
    } else if (rec->op == MW_HUB_UNSUB) {
        channel_t **c = find(h, rec->channel, rec->channel_len);
        if (*c)
            unsubscribe_mask(h, c, (uint64_t)1 << p->slot);
        p->acks_owed++;
    } else if (rec->op == MW_HUB_PUB) {
        /* The raw record starts MW_HUB_HEADER bytes before its channel. */
        const char *raw = rec->channel - MW_HUB_HEADER;
        publish(h, p->slot, rec, raw, MW_HUB_HEADER + rec->channel_len + rec->payload_len);
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
        send_ack(p, p->acks_owed);
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
    free(h->buckets);
    free(h);
}

static void on_closed(uv_handle_t *handle) {
    peer_t *p = handle->data;
    mw_hubd_t *h = p->hub;
    mw_hub_reader_free(&p->reader);
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
    h->closing++;
    uv_close((uv_handle_t *)&p->pipe, on_closed);
}

void mw_hubd_free(mw_hubd_t *h) {
    if (!h)
        return;
    for (int i = 0; i < MW_HUBD_MAX_WORKERS; i++)
        mw_hubd_detach(h, i);
    h->freeing = 1;
    maybe_free(h);
}

uint64_t mw_hubd_forwarded(const mw_hubd_t *h) {
    return h->forwarded;
}

uint64_t mw_hubd_dropped(const mw_hubd_t *h) {
    return h->dropped;
}
