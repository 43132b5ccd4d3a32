/*
 * test_http.c - request parsing (src/http.c).
 *
 * Feeds scripted requests whole, byte by byte and in other chunk sizes and
 * checks the parsed request is the same, that bytes after an upgrade head
 * (the first WebSocket frames) are left unconsumed, bodies (by length and
 * chunked) and their limit, pipelined requests with reset, keep-alive and
 * Expect, the size and header-count limits, malformed input, URL
 * splitting, header lookup and status texts.
 */
#include "http.h"
#include "errors.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

static const char upgrade_head[] = "GET /chat?room=a&x=1 HTTP/1.1\r\n"
                                   "Host: server.example.com\r\n"
                                   "Upgrade: websocket\r\n"
                                   "Connection: Upgrade\r\n"
                                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                   "Sec-WebSocket-Version: 13\r\n"
                                   "X-Empty:\r\n"
                                   "X-MiXeD-Case:  Value with  spaces \r\n"
                                   "\r\n";

/* A masked text frame "Hello" that follows the head in the same read. */
static const char frame[] = "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";

typedef struct {
    int rc;          /* first non-zero return, or 0 */
    size_t consumed; /* sum of *consumed */
    int done;
} result_t;

/* Feeds data in chunks of `chunk` bytes (0: all at once), stopping at the
 * first error. Stops feeding once the request is complete, like conn.c. */
static result_t feed(mw_http_parser_t *p, const char *data, size_t len, size_t chunk) {
    result_t res = {0, 0, 0};
    if (chunk == 0)
        chunk = len ? len : 1;
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk, c = 12345;
        res.rc = mw_http_parser_feed(p, data + off, n, &c);
        res.consumed += c;
        if (res.rc || mw_http_parser_complete(p))
            break;
        if (c != n) {
            res.rc = -1; /* an unfinished head must take every byte */
            break;
        }
    }
    res.done = mw_http_parser_done(p);
    return res;
}

static void check_upgrade_request(const mw_request_t *r) {
    CHECK_STR(r->method, "GET");
    CHECK_EQ(r->http_major, 1);
    CHECK_EQ(r->http_minor, 1);
    CHECK_STR(r->url, "/chat?room=a&x=1");
    CHECK_STR(r->path, "/chat");
    CHECK_STR(r->query, "room=a&x=1");
    CHECK_EQ(r->upgrade, 1);
    CHECK_EQ(r->has_body, 0);
    REQUIRE(r->nheaders == 7);
    static const char *const want[][2] = {
        {"Host", "server.example.com"},
        {"Upgrade", "websocket"},
        {"Connection", "Upgrade"},
        {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
        {"Sec-WebSocket-Version", "13"},
        {"X-Empty", ""},
        {"X-MiXeD-Case", "Value with  spaces "},
    };
    for (int i = 0; i < 7; i++) {
        CHECK_STR(r->headers[i].name, want[i][0]);
        /* http-parser keeps trailing whitespace of a value; either is fine
         * for the handshake, which trims. Compare without it. */
        const char *v = r->headers[i].value;
        size_t n = v ? strlen(v) : 0;
        while (n > 0 && v[n - 1] == ' ')
            n--;
        size_t wn = strlen(want[i][1]);
        while (wn > 0 && want[i][1][wn - 1] == ' ')
            wn--;
        CHECK_MEM(v, n, want[i][1], wn);
    }
}

static char *head_of_size(size_t total);

static void test_upgrade_request_in_every_chunking(void) {
    size_t head = strlen(upgrade_head);
    char data[1024];
    memcpy(data, upgrade_head, head);
    memcpy(data + head, frame, sizeof frame - 1);
    size_t len = head + sizeof frame - 1;
    static const size_t chunks[] = {0, 1, 2, 3, 5, 7, 64};
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        mw_http_parser_t *p;
        REQUIRE(mw_http_parser_create(&p, 8192) == 0);
        result_t res = feed(p, data, len, chunks[i]);
        if (res.rc || res.consumed != head)
            fprintf(stderr, "  chunk size %zu\n", chunks[i]);
        CHECK_EQ(res.rc, 0);
        CHECK_EQ(res.done, 1);
        /* The frame after the head is not consumed. */
        CHECK_EQ(res.consumed, head);
        check_upgrade_request(mw_http_parser_request(p));
        /* Feeding after completion consumes nothing. */
        size_t c = 99;
        CHECK_EQ(mw_http_parser_feed(p, frame, sizeof frame - 1, &c), 0);
        CHECK_EQ(c, 0);
        mw_http_parser_free(p);
    }
}

