/*
 * bench.c - moonwire-bench: the command line, the options table, and what
 * every workload shares (errors, CPU accounting, the report).
 *
 * A WebSocket load generator in one process on one libuv loop, cheap enough
 * that the server, not the generator, is what gets measured: one read
 * buffer, frames prepared once per template, batched writes, no allocation
 * per message. It still measures its own CPU use (getrusage over the
 * measured window) and says so when it saturated its core.
 *
 * Output: a human summary, then exactly one final line holding a JSON object
 * with every number. Exit status: 0 ok, 1 connection failures or protocol
 * errors, 2 bad options (nothing was run).
 */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { M_ECHO = 1, M_FANOUT = 2, M_CONNS = 4, M_EMIT = 8, M_ALL = 15 };
#define M_FAN (M_FANOUT | M_EMIT)

typedef struct {
    const char *name; /* without the leading "--" */
    char type;        /* 'l' integer, 'd' number, 's' string */
    size_t off;       /* offset in mw_bench_opts_t */
    const char *def;
    double min, max;
    unsigned modes;
    const char *json; /* key in the JSON line; NULL: not reported */
    const char *arg, *help;
} opt_t;

#define O(f) offsetof(mw_bench_opts_t, f)

/* Every option, once: parsing, validation, defaults, --help and the JSON
 * parameters all come from this table. */
