/*
 * redis.c - a Redis client on the server's libuv loop (see redis.h).
 *
 * hiredis owns each connection's socket, buffers and reply parsing; its libuv
 * adapter polls the socket on our loop. Around each redisAsyncContext this
 * file keeps a conn_t: the phase (first attempt, up, down), the AUTH/SELECT
 * handshake that makes a fresh connection ready, the connect-timeout and
 * backoff timers. Commands carry a deadline in one min-heap per handle,
 * served by a single uv timer.
 *
 * hiredis rules this file follows (async.c of 0.14.1):
 * - every callback registered with a command is called exactly once, with
 *   the reply or with NULL when the context goes away (error or free), so a
 *   cmd_t is freed in its hiredis callback and only there (unless it never
 *   reached hiredis: see `waiting`);
 * - redisAsyncFree from inside a reply callback only marks the context, which
 *   hiredis frees when the callback returns; from the connect or disconnect
 *   callback it would be a use-after-free, so those two never free a context
 *   nor call user code that could;
 * - a context that dies calls the pending callbacks with NULL first, then
 *   the disconnect callback (only if it had connected). Whichever comes
 *   first marks the connection lost (conn_lost is idempotent).
 * The handle itself is freed from the close callbacks of its timers, after
 * every hiredis call on the stack has returned.
 */
#include "redis.h"
#include "errors.h"
#include "list.h"
#include "log.h"
#include "metrics.h"

#include <hiredis/async.h>
#include <hiredis/adapters/libuv.h>

#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { PH_FIRST, PH_UP, PH_DOWN };

/* Upper bounds of the latency histogram, in nanoseconds (+Inf after). */
static const uint64_t bucket_ns[] = {100000,    250000,    500000,     1000000,    2500000,
                                     5000000,   10000000,  25000000,   50000000,   100000000,
                                     250000000, 500000000, 1000000000, 2500000000, 5000000000};
#define NBUCKETS (sizeof bucket_ns / sizeof bucket_ns[0])

typedef struct conn {
    mw_redis_t *r;
    int is_sub;
    redisAsyncContext *ac; /* the live attempt or connection; NULL between attempts */
    int phase;             /* PH_*: what mw_redis_command may do */
    int ready;             /* ac finished its handshake */
    int hs_pending;        /* handshake replies still expected */
    int hs_step;           /* which handshake command the next reply answers */
    const char *hs_names[3];
    int drop_err;       /* what commands of a context that died get */
    uint64_t delay;     /* current backoff step, 0 after success */
    uint64_t down_ms;   /* when the outage began (uv_now) */
    unsigned attempts;  /* failed attempts in this outage */
    uv_timer_t retry;   /* backoff before the next attempt */
    uv_timer_t connect; /* timeout of the attempt in flight */
    uv_getaddrinfo_t gai;
    int flush;     /* commands were queued this loop iteration: write them at its end */
    int in_flush;  /* writing them now (a write that does not finish waits for POLLOUT) */
    int gai_busy;  /* gai in flight */
    int gai_stale; /* its answer is no longer wanted */
    char error[160];
} conn_t;

typedef struct cmd {
    mw_redis_t *r;
    mw_redis_reply_cb cb;
    void *data;
    uint64_t deadline; /* uv_now() ms */
    uint64_t sent_ns;
    size_t heap_idx;
    int done; /* cb called; the hiredis callback only frees */
    /* While the first attempt resolves the host there is no context yet:
     * the formatted command waits here and is owned by this file. */
    mw_list_t wait;
    char *buf;
    int len;
} cmd_t;

typedef struct topic {
    struct topic *next; /* hash chain */
    uint64_t hash;
    int is_pattern;
    int active;     /* confirmed by Redis on the current pub/sub connection */
    mw_list_t subs; /* mw_redis_sub_t.node */
    size_t len;
    char name[];
} topic_t;

struct mw_redis_sub {
    topic_t *topic;
    mw_list_t node;     /* on topic->subs */
    mw_list_t dead;     /* on r->dead once unsubscribed during a dispatch */
    mw_redis_msg_cb cb; /* NULL once unsubscribed */
    void *data;
};

struct mw_redis {
    uv_loop_t *loop;
    char *name;
    char *host; /* NULL for a unix socket */
    char *path; /* the unix socket */
    int port;
    char *user, *password; /* NULL: none */
    int db;
    uint64_t connect_timeout_ms, command_timeout_ms, reconnect_min_ms, reconnect_max_ms;
    conn_t cmd, sub;
    int sub_started; /* the pub/sub connection exists (first subscribe) */
    int closing;
    int open_handles; /* timers not yet closed after mw_redis_free */
    uint64_t rng;

    cmd_t **heap; /* pending commands by deadline */
    size_t nheap, capheap;
    uv_timer_t timer; /* the earliest deadline */
    /* Write the commands of a loop iteration: after its I/O (check), or
     * before it waits for I/O when they came from a timer (prepare). */
    uv_check_t flush_check;
    uv_prepare_t flush_prepare;
    uint64_t timer_at; /* when it fires; 0: stopped */
    mw_list_t waiting; /* cmd_t.wait */

    topic_t **buckets;
    size_t nbuckets, ntopics;
    uint64_t seed;
    int dispatching;
    mw_list_t dead; /* mw_redis_sub_t.dead */

    mw_redis_stats_t st;
    uint64_t hist[NBUCKETS + 1];
    uint64_t hist_sum_ns;
};

static void conn_attempt(conn_t *c);
static void conn_lost(conn_t *c, const redisAsyncContext *ac);
static void sub_send_all(mw_redis_t *r);
static void maybe_destroy(mw_redis_t *r);

/* ---- the deadline heap ------------------------------------------------ */

static void heap_set(mw_redis_t *r, size_t i, cmd_t *c) {
    r->heap[i] = c;
    c->heap_idx = i;
}

static void heap_up(mw_redis_t *r, size_t i) {
    cmd_t *c = r->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (r->heap[p]->deadline <= c->deadline)
            break;
        heap_set(r, i, r->heap[p]);
        i = p;
    }
    heap_set(r, i, c);
}

static void heap_down(mw_redis_t *r, size_t i) {
    cmd_t *c = r->heap[i];
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        uint64_t best = c->deadline;
        if (l < r->nheap && r->heap[l]->deadline < best)
            m = l, best = r->heap[l]->deadline;
        if (l + 1 < r->nheap && r->heap[l + 1]->deadline < best)
            m = l + 1;
        if (m == i)
            break;
        heap_set(r, i, r->heap[m]);
        i = m;
    }
    heap_set(r, i, c);
}

static int heap_push(mw_redis_t *r, cmd_t *c) {
    if (r->nheap == r->capheap) {
        size_t cap = r->capheap ? r->capheap * 2 : 64;
        cmd_t **h = realloc(r->heap, cap * sizeof *h);
        if (!h)
            return MW_ENOMEM;
        r->heap = h;
        r->capheap = cap;
    }
    heap_set(r, r->nheap++, c);
    heap_up(r, c->heap_idx);
    return 0;
}