static void test_done_only_at_end_of_head(void) {
    mw_http_parser_t *p;
    REQUIRE(mw_http_parser_create(&p, 8192) == 0);
    size_t head = strlen(upgrade_head), c;
    for (size_t i = 0; i + 1 < head; i++) {
        CHECK_EQ(mw_http_parser_feed(p, upgrade_head + i, 1, &c), 0);
        CHECK_EQ(c, 1);
        CHECK_EQ(mw_http_parser_done(p), 0);
    }
    CHECK_EQ(mw_http_parser_feed(p, upgrade_head + head - 1, 1, &c), 0);
    CHECK_EQ(mw_http_parser_done(p), 1);
    mw_http_parser_free(p);
}

static void test_plain_get_and_body(void) {
    mw_http_parser_t *p;
    REQUIRE(mw_http_parser_create(&p, 8192) == 0);
    const char get[] = "GET / HTTP/1.0\r\nHost: h\r\n\r\n";
    result_t res = feed(p, get, strlen(get), 0);
    CHECK_EQ(res.rc, 0);
    CHECK_EQ(res.consumed, strlen(get));
    const mw_request_t *r = mw_http_parser_request(p);
    CHECK_STR(r->path, "/");
    CHECK_STR(r->query, "");
    CHECK_EQ(r->http_minor, 0);
    CHECK_EQ(r->upgrade, 0);
    CHECK_EQ(r->has_body, 0);
    mw_http_parser_free(p);

    /* A body is read whole, in every chunking; the head alone is not a
     * complete request. */
    const char post[] = "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello";
    for (size_t chunk = 0; chunk <= 3; chunk++) {
        REQUIRE(mw_http_parser_create(&p, 8192) == 0);
        mw_http_parser_set_max_body(p, 5);
        res = feed(p, post, strlen(post) - 5, chunk);
        CHECK_EQ(res.rc, 0);
        CHECK_EQ(res.done, 1);
        CHECK_EQ(mw_http_parser_complete(p), 0);
        CHECK_EQ(mw_http_parser_request(p)->body_len, 0);
        size_t c;
        CHECK_EQ(mw_http_parser_feed(p, "hel", 3, &c), 0);
        CHECK_EQ(c, 3);
        CHECK_EQ(mw_http_parser_complete(p), 0);
        CHECK_EQ(mw_http_parser_feed(p, "lo", 2, &c), 0);
        CHECK_EQ(c, 2);
        CHECK_EQ(mw_http_parser_complete(p), 1);
        r = mw_http_parser_request(p);
        CHECK_STR(r->method, "POST");
        CHECK_EQ(r->has_body, 1);
        CHECK_EQ(r->content_length, 5);
        CHECK_EQ(r->body_len, 5);
        CHECK_STR(r->body, "hello");
        mw_http_parser_free(p);
    }
}

/* A chunked body arrives decoded; trailers after it are ignored and leave
 * the head's strings where they were. */
static void test_chunked_body(void) {
    const char req[] = "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "4\r\nWiki\r\n6;ext=1\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n"
                       "0\r\nX-Trailer: t\r\n\r\n";
    static const size_t chunks[] = {0, 1, 2, 7};
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        mw_http_parser_t *p;
        REQUIRE(mw_http_parser_create(&p, 8192) == 0);
        mw_http_parser_set_max_body(p, 100);
        result_t res = feed(p, req, strlen(req), chunks[i]);
        CHECK_EQ(res.rc, 0);
        CHECK_EQ(mw_http_parser_complete(p), 1);
        CHECK_EQ(res.consumed, strlen(req));
        const mw_request_t *r = mw_http_parser_request(p);
        CHECK_EQ(r->content_length, -1);
        CHECK_EQ(r->has_body, 1);
        CHECK_STR(r->body, "Wikipedia in \r\n\r\nchunks.");
        CHECK_EQ(r->body_len, 24);
        CHECK_EQ(r->nheaders, 2);
        CHECK_STR(r->path, "/c");
        CHECK(mw_request_header(r, "X-Trailer") == NULL);
        mw_http_parser_free(p);
    }
}

/* Over the body limit: refused at the head when Content-Length says so
 * (no body byte read), as the chunks come when chunked. Either way the
 * head is done, which is how conn.c tells 413 from 431. */
