/*
 * limit.c - the "limit" benchmark peer: a bare C WebSocket server on libuv
 * that does the least work the hub protocol allows, so the fan-out table
 * has an upper bound to compare moonwire with.
 *
 *   {"type":"echo","data":D}             -> the same bytes back
 *   {"type":"subscribe","room":R}        -> {"type":"subscribed","room":R}
 *   {"type":"publish","room":R,"data":D} -> every member of R gets
 *                                           {"type":"message","room":R,"data":D}
 *
 * No JSON parser: fields are found by string search (room names must not
 * contain escaped quotes; D is copied verbatim). A broadcast is built ONCE,
 * framed ONCE (wslay's frame API) into a refcounted buffer, and the SAME
 * bytes are queued on every member; once per loop iteration (uv_check) each
 * connection with queued frames gets one uv_try_write of all of them
 * (writev), falling back to uv_write holding references for what the kernel
 * did not take. One read buffer serves every connection; a connection keeps
 * bytes only when a frame spans reads.
 *
 * Handshake: minimal request parsing, SHA-1 and base64 from OpenSSL.
 * Client frames must be masked; fragmented messages are not supported
 * (closed with 1003) since no benchmark client sends them.
 *
 * Usage: moonwire-limit-peer --port P [--host H]   (P may be 0: any free port)
 * Prints "listening on ws://H:P/" to stderr; exits 0 on SIGTERM/SIGINT.
 */
#include <openssl/evp.h>
#include <openssl/sha.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>
#include <wslay/wslay.h>

#define RBUF_SIZE (256 * 1024)
#define HS_MAX 8192
#define MAX_FRAME (16u << 20)
#define MAX_QUEUED (64u << 20) /* per connection; past it broadcasts are dropped */

typedef struct frame {
    int refs;
    size_t len;
    char data[];
} frame_t;

typedef struct room room_t;
typedef struct conn conn_t;

typedef struct {
    room_t *room;
    size_t idx; /* position in room->members */
} member_t;

struct room {
    char *name;
    size_t name_len;
    conn_t **members;
    size_t n, cap;
    room_t *next;
};

enum { C_HTTP, C_WS, C_CLOSING };

struct conn {
    uv_tcp_t tcp;
    int state;
    char *in; /* bytes of a frame (or request) spanning reads */
    size_t in_len, in_cap;
    member_t *rooms;
    size_t nrooms, rooms_cap;
    frame_t **pend; /* frames to write at the next flush */
    size_t npend, pend_cap;
    int dirty;
    conn_t *next_dirty;
};

typedef struct {
    uv_write_t req;
    size_t n;
    frame_t *frames[];
} wreq_t;

static uv_loop_t *loop;
static uv_tcp_t listener;
static uv_check_t flusher;
static uv_signal_t sigterm, sigint;
static char rbuf[RBUF_SIZE];
static room_t *rooms;
static conn_t *dirty;
static wslay_frame_context_ptr wctx;
static char *sink; /* where wslay writes the frame being built */
static unsigned long long dropped;

/* ---- frames --------------------------------------------------------------- */

static ssize_t sink_send(const uint8_t *data, size_t len, int flags, void *user) {
    (void)flags, (void)user;
    if (sink != (const char *)data) /* the payload is already in place */
        memmove(sink, data, len);
    sink += len;
    return (ssize_t)len;
}

static ssize_t sink_recv(uint8_t *buf, size_t len, int flags, void *user) {
    (void)buf, (void)len, (void)flags, (void)user;
    return -1;
}

static int no_mask(uint8_t *buf, size_t len, void *user) {
    (void)buf, (void)len, (void)user;
    return -1; /* server frames are never masked */
}

