/*
 * test_expo.c - merging expositions (src/expo.c): counters, histograms and
 * amounts summed, max and min families, a worker that exited (counters
 * only), exact decimals, order of first appearance, the internal form read
 * back, and lookups of a merged value.
 */
#include "errors.h"
#include "expo.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

/* merged adds each text (NULL-terminated list, with its flags) and returns
 * the output, internal or not. */
static char *merged(int internal, const char *const *texts, const int *flags) {
    mw_expo_t *e;
    if (mw_expo_create(&e) != 0)
        return NULL;
    for (int i = 0; texts[i]; i++)
        if (mw_expo_add(e, texts[i], strlen(texts[i]), flags ? flags[i] : 0) != 0) {
            mw_expo_free(e);
            return NULL;
        }
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (f) {
        mw_expo_write(e, f, internal);
        fclose(f);
    }
    mw_expo_free(e);
    return buf;
}

static const char *const w1 = "# HELP moonwire_connections WebSocket clients connected now.\n"
                              "# TYPE moonwire_connections gauge\n"
                              "moonwire_connections 2\n"
                              "# HELP moonwire_disconnects_total Clients gone, by code.\n"
                              "# TYPE moonwire_disconnects_total counter\n"
                              "moonwire_disconnects_total{code=\"1000\"} 3\n"
                              "# HELP moonwire_limit_bytes A limit.\n"
                              "# TYPE moonwire_limit_bytes gauge max\n"
                              "moonwire_limit_bytes 100\n"
                              "# HELP moonwire_up Up.\n"
                              "# TYPE moonwire_up gauge min\n"
                              "moonwire_up{name=\"r\"} 1\n"
                              "# HELP moonwire_d_seconds Time.\n"
                              "# TYPE moonwire_d_seconds histogram\n"
                              "moonwire_d_seconds_bucket{route=\"a.b\",le=\"0.1\"} 1\n"
                              "moonwire_d_seconds_bucket{route=\"a.b\",le=\"+Inf\"} 2\n"
                              "moonwire_d_seconds_sum{route=\"a.b\"} 0.600000000\n"
                              "moonwire_d_seconds_count{route=\"a.b\"} 2\n";

static const char *const w2 = "# HELP moonwire_connections WebSocket clients connected now.\n"
                              "# TYPE moonwire_connections gauge\n"
                              "moonwire_connections 5\n"
                              "# HELP moonwire_disconnects_total Clients gone, by code.\n"
                              "# TYPE moonwire_disconnects_total counter\n"
                              "moonwire_disconnects_total{code=\"1000\"} 1\n"
                              "moonwire_disconnects_total{code=\"1006\"} 4\n"
                              "# HELP moonwire_limit_bytes A limit.\n"
                              "# TYPE moonwire_limit_bytes gauge max\n"
                              "moonwire_limit_bytes 300\n"
                              "# HELP moonwire_up Up.\n"
                              "# TYPE moonwire_up gauge min\n"
                              "moonwire_up{name=\"r\"} 0\n"
                              "# HELP moonwire_d_seconds Time.\n"
                              "# TYPE moonwire_d_seconds histogram\n"
                              "moonwire_d_seconds_bucket{route=\"a.b\",le=\"0.1\"} 0\n"
                              "moonwire_d_seconds_bucket{route=\"a.b\",le=\"+Inf\"} 1\n"
                              "moonwire_d_seconds_sum{route=\"a.b\"} 0.700000001\n"
                              "moonwire_d_seconds_count{route=\"a.b\"} 1\n"
                              "# HELP moonwire_only2_total Only here.\n"
                              "# TYPE moonwire_only2_total counter\n"
                              "moonwire_only2_total 7\n";

