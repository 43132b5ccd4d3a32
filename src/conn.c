/*
 * conn.c - connection lifecycle: accept, HTTP request, upgrade, WebSocket
 * traffic, closing, lingering shutdown, free.
 *
 * This file owns the socket and the output queue of each connection. It
 * never parses a frame (ws.c does) or an HTTP byte (http.c does), and it
 * never frees a connection inside that connection's own callback chain:
 * mw__conn_close_now() only calls uv_close(), and the memory is released in
 * the close callback, after libuv has cancelled every pending request.
 *
 * Read backpressure: a client that keeps sending without reading our replies
 * would make its output queue grow without bound. While the queue is over a
 * high watermark we stop reading from that client (TCP then pushes back on
 * it), and resume once the queue has drained below half of it. Nobody else
 * is affected.
 *
 * Closing, as RFC 6455 section 7 wants it: after the close handshake (or
 * after failing the connection) the server flushes its output, shuts down
 * its side of the TCP connection, and keeps reading and discarding until
 * the peer closes too or close_timeout passes. Closing at once with unread
 * input would make the kernel send a RST and could destroy our close frame
 * before the peer reads it.
 *
 * TLS (wss://): a connection accepted with a TLS context has an mw_tls_t
 * between the socket and everything else. Reads are decrypted into the
 * loop's TLS buffer and go through the same HTTP/WebSocket path; the
 * output queue keeps plaintext (so backpressure counts what the client has
 * not been sent) and the flush encrypts a bounded amount of it at a time
 * into the session's record queue, which is what reaches the socket. A
 * clean close sends close_notify after the last byte, before the FIN. A
 * plain connection pays one test of c->tls per read, flush and write.
 */
#include "conn.h"
#include "admission.h"
#include "dedupe.h"
#include "endpoint.h"
#include "errors.h"
#include "handshake.h"
#include "aggregate.h"
#include "health.h"
#include "metrics.h"
#include "http.h"
#include "iptable.h"
#include "log.h"
#include "outq.h"
#include "shlimits.h"
#include "state.h"
#include "throttle.h"
#include "tls.h"
#include "ws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* CONN_UPGRADING: a valid upgrade request the app has not decided on yet
 * (its authenticate hook waits): nothing is written, nothing is read. */
enum {
    CONN_HTTP,
    CONN_UPGRADING,
    CONN_OPEN,
    CONN_CLOSING,
    CONN_DRAINING,
    CONN_LINGER,
    CONN_CLOSED
};

/* Where a plain HTTP connection (CONN_HTTP) is between requests: reading
 * one (head or body), waiting for the app's answer to a complete one,
 * idle between two (keep-alive), or answered with the next request's
 * bytes already stashed, to be read from the next flush pass. */
enum { HTTP_READING, HTTP_APP, HTTP_IDLE, HTTP_RESUME };

/* Bytes a connection whose request waits for the app keeps of what the
 * client sends next (pipelined requests); past it, reading stops until the
 * answer is out. */
#define HTTP_STASH_MAX (64 * 1024)

struct mw_conn {
    /* Hot for fan-out, kept in the first cache line: a broadcast to N
     * clients touches exactly these fields of each recipient. */
    uint64_t id; /* 0 until the upgrade succeeds */
    uint8_t state;
    uint8_t dedupe;      /* duplicate suppression opted in */
    uint8_t writing;     /* a uv_write is in flight (its request is malloc'd:
                            most writes complete in uv_try_write and need none) */
    uint8_t connected;   /* Lua saw connect, so it must see disconnect */
    uint8_t read_paused; /* reading stopped: output over the high watermark */
    uint8_t head_only;   /* answering a HEAD request: the head, no body */
    uint8_t app_hold;    /* reading stopped: the app has too many messages queued */
    uint8_t http_phase;  /* CONN_HTTP: HTTP_READING, HTTP_APP, HTTP_IDLE, HTTP_RESUME */
    uint8_t api_port;    /* accepted on the api_port listener: /api/ only */
    size_t write_len;    /* bytes in the write in flight */
    mw_outq_t outq;
    mw_server_t *server;
    mw_list_t flush;

    uv_tcp_t tcp;
    mw_room_client_t rooms;
    struct mw_conn_extra *x; /* rarely used state, allocated on first use */
    mw_http_parser_t *http;
    mw_ws_t *ws;
    uint64_t deadline; /* loop time (ms) when the current phase times out */
    mw_list_t link, timed, awake;
    /* Times below are loop milliseconds truncated to 32 bits, compared with
     * wrap-safe subtraction: 49 days of range for spans of seconds. */
    uint32_t last_active;  /* the last WebSocket read or write (idle sleep) */
    uint32_t last_heard;   /* any bytes from the client */
    uint32_t last_message; /* a complete data message from the client */
    uint32_t ping_sent;    /* an unanswered ping went out at this time; 0: none */
    mw_tls_t *tls;         /* wss:// only */
    void *app_data;        /* the app's own per-client state (mw_conn_set_app_data) */
};

/* What only some connections need: limits that are configured, an
 * expiry, throttled routes, duplicate suppression, a count of dropped
 * broadcasts. Kept out of mw_conn_t
 * so an idle connection that uses none of it does not pay for it. */
typedef struct mw_conn_extra {
    mw_ipkey_t ip; /* counted in server->ips when ip_admitted */
    uint8_t ip_admitted;
    uint8_t user_claimed; /* user_hash is counted in server->limits */
    uint64_t user_hash;
    uint16_t expiry_code;
    char *expiry_reason;    /* set with mw_conn_set_expiry; its deadline is c->deadline */
    mw_throttle_t throttle; /* rate_limit and per-route cells (throttle.h) */
    mw_dedupe_t seen;       /* recently delivered events (dedupe.h) */
    uint64_t dropped;       /* broadcasts dropped by backpressure */
    char *peer_addr;        /* adopted sockets: the peer the app is told about */
    int peer_port;
    char *upgrade_head; /* CONN_UPGRADING: the 101 to send once the app accepts */
    size_t upgrade_head_len;
    char *early; /* CONN_UPGRADING: bytes the client sent after its request */
    size_t early_len;
    uint64_t request_id; /* HTTP_APP: the request the app has to answer */
    char *stash;         /* HTTP_APP, HTTP_RESUME: bytes after the request */
    size_t stash_len, stash_cap;
    uint8_t continue_sent; /* 100 Continue went out for the current request */
} mw_conn_extra_t;

/* extra returns the connection's extra state, allocating it on first use;
 * NULL when out of memory. */
static mw_conn_extra_t *extra(mw_conn_t *c) {
    if (!c->x)
        c->x = calloc(1, sizeof *c->x);
    return c->x;
}

static uint32_t now32(const mw_server_t *s) {
    return (uint32_t)mw_server_now(s);
}

/* peer_name writes the peer's address into buf (at least 48 bytes) and
 * returns its port. Computed when needed (the upgrade, debug logs) rather
 * than stored: it is 52 bytes an idle connection does not need. */
static int peer_name(const mw_conn_t *c, char *buf, size_t len) {
    struct sockaddr_storage ss;
    int sslen = sizeof ss;
    snprintf(buf, len, "unknown");
    if (c->x && c->x->peer_addr) {
        snprintf(buf, len, "%s", c->x->peer_addr);
        return c->x->peer_port;
    }
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sslen) != 0)
        return 0;
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, buf, len);
        return ntohs(a->sin6_port);
    }
    const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
    uv_ip4_name(a, buf, len);
    return ntohs(a->sin_port);
}

