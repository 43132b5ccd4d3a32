/*
 * test_hub.c - the hub's records (src/hub.c): written then parsed back,
 * taken whole from a stream that delivers them in pieces, bad bytes
 * refused; and the supervisor's end (src/hubd.c) with two workers' ends
 * on one loop, in one process: subscriptions confirmed, then honoured;
 * what one loop iteration queues written with one write on each side, a
 * burst bigger than the sockets' buffers passed on whole and in order.
 */
#include "errors.h"
#include "hub.h"
#include "hubd.h"
#include "test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void test_round_trip(void) {
    char buf[64];
    size_t n = mw_hub_record_size(7, 5);
    CHECK_EQ(n, MW_HUB_HEADER + 12);
    mw_hub_record_write(buf, MW_HUB_PUB, 0, "mw:room", 7, "a\0b\nc", 5);
    mw_hub_record_t rec;
    CHECK_EQ(mw_hub_record_parse(buf, n - 1, &rec), 0); /* not all there */
    CHECK_EQ(mw_hub_record_parse(buf, n, &rec), (long)n);
    CHECK_EQ(rec.op, MW_HUB_PUB);
    CHECK_MEM(rec.channel, rec.channel_len, "mw:room", 7);
    CHECK_MEM(rec.payload, rec.payload_len, "a\0b\nc", 5);
    mw_hub_record_write(buf, MW_HUB_SUB, 0, "x", 1, NULL, 0);
    CHECK_EQ(mw_hub_record_parse(buf, mw_hub_record_size(1, 0), &rec), MW_HUB_HEADER + 1);
    CHECK_EQ(rec.payload_len, 0);
}

static void test_bad_records(void) {
    char buf[16];
    mw_hub_record_t rec;
    mw_hub_record_write(buf, MW_HUB_PUB, 0, "ch", 2, "p", 1);
    buf[4] = MW_HUB_OP_MAX + 1; /* no such op */
    CHECK_EQ(mw_hub_record_parse(buf, sizeof buf, &rec), MW_EPROTO);
    mw_hub_record_write(buf, MW_HUB_PUB, 0, "ch", 2, "p", 1);
    buf[7] = 5; /* a channel longer than the record */
    CHECK_EQ(mw_hub_record_parse(buf, sizeof buf, &rec), MW_EPROTO);
    memset(buf, 0xff, 4); /* a length past the limit */
    CHECK_EQ(mw_hub_record_parse(buf, sizeof buf, &rec), MW_EPROTO);
}

static int seen;
static char last[32];

static void count(void *data, const mw_hub_record_t *rec) {
    (void)data;
    seen++;
    memcpy(last, rec->payload, rec->payload_len);
    last[rec->payload_len] = '\0';
}

/* Three records arrive one byte at a time: each comes out whole, once. */
static void test_reader_pieces(void) {
    char stream[96];
    size_t len = 0;
    const char *payloads[] = {"one", "two", "three"};
    for (int i = 0; i < 3; i++) {
        size_t pl = strlen(payloads[i]);
        mw_hub_record_write(stream + len, MW_HUB_PUB, 0, "c", 1, payloads[i], pl);
        len += mw_hub_record_size(1, pl);
    }
    mw_hub_reader_t r = {0};
    seen = 0;
    for (size_t i = 0; i < len; i++) {
        uv_buf_t b;
        REQUIRE(mw_hub_reader_alloc(&r, &b) == 0);
        b.base[0] = stream[i];
        CHECK_EQ(mw_hub_reader_take(&r, 1, count, NULL), 0);
    }
    CHECK_EQ(seen, 3);
    CHECK_STR(last, "three");
    CHECK_EQ(r.len, 0);
    mw_hub_reader_free(&r);
}

/* ---- a supervisor and two workers on one loop ---------------------------- */

/* What a worker's end received: a count and a log "op:worker:channel=payload;". */
typedef struct {
    int n;
    char channel[32], payload[64];
    char log[512];
    int seq, out_of_order; /* channel "seq": payloads "0 ...", "1 ...", ... */
} inbox_t;