/* A server frame (unmasked) around the concatenation of up to 3 parts. */
static frame_t *frame_new(int opcode, const char *a, size_t alen, const char *b, size_t blen,
                          const char *c, size_t clen) {
    size_t plen = alen + blen + clen;
    size_t hlen = plen < 126 ? 2 : plen < 65536 ? 4 : 10;
    frame_t *f = malloc(sizeof(*f) + hlen + plen);
    if (!f)
        return NULL;
    f->refs = 1;
    f->len = hlen + plen;
    char *payload = f->data + hlen;
    memcpy(payload, a, alen);
    memcpy(payload + alen, b, blen);
    memcpy(payload + alen + blen, c, clen);
    struct wslay_frame_iocb io = {0};
    io.fin = 1;
    io.opcode = (uint8_t)opcode;
    io.payload_length = plen;
    io.data = (const uint8_t *)payload;
    io.data_length = plen;
    /* Copies the header, then the payload onto itself (same address). */
    sink = f->data;
    size_t sent = 0;
    do {
        ssize_t r = wslay_frame_send(wctx, &io);
        if (r < 0) {
            free(f);
            return NULL;
        }
        sent += (size_t)r;
        io.data += r;
        io.data_length -= (size_t)r;
    } while (sent < plen);
    return f;
}

static frame_t *raw_new(const char *s, size_t len) {
    frame_t *f = malloc(sizeof(*f) + len);
    if (!f)
        return NULL;
    f->refs = 1;
    f->len = len;
    memcpy(f->data, s, len);
    return f;
}

static void unref(frame_t *f) {
    if (--f->refs == 0)
        free(f);
}

/* ---- connections ---------------------------------------------------------- */

static void conn_close(conn_t *c);

static void queue(conn_t *c, frame_t *f) {
    if (c->state == C_CLOSING)
        return;
    if (c->tcp.write_queue_size > MAX_QUEUED) {
        dropped++;
        return;
    }
    if (c->npend == c->pend_cap) {
        size_t cap = c->pend_cap ? c->pend_cap * 2 : 8;
        frame_t **np = realloc(c->pend, cap * sizeof(*np));
        if (!np) {
            conn_close(c);
            return;
        }
        c->pend = np;
        c->pend_cap = cap;
    }
    f->refs++;
    c->pend[c->npend++] = f;
    if (!c->dirty) {
        c->dirty = 1;
        c->next_dirty = dirty;
        dirty = c;
    }
}

static void on_write(uv_write_t *req, int status) {
    wreq_t *w = (wreq_t *)req;
    for (size_t i = 0; i < w->n; i++)
        unref(w->frames[i]);
    if (status < 0 && status != UV_ECANCELED)
        conn_close(req->handle->data);
    free(w);
}

#define MAX_IOV 256

/* c->dirty stays set until the end, so that conn_close() called from here
 * leaves the pending frames to us. */
static void flush(conn_t *c) {
    size_t done = 0;
    while (done < c->npend && c->state != C_CLOSING) {
        size_t n = c->npend - done;
        if (n > MAX_IOV)
            n = MAX_IOV;
        uv_buf_t bufs[MAX_IOV];
        size_t total = 0;
        for (size_t i = 0; i < n; i++) {
            bufs[i] = uv_buf_init(c->pend[done + i]->data, (unsigned)c->pend[done + i]->len);
            total += c->pend[done + i]->len;
        }
        int w = uv_try_write((uv_stream_t *)&c->tcp, bufs, (unsigned)n);
        if (w < 0 && w != UV_EAGAIN) {
            conn_close(c);
            break;
        }
        size_t wrote = w < 0 ? 0 : (size_t)w;
        if (wrote == total) {
            for (size_t i = 0; i < n; i++)
                unref(c->pend[done + i]);
            done += n;
            continue;
        }
        /* The kernel took `wrote` bytes: skip the frames it took whole, and
         * hand the rest (first one from an offset) to uv_write. */
        size_t k = 0;
        while (wrote >= c->pend[done + k]->len) {
            wrote -= c->pend[done + k]->len;
            unref(c->pend[done + k]);
            k++;
        }
        size_t rest = c->npend - done - k; /* every remaining frame */
        wreq_t *wr = malloc(sizeof(*wr) + rest * sizeof(frame_t *));
        uv_buf_t *wb = malloc(rest * sizeof(uv_buf_t));
        if (!wr || !wb) {
            free(wr);
            free(wb);
            conn_close(c);
            break;
        }
        wr->n = rest;
        for (size_t i = 0; i < rest; i++) {
            frame_t *f = c->pend[done + k + i];
            wr->frames[i] = f; /* the pending reference moves to the request */
            wb[i] = uv_buf_init(f->data, (unsigned)f->len);
        }
        wb[0].base += wrote;
        wb[0].len -= (unsigned)wrote;
        done = c->npend;
        if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, wb, (unsigned)rest, on_write) < 0) {
            for (size_t i = 0; i < rest; i++)
                unref(wr->frames[i]);
            free(wr);
            free(wb);
            conn_close(c);
            break;
        }
        free(wb); /* libuv copied the buffer descriptors */
    }
    if (c->state == C_CLOSING)
        for (size_t i = done; i < c->npend; i++)
            unref(c->pend[i]);
    c->npend = 0;
    c->dirty = 0;
}

