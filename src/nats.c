/*
 * nats.c - a NATS connection on the server's libuv loop (see nats.h).
 *
 * Threads: cnats calls on_msg from its message-delivery thread, on_down
 * and on_closed from its callback thread, on_sub_complete from the
 * delivery thread as a subscription ends. cnats never reconnects by itself
 * (its reconnect thread would do a blocking handshake and flush that need
 * the loop to read the server's answer, while the loop may wait on the
 * connection's lock: the loop stalled for seconds): a lost connection is
 * closed, and the loop makes a new one the way it makes the first (a
 * non-blocking probe, then cnats), subscribing again. None of them touches
 * anything but the queue below (n->lock): they append an event and wake the
 * loop (n->async); on_async runs them on the loop thread. Everything else in
 * a handle belongs to the loop thread.
 *
 * The two cnats calls that wait on the network run on libuv's thread pool,
 * never on the loop: natsConnection_Connect (a handshake, however slow the
 * server is to speak) and natsConnection_Close (which flushes what is
 * buffered and waits for the server's PONG, which the loop reads). The loop
 * watches cnats's socket through evl_t below, our own event-loop hooks for
 * cnats: they work from any thread, and they poll a duplicate of the socket,
 * so that cnats closing its descriptor from whatever thread can never leave
 * the loop's epoll with a closed (or reused) descriptor.
 */
#include "nats.h"
#include "errors.h"
#include "list.h"
#include "log.h"
#include "metrics.h"

#include <nats/nats.h>

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FREE_WAIT_MS 5000 /* how long a close waits for cnats's threads */
#define BATCH 1024        /* events run per loop turn */

enum { EV_MSG, EV_DOWN, EV_CLOSED, EV_SUBDONE };

typedef struct ev {
    struct ev *next;
    int type;
    mw_nats_sub_t *sub;
    natsMsg *msg;
    natsConnection *nc; /* EV_CLOSED: the connection that closed */
} ev_t;

struct mw_nats_sub {
    mw_nats_t *n;
    natsSubscription *ns;
    char *subject, *queue;
    mw_nats_msg_cb cb;
    void *data;
    int dead; /* unsubscribed: its messages are dropped, it goes on EV_SUBDONE */
    ev_t done;
    mw_list_t link;
};

typedef struct probe probe_t;
typedef struct cwork cwork_t;

typedef struct waiter {
    struct waiter *next;
    mw_nats_ready_cb cb;
    void *data;
} waiter_t;

typedef struct req {
    mw_nats_t *n;
    uint64_t token;
    mw_nats_reply_cb cb;
    void *data;
    uv_timer_t timer;
    mw_list_t link;
} req_t;

struct mw_nats {
    uv_loop_t *loop;
    uv_thread_t loop_thread;
    natsOptions *opts;
    natsConnection *nc;
    char *name;
    char *urls;        /* the URL list, for the probe */
    probe_t *probe;    /* the probe under way, or NULL */
    cwork_t *cwork;    /* the pool's natsConnection_Connect under way, or NULL */
    int first;         /* the first attempt is under way */
    waiter_t *waiters; /* mw_nats_when_ready's, until it ends */
    uv_async_t async;
    uv_timer_t retry;
    int open_handles;

    /* Shared with cnats's threads, under lock. */
    uv_mutex_t lock;
    uv_cond_t cond;
    ev_t *head, *tail;
    int closed;         /* on_closed ran for n->nc */
    ev_t closed_ev;     /* what on_closed queues (one per connection) */
    uint64_t completed; /* subscriptions whose completion ran */

    /* The loop thread's. */
    uint64_t created; /* cnats subscriptions made */
    int up, closing, dispatching, free_requested;
    int outage;      /* down since the last success; logged once */
    int fail_logged; /* a refused publish was logged in this outage */
    int attempts;    /* connect attempts failed in a row */
    int was_up;      /* connected once: later connects are reconnects */
    int nc_closed;   /* n->nc is closed, waiting for its subscriptions to end */
    uint64_t ctimeout, rmin, rmax;
    char last_error[256];
    mw_list_t subs, reqs;
    mw_nats_sub_t *inbox_sub;
    char inbox[128];
    uint64_t next_token;
    mw_nats_stats_t st;
};

static uv_once_t lib_once = UV_ONCE_INIT;
static void lib_init(void) {
    nats_Open(-1);
}

/* ---- cnats's threads ------------------------------------------------------ */

static void push_ev(mw_nats_t *n, ev_t *e) {
    e->next = NULL;
    uv_mutex_lock(&n->lock);
    if (n->tail)
        n->tail->next = e;
    else
        n->head = e;
    n->tail = e;
    uv_mutex_unlock(&n->lock);
    uv_async_send(&n->async);
}

static void push_simple(mw_nats_t *n, int type, mw_nats_sub_t *sub, natsMsg *msg) {
    ev_t *e = malloc(sizeof *e);
    if (!e) { /* a message is lost, as when cnats drops for a slow consumer */
        if (msg)
            natsMsg_Destroy(msg);
        return;
    }
    e->type = type;
    e->sub = sub;
    e->msg = msg;
    push_ev(n, e);
}

static void on_msg(natsConnection *nc, natsSubscription *ns, natsMsg *msg, void *closure) {
    (void)nc;
    (void)ns;
    mw_nats_sub_t *sub = closure;
    push_simple(sub->n, EV_MSG, sub, msg);
}

static void on_sub_complete(void *closure) {
    mw_nats_sub_t *sub = closure;
    mw_nats_t *n = sub->n;
    sub->done.type = EV_SUBDONE;
    sub->done.sub = sub;
    sub->done.msg = NULL;
    sub->done.next = NULL;
    uv_mutex_lock(&n->lock);
    if (n->tail)
        n->tail->next = &sub->done;
    else
        n->head = &sub->done;
    n->tail = &sub->done;
    n->completed++;
    uv_cond_signal(&n->cond);
    uv_async_send(&n->async); /* under the lock: teardown closes async once it sees this */
    uv_mutex_unlock(&n->lock);
}

static void on_down(natsConnection *nc, void *closure) {
    (void)nc;
    push_simple(closure, EV_DOWN, NULL, NULL);
}

/* on_closed: the connection is closed (lost, as cnats does not reconnect,
 * or by teardown); the loop reconnects on EV_CLOSED. */
