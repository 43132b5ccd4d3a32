/*
 * nats.h - a NATS connection on the server's libuv loop.
 *
 * cnats (Debian's libnats-dev) does the protocol; the loop watches its
 * socket (through event-loop hooks of our own, nats.c's evl_t, rather than
 * cnats's libuv adapter). cnats still runs threads of its own: one delivers
 * messages, one runs the connection callbacks; it does not reconnect by
 * itself (its reconnect thread's blocking handshake stalled the loop): the
 * loop does. This module marshals everything those threads report into the
 * loop (a mutex-protected queue and a uv_async_t), so every callback below
 * runs on the loop thread, and runs the two cnats calls that wait on the
 * network (connect, close) on libuv's thread pool. It adds what a server
 * needs: a first connect (and every reconnect) that never blocks the loop,
 * retried with bounded exponential backoff, publishes that fail fast while
 * NATS is down, requests with a timeout on one shared inbox subscription,
 * subscriptions kept across reconnects (and made once the first connect
 * succeeds), each outage logged once, and counters for /metrics.
 * docs/architecture.md ("NATS: where cnats plugs into the loop") has the
 * threads and locks.
 */
#ifndef MW_NATS_H
#define MW_NATS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#define MW_NATS_CONNECT_TIMEOUT_MS 2000 /* default connect (and handshake) timeout */
#define MW_NATS_RECONNECT_MIN_MS 100    /* first retry delay after a failure */
#define MW_NATS_RECONNECT_MAX_MS 5000   /* the delay doubles up to this */

typedef struct mw_nats mw_nats_t;
typedef struct mw_nats_sub mw_nats_sub_t;

typedef struct {
    const char *url;             /* nats://[user[:password]@]host[:port][,nats://...]. Required. */
    const char *name;            /* the client name NATS sees, and the label in logs and /metrics;
                                    NULL: the URL without credentials */
    const char *user;            /* NULL: none (or the URL's) */
    const char *password;        /* with user */
    const char *token;           /* NULL: none */
    uint64_t connect_timeout_ms; /* 0: MW_NATS_CONNECT_TIMEOUT_MS */
    uint64_t reconnect_min_ms;   /* 0: MW_NATS_RECONNECT_MIN_MS */
    uint64_t reconnect_max_ms;   /* 0: MW_NATS_RECONNECT_MAX_MS */
} mw_nats_opts_t;

/* A message, valid during the callback only. reply is NULL when the
 * sender wants no answer; data is not NUL-terminated. */
typedef struct {
    const char *subject;
    const char *reply;
    const char *data;
    size_t len;
} mw_nats_msg_t;

typedef void (*mw_nats_msg_cb)(void *data, const mw_nats_msg_t *m);

/* A request's outcome: exactly one call, with m != NULL and err == 0, or
 * m == NULL and err one of MW_ETIMEOUT, MW_ENORESP (nobody subscribes to
 * the subject), MW_ENOTCONN (the connection was lost meanwhile),
 * MW_ECLOSED (mw_nats_free). */
typedef void (*mw_nats_reply_cb)(void *data, const mw_nats_msg_t *m, int err);

/* mw_nats_check_url tells whether url looks like one mw_nats_create takes
 * (nats:// or tls:// URLs, comma-separated): 0 or MW_EINVAL with err. */
int mw_nats_check_url(const char *url, char *err, size_t errlen);

/* mw_nats_create starts connecting and returns at once: a probe (a
 * non-blocking uv_getaddrinfo and uv_tcp_connect to each URL, within
 * connect_timeout_ms) waits for a server that accepts, then cnats connects
 * on libuv's thread pool (its handshake, within connect_timeout_ms); failed
 * attempts are retried from a timer with backoff until one succeeds; a
 * connection lost later is made again the same way. Call it on the loop's
 * thread. Returns 0, MW_EINVAL or MW_ENOMEM; a server that is down is not
 * an error. */
