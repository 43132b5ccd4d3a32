/*
 * wsclient.c - an outgoing WebSocket connection on the loop (wsclient.h).
 *
 * The phases, in order: resolve (uv_getaddrinfo, in libuv's thread pool),
 * connect (each address in turn until one answers), TLS (wss://: a tls.c
 * client session between the socket and everything else, as conn.c has a
 * server one), upgrade (the request from handshake.c, the response head
 * read up to its blank line and checked by handshake.c), then frames: the
 * bytes read are handed to wslay_event_recv, and whatever wslay wants to
 * send (our messages, pongs, the close) lands in a plaintext output queue
 * that is written (through TLS when there is one) one uv_write at a time.
 * One timer bounds the opening (timeout_ms) and then the close handshake
 * (close_timeout_ms).
 *
 * Callbacks into the app may re-enter (the Lua side resumes a task from
 * them, which may send, close or free): a free only marks the connection
 * dead and closes its handles; the memory, wslay's context included, goes
 * in the last handle's close callback, after every frame of the current
 * call stack has returned. Nothing is called back once it is dead.
 */
#include "wsclient.h"
#include "errors.h"
#include "outq.h"
#include "tls.h"
#include "utf8.h"

#include <http_parser.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wslay/wslay.h>

#define READ_BUF 16384
#define HEAD_MAX 16384 /* the response head to the upgrade */
#define TLS_BUDGET (256 * 1024)

enum { ST_RESOLVE, ST_CONNECT, ST_TLS, ST_UPGRADE, ST_OPEN, ST_DONE };

struct mw_wsclient {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_getaddrinfo_t gai;
    uv_connect_t creq;
    uv_write_t wreq;
    int state;
    int dead;           /* freed by the app: no more callbacks */
    int pending;        /* handles not yet closed, and the resolve in flight */
    int tcp_open;       /* tcp initialised (and not closed) */
    int closing;        /* handles are closing: the socket is gone */
    int writing;        /* wreq in flight */
    int resolving;      /* gai in flight */
    int paused;         /* the app stopped reading */
    int in_recv;        /* inside wslay_event_recv: send after it */
    int user_closed;    /* mw_wsclient_close was called */
    int peer_closed;    /* the peer's close frame arrived */
    int tls_shut;       /* close_notify queued */
    unsigned fail_code; /* we failed the connection with this code */
    unsigned peer_code;
    char peer_reason[124];
    size_t peer_reason_len;
    struct addrinfo *ai, *ai_next;
    int last_err; /* of the last connect attempt */
    mw_wsurl_t url;
    char key[32];
    char *protocols;
    char protocol[64];
    char *request;
    size_t request_len;
    char *head; /* the response head so far */
    size_t head_len;
    mw_tls_ctx_t *tls_ctx;
    mw_tls_t *tls;
    char *rbuf;        /* what uv_read reads into */
    char *plain;       /* what TLS decrypts into */
    const uint8_t *in; /* the bytes wslay_event_recv reads now */
    size_t inlen;
    mw_outq_t out; /* plaintext to write (through TLS when there is one) */
    mw_outq_t *wq; /* the queue wreq writes from */
    size_t write_len;
    wslay_event_context_ptr ws;
    size_t max_message, max_buffered;
    uint64_t timeout_ms, close_timeout_ms;
    mw_wsclient_cbs_t cb;
    void *data;
};

/* ---- the URL ---------------------------------------------------------------- */