mw_conn_t *mw_conn_from_link(mw_list_t *l) {
    return mw_list_entry(l, mw_conn_t, link);
}
mw_conn_t *mw_conn_from_timed(mw_list_t *l) {
    return mw_list_entry(l, mw_conn_t, timed);
}
mw_conn_t *mw_conn_from_flush(mw_list_t *l) {
    return mw_list_entry(l, mw_conn_t, flush);
}
mw_conn_t *mw_conn_from_awake(mw_list_t *l) {
    return mw_list_entry(l, mw_conn_t, awake);
}

/* A connection that neither read nor wrote for this long gives its wslay
 * context and its empty output ring back; busy connections keep both, so
 * nothing churns under load. */
#define SLEEP_AFTER_MS 1000

/* mark_awake records activity and puts the connection on the list the cron
 * walks to reclaim idle memory. */
static void mark_awake(mw_conn_t *c) {
    c->last_active = (uint32_t)mw_server_now(c->server);
    if (!mw_list_linked(&c->awake))
        mw_list_insert_tail(&c->server->awake, &c->awake);
}

int mw_conn_idle(mw_conn_t *c, uint64_t now) {
    if (c->state != CONN_OPEN) {
        mw_list_remove(&c->awake);
        return 0;
    }
    if ((uint32_t)now - c->last_active < SLEEP_AFTER_MS)
        return 0;
    int slept = c->ws ? mw_ws_sleep(c->ws) : 0;
    if (c->outq.count == 0 && !c->writing)
        mw_outq_clear(&c->outq);
    if (!(c->ws && mw_ws_awake(c->ws)) && c->outq.ents == NULL)
        mw_list_remove(&c->awake);
    return slept;
}

static void set_deadline(mw_conn_t *c, uint64_t ms) {
    c->deadline = mw_server_now(c->server) + ms;
    if (!mw_list_linked(&c->timed))
        mw_list_insert_tail(&c->server->timed, &c->timed);
}

static void clear_deadline(mw_conn_t *c) {
    c->deadline = 0;
    if (mw_list_linked(&c->timed))
        mw_list_remove(&c->timed);
}

/* The output a connection may queue before we stop reading from it: room
 * for a few replies of the largest message size. */
