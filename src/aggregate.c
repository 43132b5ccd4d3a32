/*
 * aggregate.c - publishing this worker's numbers to the stats zone and
 * answering /health and /metrics from every worker's (see aggregate.h).
 */
#include "aggregate.h"
#include "errors.h"
#include "expo.h"
#include "log.h"
#include "metrics.h"
#include "state.h"
#include "stats.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A document answered within this long after a publish reuses it: a burst
 * of scrapes costs one snapshot, and readers of the slot never see it
 * rewritten twice while they copy it. */
#define REPUBLISH_MS 10

/* What the view knows of one worker. */
typedef struct {
    mw_stats_snapshot_t snap, spare; /* the last whole copy of its slot; the next read's */
    int rc;                          /* of its read: 0, MW_ENOTFOUND (never published), ... */
    int up;                          /* its snapshot is from the process running the slot now */
    int64_t pid; /* the process running the slot now (the supervisor's word), 0: none */
    uint32_t restarts;
} worker_t;

struct mw_aggregate {
    mw_stats_t *zone;
    int worker, nworkers;
    uint64_t started_ms;     /* this process's start, wall clock */
    mw_stats_numbers_t base; /* the counters of the slot's previous processes */
    char *base_text;         /* ... and their exposition, counters only, internal form */
    size_t base_len;
    uint64_t published; /* monotonic ms of the last publish; 0: never */
    int too_big;        /* the snapshot outgrew the zone: logged once */
    worker_t *workers;  /* [nworkers], the view */
    mw_expo_t *view;    /* between begin and end */
};

static uint64_t mono_ms(void) {
    return uv_hrtime() / 1000000;
}

/* take_over makes the slot's last snapshot, left by a process that
 * exited, this worker's base: its counters and counted families. */
static int take_over(mw_aggregate_t *a) {
    mw_stats_snapshot_t snap = {0};
    int rc = mw_stats_read(a->zone, a->worker, &snap);
    if (rc == MW_ENOTFOUND)
        return 0; /* the slot's first process */
    if (rc != 0) {
        mw_stats_snapshot_free(&snap);
        return rc;
    }
    a->base = snap.n;
    a->base.connections = a->base.rooms = 0;
    mw_expo_t *e = NULL;
    char *text = NULL;
    size_t len = 0;
    FILE *f = NULL;
    rc = mw_expo_create(&e);
    if (rc == 0)
        rc = mw_expo_add(e, snap.text, snap.len, MW_EXPO_COUNTERS_ONLY);
    if (rc == 0 && !(f = open_memstream(&text, &len)))
        rc = MW_ENOMEM;
    if (f) {
        mw_expo_write(e, f, 1);
        if (fclose(f) != 0)
            rc = MW_ENOMEM;
    }
    mw_expo_free(e);
    mw_stats_snapshot_free(&snap);
    if (rc != 0) {
        free(text);
        return rc;
    }
    a->base_text = text;
    a->base_len = len;
    return 0;
}

int mw_aggregate_attach(mw_server_t *s, int fd, int worker) {
    mw_aggregate_t *a = calloc(1, sizeof *a);
    if (!a)
        return MW_ENOMEM;
    int rc = mw_stats_attach(&a->zone, fd);
    if (rc == 0 && (worker < 1 || worker > mw_stats_workers(a->zone)))
        rc = MW_EINVAL;
    if (rc == 0) {
        a->worker = worker;
        a->nworkers = mw_stats_workers(a->zone);
        if (!(a->workers = calloc((size_t)a->nworkers, sizeof *a->workers)))
            rc = MW_ENOMEM;
        for (int i = 0; rc == 0 && i < a->nworkers; i++)
            a->workers[i].rc = MW_ENOTFOUND; /* no copy yet */
    }
    if (rc == 0)
        rc = take_over(a);
    if (rc != 0) {
        mw_aggregate_free(a);
        return rc;
    }
    a->started_ms = s->started_ms;
    s->started_ms = mw_stats_created_ms(a->zone); /* the server's, not this process's */
    s->agg = a;
    return 0;
}

