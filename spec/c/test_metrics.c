/*
 * test_metrics.c - the /metrics text (src/metrics.c): label and HELP
 * escaping, the document of a server without an app and with one, and
 * admission's refusals counted by reason (what the document reports).
 */
#include "admission.h"
#include "metrics.h"
#include "server.h"
#include "state.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

/* render writes through a memstream and returns the malloc'd text. */
static char *render(void (*fn)(FILE *, void *), void *arg) {
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f)
        return NULL;
    fn(f, arg);
    fclose(f);
    return buf;
}

static void write_escaped(FILE *f, void *arg) {
    mw_metrics_label_escape(f, arg);
}

static void write_family(FILE *f, void *arg) {
    mw_metrics_family(f, "x_total", "counter", arg);
    mw_metrics_sample(f, "x_total", "path", "a\"b\\c\nd", 7);
    mw_metrics_sample(f, "x_total", NULL, NULL, 18446744073709551615ull);
}

static void test_escaping(void) {
    char *t = render(write_escaped, "say \"hi\"\\ \nnow");
    CHECK_STR(t, "say \\\"hi\\\"\\\\ \\nnow");
    free(t);
    /* HELP escapes backslash and newline only; quotes stay. */
    t = render(write_family, "one \"two\" \\ three\nfour");
    CHECK_STR(t, "# HELP moonwire_x_total one \"two\" \\\\ three\\nfour\n"
                 "# TYPE moonwire_x_total counter\n"
                 "moonwire_x_total{path=\"a\\\"b\\\\c\\nd\"} 7\n"
                 "moonwire_x_total 18446744073709551615\n");
    free(t);
}

typedef struct {
    uv_loop_t loop;
    mw_config_t cfg;
    mw_server_t *s;
} world_t;