static const opt_t opts[] = {
    {"url", 's', O(url), "ws://127.0.0.1:8080/", 0, 0, M_ALL, "url", "URL",
     "server (ws://, an IPv4 address or localhost)"},
    {"connections", 'l', O(connections), "100", 1, 1e6, M_ECHO | M_CONNS, "connections", "N",
     "connections (conns: default 1000)"},
    {"depth", 'l', O(depth), "1", 1, 4096, M_ECHO, "depth", "D",
     "messages in flight per connection (pipelining)"},
    {"size", 'l', O(size), "64", 30, 16 << 20, M_ECHO | M_FAN, "size", "BYTES",
     "payload bytes (>= 30: it carries a marker, seq and send time)"},
    {"template", 's', O(template_), "{\"type\":\"echo\",\"data\":\"%s\"}", 0, 0, M_ECHO, "template",
     "TPL", "echo message; %s is the payload"},
    {"subscribers", 'l', O(subscribers), "100", 1, 1e6, M_FAN, "subscribers", "N",
     "subscriber connections, all in one room"},
    {"publishers", 'l', O(publishers), "1", 1, 10000, M_FAN, "publishers", "K",
     "publisher connections (they do not subscribe; emit: HTTP ones)"},
    {"rate", 'd', O(rate), "0", 0, 1e9, M_FAN, "rate", "R",
     "publishes/s in total; 0: as fast as deliveries keep up"},
    {"window", 'l', O(window), "64", 1, 1 << 20, M_FAN, "window", "W",
     "with --rate 0: messages per publisher not yet delivered to all"},
    {"room", 's', O(room), "bench", 0, 0, M_FAN, "room", "NAME", "room name"},
    {"subscribe-template", 's', O(subscribe_template), "{\"type\":\"subscribe\",\"room\":\"%s\"}",
     0, 0, M_FAN, "subscribe_template", "TPL", "subscribe message; %s is the room"},
    {"publish-template", 's', O(publish_template),
     "{\"type\":\"publish\",\"room\":\"%s\",\"data\":\"%s\"}", 0, 0, M_FANOUT, "publish_template",
     "TPL", "publish message; %s the room, then %s the payload"},
    {"api-url", 's', O(api_url), "", 0, 0, M_EMIT, "api_url", "URL",
     "POST events here (http://; default: --url's host and port, /api/emit)"},
    {"api-key", 's', O(api_key), "", 0, 0, M_EMIT, NULL, "KEY",
     "Authorization: apikey KEY (default: $MOONWIRE_API_KEY)"},
    {"emit-template", 's', O(emit_template),
     "{\"channel\":\"bench.fanout\",\"message\":{\"room\":\"%s\",\"data\":\"%s\"}}", 0, 0, M_EMIT,
     "emit_template", "TPL", "POST body; %s the room, then %s the payload"},
    {"url2", 's', O(url2), "", 0, 0, M_FAN, "url2", "URL",
     "odd subscribers connect here (another node; same path as --url); \"\": none"},
    {"engineio", 'l', O(engineio), "0", 0, 1, M_FANOUT, "engineio", "0|1",
     "1: Socket.IO clients (Engine.IO v4: \"40\" connect, pings answered)"},
    {"subscribe-wait", 'd', O(subscribe_wait_ms), "0", 0, 600000, M_FAN, "subscribe_wait_ms", "MS",
     "wait MS ms instead of waiting for a reply to each subscribe"},
    {"stall-timeout", 'd', O(stall_timeout), "2", 0.01, 600, M_FAN, "stall_timeout_s", "S",
     "free the window slot of a message undelivered after S s"},
    {"server-pid", 'l', O(server_pid), "0", 0, 1 << 30, M_CONNS | M_FAN, "server_pid", "PID",
     "the server: this process and its descendants (workers); conns: their RSS and PSS "
     "before and after connecting; fanout, emit: their CPU time over the measured window; "
     "and which of them serves each connection"},
    {"steps", 'l', O(steps), "1", 1, 16, M_CONNS, "steps", "S",
     "open the connections in S equal steps, reading the server's memory after each"},
    {"settle", 'd', O(settle), "1", 0, 600, M_CONNS, "settle_s", "S",
     "after the last connection (of each step) opened, wait S s, then read the memory"},
    {"duration", 'd', O(duration), "5", 0.01, 86400, M_ALL, "duration_s", "S",
     "measured time (conns: hold time after settling, default 1)"},
    {"warmup", 'd', O(warmup), "1", 0, 3600, M_ECHO | M_FAN, "warmup_s", "S",
     "load before measuring"},
    {"addresses", 'l', O(addresses), "0", 0, 250, M_ALL, "addresses", "K",
     "bind to source addresses 127.0.0.2 .. 127.0.0.(K+1); 0: none"},
    {"concurrency", 'l', O(concurrency), "256", 1, 100000, M_ALL, "concurrency", "N",
     "connections being opened at once"},
    {"connect-timeout", 'd', O(connect_timeout), "30", 0.1, 3600, M_ALL, "connect_timeout_s", "S",
     "fail when connecting (and subscribing) takes longer"},
    {"drain-timeout", 'd', O(drain_timeout), "2", 0, 600, M_ECHO | M_FAN, "drain_timeout_s", "S",
     "afterwards, wait at most S s for replies still in flight"},
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static void usage(FILE *f) {
    fprintf(f, "usage: moonwire-bench echo|fanout|emit|conns [options]\n"
               "\n"
               "  echo    C connections, each keeping D messages in flight: round trips/s,\n"
               "          latency percentiles\n"
               "  fanout  N subscribers in one room, K publishers: deliveries/s, latency from\n"
               "          publish to each delivery, lost and duplicate deliveries\n"
               "  emit    fanout, but the K publishers are HTTP keep-alive connections\n"
               "          POSTing events to the server API (moonwire's /api/emit): a\n"
               "          subscriber of the app broadcasts each to the room\n"
               "  conns   N idle connections; with --server-pid, server RSS and PSS per\n"
               "          connection (summed over the server's processes)\n"
               "\n"
               "Prints a summary, then one line with a JSON object holding every number.\n"
               "Exit status: 0 ok, 1 connection or protocol errors, 2 bad options.\n"
               "The payload is \"mwb:<seq>:<send time>:\" padded with 'x' to --size; replies are\n"
               "matched by searching for it, so servers that re-encode JSON work.\n"
               "Connections are bounded by the open-file limit: the soft limit is raised to\n"
               "the hard one (ulimit -Hn) and every connection needs one descriptor.\n"
               "\noptions:\n");
    for (size_t i = 0; i < NOPTS; i++) {
        const opt_t *o = &opts[i];
        char left[64];
        snprintf(left, sizeof(left), "--%s %s", o->name, o->arg);
        char modes[32] = "all modes";
        if (o->modes != M_ALL)
            snprintf(modes, sizeof(modes), "%s%s%s%s", o->modes & M_ECHO ? "echo " : "",
                     o->modes & M_FANOUT ? "fanout " : "", o->modes & M_EMIT ? "emit " : "",
                     o->modes & M_CONNS ? "conns " : "");
        size_t ml = strlen(modes);
        if (modes[ml - 1] == ' ')
            modes[ml - 1] = 0;
        fprintf(f, "  %-25s %s\n  %-25s [%s] default: %s\n", left, o->help, "", modes, o->def);
    }
    fprintf(f, "  %-26s this help\n", "--help");
}

static int bad(const char *fmt, const char *a, const char *b2) {
    fprintf(stderr, "moonwire-bench: ");
    fprintf(stderr, fmt, a, b2);
    fprintf(stderr, "\n(see moonwire-bench --help)\n");
    return 2;
}

static int set_opt(mw_bench_opts_t *bo, const opt_t *o, const char *val) {
    void *p = (char *)bo + o->off;
    if (o->type == 's') {
        *(const char **)p = val;
        return 0;
    }
    char *end;
    errno = 0;
    double v = strtod(val, &end);
    if (errno || end == val || *end || isnan(v))
        return bad("--%s: \"%s\" is not a number", o->name, val);
    if (v < o->min || v > o->max) {
        char range[96];
        snprintf(range, sizeof(range), "between %.15g and %.15g", o->min, o->max);
        fprintf(stderr, "moonwire-bench: --%s: %s is out of range (must be %s)\n", o->name, val,
                range);
        return 2;
    }
    if (o->type == 'l') {
        if (v != floor(v))
            return bad("--%s: \"%s\" must be an integer", o->name, val);
        *(long *)p = (long)v;
    } else {
        *(double *)p = v;
    }
    return 0;
}

static int parse(mw_bench_t *b, int argc, char **argv, unsigned mode) {
    unsigned char given[NOPTS] = {0};
    for (size_t i = 0; i < NOPTS; i++)
        if (set_opt(&b->o, &opts[i], opts[i].def))
            return 2;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strncmp(a, "--", 2) != 0)
            return bad("unexpected argument \"%s\"%s", a, "");
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        size_t k;
        for (k = 0; k < NOPTS; k++)
            if (strlen(opts[k].name) == nlen && strncmp(opts[k].name, name, nlen) == 0)
                break;
        if (k == NOPTS)
            return bad("unknown option \"%s\"%s", a, "");
        if (!(opts[k].modes & mode))
            return bad("option --%s does not apply to %s", opts[k].name, b->o.mode);
        const char *val = eq ? eq + 1 : NULL;
        if (!val) {
            if (i + 1 >= argc)
                return bad("option --%s needs a value%s", opts[k].name, "");
            val = argv[++i];
        }
        if (set_opt(&b->o, &opts[k], val))
            return 2;
        given[k] = 1;
    }
    for (size_t k = 0; k < NOPTS; k++) {
        if (given[k])
            continue;
        if (mode == M_CONNS && strcmp(opts[k].name, "connections") == 0)
            b->o.connections = 1000;
        if (mode == M_CONNS && strcmp(opts[k].name, "duration") == 0)
            b->o.duration = 1;
    }
    return 0;
}

