/*
 * endpoint.h - what a plain HTTP request is for: the built-in /health and
 * /metrics, the
 * WebSocket endpoint, or the app (whose http callback answers it, or the
 * core answers 404).
 */
#ifndef MW_ENDPOINT_H
#define MW_ENDPOINT_H

#include "config.h"
#include "http.h"

typedef enum {
    MW_ENDPOINT_HEALTH,    /* GET/HEAD /health */
    MW_ENDPOINT_METRICS,   /* GET/HEAD /metrics */
    MW_ENDPOINT_WEBSOCKET, /* the configured path: the upgrade handshake */
    MW_ENDPOINT_APP,       /* anything else */
    MW_ENDPOINT_REFUSE     /* answer with *r (a method /health or /metrics does not take) */
} mw_endpoint_t;

mw_endpoint_t mw_endpoint_route(const mw_config_t *cfg, const mw_request_t *req, mw_refusal_t *r);

#endif