static void test_body_limit(void) {
    mw_http_parser_t *p;
    const char big[] = "POST /x HTTP/1.1\r\nContent-Length: 11\r\n\r\n";
    REQUIRE(mw_http_parser_create(&p, 8192) == 0);
    mw_http_parser_set_max_body(p, 10);
    result_t res = feed(p, big, strlen(big), 0);
    CHECK_EQ(res.rc, MW_ETOOBIG);
    CHECK_EQ(res.done, 1);
    CHECK_EQ(mw_http_parser_complete(p), 0);
    mw_http_parser_free(p);

    const char at[] = "POST /x HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789";
    REQUIRE(mw_http_parser_create(&p, 8192) == 0);
    mw_http_parser_set_max_body(p, 10);
    res = feed(p, at, strlen(at), 1);
    CHECK_EQ(res.rc, 0);
    CHECK_EQ(mw_http_parser_complete(p), 1);
    CHECK_STR(mw_http_parser_request(p)->body, "0123456789");
    mw_http_parser_free(p);

    const char chunked[] = "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "6\r\nabcdef\r\n5\r\nghijk\r\n0\r\n\r\n";
    for (size_t chunk = 0; chunk <= 1; chunk++) {
        REQUIRE(mw_http_parser_create(&p, 8192) == 0);
        mw_http_parser_set_max_body(p, 10);
        res = feed(p, chunked, strlen(chunked), chunk);
        CHECK_EQ(res.rc, MW_ETOOBIG);
        CHECK_EQ(res.done, 1);
        CHECK_EQ(mw_http_parser_complete(p), 0);
        mw_http_parser_free(p);
    }

    /* The default limit is 0: any body at all is too big. */
    REQUIRE(mw_http_parser_create(&p, 8192) == 0);
    const char one[] = "POST /x HTTP/1.1\r\nContent-Length: 1\r\n\r\nx";
    res = feed(p, one, strlen(one), 0);
    CHECK_EQ(res.rc, MW_ETOOBIG);
    mw_http_parser_free(p);
}

/* Two requests in one read: the first is complete and the second left
 * unconsumed, until reset; each has its own head and body. */
static void test_pipelined_requests_and_reset(void) {
    const char two[] = "POST /a?x=1 HTTP/1.1\r\nContent-Length: 3\r\nX-N: 1\r\n\r\nabc"
                       "GET /b HTTP/1.1\r\nX-N: 2\r\n\r\n";
    size_t first = strlen(two) - strlen("GET /b HTTP/1.1\r\nX-N: 2\r\n\r\n");
    mw_http_parser_t *p;
    REQUIRE(mw_http_parser_create(&p, 8192) == 0);
    mw_http_parser_set_max_body(p, 100);
    size_t c;
    CHECK_EQ(mw_http_parser_feed(p, two, strlen(two), &c), 0);
    CHECK_EQ(c, first);
    CHECK_EQ(mw_http_parser_complete(p), 1);
    const mw_request_t *r = mw_http_parser_request(p);
    CHECK_STR(r->path, "/a");
    CHECK_STR(r->query, "x=1");
    CHECK_STR(r->body, "abc");
    CHECK_STR(mw_request_header(r, "X-N"), "1");
    CHECK_EQ(mw_http_parser_feed(p, two + first, strlen(two) - first, &c), 0);
    CHECK_EQ(c, 0); /* complete: nothing more until reset */

    mw_http_parser_reset(p);
    CHECK_EQ(mw_http_parser_done(p), 0);
    CHECK_EQ(mw_http_parser_complete(p), 0);
    CHECK_EQ(mw_http_parser_feed(p, two + first, strlen(two) - first, &c), 0);
    CHECK_EQ(c, strlen(two) - first);
    CHECK_EQ(mw_http_parser_complete(p), 1);
    r = mw_http_parser_request(p);
    CHECK_STR(r->method, "GET");
    CHECK_STR(r->path, "/b");
    CHECK_STR(r->query, "");
    CHECK_EQ(r->body_len, 0);
    CHECK_STR(r->body, "");
    CHECK_EQ(r->nheaders, 1);
    CHECK_STR(mw_request_header(r, "X-N"), "2");
    mw_http_parser_free(p);
}

/* A large head does not make the next request's limit any larger, and a
 * reset parser counts the next head from zero. */
