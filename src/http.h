/*
 * http.h - HTTP/1.1 request heads, parsed with http-parser.
 *
 * Only the request head matters to a WebSocket server: the upgrade request
 * and the few built-in GET endpoints. The parser copies what it needs into
 * one buffer bounded by max_header_bytes, so a request split across many
 * reads costs one allocation and a too-large head is refused early (431).
 */
#ifndef MW_HTTP_H
#define MW_HTTP_H

#include <stddef.h>

#define MW_HTTP_MAX_HEADERS 64

typedef struct {
    const char *name; /* NUL-terminated, as sent */
    const char *value;
} mw_header_t;

typedef struct {
    const char *method; /* "GET", ... */
    int http_major, http_minor;
    const char *url;   /* the request target as sent */
    const char *path;  /* the path part of url, "/" if empty */
    const char *query; /* the query part without '?', "" if none */
    mw_header_t headers[MW_HTTP_MAX_HEADERS];
    int nheaders;
    int upgrade;  /* http-parser saw Connection: upgrade + Upgrade */
    int has_body; /* Content-Length > 0 or chunked */
} mw_request_t;

/* An HTTP error answer a policy decided on: the status, extra header lines
 * ("Name: value\r\n"..., or NULL) and the reason, sent as a short text
 * body. Strings are static or outlive the answer. */
typedef struct {
    int status;
    const char *headers;
    const char *why;
} mw_refusal_t;

typedef struct mw_http_parser mw_http_parser_t;

/* mw_http_parser_create allocates a parser whose request head may hold at
 * most max_header_bytes. Returns 0 or MW_ENOMEM. */
int mw_http_parser_create(mw_http_parser_t **out, size_t max_header_bytes);

/* mw_http_parser_feed parses more bytes. *consumed is how many were part of
 * the request; once mw_http_parser_done() is true the remaining bytes belong
 * to whatever follows (WebSocket frames after an upgrade).
 * Returns 0, MW_EHTTP (malformed request) or MW_ETOOBIG (head larger than
 * max_header_bytes, or more than MW_HTTP_MAX_HEADERS headers). */
int mw_http_parser_feed(mw_http_parser_t *p, const char *data, size_t len, size_t *consumed);

/* mw_http_parser_done is 1 once the request head is complete. */
int mw_http_parser_done(const mw_http_parser_t *p);

/* mw_http_parser_request returns the parsed request; valid until the parser
 * is freed, and complete only once mw_http_parser_done() is 1. */
const mw_request_t *mw_http_parser_request(const mw_http_parser_t *p);

void mw_http_parser_free(mw_http_parser_t *p);

/* mw_request_header returns the value of the first header named name
 * (case-insensitive), or NULL. */
const char *mw_request_header(const mw_request_t *req, const char *name);

/* mw_http_status_text returns the reason phrase of an HTTP status code. */
const char *mw_http_status_text(int status);

#endif
