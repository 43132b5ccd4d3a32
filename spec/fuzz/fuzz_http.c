/*
 * fuzz_http.c - libFuzzer target: the HTTP request and upgrade path
 * (src/http.c, then src/handshake.c).
 *
 * Why: the request is the first thing the server parses from anyone who
 * connects, before any authentication. The input is the bytes a client
 * sends on a fresh connection. They are driven the way conn.c's
 * on_http_data does it: each read goes to mw_http_parser_feed, the first
 * error ends the connection (400, or 431 / 413 for MW_ETOOBIG), and once
 * the request is complete (an upgrade's head; any other request's head and
 * body, bounded by a small body limit) the rest of the read is left for
 * ws.c or the next request. The request then goes through
 * mw_handshake_check (conn.c only does that for the configured path; here
 * every request does, which is a superset).
 *
 * Checks: the input is fed in one read, one byte per read and in reads of
 * random sizes, and all three must agree (outcome, bytes consumed, every
 * field of the request, its body, the handshake's answer). Every string of
 * the request is read in full (so ASan sees any missing NUL), the body is
 * read to its end and is NUL-terminated and within the limit, and a 101 is
 * only given to a request that really is a valid upgrade: the accept value
 * and the token lists are re-checked here with separate code.
 */
#include "fuzz.h"
#include "errors.h"
#include "handshake.h"
#include "http.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <string.h>
#include <strings.h>

/* Small, so that the size and header-count limits (431) are within reach
 * of short inputs; the server's default is 8192. */
#define MAX_HEADER_BYTES 1024
/* The body limit (http_max_body), small for the same reason. */
#define MAX_BODY 256

static char *const subprotocols[] = {"chat", "v2.json.moonwire", "superchat"};
#define NSUBPROTOCOLS 3

typedef struct {
    mw_http_parser_t *p;
    int rc;          /* first error, or 0 */
    int done;        /* the request is complete */
    size_t consumed; /* bytes that were part of the request */
    mw_handshake_t hs;
} run_t;

static void feed(run_t *r, const uint8_t *data, size_t len, int mode) {
    memset(r, 0, sizeof *r);
    FUZZ_CHECK(mw_http_parser_create(&r->p, MAX_HEADER_BYTES) == 0);
    mw_http_parser_set_max_body(r->p, MAX_BODY);
    fuzz_split_t s = fuzz_split_init(mode, data, len);
    size_t off = 0;
    while (off < len) {
        size_t n = fuzz_next_chunk(&s, len - off), used = (size_t)-1;
        r->rc = mw_http_parser_feed(r->p, (const char *)data + off, n, &used);
        FUZZ_CHECK(used <= n);
        r->consumed += used;
        if (r->rc != 0)
            return; /* conn.c answers 400, 413 or 431 and stops reading */
        if (mw_http_parser_complete(r->p)) {
            FUZZ_CHECK(mw_http_parser_done(r->p));
            r->done = 1;
            return; /* the rest of this read goes to ws.c, or the next request */
        }
        FUZZ_CHECK(used == n); /* an unfinished request takes every byte */
        off += n;
    }
}

/* touch reads a whole string: ASan reports it if it is not terminated. */
static size_t touch(const char *s) {
    FUZZ_CHECK(s != NULL);
    return strlen(s);
}

static void check_request(const mw_request_t *q) {
    touch(q->method);
    touch(q->url);
    touch(q->query);
    FUZZ_CHECK(touch(q->path) > 0);
    FUZZ_CHECK(q->nheaders >= 0 && q->nheaders <= MW_HTTP_MAX_HEADERS);
    for (int i = 0; i < q->nheaders; i++) {
        touch(q->headers[i].name);
        touch(q->headers[i].value);
    }
    FUZZ_CHECK(q->body != NULL && q->body[q->body_len] == '\0');
    FUZZ_CHECK(q->body_len <= MAX_BODY);
    FUZZ_CHECK(q->upgrade ? q->body_len == 0 : 1);
    FUZZ_CHECK(q->content_length < 0 || q->upgrade || (size_t)q->content_length == q->body_len);
    volatile char sum = 0;
    for (size_t i = 0; i < q->body_len; i++)
        sum ^= q->body[i];
    (void)sum;
}

static int same_request(const mw_request_t *a, const mw_request_t *b) {
    if (strcmp(a->method, b->method) || a->http_major != b->http_major ||
        a->http_minor != b->http_minor || strcmp(a->url, b->url) || strcmp(a->path, b->path) ||
        strcmp(a->query, b->query) || a->nheaders != b->nheaders || a->upgrade != b->upgrade ||
        a->has_body != b->has_body || a->content_length != b->content_length ||
        a->keep_alive != b->keep_alive || a->expect_continue != b->expect_continue ||
        a->body_len != b->body_len || memcmp(a->body, b->body, a->body_len) != 0)
        return 0;
    for (int i = 0; i < a->nheaders; i++)
        if (strcmp(a->headers[i].name, b->headers[i].name) ||
            strcmp(a->headers[i].value, b->headers[i].value))
            return 0;
    return 1;
}

