/*
 * endpoint.c - routing of plain HTTP requests to the built-in endpoints.
 */
#include "endpoint.h"
#include "apikey.h"

#include <string.h>

mw_endpoint_t mw_endpoint_route(const mw_config_t *cfg, const mw_request_t *req, mw_refusal_t *r) {
    if (strcmp(req->path, "/health") == 0) {
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
