/*
 * metrics.h - the Prometheus text exposition of the server's state
 * (GET /metrics, docs/protocol.md).
 *
 * /metrics reads the counters of counters.h and those /health reads
 * (slow-consumer drops, rate-limited messages, reloads), the gauges
 * (connections, rooms), and adds what the app writes through its metrics
 * callback (the Lua heap). The writers
 * below are what both use, so every family has its HELP and TYPE lines
 * and every label value is escaped the way the format requires.
 */
#ifndef MW_METRICS_H
#define MW_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct mw_server mw_server_t;

/* mw_metrics_text renders the whole exposition (the core's families, then
 * the app's) of this process. Returns a malloc'd buffer of *len bytes, or
 * NULL (no memory). With workers = N, /metrics is the whole server's
 * instead (aggregate.h merges every worker's mw_metrics_snapshot). */
char *mw_metrics_text(mw_server_t *s, size_t *len);

/* mw_metrics_snapshot renders this worker's own exposition in the internal
 * form the stats zone keeps (stats.h): each TYPE line with its merge rule.
 * Same returns. */
char *mw_metrics_snapshot(mw_server_t *s, size_t *len);

/* Writers of the text format, for the core and the app's metrics
 * callback. name is written after "moonwire_" and must be a valid metric
 * name; help is escaped. type is "counter", "gauge" or "histogram",
 * optionally followed by how the workers' samples merge into the server's
 * (expo.h): nothing for a sum (counters; gauges that are amounts, such as
 * connections), " max" or " min" for a gauge every worker has alike (a
 * limit, a shared dict's size: "gauge max"), a flag that is up only when
 * every worker's is ("gauge min"), or a counter of something the workers
 * share ("counter max"). /metrics shows the type alone. */
void mw_metrics_family(FILE *out, const char *name, const char *type, const char *help);
/* mw_metrics_sample writes one sample; label is NULL for none, else its
 * name, with value escaped. */
void mw_metrics_sample(FILE *out, const char *name, const char *label, const char *lvalue,
                       uint64_t value);
/* mw_metrics_label_escape writes s as a label value: \, " and newline
 * escaped. */
void mw_metrics_label_escape(FILE *out, const char *s);

#endif
