/*
 * endpoint.c - routing of plain HTTP requests to the built-in endpoints.
 */
#include "endpoint.h"
#include "apikey.h"

#include <string.h>

/* is_api_path: /api itself or anything under /api/ (reserved for the
 * server API, whether it is on or not). */
static int is_api_path(const char *path) {
    return strncmp(path, "/api", 4) == 0 && (path[4] == '\0' || path[4] == '/');
}

mw_endpoint_t mw_endpoint_route(const mw_config_t *cfg, const mw_request_t *req, int where,
                                mw_refusal_t *r) {
    int on_api_port = (where & MW_ENDPOINT_ON_API_PORT) != 0;
    if (is_api_path(req->path)) {
        /* off without api_key; only on api_port when there is one */
        if (!cfg->api_key[0] || (cfg->api_port > 0) != on_api_port)
            return MW_ENDPOINT_NOT_FOUND;
        if (!mw_apikey_ok(cfg->api_key, mw_request_header(req, "Authorization"))) {
            *r = (mw_refusal_t){401, "WWW-Authenticate: apikey\r\n", "api key required"};
            return MW_ENDPOINT_REFUSE;
        }
        return MW_ENDPOINT_API;
    }
    if (on_api_port)
        return MW_ENDPOINT_NOT_FOUND;
    if (strcmp(req->path, "/health") == 0) {
        if (where & MW_ENDPOINT_APP_HEALTH)
            return MW_ENDPOINT_APP; /* the app's own GET /health route */
        if (strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0)
            return MW_ENDPOINT_HEALTH;
        *r = (mw_refusal_t){405, "Allow: GET\r\n", "method not allowed"};
        return MW_ENDPOINT_REFUSE;
    }
    if (strcmp(req->path, "/metrics") == 0) {
        if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
            *r = (mw_refusal_t){405, "Allow: GET\r\n", "method not allowed"};
            return MW_ENDPOINT_REFUSE;
        }
        /* behind api_key when one is set (docs/protocol.md, "/metrics") */
        if (!mw_apikey_ok(cfg->api_key, mw_request_header(req, "Authorization"))) {
            *r = (mw_refusal_t){401, "WWW-Authenticate: apikey\r\n", "api key required"};
            return MW_ENDPOINT_REFUSE;
        }
        return MW_ENDPOINT_METRICS;
    }
    if (strcmp(cfg->path, "*") == 0 || strcmp(cfg->path, req->path) == 0)
        return MW_ENDPOINT_WEBSOCKET;
    return MW_ENDPOINT_APP;
}