static void on_closed(natsConnection *nc, void *closure) {
    mw_nats_t *n = closure;
    n->closed_ev.type = EV_CLOSED;
    n->closed_ev.sub = NULL;
    n->closed_ev.msg = NULL;
    n->closed_ev.nc = nc;
    n->closed_ev.next = NULL;
    uv_mutex_lock(&n->lock);
    n->closed = 1;
    if (n->tail)
        n->tail->next = &n->closed_ev;
    else
        n->head = &n->closed_ev;
    n->tail = &n->closed_ev;
    uv_cond_signal(&n->cond);
    uv_async_send(&n->async); /* under the lock: teardown closes async once it sees this */
    uv_mutex_unlock(&n->lock);
}

static uint64_t backoff(const mw_nats_t *n, int attempts) {
    uint64_t d = n->rmin;
    for (int i = 1; i < attempts && d < n->rmax; i++)
        d *= 2;
    return d < n->rmax ? d : n->rmax;
}

/* ---- cnats's event-loop hooks ---------------------------------------------
 *
 * cnats (with natsOptions_SetEventLoop) reads and writes its socket when
 * told it is readable or writable, and calls these hooks to say what it
 * wants watched: attach once connected, read/write to add or remove
 * interest, detach when the connection closes. It calls them from whatever
 * thread it is on (the pool's connect and close, its flusher and timer
 * threads, the loop's own read and write events), holding the connection's
 * lock except for detach. One evl_t per connection:
 * - The loop watches a duplicate of cnats's socket (F_DUPFD_CLOEXEC). cnats
 *   closes its own descriptor as the connection closes, from any thread,
 *   before it detaches; with the poll on the duplicate, the loop's epoll
 *   never holds a closed descriptor (libuv aborts on EBADF) nor one that
 *   the number was given to again (closing the poll would unregister
 *   somebody else's socket). The duplicate goes when the poll is closed.
 * - What cnats wants is a state (want) under qlock; a hook called off the
 *   loop sets it and wakes the loop (async, sent under qlock so that the
 *   loop cannot close the async meanwhile), a hook on the loop applies it
 *   at once. Only the last state matters, so nothing is queued.
 * - on_poll calls into cnats with dlock held, and detach from another
 *   thread takes dlock before saying it is detached: once detach returns,
 *   no poll callback touches the connection, which cnats may then free.
 *   Lock order: dlock, the connection's lock, qlock. */

typedef struct evl {
    uv_loop_t *loop;
    uv_thread_t loop_thread;
    natsConnection *nc; /* set by attach */
    uv_poll_t poll;
    uv_async_t async;
    int fd;      /* the duplicate the poll watches; -1 before attach */
    int polling; /* the loop's: poll initialised */
    int in_poll; /* the loop's: inside on_poll (holding dlock) */
    int closing; /* the loop's: its handles are being closed */
    int open;    /* handles not closed yet */

    uv_mutex_t qlock; /* what cnats wants, from any thread */
    int want;         /* UV_READABLE | UV_WRITABLE */
    int attached;     /* attach ran */
    int detach;       /* detach ran */
    int shut;         /* the loop closes async: no more uv_async_send */

    uv_mutex_t dlock; /* on_poll vs. a detach from another thread */
    int detached;
} evl_t;

static int on_loop_thread(const evl_t *e) {
    uv_thread_t self = uv_thread_self();
    return uv_thread_equal(&self, &e->loop_thread);
}

static void evl_closed(uv_handle_t *h) {
    evl_t *e = h->data;
    if (--e->open > 0)
        return;
    if (e->fd >= 0)
        close(e->fd);
    uv_mutex_destroy(&e->qlock);
    uv_mutex_destroy(&e->dlock);
    free(e);
}

/* evl_close closes the poll and the async; e goes once both are closed. */
static void evl_close(evl_t *e) {
    if (e->closing)
        return;
    e->closing = 1;
    uv_mutex_lock(&e->qlock);
    e->shut = 1;
    uv_mutex_unlock(&e->qlock);
    if (e->polling)
        uv_close((uv_handle_t *)&e->poll, evl_closed);
    uv_close((uv_handle_t *)&e->async, evl_closed);
}

static void on_poll(uv_poll_t *h, int status, int events) {
    evl_t *e = h->data;
    uv_mutex_lock(&e->dlock);
    if (e->detached) {
        uv_poll_stop(h);
    } else {
        e->in_poll = 1;
        if (status < 0 || (events & (UV_READABLE | UV_DISCONNECT)))
            natsConnection_ProcessReadEvent(e->nc); /* an error, too: cnats finds it */
        if (!e->detached && status == 0 && (events & UV_WRITABLE))
            natsConnection_ProcessWriteEvent(e->nc);
        e->in_poll = 0;
    }
    uv_mutex_unlock(&e->dlock);
}

/* evl_apply (loop thread) makes the poll watch what cnats wants now, or
 * closes everything once cnats has detached. */
static void evl_apply(evl_t *e) {
    if (e->closing)
        return;
    uv_mutex_lock(&e->qlock);
    int want = e->want, detach = e->detach;
    uv_mutex_unlock(&e->qlock);
    if (detach) {
        evl_close(e);
    } else if (e->polling) {
        if (want)
            uv_poll_start(&e->poll, want, on_poll);
        else
            uv_poll_stop(&e->poll);
    }
}

static void evl_on_async(uv_async_t *a) {
    evl_apply(a->data);
}

/* evl_new (loop thread) makes the hooks' state for the next connection. */
static evl_t *evl_new(mw_nats_t *n) {
    evl_t *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->loop = n->loop;
    e->loop_thread = n->loop_thread;
    e->fd = -1;
    if (uv_mutex_init(&e->qlock) != 0) {
        free(e);
        return NULL;
    }
    if (uv_mutex_init(&e->dlock) != 0) {
        uv_mutex_destroy(&e->qlock);
        free(e);
        return NULL;
    }
    uv_async_init(n->loop, &e->async, evl_on_async);
    e->async.data = e;
    e->open = 1;
    return e;
}

/* evl_start (loop thread, once cnats has connected) starts polling the
 * duplicate attach made. Returns 0 or a libuv error. */
static int evl_start(evl_t *e) {
    uv_mutex_lock(&e->qlock);
    int fd = e->fd;
    uv_mutex_unlock(&e->qlock);
    if (fd < 0)
        return UV_EBADF;
    int rc = uv_poll_init(e->loop, &e->poll, fd);
    if (rc != 0)
        return rc;
    e->poll.data = e;
    e->polling = 1;
    e->open++;
    evl_apply(e);
    return 0;
}

