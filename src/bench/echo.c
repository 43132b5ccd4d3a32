/*
 * echo.c - the echo workload: C connections, each keeping D messages in
 * flight. Every reply frees a slot and sends the next message, so the rate
 * is whatever the server sustains. Measures round trips/s and the latency
 * from the send time carried in the payload to the reply's arrival.
 *
 * Replies on one connection must come back in order (seq per connection);
 * anything else is a protocol error. Messages without a payload (a welcome
 * message, say) are counted as unexpected and otherwise ignored.
 */
#include "bench.h"
#include "tpl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { P_CONNECT, P_WARMUP, P_MEASURE, P_DRAIN, P_DONE };

typedef struct {
    uint64_t next_seq, expect_seq;
    uint32_t inflight;
} econn_t;

typedef struct {
    mw_bench_t *b;
    mw_bench_tpl_t tpl;
    mw_bench_client_t **clients;
    econn_t *st;
    size_t n, nopen, nfailed;
    int phase;
    uint64_t t0, t1; /* measured window, ns relative to net.t_base */
    uint64_t rx_window, rx, tx, inflight, unexpected, order_errors;
    uint64_t t_connect; /* uv_hrtime() when connecting started */
    double connect_s;   /* time until every connection was open */
    size_t hint;        /* where replies carry the payload */
    uv_timer_t timer;
} echo_t;

static echo_t E;

static void finish(void) {
    if (E.phase == P_MEASURE) {
        E.t1 = uv_hrtime() - E.b->net.t_base;
        mw_bench_cpu_end(E.b);
    }
    E.phase = P_DONE;
    uv_timer_stop(&E.timer);
    uv_stop(E.b->loop);
}

static void send_one(size_t i, uint64_t now_rel) {
    char *p = mw_bench_client_reserve(E.clients[i], E.tpl.frame_len);
    if (!p)
        return;
    mw_bench_tpl_fill(&E.tpl, p, E.st[i].next_seq++, now_rel);
    E.st[i].inflight++;
    E.inflight++;
    E.tx++;
}

static void on_drain_end(uv_timer_t *t) {
    (void)t;
    finish();
}

static void on_measure_end(uv_timer_t *t) {
    (void)t;
    E.t1 = uv_hrtime() - E.b->net.t_base;
    mw_bench_cpu_end(E.b);
    E.phase = P_DRAIN;
    if (E.inflight == 0) {
        finish();
        return;
    }
    uv_timer_start(&E.timer, on_drain_end, (uint64_t)(E.b->o.drain_timeout * 1000), 0);
}

static void on_warmup_end(uv_timer_t *t) {
    (void)t;
    E.phase = P_MEASURE;
    E.t0 = uv_hrtime() - E.b->net.t_base;
    E.t1 = UINT64_MAX;
    E.rx_window = 0;
    mw_bench_cpu_begin(E.b);
    uv_timer_start(&E.timer, on_measure_end, (uint64_t)(E.b->o.duration * 1000), 0);
}

static void start(void) {
    uv_timer_stop(&E.timer);
    E.connect_s = (double)(uv_hrtime() - E.t_connect) / 1e9;
    E.phase = P_WARMUP;
    E.t0 = UINT64_MAX; /* no latency recorded during the warm-up */
    uint64_t now = uv_hrtime() - E.b->net.t_base;
    for (size_t i = 0; i < E.n; i++)
        for (long d = 0; d < E.b->o.depth && E.clients[i]; d++)
            send_one(i, now);
    mw_bench_net_flush(&E.b->net);
    if (E.b->o.warmup > 0)
        uv_timer_start(&E.timer, on_warmup_end, (uint64_t)(E.b->o.warmup * 1000), 0);
    else
        on_warmup_end(&E.timer);
}

static void on_connect_timeout(uv_timer_t *t) {
    (void)t;
    char msg[128];
    snprintf(msg, sizeof(msg), "only %zu of %zu connections opened within %g s", E.nopen, E.n,
             E.b->o.connect_timeout);
    mw_bench_error(E.b, msg);
    finish();
}

static void on_open(mw_bench_client_t *c) {
    (void)c;
    if (++E.nopen == E.n)
        start();
}

static void on_message(mw_bench_client_t *c, const char *data, size_t len, int op) {
    (void)op;
    uint64_t seq, t;
    if (!mw_bench_payload_parse(data, len, &E.hint, &seq, &t)) {
        E.unexpected++;
        return;
    }
    size_t i = mw_bench_client_id(c);
    econn_t *s = &E.st[i];
    if (seq != s->expect_seq || s->inflight == 0) {
        if (E.order_errors++ == 0)
            mw_bench_error(E.b, "protocol: a reply came out of order or twice");
        else
            E.b->errors++;
    }
    s->expect_seq = seq + 1;
    if (s->inflight) {
        s->inflight--;
        E.inflight--;
    }
    E.rx++;
    uint64_t now = E.b->net.now_ns - E.b->net.t_base;
    if (t >= E.t0 && t < E.t1)
        mw_bench_hist_record(E.b->hist, now > t ? now - t : 0);
    switch (E.phase) {
    case P_MEASURE:
        E.rx_window++;
        /* fall through */
    case P_WARMUP: send_one(i, now); break;
    case P_DRAIN:
        if (E.inflight == 0)
            finish();
        break;
    }
}

