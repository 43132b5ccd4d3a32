/*
 * conns.c - the idle-connections workload: open N WebSocket connections,
 * keep them idle, and (with --server-pid) read the server's memory from
 * /proc before connecting and after every connection is open and a settle
 * time has passed: (after - before) / N is the memory one idle connection
 * costs the server. The server is the pid and its descendants (procs.c:
 * moonwire's supervisor and workers), summed: VmRSS, and PSS, which counts
 * the pages the processes share once.
 *
 * With --steps S the connections open in S equal steps, each followed by
 * the settle time and a reading: between the first step and the last, the
 * memory of one more connection, without what the server spends once on
 * its first connections (a worker's Lua heap and JIT traces warming up,
 * which --steps 1 spreads over the N connections).
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
#define MAX_STEPS 16

typedef struct {
    mw_bench_t *b;
    mw_bench_client_t **clients;
    uint8_t *opened;
    size_t n, nopen, nfailed, dropped;
    size_t target; /* the connections of the steps so far */
    int phase, step;
    size_t step_conns[MAX_STEPS];
    long long step_rss[MAX_STEPS], step_pss[MAX_STEPS];
    uint64_t t_connect;
    double connect_s;
    long long rss0, rss1, rss2, pss0, pss1;
    /* --server-pid: the processes before connecting and once settled, and
     * the connections each serves then. */
    mw_bench_proc_t sp0[MW_BENCH_MAX_PROCS], sp1[MW_BENCH_MAX_PROCS];
    int nsp0, nsp1, split_ok;
    size_t sp_conns[MW_BENCH_MAX_PROCS], sp_none[MW_BENCH_MAX_PROCS], sp_unmatched[2];
    uint64_t messages;
    uv_timer_t timer;
} conns_t;

static conns_t C;

static void finish(void) {
    C.phase = P_DONE;
    uv_timer_stop(&C.timer);
    uv_stop(C.b->loop);
}

/* server_mem reads the server's processes (into procs, when not NULL) and
 * sums their RSS and PSS (-1: the server is gone, or a process's PSS could
 * not be read). */
static void server_mem(mw_bench_proc_t *procs, int *n, long long *rss, long long *pss) {
    static mw_bench_proc_t tmp[MW_BENCH_MAX_PROCS];
    mw_bench_proc_t *p = procs ? procs : tmp;
    int k = mw_bench_procs_read(C.b->o.server_pid, p, MW_BENCH_MAX_PROCS, 1);
    if (n)
        *n = k;
    *rss = k > 0 ? 0 : -1;
    if (pss)
        *pss = k > 0 ? 0 : -1;
    for (int i = 0; i < k; i++) {
        *rss = p[i].rss < 0 || *rss < 0 ? -1 : *rss + p[i].rss;
        if (pss)
            *pss = p[i].pss < 0 || *pss < 0 ? -1 : *pss + p[i].pss;
    }
}

static void on_hold_end(uv_timer_t *t) {
    (void)t;
    if (C.b->o.server_pid > 0)
        server_mem(NULL, NULL, &C.rss2, NULL);
    mw_bench_cpu_end(C.b);
    finish();
}

static void on_connect_timeout(uv_timer_t *t);

/* connect_step opens the connections of the next step. */
static void connect_step(void) {
    size_t from = C.target;
    C.target = C.n * (size_t)(C.step + 1) / (size_t)C.b->o.steps;
    C.phase = P_CONNECT;
    C.t_connect = uv_hrtime();
    uv_timer_start(&C.timer, on_connect_timeout, (uint64_t)(C.b->o.connect_timeout * 1000), 0);
    mw_bench_net_connect_all(&C.b->net, C.clients + from, C.target - from,
                             (size_t)C.b->o.concurrency);
}

static void on_settled(uv_timer_t *t) {
    (void)t;
    int last = C.step + 1 >= C.b->o.steps;
    C.step_conns[C.step] = C.nopen - C.dropped;
    if (C.b->o.server_pid > 0) {
        if (last) {
            server_mem(C.sp1, &C.nsp1, &C.rss1, &C.pss1);
            C.split_ok =
                C.nsp1 > 0 && mw_bench_procs_split(C.sp1, C.nsp1, C.clients, C.n, C.n, C.sp_conns,
                                                   C.sp_none, C.sp_unmatched) == 0;
            C.step_rss[C.step] = C.rss1, C.step_pss[C.step] = C.pss1;
        } else {
            server_mem(NULL, NULL, &C.step_rss[C.step], &C.step_pss[C.step]);
        }
    }
    if (!last) {
        C.step++;
        connect_step();
        return;
    }
    C.phase = P_HOLD;
    uv_timer_start(&C.timer, on_hold_end, (uint64_t)(C.b->o.duration * 1000), 0);
}

static void all_tried(void) {
    C.connect_s += (double)(uv_hrtime() - C.t_connect) / 1e9;
    uv_timer_stop(&C.timer);
    C.phase = P_SETTLE;
    uv_timer_start(&C.timer, on_settled, (uint64_t)(C.b->o.settle * 1000), 0);
}

static void on_connect_timeout(uv_timer_t *t) {
    (void)t;
    char msg[128];
    snprintf(msg, sizeof(msg), "only %zu of %zu connections opened within %g s", C.nopen, C.target,
             C.b->o.connect_timeout);
    mw_bench_error(C.b, msg);
    all_tried();
}