/* Raises the open-file soft limit to the hard one and checks that `need`
 * descriptors fit. */
static int check_fds(size_t conns) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    size_t need = conns + 32; /* stdio, the loop's epoll and eventfd, slack */
    if (rl.rlim_cur != RLIM_INFINITY && need > rl.rlim_cur) {
        fprintf(stderr,
                "moonwire-bench: %zu connections need about %zu file descriptors, but this "
                "process may open at most %llu (RLIMIT_NOFILE hard limit; see ulimit -Hn). "
                "Use at most %llu connections, or raise the hard limit.\n",
                conns, need, (unsigned long long)rl.rlim_cur,
                (unsigned long long)(rl.rlim_cur > 32 ? rl.rlim_cur - 32 : 0));
        return 2;
    }
    return 0;
}

/* ---- shared helpers (bench.h) -------------------------------------------- */

void mw_bench_error(mw_bench_t *b, const char *what) {
    if (b->errors++ == 0)
        snprintf(b->first_error, sizeof(b->first_error), "%s", what);
}

const struct sockaddr_in *mw_bench_src(mw_bench_t *b, size_t i, struct sockaddr_in *sa) {
    if (b->o.addresses <= 0)
        return NULL;
    char ip[32];
    snprintf(ip, sizeof(ip), "127.0.0.%ld", 2 + (long)(i % (size_t)b->o.addresses));
    uv_ip4_addr(ip, 0, sa);
    return sa;
}

static void on_guard(uv_timer_t *t) {
    mw_bench_t *b = t->data;
    mw_bench_error(b, "the run did not finish in time (guard timer)");
    uv_stop(b->loop);
}