static size_t high_watermark(const mw_conn_t *c) {
    size_t max = (size_t)c->server->cfg->max_message_size;
    size_t floor = 8u << 20;
    return 2 * max > floor ? 2 * max : floor;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

static void update_read_pause(mw_conn_t *c) {
    if (c->state == CONN_HTTP) {
        /* A request waiting for the app: what follows is stashed, up to
         * HTTP_STASH_MAX; reading goes on below it, so a client that
         * leaves is noticed (and its request dropped) at once. */
        int pause = c->http_phase == HTTP_APP && c->x && c->x->stash_len >= HTTP_STASH_MAX;
        if (pause && !c->read_paused) {
            c->read_paused = 1;
            uv_read_stop((uv_stream_t *)&c->tcp);
        } else if (!pause && c->read_paused) {
            c->read_paused = 0;
            uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        }
        return;
    }
    if (c->state != CONN_OPEN && c->state != CONN_CLOSING) {
        if (c->read_paused && c->state != CONN_CLOSED) {
            c->read_paused = 0; /* draining and lingering read to discard */
            uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        }
        return;
    }
    size_t high = high_watermark(c);
    if (!c->read_paused && (c->app_hold || c->outq.bytes > high)) {
        c->read_paused = 1;
        uv_read_stop((uv_stream_t *)&c->tcp);
    } else if (c->read_paused && !c->app_hold && c->outq.bytes <= high / 2) {
        c->read_paused = 0;
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
}

static void schedule_flush(mw_conn_t *c) {
    if (!mw_list_linked(&c->flush))
        mw_list_insert_tail(&c->server->flushq, &c->flush);
}

/* shared_rooms: the server counts room members for the whole server
 * (workers = N, max_connections_per_room set: both fixed at start, so
 * every join and leave of the process is counted alike). */
static int shared_rooms(const mw_server_t *s) {
    return s->limits && s->cfg->max_connections_per_room > 0;
}

/* leave_rooms takes c out of every room, giving back its places in the
 * whole server's counts (mw_conn_join). */
static void leave_rooms(mw_conn_t *c) {
    mw_server_t *s = c->server;
    if (shared_rooms(s))
        for (uint32_t i = 0; i < c->rooms.n; i++) {
            size_t n;
            const char *name = mw_room_name(mw_room_client_room(&c->rooms, i), &n);
            mw_shlimits_room_release(s->limits, mw_shlimits_hash(s->limits, name, n));
        }
    mw_rooms_leave_all(s->rooms, &c->rooms);
}

/* free_conn ends a connection the app no longer needs: its memberships,
 * its id, its memory. */
static void free_conn(mw_conn_t *c) {
    mw_server_t *s = c->server;
    leave_rooms(c);
    if (c->id)
        mw_idmap_del(&s->clients, c->id);
    if (c->x) {
        if (c->x->ip_admitted)
            mw_admission_release(s, &c->x->ip);
        if (c->x->user_claimed)
            mw_shlimits_user_release(s->limits, c->x->user_hash);
        mw_dedupe_clear(&c->x->seen);
        free(c->x->expiry_reason);
        mw_throttle_free(&c->x->throttle);
        free(c->x->peer_addr);
        free(c->x->upgrade_head);
        free(c->x->early);
        free(c->x->stash);
        free(c->x);
    }
    mw_ws_free(c->ws);
    mw_tls_free(c->tls);
    mw_http_parser_free(c->http);
    mw_outq_clear(&c->outq);
    mw_list_remove(&c->link);
    s->nconns--;
    free(c); /* the server notices nconns reaching 0 in its next pass (shutdown) */
}

static void on_close(uv_handle_t *h) {
    mw_conn_t *c = h->data;
    mw_server_t *s = c->server;
    /* Lua hears about the disconnect while the client is still in its
     * rooms (to send presence "left" events); the memberships go after.
     * An app still handling the client's messages answers MW_EPENDING and
     * releases it later (mw_conn_release): until then the client keeps its
     * id and rooms, and every send to it fails. */
    if (c->connected || c->app_data) {
        /* app_data: the app still decides on this client's upgrade. */
        const char *reason = "";
        size_t rlen = 0;
        uint16_t code = c->ws ? mw_ws_status(c->ws, &reason, &rlen) : 1006;
        if (c->connected) {
            c->connected = 0;
            s->nclients--;
            if (s->limits)
                mw_shlimits_set_clients(s->limits, s->nclients);
            mw_counters_disconnect(&s->counters, code);
        }
        if (s->app.cb->close &&
            s->app.cb->close(s->app.data, c, code, reason, rlen) == MW_EPENDING) {
            c->app_hold = 2; /* held by the app until mw_conn_release */
            return;
        }
    }
    free_conn(c);
}

void mw_conn_release(mw_conn_t *c) {
    if (c->state == CONN_CLOSED && c->app_hold == 2)
        free_conn(c);
}

void *mw_conn_app_data(const mw_conn_t *c) {
    return c->app_data;
}

void mw_conn_set_app_data(mw_conn_t *c, void *data) {
    c->app_data = data;
}

void mw_conn_hold(mw_conn_t *c, int on) {
    if (c->state == CONN_CLOSED || c->app_hold == (on ? 1 : 0))
        return;
    c->app_hold = on ? 1 : 0;
    update_read_pause(c);
}

/* forget_request drops the connection's unanswered request, if any: from
 * here on mw_server_http_respond finds nothing for its id. */
static void forget_request(mw_conn_t *c) {
    if (c->x && c->x->request_id) {
        mw_idmap_del(&c->server->requests, c->x->request_id);
        c->x->request_id = 0;
    }
}

static void close_now(mw_conn_t *c) {
    if (c->state == CONN_CLOSED)
        return;
    c->state = CONN_CLOSED;
    forget_request(c);
    clear_deadline(c);
    if (mw_list_linked(&c->flush))
        mw_list_remove(&c->flush);
    if (mw_list_linked(&c->awake))
        mw_list_remove(&c->awake);
    /* The id stays in the map until on_close, so Lua's disconnect handler
     * can still ask for the client's rooms; sends to it fail (not OPEN). */
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

void mw_conn_abort(mw_conn_t *c) {
    close_now(c);
}

/* Request structs are allocated per use and freed in their callback, which
 * libuv always calls (with UV_ECANCELED when the handle closes first), so
 * an idle connection carries neither. */
static void on_shutdown(uv_shutdown_t *req, int status) {
    mw_conn_t *c = req->data;
    free(req);
    if (status < 0 && c->state != CONN_CLOSED)
        close_now(c);
    /* Otherwise keep reading until the peer's EOF or the linger deadline. */
}

static void start_shutdown(mw_conn_t *c) {
    c->state = CONN_LINGER;
    uv_shutdown_t *req = malloc(sizeof *req);
    if (!req) {
        close_now(c);
        return;
    }
    req->data = c;
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        free(req);
        close_now(c);
    }
}

/* start_draining: nothing more will be produced; flush, then shut down. */
static void start_draining(mw_conn_t *c) {
    if (c->state >= CONN_DRAINING)
        return;
    c->state = CONN_DRAINING;
    set_deadline(c, c->server->cfg->close_timeout);
    schedule_flush(c);
}

static void on_write(uv_write_t *req, int status) {
    mw_conn_t *c = req->data;
    free(req);
    c->writing = 0;
    if (c->state == CONN_CLOSED)
        return;
    if (status < 0) {
        mw_log_debug("client %llu: write failed: %s", (unsigned long long)c->id,
                     uv_strerror(status));
        close_now(c);
        return;
    }
    mw_outq_written(c->tls ? mw_tls_output(c->tls) : &c->outq, c->write_len);
    mw_conn_flush(c);
}

/* write_queue writes what q holds: uv_try_write, then uv_write for what the
 * kernel did not take. Returns 0 (all written), 1 (a write is in flight)
 * or -1 (the connection was closed). Inlined into both flushes, so the
 * plain one costs what it did before TLS existed. */
static inline __attribute__((always_inline)) int write_queue(mw_conn_t *c, mw_outq_t *q) {
    uv_buf_t iov[MW_OUTQ_MAX_IOV];
    if (q->bytes == 0)
        return 0;
    int n = mw_outq_peek(q, iov, MW_OUTQ_MAX_IOV);
    int r = uv_try_write((uv_stream_t *)&c->tcp, iov, (unsigned)n);
    if (r == UV_EAGAIN)
        r = 0;
    if (r < 0) {
        close_now(c);
        return -1;
    }
    mw_outq_written(q, (size_t)r);
    if (q->bytes == 0)
        return 0;
    n = mw_outq_peek(q, iov, MW_OUTQ_MAX_IOV);
    c->write_len = 0;
    for (int i = 0; i < n; i++)
        c->write_len += iov[i].len;
    uv_write_t *req = malloc(sizeof *req);
    if (!req) {
        close_now(c);
        return -1;
    }
    req->data = c;
    if (uv_write(req, (uv_stream_t *)&c->tcp, iov, (unsigned)n, on_write) != 0) {
        free(req);
        close_now(c);
        return -1;
    }
    c->writing = 1;
    return 1;
}

/* The plaintext a TLS flush encrypts before writing: enough for the
 * kernel's buffer to take in one go, small enough that c->outq (what
 * backpressure measures) holds nearly everything not yet sent. */
#define TLS_FLUSH_BUDGET (64 * 1024)

/* flush_tls encrypts and writes until the plaintext queue is empty or the
 * socket stops taking bytes; on a draining connection close_notify
 * follows the last record. Returns like write_queue. */
static int flush_tls(mw_conn_t *c) {
    for (;;) {
        int rc = mw_tls_encrypt(c->tls, &c->outq, TLS_FLUSH_BUDGET);
        if (rc == MW_ECLOSED) /* no session to carry it (a 408 mid-handshake) */
            mw_outq_written(&c->outq, c->outq.bytes);
        else if (rc != 0) {
            close_now(c);
            return -1;
        }
        if (c->outq.bytes == 0 && c->state == CONN_DRAINING)
            mw_tls_shutdown(c->tls);
        rc = write_queue(c, mw_tls_output(c->tls));
        if (rc == 0)
            mw_tls_trim(c->tls);
        if (rc != 0 || c->outq.bytes == 0)
            return rc;
    }
}

static void http_resume(mw_conn_t *c);

void mw_conn_flush(mw_conn_t *c) {
    if (c->http_phase == HTTP_RESUME && c->state == CONN_HTTP)
        http_resume(c); /* the next request, which came while the app answered */
    if (c->writing || c->state == CONN_CLOSED)
        return;
    int rc = c->tls ? flush_tls(c) : write_queue(c, &c->outq);
    if (rc < 0)
        return;
    if (rc > 0) {
        update_read_pause(c);
        return;
    }
    if (c->state == CONN_DRAINING)
        start_shutdown(c);
    else if (c->state == CONN_OPEN && c->outq.ents)
        mark_awake(c); /* the cron frees the kept ring once idle */
    update_read_pause(c);
}

static int on_ws_write(void *data, const uint8_t *bytes, size_t len) {
    mw_conn_t *c = data;
    if (mw_outq_append(&c->outq, bytes, len) != 0)
        return MW_ENOMEM;
    schedule_flush(c);
    return 0;
}

/* send_reply sends a reply the core sends by itself (mw_server_set_reply),
 * with the current time in its time stamp. Replies are small (a ping
 * event, an error envelope): stamped on the stack, or in a heap copy for
 * an app protocol that makes them larger. */
static void send_reply(mw_conn_t *c, mw_reply_t which) {
    mw_server_t *s = c->server;
    const char *r = s->reply[which];
    size_t len = s->reply_len[which], off = s->reply_ts_off[which];
    if (!r)
        return;
    if (s->reply_ts_len[which] == 0) {
        mw_conn_send(c, s->reply_binary[which], r, len);
        return;
    }
    char ts[24], stack[1024];
    size_t n = (size_t)snprintf(ts, sizeof ts, "%llu", (unsigned long long)mw_server_wall_ms(s));
    size_t tail = len - off - s->reply_ts_len[which], total = off + n + tail;
    char *buf = total <= sizeof stack ? stack : malloc(total);
    if (!buf)
        return; /* out of memory: this one reply is not sent */
    memcpy(buf, r, off);
    memcpy(buf + off, ts, n);
    memcpy(buf + off + n, r + len - tail, tail);
    mw_conn_send(c, s->reply_binary[which], buf, total);
    if (buf != stack)
        free(buf);
}

/* rate_limited applies rate_limit to one message: 0 lets it through; 1
 * means it was refused (an error event sent, or the connection closed with
 * 1008 after rate_limit.max_violations refusals in a row). Refused messages
 * never reach Lua, so a flood costs the app nothing. */
static int rate_limited(mw_conn_t *c) {
    mw_server_t *s = c->server;
    mw_conn_extra_t *x = extra(c);
    if (!x) {
        close_now(c);
        return 1;
    }
    mw_throttle_verdict_t v =
        mw_throttle_message(&x->throttle, &s->msg_rate, (uint32_t)s->cfg->rate_limit_max_violations,
                            mw_server_now(s) * 1000);
    if (v == MW_THROTTLE_PASS)
        return 0;
    s->rate_limited_total++;
    if (v == MW_THROTTLE_CLOSE) {
        mw_log_info("client %llu: closing after %u rate limit violations in a row",
                    (unsigned long long)c->id, x->throttle.violations);
        mw_conn_close(c, 1008, "rate limit exceeded", 19);
        return 1;
    }
    if (s->reply[MW_REPLY_RATE_LIMITED])
        mw_counters_error(&s->counters, "RATE_LIMIT_EXCEEDED", 19);
    send_reply(c, MW_REPLY_RATE_LIMITED);
    return 1;
}

static void on_ws_message(void *data, int binary, const uint8_t *msg, size_t len) {
    mw_conn_t *c = data;
    c->server->counters.messages_received++;
    c->server->counters.bytes_received += len;
    if (mw_rate_enabled(&c->server->msg_rate) && rate_limited(c))
        return;
    c->last_message = now32(c->server);
    mw_server_t *s = c->server;
    if (s->app.cb->message)
        s->app.cb->message(s->app.data, c, binary, (const char *)msg, len);
}

/* ensure_ws creates the connection's WebSocket endpoint on first use.
 * Returns 0 or MW_ENOMEM. */
static int ensure_ws(mw_conn_t *c) {
    static const mw_ws_callbacks_t cb = {on_ws_message, on_ws_write};
    if (c->ws)
        return 0;
    return mw_ws_create(&c->ws, (uint64_t)c->server->cfg->max_message_size, c->server->encoder, &cb,
                        c);
}

/* after_ws_io moves the state machine after bytes went through ws.c. */
static void after_ws_io(mw_conn_t *c) {
    if ((c->state != CONN_OPEN && c->state != CONN_CLOSING) || !c->ws)
        return;
    if (mw_ws_done(c->ws)) {
        start_draining(c);
    } else if (mw_ws_close_sent(c->ws) && c->state == CONN_OPEN) {
        c->state = CONN_CLOSING;
        set_deadline(c, c->server->cfg->close_timeout);
    }
}

static void on_ws_data(mw_conn_t *c, const char *data, size_t len) {
    mark_awake(c);
    c->last_heard = now32(c->server);
    if (ensure_ws(c) != 0) {
        close_now(c);
        return;
    }
    int rc = mw_ws_feed(c->ws, (const uint8_t *)data, len);
    if (rc != 0)
        mw_log_debug("client %llu: failed the connection: %s", (unsigned long long)c->id,
                     mw_strerror(rc));
    after_ws_io(c);
}

/* http_finish ends the current request once its answer is queued: the
 * connection is drained and shut down, or (keep) waits, idle, for the
 * next request, which may already be stashed. */
static void http_finish(mw_conn_t *c, int keep) {
    forget_request(c);
    if (!keep) {
        start_draining(c);
        return;
    }
    mw_http_parser_reset(c->http);
    mw_http_parser_set_max_body(c->http, (size_t)c->server->cfg->http_max_body);
    c->head_only = 0; /* the next request is not known to be a HEAD before its head */
    if (c->x)
        c->x->continue_sent = 0;
    c->http_phase = c->x && c->x->stash_len ? HTTP_RESUME : HTTP_IDLE;
    set_deadline(c, (uint64_t)c->server->cfg->http_keepalive_timeout);
    schedule_flush(c);
    update_read_pause(c);
}

/* keep_alive: whether the connection may carry another request after the
 * current one (the client's wish, keep-alive not turned off, no shutdown). */
static int keep_alive(const mw_conn_t *c) {
    const mw_server_t *s = c->server;
    if (!c->http || !mw_http_parser_complete(c->http))
        return 0;
    const mw_request_t *req = mw_http_parser_request(c->http);
    return req->keep_alive && !req->upgrade && s->cfg->http_keepalive_timeout > 0 &&
           !s->shutting_down;
}

/* respond writes one answer: status, extra header lines (each "Name:
 * value\r\n", or NULL), content type and body (only the head for HEAD,
 * none for 204 and 304), then ends the request (http_finish). */
static void respond(mw_conn_t *c, int status, const char *extra_headers, const char *ctype,
                    const char *body, size_t body_len, int keep) {
    char head[256];
    int no_body = status == 204 || status == 304;
    int n;
    if (no_body)
        n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\n", status, mw_http_status_text(status));
    else
        n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n", status,
                     mw_http_status_text(status), ctype, body_len);
    const char *conn = keep ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
    if (n < 0 || (size_t)n >= sizeof head || mw_outq_append(&c->outq, head, (size_t)n) != 0 ||
        mw_outq_append(&c->outq, conn, strlen(conn)) != 0 ||
        (extra_headers && mw_outq_append(&c->outq, extra_headers, strlen(extra_headers)) != 0) ||
        mw_outq_append(&c->outq, "\r\n", 2) != 0 ||
        (!c->head_only && !no_body && body_len && mw_outq_append(&c->outq, body, body_len) != 0)) {
        close_now(c);
        return;
    }
    http_finish(c, keep);
}

/* token_char: what an HTTP header name may be made of (RFC 9110 5.6.2). */
static int token_char(unsigned char ch) {
    return ch > 32 && ch < 127 && !strchr("\"(),/:;<=>?@[\\]{}", ch);
}

/* headers_valid checks the app's extra header lines: "Name: value\r\n"
 * each, a token name, no CR or LF inside a value, and none of the headers
 * the core writes itself (their values would contradict its own). */
static int headers_valid(const char *h) {
    static const char *const own[] = {"content-length", "transfer-encoding", "connection",
                                      "content-type"};
    if (strlen(h) > MW_CONN_HEADERS_MAX)
        return 0;
    while (*h) {
        const char *name = h;
        while (token_char((unsigned char)*h))
            h++;
        size_t nlen = (size_t)(h - name);
        if (nlen == 0 || *h != ':')
            return 0;
        for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
            if (strlen(own[i]) == nlen && strncasecmp(own[i], name, nlen) == 0)
                return 0;
        while (*h && *h != '\r' && *h != '\n')
            h++;
        if (h[0] != '\r' || h[1] != '\n')
            return 0;
        h += 2;
    }
    return 1;
}

int mw_conn_respond(mw_conn_t *c, int status, const char *headers, const char *content_type,
                    const void *body, size_t len) {
    if (c->state != CONN_HTTP || c->http_phase != HTTP_APP)
        return MW_ECLOSED;
    if (status < 200 || status > 599 || strlen(content_type) > 100 ||
        strpbrk(content_type, "\r\n") || (headers && !headers_valid(headers)))
        return MW_EINVAL;
    respond(c, status, headers, content_type, body, len, keep_alive(c));
    return 0;
}

/* respond_text answers with a one-line reason and closes: the core's own
 * error answers (400, 408, 413, 431, refusals, handshake errors). */
static void respond_text(mw_conn_t *c, int status, const char *extra, const char *msg) {
    char body[256];
    int n = snprintf(body, sizeof body, "%s\n", msg);
    respond(c, status, extra, "text/plain; charset=utf-8", body, (size_t)n, 0);
}

/* respond_not_found: the core's 404 for a path nobody serves; a normal
 * answer, so the connection may carry another request. */
static void respond_not_found(mw_conn_t *c) {
    respond(c, 404, NULL, "text/plain; charset=utf-8", "not found\n", 10, keep_alive(c));
}

/* respond_status_document answers /health or /metrics with a document
 * the server built (body, freed here; NULL when out of memory: then the
 * connection is closed). Never cached: it is the state of this moment. */
static void respond_status_document(mw_conn_t *c, const char *ctype, char *body, size_t len) {
    if (!body) {
        close_now(c);
        return;
    }
    respond(c, 200, "Cache-Control: no-store\r\n", ctype, body, len, keep_alive(c));
    free(body);
}

/* log_refusal says at debug level who got an error answer, and why. */
static void log_refusal(mw_conn_t *c, int status, const char *why) {
    if (!mw_log_enabled(MW_LOG_DEBUG))
        return;
    char addr[48];
    int port = peer_name(c, addr, sizeof addr);
    mw_log_debug("refused %s:%d: %d %s", addr, port, status, why);
}

/* refuse answers a client turned away by a limit or a policy (401, 403,
 * 429, 503): counted as refused on /health, and logged. */
static void refuse(mw_conn_t *c, int status, const char *extra, const char *why) {
    c->server->refused_total++;
    log_refusal(c, status, why);
    respond_text(c, status, extra, why);
}

static void unaccept(mw_conn_t *c);

static void on_ws_data(mw_conn_t *c, const char *data, size_t len);

/* open_client finishes an upgrade the app accepted: the 101 goes out,
 * the client is open, the app hears about it, and what the client sent
 * after its request (early, when the decision waited) is read. */
static void open_client(mw_conn_t *c, const char *head, size_t len, const char *early,
                        size_t early_len) {
    mw_server_t *s = c->server;
    /* The mw_ws_t comes with the first frame, send or close (ensure_ws): a
     * client that only listens never needs one. */
    if (mw_outq_append(&c->outq, head, len) != 0) {
        close_now(c);
        return;
    }
    schedule_flush(c);
    c->state = CONN_OPEN;
    clear_deadline(c);
    c->connected = 1;
    c->last_heard = c->last_message = now32(s);
    s->nclients++;
    if (s->limits)
        mw_shlimits_set_clients(s->limits, s->nclients);
    s->counters.connects++;
    mw_log_debug("client %llu connected", (unsigned long long)c->id);
    if (s->app.cb->open)
        s->app.cb->open(s->app.data, c);
    if (early_len && (c->state == CONN_OPEN || c->state == CONN_CLOSING))
        on_ws_data(c, early, early_len);
}

static void upgrade(mw_conn_t *c, const mw_request_t *req, const mw_handshake_t *hs) {
    mw_server_t *s = c->server;
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s%s%s\r\n",
                     hs->accept, hs->subprotocol ? "Sec-WebSocket-Protocol: " : "",
                     hs->subprotocol ? hs->subprotocol : "", hs->subprotocol ? "\r\n" : "");
    c->id = s->next_id++ * s->id_stride + s->id_first;
    if (mw_idmap_put(&s->clients, c->id, c) != 0) {
        close_now(c);
        return;
    }
    char addr[48];
    int port = peer_name(c, addr, sizeof addr);
    mw_client_info_t info = {
        .remote_addr = addr,
        .remote_port = port,
        .path = req->path,
        .query = req->query,
        .subprotocol = hs->subprotocol,
        .headers = req->headers,
        .nheaders = req->nheaders,
    };
    char msg[256];
    int refused =
        s->app.cb->upgrade ? s->app.cb->upgrade(s->app.data, c, &info, msg, sizeof msg) : 0;
    if (refused == MW_EPENDING) {
        /* The app decides later (mw_conn_upgrade_decided): the 101 waits,
         * what the client sends meanwhile is kept (keep_early), and the
         * handshake deadline still runs. */
        mw_conn_extra_t *x = extra(c);
        char *copy = malloc((size_t)n);
        if (!x || !copy) {
            free(copy);
            close_now(c);
            return;
        }
        memcpy(copy, head, (size_t)n);
        x->upgrade_head = copy;
        x->upgrade_head_len = (size_t)n;
        c->state = CONN_UPGRADING; /* reading goes on: early bytes are kept, EOF noticed */
        mw_log_debug("client %llu from %s:%d: the app decides on the upgrade later",
                     (unsigned long long)c->id, addr, port);
        return;
    }
    if (refused) {
        mw_refusal_t r;
        mw_admission_app_refusal(s, refused, msg, &r);
        unaccept(c);
        refuse(c, r.status, r.headers, r.why);
        return;
    }
    open_client(c, head, (size_t)n, NULL, 0);
}

