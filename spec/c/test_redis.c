/*
 * test_redis.c - src/redis.c against a real redis-server.
 *
 * Each test starts its own redis-server on a free loopback port (and a unix
 * socket in a temporary directory), killed when the test ends, so a test
 * that pauses, kills or restarts Redis cannot disturb the next one. The
 * loop only ever runs until a condition holds or a generous deadline
 * passes (WAIT, test_live.h), so a slow machine makes a test slower,
 * never wrong, and a bug makes it fail, never hang.
 */
#include "errors.h"
#include "log.h"
#include "redis.h"
#include "test.h"
#include "test_live.h"

#include <hiredis/hiredis.h>

static char tmpdir[64];

#define LONG 10000 /* ms: a deadline nothing correct comes near */

/* ---- redis-server --------------------------------------------------------- */

typedef struct {
    pid_t pid;
    int port;
    char sock[128];
} srv_t;

/* answers: whether redis-server on *port replies to PING (any reply,
 * NOAUTH included). */
static int answers(void *arg) {
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", *(int *)arg, tv);
    redisReply *reply = c && !c->err ? redisCommand(c, "PING") : NULL;
    if (reply)
        freeReplyObject(reply);
    if (c)
        redisFree(c);
    return reply != NULL;
}

/* srv_start runs redis-server on port (0: a free one) and waits until it
 * answers (any reply, NOAUTH included). Returns 0 or -1. */
static int srv_start(srv_t *s, int port, const char *requirepass) {
    s->port = port ? port : free_port();
    snprintf(s->sock, sizeof s->sock, "%s/redis-%d.sock", tmpdir, s->port);
    char portbuf[8];
    snprintf(portbuf, sizeof portbuf, "%d", s->port);
    /* clang-format off */
    const char *argv[32] = {
        "redis-server", "--port", portbuf, "--bind", "127.0.0.1", "-::1",
        "--save", "", "--appendonly", "no", "--dir", tmpdir,
        "--unixsocket", s->sock, "--unixsocketperm", "700",
        "--protected-mode", "no", "--loglevel", "warning"};
    /* clang-format on */
    int n = 20;
    if (requirepass) {
        argv[n++] = "--requirepass";
        argv[n++] = requirepass;
    }
    argv[n] = NULL;
    if (live_spawn(&s->pid, argv, 0, answers, &s->port) != 0) {
        fprintf(stderr, "redis-server on %d did not start\n", s->port);
        return -1;
    }
    return 0;
}

static void srv_kill(srv_t *s) {
    if (s->pid > 0) {
        live_kill(&s->pid);
        unlink(s->sock);
    }
}

/* ---- replies -------------------------------------------------------------- */

typedef struct {
    int called, err, type, order;
    long long integer;
    char str[512];
    size_t len, elements;
    char elem[4][64];
} result_t;

static int sequence;

static void on_reply(void *data, const redisReply *reply, int err) {
    result_t *r = data;
    r->called++;
    r->err = err;
    r->order = ++sequence;
    r->type = reply ? reply->type : -1;
    if (!reply)
        return;
    r->integer = reply->integer;
    if (reply->str) {
        r->len = reply->len < sizeof r->str ? reply->len : sizeof r->str - 1;
        memcpy(r->str, reply->str, r->len);
        r->str[r->len] = '\0';
    }
    r->elements = reply->elements;
    for (size_t i = 0; i < reply->elements && i < 4; i++) {
        const redisReply *e = reply->element[i];
        if (e->type == REDIS_REPLY_INTEGER)
            snprintf(r->elem[i], sizeof r->elem[i], "%lld", e->integer);
        else
            snprintf(r->elem[i], sizeof r->elem[i], "%s",
                     e->type == REDIS_REPLY_NIL ? "(nil)"
                     : e->str                   ? e->str
                                                : "?");
    }
}

static int all_called(const result_t *rs, int n) {
    for (int i = 0; i < n; i++)
        if (!rs[i].called)
            return 0;
    return 1;
}

/* send issues a command of C strings (NULL-terminated list). */
static int send_v(mw_redis_t *r, result_t *res, uint64_t timeout, const char **argv) {
    int argc = 0;
    while (argv[argc])
        argc++;
    memset(res, 0, sizeof *res);
    return mw_redis_command(r, argc, argv, NULL, timeout, on_reply, res);
}

#define SEND(r, res, timeout, ...)                                                                 \
    send_v((r), (res), (timeout), (const char *[]){__VA_ARGS__, NULL})

/* CALL sends and waits for the callback; the rc of mw_redis_command is
 * checked to be 0. */
#define CALL(r, res, ...)                                                                          \
    do {                                                                                           \
        CHECK_EQ(SEND((r), (res), 0, __VA_ARGS__), 0);                                             \
        WAIT((res)->called, LONG);                                                                 \
        CHECK_EQ((res)->called, 1);                                                                \
    } while (0)

/* ---- handles -------------------------------------------------------------- */

static mw_redis_t *open_url(const char *url, const mw_redis_opts_t *base) {
    mw_redis_opts_t o = base ? *base : (mw_redis_opts_t){0};
    o.url = url;
    if (!o.reconnect_min_ms)
        o.reconnect_min_ms = 20;
    if (!o.reconnect_max_ms)
        o.reconnect_max_ms = 100;
    mw_redis_t *r = NULL;
    char err[256];
    int rc = mw_redis_create(&r, &loop, &o, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "mw_redis_create(%s): %s (%s)\n", url, mw_strerror(rc), err);
    return r;
}