int mw_wsclient_parse_url(const char *url, mw_wsurl_t *out, char *err, size_t errlen) {
    struct http_parser_url u;
    memset(out, 0, sizeof *out);
    http_parser_url_init(&u);
    size_t len = strlen(url);
    if (len == 0 || http_parser_parse_url(url, len, 0, &u) != 0 ||
        !(u.field_set & (1 << UF_SCHEMA)) || !(u.field_set & (1 << UF_HOST))) {
        snprintf(err, errlen, "not a ws:// or wss:// URL: %.200s", url);
        return MW_EINVAL;
    }
    const char *scheme = url + u.field_data[UF_SCHEMA].off;
    size_t slen = u.field_data[UF_SCHEMA].len;
    if (slen == 2 && strncasecmp(scheme, "ws", 2) == 0)
        out->tls = 0;
    else if (slen == 3 && strncasecmp(scheme, "wss", 3) == 0)
        out->tls = 1;
    else {
        snprintf(err, errlen, "the URL's scheme must be ws or wss, not %.*s", (int)slen, scheme);
        return MW_EINVAL;
    }
    if (u.field_set & (1 << UF_USERINFO)) {
        snprintf(err, errlen, "the URL must not carry a user or password (use a header)");
        return MW_EINVAL;
    }
    if (u.field_set & (1 << UF_FRAGMENT)) {
        snprintf(err, errlen, "a WebSocket URL has no fragment (#...)");
        return MW_EINVAL;
    }
    size_t hlen = u.field_data[UF_HOST].len;
    if (hlen == 0 || hlen >= sizeof out->host) {
        snprintf(err, errlen, "the URL's host is empty or too long");
        return MW_EINVAL;
    }
    memcpy(out->host, url + u.field_data[UF_HOST].off, hlen);
    out->host[hlen] = '\0';
    int dflt = out->tls ? 443 : 80;
    out->port = (u.field_set & (1 << UF_PORT)) ? u.port : dflt;
    if (out->port <= 0) {
        snprintf(err, errlen, "the URL's port must be from 1 to 65535");
        return MW_EINVAL;
    }
    int v6 = strchr(out->host, ':') != NULL;
    if (out->port == dflt)
        snprintf(out->host_header, sizeof out->host_header, v6 ? "[%s]" : "%s", out->host);
    else
        snprintf(out->host_header, sizeof out->host_header, v6 ? "[%s]:%d" : "%s:%d", out->host,
                 out->port);
    size_t plen = (u.field_set & (1 << UF_PATH)) ? u.field_data[UF_PATH].len : 0;
    size_t qlen = (u.field_set & (1 << UF_QUERY)) ? u.field_data[UF_QUERY].len : 0;
    if (plen + qlen + 3 > sizeof out->target) {
        snprintf(err, errlen, "the URL's path and query are longer than %zu bytes",
                 sizeof out->target - 3);
        return MW_EINVAL;
    }
    int n = 0;
    if (plen)
        n = snprintf(out->target, sizeof out->target, "%.*s", (int)plen,
                     url + u.field_data[UF_PATH].off);
    else
        n = snprintf(out->target, sizeof out->target, "/");
    if (qlen)
        snprintf(out->target + n, sizeof out->target - (size_t)n, "?%.*s", (int)qlen,
                 url + u.field_data[UF_QUERY].off);
    return 0;
}

/* ---- the end ---------------------------------------------------------------- */

static void release(mw_wsclient_t *c) {
    if (c->ai)
        uv_freeaddrinfo(c->ai);
    if (c->ws)
        wslay_event_context_free(c->ws);
    mw_tls_free(c->tls);
    mw_tls_ctx_free(c->tls_ctx);
    mw_outq_clear(&c->out);
    free(c->protocols);
    free(c->request);
    free(c->head);
    free(c->rbuf);
    free(c->plain);
    free(c);
}

static void on_handle_closed(uv_handle_t *h) {
    mw_wsclient_t *c = h->data;
    if (--c->pending == 0 && c->dead)
        release(c);
}

/* shut closes the socket and the timer (once); the memory goes when they
 * are closed and the app has freed the connection. */