int mw_conn_upgrade_decided(mw_conn_t *c, int status, const char *msg) {
    if (c->state != CONN_UPGRADING)
        return MW_ECLOSED;
    mw_conn_extra_t *x = c->x;
    char *head = x->upgrade_head, *early = x->early;
    size_t len = x->upgrade_head_len, early_len = x->early_len;
    x->upgrade_head = x->early = NULL;
    x->upgrade_head_len = x->early_len = 0;
    if (status) {
        mw_refusal_t r;
        mw_admission_app_refusal(c->server, status, msg ? msg : "forbidden", &r);
        unaccept(c);
        refuse(c, r.status, r.headers, r.why);
    } else {
        open_client(c, head, len, early, early_len);
    }
    free(head);
    free(early);
    return 0;
}

/* keep_early holds what a client sent after its upgrade request while the
 * app decides on it, bounded like an output queue. */
static void keep_early(mw_conn_t *c, const char *data, size_t len) {
    mw_conn_extra_t *x = c->x;
    if (x->early_len + len > high_watermark(c)) {
        close_now(c);
        return;
    }
    char *p = realloc(x->early, x->early_len + len);
    if (!p) {
        close_now(c);
        return;
    }
    memcpy(p + x->early_len, data, len);
    x->early = p;
    x->early_len += len;
}