static mw_redis_t *open_srv(const srv_t *s, const char *path, const mw_redis_opts_t *base) {
    char url[256];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d%s", s->port, path ? path : "");
    return open_url(url, base);
}

static void count_handle(uv_handle_t *h, void *arg) {
    if (h != (uv_handle_t *)&deadline)
        ++*(int *)arg;
}

/* loop_empty tells whether the loop holds nothing but the deadline timer:
 * every handle of every freed Redis handle closed, no request pending. */
static int loop_empty(void) {
    int n = 0;
    uv_walk(&loop, count_handle, &n);
    return n == 0 && loop.active_reqs.count == 0;
}

/* close_handle frees r and runs the loop until its handles are closed
 * (LeakSanitizer then checks that everything went back). */
static void close_handle(mw_redis_t *r) {
    mw_redis_free(r);
    WAIT(loop_empty(), LONG);
    CHECK(loop_empty());
}

/* ---- tests ------------------------------------------------------------------ */

static void test_url(void) {
    static const char *bad[] = {
        "http://127.0.0.1",  "redis://",           "redis://:6379",        "redis://h:0",
        "redis://h:65536",   "redis://h:12x",      "redis://h/db1",        "redis://h/1?x=2",
        "rediss://h:6380",   "unix:relative.sock", "unix:/tmp/s.sock?x=1", "redis://user@h",
        "redis://[::1:6379", "redis://h o/"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mw_redis_t *r = NULL;
        char err[256] = "";
        mw_redis_opts_t o = {.url = bad[i]};
        CHECK_EQ(mw_redis_create(&r, &loop, &o, err, sizeof err), MW_EINVAL);
        CHECK(r == NULL);
        CHECK(strstr(err, bad[i]) != NULL); /* the message names the URL */
    }
    mw_redis_t *r = NULL;
    mw_redis_opts_t o = {.url = NULL};
    CHECK_EQ(mw_redis_create(&r, &loop, &o, NULL, 0), MW_EINVAL);

    /* Valid URLs: the name is the URL without the password. The handles
     * try to connect in the background and are freed at once. */
    static const struct {
        const char *url, *name;
        int db;
    } good[] = {
        {"redis://127.0.0.1:1/2", "redis://127.0.0.1:1/2", 0},
        {"redis://127.0.0.1:1", "redis://127.0.0.1:1/0", 0},
        {"redis://:p%40ss@[::1]:1/1", "redis://[::1]:1/1", 0},
        {"redis://bob:secret@127.0.0.1:1/", "redis://bob@127.0.0.1:1/0", 0},
        {"redis://127.0.0.1:1/3", "redis://127.0.0.1:1/5", 5},
        {"unix:/tmp/none.sock?db=3", "unix:/tmp/none.sock?db=3", 0},
        {"unix:///tmp/none.sock", "unix:/tmp/none.sock", 0},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        mw_redis_opts_t g = {.url = good[i].url, .db = good[i].db};
        r = NULL;
        CHECK_EQ(mw_redis_create(&r, &loop, &g, NULL, 0), 0);
        REQUIRE(r);
        CHECK_STR(mw_redis_name(r), good[i].name);
        CHECK(!mw_redis_up(r));
        close_handle(r);
    }
    mw_redis_opts_t named = {.url = "redis://127.0.0.1:1", .name = "cache"};
    CHECK_EQ(mw_redis_create(&r, &loop, &named, NULL, 0), 0);
    CHECK_STR(mw_redis_name(r), "cache");
    close_handle(r);
}

static void test_refused_commands(void) {
    CHECK(mw_redis_check_command(1, (const char *[]){"GET"}, NULL) == NULL);
    CHECK(mw_redis_check_command(1, (const char *[]){"subscribe"}, NULL) != NULL);
    CHECK(mw_redis_check_command(1, (const char *[]){"PSUBSCRIBE"}, NULL) != NULL);
    CHECK(mw_redis_check_command(1, (const char *[]){"MONITOR"}, NULL) != NULL);
    CHECK(mw_redis_check_command(3, (const char *[]){"psync", "?", "-1"}, NULL) != NULL);
    CHECK(mw_redis_check_command(2, (const char *[]){"SELECT", "1"}, NULL) != NULL);
    CHECK(mw_redis_check_command(2, (const char *[]){"AUTH", "x"}, NULL) != NULL);
    CHECK(mw_redis_check_command(3, (const char *[]){"client", "reply", "off"}, NULL) != NULL);
    CHECK(mw_redis_check_command(2, (const char *[]){"CLIENT", "LIST"}, NULL) == NULL);
    CHECK(mw_redis_check_command(0, (const char *[]){"GET"}, NULL) != NULL);
    size_t lens[1] = {3};
    CHECK(mw_redis_check_command(1, (const char *[]){"GETX"}, lens) == NULL); /* "GET" */
    mw_redis_t *r = open_url("redis://127.0.0.1:1", NULL);
    REQUIRE(r);
    result_t res;
    CHECK_EQ(SEND(r, &res, 0, "SUBSCRIBE", "x"), MW_EINVAL);
    CHECK_EQ(SEND(r, &res, 0, "select", "2"), MW_EINVAL);
    CHECK_EQ(res.called, 0);
    close_handle(r);
}

