/*
 * endpoint.h - what a plain HTTP request is for: the built-in /health and
 * /metrics, the WebSocket endpoint, the server API (/api/, behind
 * api_key), or the app (whose http callback answers it, or the core
 * answers 404).
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
    MW_ENDPOINT_API,       /* /api/...: the key checked, the app's built-in API routes */
    MW_ENDPOINT_NOT_FOUND, /* the core's 404: /api/ while the API is off or on another
                              port, anything but /api/ on the api_port listener */
    MW_ENDPOINT_REFUSE     /* answer with *r and close (a method /health or /metrics does
                              not take, a missing or wrong api key) */
} mw_endpoint_t;

/* Where a request came in (flags for mw_endpoint_route). */
#define MW_ENDPOINT_ON_API_PORT 1 /* on the api_port listener */
#define MW_ENDPOINT_APP_HEALTH 2  /* the app serves /health (its own GET /health route) */

mw_endpoint_t mw_endpoint_route(const mw_config_t *cfg, const mw_request_t *req, int where,
                                mw_refusal_t *r);

#endif
