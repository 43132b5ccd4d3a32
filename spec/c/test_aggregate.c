/*
 * test_aggregate.c - /health and /metrics of several workers
 * (src/aggregate.c): two servers in this process, each attached to the
 * same stats zone as worker 1 and worker 2 the way a worker attaches its
 * inherited memfd. What either answers is the sum of both; a worker that
 * exited keeps its counters and loses its gauges; one started in its place
 * carries its predecessor's counters on, twice over.
 */
#include "aggregate.h"
#include "errors.h"
#include "health.h"
#include "metrics.h"
#include "server.h"
#include "state.h"
#include "stats.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    uv_loop_t loop;
    mw_config_t cfg;
    mw_server_t *s;
} world_t;

static int world_init(world_t *w) {
    memset(w, 0, sizeof *w);
    if (uv_loop_init(&w->loop) != 0)
        return -1;
    if (mw_config_init(&w->cfg) != 0) {
        uv_loop_close(&w->loop);
        return -1;
    }
    if (mw_server_create(&w->s, &w->loop, &w->cfg, ".", NULL) != 0) {
        mw_config_free(&w->cfg);
        uv_loop_close(&w->loop);
        return -1;
    }
    return 0;
}

static void world_end(world_t *w) {
    mw_server_free(w->s);
    while (uv_run(&w->loop, UV_RUN_DEFAULT) != 0) {
    }
    CHECK_EQ(uv_loop_close(&w->loop), 0);
    mw_config_free(&w->cfg);
}

/* value is the whole server's series as s answers it. */
static uint64_t value(mw_server_t *s, const char *series) {
    mw_aggregate_totals_t t;
    uint64_t v = 12345678;
    if (mw_aggregate_begin(s, &t) != 0)
        return v;
    mw_aggregate_value(s, series, &v);
    mw_aggregate_end(s);
    return v;
}

static mw_aggregate_totals_t totals(mw_server_t *s) {
    mw_aggregate_totals_t t;
    memset(&t, 0xff, sizeof t);
    if (mw_aggregate_begin(s, &t) == 0)
        mw_aggregate_end(s);
    return t;
}