static void on_message(void *data, const mw_hub_record_t *rec) {
    static const char *const ops[] = {"?",   "sub", "unsub", "pub",    "ack",
                                      "set", "del", "exit",  "report", "reload"};
    inbox_t *in = data;
    in->n++;
    snprintf(in->channel, sizeof in->channel, "%.*s", (int)rec->channel_len, rec->channel);
    snprintf(in->payload, sizeof in->payload, "%.*s", (int)rec->payload_len, rec->payload);
    if (rec->channel_len == 3 && memcmp(rec->channel, "seq", 3) == 0) {
        if (atoi(in->payload) != in->seq++)
            in->out_of_order++;
        return;
    }
    size_t used = strlen(in->log);
    snprintf(in->log + used, sizeof in->log - used, "%s:%d:%s=%s;", ops[rec->op], rec->worker,
             in->channel, in->payload);
}

typedef struct {
    uv_loop_t loop;
    mw_hubd_t *hubd;
    mw_hub_t *w[2];
    inbox_t in[2];
} bench_t;

/* open_worker attaches slot i and opens its worker's end (on a dup of
 * the fd a spawned worker would inherit). */
static int open_worker(bench_t *b, int i) {
    int fd;
    if (mw_hubd_attach(b->hubd, i, &fd) != 0)
        return -1;
    int mine = dup(fd);
    mw_hubd_spawned(b->hubd, i);
    memset(&b->in[i], 0, sizeof b->in[i]);
    return mine < 0 || mw_hub_open(&b->w[i], &b->loop, mine, on_message, &b->in[i]) != 0 ? -1 : 0;
}

/* open_pair makes the supervisor's hub and two workers' ends of it. */
static int open_pair(bench_t *b) {
    memset(b, 0, sizeof *b);
    uv_loop_init(&b->loop);
    if (mw_hubd_create(&b->hubd, &b->loop) != 0)
        return -1;
    for (int i = 0; i < 2; i++)
        if (open_worker(b, i) != 0)
            return -1;
    return 0;
}

static void on_deadline(uv_timer_t *t) {
    *(int *)t->data = 1;
}

/* run_until turns the loop until done(b), or 10 s passed (a bound for a
 * failing test, not a timing: the loop runs on events). */