static void shut(mw_wsclient_t *c) {
    if (c->closing)
        return;
    c->closing = 1;
    if (c->resolving)
        uv_cancel((uv_req_t *)&c->gai); /* on_resolved still runs, with ECANCELED */
    c->state = ST_DONE;
    if (c->tcp_open) {
        c->tcp_open = 0;
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    }
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

/* fail_open ends a connection that never opened: on_open(err, why). */
static void fail_open(mw_wsclient_t *c, int err, const char *why) {
    if (c->state == ST_DONE)
        return;
    shut(c);
    if (!c->dead)
        c->cb.on_open(c->data, err, why);
}

/* finish ends an open connection: on_close with the code wsclient.h
 * describes. */
static void finish(mw_wsclient_t *c) {
    if (c->state == ST_DONE)
        return;
    shut(c);
    unsigned code = c->fail_code ? c->fail_code : c->peer_closed ? c->peer_code : 1006;
    const char *reason = "";
    size_t rlen = 0;
    if (!c->fail_code && c->peer_closed) {
        reason = c->peer_reason;
        rlen = c->peer_reason_len;
    }
    if (!c->dead)
        c->cb.on_close(c->data, code, reason, rlen);
}

void mw_wsclient_free(mw_wsclient_t *c) {
    if (!c || c->dead)
        return;
    c->dead = 1;
    shut(c);
    if (c->pending == 0)
        release(c);
}

/* tls_failed ends the connection after TLS refused it: before the open,
 * with "TLS: " and OpenSSL's reason (the certificate's, for a client that
 * does not trust it). */
static void tls_failed(mw_wsclient_t *c) {
    char why[200];
    snprintf(why, sizeof why, "TLS: %s", mw_tls_reason(c->tls));
    if (c->state == ST_OPEN)
        finish(c);
    else
        fail_open(c, MW_ETLS, why);
}

/* ---- writing ---------------------------------------------------------------- */

static void flush(mw_wsclient_t *c);

static void on_written(uv_write_t *req, int status) {
    mw_wsclient_t *c = req->data;
    c->writing = 0;
    mw_outq_written(c->wq, c->write_len);
    if (c->closing)
        return;
    if (status < 0) {
        if (c->state == ST_OPEN)
            finish(c);
        else
            fail_open(c, MW_EIO, uv_strerror(status));
        return;
    }
    flush(c);
}

/* drained: nothing is left to write, nor being written. */
static int drained(mw_wsclient_t *c) {
    return !c->writing && c->out.bytes == 0 && (!c->tls || mw_tls_output(c->tls)->bytes == 0);
}

/* flush writes what is queued (one write at a time) and, once the close
 * handshake is over and everything is out, ends the connection. */
static void flush(mw_wsclient_t *c) {
    if (c->closing || c->writing)
        return;
    mw_outq_t *q = &c->out;
    if (c->tls) {
        if (mw_tls_ready(c->tls) && c->out.bytes > 0) {
            int rc = mw_tls_encrypt(c->tls, &c->out, TLS_BUDGET);
            if (rc != 0 && rc != MW_ECLOSED) {
                tls_failed(c);
                return;
            }
        }
        q = mw_tls_output(c->tls);
    }
    if (q->bytes == 0) {
        if (c->state == ST_OPEN && c->ws && wslay_event_get_close_sent(c->ws) && c->peer_closed &&
            drained(c)) {
            if (c->tls && !c->tls_shut) {
                c->tls_shut = 1;
                mw_tls_shutdown(c->tls);
                if (mw_tls_output(c->tls)->bytes > 0) {
                    flush(c);
                    return;
                }
            }
            finish(c);
        } else if (c->tls)
            mw_tls_trim(c->tls);
        return;
    }
    uv_buf_t iov[MW_OUTQ_MAX_IOV];
    int n = mw_outq_peek(q, iov, MW_OUTQ_MAX_IOV);
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += iov[i].len;
    c->wq = q;
    c->write_len = len;
    c->wreq.data = c;
    int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, iov, (unsigned)n, on_written);
    if (rc != 0) {
        mw_outq_written(q, 0);
        if (c->state == ST_OPEN)
            finish(c);
        else
            fail_open(c, MW_EIO, uv_strerror(rc));
        return;
    }
    c->writing = 1;
}