static void test_replies(void) {
    srv_t s;
    REQUIRE(srv_start(&s, 0, NULL) == 0);
    mw_redis_t *r = open_srv(&s, NULL, NULL);
    REQUIRE(r);
    result_t res;
    /* Commands issued before the first connection is ready wait for it. */
    CALL(r, &res, "SET", "greeting", "hello");
    CHECK_EQ(res.err, 0);
    CHECK_EQ(res.type, REDIS_REPLY_STATUS);
    CHECK_STR(res.str, "OK");
    CHECK(mw_redis_up(r));
    CALL(r, &res, "GET", "greeting");
    CHECK_EQ(res.type, REDIS_REPLY_STRING);
    CHECK_STR(res.str, "hello");
    CALL(r, &res, "GET", "missing");
    CHECK_EQ(res.err, 0);
    CHECK_EQ(res.type, REDIS_REPLY_NIL);
    CALL(r, &res, "INCR", "n");
    CHECK_EQ(res.type, REDIS_REPLY_INTEGER);
    CHECK_EQ(res.integer, 1);
    CALL(r, &res, "INCR", "n");
    CHECK_EQ(res.integer, 2);
    CALL(r, &res, "RPUSH", "l", "a", "b");
    CHECK_EQ(res.integer, 2);
    CALL(r, &res, "MGET", "greeting", "missing", "n");
    CHECK_EQ(res.type, REDIS_REPLY_ARRAY);
    CHECK_EQ(res.elements, 3);
    CHECK_STR(res.elem[0], "hello");
    CHECK_STR(res.elem[1], "(nil)");
    CHECK_STR(res.elem[2], "2");
    /* A Redis error is a reply, not a failure. */
    CALL(r, &res, "INCR", "greeting");
    CHECK_EQ(res.err, 0);
    CHECK_EQ(res.type, REDIS_REPLY_ERROR);
    CHECK(strncmp(res.str, "ERR", 3) == 0);
    CALL(r, &res, "NOSUCHCOMMAND");
    CHECK_EQ(res.type, REDIS_REPLY_ERROR);
    mw_redis_stats_t st;
    mw_redis_stats(r, &st);
    CHECK_EQ(st.commands, 9);
    CHECK_EQ(st.replies, 9);
    CHECK_EQ(st.error_replies, 2);
    CHECK_EQ(st.failed, 0);
    CHECK_STR(mw_redis_last_error(r), "");
    close_handle(r);

    /* The same server through its unix socket, db 1 from the URL. */
    char url[200];
    snprintf(url, sizeof url, "unix:%s?db=1", s.sock);
    r = open_url(url, NULL);
    REQUIRE(r);
    CALL(r, &res, "GET", "greeting");
    CHECK_EQ(res.type, REDIS_REPLY_NIL); /* db 0 has it, not db 1 */
    CALL(r, &res, "SET", "unix", "yes");
    CHECK_STR(res.str, "OK");
    close_handle(r);
    srv_kill(&s);
}

static void test_binary(void) {
    srv_t s;
    REQUIRE(srv_start(&s, 0, NULL) == 0);
    mw_redis_t *r = open_srv(&s, NULL, NULL);
    REQUIRE(r);
    char key[] = {'k', '\0', 'e', '\r', '\n', 'y'};
    char val[256];
    for (int i = 0; i < 256; i++)
        val[i] = (char)(255 - i);
    const char *argv[3] = {"SET", key, val};
    size_t lens[3] = {3, sizeof key, sizeof val};
    result_t res = {0};
    CHECK_EQ(mw_redis_command(r, 3, argv, lens, 0, on_reply, &res), 0);
    WAIT(res.called, LONG);
    CHECK_STR(res.str, "OK");
    memset(&res, 0, sizeof res);
    argv[0] = "GET";
    CHECK_EQ(mw_redis_command(r, 2, argv, lens, 0, on_reply, &res), 0);
    WAIT(res.called, LONG);
    CHECK_EQ(res.type, REDIS_REPLY_STRING);
    CHECK_MEM(res.str, res.len, val, sizeof val);
    /* The key without its bytes after the NUL is another key. */
    CALL(r, &res, "EXISTS", "k");
    CHECK_EQ(res.integer, 0);
    /* A command longer than the stack buffer it is formatted into, and
     * than the socket takes at once: written in parts, on POLLOUT. */
    size_t big_len = 8000000;
    char *big = malloc(big_len);
    REQUIRE(big);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (char)(i * 7 + 1);
    const char *set_big[3] = {"SET", "big", big};
    size_t set_lens[3] = {3, 3, big_len};
    memset(&res, 0, sizeof res);
    CHECK_EQ(mw_redis_command(r, 3, set_big, set_lens, 0, on_reply, &res), 0);
    WAIT(res.called, LONG);
    CHECK_STR(res.str, "OK");
    CALL(r, &res, "STRLEN", "big");
    CHECK_EQ(res.integer, 8000000);
    CALL(r, &res, "GETRANGE", "big", "7999000", "7999399");
    CHECK_MEM(res.str, res.len, big + 7999000, 400);
    free(big);
    close_handle(r);
    srv_kill(&s);
}

static long long incr_seen[1000];
static int incr_n;

static void on_incr(void *data, const redisReply *reply, int err) {
    (void)data;
    incr_seen[incr_n++] = !err && reply && reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;
}

