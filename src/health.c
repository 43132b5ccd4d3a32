/*
 * health.c - the /health document, read off the server's state, or with
 * workers = N off every worker's snapshot (aggregate.h).
 */
#include "health.h"
#include "aggregate.h"
#include "errors.h"
#include "log.h"
#include "state.h"
#include "supervisor.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int mw_health_total(mw_server_t *s, const char *series, uint64_t *v) {
    return s->agg ? mw_aggregate_value(s, series, v) : MW_ENOTFOUND;
}

char *mw_health_json(mw_server_t *s, size_t *len) {
    mw_aggregate_totals_t t = {
        .connections = s->nclients,
        .rooms = mw_rooms_size(s->rooms),
        .dropped = s->dropped_total,
        .refused = s->refused_total,
        .rate_limited = s->rate_limited_total,
        .reloads = s->reloads,
    };
    /* workers = N: the whole server's numbers, until mw_aggregate_end */
    mw_aggregate_totals_t all;
    int merged = s->agg && mw_aggregate_begin(s, &all) == 0;
    if (merged) {
        t = all;
        t.rooms = mw_server_room_count(s); /* each room once, as this worker knows them now */
    }
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f) {
        if (merged)
            mw_aggregate_end(s);
        return NULL;
    }
    fprintf(f,
            "{\"status\":\"healthy\",\"connections\":%llu,\"rooms\":%llu,\"dropped\":%llu,"
            "\"refused\":%llu,\"rate_limited\":%llu,"
            "\"uptime_s\":%llu,\"tls\":%s,\"reloads\":%llu,\"last_reload_error\":",
            (unsigned long long)t.connections, (unsigned long long)t.rooms,
            (unsigned long long)t.dropped, (unsigned long long)t.refused,
            (unsigned long long)t.rate_limited,
            (unsigned long long)((mw_server_wall_ms(s) - s->started_ms) / 1000),
            s->tls ? "true" : "false", (unsigned long long)t.reloads);
    if (s->last_reload_error) {
        fputc('"', f);
        mw_json_escape(f, s->last_reload_error);
        fputc('"', f);
    } else {
        fputs("null", f);
    }
    fputs(",\"restart_required\":[", f);
    for (int i = 0; i < s->nrestart_required; i++)
        fprintf(f, "%s\"%s\"", i ? "," : "", s->restart_required[i]->name);
    fputc(']', f);
    int worker = mw_worker_id(); /* which process answered (workers = N) */
    if (worker)
        fprintf(f, ",\"worker\":%d,\"pid\":%d", worker, (int)getpid());
    if (merged)
        mw_aggregate_workers_json(s, f);
    if (s->app.cb->health)
        s->app.cb->health(s->app.data, f); /* reads mw_health_total while merged */
    if (merged)
        mw_aggregate_end(s);
    fputs("}\n", f);
    fclose(f);
    *len = size;
    return buf;
}