/* ---- wslay ------------------------------------------------------------------- */

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *user_data) {
    (void)flags;
    mw_wsclient_t *c = user_data;
    if (c->inlen == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < c->inlen ? len : c->inlen;
    memcpy(buf, c->in, n);
    c->in += n;
    c->inlen -= n;
    return (ssize_t)n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user_data) {
    (void)flags;
    mw_wsclient_t *c = user_data;
    if (mw_outq_append(&c->out, data, len) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

/* Every frame a client sends is masked with a fresh key (RFC 6455 5.3):
 * OpenSSL's generator, not rand(). */
static int genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user_data) {
    (void)ctx;
    (void)user_data;
    return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *user_data) {
    mw_wsclient_t *c = user_data;
    if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
        c->peer_closed = 1;
        c->peer_code = arg->status_code ? arg->status_code : 1005;
        size_t rlen = arg->msg_length > 2 ? arg->msg_length - 2 : 0;
        if (rlen > sizeof c->peer_reason - 1)
            rlen = sizeof c->peer_reason - 1;
        memcpy(c->peer_reason, arg->msg + 2, rlen);
        c->peer_reason[rlen] = '\0';
        c->peer_reason_len = rlen;
        return;
    }
    if (arg->opcode != WSLAY_TEXT_FRAME && arg->opcode != WSLAY_BINARY_FRAME)
        return; /* pings are answered by wslay; pongs need nothing */
    if (c->dead || c->fail_code || wslay_event_get_close_sent(ctx))
        return;
    if (arg->opcode == WSLAY_TEXT_FRAME && !mw_utf8_valid(arg->msg, arg->msg_length)) {
        c->fail_code = 1007;
        wslay_event_queue_close(ctx, 1007, (const uint8_t *)"invalid UTF-8", 13);
        return;
    }
    c->cb.on_message(c->data, arg->opcode == WSLAY_BINARY_FRAME, (const char *)arg->msg,
                     arg->msg_length);
}

/* The peer did not answer our close in time: the connection ends
 * without its code (1006, or the code we failed it with). */
static void on_close_timeout(uv_timer_t *t) {
    finish(t->data);
}

/* after_io sends what wslay queued and notes how the close stands. */
static void after_io(mw_wsclient_t *c) {
    if (c->closing || !c->ws)
        return;
    int had_close = wslay_event_get_close_sent(c->ws);
    if (wslay_event_want_write(c->ws) && wslay_event_send(c->ws) != 0) {
        finish(c);
        return;
    }
    if (!had_close && wslay_event_get_close_sent(c->ws)) {
        /* wslay failed the connection (a protocol error, a message over
         * max_message_size) unless this answers the app's or the peer's. */
        if (!c->user_closed && !c->peer_closed && !c->fail_code)
            c->fail_code = wslay_event_get_status_code_sent(c->ws);
        if (!c->peer_closed)
            uv_timer_start(&c->timer, on_close_timeout, c->close_timeout_ms, 0);
    }
    flush(c);
}

/* feed_frames hands bytes after the upgrade to wslay. */
static void feed_frames(mw_wsclient_t *c, const char *p, size_t len) {
    c->in = (const uint8_t *)p;
    c->inlen = len;
    c->in_recv = 1;
    int r = wslay_event_recv(c->ws);
    c->in_recv = 0;
    c->in = NULL;
    c->inlen = 0;
    if (c->closing)
        return;
    if (r != 0) {
        finish(c);
        return;
    }
    after_io(c);
}

/* ---- the upgrade -------------------------------------------------------------- */

static int start_frames(mw_wsclient_t *c) {
    static const struct wslay_event_callbacks cbs = {recv_cb, send_cb, genmask_cb, NULL,
                                                     NULL,    NULL,    on_msg};
    if (wslay_event_context_client_init(&c->ws, &cbs, c) != 0)
        return MW_ENOMEM;
    wslay_event_config_set_max_recv_msg_length(c->ws, c->max_message);
    return 0;
}

/* on_head takes the response bytes until the head is complete, checks
 * it, and hands what follows it to wslay. */
static void on_head(mw_wsclient_t *c, const char *p, size_t len) {
    size_t take = len < HEAD_MAX - c->head_len ? len : HEAD_MAX - c->head_len;
    memcpy(c->head + c->head_len, p, take);
    size_t from = c->head_len > 3 ? c->head_len - 3 : 0;
    c->head_len += take;
    char *end = NULL;
    for (size_t i = from; i + 4 <= c->head_len; i++)
        if (memcmp(c->head + i, "\r\n\r\n", 4) == 0) {
            end = c->head + i + 4;
            break;
        }
    if (!end) {
        if (c->head_len == HEAD_MAX)
            fail_open(c, MW_EHTTP, "the server's response head is over 16 KiB");
        return;
    }
    size_t head_len = (size_t)(end - c->head);
    mw_handshake_reply_t reply;
    if (mw_handshake_client_check(c->head, head_len, c->key, c->protocols, &reply) != 0) {
        char why[240];
        snprintf(why, sizeof why, "handshake refused: %s", reply.reason);
        fail_open(c, MW_EHTTP, why);
        return;
    }
    snprintf(c->protocol, sizeof c->protocol, "%s", reply.protocol);
    if (start_frames(c) != 0) {
        fail_open(c, MW_ENOMEM, mw_strerror(MW_ENOMEM));
        return;
    }
    /* Bytes after the head: frames the server sent at once, part of
     * this read (they were copied to head) and maybe more of it. */
    size_t rest_in_head = c->head_len - head_len;
    size_t rest_of_read = len - take;
    uv_timer_stop(&c->timer);
    c->state = ST_OPEN;
    c->cb.on_open(c->data, 0, "");
    if (c->closing)
        return;
    char *head = c->head;
    c->head = NULL;
    if (rest_in_head)
        feed_frames(c, head + head_len, rest_in_head);
    free(head);
    if (rest_of_read && !c->closing)
        feed_frames(c, p + take, rest_of_read);
    if (!c->closing)
        after_io(c);
}

/* on_plain gets what the server sent (decrypted under TLS). */
static int on_plain(void *data, const char *p, size_t len) {
    mw_wsclient_t *c = data;
    if (c->state == ST_UPGRADE)
        on_head(c, p, len);
    else if (c->state == ST_OPEN)
        feed_frames(c, p, len);
    return c->closing;
}

/* send_request writes the upgrade request (once TLS, if any, is up). */
static void send_request(mw_wsclient_t *c) {
    if (!c->request)
        return;
    int rc = mw_outq_append(&c->out, c->request, c->request_len);
    free(c->request);
    c->request = NULL;
    if (rc != 0) {
        fail_open(c, rc, mw_strerror(rc));
        return;
    }
    c->state = ST_UPGRADE;
    flush(c);
}

/* ---- reading ------------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    mw_wsclient_t *c = h->data;
    buf->base = c->rbuf;
    buf->len = READ_BUF;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    mw_wsclient_t *c = s->data;
    if (c->closing || n == 0)
        return;
    if (n < 0) {
        if (c->state == ST_OPEN)
            finish(c); /* the peer's close, if it sent one, is already noted */
        else {
            char why[160];
            snprintf(why, sizeof why, "the server closed the connection during the %s",
                     c->state == ST_UPGRADE ? "upgrade" : "TLS handshake");
            fail_open(c, MW_EIO, n == UV_EOF ? why : uv_strerror((int)n));
        }
        return;
    }
    if (!c->tls) {
        on_plain(c, buf->base, (size_t)n);
        return;
    }
    int rc = mw_tls_feed(c->tls, buf->base, (size_t)n, c->plain, MW_TLS_RECORD_MAX, on_plain, c);
    if (c->closing)
        return;
    if (rc == MW_ETLS) {
        tls_failed(c);
        return;
    }
    if (rc == MW_ECLOSED && c->state == ST_OPEN) {
        finish(c);
        return;
    }
    if (c->request && mw_tls_ready(c->tls))
        send_request(c);
    else
        flush(c);
}