void mw_aggregate_free(mw_aggregate_t *a) {
    if (!a)
        return;
    if (a->workers)
        for (int i = 0; i < a->nworkers; i++) {
            mw_stats_snapshot_free(&a->workers[i].snap);
            mw_stats_snapshot_free(&a->workers[i].spare);
        }
    free(a->workers);
    mw_expo_free(a->view);
    free(a->base_text);
    mw_stats_free(a->zone);
    free(a);
}

void mw_aggregate_publish(mw_server_t *s) {
    mw_aggregate_t *a = s->agg;
    size_t len = 0;
    char *text = mw_metrics_snapshot(s, &len);
    if (!text)
        return; /* out of memory: the previous snapshot stays */
    const mw_stats_numbers_t *b = &a->base;
    mw_stats_numbers_t n = {
        .pid = (int64_t)getpid(),
        .published_ms = mono_ms(),
        .started_ms = a->started_ms,
        .connections = s->nclients,
        .rooms = mw_rooms_size(s->rooms),
        .dropped = b->dropped + s->dropped_total,
        .refused = b->refused + s->refused_total,
        .rate_limited = b->rate_limited + s->rate_limited_total,
        .reloads = b->reloads + s->reloads,
    };
    /* Its own families first: the merged document keeps their order. */
    int rc = mw_stats_publish(a->zone, a->worker, &n, text, len, a->base_text, a->base_len);
    free(text);
    if (rc == MW_ETOOBIG && !a->too_big) {
        a->too_big = 1;
        mw_log_error("this worker's metrics outgrew its slot of the stats zone (%zu bytes, at "
                     "most %d): the other workers see its snapshot of before",
                     len + a->base_len, MW_STATS_TEXT_MAX);
    }
    a->published = n.published_ms ? n.published_ms : 1;
}

void mw_aggregate_tick(mw_server_t *s) {
    mw_aggregate_t *a = s->agg;
    if (!a->published || mono_ms() - a->published >= MW_AGGREGATE_PERIOD_MS)
        mw_aggregate_publish(s);
}

int mw_aggregate_begin(mw_server_t *s, mw_aggregate_totals_t *t) {
    mw_aggregate_t *a = s->agg;
    memset(t, 0, sizeof *t);
    if (!a->published || mono_ms() - a->published >= REPUBLISH_MS)
        mw_aggregate_publish(s);
    mw_expo_free(a->view);
    a->view = NULL;
    int rc = mw_expo_create(&a->view);
    /* This worker's first, so its families' order is the document's. */
    for (int k = 0; k < a->nworkers && rc == 0; k++) {
        int i = k == 0 ? a->worker : k < a->worker ? k : k + 1;
        worker_t *w = &a->workers[i - 1];
        w->up = 0;
        mw_stats_process(a->zone, i, &w->pid, &w->restarts);
        /* Into the spare copy: when the slot cannot be read whole (its
         * writer published twice during each of several copies), the
         * last whole copy of it stands in. */
        int got = mw_stats_read(a->zone, i, &w->spare);
        if (got == 0 || got == MW_ENOTFOUND || w->rc != 0) {
            mw_stats_snapshot_t t = w->snap;
            w->snap = w->spare;
            w->spare = t;
            w->rc = got;
        }
        if (got == MW_ENOMEM)
            rc = MW_ENOMEM;
        if (w->rc != 0)
            continue;
        /* Up: the snapshot is the running process's (the supervisor
         * records a pid as it spawns; this worker is up, whatever it
         * says). Otherwise the numbers of a process that exited: its
         * counters count, its gauges are gone. */
        w->up = i == a->worker || (w->pid != 0 && w->snap.n.pid == w->pid);
        const mw_stats_numbers_t *n = &w->snap.n;
        if (w->up) {
            t->connections += n->connections;
            t->rooms += n->rooms;
        }
        t->dropped += n->dropped;
        t->refused += n->refused;
        t->rate_limited += n->rate_limited;
        t->reloads += n->reloads;
        rc = mw_expo_add(a->view, w->snap.text, w->snap.len, w->up ? 0 : MW_EXPO_COUNTERS_ONLY);
    }
    if (rc != 0)
        mw_aggregate_end(s);
    return rc;
}

void mw_aggregate_end(mw_server_t *s) {
    mw_aggregate_t *a = s->agg;
    mw_expo_free(a->view);
    a->view = NULL;
}

