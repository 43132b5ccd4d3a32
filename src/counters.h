/*
 * counters.h - the server's event counters that /health does not keep:
 * connects, disconnects by close code, messages and payload bytes both
 * ways, fan-out deliveries, refused connections by reason, failed reloads,
 * error envelopes sent by error code.
 *
 * Plain integers in the server's state (mw_server_t.counters), bumped on
 * the loop thread where the event happens: no atomics, no locks, and on
 * the per-message path one increment, never a lookup. metrics.c reads
 * them for /metrics.
 */
#ifndef MW_COUNTERS_H
#define MW_COUNTERS_H

#include <stddef.h>
#include <stdint.h>

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
#define MW_COUNTERS_MAX_CODES 64

/* Distinct error codes counted one by one, and their longest length; the
 * rest (and longer codes) share code="other". The app chooses its codes
 * (moonwire.fail("MY_CODE")): this keeps /metrics bounded whatever it does. */
#define MW_COUNTERS_MAX_ERRORS 64
#define MW_COUNTERS_ERROR_LEN 64

typedef struct {
    uint64_t connects;                          /* upgrades the app accepted */
    uint64_t messages_received, bytes_received; /* data messages from clients, payload bytes */
    uint64_t messages_sent, bytes_sent;         /* data messages queued to clients, payload bytes */
    uint64_t fanout_deliveries;                 /* of those, queued by a broadcast */
    uint64_t refused[MW_REFUSED_COUNT];
    uint64_t reload_failures;
    /* disconnects by close code, sorted by code */
    uint16_t codes[MW_COUNTERS_MAX_CODES];
    uint64_t code_counts[MW_COUNTERS_MAX_CODES];
    int ncodes;
    uint64_t other_codes;
    /* error envelopes by code, sorted by code */
    char errors[MW_COUNTERS_MAX_ERRORS][MW_COUNTERS_ERROR_LEN + 1];
    uint64_t error_counts[MW_COUNTERS_MAX_ERRORS];
    int nerrors;
    uint64_t other_errors;
} mw_counters_t;

/* mw_counters_disconnect counts a client gone with this close code. */
void mw_counters_disconnect(mw_counters_t *m, unsigned code);

/* mw_counters_error counts an error envelope sent to a client, by its
 * code (len bytes at code, not NUL-terminated). */
void mw_counters_error(mw_counters_t *m, const char *code, size_t len);

/* mw_counters_reason_name is the label value of a refusal reason. */
const char *mw_counters_reason_name(mw_refused_reason_t r);

#endif