static void test_pipeline(void) {
    srv_t s;
    REQUIRE(srv_start(&s, 0, NULL) == 0);
    mw_redis_t *r = open_srv(&s, NULL, NULL);
    REQUIRE(r);
    result_t res;
    CALL(r, &res, "PING");
    /* 1000 commands issued in one go, before the loop runs again: they
     * pipeline on the one connection and come back in order. */
    incr_n = 0;
    const char *argv[2] = {"INCR", "counter"};
    for (int i = 0; i < 1000; i++)
        CHECK_EQ(mw_redis_command(r, 2, argv, NULL, 0, on_incr, NULL), 0);
    WAIT(incr_n == 1000, LONG);
    CHECK_EQ(incr_n, 1000);
    int in_order = 1;
    for (int i = 0; i < incr_n; i++)
        in_order &= incr_seen[i] == i + 1;
    CHECK(in_order);
    mw_redis_stats_t st;
    mw_redis_stats(r, &st);
    CHECK_EQ(st.commands, 1001);
    CHECK_EQ(st.replies, 1001);
    close_handle(r);
    srv_kill(&s);
}

static void test_auth(void) {
    srv_t s;
    REQUIRE(srv_start(&s, 0, "p@ss:word") == 0);
    result_t res;
    char url[200];
    /* The password from the URL, %-decoded. */
    snprintf(url, sizeof url, "redis://:p%%40ss%%3Aword@127.0.0.1:%d/2", s.port);
    mw_redis_t *r = open_url(url, NULL);
    REQUIRE(r);
    CALL(r, &res, "SET", "k", "v");
    CHECK_STR(res.str, "OK");
    close_handle(r);
    /* The password from the options. */
    mw_redis_opts_t o = {.password = "p@ss:word"};
    r = open_srv(&s, "/2", &o);
    REQUIRE(r);
    CALL(r, &res, "GET", "k");
    CHECK_STR(res.str, "v");
    close_handle(r);

    /* A wrong password: the command that waited for the first connection
     * fails, the handle is down and says why, later commands fail at once. */
    log_reset();
    o.password = "wrong";
    r = open_srv(&s, NULL, &o);
    REQUIRE(r);
    CHECK_EQ(SEND(r, &res, 0, "GET", "k"), 0);
    WAIT(res.called, LONG);
    CHECK_EQ(res.called, 1);
    CHECK_EQ(res.err, MW_ENOTCONN);
    CHECK(!mw_redis_up(r));
    CHECK(strstr(mw_redis_last_error(r), "AUTH failed") != NULL);
    CHECK_EQ(SEND(r, &res, 0, "GET", "k"), MW_ENOTCONN);
    /* It keeps retrying (with backoff) and logs the outage once. */
    mw_redis_stats_t st;
    WAIT((mw_redis_stats(r, &st), st.connect_errors >= 3), LONG);
    CHECK(st.connect_errors >= 3);
    CHECK_EQ(log_count("cannot connect"), 1);
    close_handle(r);

    /* No password at all: the PING of the handshake gets NOAUTH. */
    r = open_srv(&s, NULL, NULL);
    REQUIRE(r);
    WAIT(mw_redis_last_error(r)[0], LONG);
    CHECK(strstr(mw_redis_last_error(r), "NOAUTH") != NULL);
    close_handle(r);
    srv_kill(&s);
}

static void test_select(void) {
    srv_t s;
    REQUIRE(srv_start(&s, 0, NULL) == 0);
    result_t res;
    mw_redis_t *db3 = open_srv(&s, "/3", NULL);
    mw_redis_t *db0 = open_srv(&s, NULL, NULL);
    mw_redis_opts_t o = {.db = 3};
    mw_redis_t *opt3 = open_srv(&s, "/0", &o);
    REQUIRE(db3 && db0 && opt3);
    CALL(db3, &res, "SET", "where", "three");
    CALL(db0, &res, "GET", "where");
    CHECK_EQ(res.type, REDIS_REPLY_NIL);
    CALL(opt3, &res, "GET", "where");
    CHECK_STR(res.str, "three");
    mw_redis_free(db3);
    mw_redis_free(db0);
    close_handle(opt3);
    /* SELECT past the server's databases refuses the connection. */
    mw_redis_t *bad = open_srv(&s, "/999", NULL);
    REQUIRE(bad);
    WAIT(mw_redis_last_error(bad)[0], LONG);
    CHECK(strstr(mw_redis_last_error(bad), "SELECT failed") != NULL);
    close_handle(bad);
    srv_kill(&s);
}

static void test_timeout(void) {
    srv_t s;
    REQUIRE(srv_start(&s, 0, NULL) == 0);
    mw_redis_t *r = open_srv(&s, NULL, NULL);
    REQUIRE(r);
    result_t pause, slow, quick, dflt, after;
    CALL(r, &pause, "SET", "k", "v");
    /* Redis holds every client for 1500 ms: the commands behind the pause
     * time out by their own deadline, earliest first, and the late replies
     * are dropped when they come. */
    CALL(r, &pause, "CLIENT", "PAUSE", "1500", "ALL");
    CHECK_STR(pause.str, "OK");
    CHECK_EQ(SEND(r, &slow, 300, "GET", "k"), 0);
    CHECK_EQ(SEND(r, &quick, 50, "GET", "k"), 0);
    CHECK_EQ(SEND(r, &dflt, 0, "GET", "k"), 0); /* 5 s */
    WAIT(slow.called && quick.called, LONG);
    CHECK_EQ(quick.err, MW_ETIMEOUT);
    CHECK_EQ(slow.err, MW_ETIMEOUT);
    CHECK(quick.order < slow.order);
    CHECK_EQ(dflt.called, 0);
    /* Once the pause ends, the command with the default timeout gets its
     * reply; the timed-out ones are not called again. */
    WAIT(dflt.called, LONG);
    CHECK_EQ(dflt.err, 0);
    CHECK_STR(dflt.str, "v");
    CALL(r, &after, "GET", "k");
    CHECK_STR(after.str, "v");
    CHECK_EQ(quick.called, 1);
    CHECK_EQ(slow.called, 1);
    mw_redis_stats_t st;
    mw_redis_stats(r, &st);
    CHECK_EQ(st.timeouts, 2);
    CHECK_EQ(st.failed, 2);
    CHECK(mw_redis_up(r)); /* a timeout does not drop the connection */
    close_handle(r);
    srv_kill(&s);
}