static int run_until(bench_t *b, int (*done)(bench_t *)) {
    int late = 0;
    uv_timer_t deadline;
    uv_timer_init(&b->loop, &deadline);
    deadline.data = &late;
    uv_timer_start(&deadline, on_deadline, 10000, 0);
    while (!late && !done(b))
        uv_run(&b->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_run(&b->loop, UV_RUN_NOWAIT);
    return !late;
}

static void close_pair(bench_t *b) {
    for (int i = 0; i < 2; i++)
        if (b->w[i])
            mw_hub_close(b->w[i]);
    mw_hubd_free(b->hubd);
    uv_run(&b->loop, UV_RUN_DEFAULT);
    CHECK_EQ(uv_loop_close(&b->loop), 0);
}

static int confirmed(bench_t *b) {
    return mw_hub_pending(b->w[0]) == 0;
}

static int two_received(bench_t *b) {
    return b->in[0].n >= 2;
}

/* A SUB is pending until the supervisor's ACK; then a publish from the
 * other worker reaches the subscriber, and not the publisher itself. */
static void test_subscription_confirmed(void) {
    bench_t b;
    REQUIRE(open_pair(&b) == 0);
    CHECK_EQ(mw_hub_pending(b.w[0]), 0);
    CHECK_EQ(mw_hub_send(b.w[0], MW_HUB_SUB, "room", 4, NULL, 0), 0);
    CHECK_EQ(mw_hub_send(b.w[0], MW_HUB_SUB, "user", 4, NULL, 0), 0);
    CHECK_EQ(mw_hub_pending(b.w[0]), 2);
    CHECK(run_until(&b, confirmed));
    CHECK_EQ(mw_hub_send(b.w[1], MW_HUB_PUB, "room", 4, "hello", 5), 0);
    CHECK_EQ(mw_hub_send(b.w[1], MW_HUB_PUB, "user", 4, "there", 5), 0);
    CHECK(run_until(&b, two_received));
    CHECK_STR(b.in[0].log, "pub:2:room=hello;pub:2:user=there;");
    CHECK_EQ(b.in[1].n, 0); /* not to its origin */
    CHECK_EQ(mw_hub_pending(b.w[1]), 0);
    close_pair(&b);
}

static int four_received(bench_t *b) {
    return b->in[1].n >= 4;
}

static int exit_received(bench_t *b) {
    return b->in[0].n >= 2;
}

static int snapshot_received(bench_t *b) {
    return b->in[1].n >= 1;
}

static int exit_received_by_new(bench_t *b) {
    return b->in[1].n >= 2;
}

/* The store: one worker's entries reach the other as they change; a
 * worker that starts gets them first; a worker that exits takes its
 * entries with it and the others are told. */
static void test_store(void) {
    bench_t b;
    REQUIRE(open_pair(&b) == 0);
    CHECK_EQ(mw_hub_send(b.w[0], MW_HUB_SET, "k1", 2, "v1", 2), 0);
    CHECK_EQ(mw_hub_send(b.w[0], MW_HUB_SET, "k2", 2, "v2", 2), 0);
    CHECK_EQ(mw_hub_send(b.w[0], MW_HUB_SET, "k1", 2, "v1b", 3), 0);
    CHECK_EQ(mw_hub_send(b.w[0], MW_HUB_DEL, "k2", 2, NULL, 0), 0);
    CHECK_EQ(mw_hub_send(b.w[0], MW_HUB_DEL, "k9", 2, NULL, 0), 0); /* never set: not passed on */
    CHECK_EQ(mw_hub_send(b.w[1], MW_HUB_SET, "k1", 2, "theirs", 6), 0); /* a key per worker */
    CHECK(run_until(&b, four_received));
    CHECK_STR(b.in[1].log, "set:1:k1=v1;set:1:k2=v2;set:1:k1=v1b;del:1:k2=;");
    CHECK_EQ(mw_hubd_entries(b.hubd), 2);
    CHECK_EQ(mw_hub_pending(b.w[0]), 0); /* entries are not subscriptions */

    /* worker 2 exits: worker 1 is told, worker 2's entry goes */
    mw_hub_close(b.w[1]);
    b.w[1] = NULL;
    mw_hubd_detach(b.hubd, 1);
    CHECK(run_until(&b, exit_received));
    CHECK_STR(b.in[0].log, "set:2:k1=theirs;exit:2:=;");
    CHECK_EQ(mw_hubd_entries(b.hubd), 1);

    /* a worker 2 starts again: worker 1's entry first */
    REQUIRE(open_worker(&b, 1) == 0);
    CHECK(run_until(&b, snapshot_received));
    CHECK_STR(b.in[1].log, "set:1:k1=v1b;");

    /* worker 1 exits: the store is empty */
    mw_hub_close(b.w[0]);
    b.w[0] = NULL;
    mw_hubd_detach(b.hubd, 0);
    CHECK(run_until(&b, exit_received_by_new));
    CHECK_STR(b.in[1].log, "set:1:k1=v1b;exit:1:=;");
    CHECK_EQ(mw_hubd_entries(b.hubd), 0);
    close_pair(&b);
}

static char reported[64];

static void on_report(void *data, int worker, const char *what, size_t what_len, const char *text,
                      size_t len) {
    (void)data;
    snprintf(reported, sizeof reported, "%d:%.*s:%.*s", worker, (int)what_len, what, (int)len,
             text);
}

static int report_and_reload_done(bench_t *b) {
    return reported[0] && b->in[1].n >= 1;
}

/* A worker's REPORT reaches the supervisor's callback; the supervisor's
 * RELOAD reaches the worker it asks, and no other. */
static void test_report_and_reload(void) {
    bench_t b;
    REQUIRE(open_pair(&b) == 0);
    reported[0] = '\0';
    mw_hubd_on_report(b.hubd, on_report, NULL);
    CHECK_EQ(mw_hub_send(b.w[0], MW_HUB_REPORT, "reload", 6, "+SIGHUP", 7), 0);
    CHECK_EQ(mw_hubd_reload(b.hubd, 1), 0);
    CHECK_EQ(mw_hubd_reload(b.hubd, 5), MW_EINVAL); /* not attached */
    CHECK(run_until(&b, report_and_reload_done));
    CHECK_STR(reported, "1:reload:+SIGHUP");
    CHECK_STR(b.in[1].log, "reload:0:=;");
    CHECK_EQ(b.in[0].n, 0);
    close_pair(&b);
}

/* write_syscalls is this process's count of write syscalls so far
 * (/proc/self/io's syscw), or -1 where the kernel does not tell. */
static long write_syscalls(void) {
    FILE *f = fopen("/proc/self/io", "r");
    if (!f)
        return -1;
    char line[128];
    long n = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "syscw: %ld", &n) == 1)
            break;
    fclose(f);
    return n;
}