static void on_check(uv_check_t *h) {
    (void)h;
    while (dirty) {
        conn_t *c = dirty;
        dirty = c->next_dirty;
        c->next_dirty = NULL;
        flush(c);
    }
}

static void leave_all(conn_t *c) {
    for (size_t i = 0; i < c->nrooms; i++) {
        room_t *r = c->rooms[i].room;
        size_t idx = c->rooms[i].idx;
        conn_t *last = r->members[--r->n];
        r->members[idx] = last;
        if (last != c)
            for (size_t j = 0; j < last->nrooms; j++)
                if (last->rooms[j].room == r)
                    last->rooms[j].idx = idx;
    }
    c->nrooms = 0;
}

static void on_close(uv_handle_t *h) {
    conn_t *c = h->data;
    free(c->in);
    free(c->rooms);
    free(c->pend);
    free(c);
}

static void conn_close(conn_t *c) {
    if (c->state == C_CLOSING)
        return;
    c->state = C_CLOSING;
    leave_all(c);
    if (!c->dirty) { /* otherwise flush() releases the pending frames */
        for (size_t i = 0; i < c->npend; i++)
            unref(c->pend[i]);
        c->npend = 0;
    }
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void send_text(conn_t *c, const char *a, size_t alen, const char *b, size_t blen,
                      const char *d, size_t dlen) {
    frame_t *f = frame_new(WSLAY_TEXT_FRAME, a, alen, b, blen, d, dlen);
    if (!f) {
        conn_close(c);
        return;
    }
    queue(c, f);
    unref(f);
}

/* ---- the hub protocol ----------------------------------------------------- */

/* Finds "key" : "value" and returns the value (without quotes). */
static const char *str_field(const char *m, size_t len, const char *key, size_t *vlen) {
    size_t klen = strlen(key);
    const char *end = m + len, *p = m;
    while ((p = memmem(p, (size_t)(end - p), key, klen))) {
        const char *q = p + klen;
        p = q;
        while (q < end && (*q == ' ' || *q == ':' || *q == '\t'))
            q++;
        if (q >= end || *q != '"')
            continue;
        const char *v = ++q;
        const char *e = memchr(v, '"', (size_t)(end - v));
        if (!e)
            return NULL;
        *vlen = (size_t)(e - v);
        return v;
    }
    return NULL;
}

static room_t *room_get(const char *name, size_t len, int create) {
    for (room_t *r = rooms; r; r = r->next)
        if (r->name_len == len && memcmp(r->name, name, len) == 0)
            return r;
    if (!create)
        return NULL;
    room_t *r = calloc(1, sizeof(*r));
    if (!r || !(r->name = malloc(len))) {
        free(r);
        return NULL;
    }
    memcpy(r->name, name, len);
    r->name_len = len;
    r->next = rooms;
    rooms = r;
    return r;
}

static void subscribe(conn_t *c, const char *name, size_t len) {
    room_t *r = room_get(name, len, 1);
    if (!r) {
        conn_close(c);
        return;
    }
    for (size_t i = 0; i < c->nrooms; i++)
        if (c->rooms[i].room == r)
            goto ack;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        conn_t **nm = realloc(r->members, cap * sizeof(*nm));
        if (!nm) {
            conn_close(c);
            return;
        }
        r->members = nm;
        r->cap = cap;
    }
    if (c->nrooms == c->rooms_cap) {
        size_t cap = c->rooms_cap ? c->rooms_cap * 2 : 2;
        member_t *nm = realloc(c->rooms, cap * sizeof(*nm));
        if (!nm) {
            conn_close(c);
            return;
        }
        c->rooms = nm;
        c->rooms_cap = cap;
    }
    c->rooms[c->nrooms++] = (member_t){r, r->n};
    r->members[r->n++] = c;
ack:
    send_text(c, "{\"type\":\"subscribed\",\"room\":\"", 29, name, len, "\"}", 2);
}

