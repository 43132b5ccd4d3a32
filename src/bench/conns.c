/*
 * conns.c - the idle-connections workload: open N WebSocket connections,
 * keep them idle, and (with --server-pid) read the server's VmRSS from
 * /proc before connecting and after every connection is open and a settle
 * time has passed: (after - before) / N is the memory one idle connection
 * costs the server.
 *
 * N is bounded by this process's open-file limit (one descriptor per
 * connection; moonwire-bench raises the soft limit to the hard one and
 * refuses more). Above ~28k connections one source address runs out of
 * ephemeral ports: --addresses K spreads them over 127.0.0.2 .. 127.0.0.K+1.
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { P_CONNECT, P_SETTLE, P_HOLD, P_DONE };

typedef struct {
    mw_bench_t *b;
    mw_bench_client_t **clients;
    uint8_t *opened;
    size_t n, nopen, nfailed, dropped;
    int phase;
    uint64_t t_connect;
    double connect_s;
    long long rss0, rss1, rss2;
    uint64_t messages;
    uv_timer_t timer;
} conns_t;

static conns_t C;

static void finish(void) {
    C.phase = P_DONE;
    uv_timer_stop(&C.timer);
    uv_stop(C.b->loop);
}

static void on_hold_end(uv_timer_t *t) {
    (void)t;
    if (C.b->o.server_pid > 0)
        C.rss2 = mw_bench_rss(C.b->o.server_pid);
    mw_bench_cpu_end(C.b);
    finish();
}

static void on_settled(uv_timer_t *t) {
    (void)t;
    if (C.b->o.server_pid > 0)
        C.rss1 = mw_bench_rss(C.b->o.server_pid);
    C.phase = P_HOLD;
    uv_timer_start(&C.timer, on_hold_end, (uint64_t)(C.b->o.duration * 1000), 0);
}

static void all_tried(void) {
    C.connect_s = (double)(uv_hrtime() - C.t_connect) / 1e9;
    uv_timer_stop(&C.timer);
    C.phase = P_SETTLE;
    uv_timer_start(&C.timer, on_settled, (uint64_t)(C.b->o.settle * 1000), 0);
}

static void on_connect_timeout(uv_timer_t *t) {
    (void)t;
    char msg[128];
    snprintf(msg, sizeof(msg), "only %zu of %zu connections opened within %g s", C.nopen, C.n,
             C.b->o.connect_timeout);
    mw_bench_error(C.b, msg);
    all_tried();
}

static void on_open(mw_bench_client_t *c) {
    C.opened[mw_bench_client_id(c)] = 1;
    C.nopen++;
    if (C.phase == P_CONNECT && C.nopen + C.nfailed == C.n)
        all_tried();
}

static void on_message(mw_bench_client_t *c, const char *data, size_t len, int op) {
    (void)c, (void)data, (void)len, (void)op;
    C.messages++;
}

static void on_error(mw_bench_client_t *c, const char *what) {
    size_t i = mw_bench_client_id(c);
    char msg[300];
    snprintf(msg, sizeof(msg), "connection %zu: %s", i, what);
    mw_bench_error(C.b, msg);
    C.clients[i] = NULL;
    if (C.opened[i]) {
        C.dropped++;
        return;
    }
    C.nfailed++;
    if (C.phase == P_CONNECT && C.nopen + C.nfailed == C.n)
        all_tried();
}

int mw_bench_run_conns(mw_bench_t *b) {
    mw_bench_opts_t *o = &b->o;
    memset(&C, 0, sizeof(C));
    C.b = b;
    C.n = (size_t)o->connections;
    C.rss0 = C.rss1 = C.rss2 = -1;
    C.clients = calloc(C.n, sizeof(*C.clients));
    C.opened = calloc(C.n, 1);
    if (!C.clients || !C.opened) {
        fprintf(stderr, "moonwire-bench: out of memory\n");
        return 1;
    }
    b->net.cbs = (mw_bench_net_cbs_t){on_open, on_message, on_error, NULL};
    for (size_t i = 0; i < C.n; i++) {
        struct sockaddr_in sa;
        C.clients[i] = mw_bench_client_new(&b->net, (uint32_t)i, &C, mw_bench_src(b, i, &sa));
        if (!C.clients[i]) {
            fprintf(stderr, "moonwire-bench: out of memory\n");
            return 1;
        }
    }
    if (o->server_pid > 0)
        C.rss0 = mw_bench_rss(o->server_pid);
    uv_timer_init(b->loop, &C.timer);
    C.phase = P_CONNECT;
    uv_timer_start(&C.timer, on_connect_timeout, (uint64_t)(o->connect_timeout * 1000), 0);
    mw_bench_guard(b, o->connect_timeout + o->settle + o->duration + 10);
    mw_bench_cpu_begin(b);
    C.t_connect = uv_hrtime();
    mw_bench_net_connect_all(&b->net, C.clients, C.n, (size_t)o->concurrency);
    uv_run(b->loop, UV_RUN_DEFAULT);
    if (C.phase != P_DONE)
        mw_bench_cpu_end(b);

    size_t still = C.nopen >= C.dropped ? C.nopen - C.dropped : 0;
    printf("moonwire-bench conns: %s  %zu connections", o->url, C.n);
    if (o->addresses > 0)
        printf(" from %ld source addresses", o->addresses);
    printf(", settle %.1f s, hold %.1f s\n", o->settle, o->duration);
    printf("  connections  %zu opened in %.2f s (%.0f/s), %zu failed, %zu dropped while idle\n",
           C.nopen, C.connect_s, C.connect_s > 0 ? (double)C.nopen / C.connect_s : 0, C.nfailed,
           C.dropped);
    mw_bench_json_int(b, "connections_open", (long long)C.nopen);
    mw_bench_json_int(b, "connections_failed", (long long)C.nfailed);
    mw_bench_json_int(b, "connections_dropped", (long long)C.dropped);
    mw_bench_json_int(b, "connections_held", (long long)still);
    mw_bench_json_num(b, "connect_s", C.connect_s);
    mw_bench_json_num(b, "connects_per_s", C.connect_s > 0 ? (double)C.nopen / C.connect_s : 0);
    mw_bench_json_int(b, "messages", (long long)C.messages);
    if (o->server_pid > 0) {
        double per = C.rss0 >= 0 && C.rss1 >= 0 && C.nopen > 0
                         ? (double)(C.rss1 - C.rss0) / (double)C.nopen
                         : 0;
        printf("  server rss   %.1f MB before, %.1f MB with %zu connections (%.1f MB at the end)"
               ": %.0f bytes per connection\n",
               (double)C.rss0 / 1048576, (double)C.rss1 / 1048576, C.nopen,
               (double)C.rss2 / 1048576, per);
        mw_bench_json_int(b, "server_rss_before_bytes", C.rss0);
        mw_bench_json_int(b, "server_rss_after_bytes", C.rss1);
        mw_bench_json_int(b, "server_rss_end_bytes", C.rss2);
        mw_bench_json_num(b, "server_rss_per_conn_bytes", per);
    }
    mw_bench_report_cpu(b);

    mw_bench_teardown(b, C.clients, C.n);
    uv_close((uv_handle_t *)&C.timer, NULL);
    uv_run(b->loop, UV_RUN_NOWAIT);
    free(C.clients);
    free(C.opened);
    return C.nopen < C.n || C.dropped ? 1 : 0;
}
