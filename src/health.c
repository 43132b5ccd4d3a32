/*
 * health.c - the /health document, read off the server's state.
 */
#include "health.h"
#include "log.h"
#include "state.h"
#include "supervisor.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

char *mw_health_json(mw_server_t *s, size_t *len) {
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f)
        return NULL;
    fprintf(f,
            "{\"status\":\"healthy\",\"connections\":%zu,\"rooms\":%zu,\"dropped\":%llu,"
            "\"refused\":%llu,\"rate_limited\":%llu,"
            "\"uptime_s\":%llu,\"tls\":%s,\"reloads\":%llu,\"last_reload_error\":",
            s->nclients, mw_rooms_size(s->rooms), (unsigned long long)s->dropped_total,
            (unsigned long long)s->refused_total, (unsigned long long)s->rate_limited_total,
            (unsigned long long)((mw_server_wall_ms(s) - s->started_ms) / 1000),
            s->tls ? "true" : "false", (unsigned long long)s->reloads);
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
    if (s->app.cb->health)
        s->app.cb->health(s->app.data, f);
    fputs("}\n", f);
    fclose(f);
    *len = size;
    return buf;
}