/* keep_alive makes loop alive (the hub's handles do not keep it alive,
 * as a server's listener does), so that UV_RUN_NOWAIT turns it once. */
static void never(uv_timer_t *t) {
    (void)t;
}

static void keep_alive(uv_loop_t *loop, uv_timer_t *t) {
    uv_timer_init(loop, t);
    uv_timer_start(t, never, 10000000, 0);
}

/* A worker's records wait for the end of the loop iteration, then go in
 * one write, whole and in order. The supervisor's end here is a plain
 * socket read by the test. */
static void test_worker_batches(void) {
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_timer_t alive;
    keep_alive(&loop, &alive);
    mw_hub_t *w;
    inbox_t in = {0};
    REQUIRE(mw_hub_open(&w, &loop, sv[0], on_message, &in) == 0);
    long before = write_syscalls();
    char payload[16];
    for (int i = 0; i < 100; i++) {
        int n = snprintf(payload, sizeof payload, "%d", i);
        CHECK_EQ(mw_hub_send(w, MW_HUB_PUB, "seq", 3, payload, (size_t)n), 0);
    }
    CHECK_EQ(mw_hub_send(w, MW_HUB_SUB, "room", 4, NULL, 0), 0);
    char buf[8192];
    CHECK(recv(sv[1], buf, sizeof buf, MSG_DONTWAIT) < 0 && errno == EAGAIN); /* not yet */
    uv_run(&loop, UV_RUN_NOWAIT);                                             /* one iteration */
    long after = write_syscalls();
    if (before >= 0 && after >= 0)
        CHECK_EQ(after - before, 1);
    size_t len = 0;
    ssize_t got;
    while ((got = recv(sv[1], buf + len, sizeof buf - len, MSG_DONTWAIT)) > 0)
        len += (size_t)got;
    size_t off = 0;
    int records = 0;
    mw_hub_record_t rec;
    long n;
    while ((n = mw_hub_record_parse(buf + off, len - off, &rec)) > 0) {
        if (records < 100) {
            CHECK_EQ(rec.op, MW_HUB_PUB);
            int k = snprintf(payload, sizeof payload, "%d", records);
            CHECK_MEM(rec.payload, rec.payload_len, payload, (size_t)k);
        } else {
            CHECK_EQ(rec.op, MW_HUB_SUB);
        }
        records++;
        off += (size_t)n;
    }
    CHECK_EQ(records, 101);
    CHECK_EQ(off, len);
    mw_hub_close(w);
    uv_close((uv_handle_t *)&alive, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ(uv_loop_close(&loop), 0);
    close(sv[1]);
}

/* The supervisor passes on what it read in one loop iteration with one
 * write per worker: a worker's burst of 100 publishes leaves in one
 * write, after the ACK of a subscription the same worker made. The
 * workers' ends here are plain sockets driven by the test. */
static void test_supervisor_batches(void) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_timer_t alive;
    keep_alive(&loop, &alive);
    mw_hubd_t *hubd;
    REQUIRE(mw_hubd_create(&hubd, &loop) == 0);
    int fd[2];
    for (int i = 0; i < 2; i++) {
        int child;
        REQUIRE(mw_hubd_attach(hubd, i, &child) == 0);
        fd[i] = dup(child);
        mw_hubd_spawned(hubd, i);
    }
    char buf[16384];
    size_t len = mw_hub_record_size(3, 0);
    mw_hub_record_write(buf, MW_HUB_SUB, 0, "seq", 3, NULL, 0);
    REQUIRE(write(fd[0], buf, len) == (ssize_t)len);
    len = 0;
    for (int i = 0; i < 100; i++) {
        char payload[16];
        int k = snprintf(payload, sizeof payload, "%d", i);
        mw_hub_record_write(buf + len, MW_HUB_PUB, 0, "seq", 3, payload, (size_t)k);
        len += mw_hub_record_size(3, (size_t)k);
    }
    /* one iteration: the SUB, already in the socket, is read and applied
     * and its ACK written; the burst comes after */
    uv_run(&loop, UV_RUN_NOWAIT);
    REQUIRE(write(fd[1], buf, len) == (ssize_t)len);
    long before = write_syscalls();
    uint64_t forwarded = mw_hubd_forwarded(hubd);
    for (int turns = 0; turns < 1000 && mw_hubd_forwarded(hubd) < forwarded + 100; turns++)
        uv_run(&loop, UV_RUN_NOWAIT);
    long after = write_syscalls();
    CHECK_EQ(mw_hubd_forwarded(hubd), forwarded + 100);
    if (before >= 0 && after >= 0)
        CHECK(after - before <= 2); /* one, and a second if the read came in two pieces */
    size_t got = 0;
    ssize_t r;
    while ((r = recv(fd[0], buf + got, sizeof buf - got, MSG_DONTWAIT)) > 0)
        got += (size_t)r;
    mw_hub_record_t rec;
    size_t off = 0;
    long n = mw_hub_record_parse(buf, got, &rec);
    REQUIRE(n > 0);
    CHECK_EQ(rec.op, MW_HUB_ACK); /* the subscription first */
    CHECK_MEM(rec.payload, rec.payload_len, "1", 1);
    off = (size_t)n;
    int records = 0;
    while ((n = mw_hub_record_parse(buf + off, got - off, &rec)) > 0) {
        char payload[16];
        int k = snprintf(payload, sizeof payload, "%d", records);
        CHECK_EQ(rec.op, MW_HUB_PUB);
        CHECK_EQ(rec.worker, 2);
        CHECK_MEM(rec.payload, rec.payload_len, payload, (size_t)k);
        records++;
        off += (size_t)n;
    }
    CHECK_EQ(records, 100);
    CHECK_EQ(off, got);
    mw_hubd_free(hubd);
    uv_close((uv_handle_t *)&alive, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ(uv_loop_close(&loop), 0);
    close(fd[0]);
    close(fd[1]);
}

static int burst_received(bench_t *b) {
    return b->in[0].seq + b->in[0].out_of_order >= 4000;
}

/* A burst far bigger than the sockets hold (4,000 records of 1 KB in one
 * loop iteration): each side writes what the socket takes and libuv the
 * rest, and every record arrives once, in order. */
static void test_partial_writes(void) {
    bench_t b;
    REQUIRE(open_pair(&b) == 0);
    CHECK_EQ(mw_hub_send(b.w[0], MW_HUB_SUB, "seq", 3, NULL, 0), 0);
    CHECK(run_until(&b, confirmed));
    char payload[1024];
    memset(payload, 'x', sizeof payload);
    for (int i = 0; i < 4000; i++) {
        int k = snprintf(payload, sizeof payload, "%d ", i);
        payload[k] = 'x'; /* the number, a space, then 1 KB in all */
        CHECK_EQ(mw_hub_send(b.w[1], MW_HUB_PUB, "seq", 3, payload, sizeof payload), 0);
    }
    CHECK(run_until(&b, burst_received));
    CHECK_EQ(b.in[0].seq, 4000);
    CHECK_EQ(b.in[0].out_of_order, 0);
    CHECK_EQ(mw_hubd_dropped(b.hubd), 0);
    CHECK_EQ(b.in[1].n, 0);
    close_pair(&b);
}

int main(void) {
    RUN(test_round_trip);
    RUN(test_bad_records);
    RUN(test_reader_pieces);
    RUN(test_subscription_confirmed);
    RUN(test_store);
    RUN(test_report_and_reload);
    RUN(test_worker_batches);
    RUN(test_supervisor_batches);
    RUN(test_partial_writes);
    return test_summary();
}