/* ---- connecting --------------------------------------------------------------- */

static void try_next(mw_wsclient_t *c);
static void attempt_failed(mw_wsclient_t *c, int err);

static void on_connected(uv_connect_t *req, int status) {
    mw_wsclient_t *c = req->data;
    if (c->closing)
        return;
    if (status < 0) {
        attempt_failed(c, status);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc != 0) {
        fail_open(c, MW_EIO, uv_strerror(rc));
        return;
    }
    if (!c->tls) {
        send_request(c);
        return;
    }
    /* Feeding no bytes queues the ClientHello. */
    if (mw_tls_feed(c->tls, "", 0, c->plain, MW_TLS_RECORD_MAX, on_plain, c) != 0) {
        tls_failed(c);
        return;
    }
    c->state = ST_TLS; /* the request goes once TLS is up */
    flush(c);
}

/* A failed attempt's socket is closed before the next address is tried:
 * a libuv handle is initialised again only once closed. */
static void on_attempt_closed(uv_handle_t *h) {
    mw_wsclient_t *c = h->data;
    if (--c->pending == 0 && c->dead) {
        release(c);
        return;
    }
    if (!c->closing)
        try_next(c);
}

static void attempt_failed(mw_wsclient_t *c, int err) {
    c->last_err = err;
    c->tcp_open = 0;
    uv_close((uv_handle_t *)&c->tcp, on_attempt_closed);
}