/* unaccept undoes an upgrade the runtime refused: nothing was written yet
 * (the 101 is queued only once it accepts), so the client can get an HTTP
 * answer instead. */
static void unaccept(mw_conn_t *c) {
    mw_server_t *s = c->server;
    leave_rooms(c);
    mw_idmap_del(&s->clients, c->id);
    c->id = 0;
    mw_ws_free(c->ws);
    c->ws = NULL;
    mw_outq_clear(&c->outq);
    clear_deadline(c);
    c->state = CONN_HTTP;
}

/* to_app hands a complete request to the app's http callback under a
 * fresh request id. The app answers during the call or later
 * (mw_server_http_respond); meanwhile the connection reads no further
 * request (what the client sends is stashed, see HTTP_STASH_MAX) and has
 * no deadline: a wait inside the app has its own. */
static void to_app(mw_conn_t *c, const mw_request_t *req) {
    mw_server_t *s = c->server;
    if (!s->app.cb->http) {
        respond_not_found(c);
        return;
    }
    mw_conn_extra_t *x = extra(c);
    uint64_t id = ++s->next_request_id;
    if (!x || mw_idmap_put(&s->requests, id, c) != 0) {
        close_now(c);
        return;
    }
    x->request_id = id;
    c->http_phase = HTTP_APP;
    clear_deadline(c);
    int rc = s->app.cb->http(s->app.data, c, req);
    if (c->state != CONN_HTTP || c->http_phase != HTTP_APP || rc == 0)
        return; /* answered, closed, or to be answered later */
    if (rc == MW_ENOTFOUND)
        respond_not_found(c);
    else
        respond_text(c, 500, NULL, "internal server error");
}

/* on_request acts on a complete request: what it is for (endpoint.c),
 * whether the client may upgrade (admission.c), the handshake
 * (handshake.c). */