static void test_reset_after_large_head(void) {
    mw_http_parser_t *p;
    REQUIRE(mw_http_parser_create(&p, 4096) == 0);
    char *s = head_of_size(4000);
    REQUIRE(s);
    result_t res = feed(p, s, strlen(s), 0);
    CHECK_EQ(res.rc, 0);
    CHECK_EQ(mw_http_parser_complete(p), 1);
    mw_http_parser_reset(p);
    res = feed(p, s, strlen(s), 100);
    CHECK_EQ(res.rc, 0);
    CHECK_EQ(mw_http_parser_complete(p), 1);
    CHECK_EQ(strlen(mw_http_parser_request(p)->path),
             4000 - strlen("GET  HTTP/1.1\r\nHost: h\r\n\r\n"));
    free(s);
    mw_http_parser_free(p);
}

/* keep_alive follows HTTP/1.1's default and Connection; Expect:
 * 100-continue is seen; an upgrade's body is not read. */
static void test_keep_alive_expect_and_upgrade_body(void) {
    static const struct {
        const char *req;
        int keep;
    } cases[] = {
        {"GET / HTTP/1.1\r\n\r\n", 1},
        {"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 0},
        {"GET / HTTP/1.0\r\n\r\n", 0},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mw_http_parser_t *p;
        REQUIRE(mw_http_parser_create(&p, 8192) == 0);
        result_t res = feed(p, cases[i].req, strlen(cases[i].req), 0);
        CHECK_EQ(res.rc, 0);
        CHECK_EQ(mw_http_parser_request(p)->keep_alive, cases[i].keep);
        CHECK_EQ(mw_http_parser_request(p)->expect_continue, 0);
        mw_http_parser_free(p);
    }
    mw_http_parser_t *p;
    REQUIRE(mw_http_parser_create(&p, 8192) == 0);
    mw_http_parser_set_max_body(p, 10);
    const char exp[] = "PUT /x HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\n";
    result_t res = feed(p, exp, strlen(exp), 0);
    CHECK_EQ(res.rc, 0);
    CHECK_EQ(res.done, 1);
    CHECK_EQ(mw_http_parser_request(p)->expect_continue, 1);
    mw_http_parser_free(p);

    /* The upgrade head is the whole request: what follows is not a body. */
    REQUIRE(mw_http_parser_create(&p, 8192) == 0);
    const char up[] = "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Content-Length: 4\r\n\r\nabcd";
    res = feed(p, up, strlen(up), 0);
    CHECK_EQ(res.rc, 0);
    CHECK_EQ(mw_http_parser_complete(p), 1);
    CHECK_EQ(res.consumed, strlen(up) - 4);
    CHECK_EQ(mw_http_parser_request(p)->body_len, 0);
    mw_http_parser_free(p);
}

static void test_url_forms(void) {
    static const char *const cases[][3] = {
        {"GET /chat?room=a&x=1 HTTP/1.1\r\nHost: h\r\n\r\n", "/chat", "room=a&x=1"},
        {"GET /chat HTTP/1.1\r\nHost: h\r\n\r\n", "/chat", ""},
        {"GET /chat? HTTP/1.1\r\nHost: h\r\n\r\n", "/chat", ""},
        {"GET /a/b/c?q HTTP/1.1\r\nHost: h\r\n\r\n", "/a/b/c", "q"},
        {"GET /?x=%20y HTTP/1.1\r\nHost: h\r\n\r\n", "/", "x=%20y"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (size_t chunk = 0; chunk <= 1; chunk++) {
            mw_http_parser_t *p;
            REQUIRE(mw_http_parser_create(&p, 8192) == 0);
            result_t res = feed(p, cases[i][0], strlen(cases[i][0]), chunk);
            CHECK_EQ(res.rc, 0);
            CHECK_EQ(res.done, 1);
            CHECK_STR(mw_http_parser_request(p)->path, cases[i][1]);
            CHECK_STR(mw_http_parser_request(p)->query, cases[i][2]);
            mw_http_parser_free(p);
        }
    }
}

/* Builds "GET /<pad> HTTP/1.1\r\nHost: h\r\n\r\n" of exactly total bytes. */
static char *head_of_size(size_t total) {
    const char *pre = "GET /", *post = " HTTP/1.1\r\nHost: h\r\n\r\n";
    size_t fixed = strlen(pre) + strlen(post);
    char *s = malloc(total + 1);
    if (!s || total < fixed)
        return s;
    strcpy(s, pre);
    memset(s + strlen(pre), 'a', total - fixed);
    strcpy(s + total - strlen(post), post);
    return s;
}

static void test_head_at_the_limit_is_accepted(void) {
    for (size_t chunk = 0; chunk <= 1; chunk++) {
        char *s = head_of_size(256);
        REQUIRE(s && strlen(s) == 256);
        mw_http_parser_t *p;
        REQUIRE(mw_http_parser_create(&p, 256) == 0);
        result_t res = feed(p, s, 256, chunk);
        CHECK_EQ(res.rc, 0);
        CHECK_EQ(res.done, 1);
        CHECK_EQ(res.consumed, 256);
        mw_http_parser_free(p);
        free(s);
    }
}

/* One byte over max_header_bytes, in every chunking, must be refused. */
static void test_head_over_the_limit_is_refused(void) {
    static const size_t chunks[] = {0, 1, 2, 16, 100};
    static const size_t sizes[] = {257, 300, 380, 1000};
    for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
        for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
            char *s = head_of_size(sizes[z]);
            REQUIRE(s && strlen(s) == sizes[z]);
            mw_http_parser_t *p;
            REQUIRE(mw_http_parser_create(&p, 256) == 0);
            result_t res = feed(p, s, sizes[z], chunks[i]);
            if (res.rc != MW_ETOOBIG)
                fprintf(stderr, "  %zu-byte head, chunk %zu: rc %d, done %d\n", sizes[z], chunks[i],
                        res.rc, res.done);
            CHECK_EQ(res.rc, MW_ETOOBIG);
            mw_http_parser_free(p);
            free(s);
        }
    }
}

