/*
 * bench.h - what the parts of moonwire-bench share: the parsed options, the
 * owner struct of one run, and the report (human summary + one JSON line).
 *
 * One process, one libuv loop, one run: bench.c parses the options and
 * calls exactly one workload (echo.c, fanout.c -- fanout and emit --,
 * conns.c), which owns its
 * connections and timers and fills the report.
 */
#ifndef MW_BENCH_H
#define MW_BENCH_H

#include "client.h"
#include "stats.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>

typedef struct mw_bench_opts {
    const char *mode;
    const char *url;
    long connections, depth, size, subscribers, publishers, window, addresses;
    long concurrency, server_pid, steps;
    double rate, duration, warmup, connect_timeout, drain_timeout, settle;
    double subscribe_wait_ms, stall_timeout;
    const char *template_, *subscribe_template, *publish_template, *room;
    const char *api_url, *api_key, *emit_template; /* emit */
    const char *url2; /* fanout: the other node of odd subscribers ("": none) */
    long engineio;    /* fanout: speak Socket.IO (Engine.IO v4 over WebSocket) */
} mw_bench_opts_t;

typedef struct mw_bench {
    mw_bench_opts_t o;
    uv_loop_t *loop;
    mw_bench_net_t net;
    mw_bench_hist_t *hist;
    uv_timer_t guard; /* the last-resort deadline of the whole run */
    /* Errors: the count, and the first message (shown in the summary). */
    uint64_t errors;
    char first_error[256];
    /* CPU accounting over the measured window. */
    struct rusage ru0;
    uint64_t cpu_t0;
    double cpu_pct;
    /* The final JSON line, built as the workload reports. */
    char *json;
    size_t json_len, json_cap;
} mw_bench_t;

/* Workloads: each runs to completion and returns the exit status
 * (0 ok, 1 failures). They print the human summary and fill the JSON. */
int mw_bench_run_echo(mw_bench_t *b);
/* fanout, or emit when o.mode is "emit" (publishing through the server
 * API's POST /api/emit instead of WebSocket publishers). */
int mw_bench_run_fanout(mw_bench_t *b);
int mw_bench_run_conns(mw_bench_t *b);

/* Counts an error and keeps the first message for the summary. */
void mw_bench_error(mw_bench_t *b, const char *what);

/* The local address for connection i (127.0.0.(2 + i % addresses)), or
 * NULL when --addresses is 0 (the kernel picks 127.0.0.1). */
const struct sockaddr_in *mw_bench_src(mw_bench_t *b, size_t i, struct sockaddr_in *sa);

/* Starts the guard timer: the loop stops after `seconds` whatever happens,
 * so a run always ends by itself. */
void mw_bench_guard(mw_bench_t *b, double seconds);

/* CPU use of this process between begin and end, as % of wall time. */
void mw_bench_cpu_begin(mw_bench_t *b);
double mw_bench_cpu_end(mw_bench_t *b);

/* The server under test as processes (procs.c): --server-pid and every
 * descendant, e.g. moonwire's supervisor and its workers. */
#define MW_BENCH_MAX_PROCS 72
typedef struct mw_bench_proc {
    long pid;
    char name[32];
    long long utime, stime; /* clock ticks (mw_bench_clk_tck), all threads */
    long long rss, pss;     /* bytes (VmRSS, smaps_rollup Pss); -1: not read */
    long long syscr, syscw; /* read and write syscalls so far (/proc/P/io); -1: unknown */
} mw_bench_proc_t;

/* Fills procs with pid, then its descendants (breadth first), at most max;
 * with mem, their RSS and PSS too. Returns how many, 0 when pid is gone. */
int mw_bench_procs_read(long pid, mw_bench_proc_t *procs, int max, int mem);
/* Sets owner[i] to the index in procs of the process holding the server
 * end of clients[i] (-1: none of them; clients[i] may be NULL). Returns 0,
 * or -1 when /proc could not be read. */
int mw_bench_procs_owners(const mw_bench_proc_t *procs, int n, mw_bench_client_t *const *clients,
                          size_t nc, int *owner);
/* Counts, per process, the connections it serves: subs[i] among
 * clients[0..nsub), pubs[i] among the rest; unmatched[0] and [1] those of
 * each kind served by none of them (another server, or already closed).
 * Returns 0, or -1 when /proc could not be read. */
int mw_bench_procs_split(const mw_bench_proc_t *procs, int n, mw_bench_client_t *const *clients,
                         size_t nc, size_t nsub, size_t *subs, size_t *pubs, size_t *unmatched);
/* The entry of pid in procs, or NULL. */
const mw_bench_proc_t *mw_bench_procs_find(const mw_bench_proc_t *procs, int n, long pid);
long mw_bench_clk_tck(void);

/* Adds a field to the JSON line (keys are plain identifiers). */
void mw_bench_json_str(mw_bench_t *b, const char *key, const char *val);
void mw_bench_json_int(mw_bench_t *b, const char *key, long long val);
void mw_bench_json_num(mw_bench_t *b, const char *key, double val);
/* val is already JSON (an array or an object built by the caller). */
void mw_bench_json_raw(mw_bench_t *b, const char *key, const char *val);

/* Prints the latency line and adds p50_us, p90_us, p99_us, p999_us,
 * max_us, mean_us to the JSON. */
void mw_bench_report_latency(mw_bench_t *b, const char *what);

/* Prints the CPU line (and the saturation warning above 90%) and adds
 * bench_cpu_pct. */
void mw_bench_report_cpu(mw_bench_t *b);

/* Closes every non-NULL client of the array (setting it to NULL), closes
 * the net, and runs the loop until every handle is closed (bounded by the
 * guard timer, which it closes too). */
void mw_bench_teardown(mw_bench_t *b, mw_bench_client_t **clients, size_t n);

#endif