static void on_request(mw_conn_t *c, const mw_request_t *req) {
    mw_server_t *s = c->server;
    mw_refusal_t r;
    /* RFC 9110 9.3.2: a HEAD answer is the GET answer's head alone */
    c->head_only = strcmp(req->method, "HEAD") == 0;
    int where =
        (c->api_port ? MW_ENDPOINT_ON_API_PORT : 0) | (s->app_health ? MW_ENDPOINT_APP_HEALTH : 0);
    switch (mw_endpoint_route(s->cfg, req, where, &r)) {
    case MW_ENDPOINT_HEALTH: {
        size_t len = 0;
        char *body = mw_health_json(s, &len);
        respond_status_document(c, "application/json", body, len);
        return;
    }
    case MW_ENDPOINT_METRICS: {
        size_t len = 0;
        /* workers = N: the whole server's, merged from every worker's */
        char *body = s->agg ? mw_aggregate_metrics(s, &len) : mw_metrics_text(s, &len);
        respond_status_document(c, "text/plain; version=0.0.4; charset=utf-8", body, len);
        return;
    }
    case MW_ENDPOINT_REFUSE: respond_text(c, r.status, r.headers, r.why); return;
    case MW_ENDPOINT_NOT_FOUND: respond_not_found(c); return;
    case MW_ENDPOINT_APP: to_app(c, req); return; /* the app's routes, else the 404 */
    case MW_ENDPOINT_API: {
        mw_request_t api = *req; /* the key was checked: the app serves its API routes */
        api.api = 1;
        to_app(c, &api);
        return;
    }
    case MW_ENDPOINT_WEBSOCKET: break;
    }
    mw_handshake_t hs;
    int status = mw_handshake_check(req, s->cfg->subprotocols, s->cfg->nsubprotocols, &hs);
    if (mw_admission_upgrade(s, req, status == 101, &r) != MW_ADMIT) {
        refuse(c, r.status, r.headers, r.why);
        return;
    }
    if (status == 101) {
        upgrade(c, req, &hs);
        return;
    }
    const char *extra = NULL;
    if (status == 426)
        extra = "Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n";
    else if (status == 405)
        extra = "Allow: GET\r\n";
    log_refusal(c, status, hs.reason);
    respond_text(c, status, extra, hs.reason);
}

/* stash keeps bytes that came while a request waits for the app's answer:
 * the start of the next request, read once the answer is out. */
static void stash(mw_conn_t *c, const char *data, size_t len) {
    mw_conn_extra_t *x = extra(c);
    if (!x) {
        close_now(c);
        return;
    }
    if (x->stash_len + len > x->stash_cap) {
        size_t cap = x->stash_cap ? x->stash_cap : 1024;
        while (cap < x->stash_len + len)
            cap *= 2;
        char *b = realloc(x->stash, cap);
        if (!b) {
            close_now(c);
            return;
        }
        x->stash = b;
        x->stash_cap = cap;
    }
    memcpy(x->stash + x->stash_len, data, len);
    x->stash_len += len;
}

static void on_http_data(mw_conn_t *c, const char *data, size_t len);

/* http_resume reads the requests stashed while the previous one waited
 * for its answer: from the flush pass, never inside the app's call. */
static void http_resume(mw_conn_t *c) {
    mw_conn_extra_t *x = c->x;
    char *buf = x->stash;
    size_t len = x->stash_len;
    x->stash = NULL;
    x->stash_len = x->stash_cap = 0;
    c->http_phase = HTTP_IDLE;
    on_http_data(c, buf, len); /* what is left of it may be stashed again */
    free(buf);
    if (c->state != CONN_CLOSED)
        update_read_pause(c);
}

/* maybe_continue answers Expect: 100-continue once the head of a request
 * whose body is still to come was accepted (its size is within
 * http_max_body), so the client sends the body without waiting. */
static void maybe_continue(mw_conn_t *c) {
    const mw_request_t *req = mw_http_parser_request(c->http);
    if (!mw_http_parser_done(c->http) || !req->expect_continue || (c->x && c->x->continue_sent))
        return;
    mw_conn_extra_t *x = extra(c);
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (!x || mw_outq_append(&c->outq, cont, sizeof cont - 1) != 0) {
        close_now(c);
        return;
    }
    x->continue_sent = 1;
    schedule_flush(c);
}

/* on_http_data reads requests: each complete one is answered (or handed to
 * the app) before the next is parsed; bytes after an upgrade are frames. */
