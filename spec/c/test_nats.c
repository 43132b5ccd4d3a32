/*
 * test_nats.c - src/nats.c against a real nats-server.
 *
 * Each test starts its own nats-server on a free loopback port, killed when
 * the test ends. The loop only ever runs until a condition holds or a
 * generous deadline passes (WAIT, test_live.h), so a slow machine makes a
 * test slower, never wrong. Every callback checks that it runs on the
 * loop's thread: cnats delivers on threads of its own, and src/nats.c must
 * marshal.
 */
#include "errors.h"
#include "log.h"
#include "nats.h"
#include "test.h"
#include "test_live.h"

static uv_thread_t loop_thread;
static int off_thread;

#define LONG 15000 /* ms: a deadline nothing correct comes near */

static void note_thread(void) {
    uv_thread_t self = uv_thread_self();
    if (!uv_thread_equal(&self, &loop_thread))
        off_thread++;
}

/* ---- nats-server ------------------------------------------------------------ */

typedef struct {
    pid_t pid;
    int port;
    char url[64];
} srv_t;

/* answers: whether a NATS server sends its INFO line on *port. */
static int answers(void *arg) {
    int port = *(int *)arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[4];
    int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
             recv(fd, buf, 4, MSG_WAITALL) == 4 && memcmp(buf, "INFO", 4) == 0;
    close(fd);
    return ok;
}

static int srv_start(srv_t *s, int port) {
    s->port = port ? port : free_port();
    snprintf(s->url, sizeof s->url, "nats://127.0.0.1:%d", s->port);
    char portbuf[8];
    snprintf(portbuf, sizeof portbuf, "%d", s->port);
    const char *argv[] = {"nats-server", "-a", "127.0.0.1", "-p", portbuf, NULL};
    if (live_spawn(&s->pid, argv, 1, answers, &s->port) != 0) {
        fprintf(stderr, "nats-server on %d did not start\n", s->port);
        return -1;
    }
    return 0;
}

static void srv_kill(srv_t *s) {
    live_kill(&s->pid);
}

/* ---- logs and callbacks --------------------------------------------------------- */

typedef struct {
    int n;
    char subject[128], data[128], reply[128];
    mw_nats_t *nc; /* respond on nc when set */
    int free_nc;   /* mw_nats_free(nc) from inside the callback */
} box_t;

static void on_msg(void *data, const mw_nats_msg_t *m) {
    box_t *b = data;
    note_thread();
    b->n++;
    snprintf(b->subject, sizeof b->subject, "%s", m->subject);
    snprintf(b->data, sizeof b->data, "%.*s", (int)m->len, m->data);
    snprintf(b->reply, sizeof b->reply, "%s", m->reply ? m->reply : "");
    if (b->nc && m->reply)
        mw_nats_publish(b->nc, m->reply, NULL, "pong", 4);
    if (b->free_nc) {
        mw_nats_free(b->nc);
        b->nc = NULL;
    }
}

typedef struct {
    int called, err;
    char data[128];
} res_t;

static void on_reply(void *data, const mw_nats_msg_t *m, int err) {
    res_t *r = data;
    note_thread();
    r->called++;
    r->err = err;
    if (m)
        snprintf(r->data, sizeof r->data, "%.*s", (int)m->len, m->data);
}

static void on_ready(void *data, int err) {
    note_thread();
    *(int *)data = err;
}

static mw_nats_t *open_nc(const char *url) {
    mw_nats_t *n = NULL;
    char err[256];
    mw_nats_opts_t o = {.url = url, .reconnect_min_ms = 20, .reconnect_max_ms = 200};
    int rc = mw_nats_create(&n, &loop, &o, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "create: %s\n", err);
    return n;
}

/* open_up opens and waits until connected (the connect is asynchronous). */
static mw_nats_t *open_up(const char *url) {
    mw_nats_t *n = open_nc(url);
    if (n)
        WAIT(mw_nats_up(n), LONG);
    return n;
}