static void heap_remove(mw_redis_t *r, cmd_t *c) {
    size_t i = c->heap_idx;
    cmd_t *last = r->heap[--r->nheap];
    c->heap_idx = SIZE_MAX;
    if (last == c)
        return;
    heap_set(r, i, last);
    if (i > 0 && r->heap[(i - 1) / 2]->deadline > last->deadline)
        heap_up(r, i);
    else
        heap_down(r, i);
}

/* ---- commands ---------------------------------------------------------- */

static void on_deadline(uv_timer_t *t);

/* arm makes the deadline timer fire no later than at. It is not stopped
 * when the earliest command is answered: it then fires early, finds nothing
 * due and re-arms, which is cheaper than restarting it per reply. */
static void arm(mw_redis_t *r, uint64_t at) {
    if (r->timer_at && r->timer_at <= at)
        return;
    uint64_t now = uv_now(r->loop);
    uv_timer_start(&r->timer, on_deadline, at > now ? at - now : 0, 0);
    r->timer_at = at;
}

static void on_deadline(uv_timer_t *t) {
    mw_redis_t *r = t->data;
    uint64_t now = uv_now(r->loop);
    r->timer_at = 0;
    while (r->nheap && r->heap[0]->deadline <= now && !r->closing) {
        cmd_t *c = r->heap[0];
        heap_remove(r, c);
        c->done = 1;
        int owned = c->buf != NULL; /* never reached hiredis */
        if (owned)
            mw_list_remove(&c->wait);
        r->st.timeouts++;
        r->st.failed++;
        c->cb(c->data, NULL, MW_ETIMEOUT);
        if (owned) {
            free(c->buf);
            free(c);
        }
    }
    if (r->nheap && !r->closing)
        arm(r, r->heap[0]->deadline);
}

static void observe(mw_redis_t *r, uint64_t ns) {
    size_t b = 0;
    while (b < NBUCKETS && ns > bucket_ns[b])
        b++;
    r->hist[b]++;
    r->hist_sum_ns += ns;
}

/* cmd_cb is the hiredis callback of every command: once, with the reply or
 * with NULL when the context went away. */
static void cmd_cb(redisAsyncContext *ac, void *reply_, void *privdata) {
    cmd_t *c = privdata;
    mw_redis_t *r = c->r;
    redisReply *reply = reply_;
    if (!reply && !r->closing)
        conn_lost(&r->cmd, ac);
    if (!c->done) {
        c->done = 1;
        heap_remove(r, c);
        if (reply) {
            r->st.replies++;
            if (reply->type == REDIS_REPLY_ERROR)
                r->st.error_replies++;
            observe(r, uv_hrtime() - c->sent_ns);
            c->cb(c->data, reply, 0);
        } else {
            r->st.failed++;
            c->cb(c->data, NULL, r->closing ? MW_ECLOSED : r->cmd.drop_err);
        }
    }
    free(c);
}

static int name_is(const char *s, size_t len, const char *name) {
    return strlen(name) == len && strncasecmp(s, name, len) == 0;
}

const char *mw_redis_check_command(int argc, const char **argv, const size_t *argvlen) {
    static const char *const pubsub[] = {"subscribe",   "psubscribe",   "ssubscribe",
                                         "unsubscribe", "punsubscribe", "sunsubscribe"};
    static const char *const stream[] = {"monitor", "sync", "psync"};
    static const char *const state[] = {"select", "auth", "hello", "reset", "quit"};
    if (argc < 1 || !argv || !argv[0])
        return "no command";
    size_t len = argvlen ? argvlen[0] : strlen(argv[0]);
    if (len == 0)
        return "no command";
    for (size_t i = 0; i < sizeof pubsub / sizeof pubsub[0]; i++)
        if (name_is(argv[0], len, pubsub[i]))
            return "pub/sub needs its own connection: use subscribe";
    for (size_t i = 0; i < sizeof stream / sizeof stream[0]; i++)
        if (name_is(argv[0], len, stream[i]))
            return "MONITOR and replication turn the connection into a stream";
    for (size_t i = 0; i < sizeof state / sizeof state[0]; i++)
        if (name_is(argv[0], len, state[i]))
            return "the connection is shared: its password and db are set when connecting";
    if (name_is(argv[0], len, "client") && argc > 1 &&
        name_is(argv[1], argvlen ? argvlen[1] : strlen(argv[1]), "reply"))
        return "the connection is shared: every command must get its reply";
    return NULL;
}

