/*
 * http.c - request parsing on top of http-parser.
 *
 * http-parser hands us the URL and header names/values in pieces that may
 * straddle reads. We copy each piece into `buf`, NUL-terminating every
 * string, and keep offsets (not pointers) until the head is complete,
 * because buf grows (and may move) as the head arrives. The body (already
 * de-chunked by http-parser) goes into a buffer of its own, bounded by the
 * body limit. The parser pauses at the end of the head, so its bytes are
 * counted exactly against max_header_bytes, and at the end of the request,
 * so a pipelined next request is left for after mw_http_parser_reset. This
 * module owns no socket and writes nothing; conn.c decides what to answer.
 */
#include "http.h"
#include "errors.h"

#include <http_parser.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct mw_http_parser {
    http_parser parser;
    mw_request_t req;
    char *buf;
    size_t len, cap;   /* bytes used in buf, and its size */
    size_t max_cap;    /* the most buf may grow to */
    size_t head_bytes; /* raw bytes of the head seen so far */
    size_t max_head;
    size_t url_off;
    size_t name_off[MW_HTTP_MAX_HEADERS], value_off[MW_HTTP_MAX_HEADERS];
    int nheaders;
    int in_value; /* last callback was a header value */
    int done, too_big;
    int complete;     /* the whole request is in (mw_http_parser_complete) */
    char *path_query; /* path and query split, allocated on completion */
    char *body;       /* NULL until the first body byte */
    size_t body_len, body_cap, max_body;
};

/* reserve makes room for n more bytes, growing buf up to max_cap: a typical
 * upgrade head is a few hundred bytes, so buf starts small. */
static int reserve(struct mw_http_parser *p, size_t n) {
    if (p->len + n <= p->cap)
        return 0;
    if (p->len + n > p->max_cap) {
        p->too_big = 1;
        return -1;
    }
    size_t cap = p->cap * 2;
    while (cap < p->len + n)
        cap *= 2;
    if (cap > p->max_cap)
        cap = p->max_cap;
    char *b = realloc(p->buf, cap);
    if (!b)
        return -1;
    p->buf = b;
    p->cap = cap;
    return 0;
}

static int append(struct mw_http_parser *p, const char *at, size_t n) {
    /* Every piece is followed by a NUL; a continuation overwrites it. */
    if (reserve(p, n + 1) != 0)
        return -1;
    if (p->len > 0 && p->buf[p->len - 1] == '\0')
        p->len--;
    memcpy(p->buf + p->len, at, n);
    p->len += n;
    p->buf[p->len++] = '\0';
    return 0;
}

static int start_piece(struct mw_http_parser *p, size_t *off) {
    if (reserve(p, 1) != 0)
        return -1;
    *off = p->len;
    p->buf[p->len++] = '\0';
    return 0;
}

static int on_url(http_parser *hp, const char *at, size_t n) {
    return append(hp->data, at, n);
}

static int on_header_field(http_parser *hp, const char *at, size_t n) {
    struct mw_http_parser *p = hp->data;
    if (p->done)
        return 0; /* a trailer after a chunked body: ignored (buf must not move) */
    if (p->in_value || p->nheaders == 0) {
        if (p->nheaders == MW_HTTP_MAX_HEADERS) {
            p->too_big = 1;
            return -1;
        }
        if (start_piece(p, &p->name_off[p->nheaders]) != 0)
            return -1;
        p->value_off[p->nheaders] = 0;
        p->nheaders++;
        p->in_value = 0;
    }
    return append(p, at, n);
}

static int on_header_value(http_parser *hp, const char *at, size_t n) {
    struct mw_http_parser *p = hp->data;
    if (p->done)
        return 0;
    if (!p->in_value) {
        if (start_piece(p, &p->value_off[p->nheaders - 1]) != 0)
            return -1;
        p->in_value = 1;
    }
    return append(p, at, n);
}