/* ev_attach: cnats connected (on the pool's thread); loop is our evl_t. */
static natsStatus ev_attach(void **userData, void *loop, natsConnection *nc, natsSock sock) {
    evl_t *e = loop;
    if (*userData) /* a second attach would be cnats reconnecting, which it does not */
        return NATS_ILLEGAL_STATE;
    int fd = fcntl(sock, F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
        return NATS_SYS_ERROR;
    e->nc = nc;
    uv_mutex_lock(&e->qlock);
    e->fd = fd;
    e->want = UV_READABLE;
    e->attached = 1;
    uv_mutex_unlock(&e->qlock);
    *userData = e; /* the loop starts polling in connect_done */
    return NATS_OK;
}

static natsStatus ev_update(evl_t *e, int flag, bool add) {
    int here = on_loop_thread(e);
    uv_mutex_lock(&e->qlock);
    if (add)
        e->want |= flag;
    else
        e->want &= ~flag;
    if (!here && !e->shut)
        uv_async_send(&e->async);
    uv_mutex_unlock(&e->qlock);
    if (here)
        evl_apply(e);
    return NATS_OK;
}

static natsStatus ev_read(void *userData, bool add) {
    return ev_update(userData, UV_READABLE, add);
}

static natsStatus ev_write(void *userData, bool add) {
    return ev_update(userData, UV_WRITABLE, add);
}

/* ev_detach: the connection is closed; cnats will not call the hooks
 * again and may free nc as soon as this returns. */
static natsStatus ev_detach(void *userData) {
    evl_t *e = userData;
    int here = on_loop_thread(e);
    if (here && e->in_poll) {
        e->detached = 1; /* this thread holds dlock, in on_poll */
    } else {
        uv_mutex_lock(&e->dlock); /* waits for a poll callback under way */
        e->detached = 1;
        uv_mutex_unlock(&e->dlock);
    }
    uv_mutex_lock(&e->qlock);
    e->detach = 1;
    e->want = 0;
    if (!here && !e->shut)
        uv_async_send(&e->async);
    uv_mutex_unlock(&e->qlock);
    if (here)
        evl_apply(e);
    return NATS_OK;
}

/* ---- the loop thread ---------------------------------------------------------- */

static int do_subscribe(mw_nats_t *n, mw_nats_sub_t *sub) {
    natsStatus s =
        sub->queue
            ? natsConnection_QueueSubscribe(&sub->ns, n->nc, sub->subject, sub->queue, on_msg, sub)
            : natsConnection_Subscribe(&sub->ns, n->nc, sub->subject, on_msg, sub);
    if (s != NATS_OK) {
        sub->ns = NULL;
        return s == NATS_INVALID_SUBJECT || s == NATS_INVALID_ARG ? MW_EINVAL : MW_EIO;
    }
    if (natsSubscription_SetOnCompleteCB(sub->ns, on_sub_complete, sub) != NATS_OK) {
        /* Closed already: the connection went (a cnats timer thread found
         * it stale) between the two calls. No completion will come; it is
         * made again on the next connection. */
        natsSubscription_Destroy(sub->ns);
        sub->ns = NULL;
        return MW_EIO;
    }
    n->created++;
    natsSubscription_SetPendingLimits(sub->ns, -1, -1); /* never drop for a slow consumer */
    return 0;
}

static void on_retry(uv_timer_t *t);

/* first_over ends the first attempt: its waiters hear err (0: it ended,
 * connected or not). */
static void first_over(mw_nats_t *n, int err) {
    n->first = 0;
    waiter_t *w = n->waiters;
    n->waiters = NULL;
    while (w) {
        waiter_t *next = w->next;
        w->cb(w->data, err);
        free(w);
        w = next;
    }
}

/* connect_failed counts a failed attempt before the first success (the
 * retries after a loss are not errors of the app's), logs the first of an
 * outage and schedules the next one. */
static void connect_failed(mw_nats_t *n) {
    if (!n->was_up)
        n->st.errors++;
    if (!n->outage) {
        n->outage = 1;
        n->st.outages++;
        mw_log_warn("nats %s: cannot connect (%s); retrying with backoff up to %llums", n->name,
                    n->last_error, (unsigned long long)n->rmax);
    }
    n->attempts++;
    uv_timer_start(&n->retry, on_retry, backoff(n, n->attempts), 0);
    first_over(n, 0);
}

static void install(mw_nats_t *n, natsConnection *nc);

/* A connect on the pool: natsConnection_Connect waits for the server's
 * handshake, which the loop must not. */
struct cwork {
    uv_work_t req;
    mw_nats_t *n;
    evl_t *e;
    natsConnection *nc; /* NULL: it failed (err) */
    char err[256];
};

static void connect_work(uv_work_t *req) {
    cwork_t *w = req->data;
    natsStatus s = natsConnection_Connect(&w->nc, w->n->opts);
    if (s != NATS_OK) {
        const char *last = nats_GetLastError(NULL); /* this thread's */
        snprintf(w->err, sizeof w->err, "%s", last && *last ? last : natsStatus_GetText(s));
        w->nc = NULL;
    }
}

static void close_start(mw_nats_t *n);
static void finish(mw_nats_t *n);

/* connect_done (loop thread): the connection goes to the handle, or the
 * attempt failed; a handle freed meanwhile goes on with its teardown. */
static void connect_done(uv_work_t *req, int status) {
    cwork_t *w = req->data;
    mw_nats_t *n = w->n;
    evl_t *e = w->e;
    natsConnection *nc = status == 0 ? w->nc : NULL;
    n->cwork = NULL;
    if (!nc) {
        evl_close(e); /* never attached, or cnats detached it already */
        if (n->closing) {
            finish(n);
        } else {
            snprintf(n->last_error, sizeof n->last_error, "%s", w->err[0] ? w->err : "cancelled");
            connect_failed(n);
        }
        free(w);
        return;
    }
    free(w);
    int rc = evl_start(e);
    if (rc != 0) {
        /* Cannot watch the socket (out of memory): close the connection on
         * the loop (nothing is buffered yet, so cnats does not wait on the
         * network) and wait for its close callback, bounded, so that it
         * cannot cross the next connection's. */
        n->nc = nc;
        natsConnection_Close(nc);
        uint64_t deadline = uv_hrtime() + (uint64_t)FREE_WAIT_MS * 1000000;
        uv_mutex_lock(&n->lock);
        while (!n->closed && uv_hrtime() < deadline)
            uv_cond_timedwait(&n->cond, &n->lock, 100 * 1000000);
        uv_mutex_unlock(&n->lock);
        n->nc = NULL;
        natsConnection_Destroy(nc);
        if (n->closing) {
            finish(n);
        } else {
            snprintf(n->last_error, sizeof n->last_error, "cannot watch the socket: %s",
                     uv_strerror(rc));
            connect_failed(n);
        }
        return;
    }
    if (n->closing) {
        n->nc = nc;
        close_start(n);
        return;
    }
    install(n, nc);
    uv_async_send(&n->async); /* what cnats's threads queued meanwhile */
}

/* connect_now makes a connection with cnats, on the pool: only once a
 * probe has reached a server that accepts. */
static void connect_now(mw_nats_t *n) {
    evl_t *e = evl_new(n);
    cwork_t *w = e ? calloc(1, sizeof *w) : NULL;
    if (!w ||
        natsOptions_SetEventLoop(n->opts, e, ev_attach, ev_read, ev_write, ev_detach) != NATS_OK) {
        if (e)
            evl_close(e);
        free(w);
        snprintf(n->last_error, sizeof n->last_error, "out of memory");
        connect_failed(n);
        return;
    }
    uv_mutex_lock(&n->lock);
    n->closed = 0; /* the previous connection's close has been handled */
    uv_mutex_unlock(&n->lock);
    w->n = n;
    w->e = e;
    w->req.data = w;
    n->cwork = w;
    uv_queue_work(n->loop, &w->req, connect_work, connect_done);
}

/* install makes nc the handle's connection: up, subscriptions made. */
static void install(mw_nats_t *n, natsConnection *nc) {
    n->nc = nc;
    n->up = 1;
    n->last_error[0] = '\0';
    if (n->outage) {
        n->st.reconnects++;
        if (n->was_up)
            mw_log_info("nats %s: reconnected; subscriptions restored", n->name);
        else
            mw_log_info("nats %s: connected", n->name);
    }
    n->was_up = 1;
    n->outage = n->fail_logged = n->attempts = 0;
    for (mw_list_t *l = n->subs.next; l != &n->subs; l = l->next) {
        mw_nats_sub_t *sub = mw_list_entry(l, mw_nats_sub_t, link);
        if (!sub->ns && do_subscribe(n, sub) != 0)
            mw_log_warn("nats %s: cannot subscribe to %s", n->name, sub->subject);
    }
    first_over(n, 0);
}

/* ---- the probe: a non-blocking TCP connect before cnats's blocking one ---- */

/* A probe resolves (uv_getaddrinfo) and connects (uv_tcp_connect) to each
 * URL in turn until one accepts, within the connect timeout; then cnats
 * connects. It lives on its own: when the handle goes first, p->n is NULL
 * and the probe frees itself once its handles and request are done. */
struct probe {
    mw_nats_t *n;
    const char *urls; /* the handle's url list (n->urls) */
    const char *next; /* the URL to try next, in urls */
    uv_getaddrinfo_t gai;
    uv_connect_t creq;
    uv_tcp_t tcp;
    uv_timer_t timer;
    int gai_pending, tcp_open, timer_open;
};

static void probe_url(probe_t *p);

static void probe_maybe_free(probe_t *p) {
    if (!p->n && !p->gai_pending && !p->tcp_open && !p->timer_open)
        free(p);
}

static void probe_timer_closed(uv_handle_t *h) {
    probe_t *p = h->data;
    p->timer_open = 0;
    probe_maybe_free(p);
}

static void probe_tcp_closed(uv_handle_t *h) {
    probe_t *p = h->data;
    p->tcp_open = 0;
    if (p->n)
        probe_url(p); /* that one refused: the next URL */
    else
        probe_maybe_free(p);
}

/* probe_detach ends the probe's link with its handle: everything it has
 * open is closed, and it frees itself. */
static void probe_detach(probe_t *p) {
    p->n->probe = NULL;
    p->n = NULL;
    uv_close((uv_handle_t *)&p->timer, probe_timer_closed);
    if (p->tcp_open && !uv_is_closing((uv_handle_t *)&p->tcp))
        uv_close((uv_handle_t *)&p->tcp, probe_tcp_closed);
    if (p->gai_pending)
        uv_cancel((uv_req_t *)&p->gai);
    probe_maybe_free(p);
}

static void probe_end(probe_t *p, int ok, const char *why) {
    mw_nats_t *n = p->n;
    probe_detach(p);
    if (ok) {
        connect_now(n);
    } else {
        if (why != n->last_error)
            snprintf(n->last_error, sizeof n->last_error, "%s", why);
        connect_failed(n);
    }
}

static void on_probe_timeout(uv_timer_t *t) {
    probe_end(t->data, 0, "connect timeout");
}

static void on_probe_connect(uv_connect_t *req, int status) {
    probe_t *p = req->data;
    if (p->n && status == 0) {
        probe_end(p, 1, NULL);
        return;
    }
    if (p->n)
        snprintf(p->n->last_error, sizeof p->n->last_error, "%s", uv_strerror(status));
    if (!uv_is_closing((uv_handle_t *)&p->tcp))
        uv_close((uv_handle_t *)&p->tcp, probe_tcp_closed);
}

static void on_probe_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
    probe_t *p = req->data;
    p->gai_pending = 0;
    if (!p->n) {
        uv_freeaddrinfo(res);
        probe_maybe_free(p);
        return;
    }
    int rc = status;
    if (rc == 0 && (rc = uv_tcp_init(p->n->loop, &p->tcp)) == 0) {
        p->tcp_open = 1;
        p->tcp.data = p;
        p->creq.data = p;
        rc = uv_tcp_connect(&p->creq, &p->tcp, res->ai_addr, on_probe_connect);
    }
    uv_freeaddrinfo(res);
    if (rc == 0)
        return;
    snprintf(p->n->last_error, sizeof p->n->last_error, "%s", uv_strerror(rc));
    if (p->tcp_open)
        uv_close((uv_handle_t *)&p->tcp, probe_tcp_closed);
    else
        probe_url(p);
}