/* ref_has_token: the token-list rule of handshake.c (comma-separated,
 * case-insensitive, optional whitespace around items), written apart. */
static int ref_has_token(const char *list, const char *token) {
    size_t tlen = strlen(token);
    for (const char *item = list;; item++) {
        const char *end = strchr(item, ',');
        if (!end)
            end = item + strlen(item);
        const char *a = item, *b = end;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if ((size_t)(b - a) == tlen && strncasecmp(a, token, tlen) == 0)
            return 1;
        if (!*end)
            return 0;
        item = end;
    }
}

static int any_header_has(const mw_request_t *q, const char *name, const char *token) {
    for (int i = 0; i < q->nheaders; i++)
        if (strcasecmp(q->headers[i].name, name) == 0 && ref_has_token(q->headers[i].value, token))
            return 1;
    return 0;
}

/* check_handshake: the answer is one conn.c knows how to send, and a 101
 * goes only to a valid upgrade, with the right accept value and a
 * subprotocol the client offered. */
static void check_handshake(const mw_request_t *q, const mw_handshake_t *hs, int status) {
    FUZZ_CHECK(status == hs->status);
    FUZZ_CHECK(status == 101 || status == 400 || status == 405 || status == 426);
    if (status != 101) {
        FUZZ_CHECK(hs->reason != NULL && touch(hs->reason) < 200); /* respond_text: 256 */
        FUZZ_CHECK(hs->subprotocol == NULL);
        return;
    }
    FUZZ_CHECK(strcmp(q->method, "GET") == 0);
    FUZZ_CHECK(q->http_major == 1 && q->http_minor >= 1);
    const char *host = mw_request_header(q, "host");
    FUZZ_CHECK(host && *host);
    FUZZ_CHECK(any_header_has(q, "Upgrade", "websocket"));
    FUZZ_CHECK(any_header_has(q, "Connection", "upgrade"));

    /* The key: 16 bytes in base64 (24 characters once trimmed). */
    const char *key = mw_request_header(q, "Sec-WebSocket-Key");
    FUZZ_CHECK(key != NULL);
    while (*key == ' ' || *key == '\t')
        key++;
    size_t klen = strlen(key);
    while (klen && (key[klen - 1] == ' ' || key[klen - 1] == '\t'))
        klen--;
    FUZZ_CHECK(klen == 24);
    unsigned char raw[24];
    FUZZ_CHECK(EVP_DecodeBlock(raw, (const unsigned char *)key, 24) == 18);
    char in[24 + 36];
    memcpy(in, key, 24);
    memcpy(in + 24, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)in, sizeof in, digest);
    char want[32];
    EVP_EncodeBlock((unsigned char *)want, digest, SHA_DIGEST_LENGTH);
    FUZZ_CHECK(strcmp(hs->accept, want) == 0);

    const char *version = mw_request_header(q, "Sec-WebSocket-Version");
    FUZZ_CHECK(version != NULL);
    version += strspn(version, " \t");
    FUZZ_CHECK(strncmp(version, "13", 2) == 0 && version[2 + strspn(version + 2, " \t")] == '\0');

    /* The first of ours the client offered, never one it did not. */
    const char *chosen = NULL;
    for (int i = 0; i < NSUBPROTOCOLS && !chosen; i++)
        if (any_header_has(q, "Sec-WebSocket-Protocol", subprotocols[i]))
            chosen = subprotocols[i];
    FUZZ_CHECK(hs->subprotocol == chosen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
    run_t runs[FUZZ_NSPLITS];
    for (int m = 0; m < FUZZ_NSPLITS; m++) {
        run_t *r = &runs[m];
        feed(r, data, len, m);
        if (r->done) {
            const mw_request_t *q = mw_http_parser_request(r->p);
            check_request(q);
            int status = mw_handshake_check(q, subprotocols, NSUBPROTOCOLS, &r->hs);
            check_handshake(q, &r->hs, status);
        }
    }
    /* However the bytes were cut into reads, the server must see the same
     * request: the same outcome and, when the request is complete, the same
     * bytes consumed, request, body and answer. (Which refusal may differ:
     * a request that is both malformed and too large can get 400 or
     * 431/413, depending on whether the limit is seen before the bad
     * byte.) */
    for (int m = 1; m < FUZZ_NSPLITS; m++) {
        run_t *a = &runs[0], *b = &runs[m];
        FUZZ_CHECK(a->done == b->done);
        FUZZ_CHECK((a->rc != 0) == (b->rc != 0));
        if (!a->done)
            continue;
        FUZZ_CHECK(a->consumed == b->consumed);
        FUZZ_CHECK(same_request(mw_http_parser_request(a->p), mw_http_parser_request(b->p)));
        FUZZ_CHECK(a->hs.status == b->hs.status);
        FUZZ_CHECK(strcmp(a->hs.accept, b->hs.accept) == 0);
        FUZZ_CHECK(a->hs.subprotocol == b->hs.subprotocol);
    }
    for (int m = 0; m < FUZZ_NSPLITS; m++)
        mw_http_parser_free(runs[m].p);
    return 0;
}
