/*
 * client.c - the WebSocket client connection of moonwire-bench (see
 * client.h): connect, opening handshake, a minimal frame reader for server
 * frames, and batched writes.
 *
 * The reader is deliberately small and fast: server frames are unmasked,
 * so a frame that lies whole in the read buffer is handed to the workload
 * in place, without a copy. Only a frame split across reads, or a fragmented
 * message, is copied into the connection's reassembly buffer. Control frames
 * may arrive between fragments; ping is answered with pong, close fails the
 * connection (the server is not supposed to close during a run). We do not
 * validate UTF-8: that costs time and the servers under test do it.
 *
 * The handshake always sends the RFC 6455 sample key, whose accept value is
 * known (section 1.3), so checking Sec-WebSocket-Accept needs no SHA-1 here.
 * Every byte we send is masked with the all-zero key (see tpl.c).
 *
 * A client may instead be a plain HTTP/1.1 keep-alive client
 * (mw_bench_client_http: the emit workload's POSTs to the server API): no
 * handshake, whole requests written as they come (pipelined), and a
 * response reader that needs a Content-Length on every response.
 */
#include "client.h"
#include "tpl.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RBUF_SIZE (256 * 1024)
#define HS_MAX 8192

static const char sample_key[] = "dGhlIHNhbXBsZSBub25jZQ==";
static const char sample_accept[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

enum { ST_NEW, ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_CLOSING };

typedef struct {
    char *buf;
    size_t len, cap;
} outbuf_t;

struct mw_bench_client {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    mw_bench_net_t *net;
    void *data;
    uint32_t id;
    uint8_t state;
    uint8_t paced; /* counted in net->connecting */
    uint8_t dirty;
    uint8_t writing;  /* a uv_write is in flight */
    uint8_t wconst;   /* ...and it writes the shared handshake request */
    uint8_t active;   /* index of the outbuf new frames go to */
    uint8_t in_frame; /* a frame header was read, payload still due */
    uint8_t hdr_len;
    uint8_t op, fin;
    uint8_t msg_op;     /* opcode of the message being reassembled */
    uint8_t fragmented; /* a non-final data frame was seen */
    uint8_t ctrl_len;
    uint8_t http; /* a plain HTTP client (mw_bench_client_http) */
    uint8_t alt;  /* a WebSocket client of `peer` (mw_bench_client_server) */
    uint8_t hdr[14];
    uint8_t ctrl[125];
    uint64_t remaining; /* payload bytes of the current frame still due */
    struct sockaddr_in src;
    int bind_src;
    struct sockaddr_in peer; /* HTTP and alt clients: the server they connect to */
    unsigned outstanding;    /* HTTP clients: requests not yet answered */
    int status;              /* HTTP clients: the status of the response being read */
    char *msg;               /* reassembly buffer, kept for reuse */
    size_t msg_len, msg_cap;
    char *hs; /* partial handshake response, rare */
    size_t hs_len;
    outbuf_t out[2]; /* double buffer: one may be in a uv_write */
    mw_bench_client_t *next_dirty;
};

static void client_fail(mw_bench_client_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void client_flush(mw_bench_client_t *c);
static void pace_next(mw_bench_net_t *net);
static void pace_done(mw_bench_client_t *c);
static int append_msg(mw_bench_client_t *c, const uint8_t *p, size_t n);

uint32_t mw_bench_client_id(const mw_bench_client_t *c) {
    return c->id;
}

void *mw_bench_client_data(const mw_bench_client_t *c) {
    return c->data;
}

int mw_bench_client_sockname(const mw_bench_client_t *c, struct sockaddr_in *sa) {
    int len = sizeof(*sa);
    if (!mw_bench_client_is_open(c) ||
        uv_tcp_getsockname(&c->tcp, (struct sockaddr *)sa, &len) != 0 || sa->sin_family != AF_INET)
        return -1;
    return 0;
}

void mw_bench_client_http(mw_bench_client_t *c, const struct sockaddr_in *server) {
    c->http = 1;
    c->peer = *server;
}

void mw_bench_client_server(mw_bench_client_t *c, const struct sockaddr_in *server) {
    c->alt = 1;
    c->peer = *server;
}

void mw_bench_client_requested(mw_bench_client_t *c, unsigned n) {
    c->outstanding += n;
}

unsigned mw_bench_client_outstanding(const mw_bench_client_t *c) {
    return c->outstanding;
}

int mw_bench_client_is_open(const mw_bench_client_t *c) {
    return c->state == ST_OPEN;
}

size_t mw_bench_client_pending(const mw_bench_client_t *c) {
    size_t n = c->out[0].len + c->out[1].len;
    return n;
}

/* ---- net ------------------------------------------------------------------ */

static void on_prepare(uv_prepare_t *h) {
    mw_bench_net_flush(h->data);
}

int mw_bench_parse_url(const char *url, const char *scheme, struct sockaddr_in *sa, char *hostport,
                       size_t hplen, const char **path, char *err, size_t errlen) {
    size_t sl = strlen(scheme);
    if (strncmp(url, scheme, sl) != 0 || strncmp(url + sl, "://", 3) != 0) {
        snprintf(err, errlen, "\"%s\" must start with %s:// (no TLS)", url, scheme);
        return -1;
    }
    const char *h = url + sl + 3;
    const char *p = strchr(h, '/');
    if (!p)
        p = h + strlen(h);
    const char *colon = memchr(h, ':', (size_t)(p - h));
    const char *hend = colon ? colon : p;
    char host[64];
    if (hend == h || (size_t)(hend - h) >= sizeof(host)) {
        snprintf(err, errlen, "\"%s\": bad host", url);
        return -1;
    }
    memcpy(host, h, (size_t)(hend - h));
    host[hend - h] = 0;
    long port = 80;
    if (colon) {
        char *e;
        port = strtol(colon + 1, &e, 10);
        if (e != p || port < 1 || port > 65535) {
            snprintf(err, errlen, "\"%s\": bad port", url);
            return -1;
        }
    }
    const char *ip = strcmp(host, "localhost") == 0 ? "127.0.0.1" : host;
    if (uv_ip4_addr(ip, (int)port, sa) != 0) {
        snprintf(err, errlen, "\"%s\": the host must be an IPv4 address or localhost", url);
        return -1;
    }
    snprintf(hostport, hplen, "%s:%ld", host, port);
    *path = *p ? p : "/";
    return 0;
}

int mw_bench_net_init(mw_bench_net_t *net, uv_loop_t *loop, const char *url, char *err,
                      size_t errlen) {
    memset(net, 0, sizeof(*net));
    net->loop = loop;
    net->max_message = 64u << 20;
    char hostport[80], perr[200];
    const char *path;
    if (mw_bench_parse_url(url, "ws", &net->server, hostport, sizeof(hostport), &path, perr,
                           sizeof(perr)) != 0) {
        snprintf(err, errlen, "--url %s", perr);
        return -1;
    }
    size_t cap = strlen(path) + strlen(hostport) + 256;
    net->request = malloc(cap);
    net->rbuf = malloc(RBUF_SIZE);
    if (!net->request || !net->rbuf) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    net->rbuf_len = RBUF_SIZE;
    int n = snprintf(net->request, cap,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     path, hostport, sample_key);
    net->request_len = (size_t)n;
    net->t_base = uv_hrtime();
    uv_prepare_init(loop, &net->flush);
    net->flush.data = net;
    uv_prepare_start(&net->flush, on_prepare);
    return 0;
}

void mw_bench_net_close(mw_bench_net_t *net) {
    if (!uv_is_closing((uv_handle_t *)&net->flush))
        uv_close((uv_handle_t *)&net->flush, NULL);
    free(net->request);
    free(net->rbuf);
    net->request = net->rbuf = NULL;
}

void mw_bench_net_flush(mw_bench_net_t *net) {
    mw_bench_client_t *c = net->dirty;
    net->dirty = NULL;
    while (c) {
        mw_bench_client_t *next = c->next_dirty;
        c->dirty = 0;
        c->next_dirty = NULL;
        client_flush(c);
        c = next;
    }
}

/* ---- connecting ----------------------------------------------------------- */

static void on_close(uv_handle_t *h) {
    mw_bench_client_t *c = h->data;
    c->net->live--;
    free(c->out[0].buf);
    free(c->out[1].buf);
    free(c->msg);
    free(c->hs);
    free(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    mw_bench_client_t *c = h->data;
    buf->base = c->net->rbuf;
    buf->len = c->net->rbuf_len;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void on_write(uv_write_t *req, int status) {
    mw_bench_client_t *c = req->data;
    if (status == UV_ECANCELED || c->state == ST_CLOSING)
        return;
    if (status < 0) {
        client_fail(c, "write: %s", uv_strerror(status));
        return;
    }
    c->writing = 0;
    if (c->wconst)
        c->wconst = 0;
    else
        c->out[c->active ^ 1].len = 0;
    if (c->out[c->active].len)
        client_flush(c);
}

/* send_bytes writes len bytes: as much as the kernel takes now, the rest
 * with uv_write from the same memory (which must stay untouched until
 * on_write). Returns 0 when everything went out at once, 1 when a uv_write
 * is in flight, -1 on failure (already reported). */
static int send_bytes(mw_bench_client_t *c, char *base, size_t len) {
    uv_buf_t b = uv_buf_init(base, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n >= 0 && (size_t)n == len)
        return 0;
    if (n < 0 && n != UV_EAGAIN) {
        client_fail(c, "write: %s", uv_strerror(n));
        return -1;
    }
    if (n < 0)
        n = 0;
    b = uv_buf_init(base + n, (unsigned)(len - (size_t)n));
    int r = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (r < 0) {
        client_fail(c, "write: %s", uv_strerror(r));
        return -1;
    }
    c->writing = 1;
    return 1;
}

static void write_request(mw_bench_client_t *c) {
    mw_bench_net_t *net = c->net;
    if (send_bytes(c, net->request, net->request_len) == 1)
        c->wconst = 1;
}

static void on_connect(uv_connect_t *req, int status) {
    mw_bench_client_t *c = req->data;
    if (status == UV_ECANCELED || c->state == ST_CLOSING)
        return;
    if (status < 0) {
        client_fail(c, "connect: %s", uv_strerror(status));
        return;
    }
    c->state = c->http ? ST_OPEN : ST_HANDSHAKE;
    int r = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (r < 0) {
        client_fail(c, "read: %s", uv_strerror(r));
        return;
    }
    if (c->http) {
        pace_done(c);
        c->net->cbs.on_open(c);
        return;
    }
    write_request(c);
}

static int client_connect(mw_bench_client_t *c) {
    mw_bench_net_t *net = c->net;
    int r = uv_tcp_init_ex(net->loop, &c->tcp, AF_INET);
    if (r < 0)
        return r;
    c->tcp.data = c;
    net->live++;
    c->state = ST_CONNECTING;
    uv_tcp_nodelay(&c->tcp, 1);
    if (c->bind_src) {
#ifdef IP_BIND_ADDRESS_NO_PORT
        /* Let connect() pick the port per 4-tuple instead of bind(). */
        uv_os_fd_t fd;
        int one = 1;
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
            setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#endif
        r = uv_tcp_bind(&c->tcp, (const struct sockaddr *)&c->src, 0);
        if (r < 0)
            return r;
    }
    c->creq.data = c;
    const struct sockaddr_in *to = c->http || c->alt ? &c->peer : &net->server;
    return uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)to, on_connect);
}

static void pace_next(mw_bench_net_t *net) {
    while (net->connecting < net->concurrency && net->queue_next < net->queue_len) {
        mw_bench_client_t *c = net->queue[net->queue_next++];
        if (c->state != ST_NEW)
            continue;
        c->paced = 1;
        net->connecting++;
        int r = client_connect(c);
        if (r < 0) {
            if (c->state == ST_NEW) { /* uv_tcp_init_ex failed: no handle */
                net->connecting--;
                c->paced = 0;
                c->state = ST_CLOSING;
                net->cbs.on_error(c, uv_strerror(r));
                free(c);
                continue;
            }
            client_fail(c, "connect: %s", uv_strerror(r));
        }
    }
}

static void pace_done(mw_bench_client_t *c) {
    if (c->paced) {
        c->paced = 0;
        c->net->connecting--;
        pace_next(c->net);
    }
}

void mw_bench_net_connect_all(mw_bench_net_t *net, mw_bench_client_t **clients, size_t n,
                              size_t concurrency) {
    net->queue = clients;
    net->queue_len = n;
    net->queue_next = 0;
    net->concurrency = concurrency ? concurrency : 1;
    pace_next(net);
}

mw_bench_client_t *mw_bench_client_new(mw_bench_net_t *net, uint32_t id, void *data,
                                       const struct sockaddr_in *src) {
    mw_bench_client_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->net = net;
    c->id = id;
    c->data = data;
    c->wreq.data = c;
    if (src) {
        c->src = *src;
        c->bind_src = 1;
    }
    return c;
}

/* ---- failing and closing -------------------------------------------------- */

static void client_fail(mw_bench_client_t *c, const char *fmt, ...) {
    if (c->state == ST_CLOSING)
        return;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    c->state = ST_CLOSING;
    c->net->cbs.on_error(c, msg);
    uv_close((uv_handle_t *)&c->tcp, on_close);
    pace_done(c);
}

void mw_bench_client_close(mw_bench_client_t *c) {
    if (c->state == ST_NEW) {
        free(c); /* never had a handle */
        return;
    }
    if (c->state == ST_CLOSING)
        return;
    if (c->state == ST_OPEN && !c->writing && !c->http) {
        char f[8];
        size_t n = mw_bench_ctrl_frame(f, 0x8, "\x03\xe8", 2);
        uv_buf_t b = uv_buf_init(f, (unsigned)n);
        uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    }
    c->state = ST_CLOSING;
    uv_close((uv_handle_t *)&c->tcp, on_close);
    pace_done(c);
}

/* ---- writing -------------------------------------------------------------- */

char *mw_bench_client_reserve(mw_bench_client_t *c, size_t n) {
    if (c->state != ST_OPEN)
        return NULL;
    outbuf_t *o = &c->out[c->active];
    if (o->len + n > o->cap) {
        size_t cap = o->cap ? o->cap : 4096;
        while (cap < o->len + n)
            cap *= 2;
        char *nb = realloc(o->buf, cap);
        if (!nb) {
            client_fail(c, "out of memory");
            return NULL;
        }
        o->buf = nb;
        o->cap = cap;
    }
    char *p = o->buf + o->len;
    o->len += n;
    if (!c->dirty) {
        c->dirty = 1;
        c->next_dirty = c->net->dirty;
        c->net->dirty = c;
    }
    return p;
}

static void client_flush(mw_bench_client_t *c) {
    if (c->writing || c->state != ST_OPEN)
        return;
    outbuf_t *o = &c->out[c->active];
    if (o->len == 0)
        return;
    int r = send_bytes(c, o->buf, o->len);
    if (r == 0) {
        o->len = 0;
    } else if (r == 1) {
        /* The kernel took part of it: the rest goes out with uv_write from
         * this buffer, and new frames go to the other one meanwhile. */
        c->active ^= 1;
    }
}

/* ---- reading -------------------------------------------------------------- */

/* Returns the number of bytes past the response headers, -1 when more bytes
 * are needed, -2 on failure (already reported). */
static long handshake(mw_bench_client_t *c, const char *p, size_t n) {
    const char *buf = p;
    size_t len = n;
    if (c->hs || !memmem(p, n, "\r\n\r\n", 4)) {
        if (c->hs_len + n > HS_MAX) {
            client_fail(c, "handshake: response headers too large");
            return -2;
        }
        if (!c->hs && !(c->hs = malloc(HS_MAX))) {
            client_fail(c, "out of memory");
            return -2;
        }
        memcpy(c->hs + c->hs_len, p, n);
        c->hs_len += n;
        buf = c->hs;
        len = c->hs_len;
    }
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end)
        return -1;
    size_t hlen = (size_t)(end - buf) + 4;
    if (len < 12 || memcmp(buf, "HTTP/1.1 101", 12) != 0) {
        const char *eol = memchr(buf, '\r', hlen);
        client_fail(c, "handshake: expected 101, got \"%.*s\"", (int)(eol - buf), buf);
        return -2;
    }
    int ok = 0;
    const char *l = memchr(buf, '\n', hlen);
    for (; l && l < end; l = memchr(l, '\n', (size_t)(end - l))) {
        l++;
        static const char name[] = "sec-websocket-accept:";
        if ((size_t)(end - l) > sizeof(name) && strncasecmp(l, name, sizeof(name) - 1) == 0) {
            const char *v = l + sizeof(name) - 1;
            while (*v == ' ' || *v == '\t')
                v++;
            ok = strncmp(v, sample_accept, sizeof(sample_accept) - 1) == 0;
        }
    }
    if (!ok) {
        client_fail(c, "handshake: missing or wrong Sec-WebSocket-Accept");
        return -2;
    }
    long rest = (long)(len - hlen);
    if (c->hs) {
        /* The rest is at the end of the read buffer too: the accumulator
         * holds exactly what was read, and the last chunk was p[0..n). */
        free(c->hs);
        c->hs = NULL;
        c->hs_len = 0;
    }
    c->state = ST_OPEN;
    pace_done(c);
    c->net->cbs.on_open(c);
    return rest;
}

static void deliver(mw_bench_client_t *c, const char *data, size_t len, int op) {
    c->net->cbs.on_message(c, data, len, op);
}

static void control(mw_bench_client_t *c) {
    if (c->op == 0x9) {
        char *f = mw_bench_client_reserve(c, 6 + c->ctrl_len);
        if (f)
            mw_bench_ctrl_frame(f, 0xA, (const char *)c->ctrl, c->ctrl_len);
    } else if (c->op == 0x8) {
        int code = c->ctrl_len >= 2 ? (c->ctrl[0] << 8) | c->ctrl[1] : 1005;
        client_fail(c, "the server closed the connection (code %d%s%.*s)", code,
                    c->ctrl_len > 2 ? ": " : "", c->ctrl_len > 2 ? c->ctrl_len - 2 : 0,
                    (const char *)c->ctrl + 2);
    }
}

static int append_msg(mw_bench_client_t *c, const uint8_t *p, size_t n) {
    if (c->msg_len + n > c->msg_cap) {
        size_t cap = c->msg_cap ? c->msg_cap : 4096;
        while (cap < c->msg_len + n)
            cap *= 2;
        char *nb = realloc(c->msg, cap);
        if (!nb) {
            client_fail(c, "out of memory");
            return -1;
        }
        c->msg = nb;
        c->msg_cap = cap;
    }
    memcpy(c->msg + c->msg_len, p, n);
    c->msg_len += n;
    return 0;
}

static size_t hdr_size(const uint8_t *h) {
    unsigned l7 = h[1] & 0x7f;
    return 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + ((h[1] & 0x80) ? 4 : 0);
}

/* Reads a complete header; returns 0 or -1 (connection failed). */
static int begin_frame(mw_bench_client_t *c, const uint8_t *h) {
    c->fin = h[0] >> 7;
    c->op = h[0] & 0xf;
    if (h[0] & 0x70)
        return client_fail(c, "protocol: RSV bits set, no extension negotiated"), -1;
    if (h[1] & 0x80)
        return client_fail(c, "protocol: the server masked a frame"), -1;
    uint64_t len = h[1] & 0x7f;
    if (len == 126) {
        len = ((uint64_t)h[2] << 8) | h[3];
    } else if (len == 127) {
        len = 0;
        for (int i = 2; i < 10; i++)
            len = (len << 8) | h[i];
    }
    if (c->op & 0x8) {
        if (c->op > 0xA)
            return client_fail(c, "protocol: reserved opcode %d", c->op), -1;
        if (!c->fin || len > 125)
            return client_fail(c, "protocol: bad control frame"), -1;
        c->ctrl_len = 0;
    } else if (c->op == 0) {
        if (!c->fragmented)
            return client_fail(c, "protocol: continuation frame without a message"), -1;
    } else if (c->op <= 2) {
        if (c->fragmented)
            return client_fail(c, "protocol: new message inside a fragmented one"), -1;
        c->msg_op = c->op;
        c->msg_len = 0;
        c->fragmented = !c->fin;
    } else {
        return client_fail(c, "protocol: reserved opcode %d", c->op), -1;
    }
    if (!(c->op & 0x8) && c->msg_len + len > c->net->max_message)
        return client_fail(c, "protocol: message larger than %zu bytes", c->net->max_message), -1;
    c->remaining = len;
    c->in_frame = 1;
    return 0;
}

static void end_frame(mw_bench_client_t *c) {
    c->in_frame = 0;
    if (c->op & 0x8) {
        control(c);
    } else if (c->fin) {
        c->fragmented = 0;
        deliver(c, c->msg, c->msg_len, c->msg_op);
        c->msg_len = 0;
    }
}

static void frames(mw_bench_client_t *c, const uint8_t *p, const uint8_t *end) {
    while (c->state == ST_OPEN && p < end) {
        if (!c->in_frame) {
            const uint8_t *h;
            if (c->hdr_len == 0 && end - p >= 2 && (size_t)(end - p) >= hdr_size(p)) {
                h = p;
                p += hdr_size(p);
            } else {
                while (c->hdr_len < 2 && p < end)
                    c->hdr[c->hdr_len++] = *p++;
                if (c->hdr_len < 2)
                    return;
                size_t hs = hdr_size(c->hdr);
                while (c->hdr_len < hs && p < end)
                    c->hdr[c->hdr_len++] = *p++;
                if (c->hdr_len < hs)
                    return;
                h = c->hdr;
                c->hdr_len = 0;
            }
            if (begin_frame(c, h) < 0)
                return;
            /* The fast path: a whole unfragmented message in the buffer. */
            if (c->fin && c->op != 0 && !(c->op & 0x8) && (uint64_t)(end - p) >= c->remaining) {
                c->in_frame = 0;
                deliver(c, (const char *)p, (size_t)c->remaining, c->op);
                p += c->remaining;
                continue;
            }
        }
        size_t n = (size_t)(end - p);
        if (n > c->remaining)
            n = (size_t)c->remaining;
        if (c->op & 0x8) {
            memcpy(c->ctrl + c->ctrl_len, p, n);
            c->ctrl_len += (uint8_t)n;
        } else if (n && append_msg(c, p, n) < 0) {
            return;
        }
        p += n;
        c->remaining -= n;
        if (c->remaining == 0)
            end_frame(c);
    }
}

/* ---- HTTP responses ------------------------------------------------------- */

/* Reads the status and Content-Length of a response head (h[0..len), up
 * to and including the blank line) and starts its body. Returns 0, or -1
 * (the connection failed). */
static int response_head(mw_bench_client_t *c, const char *h, size_t len) {
    if (len < 12 || memcmp(h, "HTTP/1.", 7) != 0 || h[8] != ' ') {
        const char *eol = memchr(h, '\r', len);
        client_fail(c, "http: not a response: \"%.*s\"", (int)(eol ? eol - h : 0), h);
        return -1;
    }
    c->status = atoi(h + 9);
    long long clen = -1;
    const char *end = h + len;
    for (const char *l = memchr(h, '\n', len); l && l < end;
         l = memchr(l, '\n', (size_t)(end - l))) {
        l++;
        static const char name[] = "content-length:";
        if ((size_t)(end - l) > sizeof(name) && strncasecmp(l, name, sizeof(name) - 1) == 0)
            clen = strtoll(l + sizeof(name) - 1, NULL, 10);
    }
    if (clen < 0 && c->status != 204 && c->status != 304) {
        client_fail(c, "http: a %d response without Content-Length", c->status);
        return -1;
    }
    if (clen > (long long)c->net->max_message) {
        client_fail(c, "http: a response body of %lld bytes", clen);
        return -1;
    }
    c->remaining = clen < 0 ? 0 : (uint64_t)clen;
    c->msg_len = 0;
    c->in_frame = 1;
    return 0;
}

static void response_done(mw_bench_client_t *c, const char *body, size_t len) {
    c->in_frame = 0;
    if (c->outstanding == 0) {
        client_fail(c, "http: a response to no request");
        return;
    }
    c->outstanding--;
    if (c->net->cbs.on_response)
        c->net->cbs.on_response(c, c->status, body, len);
    c->msg_len = 0;
}

/* The HTTP counterpart of frames(): heads, then bodies. A head or body
 * that lies whole in the read buffer is used in place; one split across
 * reads is gathered in c->hs (heads) or c->msg (bodies). */
static void responses(mw_bench_client_t *c, const char *p, const char *end) {
    while (c->state == ST_OPEN && p < end) {
        if (c->in_frame) {
            if (c->msg_len == 0 && (uint64_t)(end - p) >= c->remaining) {
                size_t n = (size_t)c->remaining;
                c->remaining = 0;
                response_done(c, p, n);
                p += n;
                continue;
            }
            size_t n = (size_t)(end - p);
            if (n > c->remaining)
                n = (size_t)c->remaining;
            if (append_msg(c, (const uint8_t *)p, n) < 0)
                return;
            p += n;
            c->remaining -= n;
            if (c->remaining == 0)
                response_done(c, c->msg, c->msg_len);
            continue;
        }
        const char *e = c->hs_len ? NULL : memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
        if (e) {
            if (response_head(c, p, (size_t)(e + 4 - p)) < 0)
                return;
            p = e + 4;
            continue;
        }
        /* A head split across reads: gather it. */
        if (!c->hs && !(c->hs = malloc(HS_MAX))) {
            client_fail(c, "out of memory");
            return;
        }
        size_t n = (size_t)(end - p);
        if (n > HS_MAX - c->hs_len)
            n = HS_MAX - c->hs_len;
        size_t before = c->hs_len;
        memcpy(c->hs + c->hs_len, p, n);
        c->hs_len += n;
        /* The blank line may straddle the old and the new bytes. */
        size_t from = before > 3 ? before - 3 : 0;
        e = memmem(c->hs + from, c->hs_len - from, "\r\n\r\n", 4);
        if (!e) {
            if (c->hs_len == HS_MAX) {
                client_fail(c, "http: response head too large");
                return;
            }
            p += n;
            continue;
        }
        size_t hl = (size_t)(e + 4 - c->hs);
        p += hl - before; /* what of p belonged to the head */
        c->hs_len = 0;
        if (response_head(c, c->hs, hl) < 0)
            return;
    }
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    mw_bench_client_t *c = s->data;
    if (c->state == ST_CLOSING)
        return;
    if (n < 0) {
        client_fail(c, "%s",
                    n == UV_EOF ? "the server closed the TCP connection" : uv_strerror((int)n));
        return;
    }
    if (n == 0)
        return;
    c->net->now_ns = uv_hrtime();
    const char *p = buf->base;
    if (c->http) {
        responses(c, p, buf->base + n);
        return;
    }
    if (c->state == ST_HANDSHAKE) {
        long rest = handshake(c, p, (size_t)n);
        if (rest < 0)
            return;
        p = buf->base + n - rest;
    }
    frames(c, (const uint8_t *)p, (const uint8_t *)buf->base + n);
}