static void test_sum_max_min(void) {
    const char *texts[] = {w1, w2, NULL};
    char *t = merged(0, texts, NULL);
    CHECK_STR(t, "# HELP moonwire_connections WebSocket clients connected now.\n"
                 "# TYPE moonwire_connections gauge\n"
                 "moonwire_connections 7\n"
                 "# HELP moonwire_disconnects_total Clients gone, by code.\n"
                 "# TYPE moonwire_disconnects_total counter\n"
                 "moonwire_disconnects_total{code=\"1000\"} 4\n"
                 "moonwire_disconnects_total{code=\"1006\"} 4\n"
                 "# HELP moonwire_limit_bytes A limit.\n"
                 "# TYPE moonwire_limit_bytes gauge\n"
                 "moonwire_limit_bytes 300\n"
                 "# HELP moonwire_up Up.\n"
                 "# TYPE moonwire_up gauge\n"
                 "moonwire_up{name=\"r\"} 0\n"
                 "# HELP moonwire_d_seconds Time.\n"
                 "# TYPE moonwire_d_seconds histogram\n"
                 "moonwire_d_seconds_bucket{route=\"a.b\",le=\"0.1\"} 1\n"
                 "moonwire_d_seconds_bucket{route=\"a.b\",le=\"+Inf\"} 3\n"
                 "moonwire_d_seconds_sum{route=\"a.b\"} 1.300000001\n"
                 "moonwire_d_seconds_count{route=\"a.b\"} 3\n"
                 "# HELP moonwire_only2_total Only here.\n"
                 "# TYPE moonwire_only2_total counter\n"
                 "moonwire_only2_total 7\n");
    free(t);
}

/* A worker that exited: its counters and histograms count, its gauges
 * (max and min ones too) do not. */
static void test_counters_only(void) {
    const char *texts[] = {w1, w2, NULL};
    int flags[] = {0, MW_EXPO_COUNTERS_ONLY};
    char *t = merged(0, texts, flags);
    CHECK(strstr(t, "moonwire_connections 2\n"));
    CHECK(strstr(t, "moonwire_limit_bytes 100\n"));
    CHECK(strstr(t, "moonwire_up{name=\"r\"} 1\n"));
    CHECK(strstr(t, "moonwire_disconnects_total{code=\"1000\"} 4\n"));
    CHECK(strstr(t, "moonwire_d_seconds_count{route=\"a.b\"} 3\n"));
    CHECK(strstr(t, "moonwire_only2_total 7\n"));
    free(t);
    /* alone: no gauge family at all, not even its HELP */
    const char *alone[] = {w2, NULL};
    int only[] = {MW_EXPO_COUNTERS_ONLY};
    t = merged(0, alone, only);
    CHECK(!strstr(t, "connections"));
    CHECK(!strstr(t, "limit_bytes"));
    CHECK(!strstr(t, "moonwire_up"));
    CHECK(strstr(t, "# TYPE moonwire_disconnects_total counter\n"));
    free(t);
}

/* The internal form keeps the rules, so a merge of merges merges alike. */
static void test_internal_roundtrip(void) {
    const char *texts[] = {w1, w2, NULL};
    char *inner = merged(1, texts, NULL);
    CHECK(strstr(inner, "# TYPE moonwire_limit_bytes gauge max\n"));
    CHECK(strstr(inner, "# TYPE moonwire_up gauge min\n"));
    CHECK(strstr(inner, "# TYPE moonwire_connections gauge\n"));
    const char *again[] = {inner, w1, NULL};
    char *t = merged(0, again, NULL);
    CHECK(strstr(t, "moonwire_connections 9\n"));
    CHECK(strstr(t, "moonwire_limit_bytes 300\n"));
    CHECK(strstr(t, "moonwire_d_seconds_sum{route=\"a.b\"} 1.900000001\n"));
    free(t);
    free(inner);
}