/* settle lets the loop close what a free left (the async and timers). */
static void settle(void) {
    for (int i = 0; i < 10; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
}

/* roundtrip: a request answered by sub's responder, so that everything
 * published before it on the same connection has been delivered. */
static int roundtrip(mw_nats_t *n, const char *subject) {
    res_t r = {0};
    if (mw_nats_request(n, subject, "x", 1, LONG, on_reply, &r) != 0)
        return 0;
    WAIT(r.called, LONG);
    return r.called && r.err == 0;
}

/* ---- tests -------------------------------------------------------------------- */

static void test_url(void) {
    char err[256];
    CHECK_EQ(mw_nats_check_url("nats://127.0.0.1:4222", err, sizeof err), 0);
    CHECK_EQ(mw_nats_check_url("nats://a:1,tls://b:2", err, sizeof err), 0);
    CHECK_EQ(mw_nats_check_url("http://x", err, sizeof err), MW_EINVAL);
    CHECK_EQ(mw_nats_check_url("nats://", err, sizeof err), MW_EINVAL);
    CHECK_EQ(mw_nats_check_url("", err, sizeof err), MW_EINVAL);
    mw_nats_t *n = NULL;
    mw_nats_opts_t o = {.url = "redis://x"};
    CHECK_EQ(mw_nats_create(&n, &loop, &o, err, sizeof err), MW_EINVAL);
    CHECK(n == NULL);
}

static void test_pubsub_wildcards(void) {
    srv_t s;
    REQUIRE(srv_start(&s, 0) == 0);
    mw_nats_t *n = open_up(s.url);
    REQUIRE(n);
    CHECK(mw_nats_up(n));
    box_t star = {0}, rest = {0}, echo = {0};
    echo.nc = n;
    CHECK_EQ(mw_nats_subscribe(n, "orders.*", NULL, on_msg, &star, NULL), 0);
    CHECK_EQ(mw_nats_subscribe(n, "feed.>", NULL, on_msg, &rest, NULL), 0);
    CHECK_EQ(mw_nats_subscribe(n, "echo", NULL, on_msg, &echo, NULL), 0);
    CHECK_EQ(mw_nats_subscribe(n, "bad..subject", NULL, on_msg, &star, NULL), MW_EINVAL);
    CHECK_EQ(mw_nats_publish(n, "orders.*", NULL, "x", 1), MW_EINVAL);
    CHECK_EQ(mw_nats_publish(n, "orders.new", NULL, "o1", 2), 0);
    CHECK_EQ(mw_nats_publish(n, "orders.a.b", NULL, "no", 2), 0);
    CHECK_EQ(mw_nats_publish(n, "feed.a.b.c", NULL, "deep", 4), 0);
    CHECK(roundtrip(n, "echo"));
    CHECK_EQ(star.n, 1);
    CHECK_STR(star.subject, "orders.new");
    CHECK_STR(star.data, "o1");
    CHECK_EQ(rest.n, 1);
    CHECK_STR(rest.subject, "feed.a.b.c");
    CHECK_EQ(off_thread, 0);
    mw_nats_stats_t st;
    mw_nats_stats(n, &st);
    CHECK(st.published >= 4);
    CHECK(st.received >= 3);
    CHECK_EQ(st.subscriptions, 3);
    mw_nats_free(n);
    settle();
    srv_kill(&s);
}

typedef struct {
    int n, in_order;
} seq_t;

static void on_seq(void *data, const mw_nats_msg_t *m) {
    seq_t *q = data;
    note_thread();
    char want[16];
    int len = snprintf(want, sizeof want, "%d", q->n);
    q->in_order += m->len == (size_t)len && memcmp(m->data, want, (size_t)len) == 0;
    q->n++;
}

/* More messages than a loop turn runs: all of them, in order. */
static void test_many(void) {
    srv_t s;
    REQUIRE(srv_start(&s, 0) == 0);
    mw_nats_t *n = open_up(s.url);
    REQUIRE(n);
    seq_t q = {0};
    box_t echo = {0};
    echo.nc = n;
    CHECK_EQ(mw_nats_subscribe(n, "seq", NULL, on_seq, &q, NULL), 0);
    CHECK_EQ(mw_nats_subscribe(n, "echo", NULL, on_msg, &echo, NULL), 0);
    CHECK(roundtrip(n, "echo"));
    enum { N = 5000 };
    for (int i = 0; i < N; i++) {
        char buf[16];
        int len = snprintf(buf, sizeof buf, "%d", i);
        CHECK_EQ(mw_nats_publish(n, "seq", NULL, buf, (size_t)len), 0);
        if (i % 500 == 0)
            uv_run(&loop, UV_RUN_NOWAIT); /* let the writes out */
    }
    WAIT(q.n == N, LONG);
    CHECK_EQ(q.n, N);
    CHECK_EQ(q.in_order, N);
    CHECK_EQ(off_thread, 0);
    mw_nats_free(n);
    settle();
    srv_kill(&s);
}

static void test_request(void) {
    srv_t s;
    REQUIRE(srv_start(&s, 0) == 0);
    mw_nats_t *n = open_up(s.url);
    REQUIRE(n);
    box_t echo = {0}, silent = {0};
    echo.nc = n;
    CHECK_EQ(mw_nats_subscribe(n, "svc.echo", NULL, on_msg, &echo, NULL), 0);
    CHECK_EQ(mw_nats_subscribe(n, "svc.silent", NULL, on_msg, &silent, NULL), 0);
    res_t ok = {0}, timeout = {0}, nobody = {0};
    CHECK_EQ(mw_nats_request(n, "svc.echo", "ping", 4, LONG, on_reply, &ok), 0);
    CHECK_EQ(mw_nats_request(n, "svc.silent", "?", 1, 50, on_reply, &timeout), 0);
    CHECK_EQ(mw_nats_request(n, "nobody.here", "?", 1, LONG, on_reply, &nobody), 0);
    CHECK_EQ(ok.called + timeout.called + nobody.called, 0); /* never from inside the call */
    WAIT(ok.called && timeout.called && nobody.called, LONG);
    CHECK_EQ(ok.called, 1);
    CHECK_EQ(ok.err, 0);
    CHECK_STR(ok.data, "pong");
    CHECK_STR(echo.data, "ping");
    CHECK_EQ(timeout.called, 1);
    CHECK_EQ(timeout.err, MW_ETIMEOUT);
    CHECK_EQ(nobody.called, 1);
    CHECK_EQ(nobody.err, MW_ENORESP);
    /* A request pending at free ends with MW_ECLOSED. */
    res_t pending = {0};
    CHECK_EQ(mw_nats_request(n, "svc.silent", "?", 1, LONG, on_reply, &pending), 0);
    mw_nats_free(n);
    CHECK_EQ(pending.called, 1);
    CHECK_EQ(pending.err, MW_ECLOSED);
    settle();
    CHECK_EQ(off_thread, 0);
    srv_kill(&s);
}

static void test_unsubscribe(void) {
    srv_t s;
    REQUIRE(srv_start(&s, 0) == 0);
    mw_nats_t *n = open_up(s.url);
    REQUIRE(n);
    box_t b = {0}, echo = {0};
    echo.nc = n;
    mw_nats_sub_t *sub = NULL;
    CHECK_EQ(mw_nats_subscribe(n, "t", NULL, on_msg, &b, &sub), 0);
    CHECK_EQ(mw_nats_subscribe(n, "echo", NULL, on_msg, &echo, NULL), 0);
    CHECK_EQ(mw_nats_publish(n, "t", NULL, "1", 1), 0);
    CHECK(roundtrip(n, "echo"));
    CHECK_EQ(b.n, 1);
    /* Published, maybe queued by cnats, then unsubscribed: never delivered. */
    CHECK_EQ(mw_nats_publish(n, "t", NULL, "2", 1), 0);
    mw_nats_unsubscribe(n, sub);
    CHECK_EQ(mw_nats_publish(n, "t", NULL, "3", 1), 0);
    CHECK(roundtrip(n, "echo"));
    CHECK_EQ(b.n, 1);
    mw_nats_free(n);
    settle();
    srv_kill(&s);
}

static void test_kill_and_restart(void) {
    srv_t s;
    REQUIRE(srv_start(&s, 0) == 0);
    log_reset();
    mw_nats_t *n = open_up(s.url);
    REQUIRE(n);
    box_t b = {0}, echo = {0};
    echo.nc = n;
    CHECK_EQ(mw_nats_subscribe(n, "orders.*", NULL, on_msg, &b, NULL), 0);
    CHECK_EQ(mw_nats_subscribe(n, "echo", NULL, on_msg, &echo, NULL), 0);
    box_t q1 = {0}, q2 = {0}; /* one queue group: each message to one of them */
    CHECK_EQ(mw_nats_subscribe(n, "work", "g", on_msg, &q1, NULL), 0);
    CHECK_EQ(mw_nats_subscribe(n, "work", "g", on_msg, &q2, NULL), 0);
    int port = s.port;
    srv_kill(&s);
    WAIT(!mw_nats_up(n), LONG);
    CHECK(!mw_nats_up(n));
    CHECK_STR(mw_nats_last_error(n), "connection lost");
    for (int i = 0; i < 5; i++)
        CHECK_EQ(mw_nats_publish(n, "orders.lost", NULL, "x", 1), MW_ENOTCONN);
    res_t r = {0};
    CHECK_EQ(mw_nats_request(n, "echo", "x", 1, 100, on_reply, &r), MW_ENOTCONN);
    mw_nats_stats_t st;
    mw_nats_stats(n, &st);
    CHECK_EQ(st.errors, 6);
    CHECK_EQ(st.outages, 1);
    CHECK_EQ(log_count("connection lost"), 1);
    CHECK_EQ(log_count("publishing fails while NATS is down"), 1);
    REQUIRE(srv_start(&s, port) == 0);
    WAIT(mw_nats_up(n), LONG);
    CHECK(mw_nats_up(n));
    CHECK_EQ(log_count("reconnected"), 1);
    mw_nats_stats(n, &st);
    CHECK_EQ(st.reconnects, 1);
    CHECK_EQ(mw_nats_publish(n, "orders.back", NULL, "b", 1), 0);
    CHECK(roundtrip(n, "echo"));
    CHECK_EQ(b.n, 1);
    CHECK_STR(b.data, "b");
    /* The queue group came back too: ten messages, ten deliveries in all. */
    for (int i = 0; i < 10; i++)
        CHECK_EQ(mw_nats_publish(n, "work", NULL, "w", 1), 0);
    CHECK(roundtrip(n, "echo"));
    CHECK_EQ(q1.n + q2.n, 10);
    /* A second outage is logged again, once. */
    srv_kill(&s);
    WAIT(!mw_nats_up(n), LONG);
    CHECK_EQ(mw_nats_publish(n, "orders.lost", NULL, "x", 1), MW_ENOTCONN);
    CHECK_EQ(mw_nats_publish(n, "orders.lost", NULL, "x", 1), MW_ENOTCONN);
    CHECK_EQ(log_count("connection lost"), 2);
    CHECK_EQ(log_count("publishing fails while NATS is down"), 2);
    mw_nats_stats(n, &st);
    CHECK_EQ(st.outages, 2);
    mw_nats_free(n); /* while reconnecting */
    settle();
    CHECK_EQ(off_thread, 0);
}

static void test_down_at_start(void) {
    srv_t s = {0};
    s.port = free_port();
    char url[64];
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", s.port);
    log_reset();
    mw_nats_t *n = open_nc(url);
    REQUIRE(n);
    CHECK(!mw_nats_up(n));
    WAIT(log_count("cannot connect") > 0, LONG);
    CHECK_STR(mw_nats_last_error(n), "connection refused");
    CHECK_EQ(log_count("cannot connect"), 1);
    box_t b = {0}, echo = {0};
    echo.nc = n;
    CHECK_EQ(mw_nats_subscribe(n, "early", NULL, on_msg, &b, NULL), 0);
    CHECK_EQ(mw_nats_subscribe(n, "echo", NULL, on_msg, &echo, NULL), 0);
    CHECK_EQ(mw_nats_publish(n, "early", NULL, "x", 1), MW_ENOTCONN);
    WAIT(0, 100); /* a few retries fail: logged once, one outage */
    CHECK_EQ(log_count("cannot connect"), 1);
    mw_nats_stats_t st;
    mw_nats_stats(n, &st);
    CHECK_EQ(st.outages, 1);
    REQUIRE(srv_start(&s, s.port) == 0);
    WAIT(mw_nats_up(n), LONG);
    CHECK(mw_nats_up(n));
    CHECK_EQ(mw_nats_publish(n, "early", NULL, "y", 1), 0);
    CHECK(roundtrip(n, "echo"));
    CHECK_EQ(b.n, 1);
    mw_nats_free(n);
    settle();
    srv_kill(&s);
}

static void test_free_in_callback(void) {
    srv_t s;
    REQUIRE(srv_start(&s, 0) == 0);
    mw_nats_t *n = open_up(s.url);
    REQUIRE(n);
    box_t b = {0};
    b.nc = n;
    b.free_nc = 1;
    CHECK_EQ(mw_nats_subscribe(n, "bye", NULL, on_msg, &b, NULL), 0);
    CHECK_EQ(mw_nats_publish(n, "bye", NULL, "1", 1), 0);
    CHECK_EQ(mw_nats_publish(n, "bye", NULL, "2", 1), 0);
    WAIT(b.n > 0, LONG);
    settle();
    CHECK_EQ(b.n, 1); /* nothing after the free */
    srv_kill(&s);
}

static void test_metrics(void) {
    srv_t s;
    REQUIRE(srv_start(&s, 0) == 0);
    mw_nats_t *n = NULL;
    char err[256], url[96];
    snprintf(url, sizeof url, "nats://me:secret@127.0.0.1:%d", s.port);
    mw_nats_opts_t o = {.url = url};
    REQUIRE(mw_nats_create(&n, &loop, &o, err, sizeof err) == 0);
    CHECK(!mw_nats_up(n)); /* create does not wait for the connection */
    CHECK(mw_nats_connecting(n));
    CHECK_STR(mw_nats_last_error(n), "connecting");
    int ready = -1;
    CHECK_EQ(mw_nats_when_ready(n, on_ready, &ready), 0);
    WAIT(ready != -1, LONG);
    CHECK_EQ(ready, 0);
    CHECK(mw_nats_up(n)); /* the first attempt connected */
    CHECK(!mw_nats_connecting(n));
    CHECK_EQ(mw_nats_when_ready(n, on_ready, &ready), MW_EINVAL);
    char want[128];
    snprintf(want, sizeof want, "nats://127.0.0.1:%d", s.port);
    CHECK_STR(mw_nats_name(n), want);
    CHECK_EQ(mw_nats_publish(n, "m", NULL, "x", 1), 0);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    mw_nats_metrics(f, &n, 1);
    fclose(f);
    char line[256];
    snprintf(line, sizeof line, "moonwire_nats_up{name=\"%s\"} 1\n", want);
    CHECK(strstr(buf, line) != NULL);
    snprintf(line, sizeof line, "moonwire_nats_published_total{name=\"%s\"} 1\n", want);
    CHECK(strstr(buf, line) != NULL);
    CHECK(strstr(buf, "# TYPE moonwire_nats_errors_total counter") != NULL);
    snprintf(line, sizeof line, "moonwire_nats_outages_total{name=\"%s\"} 0\n", want);
    CHECK(strstr(buf, line) != NULL);
    CHECK(strstr(buf, "secret") == NULL);
    free(buf);
    mw_nats_free(n);
    settle();
    srv_kill(&s);
}

/* A publish made just before mw_nats_free still reaches the server: the
 * close flushes what cnats buffered (off the loop, which keeps serving the
 * socket meanwhile) instead of dropping it. */
static void test_publish_then_free(void) {
    srv_t s;
    REQUIRE(srv_start(&s, 0) == 0);
    mw_nats_t *sub = open_up(s.url), *pub = open_up(s.url);
    REQUIRE(sub && pub);
    box_t b = {0}, echo = {0};
    echo.nc = sub;
    CHECK_EQ(mw_nats_subscribe(sub, "last.word", NULL, on_msg, &b, NULL), 0);
    CHECK_EQ(mw_nats_subscribe(sub, "echo", NULL, on_msg, &echo, NULL), 0);
    CHECK(roundtrip(sub, "echo")); /* the subscription is in place */
    CHECK_EQ(mw_nats_publish(pub, "last.word", NULL, "bye", 3), 0);
    mw_nats_free(pub);
    WAIT(b.n == 1, LONG);
    CHECK_EQ(b.n, 1);
    CHECK_STR(b.data, "bye");
    mw_nats_free(sub);
    settle();
    CHECK_EQ(off_thread, 0);
    srv_kill(&s);
}

/* A server that accepts the TCP connection and never speaks: cnats's
 * handshake waits for its INFO, and that wait must not hold the loop. */
typedef struct {
    int lfd, fds[2], accepted;
    uv_async_t *wake;
} mute_t;

static void mute_accept(void *arg) {
    mute_t *m = arg;
    for (int i = 0; i < 2; i++) { /* the probe's connection, then cnats's */
        m->fds[i] = accept(m->lfd, NULL, NULL);
        if (m->fds[i] < 0)
            return;
    }
    __atomic_store_n(&m->accepted, 1, __ATOMIC_SEQ_CST);
    uv_async_send(m->wake);
}

static void on_wake(uv_async_t *a) {
    (void)a;
}

static void test_mute_server(void) {
    mute_t m = {.fds = {-1, -1}};
    int port = free_port();
    m.lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1;
    setsockopt(m.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    REQUIRE(bind(m.lfd, (struct sockaddr *)&a, sizeof a) == 0 && listen(m.lfd, 8) == 0);
    uv_async_t wake;
    uv_async_init(&loop, &wake, on_wake);
    m.wake = &wake;
    uv_thread_t th;
    REQUIRE(uv_thread_create(&th, mute_accept, &m) == 0);
    log_reset();
    char url[64], err[256];
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", port);
    mw_nats_t *n = NULL;
    mw_nats_opts_t o = {.url = url, .connect_timeout_ms = 60000};
    REQUIRE(mw_nats_create(&n, &loop, &o, err, sizeof err) == 0);
    /* cnats is connected and waits for INFO: the loop still turns. */
    WAIT(__atomic_load_n(&m.accepted, __ATOMIC_SEQ_CST), LONG);
    CHECK(__atomic_load_n(&m.accepted, __ATOMIC_SEQ_CST));
    CHECK(mw_nats_connecting(n));
    CHECK_EQ(log_count("cannot connect"), 0);
    /* The server hangs up: the attempt fails, logged once. */
    uv_thread_join(&th);
    for (int i = 0; i < 2; i++)
        if (m.fds[i] >= 0)
            close(m.fds[i]);
    close(m.lfd);
    WAIT(log_count("cannot connect") > 0, LONG);
    CHECK_EQ(log_count("cannot connect"), 1);
    CHECK(!mw_nats_up(n));
    mw_nats_free(n);
    uv_close((uv_handle_t *)&wake, NULL);
    settle();
    CHECK_EQ(off_thread, 0);
}

int main(void) {
    live_loop_init();
    loop_thread = uv_thread_self();
    mw_log_configure(MW_LOG_DEBUG, 0);
    mw_log_set_sink(log_sink, NULL);
    RUN(test_url);
    RUN(test_pubsub_wildcards);
    RUN(test_many);
    RUN(test_request);
    RUN(test_unsubscribe);
    RUN(test_kill_and_restart);
    RUN(test_down_at_start);
    RUN(test_free_in_callback);
    RUN(test_metrics);
    RUN(test_publish_then_free);
    RUN(test_mute_server);
    return live_loop_close() ? 1 : test_summary();
}
