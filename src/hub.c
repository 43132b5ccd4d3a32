/*
 * hub.c - the records workers and their supervisor exchange (hub.h), and
 * the worker's end of the socket that carries them.
 */
#include "hub.h"
#include "errors.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

#define READ_CHUNK 65536

size_t mw_hub_record_size(size_t channel_len, size_t payload_len) {
    return MW_HUB_HEADER + channel_len + payload_len;
}

void mw_hub_record_write(char *buf, int op, int worker, const char *channel, size_t channel_len,
                         const char *payload, size_t payload_len) {
    uint32_t n = (uint32_t)(MW_HUB_HEADER - 4 + channel_len + payload_len);
    unsigned char *p = (unsigned char *)buf;
    p[0] = (unsigned char)(n >> 24);
    p[1] = (unsigned char)(n >> 16);
    p[2] = (unsigned char)(n >> 8);
    p[3] = (unsigned char)n;
    p[4] = (unsigned char)op;
    p[MW_HUB_WORKER_AT] = (unsigned char)worker;
    p[6] = (unsigned char)(channel_len >> 8);
    p[7] = (unsigned char)channel_len;
    if (channel_len)
        memcpy(buf + MW_HUB_HEADER, channel, channel_len);
    if (payload_len)
        memcpy(buf + MW_HUB_HEADER + channel_len, payload, payload_len);
}

long mw_hub_record_parse(const char *buf, size_t n, mw_hub_record_t *rec) {
    if (n < MW_HUB_HEADER)
        return 0;
    const unsigned char *p = (const unsigned char *)buf;
    uint32_t len = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    size_t chlen = (size_t)p[6] << 8 | p[7];
    const uint32_t fixed = MW_HUB_HEADER - 4; /* op, worker, channel length */
    if (len < fixed || len > MW_HUB_RECORD_MAX || chlen > len - fixed || p[4] < MW_HUB_SUB ||
        p[4] > MW_HUB_OP_MAX)
        return MW_EPROTO;
    if (n < 4 + (size_t)len)
        return 0;
    rec->op = p[4];
    rec->worker = p[MW_HUB_WORKER_AT];
    rec->channel = buf + MW_HUB_HEADER;
    rec->channel_len = chlen;
    rec->payload = buf + MW_HUB_HEADER + chlen;
    rec->payload_len = len - fixed - chlen;
    return (long)(4 + len);
}

int mw_hub_reader_alloc(mw_hub_reader_t *r, uv_buf_t *buf) {
    if (r->cap - r->len < READ_CHUNK) {
        size_t cap = r->cap ? r->cap * 2 : READ_CHUNK * 2;
        while (cap - r->len < READ_CHUNK)
            cap *= 2;
        char *b = realloc(r->buf, cap);
        if (!b) {
            *buf = uv_buf_init(NULL, 0);
            return MW_ENOMEM;
        }
        r->buf = b;
        r->cap = cap;
    }
    *buf = uv_buf_init(r->buf + r->len, (unsigned)(r->cap - r->len));
    return 0;
}

int mw_hub_reader_take(mw_hub_reader_t *r, size_t nread,
                       void (*fn)(void *data, const mw_hub_record_t *rec), void *data) {
    r->len += nread;
    size_t off = 0;
    for (;;) {
        mw_hub_record_t rec;
        long n = mw_hub_record_parse(r->buf + off, r->len - off, &rec);
        if (n < 0)
            return (int)n;
        if (n == 0)
            break;
        fn(data, &rec);
        off += (size_t)n;
    }
    if (off > 0) {
        memmove(r->buf, r->buf + off, r->len - off);
        r->len -= off;
    }
    /* Give back a buffer a big record grew, once it is consumed. */
    if (r->len == 0 && r->cap > 4 * READ_CHUNK) {
        free(r->buf);
        r->buf = NULL;
        r->cap = 0;
    }
    return 0;
}

void mw_hub_reader_free(mw_hub_reader_t *r) {
    free(r->buf);
    memset(r, 0, sizeof *r);
}

/* ---- the worker's end ------------------------------------------------------ */