/* probe_url starts on the next URL of the list, or ends the probe (failed)
 * when none is left. */
static void probe_url(probe_t *p) {
    while (*p->next == ' ' || *p->next == ',')
        p->next++;
    if (!*p->next) {
        probe_end(p, 0, p->n->last_error[0] ? p->n->last_error : "no server");
        return;
    }
    const char *end = strchr(p->next, ',');
    end = end ? end : p->next + strlen(p->next);
    const char *h = strstr(p->next, "://");
    h = h && h < end ? h + 3 : p->next;
    const char *at = memchr(h, '@', (size_t)(end - h));
    if (at)
        h = at + 1;
    char host[256], port[8] = "4222";
    const char *he, *rest;
    if (*h == '[') {
        h++;
        he = memchr(h, ']', (size_t)(end - h));
        he = he ? he : end;
        rest = he < end ? he + 1 : end;
    } else {
        he = h;
        while (he < end && *he != ':' && *he != '/')
            he++;
        rest = he;
    }
    snprintf(host, sizeof host, "%.*s", (int)(he - h), h);
    if (rest < end && *rest == ':') {
        size_t k = 0;
        for (rest++; rest < end && k < sizeof port - 1 && *rest >= '0' && *rest <= '9'; rest++)
            port[k++] = *rest;
        port[k] = '\0';
    }
    p->next = end;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    p->gai.data = p;
    int rc = uv_getaddrinfo(p->n->loop, &p->gai, on_probe_resolved, host, port, &hints);
    if (rc == 0) {
        p->gai_pending = 1;
        return;
    }
    snprintf(p->n->last_error, sizeof p->n->last_error, "%s", uv_strerror(rc));
    probe_url(p);
}