/* try_next connects to the next resolved address; when none is left the
 * error of the last attempt is the answer. */
static void try_next(mw_wsclient_t *c) {
    struct addrinfo *a = c->ai_next;
    if (!a) {
        char why[300];
        snprintf(why, sizeof why, "connect to %s:%d: %s", c->url.host, c->url.port,
                 c->last_err ? uv_strerror(c->last_err) : "no address");
        fail_open(c, MW_EIO, why);
        return;
    }
    c->ai_next = a->ai_next;
    int rc = uv_tcp_init(c->loop, &c->tcp);
    if (rc != 0) {
        fail_open(c, MW_EIO, uv_strerror(rc));
        return;
    }
    c->tcp.data = c;
    c->tcp_open = 1;
    c->pending++;
    c->creq.data = c;
    rc = uv_tcp_connect(&c->creq, &c->tcp, a->ai_addr, on_connected);
    if (rc != 0)
        attempt_failed(c, rc);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
    mw_wsclient_t *c = req->data;
    c->pending--;
    c->resolving = 0;
    c->ai = res;
    if (c->closing) {
        if (c->pending == 0 && c->dead)
            release(c);
        return;
    }
    if (status < 0) {
        char why[300];
        snprintf(why, sizeof why, "resolve %s: %s", c->url.host, uv_strerror(status));
        fail_open(c, MW_EIO, why);
        return;
    }
    c->state = ST_CONNECT;
    c->ai_next = res;
    try_next(c);
}

static void on_open_timeout(uv_timer_t *t) {
    fail_open(t->data, MW_ETIMEOUT, "timeout");
}