/* The records of one loop iteration, written at its end with one write:
 * the request and the bytes in one allocation, handed to libuv when the
 * socket does not take them at once. */
typedef struct {
    uv_write_t req;
    size_t len, cap;
    char bytes[];
} outbuf_t;

/* A buffer kept from one iteration to the next up to this size. */
#define OUT_KEEP (256u << 10)

struct mw_hub {
    uv_pipe_t pipe;
    uv_check_t flush_check;     /* the end of an iteration: after its I/O */
    uv_prepare_t flush_prepare; /* or before the loop waits for I/O */
    int flushing;               /* both started: records queued */
    int open_handles;           /* freed when the last one closes */
    outbuf_t *out;              /* records queued in this iteration */
    mw_hub_reader_t reader;
    mw_hub_message_cb cb;
    void *data;
    int up;
    uint64_t pending; /* SUB and UNSUB sent, not yet acknowledged */
};

int mw_hub_worker_fd(void) {
    const char *v = getenv("MW_HUB_FD");
    if (!v || !getenv("MW_WORKER"))
        return -1;
    char *end;
    long fd = strtol(v, &end, 10);
    return end != v && *end == '\0' && fd >= 3 && fd < 65536 ? (int)fd : -1;
}

static void on_alloc(uv_handle_t *handle, size_t size, uv_buf_t *buf) {
    (void)size;
    mw_hub_t *h = handle->data;
    mw_hub_reader_alloc(&h->reader, buf);
}

/* ack_count reads an ACK's count (decimal digits); 0 for anything else. */
static uint64_t ack_count(const char *p, size_t n) {
    uint64_t v = 0;
    if (n == 0 || n > 19)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    return v;
}

static void deliver(void *data, const mw_hub_record_t *rec) {
    mw_hub_t *h = data;
    if (rec->op == MW_HUB_ACK) {
        uint64_t n = ack_count(rec->payload, rec->payload_len);
        h->pending = n > h->pending ? 0 : h->pending - n;
    } else if (rec->op != MW_HUB_SUB && rec->op != MW_HUB_UNSUB && rec->op != MW_HUB_REPORT) {
        /* PUB, SET, DEL, EXIT, RELOAD */
        h->cb(h->data, rec);
    }
}

static void on_closed(uv_handle_t *handle) {
    mw_hub_t *h = handle->data;
    if (--h->open_handles > 0)
        return;
    mw_hub_reader_free(&h->reader);
    free(h->out);
    free(h);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    (void)buf;
    mw_hub_t *h = s->data;
    if (nread == 0)
        return;
    int rc = nread < 0 ? MW_ECLOSED : mw_hub_reader_take(&h->reader, (size_t)nread, deliver, h);
    if (rc != 0 && h->up) {
        h->up = 0;
        uv_read_stop(s);
        mw_log_error("the supervisor's hub is gone (%s): messages to other workers are dropped",
                     nread < 0 ? uv_strerror((int)nread) : mw_strerror(rc));
    }
}

static void on_written(uv_write_t *req, int status) {
    (void)status; /* a broken socket shows up on the read side */
    free(req);
}

/* flush writes the records queued in this loop iteration: as much as the
 * socket takes now, and the rest (a full socket) with a write libuv
 * finishes; the buffer is kept for the next iteration when it is all
 * written at once. */
static void flush(mw_hub_t *h) {
    if (h->flushing) {
        h->flushing = 0;
        uv_check_stop(&h->flush_check);
        uv_prepare_stop(&h->flush_prepare);
    }
    outbuf_t *o = h->out;
    if (!o || o->len == 0)
        return;
    uv_buf_t buf = uv_buf_init(o->bytes, (unsigned)o->len);
    int n = uv_try_write((uv_stream_t *)&h->pipe, &buf, 1); /* UV_EAGAIN behind a write */
    size_t done = n > 0 ? (size_t)n : 0;
    if (done == o->len) {
        o->len = 0;
        if (o->cap > OUT_KEEP) {
            free(o);
            h->out = NULL;
        }
        return;
    }
    h->out = NULL;
    buf = uv_buf_init(o->bytes + done, (unsigned)(o->len - done));
    if (uv_write(&o->req, (uv_stream_t *)&h->pipe, &buf, 1, on_written) != 0)
        free(o); /* the socket is gone: the read side says so */
}