static void publish(conn_t *c, const char *msg, size_t len, const char *name, size_t nlen) {
    /* D is everything between "data": and the closing brace. */
    const char *d = memmem(msg, len, "\"data\"", 6);
    const char *end = msg + len;
    while (end > msg && end[-1] != '}')
        end--;
    if (!d || end <= d) {
        send_text(c, "{\"type\":\"error\",\"error\":\"publish needs data\"}", 44, "", 0, "", 0);
        return;
    }
    d += 6;
    while (d < end && (*d == ' ' || *d == ':' || *d == '\t'))
        d++;
    room_t *r = room_get(name, nlen, 0);
    if (!r || r->n == 0)
        return;
    /* Build and frame once; queue the same bytes on every member. */
    char head[300];
    if (nlen > 256)
        return;
    int hl = snprintf(head, sizeof(head),
                      "{\"type\":\"message\",\"room\":\"%.*s\",\"data\":", (int)nlen, name);
    frame_t *f = frame_new(WSLAY_TEXT_FRAME, head, (size_t)hl, d, (size_t)(end - d), "", 0);
    if (!f)
        return;
    for (size_t i = 0; i < r->n; i++)
        queue(r->members[i], f);
    unref(f);
}

static void on_message(conn_t *c, const char *m, size_t len) {
    size_t tlen, rlen;
    const char *type = str_field(m, len, "\"type\"", &tlen);
    if (type && tlen == 4 && memcmp(type, "echo", 4) == 0) {
        send_text(c, m, len, "", 0, "", 0);
        return;
    }
    const char *room = str_field(m, len, "\"room\"", &rlen);
    if (type && room && rlen > 0 && tlen == 9 && memcmp(type, "subscribe", 9) == 0)
        subscribe(c, room, rlen);
    else if (type && room && rlen > 0 && tlen == 7 && memcmp(type, "publish", 7) == 0)
        publish(c, m, len, room, rlen);
    else
        send_text(c, "{\"type\":\"error\",\"error\":\"unknown type\"}", 38, "", 0, "", 0);
}

/* ---- WebSocket input ------------------------------------------------------ */

static void close_with(conn_t *c, int code) {
    char p[2] = {(char)(code >> 8), (char)(code & 0xff)};
    frame_t *f = frame_new(WSLAY_CONNECTION_CLOSE, p, 2, "", 0, "", 0);
    if (f) {
        uv_buf_t b = uv_buf_init(f->data, (unsigned)f->len);
        if (c->tcp.write_queue_size == 0 && !c->npend)
            uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        unref(f);
    }
    conn_close(c);
}