static void on_error(mw_bench_client_t *c, const char *what) {
    size_t i = mw_bench_client_id(c);
    char msg[300];
    snprintf(msg, sizeof(msg), "connection %zu: %s", i, what);
    mw_bench_error(E.b, msg);
    E.inflight -= E.st[i].inflight;
    E.st[i].inflight = 0;
    E.clients[i] = NULL;
    E.nfailed++;
    if (E.phase == P_CONNECT || E.nfailed == E.n)
        finish();
}

int mw_bench_run_echo(mw_bench_t *b) {
    mw_bench_opts_t *o = &b->o;
    memset(&E, 0, sizeof(E));
    E.b = b;
    E.n = (size_t)o->connections;
    char err[256];
    const char *args[1] = {NULL};
    if (mw_bench_tpl_init(&E.tpl, o->template_, args, 1, 0, (size_t)o->size, err, sizeof(err))) {
        fprintf(stderr, "moonwire-bench: --template: %s\n", err);
        return 2;
    }
    E.clients = calloc(E.n, sizeof(*E.clients));
    E.st = calloc(E.n, sizeof(*E.st));
    if (!E.clients || !E.st) {
        fprintf(stderr, "moonwire-bench: out of memory\n");
        return 1;
    }
    b->net.cbs = (mw_bench_net_cbs_t){on_open, on_message, on_error, NULL};
    for (size_t i = 0; i < E.n; i++) {
        struct sockaddr_in sa;
        E.clients[i] = mw_bench_client_new(&b->net, (uint32_t)i, &E, mw_bench_src(b, i, &sa));
        if (!E.clients[i]) {
            fprintf(stderr, "moonwire-bench: out of memory\n");
            return 1;
        }
    }
    uv_timer_init(b->loop, &E.timer);
    E.phase = P_CONNECT;
    uv_timer_start(&E.timer, on_connect_timeout, (uint64_t)(o->connect_timeout * 1000), 0);
    mw_bench_guard(b, o->connect_timeout + o->warmup + o->duration + o->drain_timeout + 10);
    E.t_connect = uv_hrtime();
    mw_bench_net_connect_all(&b->net, E.clients, E.n, (size_t)o->concurrency);
    uv_run(b->loop, UV_RUN_DEFAULT);

    int measured = E.t1 != UINT64_MAX && E.t0 < E.t1;
    double window = measured ? (double)(E.t1 - E.t0) / 1e9 : 0;
    double rate = window > 0 ? (double)E.rx_window / window : 0;
    uint64_t lost = E.tx > E.rx ? E.tx - E.rx : 0;

    printf("moonwire-bench echo: %s  %zu connections x depth %ld, %ld-byte payload, "
           "%.1f s (+%.1f s warm-up)\n",
           o->url, E.n, o->depth, o->size, o->duration, o->warmup);
    printf("  connections  %zu opened in %.2f s, %zu failed\n", E.nopen, E.connect_s, E.nfailed);
    printf("  round trips  %llu in %.2f s = %.0f msgs/s\n", (unsigned long long)E.rx_window, window,
           rate);
    mw_bench_json_int(b, "connections_open", (long long)E.nopen);
    mw_bench_json_num(b, "connect_s", E.connect_s);
    mw_bench_json_int(b, "msgs", (long long)E.rx_window);
    mw_bench_json_num(b, "window_s", window);
    mw_bench_json_num(b, "msgs_per_s", rate);
    mw_bench_report_latency(b, "send to reply");
    printf("  sent %llu, replies %llu, lost %llu, unexpected messages %llu\n",
           (unsigned long long)E.tx, (unsigned long long)E.rx, (unsigned long long)lost,
           (unsigned long long)E.unexpected);
    mw_bench_json_int(b, "sent", (long long)E.tx);
    mw_bench_json_int(b, "received", (long long)E.rx);
    mw_bench_json_int(b, "lost", (long long)lost);
    mw_bench_json_int(b, "unexpected", (long long)E.unexpected);
    mw_bench_report_cpu(b);

    mw_bench_teardown(b, E.clients, E.n);
    uv_close((uv_handle_t *)&E.timer, NULL);
    uv_run(b->loop, UV_RUN_NOWAIT);
    free(E.clients);
    free(E.st);
    mw_bench_tpl_free(&E.tpl);
    return (E.nopen < E.n || !measured) ? 1 : 0;
}