int mw_nats_create(mw_nats_t **out, uv_loop_t *loop, const mw_nats_opts_t *opts, char *err,
                   size_t errlen);

/* mw_nats_free closes the connection: pending requests end with
 * MW_ECLOSED, no callback runs after it returns. The close itself runs on
 * libuv's thread pool while the loop goes on: what was published before is
 * flushed to the server first (bounded by cnats's 500 ms flush timeout),
 * then cnats's threads let go of the handle (bounded) and the memory goes
 * back once the loop has run the close callbacks, so the loop must run on
 * (uv_run until it has nothing left). Safe from inside one of n's
 * callbacks (the close then begins as the callback returns). */
void mw_nats_free(mw_nats_t *n);

/* mw_nats_publish sends data on subject (reply: NULL or the subject an
 * answer should go to). Returns 0, MW_ENOTCONN at once while NATS is down
 * (counted; logged once per outage), MW_EINVAL (bad subject), MW_EIO. */
int mw_nats_publish(mw_nats_t *n, const char *subject, const char *reply, const void *data,
                    size_t len);

/* mw_nats_subscribe calls cb for every message on subject (wildcards * and
 * > allowed); queue non-NULL joins that queue group. It holds across
 * reconnects until mw_nats_unsubscribe. Returns 0 (also while NATS is
 * down: it is made once connected), MW_EINVAL, MW_ENOMEM. */
int mw_nats_subscribe(mw_nats_t *n, const char *subject, const char *queue, mw_nats_msg_cb cb,
                      void *data, mw_nats_sub_t **out);

/* mw_nats_unsubscribe ends a subscription: cb is not called again, even
 * for messages cnats had already queued. */
void mw_nats_unsubscribe(mw_nats_t *n, mw_nats_sub_t *sub);

/* mw_nats_request publishes data on subject with a reply inbox and calls
 * cb once with the first answer, or with an error past timeout_ms (0: the
 * connect timeout). Returns 0 (cb later, never from inside this call), or
 * MW_ENOTCONN / MW_EINVAL / MW_ENOMEM / MW_EIO without calling cb. */
int mw_nats_request(mw_nats_t *n, const char *subject, const void *data, size_t len,
                    uint64_t timeout_ms, mw_nats_reply_cb cb, void *cbdata);

/* mw_nats_connecting tells whether the first attempt to connect is still
 * under way (publishes would fail with MW_ENOTCONN meanwhile). */
int mw_nats_connecting(const mw_nats_t *n);

typedef void (*mw_nats_ready_cb)(void *data, int err);

/* mw_nats_when_ready calls cb once the first attempt has ended (err 0,
 * whether it connected or not; MW_ECLOSED at mw_nats_free). Returns 0, or
 * MW_EINVAL when that attempt is over already (cb is not called),
 * MW_ECLOSED, MW_ENOMEM. */
int mw_nats_when_ready(mw_nats_t *n, mw_nats_ready_cb cb, void *data);

typedef struct {
    uint64_t published;     /* messages published (requests included) */
    uint64_t received;      /* messages delivered to subscriptions and requests */
    uint64_t errors;        /* publishes and requests refused or failed, connect failures */
    uint64_t reconnects;    /* connections established again after a loss or failure */
    uint64_t outages;       /* times NATS became unreachable (a loss, or a first failed connect) */
    uint64_t subscriptions; /* subscriptions now */
} mw_nats_stats_t;

void mw_nats_stats(const mw_nats_t *n, mw_nats_stats_t *st);
int mw_nats_up(const mw_nats_t *n);
/* Why the handle is down ("connecting" during the first attempt), or ""
 * while it is up. */
const char *mw_nats_last_error(const mw_nats_t *n);
const char *mw_nats_name(const mw_nats_t *n);

/* mw_nats_metrics writes the moonwire_nats_* families, one sample
 * (labelled name="...") per handle in ns[0..n). Nothing when n is 0. */
void mw_nats_metrics(FILE *out, mw_nats_t *const *ns, size_t n);

#endif