static void on_http_data(mw_conn_t *c, const char *data, size_t len) {
    if (c->http_phase == HTTP_APP || c->http_phase == HTTP_RESUME) {
        stash(c, data, len);
        return;
    }
    while (c->state == CONN_HTTP && len > 0) {
        if (c->http_phase == HTTP_IDLE) {
            /* The next request on a kept-alive connection: it has
             * handshake_timeout to arrive whole, like the first. */
            c->http_phase = HTTP_READING;
            set_deadline(c, (uint64_t)c->server->cfg->handshake_timeout);
        }
        size_t used;
        int rc = mw_http_parser_feed(c->http, data, len, &used);
        data += used;
        len -= used;
        if (rc == MW_ETOOBIG && mw_http_parser_done(c->http)) {
            respond_text(c, 413, NULL, "request body too large");
            return;
        }
        if (rc == MW_ETOOBIG) {
            respond_text(c, 431, NULL, "request header fields too large");
            return;
        }
        if (rc != 0) {
            respond_text(c, 400, NULL, "malformed HTTP request");
            return;
        }
        if (!mw_http_parser_complete(c->http)) {
            maybe_continue(c);
            return;
        }
        const mw_request_t *req = mw_http_parser_request(c->http);
        if (req->upgrade) {
            on_request(c, req);
            break;
        }
        on_request(c, req); /* answered now (keep-alive or not), or later */
        if (c->http_phase == HTTP_APP && c->state == CONN_HTTP) {
            if (len > 0)
                stash(c, data, len);
            return;
        }
    }
    if (c->state == CONN_UPGRADING) {
        if (len > 0)
            keep_early(c, data, len);
        return;
    }
    if (c->state == CONN_OPEN || c->state == CONN_CLOSING) {
        mw_http_parser_free(c->http);
        c->http = NULL;
        if (len > 0)
            on_ws_data(c, data, len); /* frames sent right after the request */
        else
            after_ws_io(c); /* on_connect may have closed it */
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    mw_conn_t *c = h->data;
    /* One buffer per loop: every read is fully consumed before the next. */
    *buf = uv_buf_init(c->server->readbuf, (unsigned)c->server->readbuf_size);
}

/* on_plain takes bytes as the HTTP and WebSocket layers see them: straight
 * from the socket, or decrypted by TLS. Inlined into both readers. */
static inline __attribute__((always_inline)) void on_plain(mw_conn_t *c, const char *data,
                                                           size_t len) {
    switch (c->state) {
    case CONN_HTTP: on_http_data(c, data, len); break;
    case CONN_UPGRADING: keep_early(c, data, len); break;
    case CONN_OPEN:
    case CONN_CLOSING: on_ws_data(c, data, len); break;
    default: break; /* draining or lingering: the peer's bytes no longer matter */
    }
}

static int on_tls_plain(void *data, const char *plain, size_t len) {
    mw_conn_t *c = data;
    on_plain(c, plain, len);
    return c->state >= CONN_DRAINING; /* stop decrypting what nobody reads */
}

/* on_tls_read decrypts a read. A failed handshake or a bad record ends
 * only this connection: the alert OpenSSL queued is sent, then the usual
 * drain and shutdown. */
static void on_tls_read(mw_conn_t *c, const char *data, size_t len) {
    int rc = mw_tls_feed(c->tls, data, len, c->server->tls_buf, MW_TLS_RECORD_MAX, on_tls_plain, c);
    if (c->state == CONN_CLOSED)
        return;
    if (rc == MW_ETLS) {
        if (mw_log_enabled(MW_LOG_DEBUG)) {
            char addr[48];
            int port = peer_name(c, addr, sizeof addr);
            mw_log_debug("TLS %s from %s:%d: %s",
                         c->state == CONN_HTTP ? "handshake failed" : "error", addr, port,
                         mw_tls_reason(c->tls));
        }
        start_draining(c);
        return;
    }
    if (rc == MW_ECLOSED && c->state < CONN_DRAINING) {
        close_now(c); /* close_notify without a WebSocket close: as EOF */
        return;
    }
    if (mw_tls_output(c->tls)->bytes > 0)
        schedule_flush(c); /* handshake records, tickets */
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
    mw_conn_t *c = stream->data;
    if (nread < 0) {
        close_now(c); /* EOF or reset: the peer is gone */
        return;
    }
    if (nread == 0)
        return;
    if (c->tls && c->state <= CONN_CLOSING)
        on_tls_read(c, buf->base, (size_t)nread);
    else
        on_plain(c, buf->base, (size_t)nread);
    if (c->state != CONN_CLOSED)
        update_read_pause(c);
}

/* peer_sockaddr reads the peer's address: the socket's, or for an adopted
 * socket the address it was adopted with. Returns 0 or -1. */
static int peer_sockaddr(const mw_conn_t *c, struct sockaddr_storage *ss) {
    if (c->x && c->x->peer_addr) {
        const char *a = c->x->peer_addr;
        if (strchr(a, ':'))
            return uv_ip6_addr(a, c->x->peer_port, (struct sockaddr_in6 *)ss) == 0 ? 0 : -1;
        return uv_ip4_addr(a, c->x->peer_port, (struct sockaddr_in *)ss) == 0 ? 0 : -1;
    }
    int sslen = sizeof *ss;
    return uv_tcp_getpeername(&c->tcp, (struct sockaddr *)ss, &sslen) == 0 ? 0 : -1;
}

/* admit applies the accept-time limits (admission.c) to a new connection. */
static void admit(mw_conn_t *c) {
    mw_server_t *s = c->server;
    struct sockaddr_storage ss;
    int known = peer_sockaddr(c, &ss) == 0;
    mw_ipkey_t key;
    mw_refusal_t r;
    int counted;
    switch (
        mw_admission_accept(s, known ? (const struct sockaddr *)&ss : NULL, &key, &counted, &r)) {
    case MW_ADMIT:
        if (counted) {
            mw_conn_extra_t *x = extra(c);
            if (!x) {
                mw_admission_release(s, &key);
                close_now(c);
                return;
            }
            x->ip = key;
            x->ip_admitted = 1;
        }
        return;
    case MW_ADMIT_REFUSE: refuse(c, r.status, r.headers, r.why); return;
    case MW_ADMIT_DROP:
        s->refused_total++;
        close_now(c);
        return;
    }
}

/* conn_new makes a connection in HTTP state on the server's lists, its
 * TCP handle initialised but not yet holding a socket. */
static mw_conn_t *conn_new(mw_server_t *s) {
    mw_conn_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->server = s;
    mw_list_init(&c->link);
    mw_list_init(&c->timed);
    mw_list_init(&c->flush);
    mw_list_init(&c->awake);
    mw_outq_init(&c->outq);
    uv_tcp_init(s->loop, &c->tcp);
    c->tcp.data = c;
    c->state = CONN_HTTP;
    mw_room_client_init(&c->rooms, c);
    c->dedupe = s->cfg->dedupe;
    mw_list_insert_tail(&s->conns, &c->link);
    s->nconns++;
    return c;
}

/* conn_start begins reading a connection that holds its socket: the
 * handshake deadline, then the admission checks. */
static int conn_start(mw_conn_t *c, mw_tls_ctx_t *tls) {
    mw_server_t *s = c->server;
    if (mw_http_parser_create(&c->http, (size_t)s->cfg->max_header_bytes) != 0 ||
        (tls && mw_tls_create(&c->tls, tls) != 0)) {
        close_now(c);
        return MW_EIO;
    }
    mw_http_parser_set_max_body(c->http, (size_t)s->cfg->http_max_body);
    uv_tcp_nodelay(&c->tcp, 1); /* fails harmlessly on an adopted Unix socket */
    set_deadline(c, s->cfg->handshake_timeout);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        close_now(c);
        return MW_EIO;
    }
    admit(c);
    return 0;
}

int mw_conn_accept(mw_server_t *s, uv_stream_t *listener, mw_tls_ctx_t *tls) {
    mw_conn_t *c = conn_new(s);
    if (!c)
        return MW_ENOMEM;
    c->api_port = listener == (uv_stream_t *)&s->api_listener;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        close_now(c);
        return MW_EIO;
    }
    return conn_start(c, tls);
}

int mw_conn_adopt(mw_server_t *s, int fd, const char *peer_addr, int peer_port) {
    mw_conn_t *c = conn_new(s);
    if (!c) {
        close(fd);
        return MW_ENOMEM;
    }
    mw_conn_extra_t *x = extra(c);
    if (!x || !(x->peer_addr = strdup(peer_addr ? peer_addr : "unknown"))) {
        close(fd); /* the server owns fd from the call on */
        close_now(c);
        return MW_ENOMEM;
    }
    x->peer_port = peer_port;
    if (uv_tcp_open(&c->tcp, fd) != 0) {
        close(fd);
        close_now(c);
        return MW_EIO;
    }
    return conn_start(c, NULL);
}

int mw_conn_is_open(const mw_conn_t *c) {
    return c->state == CONN_OPEN && (!c->ws || mw_ws_can_send(c->ws));
}

uint64_t mw_conn_id(const mw_conn_t *c) {
    return c->id;
}

uint64_t mw_conn_request_id(const mw_conn_t *c) {
    return c->state == CONN_HTTP && c->http_phase == HTTP_APP && c->x ? c->x->request_id : 0;
}

int mw_conn_peer(const mw_conn_t *c, char *buf, size_t len) {
    return peer_name(c, buf, len);
}

mw_room_client_t *mw_conn_rooms(mw_conn_t *c) {
    return &c->rooms;
}

int mw_conn_join(mw_conn_t *c, const char *name, size_t len, char *moved_from) {
    mw_server_t *s = c->server;
    uint64_t h = 0;
    int claimed = 0;
    /* The place is taken first, then the sum checked: two workers racing
     * for a room's last place may both refuse, never both admit. */
    if (shared_rooms(s) && !mw_rooms_is_member(s->rooms, &c->rooms, name, len)) {
        h = mw_shlimits_hash(s->limits, name, len);
        claimed = 1;
        if (mw_shlimits_room_claim(s->limits, h) > (uint32_t)s->cfg->max_connections_per_room) {
            mw_shlimits_room_release(s->limits, h);
            return MW_EFULL;
        }
    }
    int n = mw_rooms_join(s->rooms, &c->rooms, name, len, moved_from);
    if (n < 0 && claimed)
        mw_shlimits_room_release(s->limits, h);
    else if (n >= 0 && moved_from[0] && shared_rooms(s))
        mw_shlimits_room_release(s->limits,
                                 mw_shlimits_hash(s->limits, moved_from, strlen(moved_from)));
    return n;
}

int mw_conn_leave(mw_conn_t *c, const char *name, size_t len) {
    mw_server_t *s = c->server;
    int n = mw_rooms_leave(s->rooms, &c->rooms, name, len);
    if (n >= 0 && shared_rooms(s))
        mw_shlimits_room_release(s->limits, mw_shlimits_hash(s->limits, name, len));
    return n;
}

int mw_conn_set_dedupe(mw_conn_t *c, int on) {
    c->dedupe = on ? 1 : 0;
    if (!on && c->x)
        mw_dedupe_clear(&c->x->seen);
    return 0;
}

void mw_conn_stats(const mw_conn_t *c, size_t *buffered, uint64_t *dropped) {
    *buffered = c->outq.bytes;
    *dropped = c->x ? c->x->dropped : 0;
}

