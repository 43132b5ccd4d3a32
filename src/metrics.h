/*
 * metrics.h - the server's counters and their Prometheus text exposition
 * (GET /metrics, docs/protocol.md).
 *
 * The counters are plain integers in the server's state, bumped on the
 * loop thread where the event happens (no atomics, no locks): one
 * increment, never a lookup, on the per-message path. /metrics reads them,
 * with the gauges /health reads (connections, rooms), and adds what the
 * app writes through its metrics callback (the Lua heap). The writers
 * below are what both use, so every family has its HELP and TYPE lines
 * and every label value is escaped the way the format requires.
 */
#ifndef MW_METRICS_H
#define MW_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct mw_server mw_server_t;

/* Why a connection was refused: the decisions of admission.c. */
typedef enum {
    MW_REFUSED_OPEN_FILES,     /* near the open-files limit: closed, no answer */
    MW_REFUSED_NO_MEMORY,      /* the per-address table could not grow: closed */
    MW_REFUSED_IP_CONNECTIONS, /* max_connections_per_ip: 429 */
    MW_REFUSED_IP_RATE,        /* connection_rate_per_ip: 429 */
    MW_REFUSED_ORIGIN,         /* allowed_origins: 403 */
    MW_REFUSED_CAPACITY,       /* max_connections: 503 */
    MW_REFUSED_APP,            /* the app's upgrade callback (authenticate): 401, 403, ... */
    MW_REFUSED_COUNT
} mw_refused_reason_t;

/* Distinct close codes counted one by one; the rest share code="other". */
#define MW_METRICS_MAX_CODES 64

typedef struct {
    uint64_t connects;                          /* upgrades the app accepted */
    uint64_t messages_received, bytes_received; /* data messages from clients, payload bytes */
    uint64_t messages_sent, bytes_sent;         /* data messages queued to clients, payload bytes */
    uint64_t fanout_deliveries;                 /* of those, queued by a broadcast */
    uint64_t refused[MW_REFUSED_COUNT];
    uint64_t reload_failures;
    /* disconnects by close code, sorted by code */
    uint16_t codes[MW_METRICS_MAX_CODES];
    uint64_t code_counts[MW_METRICS_MAX_CODES];
    int ncodes;
    uint64_t other_codes;
} mw_metrics_t;

/* mw_metrics_disconnect counts a client gone with this close code. */
void mw_metrics_disconnect(mw_metrics_t *m, unsigned code);

/* mw_metrics_reason_name is the label value of a refusal reason. */
const char *mw_metrics_reason_name(mw_refused_reason_t r);

/* mw_metrics_text renders the whole exposition (the core's families, then
 * the app's). Returns a malloc'd buffer of *len bytes, or NULL (no memory). */
char *mw_metrics_text(mw_server_t *s, size_t *len);

/* Writers of the text format, for the core and the app's metrics
 * callback. name is written after "moonwire_" and must be a valid metric
 * name; help is escaped. */
void mw_metrics_family(FILE *out, const char *name, const char *type, const char *help);
/* mw_metrics_sample writes one sample; label is NULL for none, else its
 * name, with value escaped. */
void mw_metrics_sample(FILE *out, const char *name, const char *label, const char *lvalue,
                       uint64_t value);
/* mw_metrics_label_escape writes s as a label value: \, " and newline
 * escaped. */
void mw_metrics_label_escape(FILE *out, const char *s);

#endif
