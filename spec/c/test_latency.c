/*
 * test_latency.c - per-route histograms (src/latency.c): each duration in
 * the first bucket whose bound holds it (bounds inclusive), whatever its
 * size; the text is cumulative, with _sum in seconds and _count, one
 * series set per route that recorded anything.
 */
#include "latency.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

static int bucket_of(const mw_latency_t *l, unsigned route) {
    for (int b = 0; b <= MW_LATENCY_BUCKETS; b++)
        if (l->routes[route].counts[b])
            return b;
    return -1;
}

static void test_buckets(void) {
    /* every bound, one below it and one above it, and the extremes */
    for (int b = 0; b < MW_LATENCY_BUCKETS; b++) {
        uint64_t bound = mw_latency_bound_ns(b);
        uint64_t cases[3] = {bound - 1, bound, bound + 1};
        int expect[3] = {b, b, b + 1};
        if (b > 0 && bound - 1 == mw_latency_bound_ns(b - 1))
            expect[0] = b - 1;
        for (int i = 0; i < 3; i++) {
            mw_latency_t l;
            memset(&l, 0, sizeof l);
            mw_latency_observe(&l, 0, cases[i]);
            CHECK_EQ(bucket_of(&l, 0), expect[i]);
            mw_latency_free(&l);
        }
    }
    uint64_t extremes[] = {0, 1, UINT64_MAX};
    int expect[] = {0, 0, MW_LATENCY_BUCKETS};
    for (int i = 0; i < 3; i++) {
        mw_latency_t l;
        memset(&l, 0, sizeof l);
        mw_latency_observe(&l, 0, extremes[i]);
        CHECK_EQ(bucket_of(&l, 0), expect[i]);
        mw_latency_free(&l);
    }
    /* bounds grow */
    for (int b = 1; b < MW_LATENCY_BUCKETS; b++)
        CHECK(mw_latency_bound_ns(b) > mw_latency_bound_ns(b - 1));
    CHECK_EQ(mw_latency_bound_ns(0), 25000);
    CHECK_EQ(mw_latency_bound_ns(MW_LATENCY_BUCKETS - 1), 10000000000ull);
}

static const char *name(void *data, unsigned route) {
    (void)data;
    static const char *const names[] = {"unrouted", "chat.send", NULL, "odd\"route"};
    return route < 4 ? names[route] : NULL;
}

/* has says whether text holds this whole line. */
static int has(const char *text, const char *line) {
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return 1;
    return 0;
}

static void test_text(void) {
    mw_latency_t l;
    memset(&l, 0, sizeof l);
    mw_latency_observe(&l, 1, 20000);      /* 20 us */
    mw_latency_observe(&l, 1, 150000000);  /* 150 ms */
    mw_latency_observe(&l, 1, 2000000000); /* 2 s */
    mw_latency_observe(&l, 0, 0);
    mw_latency_observe(&l, 3, 60000000000); /* 60 s: past the last bound */
    mw_latency_observe(&l, 2, 1);           /* a route without a name: left out */
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    REQUIRE(f != NULL);
    mw_latency_write(&l, f, "message_duration_seconds", "Time.", name, NULL);
    fclose(f);
    const char *p = "moonwire_message_duration_seconds_";
    char line[256];
#define LINE(fmt, ...) (snprintf(line, sizeof line, "%s" fmt, p, __VA_ARGS__), has(buf, line))
    CHECK(strncmp(buf,
                  "# HELP moonwire_message_duration_seconds Time.\n"
                  "# TYPE moonwire_message_duration_seconds histogram\n",
                  98) == 0);
    CHECK(LINE("bucket{route=\"%s\",le=\"2.5e-05\"} 1", "chat.send"));
    CHECK(LINE("bucket{route=\"%s\",le=\"0.1\"} 1", "chat.send"));
    CHECK(LINE("bucket{route=\"%s\",le=\"0.25\"} 2", "chat.send"));
    CHECK(LINE("bucket{route=\"%s\",le=\"1\"} 2", "chat.send"));
    CHECK(LINE("bucket{route=\"%s\",le=\"2.5\"} 3", "chat.send"));
    CHECK(LINE("bucket{route=\"%s\",le=\"+Inf\"} 3", "chat.send"));
    CHECK(LINE("sum{route=\"%s\"} 2.150020000", "chat.send"));
    CHECK(LINE("count{route=\"%s\"} 3", "chat.send"));
    CHECK(LINE("bucket{route=\"%s\",le=\"2.5e-05\"} 1", "unrouted"));
    CHECK(LINE("sum{route=\"%s\"} 0.000000000", "unrouted"));
    CHECK(LINE("bucket{route=\"%s\",le=\"10\"} 0", "odd\\\"route"));
    CHECK(LINE("bucket{route=\"%s\",le=\"+Inf\"} 1", "odd\\\"route"));
    CHECK(LINE("sum{route=\"%s\"} 60.000000000", "odd\\\"route"));
    /* 2 + 3 route series sets of (buckets + sum + count) lines, plus HELP and TYPE */
    int lines = 0;
    for (const char *q = buf; *q; q++)
        lines += *q == '\n';
    CHECK_EQ(lines, 2 + 3 * (MW_LATENCY_BUCKETS + 1 + 2));
    free(buf);
    mw_latency_free(&l);
}

static void test_empty(void) {
    mw_latency_t l;
    memset(&l, 0, sizeof l);
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    REQUIRE(f != NULL);
    mw_latency_write(&l, f, "x_seconds", "X.", name, NULL);
    fclose(f);
    CHECK_STR(buf, "# HELP moonwire_x_seconds X.\n# TYPE moonwire_x_seconds histogram\n");
    free(buf);
}

int main(void) {
    RUN(test_buckets);
    RUN(test_text);
    RUN(test_empty);
    return test_summary();
}