/* Parses complete frames in p[0..n); returns the bytes consumed. */
static size_t ws_input(conn_t *c, char *p, size_t n) {
    size_t off = 0;
    while (c->state == C_WS && n - off >= 2) {
        uint8_t *h = (uint8_t *)p + off;
        int fin = h[0] >> 7, op = h[0] & 0xf;
        if (!(h[1] & 0x80) || (h[0] & 0x70)) {
            close_with(c, 1002); /* unmasked client frame, or RSV bits */
            break;
        }
        uint64_t len = h[1] & 0x7f;
        size_t hl = 2;
        if (len == 126) {
            if (n - off < 4)
                break;
            len = ((uint64_t)h[2] << 8) | h[3];
            hl = 4;
        } else if (len == 127) {
            if (n - off < 10)
                break;
            len = 0;
            for (int i = 2; i < 10; i++)
                len = (len << 8) | h[i];
            hl = 10;
        }
        if (len > MAX_FRAME) {
            close_with(c, 1009);
            break;
        }
        if (n - off < hl + 4 + len)
            break;
        uint8_t *key = h + hl;
        char *pl = (char *)key + 4;
        if (key[0] | key[1] | key[2] | key[3])
            for (uint64_t i = 0; i < len; i++)
                pl[i] ^= (char)key[i & 3];
        off += hl + 4 + len;
        if (op == WSLAY_TEXT_FRAME || op == WSLAY_BINARY_FRAME) {
            if (!fin) {
                close_with(c, 1003);
                break;
            }
            on_message(c, pl, (size_t)len);
        } else if (op == WSLAY_PING) {
            frame_t *f = frame_new(WSLAY_PONG, pl, (size_t)len, "", 0, "", 0);
            if (f) {
                queue(c, f);
                unref(f);
            }
        } else if (op == WSLAY_CONNECTION_CLOSE) {
            close_with(c, 1000);
            break;
        } else if (op != WSLAY_PONG) {
            close_with(c, op == 0 ? 1003 : 1002);
            break;
        }
    }
    return off;
}

static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* Handles a complete request of hlen bytes; returns 0 on upgrade. */
static int handshake(conn_t *c, const char *req, size_t hlen) {
    const char *key = NULL;
    size_t klen = 0;
    const char *end = req + hlen;
    for (const char *l = req; l && l < end; l = memchr(l, '\n', (size_t)(end - l))) {
        if (*l == '\n')
            l++;
        if ((size_t)(req + hlen - l) > 18 && strncasecmp(l, "Sec-WebSocket-Key:", 18) == 0) {
            key = l + 18;
            while (*key == ' ' || *key == '\t')
                key++;
            const char *e = key;
            while (*e != '\r' && *e != '\n')
                e++;
            klen = (size_t)(e - key);
        }
    }
    if (strncmp(req, "GET ", 4) != 0 || !key || klen == 0 || klen > 64) {
        static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                                  "Connection: close\r\n\r\n";
        uv_buf_t b = uv_buf_init((char *)bad, sizeof(bad) - 1);
        uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        conn_close(c);
        return -1;
    }
    char cat[128];
    memcpy(cat, key, klen);
    memcpy(cat + klen, guid, sizeof(guid) - 1);
    unsigned char md[SHA_DIGEST_LENGTH];
    SHA1((unsigned char *)cat, klen + sizeof(guid) - 1, md);
    char accept[64];
    EVP_EncodeBlock((unsigned char *)accept, md, SHA_DIGEST_LENGTH);
    char resp[256];
    int n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     accept);
    frame_t *f = raw_new(resp, (size_t)n);
    if (!f) {
        conn_close(c);
        return -1;
    }
    queue(c, f);
    unref(f);
    c->state = C_WS;
    return 0;
}

/* Consumes what it can of p[0..n); returns the bytes consumed. */
static size_t input(conn_t *c, char *p, size_t n) {
    size_t off = 0;
    if (c->state == C_HTTP) {
        const char *e = memmem(p, n, "\r\n\r\n", 4);
        if (!e) {
            if (n > HS_MAX)
                conn_close(c);
            return 0;
        }
        off = (size_t)(e - p) + 4;
        if (handshake(c, p, off) < 0)
            return n;
    }
    return off + ws_input(c, p + off, n - off);
}