/* A slow client that never finishes its head is cut off once it has sent
 * more than the limit, without waiting for the end of the head. */
static void test_slow_endless_head_is_refused(void) {
    mw_http_parser_t *p;
    REQUIRE(mw_http_parser_create(&p, 512) == 0);
    const char *start = "GET / HTTP/1.1\r\nHost: h\r\n";
    size_t c, sent = 0;
    int rc = mw_http_parser_feed(p, start, strlen(start), &c);
    sent += strlen(start);
    CHECK_EQ(rc, 0);
    for (int i = 0; rc == 0 && i < 1000; i++) {
        rc = mw_http_parser_feed(p, "X-A: b\r\n", 8, &c);
        sent += 8;
    }
    CHECK_EQ(rc, MW_ETOOBIG);
    CHECK(sent <= 512 + 8);
    mw_http_parser_free(p);
}

static char *many_headers(int n) {
    char *s = malloc(64 + (size_t)n * 16);
    if (!s)
        return NULL;
    char *w = s + sprintf(s, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < n; i++)
        w += sprintf(w, "H%d: v%d\r\n", i, i);
    strcpy(w, "\r\n");
    return s;
}

static void test_header_count_limit(void) {
    for (size_t chunk = 0; chunk <= 1; chunk++) {
        char *s = many_headers(MW_HTTP_MAX_HEADERS);
        REQUIRE(s);
        mw_http_parser_t *p;
        REQUIRE(mw_http_parser_create(&p, 65536) == 0);
        result_t res = feed(p, s, strlen(s), chunk);
        CHECK_EQ(res.rc, 0);
        CHECK_EQ(res.done, 1);
        const mw_request_t *r = mw_http_parser_request(p);
        CHECK_EQ(r->nheaders, MW_HTTP_MAX_HEADERS);
        CHECK_STR(r->headers[63].name, "H63");
        CHECK_STR(r->headers[63].value, "v63");
        mw_http_parser_free(p);
        free(s);

        s = many_headers(MW_HTTP_MAX_HEADERS + 1);
        REQUIRE(s);
        REQUIRE(mw_http_parser_create(&p, 65536) == 0);
        res = feed(p, s, strlen(s), chunk);
        CHECK_EQ(res.rc, MW_ETOOBIG);
        CHECK_EQ(res.done, 0);
        mw_http_parser_free(p);
        free(s);
    }
}