/* try_connect starts one attempt at a connection, the first or one after
 * a loss: a probe, then cnats. */
static void try_connect(mw_nats_t *n) {
    probe_t *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(n->last_error, sizeof n->last_error, "out of memory");
        connect_failed(n);
        return;
    }
    p->n = n;
    p->urls = p->next = n->urls;
    n->probe = p;
    uv_timer_init(n->loop, &p->timer);
    p->timer.data = p;
    p->timer_open = 1;
    uv_timer_start(&p->timer, on_probe_timeout, n->ctimeout, 0);
    probe_url(p);
}

static void on_retry(uv_timer_t *t) {
    mw_nats_t *n = t->data;
    if (!n->closing)
        try_connect(n);
}

static void sub_destroy(mw_nats_sub_t *sub) {
    if (sub->ns)
        natsSubscription_Destroy(sub->ns);
    free(sub->subject);
    free(sub->queue);
    free(sub);
}

static void req_closed(uv_handle_t *h) {
    free(h->data);
}

/* req_end removes r and calls its callback once. */
static void req_end(req_t *r, const mw_nats_msg_t *m, int err) {
    mw_list_remove(&r->link);
    uv_timer_stop(&r->timer);
    r->timer.data = r;
    uv_close((uv_handle_t *)&r->timer, req_closed);
    if (err && err != MW_ECLOSED)
        r->n->st.errors++;
    r->cb(r->data, m, err);
}

static void on_req_timeout(uv_timer_t *t) {
    req_end(t->data, NULL, MW_ETIMEOUT);
}

static void on_reply(mw_nats_t *n, natsMsg *msg) {
    const char *subj = natsMsg_GetSubject(msg);
    const char *dot = strrchr(subj, '.');
    uint64_t token = dot ? strtoull(dot + 1, NULL, 10) : 0;
    for (mw_list_t *l = n->reqs.next; l != &n->reqs; l = l->next) {
        req_t *r = mw_list_entry(l, req_t, link);
        if (r->token != token)
            continue;
        if (natsMsg_IsNoResponders(msg)) {
            req_end(r, NULL, MW_ENORESP);
            return;
        }
        n->st.received++;
        mw_nats_msg_t m = {subj, natsMsg_GetReply(msg), natsMsg_GetData(msg),
                           (size_t)natsMsg_GetDataLength(msg)};
        req_end(r, &m, 0);
        return;
    }
}

/* lost marks the connection down (once per outage, logged) and fails the
 * requests in flight: their answers would go to the lost connection. */
static void lost(mw_nats_t *n) {
    if (n->closing || !n->up)
        return;
    n->up = 0;
    n->outage = 1;
    n->st.outages++;
    snprintf(n->last_error, sizeof n->last_error, "connection lost");
    mw_log_warn("nats %s: connection lost; reconnecting with backoff up to %llums", n->name,
                (unsigned long long)n->rmax);
    while (!mw_list_empty(&n->reqs))
        req_end(mw_list_entry(n->reqs.next, req_t, link), NULL, MW_ENOTCONN);
}

/* maybe_reconnect starts connecting again once the lost connection is
 * closed and each of its subscriptions has ended (a subscription's
 * completion event is reused by its next cnats subscription). */
static void maybe_reconnect(mw_nats_t *n) {
    if (n->closing || !n->nc_closed)
        return;
    for (mw_list_t *l = n->subs.next; l != &n->subs; l = l->next)
        if (mw_list_entry(l, mw_nats_sub_t, link)->ns)
            return;
    n->nc_closed = 0;
    natsConnection_Destroy(n->nc); /* closed: nothing waits on the network */
    n->nc = NULL;
    n->attempts = 0;
    try_connect(n);
}

static void handle_ev(mw_nats_t *n, ev_t *e) {
    mw_nats_sub_t *sub = e->sub;
    switch (e->type) {
    case EV_MSG:
        if (n->closing || sub->dead) {
        } else if (sub == n->inbox_sub) {
            on_reply(n, e->msg);
        } else {
            n->st.received++;
            mw_nats_msg_t m = {natsMsg_GetSubject(e->msg), natsMsg_GetReply(e->msg),
                               natsMsg_GetData(e->msg), (size_t)natsMsg_GetDataLength(e->msg)};
            sub->cb(sub->data, &m);
        }
        natsMsg_Destroy(e->msg);
        free(e);
        break;
    case EV_SUBDONE: /* cnats is done with sub->ns: no message for it follows */
        if (sub->dead) {
            sub_destroy(sub);
        } else { /* ended by cnats (the connection closed under it) */
            natsSubscription_Destroy(sub->ns);
            sub->ns = NULL;
        }
        maybe_reconnect(n);
        break;
    case EV_DOWN:
        lost(n);
        free(e);
        break;
    case EV_CLOSED: /* embedded in n: not freed */
        if (e->nc != n->nc)
            break; /* one connect_done gave up before installing it */
        lost(n);
        n->nc_closed = 1;
        maybe_reconnect(n);
        break;
    }
}