static void test_connect_refused(void) {
    log_reset();
    int port = free_port(); /* nothing listens there */
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    /* A refusal is seen as such, not as a connect timeout (a minute here). */
    mw_redis_opts_t o = {.connect_timeout_ms = 60000};
    mw_redis_t *r = open_url(url, &o);
    REQUIRE(r);
    /* Issued during the first attempt: refused at once, or told so as soon
     * as the attempt fails; never left waiting. */
    result_t first;
    int rc = SEND(r, &first, 0, "PING");
    if (rc == 0) {
        WAIT(first.called, LONG);
        CHECK_EQ(first.err, MW_ENOTCONN);
    } else {
        CHECK_EQ(rc, MW_ENOTCONN);
    }
    WAIT(mw_redis_last_error(r)[0], LONG);
    CHECK(!mw_redis_up(r));
    CHECK(mw_redis_last_error(r)[0] != '\0');
    /* Down: fail fast, without calling back. */
    result_t res;
    CHECK_EQ(SEND(r, &res, 0, "PING"), MW_ENOTCONN);
    CHECK_EQ(res.called, 0);
    mw_redis_stats_t st;
    WAIT((mw_redis_stats(r, &st), st.connect_errors >= 4), LONG);
    CHECK(st.connect_errors >= 4);
    CHECK_EQ(log_count("cannot connect"), 1); /* once per outage */
    close_handle(r);

    /* A host name goes through uv_getaddrinfo; commands wait for it. */
    srv_t s;
    REQUIRE(srv_start(&s, 0, NULL) == 0);
    snprintf(url, sizeof url, "redis://localhost:%d", s.port);
    r = open_url(url, NULL);
    REQUIRE(r);
    /* Issued while the name resolves: held (a copy of the formatted
     * command), sent once the first connection exists. */
    CALL(r, &res, "ECHO", "held");
    CHECK_STR(res.str, "held");
    WAIT(mw_redis_up(r), LONG);
    CHECK(mw_redis_up(r));
    CALL(r, &res, "PING");
    CHECK_STR(res.str, "PONG");
    close_handle(r);
    srv_kill(&s);
}

static void test_connect_timeout(void) {
    /* A socket that listens but never answers: TCP connects (the kernel
     * accepts into the backlog), the handshake PING gets no reply. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    REQUIRE(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 16) == 0 &&
            getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", ntohs(a.sin_port));
    mw_redis_opts_t o = {.connect_timeout_ms = 100};
    mw_redis_t *r = open_url(url, &o);
    REQUIRE(r);
    result_t res;
    CHECK_EQ(SEND(r, &res, 0, "PING"), 0); /* waits for the first attempt */
    WAIT(res.called, LONG);
    CHECK_EQ(res.err, MW_ENOTCONN);
    CHECK(strstr(mw_redis_last_error(r), "no answer within 100 ms") != NULL);
    CHECK_EQ(SEND(r, &res, 0, "PING"), MW_ENOTCONN);
    close_handle(r);
    close(fd);
}

static void test_kill_and_restart(void) {
    srv_t s;
    REQUIRE(srv_start(&s, 0, NULL) == 0);
    mw_redis_opts_t o = {.connect_timeout_ms = 60000};
    mw_redis_t *r = open_srv(&s, NULL, &o);
    REQUIRE(r);
    result_t res, pending[10];
    CALL(r, &res, "SET", "k", "before");
    log_reset();
    /* Commands in flight when Redis dies get MW_ECONNLOST, each once. */
    CALL(r, &res, "CLIENT", "PAUSE", "5000", "ALL");
    for (int i = 0; i < 10; i++)
        CHECK_EQ(SEND(r, &pending[i], 0, "GET", "k"), 0);
    WAIT(0, 50); /* they go out */
    srv_kill(&s);
    WAIT(all_called(pending, 10), LONG);
    for (int i = 0; i < 10; i++) {
        CHECK_EQ(pending[i].called, 1);
        CHECK_EQ(pending[i].err, MW_ECONNLOST);
    }
    CHECK(!mw_redis_up(r));
    CHECK_EQ(SEND(r, &res, 0, "GET", "k"), MW_ENOTCONN); /* fail fast */
    CHECK_EQ(log_count("connection lost"), 1);
    /* It keeps trying while Redis is away, without logging each attempt. */
    mw_redis_stats_t st;
    WAIT((mw_redis_stats(r, &st), st.connect_errors >= 3), LONG);
    CHECK_EQ(log_count("connection lost"), 1);
    CHECK_EQ(log_count("cannot connect"), 0);
    /* Redis comes back on the same port: the handle reconnects. */
    REQUIRE(srv_start(&s, s.port, NULL) == 0);
    WAIT(mw_redis_up(r), LONG);
    CHECK(mw_redis_up(r));
    CHECK_EQ(log_count("connected again"), 1);
    CALL(r, &res, "SET", "k", "after");
    CHECK_STR(res.str, "OK");
    CALL(r, &res, "GET", "k");
    CHECK_STR(res.str, "after");
    mw_redis_stats(r, &st);
    CHECK_EQ(st.reconnects, 1);
    close_handle(r);
    srv_kill(&s);
}