static void test_values(void) {
    mw_expo_t *e;
    REQUIRE(mw_expo_create(&e) == 0);
    const char *a = "# TYPE moonwire_x_total counter\n"
                    "moonwire_x_total 18446744073709551614\n"
                    "# TYPE moonwire_s_seconds_sum counter\n"
                    "moonwire_s_seconds_sum 0.999999999\n"
                    "# TYPE moonwire_f gauge\n"
                    "moonwire_f 1.5e-05\n"
                    "# TYPE moonwire_h gauge max\n"
                    "moonwire_h{k=\"a b\"} 3\n"
                    "moonwire_bare 4\n"; /* a sample of no declared family */
    const char *b = "# TYPE moonwire_x_total counter\n"
                    "moonwire_x_total 1\n"
                    "# TYPE moonwire_s_seconds_sum counter\n"
                    "moonwire_s_seconds_sum 0.5\n"
                    "# TYPE moonwire_f gauge\n"
                    "moonwire_f 1\n"
                    "# TYPE moonwire_h gauge max\n"
                    "moonwire_h{k=\"a b\"} 2\n"
                    "moonwire_bare 1\n";
    REQUIRE(mw_expo_add(e, a, strlen(a), 0) == 0);
    REQUIRE(mw_expo_add(e, b, strlen(b), 0) == 0);
    uint64_t v = 0;
    CHECK_EQ(mw_expo_value(e, "moonwire_x_total", &v), 0);
    CHECK(v == 18446744073709551615ull); /* exact, past a double's 53 bits */
    CHECK_EQ(mw_expo_value(e, "moonwire_s_seconds_sum", &v), 0);
    CHECK_EQ(v, 1); /* 1.499999999: the integer part */
    CHECK_EQ(mw_expo_value(e, "moonwire_h{k=\"a b\"}", &v), 0);
    CHECK_EQ(v, 3);
    CHECK_EQ(mw_expo_value(e, "moonwire_bare", &v), 0);
    CHECK_EQ(v, 5);
    CHECK_EQ(mw_expo_value(e, "moonwire_none", &v), MW_ENOTFOUND);
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    REQUIRE(f != NULL);
    mw_expo_write(e, f, 0);
    fclose(f);
    CHECK(strstr(buf, "moonwire_s_seconds_sum 1.499999999\n"));
    CHECK(strstr(buf, "moonwire_f 1.0000150000000001\n") || strstr(buf, "moonwire_f 1.000015\n"));
    CHECK(strstr(buf, "# TYPE moonwire_bare untyped\nmoonwire_bare 5\n"));
    free(buf);
    mw_expo_free(e);
}

/* Many series: the indexes grow and every series stays findable, in
 * order of first appearance. */
static void test_many(void) {
    mw_expo_t *e;
    REQUIRE(mw_expo_create(&e) == 0);
    char line[128];
    for (int round = 0; round < 2; round++) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        REQUIRE(f != NULL);
        for (int fam = 0; fam < 50; fam++) {
            fprintf(f, "# HELP moonwire_f%d_total F.\n# TYPE moonwire_f%d_total counter\n", fam,
                    fam);
            for (int s = 0; s < 40; s++)
                fprintf(f, "moonwire_f%d_total{s=\"%d\"} %d\n", fam, s, s + round);
        }
        fclose(f);
        REQUIRE(mw_expo_add(e, buf, size, 0) == 0);
        free(buf);
    }
    uint64_t v;
    snprintf(line, sizeof line, "moonwire_f49_total{s=\"39\"}");
    CHECK_EQ(mw_expo_value(e, line, &v), 0);
    CHECK_EQ(v, 39 + 40);
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    REQUIRE(f != NULL);
    mw_expo_write(e, f, 0);
    fclose(f);
    const char *a = strstr(buf, "moonwire_f3_total{s=\"0\"} 1\n");
    const char *b = strstr(buf, "moonwire_f3_total{s=\"1\"} 3\n");
    const char *c = strstr(buf, "# HELP moonwire_f4_total");
    CHECK(a && b && c && a < b && b < c);
    free(buf);
    mw_expo_free(e);
}

int main(void) {
    RUN(test_sum_max_min);
    RUN(test_counters_only);
    RUN(test_internal_roundtrip);
    RUN(test_values);
    RUN(test_many);
    return test_summary();
}