/* dec_len is the number of decimal digits of v. */
static size_t dec_len(size_t v) {
    size_t n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

/* put_dec writes v in decimal at p; returns the byte after it. */
static char *put_dec(char *p, size_t v) {
    size_t n = dec_len(v);
    for (size_t i = n; i-- > 0; v /= 10)
        p[i] = (char)('0' + v % 10);
    return p + n;
}

/* format_command writes a command as Redis reads it (RESP: "*argc", then
 * "$len" and the bytes of each argument, each part ending in CRLF), the
 * bytes redisFormatCommandArgv makes, into buf when it fits in cap and else
 * into memory it allocates; *out is where it went (free it when it is not
 * buf). Every call from Lua goes through here: hiredis's function costs a
 * malloc and an sprintf per argument. Returns the length, or -1 when out
 * of memory. */
static long format_command(char *buf, size_t cap, char **out, int argc, const char **argv,
                           const size_t *argvlen) {
    size_t len = 1 + dec_len((size_t)argc) + 2;
    for (int i = 0; i < argc; i++) {
        size_t l = argvlen ? argvlen[i] : strlen(argv[i]);
        len += 1 + dec_len(l) + 2 + l + 2;
    }
    if (len > INT_MAX)
        return -1;
    char *p = len <= cap ? buf : malloc(len);
    if (!p)
        return -1;
    *out = p;
    *p++ = '*';
    p = put_dec(p, (size_t)argc);
    *p++ = '\r';
    *p++ = '\n';
    for (int i = 0; i < argc; i++) {
        size_t l = argvlen ? argvlen[i] : strlen(argv[i]);
        *p++ = '$';
        p = put_dec(p, l);
        *p++ = '\r';
        *p++ = '\n';
        memcpy(p, argv[i], l);
        p += l;
        *p++ = '\r';
        *p++ = '\n';
    }
    return (long)len;
}

int mw_redis_command(mw_redis_t *r, int argc, const char **argv, const size_t *argvlen,
                     uint64_t timeout_ms, mw_redis_reply_cb cb, void *data) {
    if (r->closing)
        return MW_ECLOSED;
    if (!cb || mw_redis_check_command(argc, argv, argvlen))
        return MW_EINVAL;
    /* Sent when there is a context: a ready one, or the first attempt's
     * (queued behind its handshake); held while the first attempt resolves
     * the host; refused otherwise. */
    conn_t *cn = &r->cmd;
    int wait = cn->phase == PH_FIRST && !cn->ac && cn->gai_busy && !cn->gai_stale;
    if (!wait && !(cn->ac && (cn->phase == PH_FIRST || cn->ready))) {
        r->st.failed++;
        return MW_ENOTCONN;
    }
    /* Most commands fit here; hiredis copies them into its output buffer. */
    char small[512], *buf;
    long len = format_command(small, sizeof small, &buf, argc, argv, argvlen);
    if (len < 0)
        return MW_ENOMEM;
    cmd_t *c = calloc(1, sizeof *c);
    if (!c) {
        if (buf != small)
            free(buf);
        return MW_ENOMEM;
    }
    c->r = r;
    c->cb = cb;
    c->data = data;
    c->deadline = uv_now(r->loop) + (timeout_ms ? timeout_ms : r->command_timeout_ms);
    c->sent_ns = uv_hrtime();
    mw_list_init(&c->wait);
    /* Held until the host is resolved: a copy that lives as long as c. */
    if (!cn->ac && buf == small) {
        buf = malloc((size_t)len);
        if (buf)
            memcpy(buf, small, (size_t)len);
    }
    if (!buf || heap_push(r, c) != 0) {
        if (buf != small)
            free(buf);
        free(c);
        return MW_ENOMEM;
    }
    if (cn->ac) {
        int rc = redisAsyncFormattedCommand(cn->ac, cmd_cb, c, buf, (size_t)len);
        if (buf != small)
            free(buf);
        if (rc != REDIS_OK) { /* the context is going away */
            heap_remove(r, c);
            free(c);
            r->st.failed++;
            return MW_ENOTCONN;
        }
    } else { /* the first attempt is resolving the host */
        c->buf = buf;
        c->len = (int)len;
        mw_list_insert_tail(&r->waiting, &c->wait);
    }
    r->st.commands++;
    arm(r, c->deadline);
    return 0;
}

/* flush_waiting hands the commands that waited for the first context to
 * it, or fails them with err when there is none. */
static void flush_waiting(mw_redis_t *r, int err) {
    while (!mw_list_empty(&r->waiting)) {
        cmd_t *c = mw_list_entry(r->waiting.next, cmd_t, wait);
        mw_list_remove(&c->wait);
        char *buf = c->buf;
        c->buf = NULL;
        if (!err &&
            redisAsyncFormattedCommand(r->cmd.ac, cmd_cb, c, buf, (size_t)c->len) == REDIS_OK) {
            free(buf);
            continue;
        }
        free(buf);
        heap_remove(r, c);
        c->done = 1;
        r->st.failed++;
        c->cb(c->data, NULL, err ? err : MW_ENOTCONN);
        free(c);
        if (r->closing)
            return;
    }
}

/* ---- connections -------------------------------------------------------- */

static const char *conn_label(const conn_t *c) {
    return c->is_sub ? " (pub/sub)" : "";
}

static uint64_t rnd(mw_redis_t *r) {
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    return r->rng;
}

static void on_retry(uv_timer_t *t) {
    conn_attempt(t->data);
}

/* schedule_retry waits the next backoff step (doubling from
 * reconnect_min_ms up to reconnect_max_ms), between half of it and all of
 * it so that many servers do not reconnect in step. */
static void schedule_retry(conn_t *c) {
    mw_redis_t *r = c->r;
    uint64_t d = c->delay ? c->delay * 2 : r->reconnect_min_ms;
    if (d > r->reconnect_max_ms)
        d = r->reconnect_max_ms;
    c->delay = d;
    uint64_t wait = d / 2 + rnd(r) % (d - d / 2 + 1);
    uv_timer_start(&c->retry, on_retry, wait, 0);
}

/* conn_failed ends an attempt that did not make the connection ready (its
 * context is gone or going). The first failure of an outage is logged. */
static void conn_failed(conn_t *c, const char *why) {
    mw_redis_t *r = c->r;
    uv_timer_stop(&c->connect);
    c->ready = 0;
    r->st.connect_errors++;
    snprintf(c->error, sizeof c->error, "%s", why && *why ? why : "connection failed");
    if (c->phase == PH_FIRST) {
        mw_log_warn("redis %s%s: cannot connect: %s; retrying in the background", r->name,
                    conn_label(c), c->error);
        c->phase = PH_DOWN;
        c->down_ms = uv_now(r->loop);
        if (!c->is_sub)
            flush_waiting(r, MW_ENOTCONN);
    } else {
        mw_log_debug("redis %s%s: attempt %u failed: %s", r->name, conn_label(c), c->attempts + 1,
                     c->error);
    }
    c->attempts++;
    if (!r->closing)
        schedule_retry(c);
}

/* conn_lost handles the death of ac, which hiredis is freeing: the first of
 * its NULL callbacks or its disconnect callback gets here. */
static void conn_lost(conn_t *c, const redisAsyncContext *ac) {
    mw_redis_t *r = c->r;
    if (c->ac != ac || r->closing)
        return;
    c->ac = NULL;
    const char *why = ac->c.errstr[0] ? ac->c.errstr : "connection closed";
    if (!c->ready) {
        c->drop_err = MW_ENOTCONN;
        conn_failed(c, why);
        return;
    }
    c->drop_err = MW_ECONNLOST;
    c->ready = 0;
    c->phase = PH_DOWN;
    c->down_ms = uv_now(r->loop);
    c->attempts = 0;
    c->delay = 0;
    snprintf(c->error, sizeof c->error, "%s", why);
    mw_log_warn("redis %s%s: connection lost: %s; reconnecting", r->name, conn_label(c), why);
    if (c->is_sub)
        for (size_t b = 0; b < r->nbuckets; b++)
            for (topic_t *t = r->buckets[b]; t; t = t->next)
                t->active = 0;
    schedule_retry(c);
}

/* conn_drop frees the context of c on our initiative (connect timeout,
 * refused handshake: why says so; mw_redis_free: why is NULL); its pending
 * commands get err. The attempt is marked failed before the context goes,
 * so that the commands its callbacks issue fail fast. Deferred by hiredis
 * when called from one of its reply callbacks. */
static void conn_drop(conn_t *c, int err, const char *why) {
    redisAsyncContext *ac = c->ac;
    c->ac = NULL;
    c->drop_err = err;
    if (why)
        conn_failed(c, why);
    if (ac)
        redisAsyncFree(ac);
}

static void conn_ready(conn_t *c) {
    mw_redis_t *r = c->r;
    uv_timer_stop(&c->connect);
    c->ready = 1;
    if (c->phase == PH_DOWN) {
        r->st.reconnects++;
        mw_log_info("redis %s%s: connected again after %llu ms (%u failed attempts)", r->name,
                    conn_label(c), (unsigned long long)(uv_now(r->loop) - c->down_ms), c->attempts);
    } else {
        mw_log_info("redis %s%s: connected", r->name, conn_label(c));
    }
    c->phase = PH_UP;
    c->delay = 0;
    c->attempts = 0;
    c->error[0] = '\0';
    if (c->is_sub)
        sub_send_all(r);
}

/* handshake_reply takes one reply to AUTH, SELECT or PING: an error ends
 * the attempt, the last success makes the connection ready. */
static void handshake_reply(conn_t *c, const redisReply *reply) {
    const char *what = c->hs_names[c->hs_step < 3 ? c->hs_step : 2];
    c->hs_step++;
    if (reply->type == REDIS_REPLY_ERROR) {
        char why[160];
        snprintf(why, sizeof why, "%s failed: %s", what, reply->str);
        conn_drop(c, MW_ENOTCONN, why);
        return;
    }
    if (--c->hs_pending == 0)
        conn_ready(c);
}

static void hs_cb(redisAsyncContext *ac, void *reply, void *privdata) {
    conn_t *c = privdata;
    if (c->r->closing || c->ac != ac)
        return;
    if (!reply)
        conn_lost(c, ac);
    else
        handshake_reply(c, reply);
}

static void on_connect(const redisAsyncContext *ac, int status) {
    conn_t *c = ac->data;
    if (status == REDIS_OK || c->r->closing || c->ac != ac)
        return;
    /* hiredis frees ac when this returns, calling its pending callbacks. */
    c->ac = NULL;
    c->drop_err = MW_ENOTCONN;
    conn_failed(c, ac->c.errstr);
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    (void)status;
    conn_t *c = ac->data;
    conn_lost(c, ac);
}

static void sub_cb(redisAsyncContext *ac, void *reply, void *privdata);

/* send_handshake queues what makes a fresh connection usable: AUTH and
 * SELECT (the command connection only) or, with neither, a PING, so that a
 * connection is ready only once Redis has answered on it. */
static int send_handshake(conn_t *c) {
    mw_redis_t *r = c->r;
    redisCallbackFn *fn = c->is_sub ? sub_cb : hs_cb;
    c->hs_pending = 0;
    c->hs_step = 0;
    if (r->password) {
        const char *argv[3] = {"AUTH", r->user ? r->user : r->password, r->password};
        if (redisAsyncCommandArgv(c->ac, fn, c, r->user ? 3 : 2, argv, NULL) != REDIS_OK)
            return -1;
        c->hs_names[c->hs_pending++] = "AUTH";
    }
    if (r->db && !c->is_sub) {
        char db[16];
        snprintf(db, sizeof db, "%d", r->db);
        const char *argv[2] = {"SELECT", db};
        if (redisAsyncCommandArgv(c->ac, fn, c, 2, argv, NULL) != REDIS_OK)
            return -1;
        c->hs_names[c->hs_pending++] = "SELECT";
    }
    if (!c->hs_pending) {
        const char *argv[1] = {"PING"};
        if (redisAsyncCommandArgv(c->ac, fn, c, 1, argv, NULL) != REDIS_OK)
            return -1;
        c->hs_names[c->hs_pending++] = "PING";
    }
    return 0;
}

static void on_connect_timeout(uv_timer_t *t) {
    conn_t *c = t->data;
    char why[64];
    snprintf(why, sizeof why, "no answer within %llu ms",
             (unsigned long long)c->r->connect_timeout_ms);
    if (c->gai_busy) {
        uv_cancel((uv_req_t *)&c->gai);
        c->gai_stale = 1;
    }
    conn_drop(c, MW_ENOTCONN, why);
}

/* The libuv adapter of hiredis 0.14.1 drops a poll error: on POLLERR
 * libuv stops the poll handle and reports a status the adapter ignores, so
 * a refused connect (or any socket error before a read) leaves the context
 * waiting forever. Upstream fixed it in 9ce15c4 (hiredis 1.0): on an error,
 * let hiredis try the events it waited for, and find the error itself.
 * These hooks replace the adapter's four with that callback; its attach,
 * state and cleanup stay as they are. */
static void poll_cb(uv_poll_t *handle, int status, int events) {
    redisLibuvEvents *p = handle->data;
    int ev = status ? p->events : events;
    if (p->context && (ev & UV_READABLE))
        redisAsyncHandleRead(p->context);
    if (p->context && (ev & UV_WRITABLE))
        redisAsyncHandleWrite(p->context);
}

/* poll_update asks libuv for the events hiredis wants now, only when they
 * changed: uv_poll_start (libuv 1.44) first stops the poll, which takes
 * the socket out of epoll (epoll_ctl DEL, and ADD again before the next
 * wait) and walks every event of the loop iteration in progress, and
 * hiredis asks for writability once per command: with a thousand clients
 * each sending a command from its handler, that was two system calls and
 * a thousand-event walk per command. A handle libuv stopped on an error is
 * started again. */
static void on_flush_check(uv_check_t *h);
static void on_flush_prepare(uv_prepare_t *h);

static void poll_update(redisLibuvEvents *p, int add, int del) {
    int events = (p->events | add) & ~del;
    if (events == p->events && (!events || uv_is_active((uv_handle_t *)&p->handle)))
        return;
    p->events = events;
    if (events)
        uv_poll_start(&p->handle, events, poll_cb);
    else
        uv_poll_stop(&p->handle);
}

static void poll_add_read(void *p) {
    poll_update(p, UV_READABLE, 0);
}
static void poll_del_read(void *p) {
    poll_update(p, 0, UV_READABLE);
}
/* hiredis asks for writability once per command it queues. On a connected
 * context the commands of a loop iteration are written at its end instead
 * (after its I/O, or before the loop waits for I/O: one write for all of
 * them), in the iteration that made them: waiting for POLLOUT would write
 * them an iteration later, after every other event of the next one, and
 * cost two epoll_ctl. POLLOUT is only asked for when that write does not
 * finish (a full socket), or while connecting (hiredis learns the outcome
 * of connect(2) from it). The same two moments as the server's own output
 * (server.c: flush_prepare, flush_check). */
static void poll_add_write(void *p) {
    redisLibuvEvents *e = p;
    redisAsyncContext *ac = e->context;
    conn_t *c = ac ? ac->data : NULL;
    if (!c || c->in_flush || !(ac->c.flags & REDIS_CONNECTED)) {
        poll_update(p, UV_WRITABLE, 0);
        return;
    }
    if (!c->flush) {
        c->flush = 1;
        uv_check_start(&c->r->flush_check, on_flush_check);
        uv_prepare_start(&c->r->flush_prepare, on_flush_prepare);
    }
}
static void poll_del_write(void *p) {
    poll_update(p, 0, UV_WRITABLE);
}

/* flush writes what each connection queued in this loop iteration
 * (poll_add_write). A context that died or was replaced meanwhile has
 * nothing of it left (a new one is flushed only once connected). */
static void flush(mw_redis_t *r) {
    uv_check_stop(&r->flush_check);
    uv_prepare_stop(&r->flush_prepare);
    conn_t *conns[2] = {&r->cmd, &r->sub};
    for (int i = 0; i < 2 && !r->closing; i++) {
        conn_t *c = conns[i];
        if (!c->flush)
            continue;
        c->flush = 0;
        redisAsyncContext *ac = c->ac;
        if (!ac || !(ac->c.flags & REDIS_CONNECTED))
            continue;
        /* hiredis may free ac in here (a write error): c stays valid. */
        c->in_flush = 1;
        redisAsyncHandleWrite(ac);
        c->in_flush = 0;
    }
}

static void on_flush_check(uv_check_t *h) {
    flush(h->data);
}

static void on_flush_prepare(uv_prepare_t *h) {
    flush(h->data);
}

/* conn_open takes over a context hiredis just created for an attempt. */
static void conn_open(conn_t *c, redisAsyncContext *ac) {
    mw_redis_t *r = c->r;
    if (!ac) {
        conn_failed(c, "out of memory");
        return;
    }
    if (ac->err) {
        char why[160];
        snprintf(why, sizeof why, "%s", ac->errstr);
        redisAsyncFree(ac);
        conn_failed(c, why);
        return;
    }
    ac->data = c;
    if (redisLibuvAttach(ac, r->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        conn_failed(c, "cannot poll the socket");
        return;
    }
    ac->ev.addRead = poll_add_read;
    ac->ev.delRead = poll_del_read;
    ac->ev.addWrite = poll_add_write;
    ac->ev.delWrite = poll_del_write;
    /* TCP keepalive notices a peer gone without a word; failing to set it
     * must not fail the connection. */
    if (!r->path && redisEnableKeepAlive(&ac->c) != REDIS_OK) {
        ac->c.err = 0;
        ac->c.errstr[0] = '\0';
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    c->ac = ac;
    c->ready = 0;
    c->drop_err = MW_ENOTCONN;
    if (send_handshake(c) != 0) {
        conn_drop(c, MW_ENOTCONN, "out of memory");
        return;
    }
    if (!uv_is_active((uv_handle_t *)&c->connect))
        uv_timer_start(&c->connect, on_connect_timeout, r->connect_timeout_ms, 0);
    if (!c->is_sub && c->phase == PH_FIRST)
        flush_waiting(r, 0);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
    conn_t *c = req->data;
    mw_redis_t *r = c->r;
    c->gai_busy = 0;
    int stale = c->gai_stale || r->closing;
    c->gai_stale = 0;
    if (stale) {
        uv_freeaddrinfo(res);
        maybe_destroy(r);
        return;
    }
    /* Successive attempts of an outage take the addresses in turn, so a
     * name with an address Redis does not listen on (localhost as ::1)
     * still reaches the one it does. */
    char ip[64] = "";
    unsigned n = 0;
    for (struct addrinfo *a = status == 0 ? res : NULL; a; a = a->ai_next)
        n++;
    struct addrinfo *a = status == 0 ? res : NULL;
    for (unsigned i = n ? c->attempts % n : 0; a && i > 0; i--)
        a = a->ai_next;
    if (a && a->ai_family == AF_INET6)
        uv_ip6_name((const struct sockaddr_in6 *)a->ai_addr, ip, sizeof ip);
    else if (a && a->ai_family == AF_INET)
        uv_ip4_name((const struct sockaddr_in *)a->ai_addr, ip, sizeof ip);
    uv_freeaddrinfo(res);
    if (!ip[0]) {
        char why[200];
        snprintf(why, sizeof why, "cannot resolve %s: %s", r->host,
                 status ? uv_strerror(status) : "no address");
        conn_failed(c, why);
        return;
    }
    conn_open(c, redisAsyncConnect(ip, r->port));
}

static int is_ip(const char *host) {
    unsigned char buf[sizeof(struct in6_addr)];
    return uv_inet_pton(AF_INET, host, buf) == 0 || uv_inet_pton(AF_INET6, host, buf) == 0;
}

/* conn_attempt starts connecting: at once for an address or a socket path,
 * after uv_getaddrinfo (in libuv's thread pool) for a host name, since
 * hiredis would resolve it with a blocking getaddrinfo. */
static void conn_attempt(conn_t *c) {
    mw_redis_t *r = c->r;
    if (r->closing || c->ac)
        return;
    if (r->path) {
        conn_open(c, redisAsyncConnectUnix(r->path));
    } else if (is_ip(r->host)) {
        conn_open(c, redisAsyncConnect(r->host, r->port));
    } else if (c->gai_busy) { /* a resolution that outlived its timeout */
        conn_failed(c, "name resolution still running");
    } else {
        char port[8];
        snprintf(port, sizeof port, "%d", r->port);
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        c->gai.data = c;
        int rc = uv_getaddrinfo(r->loop, &c->gai, on_resolved, r->host, port, &hints);
        if (rc != 0) {
            char why[200];
            snprintf(why, sizeof why, "cannot resolve %s: %s", r->host, uv_strerror(rc));
            conn_failed(c, why);
            return;
        }
        c->gai_busy = 1;
        uv_timer_start(&c->connect, on_connect_timeout, r->connect_timeout_ms, 0);
    }
}

/* ---- pub/sub --------------------------------------------------------- */

static uint64_t topic_hash(const mw_redis_t *r, const char *s, size_t len, int is_pattern) {
    uint64_t h = r->seed ^ (is_pattern ? 0x9e3779b97f4a7c15ULL : 0);
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h ^ (h >> 29);
}

static topic_t *topic_find(const mw_redis_t *r, const char *s, size_t len, int is_pattern) {
    if (!r->nbuckets)
        return NULL;
    uint64_t h = topic_hash(r, s, len, is_pattern);
    for (topic_t *t = r->buckets[h & (r->nbuckets - 1)]; t; t = t->next)
        if (t->hash == h && t->len == len && t->is_pattern == is_pattern &&
            memcmp(t->name, s, len) == 0)
            return t;
    return NULL;
}

static int topic_insert(mw_redis_t *r, topic_t *t) {
    if (r->ntopics + 1 > r->nbuckets) {
        size_t n = r->nbuckets ? r->nbuckets * 2 : 16;
        topic_t **b = calloc(n, sizeof *b);
        if (!b)
            return MW_ENOMEM;
        for (size_t i = 0; i < r->nbuckets; i++)
            for (topic_t *x = r->buckets[i], *next; x; x = next) {
                next = x->next;
                x->next = b[x->hash & (n - 1)];
                b[x->hash & (n - 1)] = x;
            }
        free(r->buckets);
        r->buckets = b;
        r->nbuckets = n;
    }
    topic_t **head = &r->buckets[t->hash & (r->nbuckets - 1)];
    t->next = *head;
    *head = t;
    r->ntopics++;
    return 0;
}

/* sub_send sends (P)SUBSCRIBE or (P)UNSUBSCRIBE for n topics at once. */
static void sub_send(mw_redis_t *r, const char *verb, topic_t **ts, size_t n) {
    const char *argv[65];
    size_t lens[65];
    argv[0] = verb;
    lens[0] = strlen(verb);
    for (size_t i = 0; i < n; i++) {
        argv[i + 1] = ts[i]->name;
        lens[i + 1] = ts[i]->len;
    }
    /* Fails only while the context is going away; the next connection
     * subscribes everything again. */
    (void)redisAsyncCommandArgv(r->sub.ac, sub_cb, &r->sub, (int)n + 1, argv, lens);
}

/* sub_send_all subscribes every topic on a connection that just became
 * ready, 64 names per command. */
static void sub_send_all(mw_redis_t *r) {
    for (int pat = 0; pat < 2; pat++) {
        topic_t *batch[64];
        size_t n = 0;
        for (size_t b = 0; b < r->nbuckets; b++)
            for (topic_t *t = r->buckets[b]; t; t = t->next) {
                if (t->is_pattern != pat)
                    continue;
                batch[n++] = t;
                if (n == 64) {
                    sub_send(r, pat ? "PSUBSCRIBE" : "SUBSCRIBE", batch, n);
                    n = 0;
                }
            }
        if (n)
            sub_send(r, pat ? "PSUBSCRIBE" : "SUBSCRIBE", batch, n);
    }
}

static void topic_drop(mw_redis_t *r, topic_t *t) {
    if (r->sub.ac && r->sub.ready)
        sub_send(r, t->is_pattern ? "PUNSUBSCRIBE" : "UNSUBSCRIBE", &t, 1);
    topic_t **p = &r->buckets[t->hash & (r->nbuckets - 1)];
    while (*p != t)
        p = &(*p)->next;
    *p = t->next;
    r->ntopics--;
    free(t);
}

/* sweep frees the subscriptions ended during a dispatch, and their topics
 * once nobody listens. */
static void sweep(mw_redis_t *r) {
    while (!mw_list_empty(&r->dead)) {
        mw_redis_sub_t *s = mw_list_entry(r->dead.next, mw_redis_sub_t, dead);
        mw_list_remove(&s->dead);
        mw_list_remove(&s->node);
        topic_t *t = s->topic;
        free(s);
        if (mw_list_empty(&t->subs))
            topic_drop(r, t);
    }
}

static int str_is(const redisReply *e, const char *s) {
    return e->type == REDIS_REPLY_STRING && e->len == strlen(s) &&
           strncasecmp(e->str, s, e->len) == 0;
}

/* dispatch calls every live subscriber of a topic. Subscriptions ended
 * meanwhile are only marked (cb = NULL) and swept afterwards, so the list
 * stays walkable; a free stops the walk. */
static void dispatch(mw_redis_t *r, topic_t *t, const redisReply *ch, const redisReply *pat,
                     const redisReply *msg) {
    r->dispatching++;
    for (mw_list_t *n = t->subs.next; n != &t->subs && !r->closing; n = n->next) {
        mw_redis_sub_t *s = mw_list_entry(n, mw_redis_sub_t, node);
        if (!s->cb)
            continue;
        r->st.messages++;
        s->cb(s->data, ch->str, ch->len, pat ? pat->str : NULL, pat ? pat->len : 0, msg->str,
              msg->len);
    }
    r->dispatching--;
    if (!r->dispatching && !r->closing)
        sweep(r);
}

/* sub_cb is the one hiredis callback of the pub/sub connection: handshake
 * replies, (un)subscribe confirmations and messages, or NULL when it dies.
 * Topics are looked up by name here rather than given to hiredis, so a
 * topic can go away at once, whatever hiredis still has in flight. */
static void sub_cb(redisAsyncContext *ac, void *reply_, void *privdata) {
    conn_t *c = privdata;
    mw_redis_t *r = c->r;
    redisReply *reply = reply_;
    if (r->closing || c->ac != ac)
        return;
    if (!reply) {
        conn_lost(c, ac);
        return;
    }
    if (!c->ready && reply->type != REDIS_REPLY_ARRAY) {
        handshake_reply(c, reply);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3)
        return;
    redisReply **e = reply->element;
    if (str_is(e[0], "message") && e[1]->type == REDIS_REPLY_STRING &&
        e[2]->type == REDIS_REPLY_STRING) {
        topic_t *t = topic_find(r, e[1]->str, e[1]->len, 0);
        if (t)
            dispatch(r, t, e[1], NULL, e[2]);
    } else if (str_is(e[0], "pmessage") && reply->elements >= 4 &&
               e[1]->type == REDIS_REPLY_STRING && e[2]->type == REDIS_REPLY_STRING &&
               e[3]->type == REDIS_REPLY_STRING) {
        topic_t *t = topic_find(r, e[1]->str, e[1]->len, 1);
        if (t)
            dispatch(r, t, e[2], e[1], e[3]);
    } else if ((str_is(e[0], "subscribe") || str_is(e[0], "psubscribe")) &&
               e[1]->type == REDIS_REPLY_STRING) {
        topic_t *t = topic_find(r, e[1]->str, e[1]->len, str_is(e[0], "psubscribe"));
        if (t)
            t->active = 1;
    }
}

int mw_redis_subscribe(mw_redis_t *r, const char *name, size_t len, int is_pattern,
                       mw_redis_msg_cb cb, void *data, mw_redis_sub_t **out) {
    if (r->closing)
        return MW_ECLOSED;
    if (!name || !len || !cb || !out)
        return MW_EINVAL;
    is_pattern = is_pattern ? 1 : 0;
    mw_redis_sub_t *s = calloc(1, sizeof *s);
    if (!s)
        return MW_ENOMEM;
    topic_t *t = topic_find(r, name, len, is_pattern);
    if (!t) {
        t = calloc(1, sizeof *t + len + 1);
        if (!t) {
            free(s);
            return MW_ENOMEM;
        }
        memcpy(t->name, name, len);
        t->len = len;
        t->is_pattern = is_pattern;
        t->hash = topic_hash(r, name, len, is_pattern);
        mw_list_init(&t->subs);
        if (topic_insert(r, t) != 0) {
            free(t);
            free(s);
            return MW_ENOMEM;
        }
        if (r->sub.ac && r->sub.ready)
            sub_send(r, is_pattern ? "PSUBSCRIBE" : "SUBSCRIBE", &t, 1);
    }
    s->topic = t;
    s->cb = cb;
    s->data = data;
    mw_list_init(&s->dead);
    mw_list_insert_tail(&t->subs, &s->node);
    if (!r->sub_started) {
        r->sub_started = 1;
        r->sub.phase = PH_FIRST;
        conn_attempt(&r->sub);
    }
    *out = s;
    return 0;
}

void mw_redis_unsubscribe(mw_redis_t *r, mw_redis_sub_t *s) {
    if (!s || !s->cb)
        return;
    s->cb = NULL;
    if (r->closing)
        return; /* freed with the handle */
    mw_list_insert_tail(&r->dead, &s->dead);
    if (!r->dispatching)
        sweep(r);
}

int mw_redis_sub_active(const mw_redis_sub_t *s) {
    return s && s->cb && s->topic->active;
}

/* ---- URL --------------------------------------------------------------- */

static int hexval(int ch) {
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = tolower(ch);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* pct_decode copies s[0..n) to a new string with %XX decoded, or NULL. */
static char *pct_decode(const char *s, size_t n) {
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            *o++ = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

/* parse_uint reads digits s[0..n) into *v (at most max); -1 if not that. */
static int parse_uint(const char *s, size_t n, long max, long *v) {
    if (n == 0 || n > 10)
        return -1;
    long x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        x = x * 10 + (s[i] - '0');
    }
    if (x > max)
        return -1;
    *v = x;
    return 0;
}

#define URL_FAIL(...)                                                                              \
    do {                                                                                           \
        snprintf(err, errlen, __VA_ARGS__);                                                        \
        return MW_EINVAL;                                                                          \
    } while (0)

/* parse_url fills r's address, credentials and db from url. */
static int parse_url(mw_redis_t *r, const char *url, char *err, size_t errlen) {
    long v;
    if (strncmp(url, "unix:", 5) == 0) {
        const char *p = url + 5;
        if (strncmp(p, "//", 2) == 0)
            p += 2;
        const char *q = strchr(p, '?');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (n == 0 || p[0] != '/')
            URL_FAIL("redis url %s: a unix socket needs an absolute path", url);
        if (q) {
            if (strncmp(q, "?db=", 4) != 0 || parse_uint(q + 4, strlen(q + 4), 1000000, &v) != 0)
                URL_FAIL("redis url %s: only ?db=N may follow the socket path", url);
            r->db = (int)v;
        }
        r->path = strndup(p, n);
        return r->path ? 0 : MW_ENOMEM;
    }
    if (strncmp(url, "rediss://", 9) == 0)
        URL_FAIL("redis url %s: TLS (rediss://) is not supported", url);
    if (strncmp(url, "redis://", 8) != 0)
        URL_FAIL("redis url %s: expected redis://[[user]:password@]host[:port][/db] or "
                 "unix:/path",
                 url);
    const char *p = url + 8;
    const char *end = p + strcspn(p, "/?#");
    const char *at = memchr(p, '@', (size_t)(end - p));
    if (at) { /* the last @ before the path ends the credentials */
        for (const char *x = at; x < end; x++)
            if (*x == '@')
                at = x;
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            if (colon > p && !(r->user = pct_decode(p, (size_t)(colon - p))))
                return MW_ENOMEM;
            if (!(r->password = pct_decode(colon + 1, (size_t)(at - colon - 1))))
                return MW_ENOMEM;
        } else {
            URL_FAIL("redis url %s: credentials are :password@ or user:password@", url);
        }
        p = at + 1;
    }
    const char *hend;
    const char *port = NULL;
    if (*p == '[') {
        hend = memchr(p, ']', (size_t)(end - p));
        if (!hend)
            URL_FAIL("redis url %s: unterminated [ipv6] host", url);
        r->host = strndup(p + 1, (size_t)(hend - p - 1));
        if (hend + 1 < end) {
            if (hend[1] != ':')
                URL_FAIL("redis url %s: junk after the [ipv6] host", url);
            port = hend + 2;
        }
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        hend = colon ? colon : end;
        r->host = strndup(p, (size_t)(hend - p));
        if (colon)
            port = colon + 1;
    }
    if (!r->host)
        return MW_ENOMEM;
    if (!r->host[0])
        URL_FAIL("redis url %s: no host", url);
    for (const char *h = r->host; *h; h++)
        if (!isalnum((unsigned char)*h) && !strchr(".-_:%", *h))
            URL_FAIL("redis url %s: bad character in the host", url);
    r->port = 6379;
    if (port) {
        if (parse_uint(port, (size_t)(end - port), 65535, &v) != 0 || v == 0)
            URL_FAIL("redis url %s: the port must be a number from 1 to 65535", url);
        r->port = (int)v;
    }
    if (*end == '/' && end[1]) {
        if (parse_uint(end + 1, strlen(end + 1), 1000000, &v) != 0)
            URL_FAIL("redis url %s: the path must be a database number", url);
        r->db = (int)v;
    } else if (*end == '/' || *end == '\0') {
        r->db = 0;
    } else {
        URL_FAIL("redis url %s: no query or fragment expected", url);
    }
    return 0;
}

/* ---- the handle ---------------------------------------------------------- */

static void conn_init(mw_redis_t *r, conn_t *c, int is_sub) {
    c->r = r;
    c->is_sub = is_sub;
    c->phase = PH_FIRST;
    uv_timer_init(r->loop, &c->retry);
    uv_timer_init(r->loop, &c->connect);
    c->retry.data = c;
    c->connect.data = c;
}

static void free_fields(mw_redis_t *r) {
    free(r->name);
    free(r->host);
    free(r->path);
    free(r->user);
    free(r->password);
}

int mw_redis_create(mw_redis_t **out, uv_loop_t *loop, const mw_redis_opts_t *opts, char *err,
                    size_t errlen) {
    char scratch[8];
    if (!err || !errlen) {
        err = scratch;
        errlen = sizeof scratch;
    }
    err[0] = '\0';
    if (!out || !loop || !opts || !opts->url) {
        snprintf(err, errlen, "redis: no url");
        return MW_EINVAL;
    }
    mw_redis_t *r = calloc(1, sizeof *r);
    if (!r)
        return MW_ENOMEM;
    r->loop = loop;
    int rc = parse_url(r, opts->url, err, errlen);
    if (rc == 0 && opts->password) {
        free(r->password);
        r->password = opts->password[0] ? strdup(opts->password) : NULL;
        if (opts->password[0] && !r->password)
            rc = MW_ENOMEM;
    }
    if (rc == 0 && opts->db < 0) {
        snprintf(err, errlen, "redis: db must be 0 or more");
        rc = MW_EINVAL;
    }
    if (rc == 0 && opts->db > 0)
        r->db = opts->db;
    if (rc == 0) {
        char name[512];
        if (opts->name)
            snprintf(name, sizeof name, "%s", opts->name);
        else if (r->path && r->db)
            snprintf(name, sizeof name, "unix:%s?db=%d", r->path, r->db);
        else if (r->path)
            snprintf(name, sizeof name, "unix:%s", r->path);
        else
            snprintf(name, sizeof name, "redis://%s%s%s%s%s:%d/%d", r->user ? r->user : "",
                     r->user ? "@" : "", strchr(r->host, ':') ? "[" : "", r->host,
                     strchr(r->host, ':') ? "]" : "", r->port, r->db);
        if (!(r->name = strdup(name)))
            rc = MW_ENOMEM;
    }
    if (rc != 0) {
        free_fields(r);
        free(r);
        return rc;
    }
    r->connect_timeout_ms =
        opts->connect_timeout_ms ? opts->connect_timeout_ms : MW_REDIS_CONNECT_TIMEOUT_MS;
    r->command_timeout_ms =
        opts->command_timeout_ms ? opts->command_timeout_ms : MW_REDIS_COMMAND_TIMEOUT_MS;
    r->reconnect_min_ms =
        opts->reconnect_min_ms ? opts->reconnect_min_ms : MW_REDIS_RECONNECT_MIN_MS;
    r->reconnect_max_ms =
        opts->reconnect_max_ms ? opts->reconnect_max_ms : MW_REDIS_RECONNECT_MAX_MS;
    if (r->reconnect_max_ms < r->reconnect_min_ms)
        r->reconnect_max_ms = r->reconnect_min_ms;
    r->rng = (uv_hrtime() ^ (uint64_t)(uintptr_t)r) | 1;
    r->seed = rnd(r);
    mw_list_init(&r->waiting);
    mw_list_init(&r->dead);
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    uv_check_init(loop, &r->flush_check);
    r->flush_check.data = r;
    uv_prepare_init(loop, &r->flush_prepare);
    r->flush_prepare.data = r;
    conn_init(r, &r->cmd, 0);
    conn_init(r, &r->sub, 1);
    conn_attempt(&r->cmd);
    *out = r;
    return 0;
}

int mw_redis_check_url(const char *url, char *err, size_t errlen) {
    char scratch[8];
    if (!err || !errlen) {
        err = scratch;
        errlen = sizeof scratch;
    }
    err[0] = '\0';
    if (!url) {
        snprintf(err, errlen, "redis: no url");
        return MW_EINVAL;
    }
    mw_redis_t tmp = {0};
    int rc = parse_url(&tmp, url, err, errlen);
    free_fields(&tmp);
    return rc;
}

static void destroy(mw_redis_t *r) {
    for (size_t b = 0; b < r->nbuckets; b++)
        for (topic_t *t = r->buckets[b], *next; t; t = next) {
            next = t->next;
            while (!mw_list_empty(&t->subs)) {
                mw_redis_sub_t *s = mw_list_entry(t->subs.next, mw_redis_sub_t, node);
                mw_list_remove(&s->node);
                free(s);
            }
            free(t);
        }
    free(r->buckets);
    free(r->heap);
    free_fields(r);
    free(r);
}

static void maybe_destroy(mw_redis_t *r) {
    if (r->closing && r->open_handles == 0 && !r->cmd.gai_busy && !r->sub.gai_busy)
        destroy(r);
}

static void on_closed(uv_handle_t *h) {
    mw_redis_t *r = h->data;
    r->open_handles--;
    maybe_destroy(r);
}

static void close_handle(mw_redis_t *r, uv_handle_t *h) {
    h->data = r;
    r->open_handles++;
    uv_close(h, on_closed);
}

static void close_timer(mw_redis_t *r, uv_timer_t *t) {
    close_handle(r, (uv_handle_t *)t);
}

void mw_redis_free(mw_redis_t *r) {
    if (!r || r->closing)
        return;
    r->closing = 1;
    /* Every pending command hears MW_ECLOSED now, in deadline order; those
     * hiredis holds are only freed by its NULL callbacks below (or later,
     * when the free is deferred because we are inside one of them). */
    while (r->nheap) {
        cmd_t *c = r->heap[0];
        heap_remove(r, c);
        c->done = 1;
        int owned = c->buf != NULL;
        if (owned)
            mw_list_remove(&c->wait);
        r->st.failed++;
        c->cb(c->data, NULL, MW_ECLOSED);
        if (owned) {
            free(c->buf);
            free(c);
        }
    }
    conn_t *conns[2] = {&r->cmd, &r->sub};
    for (int i = 0; i < 2; i++) {
        conn_t *c = conns[i];
        uv_timer_stop(&c->retry);
        uv_timer_stop(&c->connect);
        if (c->gai_busy) {
            uv_cancel((uv_req_t *)&c->gai);
            c->gai_stale = 1;
        }
        conn_drop(c, MW_ECLOSED, NULL);
        close_timer(r, &c->retry);
        close_timer(r, &c->connect);
    }
    close_timer(r, &r->timer);
    close_handle(r, (uv_handle_t *)&r->flush_check);
    close_handle(r, (uv_handle_t *)&r->flush_prepare);
}

/* ---- state and metrics --------------------------------------------------- */

void mw_redis_stats(const mw_redis_t *r, mw_redis_stats_t *st) {
    *st = r->st;
    st->subscriptions = r->ntopics;
}

int mw_redis_up(const mw_redis_t *r) {
    return !r->closing && r->cmd.phase == PH_UP;
}

const char *mw_redis_last_error(const mw_redis_t *r) {
    return r->cmd.phase == PH_DOWN ? r->cmd.error : "";
}

const char *mw_redis_name(const mw_redis_t *r) {
    return r->name;
}

static void label(FILE *f, const char *metric, const mw_redis_t *r) {
    fprintf(f, "moonwire_%s{name=\"", metric);
    mw_metrics_label_escape(f, r->name);
    fputs("\"", f);
}

static void counter(FILE *f, const char *metric, const char *type, const char *help,
                    mw_redis_t *const *rs, size_t n, size_t offset) {
    mw_metrics_family(f, metric, type, help);
    for (size_t i = 0; i < n; i++) {
        mw_redis_stats_t st;
        mw_redis_stats(rs[i], &st);
        label(f, metric, rs[i]);
        fprintf(f, "} %llu\n", (unsigned long long)*(const uint64_t *)((const char *)&st + offset));
    }
}

void mw_redis_metrics(FILE *f, mw_redis_t *const *rs, size_t n) {
    if (!n)
        return;
    mw_metrics_family(f, "redis_up", "gauge min",
                      "1 when the command connection to Redis is ready, else 0.");
    for (size_t i = 0; i < n; i++) {
        label(f, "redis_up", rs[i]);
        fprintf(f, "} %d\n", mw_redis_up(rs[i]));
    }
    counter(f, "redis_commands_total", "counter", "Redis commands sent.", rs, n,
            offsetof(mw_redis_stats_t, commands));
    counter(f, "redis_error_replies_total", "counter", "Redis replies that were errors.", rs, n,
            offsetof(mw_redis_stats_t, error_replies));
    counter(f, "redis_command_failures_total", "counter",
            "Redis commands that got no reply: refused while down, timed out, connection lost "
            "or closed.",
            rs, n, offsetof(mw_redis_stats_t, failed));
    counter(f, "redis_command_timeouts_total", "counter", "Redis commands that timed out.", rs, n,
            offsetof(mw_redis_stats_t, timeouts));
    counter(f, "redis_reconnects_total", "counter",
            "Redis connections established again after a loss or a failed attempt.", rs, n,
            offsetof(mw_redis_stats_t, reconnects));
    counter(f, "redis_connect_errors_total", "counter", "Redis connection attempts that failed.",
            rs, n, offsetof(mw_redis_stats_t, connect_errors));
    counter(f, "redis_pubsub_messages_total", "counter",
            "Redis pub/sub messages delivered to subscribers.", rs, n,
            offsetof(mw_redis_stats_t, messages));
    counter(f, "redis_subscriptions", "gauge", "Redis channels and patterns subscribed now.", rs, n,
            offsetof(mw_redis_stats_t, subscriptions));
    mw_metrics_family(f, "redis_command_duration_seconds", "histogram",
                      "Time from sending a Redis command to its reply.");
    for (size_t i = 0; i < n; i++) {
        const mw_redis_t *r = rs[i];
        uint64_t cum = 0;
        for (size_t b = 0; b <= NBUCKETS; b++) {
            cum += r->hist[b];
            label(f, "redis_command_duration_seconds_bucket", r);
            if (b < NBUCKETS)
                fprintf(f, ",le=\"%g\"} %llu\n", (double)bucket_ns[b] / 1e9,
                        (unsigned long long)cum);
            else
                fprintf(f, ",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
        }
        label(f, "redis_command_duration_seconds_sum", r);
        fprintf(f, "} %.9f\n", (double)r->hist_sum_ns / 1e9);
        label(f, "redis_command_duration_seconds_count", r);
        fprintf(f, "} %llu\n", (unsigned long long)cum);
    }
}