static int keep(conn_t *c, const char *p, size_t n) {
    if (n > c->in_cap) {
        size_t cap = c->in_cap ? c->in_cap : 1024;
        while (cap < n)
            cap *= 2;
        char *nb = realloc(c->in, cap);
        if (!nb)
            return -1;
        c->in = nb;
        c->in_cap = cap;
    }
    if (n)
        memmove(c->in, p, n);
    c->in_len = n;
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)h, (void)suggested;
    buf->base = rbuf;
    buf->len = sizeof(rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    conn_t *c = s->data;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (nread == 0 || c->state == C_CLOSING)
        return;
    char *p = buf->base;
    size_t n = (size_t)nread;
    if (c->in_len) { /* a frame spans reads: continue it in c->in */
        if (c->in_len + n > c->in_cap) {
            size_t cap = c->in_cap;
            while (cap < c->in_len + n)
                cap *= 2;
            char *nb = realloc(c->in, cap);
            if (!nb) {
                conn_close(c);
                return;
            }
            c->in = nb;
            c->in_cap = cap;
        }
        memcpy(c->in + c->in_len, p, n);
        p = c->in;
        n += c->in_len;
    }
    size_t used = input(c, p, n);
    if (c->state == C_CLOSING)
        return;
    if (keep(c, p + used, n - used) < 0)
        conn_close(c);
}

static void on_connection(uv_stream_t *server, int status) {
    if (status < 0)
        return;
    conn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        c->state = C_CLOSING;
        uv_close((uv_handle_t *)&c->tcp, on_close);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_signal(uv_signal_t *h, int signum) {
    (void)h, (void)signum;
    if (dropped)
        fprintf(stderr, "limit peer: %llu broadcast frames dropped (slow consumers)\n", dropped);
    exit(0);
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    long port = -1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            char *e;
            port = strtol(argv[++i], &e, 10);
            if (*e || port < 0 || port > 65535)
                port = -2;
        } else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            host = argv[++i];
        } else {
            if (strcmp(argv[i], "--help") != 0)
                fprintf(stderr, "moonwire-limit-peer: unexpected argument \"%s\"\n", argv[i]);
            fprintf(stderr, "usage: moonwire-limit-peer --port P [--host H]\n");
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    if (port < 0) {
        fprintf(stderr, "usage: moonwire-limit-peer --port P [--host H]  (P in 0..65535)\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
#ifdef __GLIBC__
    /* A 16 KiB echo reply is malloc'd and freed on its own: by default glibc
     * gives the top of the heap back (brk) after each free and the kernel
     * faults the pages in again for the next reply, ~90 us of kernel time
     * per round trip. Keep freed memory instead. */
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
#endif
    loop = uv_default_loop();
    struct wslay_frame_callbacks cbs = {sink_send, sink_recv, no_mask};
    if (wslay_frame_context_init(&wctx, &cbs, NULL) != 0)
        return 1;
    struct sockaddr_in addr;
    if (uv_ip4_addr(host, (int)port, &addr) != 0) {
        fprintf(stderr, "moonwire-limit-peer: --host must be an IPv4 address\n");
        return 2;
    }
    uv_tcp_init(loop, &listener);
    int r = uv_tcp_bind(&listener, (const struct sockaddr *)&addr, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&listener, 4096, on_connection);
    if (r != 0) {
        fprintf(stderr, "moonwire-limit-peer: listen on %s:%ld: %s\n", host, port, uv_strerror(r));
        return 1;
    }
    struct sockaddr_in bound;
    int blen = sizeof(bound);
    uv_tcp_getsockname(&listener, (struct sockaddr *)&bound, &blen);
    uv_check_init(loop, &flusher);
    uv_check_start(&flusher, on_check);
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_init(loop, &sigint);
    uv_signal_start(&sigint, on_signal, SIGINT);
    fprintf(stderr, "listening on ws://%s:%d/\n", host, ntohs(bound.sin_port));
    return uv_run(loop, UV_RUN_DEFAULT);
}