static void on_flush_check(uv_check_t *c) {
    flush(c->data);
}

static void on_flush_prepare(uv_prepare_t *p) {
    flush(p->data);
}

int mw_hub_open(mw_hub_t **out, uv_loop_t *loop, int fd, mw_hub_message_cb cb, void *data) {
    mw_hub_t *h = calloc(1, sizeof *h);
    if (!h)
        return MW_ENOMEM;
    h->cb = cb;
    h->data = data;
    h->pipe.data = h->flush_check.data = h->flush_prepare.data = h;
    /* The check and prepare handles never fail to initialise on a live loop. */
    uv_check_init(loop, &h->flush_check);
    uv_prepare_init(loop, &h->flush_prepare);
    uv_unref((uv_handle_t *)&h->flush_check);
    uv_unref((uv_handle_t *)&h->flush_prepare);
    h->open_handles = 2;
    int rc = uv_pipe_init(loop, &h->pipe, 0);
    if (rc == 0) {
        h->open_handles++;
        if ((rc = uv_pipe_open(&h->pipe, fd)) == 0)
            rc = uv_read_start((uv_stream_t *)&h->pipe, on_alloc, on_read);
    }
    if (rc != 0) {
        if (h->open_handles == 3)
            uv_close((uv_handle_t *)&h->pipe, on_closed);
        uv_close((uv_handle_t *)&h->flush_check, on_closed);
        uv_close((uv_handle_t *)&h->flush_prepare, on_closed);
        return MW_EIO;
    }
    uv_unref((uv_handle_t *)&h->pipe);
    h->up = 1;
    *out = h;
    return 0;
}

/* queue_record appends a record to this iteration's buffer. */
static int queue_record(mw_hub_t *h, int op, const char *channel, size_t channel_len,
                        const char *payload, size_t len) {
    size_t size = mw_hub_record_size(channel_len, len);
    outbuf_t *o = h->out;
    size_t used = o ? o->len : 0;
    if (!o || o->cap - o->len < size) {
        size_t cap = o ? o->cap * 2 : 4096;
        while (cap - used < size)
            cap *= 2;
        o = realloc(o, sizeof *o + cap);
        if (!o)
            return MW_ENOMEM; /* h->out, if any, is untouched */
        o->len = used;
        o->cap = cap;
        h->out = o;
    }
    mw_hub_record_write(o->bytes + o->len, op, 0, channel, channel_len, payload, len);
    o->len += size;
    if (!h->flushing) {
        h->flushing = 1;
        uv_check_start(&h->flush_check, on_flush_check);
        uv_prepare_start(&h->flush_prepare, on_flush_prepare);
    }
    return 0;
}

int mw_hub_send(mw_hub_t *h, int op, const char *channel, size_t channel_len, const char *payload,
                size_t len) {
    if (!h->up)
        return MW_ECLOSED;
    if (channel_len > MW_HUB_CHANNEL_MAX ||
        mw_hub_record_size(channel_len, len) - 4 > MW_HUB_RECORD_MAX)
        return MW_EINVAL;
    int rc = queue_record(h, op, channel, channel_len, payload, len);
    if (rc != 0)
        return rc;
    if (op == MW_HUB_SUB || op == MW_HUB_UNSUB)
        h->pending++; /* until the supervisor's ACK says it is applied */
    return 0;
}

int mw_hub_up(const mw_hub_t *h) {
    return h && h->up;
}

uint64_t mw_hub_pending(const mw_hub_t *h) {
    return h ? h->pending : 0;
}

void mw_hub_close(mw_hub_t *h) {
    if (h->up)
        flush(h); /* what this iteration queued: the socket takes it now or never */
    h->up = 0;
    if (!uv_is_closing((uv_handle_t *)&h->pipe)) {
        uv_close((uv_handle_t *)&h->pipe, on_closed);
        uv_close((uv_handle_t *)&h->flush_check, on_closed);
        uv_close((uv_handle_t *)&h->flush_prepare, on_closed);
    }
}