static int on_headers_complete(http_parser *hp) {
    struct mw_http_parser *p = hp->data;
    mw_request_t *r = &p->req;
    r->method = http_method_str((enum http_method)hp->method);
    r->http_major = hp->http_major;
    r->http_minor = hp->http_minor;
    r->url = p->buf + p->url_off;
    r->upgrade = hp->upgrade;
    r->has_body =
        (hp->flags & F_CHUNKED) || (hp->content_length > 0 && hp->content_length != ULLONG_MAX);
    r->content_length = (hp->flags & F_CHUNKED) || hp->content_length == ULLONG_MAX
                            ? -1
                            : (long long)hp->content_length;
    r->keep_alive = http_should_keep_alive(hp);
    r->body = "";
    r->body_len = 0;
    r->nheaders = p->nheaders;
    for (int i = 0; i < p->nheaders; i++) {
        r->headers[i].name = p->buf + p->name_off[i];
        /* A header with an empty value never gets a value callback. */
        r->headers[i].value = p->value_off[i] ? p->buf + p->value_off[i] : "";
    }

    struct http_parser_url u;
    http_parser_url_init(&u);
    size_t ulen = strlen(r->url);
    p->path_query = malloc(ulen + 3);
    if (!p->path_query)
        return -1;
    r->path = "/";
    r->query = "";
    if (http_parser_parse_url(r->url, ulen, 0, &u) == 0) {
        char *w = p->path_query;
        if (u.field_set & (1 << UF_PATH)) {
            memcpy(w, r->url + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
            w[u.field_data[UF_PATH].len] = '\0';
            r->path = w;
            w += u.field_data[UF_PATH].len + 1;
        }
        if (u.field_set & (1 << UF_QUERY)) {
            memcpy(w, r->url + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
            w[u.field_data[UF_QUERY].len] = '\0';
            r->query = w;
        }
    } else {
        return -1; /* an unparseable request target is a malformed request */
    }
    const char *expect = mw_request_header(r, "Expect");
    r->expect_continue = expect && strcasecmp(expect, "100-continue") == 0;
    p->done = 1;
    /* An upgrade's body (there is none) and the frames after it are not
     * ours to parse: stop as if upgrading. */
    if (hp->upgrade)
        return 2; /* http-parser: 2 = skip body and stop as if upgrading */
    if (r->content_length > 0 && (unsigned long long)r->content_length > p->max_body) {
        p->too_big = 1; /* refused before a byte of it is read */
        return -1;
    }
    /* Pause at the end of the head: feed counts the head's bytes exactly,
     * then reads the body. */
    http_parser_pause(hp, 1);
    return 0;
}

/* on_body appends a piece of the body (chunks arrive decoded), up to the
 * body limit; a body of known length gets its buffer at once. */
static int on_body(http_parser *hp, const char *at, size_t n) {
    struct mw_http_parser *p = hp->data;
    if (n > p->max_body - p->body_len) {
        p->too_big = 1;
        return -1;
    }
    size_t need = p->body_len + n + 1;
    if (need > p->body_cap) {
        size_t cap = p->body_cap ? p->body_cap * 2 : 256;
        if (p->req.content_length > 0 && (size_t)p->req.content_length + 1 > cap)
            cap = (size_t)p->req.content_length + 1;
        while (cap < need)
            cap *= 2;
        if (cap > p->max_body + 1)
            cap = p->max_body + 1;
        char *b = realloc(p->body, cap);
        if (!b)
            return -1;
        p->body = b;
        p->body_cap = cap;
    }
    memcpy(p->body + p->body_len, at, n);
    p->body_len += n;
    p->body[p->body_len] = '\0';
    return 0;
}

/* on_message_complete: the request is whole. Pausing leaves a pipelined
 * next request unparsed (mw_http_parser_reset, then feed it). */
static int on_message_complete(http_parser *hp) {
    struct mw_http_parser *p = hp->data;
    p->complete = 1;
    if (p->body) {
        p->req.body = p->body;
        p->req.body_len = p->body_len;
    }
    http_parser_pause(hp, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

int mw_http_parser_create(mw_http_parser_t **out, size_t max_header_bytes) {
    struct mw_http_parser *p = calloc(1, sizeof *p);
    if (!p)
        return MW_ENOMEM;
    p->max_cap = max_header_bytes + MW_HTTP_MAX_HEADERS * 2 + 2;
    p->cap = p->max_cap < 1024 ? p->max_cap : 1024;
    p->buf = malloc(p->cap);
    if (!p->buf) {
        free(p);
        return MW_ENOMEM;
    }
    p->max_head = max_header_bytes;
    http_parser_init(&p->parser, HTTP_REQUEST);
    p->parser.data = p;
    p->url_off = 0;
    p->buf[p->len++] = '\0'; /* offset 0 is the (initially empty) URL */
    *out = p;
    return 0;
}

void mw_http_parser_set_max_body(mw_http_parser_t *p, size_t max_body) {
    p->max_body = max_body;
}

int mw_http_parser_feed(mw_http_parser_t *p, const char *data, size_t len, size_t *consumed) {
    *consumed = 0;
    while (!p->complete) {
        int in_head = !p->done;
        size_t n = http_parser_execute(&p->parser, &settings, data + *consumed, len - *consumed);
        enum http_errno e = HTTP_PARSER_ERRNO(&p->parser);
        int at_head_end = e == HPE_PAUSED && !p->complete;
        *consumed += n;
        /* Paused at the end of the head, http-parser leaves its last byte
         * (the LF) to read again: it is the head's. */
        if (in_head)
            p->head_bytes += n + (at_head_end ? 1 : 0);
        if (p->too_big || p->head_bytes > p->max_head)
            return MW_ETOOBIG;
        if (at_head_end) {
            http_parser_pause(&p->parser, 0); /* on with the body */
            continue;
        }
        if (e != HPE_OK && e != HPE_PAUSED)
            return MW_EHTTP;
        if (!p->complete && *consumed != len)
            return MW_EHTTP;
        break; /* every byte taken, the request not complete yet */
    }
    return 0;
}

int mw_http_parser_done(const mw_http_parser_t *p) {
    return p->done;
}

int mw_http_parser_complete(const mw_http_parser_t *p) {
    return p->complete;
}

void mw_http_parser_reset(mw_http_parser_t *p) {
    free(p->path_query);
    p->path_query = NULL;
    free(p->body);
    p->body = NULL;
    p->body_len = p->body_cap = 0;
    memset(&p->req, 0, sizeof p->req);
    p->nheaders = 0;
    p->in_value = 0;
    p->done = p->too_big = p->complete = 0;
    p->head_bytes = 0;
    /* A large head does not keep its buffer for the next requests. */
    if (p->cap > 1024) {
        char *b = realloc(p->buf, 1024);
        if (b) {
            p->buf = b;
            p->cap = 1024;
        }
    }
    p->len = 0;
    p->url_off = 0;
    p->buf[p->len++] = '\0';
    http_parser_init(&p->parser, HTTP_REQUEST);
}

const mw_request_t *mw_http_parser_request(const mw_http_parser_t *p) {
    return &p->req;
}

void mw_http_parser_free(mw_http_parser_t *p) {
    if (!p)
        return;
    free(p->path_query);
    free(p->body);
    free(p->buf);
    free(p);
}

const char *mw_request_header(const mw_request_t *req, const char *name) {
    for (int i = 0; i < req->nheaders; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

const char *mw_http_status_text(int status) {
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}