void mw_bench_guard(mw_bench_t *b, double seconds) {
    uv_timer_start(&b->guard, on_guard, (uint64_t)(seconds * 1000) + 1, 0);
}

void mw_bench_cpu_begin(mw_bench_t *b) {
    getrusage(RUSAGE_SELF, &b->ru0);
    b->cpu_t0 = uv_hrtime();
}

static double tv_s(struct timeval tv) {
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

double mw_bench_cpu_end(mw_bench_t *b) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double wall = (double)(uv_hrtime() - b->cpu_t0) / 1e9;
    double cpu =
        tv_s(ru.ru_utime) - tv_s(b->ru0.ru_utime) + tv_s(ru.ru_stime) - tv_s(b->ru0.ru_stime);
    b->cpu_pct = wall > 0 ? 100.0 * cpu / wall : 0;
    return b->cpu_pct;
}

static void json_raw(mw_bench_t *b, const char *s, size_t n) {
    if (b->json_len + n + 2 > b->json_cap) {
        size_t cap = (b->json_cap ? b->json_cap : 1024);
        while (cap < b->json_len + n + 2)
            cap *= 2;
        char *nb = realloc(b->json, cap);
        if (!nb)
            return;
        b->json = nb;
        b->json_cap = cap;
    }
    memcpy(b->json + b->json_len, s, n);
    b->json_len += n;
    b->json[b->json_len] = 0;
}

static void json_key(mw_bench_t *b, const char *key) {
    json_raw(b, b->json_len ? "," : "{", 1);
    json_raw(b, "\"", 1);
    json_raw(b, key, strlen(key));
    json_raw(b, "\":", 2);
}

void mw_bench_json_str(mw_bench_t *b, const char *key, const char *val) {
    json_key(b, key);
    json_raw(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)val; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            json_raw(b, esc, 2);
        } else if (*p < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", *p);
            json_raw(b, esc, 6);
        } else {
            json_raw(b, (const char *)p, 1);
        }
    }
    json_raw(b, "\"", 1);
}

void mw_bench_json_int(mw_bench_t *b, const char *key, long long val) {
    char s[32];
    int n = snprintf(s, sizeof(s), "%lld", val);
    json_key(b, key);
    json_raw(b, s, (size_t)n);
}

void mw_bench_json_num(mw_bench_t *b, const char *key, double val) {
    char s[64];
    if (!isfinite(val))
        val = 0;
    int n = snprintf(s, sizeof(s), "%.3f", val);
    while (n > 1 && s[n - 1] == '0')
        s[--n] = 0;
    if (s[n - 1] == '.')
        s[--n] = 0;
    json_key(b, key);
    json_raw(b, s, (size_t)n);
}

void mw_bench_json_raw(mw_bench_t *b, const char *key, const char *val) {
    json_key(b, key);
    json_raw(b, val, strlen(val));
}

static void fmt_us(char *out, size_t n, uint64_t ns) {
    if (ns >= 10000000)
        snprintf(out, n, "%.1f ms", (double)ns / 1e6);
    else if (ns >= 1000000)
        snprintf(out, n, "%.2f ms", (double)ns / 1e6);
    else
        snprintf(out, n, "%.0f us", (double)ns / 1e3);
}

void mw_bench_report_latency(mw_bench_t *b, const char *what) {
    static const struct {
        const char *key, *label;
        double pct;
    } ps[] = {{"p50_us", "p50", 50},
              {"p90_us", "p90", 90},
              {"p99_us", "p99", 99},
              {"p999_us", "p99.9", 99.9}};
    printf("  latency      ");
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        uint64_t v = mw_bench_hist_percentile(b->hist, ps[i].pct);
        char s[32];
        fmt_us(s, sizeof(s), v);
        printf("%s %s  ", ps[i].label, s);
        mw_bench_json_num(b, ps[i].key, (double)v / 1e3);
    }
    char s[32];
    fmt_us(s, sizeof(s), mw_bench_hist_max(b->hist));
    printf("max %s  (%s, %llu samples)\n", s, what,
           (unsigned long long)mw_bench_hist_count(b->hist));
    mw_bench_json_num(b, "max_us", (double)mw_bench_hist_max(b->hist) / 1e3);
    mw_bench_json_num(b, "mean_us", mw_bench_hist_mean(b->hist) / 1e3);
    mw_bench_json_int(b, "latency_samples", (long long)mw_bench_hist_count(b->hist));
}