int mw_conn_deliver(mw_conn_t *c, mw_buf_t *frame, uint64_t event_hash) {
    /* OPEN is enough: every way the WebSocket stops accepting messages (a
     * close sent or received, a failure) moves the connection out of OPEN
     * before any other Lua code runs, so the ws struct need not be read. */
    if (c->state != CONN_OPEN)
        return MW_ECLOSED;
    mw_server_t *s = c->server;
    if ((long long)c->outq.bytes > s->cfg->max_buffered_bytes) {
        mw_conn_extra_t *x = extra(c);
        if (x)
            x->dropped++;
        s->dropped_total++;
        if (s->cfg->slow_consumer_policy[0] == 'c') {
            mw_log_info("client %llu: closing a slow consumer (%zu bytes queued)",
                        (unsigned long long)c->id, c->outq.bytes);
            mw_conn_close(c, 1013, "slow consumer", 13);
        }
        return MW_ESLOW;
    }
    if (event_hash && c->dedupe) {
        mw_conn_extra_t *x = extra(c);
        if (x && mw_dedupe_check(&x->seen, (uint32_t)s->cfg->event_cache_max_size, event_hash))
            return MW_EDUP;
    }
    if (mw_outq_push(&c->outq, frame) != 0)
        return MW_ENOMEM;
    schedule_flush(c);
    return 0;
}

int mw_conn_send(mw_conn_t *c, int binary, const void *data, size_t len) {
    if (c->state != CONN_OPEN)
        return MW_ECLOSED;
    if (ensure_ws(c) != 0)
        return MW_ENOMEM;
    int rc = mw_ws_send(c->ws, binary, data, len);
    if (rc == 0) {
        c->server->counters.messages_sent++;
        c->server->counters.bytes_sent += len;
    } else if (rc == MW_ENOMEM) {
        after_ws_io(c); /* part of a frame may be queued: drain and close */
    }
    return rc;
}

int mw_conn_close(mw_conn_t *c, uint16_t code, const char *reason, size_t len) {
    if (c->state == CONN_OPEN) {
        if (ensure_ws(c) != 0) {
            close_now(c);
            return 0;
        }
        int rc = mw_ws_close(c->ws, code, reason, len);
        if (rc != 0)
            return rc;
        after_ws_io(c);
        return 0;
    }
    if (c->state == CONN_HTTP) {
        close_now(c);
        return 0;
    }
    return MW_ECLOSED;
}

void mw_conn_heartbeat(mw_conn_t *c, uint64_t now_ms) {
    if (c->state != CONN_OPEN)
        return;
    mw_server_t *s = c->server;
    const mw_config_t *cfg = s->cfg;
    uint32_t now = (uint32_t)now_ms;
    if (c->ping_sent) {
        if ((int32_t)(c->last_heard - c->ping_sent) >= 0) {
            c->ping_sent = 0; /* the client spoke since: it is alive */
        } else if (now - c->ping_sent >= (uint32_t)cfg->pong_timeout) {
            /* A peer that cannot answer a ping would not read a close frame
             * either: drop it (Lua sees 1006, abnormal closure). */
            mw_log_info("client %llu: no pong within %d ms; dropping it", (unsigned long long)c->id,
                        cfg->pong_timeout);
            close_now(c);
            return;
        }
    }
    if (cfg->inactive_time && now - c->last_message >= (uint32_t)cfg->inactive_time) {
        mw_log_info("client %llu: no message for %d ms; closing it", (unsigned long long)c->id,
                    cfg->inactive_time);
        mw_conn_close(c, 1000, "inactive", 8);
        return;
    }
    if (cfg->ping_interval && !c->ping_sent &&
        now - c->last_heard >= (uint32_t)cfg->ping_interval && s->ping_frame) {
        if (mw_outq_push(&c->outq, s->ping_frame) != 0)
            return;
        schedule_flush(c);
        c->ping_sent = now ? now : 1;
        /* For clients whose code cannot see protocol pings (a browser's
         * JavaScript): the app protocol's ping event too. */
        if (cfg->app_ping)
            send_reply(c, MW_REPLY_PING);
    }
}

void mw_conn_tick(mw_conn_t *c, uint64_t now) {
    if (!c->deadline || now < c->deadline)
        return;
    switch (c->state) {
    case CONN_HTTP:
        if (c->http_phase != HTTP_READING) {
            close_now(c); /* a kept-alive connection idle for http_keepalive_timeout */
            break;
        }
        if (mw_log_enabled(MW_LOG_DEBUG)) {
            char addr[48];
            int port = peer_name(c, addr, sizeof addr);
            mw_log_debug("handshake timeout for %s:%d", addr, port);
        }
        respond_text(c, 408, NULL, "request timeout");
        break;
    case CONN_UPGRADING: /* the app did not decide within handshake_timeout */
        mw_log_warn("client %llu: no decision on its upgrade within handshake_timeout; "
                    "answering 503",
                    (unsigned long long)c->id);
        unaccept(c);
        respond_text(c, 503, "Retry-After: 1\r\n", "authentication timed out");
        break;
    case CONN_OPEN: { /* an expiry set from Lua (authentication timeout, token expiry) */
        char *reason = c->x ? c->x->expiry_reason : NULL;
        uint16_t code = c->x ? c->x->expiry_code : 1008;
        if (c->x)
            c->x->expiry_reason = NULL;
        clear_deadline(c);
        mw_log_info("client %llu: closing: %s", (unsigned long long)c->id,
                    reason ? reason : "expired");
        mw_conn_close(c, code, reason ? reason : "", reason ? strlen(reason) : 0);
        free(reason);
        break;
    }
    default:
        close_now(c); /* no close reply, or the peer never finished */
        break;
    }
}

int mw_conn_throttle(mw_conn_t *c, unsigned slot, uint64_t window_ms, uint64_t max) {
    if (c->state != CONN_OPEN)
        return MW_ECLOSED;
    mw_conn_extra_t *x = extra(c);
    if (!x)
        return MW_ENOMEM;
    return mw_throttle_route(&x->throttle, slot, window_ms, max, mw_server_now(c->server) * 1000);
}

int mw_conn_claim_user(mw_conn_t *c, const char *user, size_t len, uint32_t *count) {
    mw_server_t *s = c->server;
    if (!s->limits)
        return MW_ENOTFOUND;
    if (c->state != CONN_OPEN)
        return MW_ECLOSED;
    mw_conn_extra_t *x = extra(c);
    if (!x)
        return MW_ENOMEM;
    if (x->user_claimed) /* bound to another user before: that one loses it */
        mw_shlimits_user_release(s->limits, x->user_hash);
    x->user_hash = mw_shlimits_hash(s->limits, user, len);
    x->user_claimed = 1;
    *count = mw_shlimits_user_claim(s->limits, x->user_hash);
    return 0;
}

int mw_conn_set_expiry(mw_conn_t *c, int64_t ms, uint16_t code, const char *reason, size_t len) {
    if (c->state != CONN_OPEN)
        return MW_ECLOSED;
    if (ms < 0) {
        if (c->x) {
            free(c->x->expiry_reason);
            c->x->expiry_reason = NULL;
        }
        clear_deadline(c);
        return 0;
    }
    if (!mw_ws_close_valid(code, reason, len))
        return MW_EINVAL;
    mw_conn_extra_t *x = extra(c);
    char *r = malloc(len + 1);
    if (!x || !r) {
        free(r);
        return MW_ENOMEM;
    }
    memcpy(r, reason, len);
    r[len] = '\0';
    free(x->expiry_reason);
    x->expiry_reason = r;
    x->expiry_code = code;
    set_deadline(c, (uint64_t)ms);
    return 0;
}