/* ---- pub/sub ----------------------------------------------------------------- */

typedef struct {
    int n;
    char channel[64], pattern[64], msg[64];
    size_t msglen;
    int has_pattern;
    mw_redis_t *free_me;
} inbox_t;

static void on_msg(void *data, const char *ch, size_t chlen, const char *pat, size_t patlen,
                   const char *msg, size_t len) {
    inbox_t *in = data;
    in->n++;
    snprintf(in->channel, sizeof in->channel, "%.*s", (int)chlen, ch);
    in->has_pattern = pat != NULL;
    snprintf(in->pattern, sizeof in->pattern, "%.*s", (int)patlen, pat ? pat : "");
    in->msglen = len < sizeof in->msg ? len : sizeof in->msg;
    memcpy(in->msg, msg, in->msglen);
    if (in->free_me) {
        mw_redis_free(in->free_me);
        in->free_me = NULL;
    }
}

static void test_pubsub(void) {
    srv_t s;
    REQUIRE(srv_start(&s, 0, NULL) == 0);
    mw_redis_t *r = open_srv(&s, NULL, NULL);
    REQUIRE(r);
    inbox_t a = {0}, b = {0}, p = {0};
    mw_redis_sub_t *sa, *sb, *sp;
    CHECK_EQ(mw_redis_subscribe(r, "news", 4, 0, on_msg, &a, &sa), 0);
    CHECK_EQ(mw_redis_subscribe(r, "news", 4, 0, on_msg, &b, &sb), 0);
    CHECK_EQ(mw_redis_subscribe(r, "ne*", 3, 1, on_msg, &p, &sp), 0);
    CHECK_EQ(mw_redis_subscribe(r, "", 0, 0, on_msg, &p, &sp), MW_EINVAL);
    WAIT(mw_redis_sub_active(sa) && mw_redis_sub_active(sb) && mw_redis_sub_active(sp), LONG);
    REQUIRE(mw_redis_sub_active(sa) && mw_redis_sub_active(sp));
    const char *argv[3] = {"PUBLISH", "news", "he\0llo"};
    size_t lens[3] = {7, 4, 6};
    result_t res = {0};
    CHECK_EQ(mw_redis_command(r, 3, argv, lens, 0, on_reply, &res), 0);
    WAIT(res.called && a.n && b.n && p.n, LONG);
    CHECK_EQ(res.integer, 2); /* one connection: the channel and the pattern */
    CHECK_EQ(a.n, 1);
    CHECK_EQ(b.n, 1);
    CHECK_STR(a.channel, "news");
    CHECK(!a.has_pattern);
    CHECK_MEM(a.msg, a.msglen, "he\0llo", 6);
    CHECK_EQ(p.n, 1);
    CHECK_STR(p.channel, "news");
    CHECK(p.has_pattern);
    CHECK_STR(p.pattern, "ne*");
    /* A channel only the pattern matches. */
    CALL(r, &res, "PUBLISH", "nest", "x");
    WAIT(p.n == 2, LONG);
    CHECK_EQ(p.n, 2);
    CHECK_STR(p.channel, "nest");
    CHECK_EQ(a.n, 1);
    /* Unsubscribed: that callback is not called again; the other
     * subscriber of the channel still is. */
    mw_redis_unsubscribe(r, sb);
    CALL(r, &res, "PUBLISH", "news", "two");
    WAIT(a.n == 2 && p.n == 3, LONG);
    CHECK_EQ(a.n, 2);
    CHECK_EQ(b.n, 1);
    mw_redis_stats_t st;
    mw_redis_stats(r, &st);
    CHECK_EQ(st.subscriptions, 2);
    /* The last subscriber gone, the channel is unsubscribed in Redis. */
    mw_redis_unsubscribe(r, sa);
    mw_redis_stats(r, &st);
    CHECK_EQ(st.subscriptions, 1);
    result_t numsub;
    int gone = 0;
    for (int i = 0; i < 100 && !gone; i++) {
        CALL(r, &numsub, "PUBSUB", "NUMSUB", "news");
        gone = numsub.elements == 2 && strcmp(numsub.elem[1], "0") == 0;
        if (!gone)
            WAIT(0, 20);
    }
    CHECK(gone);
    CALL(r, &res, "PUBLISH", "news", "three");
    CHECK_EQ(res.integer, 1); /* the pattern only */
    WAIT(p.n == 4, LONG);
    CHECK_EQ(a.n, 2);
    CHECK_EQ(p.n, 4);
    mw_redis_stats(r, &st);
    CHECK_EQ(st.messages, 7);
    close_handle(r);
    srv_kill(&s);
}

