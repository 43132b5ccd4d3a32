/*
 * metrics.c - the /metrics document (Prometheus text exposition format
 * 0.0.4), read off the server's state.
 */
#include "metrics.h"
#include "rooms.h"
#include "state.h"

#include <stdlib.h>
#include <string.h>

/* Set while a snapshot for the stats zone is written (mw_metrics_snapshot):
 * one loop thread per process writes documents, one at a time. */
static int internal;

/* escape writes s with each of the characters in special escaped (\\,
 * \n, \"), the runs between them in one fwrite: these documents are
 * written every second by each worker (aggregate.h). */
static void escape(FILE *out, const char *s, const char *special) {
    for (;;) {
        size_t n = strcspn(s, special);
        if (n)
            fwrite(s, 1, n, out);
        s += n;
        if (!*s)
            return;
        fputc('\\', out);
        fputc(*s == '\n' ? 'n' : *s, out);
        s++;
    }
}

void mw_metrics_label_escape(FILE *out, const char *s) {
    escape(out, s, "\\\"\n");
}

void mw_metrics_family(FILE *out, const char *name, const char *type, const char *help) {
    /* HELP text escapes only backslash and newline. */
    fputs("# HELP moonwire_", out);
    fputs(name, out);
    fputc(' ', out);
    escape(out, help, "\\\n");
    /* The merge rule after the type ("gauge max") is for the stats zone's
     * snapshots only (metrics.h); /metrics shows the type alone. */
    fputs("\n# TYPE moonwire_", out);
    fputs(name, out);
    fputc(' ', out);
    fwrite(type, 1, internal ? strlen(type) : strcspn(type, " "), out);
    fputc('\n', out);
}

void mw_metrics_sample(FILE *out, const char *name, const char *label, const char *lvalue,
                       uint64_t value) {
    fprintf(out, "moonwire_%s", name);
    if (label) {
        fprintf(out, "{%s=\"", label);
        mw_metrics_label_escape(out, lvalue);
        fputs("\"}", out);
    }
    fprintf(out, " %llu\n", (unsigned long long)value);
}

/* one writes a family of a single sample without labels. */
static void one(FILE *f, const char *name, const char *type, const char *help, uint64_t v) {
    mw_metrics_family(f, name, type, help);
    mw_metrics_sample(f, name, NULL, NULL, v);
}

/* errors writes the error envelopes by code. An app code named "other"
 * shares its series with the overflow, so no series repeats. */
static void errors(FILE *f, const mw_counters_t *m) {
    mw_metrics_family(f, "errors_total", "counter",
                      "Error envelopes sent to clients, by error code (the app's codes, "
                      "RATE_LIMIT_EXCEEDED from rate_limit included).");
    uint64_t other = m->other_errors;
    for (int i = 0; i < m->nerrors; i++) {
        if (strcmp(m->errors[i], "other") == 0)
            other += m->error_counts[i];
        else
            mw_metrics_sample(f, "errors_total", "code", m->errors[i], m->error_counts[i]);
    }
    if (other)
        mw_metrics_sample(f, "errors_total", "code", "other", other);
}

/* render writes this worker's own document; internal keeps the families'
 * merge rules (a snapshot). */
static char *render(mw_server_t *s, int snapshot, size_t *len) {
    const mw_counters_t *m = &s->counters;
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f)
        return NULL;
    internal = snapshot;
    one(f, "start_time_seconds", "gauge max",
        "When the server started, in seconds since the epoch.", s->started_ms / 1000);
    one(f, "connections", "gauge", "WebSocket clients connected now.", s->nclients);
    one(f, "connects_total", "counter", "WebSocket clients accepted (upgrade done, app agreed).",
        m->connects);
    mw_metrics_family(f, "disconnects_total", "counter",
                      "WebSocket clients gone, by close code (1006: no close frame).");
    char code[8];
    for (int i = 0; i < m->ncodes; i++) {
        snprintf(code, sizeof code, "%u", (unsigned)m->codes[i]);
        mw_metrics_sample(f, "disconnects_total", "code", code, m->code_counts[i]);
    }
    if (m->other_codes)
        mw_metrics_sample(f, "disconnects_total", "code", "other", m->other_codes);
    one(f, "messages_received_total", "counter",
        "WebSocket data messages received from clients (rate-limited ones included).",
        m->messages_received);
    one(f, "received_bytes_total", "counter", "Payload bytes of the data messages received.",
        m->bytes_received);
    one(f, "messages_sent_total", "counter",
        "WebSocket data messages queued to clients (replies, sends, broadcast deliveries).",
        m->messages_sent);
    one(f, "sent_bytes_total", "counter", "Payload bytes of the data messages queued to clients.",
        m->bytes_sent);
    /* With workers each worker counts every room once (its own and those
     * only the others have); merged, the largest of those views. */
    one(f, "rooms", "gauge max", "Rooms that exist now.", mw_server_room_count(s));
    one(f, "fanout_deliveries_total", "counter",
        "Broadcast messages queued to a recipient (room, client list or everyone).",
        m->fanout_deliveries);
    one(f, "slow_consumer_drops_total", "counter",
        "Broadcast messages not delivered because the recipient's queue was over "
        "max_buffered_bytes.",
        s->dropped_total);
    one(f, "rate_limited_messages_total", "counter", "Messages refused by rate_limit.",
        s->rate_limited_total);
    mw_metrics_family(f, "refused_connections_total", "counter",
                      "Connections refused by a limit or a policy, by reason.");
    for (int r = 0; r < MW_REFUSED_COUNT; r++)
        mw_metrics_sample(f, "refused_connections_total", "reason", mw_counters_reason_name(r),
                          m->refused[r]);
    errors(f, m);
    one(f, "reloads_total", "counter", "Reloads of the app that succeeded.", s->reloads);
    one(f, "reload_failures_total", "counter",
        "Reloads that failed (the previous code kept serving).", m->reload_failures);
    if (s->app.cb->metrics)
        s->app.cb->metrics(s->app.data, f);
    internal = 0;
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    *len = size;
    return buf;
}

char *mw_metrics_snapshot(mw_server_t *s, size_t *len) {
    return render(s, 1, len);
}

char *mw_metrics_text(mw_server_t *s, size_t *len) {
    return render(s, 0, len);
}