static ev_t *take_events(mw_nats_t *n) {
    uv_mutex_lock(&n->lock);
    ev_t *e = n->head;
    n->head = n->tail = NULL;
    uv_mutex_unlock(&n->lock);
    return e;
}

static void teardown(mw_nats_t *n);

/* on_async runs what cnats's threads queued, at most BATCH events a turn:
 * a flood of messages does not keep the loop from its sockets (the rest
 * goes back at the head of the queue and the loop is woken again). */
static void on_async(uv_async_t *a) {
    mw_nats_t *n = a->data;
    if ((n->closing && !n->free_requested) || n->cwork)
        return; /* finish drains the queue; connect_done wakes the loop again */
    n->dispatching = 1;
    ev_t *e = take_events(n);
    for (int i = 0; e && i < BATCH && !n->free_requested; i++) {
        ev_t *next = e->next;
        handle_ev(n, e);
        e = next;
    }
    n->dispatching = 0;
    if (e) {
        ev_t *last = e;
        while (last->next)
            last = last->next;
        uv_mutex_lock(&n->lock);
        last->next = n->head;
        if (!n->head)
            n->tail = last;
        n->head = e;
        uv_mutex_unlock(&n->lock);
        uv_async_send(&n->async);
    }
    if (n->free_requested)
        teardown(n);
}

/* ---- the API -------------------------------------------------------------------- */

/* valid_subject: dot-separated non-empty tokens without whitespace; with
 * wildcards, a token may be * and the last one >. cnats checks little more
 * than emptiness before sending, and the server would drop the connection
 * for a bad one. */
static int valid_subject(const char *s, int wildcards) {
    if (!s || !*s)
        return 0;
    for (const char *t = s;;) {
        const char *end = strchr(t, '.');
        size_t len = end ? (size_t)(end - t) : strlen(t);
        if (len == 0)
            return 0;
        for (size_t i = 0; i < len; i++)
            if (t[i] == ' ' || t[i] == '\t' || t[i] == '\r' || t[i] == '\n')
                return 0;
        if (memchr(t, '*', len) || memchr(t, '>', len)) {
            if (!wildcards || len != 1 || (t[0] == '>' && end))
                return 0;
        }
        if (!end)
            return 1;
        t = end + 1;
    }
}

int mw_nats_check_url(const char *url, char *err, size_t errlen) {
    if (!url || !*url) {
        snprintf(err, errlen, "a NATS URL expected");
        return MW_EINVAL;
    }
    for (const char *p = url; *p;) {
        while (*p == ' ')
            p++;
        if (strncmp(p, "nats://", 7) != 0 && strncmp(p, "tls://", 6) != 0) {
            snprintf(err, errlen, "bad NATS URL '%s' (nats://host:port expected)", url);
            return MW_EINVAL;
        }
        const char *host = strstr(p, "://") + 3;
        if (*host == '\0' || *host == ',' || *host == '/') {
            snprintf(err, errlen, "bad NATS URL '%s' (no host)", url);
            return MW_EINVAL;
        }
        const char *c = strchr(p, ',');
        p = c ? c + 1 : p + strlen(p);
    }
    return 0;
}

/* public_name is url without user:password@ in each of its URLs. */
static char *public_name(const char *url) {
    char *out = malloc(strlen(url) + 1), *o = out;
    if (!out)
        return NULL;
    for (const char *p = url; *p;) {
        const char *end = strchr(p, ',');
        end = end ? end + 1 : p + strlen(p);
        const char *host = strstr(p, "://");
        host = host && host < end ? host + 3 : p;
        const char *at = memchr(host, '@', (size_t)(end - host));
        memcpy(o, p, (size_t)(host - p));
        o += host - p;
        const char *rest = at ? at + 1 : host;
        memcpy(o, rest, (size_t)(end - rest));
        o += end - rest;
        p = end;
    }
    *o = '\0';
    return out;
}

static int set_opts(mw_nats_t *n, const mw_nats_opts_t *o) {
    natsOptions *opts = NULL;
    natsStatus s = natsOptions_Create(&opts);
    if (s == NATS_OK)
        s = o->url[0] && strchr(o->url, ',')
                ? natsOptions_SetServers(opts, (const char *[]){o->url}, 1)
                : natsOptions_SetURL(opts, o->url);
    if (s == NATS_OK)
        s = natsOptions_SetName(opts, n->name);
    if (s == NATS_OK && o->user)
        s = natsOptions_SetUserInfo(opts, o->user, o->password ? o->password : "");
    if (s == NATS_OK && o->token)
        s = natsOptions_SetToken(opts, o->token);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(opts, (int64_t)n->ctimeout);
    /* One delivery thread for every subscription (cnats's pool, one thread
     * unless something else in the process grows it) instead of one per
     * subscription: fewer threads, and messages reach the loop in the
     * order the socket brought them, across subscriptions. */
    if (s == NATS_OK)
        s = natsOptions_UseGlobalMessageDelivery(opts, true);
    /* No reconnect thread: the loop reconnects (see the top of the file). */
    if (s == NATS_OK)
        s = natsOptions_SetAllowReconnect(opts, false);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(opts, on_down, n);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB(opts, on_closed, n);
    n->opts = opts;
    return s == NATS_OK ? 0 : s == NATS_NO_MEMORY ? MW_ENOMEM : MW_EINVAL;
}

int mw_nats_create(mw_nats_t **out, uv_loop_t *loop, const mw_nats_opts_t *o, char *err,
                   size_t errlen) {
    *out = NULL;
    int rc = mw_nats_check_url(o->url, err, errlen);
    if (rc != 0)
        return rc;
    uv_once(&lib_once, lib_init);
    mw_nats_t *n = calloc(1, sizeof *n);
    if (!n)
        return MW_ENOMEM;
    n->loop = loop;
    n->loop_thread = uv_thread_self();
    n->ctimeout = o->connect_timeout_ms ? o->connect_timeout_ms : MW_NATS_CONNECT_TIMEOUT_MS;
    n->rmin = o->reconnect_min_ms ? o->reconnect_min_ms : MW_NATS_RECONNECT_MIN_MS;
    n->rmax = o->reconnect_max_ms ? o->reconnect_max_ms : MW_NATS_RECONNECT_MAX_MS;
    if (n->rmax < n->rmin)
        n->rmax = n->rmin;
    n->name = o->name ? strdup(o->name) : public_name(o->url);
    n->urls = strdup(o->url);
    mw_list_init(&n->subs);
    mw_list_init(&n->reqs);
    if (!n->name || !n->urls || uv_mutex_init(&n->lock) != 0) {
        free(n->name);
        free(n->urls);
        free(n);
        return MW_ENOMEM;
    }
    if (uv_cond_init(&n->cond) != 0 || (rc = set_opts(n, o)) != 0) {
        snprintf(err, errlen, "bad NATS options for %s", n->name);
        natsOptions_Destroy(n->opts);
        uv_mutex_destroy(&n->lock);
        free(n->name);
        free(n->urls);
        free(n);
        return rc ? rc : MW_ENOMEM;
    }
    uv_async_init(loop, &n->async, on_async);
    uv_timer_init(loop, &n->retry);
    n->async.data = n->retry.data = n;
    uv_unref((uv_handle_t *)&n->async);
    uv_unref((uv_handle_t *)&n->retry);
    n->open_handles = 2;
    n->first = 1;
    snprintf(n->last_error, sizeof n->last_error, "connecting");
    *out = n;
    try_connect(n);
    return 0;
}