static void test_garbage_is_malformed(void) {
    /* The start of a TLS ClientHello sent to a plain-text port. */
    static const char tls[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x8a\x1b";
    static const char *const bad[] = {
        "GET / HTTP/1.1\r\nHost h\r\n\r\n", /* header without a colon */
        "GET / FTP/1.1\r\n\r\n",
        "G\x01T / HTTP/1.1\r\n\r\n",
    };
    for (size_t chunk = 0; chunk <= 1; chunk++) {
        mw_http_parser_t *p;
        REQUIRE(mw_http_parser_create(&p, 8192) == 0);
        result_t res = feed(p, tls, sizeof tls - 1, chunk);
        CHECK_EQ(res.rc, MW_EHTTP);
        CHECK_EQ(res.done, 0);
        mw_http_parser_free(p);
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            REQUIRE(mw_http_parser_create(&p, 8192) == 0);
            res = feed(p, bad[i], strlen(bad[i]), chunk);
            if (res.rc != MW_EHTTP)
                fprintf(stderr, "  bad[%zu] chunk %zu: rc %d\n", i, chunk, res.rc);
            CHECK_EQ(res.rc, MW_EHTTP);
            mw_http_parser_free(p);
        }
    }
}

static void test_request_header_lookup(void) {
    mw_http_parser_t *p;
    REQUIRE(mw_http_parser_create(&p, 8192) == 0);
    result_t res = feed(p, upgrade_head, strlen(upgrade_head), 0);
    REQUIRE(res.rc == 0 && res.done);
    const mw_request_t *r = mw_http_parser_request(p);
    CHECK_STR(mw_request_header(r, "sec-websocket-key"), "dGhlIHNhbXBsZSBub25jZQ==");
    CHECK_STR(mw_request_header(r, "HOST"), "server.example.com");
    CHECK_STR(mw_request_header(r, "x-empty"), "");
    CHECK(mw_request_header(r, "Sec-WebSocket-Protocol") == NULL);
    CHECK(mw_request_header(r, "Hos") == NULL);
    mw_http_parser_free(p);

    /* The first of two headers with the same name. */
    REQUIRE(mw_http_parser_create(&p, 8192) == 0);
    const char two[] = "GET / HTTP/1.1\r\nX-A: 1\r\nx-a: 2\r\n\r\n";
    res = feed(p, two, strlen(two), 1);
    REQUIRE(res.rc == 0 && res.done);
    CHECK_STR(mw_request_header(mw_http_parser_request(p), "X-A"), "1");
    mw_http_parser_free(p);
}

static void test_status_texts(void) {
    CHECK_STR(mw_http_status_text(101), "Switching Protocols");
    CHECK_STR(mw_http_status_text(200), "OK");
    CHECK_STR(mw_http_status_text(400), "Bad Request");
    CHECK_STR(mw_http_status_text(403), "Forbidden");
    CHECK_STR(mw_http_status_text(404), "Not Found");
    CHECK_STR(mw_http_status_text(405), "Method Not Allowed");
    CHECK_STR(mw_http_status_text(408), "Request Timeout");
    CHECK_STR(mw_http_status_text(426), "Upgrade Required");
    CHECK_STR(mw_http_status_text(429), "Too Many Requests");
    CHECK_STR(mw_http_status_text(431), "Request Header Fields Too Large");
    CHECK_STR(mw_http_status_text(413), "Content Too Large");
    CHECK_STR(mw_http_status_text(401), "Unauthorized");
    CHECK_STR(mw_http_status_text(204), "No Content");
    CHECK_STR(mw_http_status_text(500), "Internal Server Error");
    CHECK_STR(mw_http_status_text(503), "Service Unavailable");
    CHECK_STR(mw_http_status_text(299), "Unknown");
}

static void test_free_null_and_unfinished(void) {
    mw_http_parser_free(NULL);
    mw_http_parser_t *p;
    REQUIRE(mw_http_parser_create(&p, 8192) == 0);
    size_t c;
    CHECK_EQ(mw_http_parser_feed(p, upgrade_head, 40, &c), 0);
    CHECK_EQ(mw_http_parser_done(p), 0);
    mw_http_parser_free(p); /* ASan: nothing leaks from a half-parsed head */
}

int main(void) {
    RUN(test_upgrade_request_in_every_chunking);
    RUN(test_done_only_at_end_of_head);
    RUN(test_plain_get_and_body);
    RUN(test_chunked_body);
    RUN(test_body_limit);
    RUN(test_pipelined_requests_and_reset);
    RUN(test_reset_after_large_head);
    RUN(test_keep_alive_expect_and_upgrade_body);
    RUN(test_url_forms);
    RUN(test_head_at_the_limit_is_accepted);
    RUN(test_head_over_the_limit_is_refused);
    RUN(test_slow_endless_head_is_refused);
    RUN(test_header_count_limit);
    RUN(test_garbage_is_malformed);
    RUN(test_request_header_lookup);
    RUN(test_status_texts);
    RUN(test_free_null_and_unfinished);
    return test_summary();
}
