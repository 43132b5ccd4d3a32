/*
 * latency.c - per-route histograms of message handling time (latency.h).
 */
#include "latency.h"
#include "metrics.h"

#include <stdlib.h>
#include <string.h>

#define US 1000ull
#define MS 1000000ull

static const uint64_t bounds_ns[MW_LATENCY_BUCKETS] = {
    25 * US, 50 * US, 100 * US, 250 * US, 500 * US, 1 * MS,    2500 * US, 5 * MS,    10 * MS,
    25 * MS, 50 * MS, 100 * MS, 250 * MS, 500 * MS, 1000 * MS, 2500 * MS, 5000 * MS, 10000 * MS,
};

/* The same bounds as the text of the le label. */
static const char *const le_text[MW_LATENCY_BUCKETS + 1] = {
    "2.5e-05", "5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
    "0.05",    "0.1",   "0.25",   "0.5",     "1",      "2.5",   "5",      "10",    "+Inf",
};

uint64_t mw_latency_bound_ns(int b) {
    return b >= 0 && b < MW_LATENCY_BUCKETS ? bounds_ns[b] : UINT64_MAX;
}

/* grow makes room for route number route (and, the first time, fills
 * l->first). Returns 0 or -1 (no memory). Out of line: the per-message
 * path stays a leaf function. */
__attribute__((noinline, cold)) static int grow(mw_latency_t *l, unsigned route) {
    if (l->n == 0) {
        /* A duration whose top bit is p lies in [2^p, 2^(p+1)): no bound
         * below 2^p can hold it. Bounds grow by 2 or 2.5 a step, so at
         * most two lie in that range: the search from there is short. */
        for (int p = 0; p < 64; p++) {
            int b = 0;
            while (b < MW_LATENCY_BUCKETS && bounds_ns[b] < (1ull << p))
                b++;
            l->first[p] = (uint8_t)b;
        }
    }
    unsigned n = l->n ? l->n * 2 : 8;
    if (n <= route)
        n = route + 1;
    mw_latency_route_t *r = realloc(l->routes, n * sizeof *r);
    if (!r)
        return -1;
    memset(r + l->n, 0, (n - l->n) * sizeof *r);
    l->routes = r;
    l->n = n;
    return 0;
}

void mw_latency_observe(mw_latency_t *l, unsigned route, uint64_t ns) {
    if (__builtin_expect(route >= l->n, 0) && grow(l, route) != 0)
        return;
    mw_latency_route_t *r = &l->routes[route];
    int b = l->first[63 - __builtin_clzll(ns | 1)];
    while (b < MW_LATENCY_BUCKETS && ns > bounds_ns[b])
        b++;
    r->counts[b]++;
    r->sum_ns += ns;
}

static void series(FILE *out, const char *family, const char *suffix, const char *route) {
    fprintf(out, "moonwire_%s_%s{route=\"", family, suffix);
    mw_metrics_label_escape(out, route);
    fputc('"', out);
}

void mw_latency_write(const mw_latency_t *l, FILE *out, const char *family, const char *help,
                      mw_latency_name_fn name, void *data) {
    mw_metrics_family(out, family, "histogram", help);
    for (unsigned i = 0; i < l->n; i++) {
        const mw_latency_route_t *r = &l->routes[i];
        uint64_t count = 0;
        for (int b = 0; b <= MW_LATENCY_BUCKETS; b++)
            count += r->counts[b];
        const char *route = count ? name(data, i) : NULL;
        if (!route)
            continue;
        uint64_t cum = 0;
        for (int b = 0; b <= MW_LATENCY_BUCKETS; b++) {
            cum += r->counts[b];
            series(out, family, "bucket", route);
            fprintf(out, ",le=\"%s\"} %llu\n", le_text[b], (unsigned long long)cum);
        }
        series(out, family, "sum", route);
        fprintf(out, "} %llu.%09llu\n", (unsigned long long)(r->sum_ns / 1000000000ull),
                (unsigned long long)(r->sum_ns % 1000000000ull));
        series(out, family, "count", route);
        fprintf(out, "} %llu\n", (unsigned long long)count);
    }
}

void mw_latency_free(mw_latency_t *l) {
    free(l->routes);
    l->routes = NULL;
    l->n = 0;
}