static void handle_closed(uv_handle_t *h) {
    mw_nats_t *n = h->data;
    if (--n->open_handles == 0) {
        uv_cond_destroy(&n->cond);
        uv_mutex_destroy(&n->lock);
        free(n->name);
        free(n->urls);
        free(n);
    }
}

/* finish frees what cnats's threads could have touched, once none of them
 * holds a pointer into the handle. */
static void finish(mw_nats_t *n) {
    for (ev_t *e = take_events(n), *next; e; e = next) {
        next = e->next;
        handle_ev(n, e); /* closing: messages dropped, subscriptions freed */
    }
    if (n->nc)
        natsConnection_Destroy(n->nc); /* closed: nothing waits on the network */
    n->nc = NULL;
    natsOptions_Destroy(n->opts);
    n->opts = NULL;
    uv_close((uv_handle_t *)&n->async, handle_closed);
    uv_close((uv_handle_t *)&n->retry, handle_closed);
}

/* The close on the pool: natsConnection_Close flushes what cnats buffered
 * (the last publishes) and waits for the server's PONG, which the loop
 * reads meanwhile; then the wait for cnats's threads to let go. */
typedef struct {
    uv_work_t req;
    mw_nats_t *n;
    natsConnection *nc;
    int done;
} xwork_t;

static void close_work(uv_work_t *req) {
    xwork_t *w = req->data;
    mw_nats_t *n = w->n;
    natsConnection_Close(w->nc);
    uint64_t deadline = uv_hrtime() + (uint64_t)FREE_WAIT_MS * 1000000;
    uv_mutex_lock(&n->lock);
    while (!(n->closed && n->completed == n->created) && uv_hrtime() < deadline)
        uv_cond_timedwait(&n->cond, &n->lock, 100 * 1000000);
    w->done = n->closed && n->completed == n->created;
    uv_mutex_unlock(&n->lock);
}

static void close_done(uv_work_t *req, int status) {
    (void)status;
    xwork_t *w = req->data;
    mw_nats_t *n = w->n;
    int done = w->done;
    free(w);
    if (!done) { /* a cnats thread may still hold it: leak rather than corrupt */
        mw_log_error("nats %s: cnats did not close within %dms; its memory is left", n->name,
                     FREE_WAIT_MS);
        return;
    }
    finish(n);
}

static void close_start(mw_nats_t *n) {
    xwork_t *w = calloc(1, sizeof *w);
    if (!w) {
        mw_log_error("nats %s: out of memory closing; its memory is left", n->name);
        return;
    }
    w->n = n;
    w->nc = n->nc;
    w->req.data = w;
    uv_queue_work(n->loop, &w->req, close_work, close_done);
}

/* teardown stops what the handle has under way and closes its connection
 * off the loop; the memory goes once that is over (finish). */
static void teardown(mw_nats_t *n) {
    n->free_requested = 0;
    uv_timer_stop(&n->retry);
    if (n->probe)
        probe_detach(n->probe);
    if (n->cwork)
        uv_cancel((uv_req_t *)&n->cwork->req); /* connect_done goes on from there */
    else if (n->nc)
        close_start(n);
    else
        finish(n);
}

void mw_nats_free(mw_nats_t *n) {
    if (!n || n->closing)
        return;
    n->closing = 1;
    n->up = 0;
    first_over(n, MW_ECLOSED);
    while (!mw_list_empty(&n->reqs))
        req_end(mw_list_entry(n->reqs.next, req_t, link), NULL, MW_ECLOSED);
    while (!mw_list_empty(&n->subs)) { /* those cnats holds go on its completion */
        mw_nats_sub_t *sub = mw_list_entry(n->subs.next, mw_nats_sub_t, link);
        mw_list_remove(&sub->link);
        sub->dead = 1;
        if (!sub->ns)
            sub_destroy(sub);
    }
    n->st.subscriptions = 0;
    if (n->dispatching)
        n->free_requested = 1; /* on_async tears down once the callback returns */
    else
        teardown(n);
}

/* refuse counts a publish or request refused while NATS is down; the first
 * of an outage is logged. */
static int refuse(mw_nats_t *n) {
    n->st.errors++;
    if (!n->fail_logged) {
        n->fail_logged = 1;
        mw_log_warn("nats %s: publishing fails while NATS is down (counted in "
                    "moonwire_nats_errors_total)",
                    n->name);
    }
    return MW_ENOTCONN;
}

static int status_err(natsStatus s) {
    switch (s) {
    case NATS_OK: return 0;
    case NATS_INVALID_SUBJECT:
    case NATS_INVALID_ARG: return MW_EINVAL;
    case NATS_NO_MEMORY: return MW_ENOMEM;
    case NATS_CONNECTION_CLOSED:
    case NATS_CONNECTION_DISCONNECTED: return MW_ENOTCONN;
    default: return MW_EIO;
    }
}

int mw_nats_publish(mw_nats_t *n, const char *subject, const char *reply, const void *data,
                    size_t len) {
    if (n->closing)
        return MW_ECLOSED;
    if (!valid_subject(subject, 0) || (reply && !valid_subject(reply, 0)))
        return MW_EINVAL;
    if (!n->up || !n->nc)
        return refuse(n);
    natsStatus s = reply ? natsConnection_PublishRequest(n->nc, subject, reply, data, (int)len)
                         : natsConnection_Publish(n->nc, subject, data, (int)len);
    int rc = status_err(s);
    if (rc == 0)
        n->st.published++;
    else
        n->st.errors++;
    return rc;
}