static void on_open(mw_bench_client_t *c) {
    C.opened[mw_bench_client_id(c)] = 1;
    C.nopen++;
    if (C.phase == P_CONNECT && C.nopen + C.nfailed == C.target)
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
    if (C.phase == P_CONNECT && C.nopen + C.nfailed == C.target)
        all_tried();
}

/* --server-pid: PSS per connection, and per process its memory and the
 * connections it serves. */
static void report_server(mw_bench_t *b) {
    double per =
        C.pss0 >= 0 && C.pss1 >= 0 && C.nopen > 0 ? (double)(C.pss1 - C.pss0) / (double)C.nopen : 0;
    printf("  server pss   %.1f MB before, %.1f MB with %zu connections: %.0f bytes per "
           "connection (%d process%s)\n",
           (double)C.pss0 / 1048576, (double)C.pss1 / 1048576, C.nopen, per, C.nsp1,
           C.nsp1 == 1 ? "" : "es");
    mw_bench_json_int(b, "server_pss_before_bytes", C.pss0);
    mw_bench_json_int(b, "server_pss_after_bytes", C.pss1);
    mw_bench_json_num(b, "server_pss_per_conn_bytes", per);
    mw_bench_json_int(b, "server_process_count", C.nsp1);
    char procs[MW_BENCH_MAX_PROCS * 240], *w = procs;
    size_t left = sizeof(procs);
    int k = snprintf(w, left, "[");
    w += k, left -= (size_t)k;
    for (int i = 0; i < C.nsp1; i++) {
        const mw_bench_proc_t *p1 = &C.sp1[i];
        const mw_bench_proc_t *p0 = mw_bench_procs_find(C.sp0, C.nsp0, p1->pid);
        long long conns = C.split_ok ? (long long)C.sp_conns[i] : -1;
        long long rss0 = p0 ? p0->rss : -1, pss0 = p0 ? p0->pss : -1;
        printf("    pid %-7ld %-15s %lld connections, RSS %.1f -> %.1f MB, PSS %.1f -> %.1f MB\n",
               p1->pid, p1->name, conns, (double)rss0 / 1048576, (double)p1->rss / 1048576,
               (double)pss0 / 1048576, (double)p1->pss / 1048576);
        k = snprintf(w, left,
                     "%s{\"pid\":%ld,\"name\":\"%s\",\"connections\":%lld,\"rss_before\":%lld,"
                     "\"rss_after\":%lld,\"pss_before\":%lld,\"pss_after\":%lld}",
                     i ? "," : "", p1->pid, p1->name, conns, rss0, p1->rss, pss0, p1->pss);
        if (k > 0 && (size_t)k < left)
            w += k, left -= (size_t)k;
    }
    snprintf(w, left, "]");
    mw_bench_json_raw(b, "server_processes", procs);
    if (C.split_ok)
        mw_bench_json_int(b, "connections_unmatched", (long long)C.sp_unmatched[0]);
    if (b->o.steps > 1) {
        /* From the first step's reading to the last's. */
        int l = b->o.steps - 1;
        size_t dn = C.step_conns[l] > C.step_conns[0] ? C.step_conns[l] - C.step_conns[0] : 0;
        double marg = dn && C.step_pss[0] >= 0 && C.step_pss[l] >= 0
                          ? (double)(C.step_pss[l] - C.step_pss[0]) / (double)dn
                          : 0;
        char steps[MAX_STEPS * 64], *w2 = steps;
        size_t left2 = sizeof(steps);
        printf("  server pss   by step:");
        for (int i = 0; i <= l; i++) {
            printf(" %zu conns %.1f MB%s", C.step_conns[i], (double)C.step_pss[i] / 1048576,
                   i < l ? "," : "");
            k = snprintf(w2, left2, "%s{\"connections\":%zu,\"rss\":%lld,\"pss\":%lld}",
                         i ? "," : "[", C.step_conns[i], C.step_rss[i], C.step_pss[i]);
            if (k > 0 && (size_t)k < left2)
                w2 += k, left2 -= (size_t)k;
        }
        snprintf(w2, left2, "]");
        printf(": %.0f bytes per connection from the first step to the last\n", marg);
        mw_bench_json_raw(b, "server_mem_steps", steps);
        mw_bench_json_num(b, "server_pss_marginal_per_conn_bytes", marg);
    }
    if (C.nsp0 != C.nsp1)
        printf("  WARNING: the server had %d processes before connecting, %d after\n", C.nsp0,
               C.nsp1);
}

int mw_bench_run_conns(mw_bench_t *b) {
    mw_bench_opts_t *o = &b->o;
    memset(&C, 0, sizeof(C));
    C.b = b;
    C.n = (size_t)o->connections;
    C.rss0 = C.rss1 = C.rss2 = C.pss0 = C.pss1 = -1;
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
        server_mem(C.sp0, &C.nsp0, &C.rss0, &C.pss0);
    uv_timer_init(b->loop, &C.timer);
    mw_bench_guard(b, (double)o->steps * (o->connect_timeout + o->settle) + o->duration + 10);
    mw_bench_cpu_begin(b);
    connect_step();
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
        report_server(b);
    }
    mw_bench_report_cpu(b);

    mw_bench_teardown(b, C.clients, C.n);
    uv_close((uv_handle_t *)&C.timer, NULL);
    uv_run(b->loop, UV_RUN_NOWAIT);
    free(C.clients);
    free(C.opened);
    return C.nopen < C.n || C.dropped ? 1 : 0;
}