static void test_resubscribe(void) {
    srv_t s;
    REQUIRE(srv_start(&s, 0, NULL) == 0);
    mw_redis_t *r = open_srv(&s, NULL, NULL);
    REQUIRE(r);
    inbox_t a = {0}, p = {0};
    mw_redis_sub_t *sa, *sp;
    CHECK_EQ(mw_redis_subscribe(r, "alerts", 6, 0, on_msg, &a, &sa), 0);
    CHECK_EQ(mw_redis_subscribe(r, "log.*", 5, 1, on_msg, &p, &sp), 0);
    WAIT(mw_redis_sub_active(sa) && mw_redis_sub_active(sp), LONG);
    REQUIRE(mw_redis_sub_active(sa) && mw_redis_sub_active(sp));
    srv_kill(&s);
    WAIT(!mw_redis_sub_active(sa) && !mw_redis_up(r), LONG);
    CHECK(!mw_redis_sub_active(sa));
    /* Subscribing while Redis is down is kept and sent on reconnect. */
    inbox_t late = {0};
    mw_redis_sub_t *sl;
    CHECK_EQ(mw_redis_subscribe(r, "late", 4, 0, on_msg, &late, &sl), 0);
    REQUIRE(srv_start(&s, s.port, NULL) == 0);
    WAIT(mw_redis_sub_active(sa) && mw_redis_sub_active(sp) && mw_redis_sub_active(sl) &&
             mw_redis_up(r),
         LONG);
    REQUIRE(mw_redis_sub_active(sa) && mw_redis_sub_active(sp) && mw_redis_sub_active(sl));
    REQUIRE(mw_redis_up(r));
    result_t res;
    CALL(r, &res, "PUBLISH", "alerts", "fire");
    CALL(r, &res, "PUBLISH", "log.app", "line");
    CALL(r, &res, "PUBLISH", "late", "hi");
    WAIT(a.n && p.n && late.n, LONG);
    CHECK_STR(a.msg, "fire");
    CHECK_STR(p.channel, "log.app");
    CHECK_STR(late.msg, "hi");
    close_handle(r);
    srv_kill(&s);
}

/* ---- free -------------------------------------------------------------------- */

static void test_free_pending(void) {
    srv_t s;
    REQUIRE(srv_start(&s, 0, NULL) == 0);
    mw_redis_t *r = open_srv(&s, NULL, NULL);
    REQUIRE(r);
    result_t res, pending[5];
    CALL(r, &res, "CLIENT", "PAUSE", "1000", "ALL");
    for (int i = 0; i < 5; i++)
        CHECK_EQ(SEND(r, &pending[i], 0, "GET", "k"), 0);
    inbox_t in = {0};
    mw_redis_sub_t *sub;
    CHECK_EQ(mw_redis_subscribe(r, "c", 1, 0, on_msg, &in, &sub), 0);
    WAIT(0, 20);
    /* Before mw_redis_free returns, every pending command heard "closed". */
    mw_redis_free(r);
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(pending[i].called, 1);
        CHECK_EQ(pending[i].err, MW_ECLOSED);
    }
    WAIT(loop_empty(), LONG);
    CHECK(loop_empty());
    for (int i = 0; i < 5; i++)
        CHECK_EQ(pending[i].called, 1);
    CHECK_EQ(in.n, 0);

    /* Freed while the host name is still being resolved. */
    mw_redis_t *named = open_url("redis://localhost:1", NULL);
    REQUIRE(named);
    CHECK_EQ(SEND(named, &res, 0, "PING"), 0);
    mw_redis_free(named);
    CHECK_EQ(res.called, 1);
    CHECK_EQ(res.err, MW_ECLOSED);
    WAIT(loop_empty(), LONG);
    CHECK(loop_empty());
    srv_kill(&s);
}

typedef struct {
    mw_redis_t *r;
    int called, err;
    int free_it;
    result_t *also; /* issue one more command from the callback */
    int also_rc;
} freer_t;

static void on_reply_free(void *data, const redisReply *reply, int err) {
    (void)reply;
    freer_t *f = data;
    f->called++;
    f->err = err;
    if (f->also)
        f->also_rc = SEND(f->r, f->also, 0, "PING");
    if (f->free_it)
        mw_redis_free(f->r);
}