int mw_nats_subscribe(mw_nats_t *n, const char *subject, const char *queue, mw_nats_msg_cb cb,
                      void *data, mw_nats_sub_t **out) {
    if (n->closing)
        return MW_ECLOSED;
    if (!valid_subject(subject, 1) || (queue && !valid_subject(queue, 0)))
        return MW_EINVAL;
    mw_nats_sub_t *sub = calloc(1, sizeof *sub);
    if (!sub)
        return MW_ENOMEM;
    sub->n = n;
    sub->cb = cb;
    sub->data = data;
    sub->subject = strdup(subject);
    sub->queue = queue ? strdup(queue) : NULL;
    if (!sub->subject || (queue && !sub->queue)) {
        sub_destroy(sub);
        return MW_ENOMEM;
    }
    if (n->nc && n->up) {
        int rc = do_subscribe(n, sub);
        if (rc == MW_EINVAL) {
            sub_destroy(sub);
            return rc;
        } /* else made on the next connect, like one made while down */
    }
    mw_list_insert_tail(&n->subs, &sub->link);
    n->st.subscriptions++;
    if (out)
        *out = sub;
    return 0;
}

void mw_nats_unsubscribe(mw_nats_t *n, mw_nats_sub_t *sub) {
    if (!sub || sub->dead)
        return;
    sub->dead = 1;
    mw_list_remove(&sub->link);
    n->st.subscriptions--;
    if (!sub->ns) {
        sub_destroy(sub);
        return;
    }
    /* cnats ends it (or its closed connection did); on_sub_complete then
     * frees it on the loop. */
    natsSubscription_Unsubscribe(sub->ns);
}

int mw_nats_request(mw_nats_t *n, const char *subject, const void *data, size_t len,
                    uint64_t timeout_ms, mw_nats_reply_cb cb, void *cbdata) {
    if (n->closing)
        return MW_ECLOSED;
    if (!valid_subject(subject, 0))
        return MW_EINVAL;
    if (!n->up || !n->nc)
        return refuse(n);
    if (!n->inbox_sub) {
        natsInbox *inbox = NULL;
        if (natsInbox_Create(&inbox) != NATS_OK)
            return MW_ENOMEM;
        snprintf(n->inbox, sizeof n->inbox, "%s", (const char *)inbox);
        natsInbox_Destroy(inbox);
        char pat[160];
        snprintf(pat, sizeof pat, "%s.*", n->inbox);
        int rc = mw_nats_subscribe(n, pat, NULL, NULL, NULL, &n->inbox_sub);
        if (rc != 0)
            return rc;
        n->st.subscriptions--; /* the inbox is not the app's */
    }
    req_t *r = calloc(1, sizeof *r);
    if (!r)
        return MW_ENOMEM;
    char reply[180];
    r->n = n;
    r->token = ++n->next_token;
    r->cb = cb;
    r->data = cbdata;
    snprintf(reply, sizeof reply, "%s.%llu", n->inbox, (unsigned long long)r->token);
    int rc = mw_nats_publish(n, subject, reply, data, len);
    if (rc != 0) {
        free(r);
        return rc;
    }
    uv_timer_init(n->loop, &r->timer);
    r->timer.data = r;
    uv_timer_start(&r->timer, on_req_timeout, timeout_ms ? timeout_ms : n->ctimeout, 0);
    mw_list_insert_tail(&n->reqs, &r->link);
    return 0;
}

void mw_nats_stats(const mw_nats_t *n, mw_nats_stats_t *st) {
    *st = n->st;
}

int mw_nats_when_ready(mw_nats_t *n, mw_nats_ready_cb cb, void *data) {
    if (n->closing)
        return MW_ECLOSED;
    if (!n->first)
        return MW_EINVAL;
    waiter_t *w = malloc(sizeof *w);
    if (!w)
        return MW_ENOMEM;
    w->cb = cb;
    w->data = data;
    w->next = n->waiters;
    n->waiters = w;
    return 0;
}

int mw_nats_connecting(const mw_nats_t *n) {
    return n->first;
}

int mw_nats_up(const mw_nats_t *n) {
    return n->up;
}

const char *mw_nats_last_error(const mw_nats_t *n) {
    return n->last_error;
}

const char *mw_nats_name(const mw_nats_t *n) {
    return n->name;
}

static void label(FILE *f, const char *metric, const mw_nats_t *n) {
    fprintf(f, "moonwire_%s{name=\"", metric);
    mw_metrics_label_escape(f, n->name);
    fputs("\"", f);
}

static void counter(FILE *f, const char *metric, const char *type, const char *help,
                    mw_nats_t *const *ns, size_t n, size_t offset) {
    mw_metrics_family(f, metric, type, help);
    for (size_t i = 0; i < n; i++) {
        label(f, metric, ns[i]);
        fprintf(f, "} %llu\n",
                (unsigned long long)*(const uint64_t *)((const char *)&ns[i]->st + offset));
    }
}

void mw_nats_metrics(FILE *f, mw_nats_t *const *ns, size_t n) {
    if (!n)
        return;
    mw_metrics_family(f, "nats_up", "gauge min", "1 when the connection to NATS is up, else 0.");
    for (size_t i = 0; i < n; i++) {
        label(f, "nats_up", ns[i]);
        fprintf(f, "} %d\n", ns[i]->up);
    }
    counter(f, "nats_published_total", "counter", "NATS messages published (requests included).",
            ns, n, offsetof(mw_nats_stats_t, published));
    counter(f, "nats_received_total", "counter",
            "NATS messages delivered to subscriptions and requests.", ns, n,
            offsetof(mw_nats_stats_t, received));
    counter(f, "nats_errors_total", "counter",
            "NATS publishes and requests refused or failed (while down, timeouts, no responders) "
            "and failed connects.",
            ns, n, offsetof(mw_nats_stats_t, errors));
    counter(f, "nats_reconnects_total", "counter",
            "NATS connections established again after a loss or a failed attempt.", ns, n,
            offsetof(mw_nats_stats_t, reconnects));
    counter(f, "nats_outages_total", "counter",
            "Times NATS became unreachable: a connection lost, or a failed first attempt of a run "
            "of them; each logged once.",
            ns, n, offsetof(mw_nats_stats_t, outages));
    counter(f, "nats_subscriptions", "gauge", "NATS subscriptions now.", ns, n,
            offsetof(mw_nats_stats_t, subscriptions));
}
