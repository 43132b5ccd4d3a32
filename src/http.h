/*
 * http.h - HTTP/1.1 requests, parsed with http-parser.
 *
 * The upgrade request is a head alone: the bytes after it are WebSocket
 * frames. Any other request is read whole, its body included (decoded from
 * chunks when sent chunked), for the built-in endpoints and the app's HTTP
 * routes; one connection may carry several requests (keep-alive), one
 * after the other. The parser copies the head into one buffer bounded by
 * max_header_bytes and the body into another bounded by the body limit
 * (http_max_body), so a request split across many reads costs few
 * allocations and a too-large head (431) or body (413) is refused early.
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
    int upgrade;              /* http-parser saw Connection: upgrade + Upgrade */
    int has_body;             /* Content-Length > 0 or chunked */
    long long content_length; /* Content-Length; -1 when absent (or chunked) */
    int keep_alive;           /* the client lets the connection carry another request */
    int expect_continue;      /* Expect: 100-continue */
    int api;                  /* set by conn.c: a server API request (api_key checked) */
    const char *body;         /* "" until mw_http_parser_complete(); NUL-terminated */
    size_t body_len;
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
 * most max_header_bytes; its body limit starts at 0 (any body is too big).
 * Returns 0 or MW_ENOMEM. */
int mw_http_parser_create(mw_http_parser_t **out, size_t max_header_bytes);

/* mw_http_parser_set_max_body sets how many body bytes a request may carry
 * (after chunked decoding). */
void mw_http_parser_set_max_body(mw_http_parser_t *p, size_t max_body);

/* mw_http_parser_feed parses more bytes of the current request. *consumed
 * is how many belonged to it; once mw_http_parser_complete() is true the
 * remaining bytes belong to whatever follows: WebSocket frames after an
 * upgrade, or the next request (after mw_http_parser_reset).
 * Returns 0, MW_EHTTP (malformed request) or MW_ETOOBIG: with
 * mw_http_parser_done() 0, a head larger than max_header_bytes or more
 * than MW_HTTP_MAX_HEADERS headers (431); with it 1, a body over the body
 * limit, refused as soon as Content-Length announces it (413). */
int mw_http_parser_feed(mw_http_parser_t *p, const char *data, size_t len, size_t *consumed);

/* mw_http_parser_done is 1 once the request head is complete. */
int mw_http_parser_done(const mw_http_parser_t *p);

/* mw_http_parser_complete is 1 once the whole request is: the head of an
 * upgrade request (its body is never read), the head and body of any
 * other. Feeding a complete request consumes nothing. */
int mw_http_parser_complete(const mw_http_parser_t *p);

/* mw_http_parser_reset makes the parser ready for the next request on the
 * same connection; the previous request (and its strings) is gone. */
void mw_http_parser_reset(mw_http_parser_t *p);

/* mw_http_parser_request returns the parsed request; valid until the parser
 * is reset or freed, its head complete once mw_http_parser_done() is 1, its
 * body once mw_http_parser_complete() is 1. */
const mw_request_t *mw_http_parser_request(const mw_http_parser_t *p);

void mw_http_parser_free(mw_http_parser_t *p);

/* mw_request_header returns the value of the first header named name
 * (case-insensitive), or NULL. */
const char *mw_request_header(const mw_request_t *req, const char *name);

/* mw_http_status_text returns the reason phrase of an HTTP status code. */
const char *mw_http_status_text(int status);

#endif