static int world_init(world_t *w, const mw_app_callbacks_t *cb) {
    memset(w, 0, sizeof *w);
    if (uv_loop_init(&w->loop) != 0)
        return -1;
    if (mw_config_init(&w->cfg) != 0) {
        uv_loop_close(&w->loop);
        return -1;
    }
    mw_app_t app = {cb, NULL};
    if (mw_server_create(&w->s, &w->loop, &w->cfg, ".", cb ? &app : NULL) != 0) {
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

/* has says whether text holds this whole line. */
static int has(const char *text, const char *line) {
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return 1;
    return 0;
}

/* families_well_formed: every sample's family had its HELP then its TYPE
 * just before its first sample, and every line is one of the three. */
static int families_well_formed(const char *text) {
    char family[128] = "";
    int typed = 0;
    for (const char *p = text; *p;) {
        const char *e = strchr(p, '\n');
        if (!e)
            return 0;
        size_t n = (size_t)(e - p);
        if (n > 7 && strncmp(p, "# HELP ", 7) == 0) {
            const char *sp = memchr(p + 7, ' ', n - 7);
            size_t fl = sp ? (size_t)(sp - p - 7) : n - 7;
            if (fl >= sizeof family)
                return 0;
            memcpy(family, p + 7, fl);
            family[fl] = 0;
            typed = 0;
        } else if (n > 7 && strncmp(p, "# TYPE ", 7) == 0) {
            size_t fl = strlen(family);
            if (!fl || strncmp(p + 7, family, fl) != 0 || p[7 + fl] != ' ')
                return 0;
            typed = 1;
        } else {
            size_t fl = strlen(family);
            if (!typed || strncmp(p, family, fl) != 0 || (p[fl] != ' ' && p[fl] != '{'))
                return 0;
        }
        p = e + 1;
    }
    return 1;
}

static void test_text_without_app(void) {
    world_t w;
    REQUIRE(world_init(&w, NULL) == 0);
    mw_server_t *s = w.s;
    s->counters.connects = 5;
    mw_counters_disconnect(&s->counters, 1000);
    mw_counters_disconnect(&s->counters, 1000);
    mw_counters_disconnect(&s->counters, 1008);
    s->counters.messages_received = 11;
    s->counters.bytes_received = 222;
    s->counters.messages_sent = 33;
    s->counters.bytes_sent = 444;
    s->counters.fanout_deliveries = 20;
    s->counters.refused[MW_REFUSED_CAPACITY] = 2;
    s->counters.reload_failures = 1;
    s->dropped_total = 3;
    s->rate_limited_total = 4;
    s->reloads = 6;
    mw_counters_error(&s->counters, "MY_CODE", 7);
    mw_counters_error(&s->counters, "MY_CODE", 7);
    mw_counters_error(&s->counters, "other", 5);
    mw_counters_error(&s->counters, "", 0);
    mw_counters_error(&s->counters, "", 0);
    size_t len;
    char *t = mw_metrics_text(s, &len);
    REQUIRE(t != NULL);
    CHECK_EQ(strlen(t), len);
    CHECK(families_well_formed(t));
    CHECK(has(t, "# TYPE moonwire_connections gauge"));
    CHECK(has(t, "moonwire_connections 0"));
    CHECK(has(t, "# TYPE moonwire_connects_total counter"));
    CHECK(has(t, "moonwire_connects_total 5"));
    CHECK(has(t, "moonwire_disconnects_total{code=\"1000\"} 2"));
    CHECK(has(t, "moonwire_disconnects_total{code=\"1008\"} 1"));
    CHECK(has(t, "moonwire_messages_received_total 11"));
    CHECK(has(t, "moonwire_received_bytes_total 222"));
    CHECK(has(t, "moonwire_messages_sent_total 33"));
    CHECK(has(t, "moonwire_sent_bytes_total 444"));
    CHECK(has(t, "moonwire_rooms 0"));
    CHECK(has(t, "moonwire_fanout_deliveries_total 20"));
    CHECK(has(t, "moonwire_slow_consumer_drops_total 3"));
    CHECK(has(t, "moonwire_rate_limited_messages_total 4"));
    CHECK(has(t, "moonwire_refused_connections_total{reason=\"capacity\"} 2"));
    CHECK(has(t, "moonwire_refused_connections_total{reason=\"origin\"} 0"));
    CHECK(has(t, "# TYPE moonwire_errors_total counter"));
    CHECK(has(t, "moonwire_errors_total{code=\"MY_CODE\"} 2"));
    /* an app code named "other" shares the overflow's series: none repeats */
    CHECK(has(t, "moonwire_errors_total{code=\"other\"} 3"));
    const char *other = strstr(t, "errors_total{code=\"other\"}");
    CHECK(other && !strstr(other + 1, "errors_total{code=\"other\"}"));
    CHECK(has(t, "moonwire_reloads_total 6"));
    CHECK(has(t, "moonwire_reload_failures_total 1"));
    CHECK(strstr(t, "lua") == NULL); /* no app, no app families */
    free(t);
    world_end(&w);
}

static void app_metrics(void *data, FILE *out) {
    (void)data;
    mw_metrics_family(out, "app_things", "gauge", "Things.");
    mw_metrics_sample(out, "app_things", NULL, NULL, 42);
}

static const mw_app_callbacks_t with_metrics = {.metrics = app_metrics};

static void test_text_with_app_families(void) {
    world_t w;
    REQUIRE(world_init(&w, &with_metrics) == 0);
    size_t len;
    char *t = mw_metrics_text(w.s, &len);
    REQUIRE(t != NULL);
    CHECK(families_well_formed(t));
    const char *core = strstr(t, "moonwire_connections 0\n");
    const char *app = strstr(t, "# HELP moonwire_app_things Things.\n# TYPE moonwire_app_things "
                                "gauge\nmoonwire_app_things 42\n");
    CHECK(core && app && app > core);
    free(t);
    world_end(&w);
}

static void test_admission_counts_refusals_by_reason(void) {
    world_t w;
    REQUIRE(world_init(&w, NULL) == 0);
    mw_server_t *s = w.s;
    char err[128];
    const char *origins[] = {"https://app.example"};
    REQUIRE(mw_config_set_strlist(&w.cfg, "allowed_origins", origins, 1, err, sizeof err) == 0);
    REQUIRE(mw_config_set_int(&w.cfg, "max_connections", 1, err, sizeof err) == 0);
    mw_request_t req;
    memset(&req, 0, sizeof req);
    req.method = "GET";
    req.path = "/";
    req.headers[0] = (mw_header_t){"Origin", "https://evil.example"};
    req.nheaders = 1;
    mw_refusal_t r;
    CHECK_EQ(mw_admission_upgrade(s, &req, 1, &r), MW_ADMIT_REFUSE);
    CHECK_EQ(r.status, 403);
    req.nheaders = 0;
    CHECK_EQ(mw_admission_upgrade(s, &req, 1, &r), MW_ADMIT);
    s->nclients = 1;
    CHECK_EQ(mw_admission_upgrade(s, &req, 1, &r), MW_ADMIT_REFUSE);
    CHECK_EQ(r.status, 503);
    s->nclients = 0;
    mw_admission_app_refusal(s, 401, "no token", &r);
    CHECK_EQ(s->counters.refused[MW_REFUSED_ORIGIN], 1);
    CHECK_EQ(s->counters.refused[MW_REFUSED_CAPACITY], 1);
    CHECK_EQ(s->counters.refused[MW_REFUSED_APP], 1);
    CHECK_EQ(s->counters.refused[MW_REFUSED_IP_RATE], 0);
    world_end(&w);
}

int main(void) {
    RUN(test_escaping);
    RUN(test_text_without_app);
    RUN(test_text_with_app_families);
    RUN(test_admission_counts_refusals_by_reason);
    return test_summary();
}