static void test_free_in_callback(void) {
    srv_t s;
    REQUIRE(srv_start(&s, 0, NULL) == 0);

    /* From a reply callback, with more replies pipelined behind it. */
    mw_redis_t *r = open_srv(&s, NULL, NULL);
    REQUIRE(r);
    result_t res, rest[3], extra;
    CALL(r, &res, "PING");
    freer_t f = {.r = r, .free_it = 1, .also = &extra};
    const char *argv[2] = {"INCR", "x"};
    CHECK_EQ(mw_redis_command(r, 2, argv, NULL, 0, on_reply_free, &f), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(SEND(r, &rest[i], 0, "INCR", "x"), 0);
    WAIT(f.called, LONG);
    CHECK_EQ(f.called, 1);
    CHECK_EQ(f.err, 0);
    CHECK_EQ(f.also_rc, 0); /* issued before the free: it heard "closed" */
    CHECK_EQ(extra.called, 1);
    CHECK_EQ(extra.err, MW_ECLOSED);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(rest[i].called, 1);
        CHECK_EQ(rest[i].err, MW_ECLOSED);
    }
    WAIT(loop_empty(), LONG);
    CHECK(loop_empty());

    /* From a message callback. */
    r = open_srv(&s, NULL, NULL);
    REQUIRE(r);
    inbox_t in = {.free_me = r}, in2 = {0};
    mw_redis_sub_t *sub, *sub2;
    CHECK_EQ(mw_redis_subscribe(r, "bye", 3, 0, on_msg, &in, &sub), 0);
    CHECK_EQ(mw_redis_subscribe(r, "bye", 3, 0, on_msg, &in2, &sub2), 0);
    WAIT(mw_redis_sub_active(sub), LONG);
    CALL(r, &res, "PUBLISH", "bye", "now");
    WAIT(in.n, LONG);
    CHECK_EQ(in.n, 1);
    WAIT(loop_empty(), LONG);
    CHECK(loop_empty());
    CHECK_EQ(in2.n, 0); /* after the free, nobody else hears it */

    /* From a timeout callback. */
    r = open_srv(&s, NULL, NULL);
    REQUIRE(r);
    CALL(r, &res, "CLIENT", "PAUSE", "500", "ALL");
    freer_t t = {.r = r, .free_it = 1};
    CHECK_EQ(mw_redis_command(r, 2, argv, NULL, 20, on_reply_free, &t), 0);
    CHECK_EQ(SEND(r, &rest[0], 0, "GET", "x"), 0);
    WAIT(t.called, LONG);
    CHECK_EQ(t.err, MW_ETIMEOUT);
    CHECK_EQ(rest[0].err, MW_ECLOSED);
    WAIT(loop_empty(), LONG);
    CHECK(loop_empty());
    WAIT(0, 600); /* the pause ends */

    /* From the callback of a command the lost connection failed. */
    r = open_srv(&s, NULL, NULL);
    REQUIRE(r);
    CALL(r, &res, "CLIENT", "PAUSE", "5000", "ALL");
    freer_t l = {.r = r, .free_it = 1};
    CHECK_EQ(mw_redis_command(r, 2, argv, NULL, 0, on_reply_free, &l), 0);
    CHECK_EQ(SEND(r, &rest[1], 0, "GET", "x"), 0);
    WAIT(0, 50);
    srv_kill(&s);
    WAIT(l.called && rest[1].called, LONG);
    CHECK_EQ(l.called, 1);
    CHECK_EQ(l.err, MW_ECONNLOST);
    CHECK_EQ(rest[1].called, 1);
    CHECK(rest[1].err == MW_ECLOSED || rest[1].err == MW_ECONNLOST);
    WAIT(loop_empty(), LONG);
    CHECK(loop_empty());
}

static void test_metrics(void) {
    srv_t s;
    REQUIRE(srv_start(&s, 0, NULL) == 0);
    mw_redis_t *r = open_srv(&s, NULL, NULL);
    mw_redis_opts_t o = {.name = "sess\"ions"};
    mw_redis_t *r2 = open_url("redis://127.0.0.1:1", &o);
    REQUIRE(r && r2);
    result_t res;
    CALL(r, &res, "SET", "a", "1");
    CALL(r, &res, "GET", "a");
    CALL(r, &res, "BADCMD");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    mw_redis_t *both[2] = {r, r2};
    mw_redis_metrics(f, both, 2);
    fclose(f);
    char want[256];
    snprintf(want, sizeof want, "moonwire_redis_up{name=\"redis://127.0.0.1:%d/0\"} 1\n", s.port);
    CHECK(strstr(buf, want) != NULL);
    CHECK(strstr(buf, "moonwire_redis_up{name=\"sess\\\"ions\"} 0\n") != NULL);
    snprintf(want, sizeof want,
             "moonwire_redis_commands_total{name=\"redis://127.0.0.1:%d/0\"} 3\n", s.port);
    CHECK(strstr(buf, want) != NULL);
    snprintf(want, sizeof want,
             "moonwire_redis_error_replies_total{name=\"redis://127.0.0.1:%d/0\"} 1\n", s.port);
    CHECK(strstr(buf, want) != NULL);
    snprintf(want, sizeof want,
             "moonwire_redis_command_duration_seconds_bucket{name=\"redis://127.0.0.1:%d/0\","
             "le=\"+Inf\"} 3\n",
             s.port);
    CHECK(strstr(buf, want) != NULL);
    snprintf(want, sizeof want,
             "moonwire_redis_command_duration_seconds_count{name=\"redis://127.0.0.1:%d/0\"} 3\n",
             s.port);
    CHECK(strstr(buf, want) != NULL);
    /* Every family once, with HELP and TYPE. */
    int help = 0, type = 0;
    for (char *p = buf; (p = strstr(p, "# TYPE moonwire_redis_up ")); p++)
        type++;
    for (char *p = buf; (p = strstr(p, "# HELP moonwire_redis_command_duration_seconds ")); p++)
        help++;
    CHECK_EQ(type, 1);
    CHECK_EQ(help, 1);
    CHECK(strstr(buf, "# TYPE moonwire_redis_command_duration_seconds histogram\n") != NULL);
    free(buf);
    /* No handle, nothing written. */
    f = open_memstream(&buf, &len);
    mw_redis_metrics(f, NULL, 0);
    fclose(f);
    CHECK_EQ(len, 0);
    free(buf);
    mw_redis_free(r2);
    close_handle(r);
    srv_kill(&s);
}

int main(void) {
    live_loop_init();
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mw-redis-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    mw_log_configure(MW_LOG_DEBUG, 0);
    mw_log_set_sink(log_sink, NULL);
    RUN(test_url);
    RUN(test_refused_commands);
    RUN(test_replies);
    RUN(test_binary);
    RUN(test_pipeline);
    RUN(test_auth);
    RUN(test_select);
    RUN(test_timeout);
    RUN(test_connect_refused);
    RUN(test_connect_timeout);
    RUN(test_kill_and_restart);
    RUN(test_pubsub);
    RUN(test_resubscribe);
    RUN(test_free_pending);
    RUN(test_free_in_callback);
    RUN(test_metrics);
    int left = live_loop_close();
    rmdir(tmpdir);
    return left ? 1 : test_summary();
}