static void test_two_workers(void) {
    mw_stats_t *sup;
    int fd;
    REQUIRE(mw_stats_create(&sup, 2, MW_STATS_TEXT_MAX, &fd) == 0);
    world_t w1, w2;
    REQUIRE(world_init(&w1) == 0);
    REQUIRE(world_init(&w2) == 0);
    mw_stats_spawned(sup, 1, getpid());
    mw_stats_spawned(sup, 2, getpid());
    CHECK_EQ(mw_aggregate_attach(w1.s, fd, 3), MW_EINVAL); /* no such slot */
    CHECK(w1.s->agg == NULL);
    REQUIRE(mw_aggregate_attach(w1.s, fd, 1) == 0);
    REQUIRE(mw_aggregate_attach(w2.s, fd, 2) == 0);
    CHECK_EQ(w1.s->started_ms, mw_stats_created_ms(sup)); /* the server's start */
    w1.s->counters.connects = 5;
    w1.s->nclients = 2;
    w1.s->dropped_total = 3;
    w1.s->reloads = 1;
    w2.s->counters.connects = 1;
    w2.s->nclients = 1;
    w2.s->rate_limited_total = 4;
    /* worker 1 has not published yet: worker 2 answers for itself */
    CHECK_EQ(value(w2.s, "moonwire_connects_total"), 1);
    mw_aggregate_tick(w1.s); /* its first: due at once */
    mw_aggregate_totals_t t = totals(w2.s);
    CHECK_EQ(t.connections, 3);
    CHECK_EQ(t.dropped, 3);
    CHECK_EQ(t.rate_limited, 4);
    CHECK_EQ(t.reloads, 1);
    CHECK_EQ(value(w2.s, "moonwire_connects_total"), 6);
    CHECK_EQ(value(w1.s, "moonwire_connects_total"), 6); /* from either */
    CHECK_EQ(value(w2.s, "moonwire_start_time_seconds"), mw_stats_created_ms(sup) / 1000);
    /* worker 2 sees worker 1's counts as of its last snapshot */
    w1.s->counters.connects = 6;
    mw_aggregate_publish(w1.s);
    CHECK_EQ(value(w2.s, "moonwire_connects_total"), 7);

    size_t len;
    char *doc = mw_aggregate_metrics(w2.s, &len);
    REQUIRE(doc != NULL);
    CHECK(strstr(doc, "\nmoonwire_connections 3\n"));
    CHECK(strstr(doc, "\nmoonwire_connects_total 7\n"));
    CHECK(
        strstr(doc, "\nmoonwire_worker_up{worker=\"1\"} 1\nmoonwire_worker_up{worker=\"2\"} 1\n"));
    CHECK(strstr(doc, "\nmoonwire_worker_connections{worker=\"1\"} 2\n"));
    CHECK(!strstr(doc, " max\n") && !strstr(doc, " min\n")); /* no internal rule shows */
    free(doc);
    doc = mw_health_json(w2.s, &len);
    REQUIRE(doc != NULL);
    CHECK(strstr(doc, "\"connections\":3,\"rooms\":0,\"dropped\":3,\"refused\":0,"
                      "\"rate_limited\":4,"));
    char want[128];
    snprintf(want, sizeof want,
             "\"workers\":[{\"worker\":1,\"pid\":%d,\"up\":true,\"age_ms\":", (int)getpid());
    CHECK(strstr(doc, want));
    CHECK(strstr(doc, "\"restarts\":0,\"connections\":2,\"rooms\":0,\"dropped\":3,"));
    free(doc);

    /* worker 1 exits; what it counted after its last snapshot is lost */
    w1.s->counters.connects = 50;
    mw_stats_exited(sup, 1);
    world_end(&w1);
    t = totals(w2.s);
    CHECK_EQ(t.connections, 1); /* its gauges are gone */
    CHECK_EQ(t.dropped, 3);     /* its counters are not */
    CHECK_EQ(value(w2.s, "moonwire_connects_total"), 7);
    doc = mw_health_json(w2.s, &len);
    REQUIRE(doc != NULL);
    CHECK(strstr(doc, "{\"worker\":1,\"pid\":0,\"up\":false,"));
    free(doc);

    /* its successor carries its counters on */
    REQUIRE(world_init(&w1) == 0);
    REQUIRE(mw_aggregate_attach(w1.s, fd, 1) == 0);
    mw_stats_spawned(sup, 1, getpid());
    w1.s->counters.connects = 2;
    w1.s->nclients = 1;
    mw_aggregate_publish(w1.s);
    t = totals(w2.s);
    CHECK_EQ(t.connections, 2);
    CHECK_EQ(t.dropped, 3);
    CHECK_EQ(t.reloads, 1);
    CHECK_EQ(value(w2.s, "moonwire_connects_total"), 6 + 2 + 1);
    doc = mw_health_json(w2.s, &len);
    REQUIRE(doc != NULL);
    CHECK(strstr(doc, "\"restarts\":1,\"connections\":1,\"rooms\":0,\"dropped\":3,"));
    free(doc);

    /* and the next one carries both on, once each */
    mw_stats_exited(sup, 1);
    world_end(&w1);
    REQUIRE(world_init(&w1) == 0);
    REQUIRE(mw_aggregate_attach(w1.s, fd, 1) == 0);
    mw_stats_spawned(sup, 1, getpid());
    w1.s->counters.connects = 1;
    w1.s->dropped_total = 1;
    CHECK_EQ(value(w1.s, "moonwire_connects_total"), 6 + 2 + 1 + 1);
    CHECK_EQ(value(w2.s, "moonwire_connects_total"), 6 + 2 + 1 + 1);
    t = totals(w2.s);
    CHECK_EQ(t.dropped, 4);
    CHECK_EQ(t.connections, 1);

    world_end(&w1);
    world_end(&w2);
    mw_stats_free(sup);
    close(fd);
}

/* Without a zone (workers = 1) nothing changes: no per-worker family, no
 * workers list. */
static void test_single(void) {
    world_t w;
    REQUIRE(world_init(&w) == 0);
    size_t len;
    char *doc = mw_metrics_text(w.s, &len);
    REQUIRE(doc != NULL);
    CHECK(!strstr(doc, "worker"));
    free(doc);
    doc = mw_health_json(w.s, &len);
    REQUIRE(doc != NULL);
    CHECK(!strstr(doc, "workers"));
    uint64_t v;
    CHECK_EQ(mw_health_total(w.s, "moonwire_connections", &v), MW_ENOTFOUND);
    free(doc);
    world_end(&w);
}

int main(void) {
    RUN(test_two_workers);
    RUN(test_single);
    return test_summary();
}