int mw_wsclient_connect(mw_wsclient_t **out, uv_loop_t *loop, const mw_wsclient_opts_t *o,
                        const mw_wsclient_cbs_t *cbs, void *data, char *err, size_t errlen) {
    if (errlen)
        err[0] = '\0';
    mw_wsclient_t *c = calloc(1, sizeof *c);
    if (!c)
        return MW_ENOMEM;
    int rc = mw_wsclient_parse_url(o->url, &c->url, err, errlen);
    if (rc != 0) {
        free(c);
        return rc;
    }
    c->loop = loop;
    c->cb = *cbs;
    c->data = data;
    c->max_message = o->max_message_size ? o->max_message_size : MW_WSCLIENT_MAX_MESSAGE;
    c->max_buffered = o->max_buffered ? o->max_buffered : MW_WSCLIENT_MAX_BUFFERED;
    c->timeout_ms = o->timeout_ms ? o->timeout_ms : MW_WSCLIENT_TIMEOUT_MS;
    c->close_timeout_ms = o->close_timeout_ms ? o->close_timeout_ms : MW_WSCLIENT_CLOSE_TIMEOUT_MS;
    mw_outq_init(&c->out);
    rc = mw_handshake_client_key(c->key, sizeof c->key);
    if (rc == 0)
        rc = mw_handshake_client_request(c->url.host_header, c->url.target, c->key, o->protocols,
                                         o->headers, o->nheaders, &c->request, &c->request_len, err,
                                         errlen);
    if (rc == 0 && o->protocols && !(c->protocols = strdup(o->protocols)))
        rc = MW_ENOMEM;
    if (rc == 0 && (!(c->rbuf = malloc(READ_BUF)) || !(c->head = malloc(HEAD_MAX))))
        rc = MW_ENOMEM;
    if (rc == 0 && c->url.tls) {
        rc = mw_tls_client_ctx_create(&c->tls_ctx, o->tls_verify, o->ca_file, err, errlen);
        if (rc == 0 && !(c->plain = malloc(MW_TLS_RECORD_MAX)))
            rc = MW_ENOMEM;
        if (rc == 0)
            rc = mw_tls_client_create(&c->tls, c->tls_ctx, c->url.host);
    }
    if (rc != 0) {
        if (rc == MW_ENOMEM || rc == MW_EIO || !err[0])
            snprintf(err, errlen, "%s", mw_strerror(rc));
        c->dead = 1;
        release(c);
        return rc;
    }
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->pending = 1;
    char port[8];
    snprintf(port, sizeof port, "%d", c->url.port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    c->gai.data = c;
    rc = uv_getaddrinfo(loop, &c->gai, on_resolved, c->url.host, port, &hints);
    if (rc != 0) {
        snprintf(err, errlen, "resolve %s: %s", c->url.host, uv_strerror(rc));
        c->dead = 1;
        shut(c);
        return MW_EIO;
    }
    c->pending++;
    c->resolving = 1;
    uv_timer_start(&c->timer, on_open_timeout, c->timeout_ms, 0);
    *out = c;
    return 0;
}

/* ---- the app's calls ---------------------------------------------------------- */

int mw_wsclient_send(mw_wsclient_t *c, int binary, const char *msg, size_t len) {
    if (c->state != ST_OPEN || c->closing || c->user_closed || c->fail_code || c->peer_closed ||
        wslay_event_get_close_sent(c->ws))
        return MW_ECLOSED;
    if (mw_wsclient_buffered(c) > c->max_buffered)
        return MW_ESLOW;
    struct wslay_event_msg m = {binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME,
                                (const uint8_t *)msg, len};
    int r = wslay_event_queue_msg(c->ws, &m);
    if (r != 0) /* a close is queued (WSLAY_ERR_NO_MORE_MSG), or no memory */
        return r == WSLAY_ERR_NOMEM ? MW_ENOMEM : MW_ECLOSED;
    if (!c->in_recv)
        after_io(c);
    return 0;
}

int mw_wsclient_close(mw_wsclient_t *c, unsigned code, const char *reason, size_t len) {
    if (c->state != ST_OPEN || c->closing || c->user_closed)
        return MW_ECLOSED;
    c->user_closed = 1;
    if (c->paused)
        mw_wsclient_pause(c, 0); /* the peer's close must be read */
    if (!wslay_event_get_close_sent(c->ws)) {
        if (len > 123)
            len = 123;
        if (wslay_event_queue_close(c->ws, code ? (uint16_t)code : 1000, (const uint8_t *)reason,
                                    len) != 0)
            return MW_ECLOSED;
    }
    if (!c->in_recv)
        after_io(c);
    return 0;
}

void mw_wsclient_pause(mw_wsclient_t *c, int paused) {
    if (c->closing || c->paused == !!paused)
        return;
    c->paused = !!paused;
    if (c->state != ST_OPEN)
        return;
    if (paused)
        uv_read_stop((uv_stream_t *)&c->tcp);
    else
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

const char *mw_wsclient_protocol(const mw_wsclient_t *c) {
    return c->protocol;
}

size_t mw_wsclient_buffered(const mw_wsclient_t *c) {
    size_t n = c->out.bytes + (c->tls ? mw_tls_output(c->tls)->bytes : 0);
    return c->ws ? n + wslay_event_get_queued_msg_length(c->ws) : n;
}
