/*
 * test_hub.c - the hub's records (src/hub.c): written then parsed back,
 * taken whole from a stream that delivers them in pieces, bad bytes
 * refused; and the supervisor's end (src/hubd.c) with two workers' ends
 * on one loop, in one process: subscriptions confirmed, then honoured.
 */
#include "errors.h"
#include "hub.h"
#include "hubd.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>
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
} inbox_t;

static void on_message(void *data, const mw_hub_record_t *rec) {
    static const char *const ops[] = {"?",   "sub", "unsub", "pub",    "ack",
                                      "set", "del", "exit",  "report", "reload"};
    inbox_t *in = data;
    in->n++;
    snprintf(in->channel, sizeof in->channel, "%.*s", (int)rec->channel_len, rec->channel);
    snprintf(in->payload, sizeof in->payload, "%.*s", (int)rec->payload_len, rec->payload);
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

int main(void) {
    RUN(test_round_trip);
    RUN(test_bad_records);
    RUN(test_reader_pieces);
    RUN(test_subscription_confirmed);
    RUN(test_store);
    RUN(test_report_and_reload);
    return test_summary();
}