void mw_bench_report_cpu(mw_bench_t *b) {
    printf("  bench cpu    %.0f%% of one core (user+sys / wall time)\n", b->cpu_pct);
    if (b->cpu_pct > 90)
        printf("  WARNING: the load generator saturated its core; the server may be faster "
               "than measured\n");
    mw_bench_json_num(b, "bench_cpu_pct", b->cpu_pct);
}

void mw_bench_teardown(mw_bench_t *b, mw_bench_client_t **clients, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (clients[i]) {
            mw_bench_client_close(clients[i]);
            clients[i] = NULL;
        }
    /* Closing is quick, but never wait for it for more than 5 s. */
    uint64_t deadline = uv_hrtime() + 5000000000ull;
    uv_timer_start(&b->guard, on_guard, 5000, 0);
    while (b->net.live > 0 && uv_hrtime() < deadline)
        uv_run(b->loop, UV_RUN_ONCE);
    mw_bench_net_close(&b->net);
    uv_close((uv_handle_t *)&b->guard, NULL);
    uv_run(b->loop, UV_RUN_NOWAIT);
}

/* ---- main ---------------------------------------------------------------- */

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    static mw_bench_t bench;
    mw_bench_t *b = &bench;
    b->o.mode = argv[1];
    unsigned mode = strcmp(argv[1], "echo") == 0     ? M_ECHO
                    : strcmp(argv[1], "fanout") == 0 ? M_FANOUT
                    : strcmp(argv[1], "conns") == 0  ? M_CONNS
                    : strcmp(argv[1], "emit") == 0   ? M_EMIT
                                                     : 0;
    if (!mode)
        return bad("unknown mode \"%s\": use echo, fanout, emit or conns%s", argv[1], "");
    int rc = parse(b, argc, argv, mode);
    if (rc)
        return rc;

    size_t conns =
        mode & M_FAN ? (size_t)(b->o.subscribers + b->o.publishers) : (size_t)b->o.connections;
    if ((rc = check_fds(conns)))
        return rc;
    mw_bench_proc_t probe;
    if (b->o.server_pid > 0 &&
        (mw_bench_procs_read(b->o.server_pid, &probe, 1, 1) != 1 || probe.rss < 0)) {
        fprintf(stderr, "moonwire-bench: --server-pid %ld: cannot read /proc/%ld\n",
                b->o.server_pid, b->o.server_pid);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    b->loop = uv_default_loop();
    char err[256];
    if (mw_bench_net_init(&b->net, b->loop, b->o.url, err, sizeof(err)) != 0) {
        fprintf(stderr, "moonwire-bench: %s\n", err);
        return 2;
    }
    b->hist = mw_bench_hist_new();
    if (!b->hist) {
        fprintf(stderr, "moonwire-bench: out of memory\n");
        return 1;
    }
    uv_timer_init(b->loop, &b->guard);
    b->guard.data = b;

    mw_bench_json_str(b, "mode", b->o.mode);
    for (size_t i = 0; i < NOPTS; i++) {
        const opt_t *o = &opts[i];
        if (!(o->modes & mode) || !o->json)
            continue;
        const char *p = (const char *)&b->o + o->off;
        if (o->type == 's')
            mw_bench_json_str(b, o->json, *(const char *const *)p);
        else if (o->type == 'l')
            mw_bench_json_int(b, o->json, *(const long *)p);
        else
            mw_bench_json_num(b, o->json, *(const double *)p);
    }

    rc = mode == M_ECHO ? mw_bench_run_echo(b)
         : mode & M_FAN ? mw_bench_run_fanout(b)
                        : mw_bench_run_conns(b);
    if (rc == 2) /* a bad template: nothing was run, and no JSON line */
        return 2;

    mw_bench_json_int(b, "errors", (long long)b->errors);
    if (b->errors) {
        printf("  errors       %llu (first: %s)\n", (unsigned long long)b->errors, b->first_error);
        mw_bench_json_str(b, "first_error", b->first_error);
    }
    if (rc == 0 && b->errors)
        rc = 1;
    mw_bench_json_int(b, "exit", rc);
    printf("%s}\n", b->json ? b->json : "{");
    fflush(stdout);
    mw_bench_hist_free(b->hist);
    free(b->json);
    uv_loop_close(b->loop);
    return rc;
}