int mw_aggregate_value(mw_server_t *s, const char *series, uint64_t *v) {
    mw_aggregate_t *a = s->agg;
    if (!a || !a->view)
        return MW_ENOTFOUND;
    return mw_expo_value(a->view, series, v);
}

/* age_ms is how old worker w's snapshot is. */
static uint64_t age_ms(const worker_t *w, uint64_t now) {
    return now > w->snap.n.published_ms ? now - w->snap.n.published_ms : 0;
}

void mw_aggregate_workers_json(mw_server_t *s, FILE *out) {
    mw_aggregate_t *a = s->agg;
    uint64_t now = mono_ms(), wall = mw_server_wall_ms(s);
    static const mw_stats_numbers_t none;
    fputs(",\"workers\":[", out);
    for (int i = 0; i < a->nworkers; i++) {
        const worker_t *w = &a->workers[i];
        /* counters: of its last snapshot, whoever wrote it; gauges: only
         * of a running worker's */
        const mw_stats_numbers_t *n = w->rc == 0 ? &w->snap.n : &none;
        uint64_t up_s = w->up && wall > n->started_ms ? (wall - n->started_ms) / 1000 : 0;
        fprintf(out, "%s{\"worker\":%d,\"pid\":%lld,\"up\":%s,\"age_ms\":", i ? "," : "", i + 1,
                (long long)w->pid, w->up ? "true" : "false");
        if (w->rc == 0)
            fprintf(out, "%llu", (unsigned long long)age_ms(w, now));
        else
            fputs("null", out);
        fprintf(out, ",\"uptime_s\":%llu,\"restarts\":%u,\"connections\":%llu,\"rooms\":%llu",
                (unsigned long long)up_s, (unsigned)w->restarts,
                (unsigned long long)(w->up ? n->connections : 0),
                (unsigned long long)(w->up ? n->rooms : 0));
        fprintf(out, ",\"dropped\":%llu,\"refused\":%llu,\"rate_limited\":%llu,\"reloads\":%llu}",
                (unsigned long long)n->dropped, (unsigned long long)n->refused,
                (unsigned long long)n->rate_limited, (unsigned long long)n->reloads);
    }
    fputc(']', out);
}

/* per_worker writes a family of one sample per worker. */
static void per_worker(FILE *f, const mw_aggregate_t *a, const char *name, const char *type,
                       const char *help, int what, uint64_t now) {
    mw_metrics_family(f, name, type, help);
    char label[16];
    for (int i = 0; i < a->nworkers; i++) {
        const worker_t *w = &a->workers[i];
        snprintf(label, sizeof label, "%d", i + 1);
        if (what == 3) { /* the age, in seconds with milliseconds */
            if (w->rc != 0)
                continue;
            uint64_t ms = age_ms(w, now);
            fprintf(f, "moonwire_%s{worker=\"%s\"} %llu.%03llu\n", name, label,
                    (unsigned long long)(ms / 1000), (unsigned long long)(ms % 1000));
            continue;
        }
        uint64_t v = what == 0   ? (uint64_t)w->up
                     : what == 1 ? w->restarts
                                 : (w->up ? w->snap.n.connections : 0);
        mw_metrics_sample(f, name, "worker", label, v);
    }
}

char *mw_aggregate_metrics(mw_server_t *s, size_t *len) {
    mw_aggregate_totals_t t;
    if (mw_aggregate_begin(s, &t) != 0)
        return NULL;
    mw_aggregate_t *a = s->agg;
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f) {
        mw_aggregate_end(s);
        return NULL;
    }
    mw_expo_write(a->view, f, 0);
    uint64_t now = mono_ms();
    per_worker(f, a, "worker_up", "gauge",
               "1 while worker N runs and the numbers above include its gauges; 0 while it is "
               "being restarted (its counters still count).",
               0, now);
    per_worker(f, a, "worker_restarts_total", "counter",
               "Times worker N was started again after it exited.", 1, now);
    per_worker(f, a, "worker_connections", "gauge", "WebSocket clients worker N serves now.", 2,
               now);
    per_worker(f, a, "worker_snapshot_age_seconds", "gauge",
               "How old worker N's numbers in this document are (it publishes them every second "
               "and when it answers).",
               3, now);
    mw_aggregate_end(s);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    *len = size;
    return buf;
}
