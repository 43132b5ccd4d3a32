/*
 * handshake.c - RFC 6455 opening handshake validation.
 *
 * SHA-1 and base64 come from OpenSSL (never hand-written). The checks run in
 * the order of section 4.2.1 so that the status a client gets names the
 * first thing wrong with its request.
 */
#include "handshake.h"
#include "errors.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <string.h>
#include <strings.h>

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

int mw_token_list_has(const char *list, const char *token) {
    size_t tlen = strlen(token);
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ',')
            p++;
        const char *end = p;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if ((size_t)(end - start) == tlen && strncasecmp(start, token, tlen) == 0)
            return 1;
    }
    return 0;
}

/* any_header_has checks every header called name, since a token list may be
 * split over several header lines (RFC 7230 section 3.2.2). */
static int any_header_has(const mw_request_t *req, const char *name, const char *token) {
    for (int i = 0; i < req->nheaders; i++)
        if (strcasecmp(req->headers[i].name, name) == 0 &&
            mw_token_list_has(req->headers[i].value, token))
            return 1;
    return 0;
}

static int trimmed_equals(const char *v, const char *want) {
    while (*v == ' ' || *v == '\t')
        v++;
    size_t n = strlen(v);
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    return n == strlen(want) && strncmp(v, want, n) == 0;
}

static int valid_key(const char *key) {
    /* base64 of exactly 16 bytes: 22 alphabet characters and "==". */
    while (*key == ' ' || *key == '\t')
        key++;
    size_t n = strlen(key);
    while (n > 0 && (key[n - 1] == ' ' || key[n - 1] == '\t'))
        n--;
    if (n != 24 || key[22] != '=' || key[23] != '=')
        return 0;
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < 22; i++)
        if (!key[i] || !strchr(alphabet, key[i]))
            return 0;
    unsigned char out[24];
    if (EVP_DecodeBlock(out, (const unsigned char *)key, 24) != 18)
        return 0;
    /* The last symbol carries 2 meaningful bits; the other 4 must be zero. */
    return strchr("AQgw", key[21]) != NULL;
}

int mw_handshake_accept(const char *key, char *out, size_t outlen) {
    char buf[128];
    unsigned char digest[SHA_DIGEST_LENGTH];
    while (*key == ' ' || *key == '\t')
        key++;
    size_t n = strlen(key);
    while (n > 0 && (key[n - 1] == ' ' || key[n - 1] == '\t'))
        n--;
    if (n + sizeof ws_guid > sizeof buf || outlen < 29)
        return MW_EINVAL;
    memcpy(buf, key, n);
    memcpy(buf + n, ws_guid, sizeof ws_guid - 1);
    SHA1((const unsigned char *)buf, n + sizeof ws_guid - 1, digest);
    EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH);
    return 0;
}

static int refuse(mw_handshake_t *out, int status, const char *reason) {
    out->status = status;
    out->reason = reason;
    return status;
}

static const char *choose_subprotocol(const mw_request_t *req, char *const *mine, int n) {
    for (int i = 0; i < n; i++)
        if (any_header_has(req, "Sec-WebSocket-Protocol", mine[i]))
            return mine[i];
    return NULL;
}

int mw_handshake_check(const mw_request_t *req, char *const *subprotocols, int nsubprotocols,
                       mw_handshake_t *out) {
    memset(out, 0, sizeof *out);
    if (strcmp(req->method, "GET") != 0)
        return refuse(out, 405, "the WebSocket upgrade must use GET");
    if (req->http_major != 1 || req->http_minor < 1)
        return refuse(out, 400, "the WebSocket upgrade requires HTTP/1.1");
    const char *host = mw_request_header(req, "Host");
    if (!host || !*host)
        return refuse(out, 400, "missing Host header");
    if (!mw_request_header(req, "Upgrade"))
        return refuse(out, 426, "this endpoint only speaks WebSocket (missing Upgrade header)");
    if (!any_header_has(req, "Upgrade", "websocket"))
        return refuse(out, 400, "the Upgrade header must be \"websocket\"");
    if (!any_header_has(req, "Connection", "upgrade"))
        return refuse(out, 400, "the Connection header must contain \"Upgrade\"");
    const char *key = mw_request_header(req, "Sec-WebSocket-Key");
    if (!key)
        return refuse(out, 400, "missing Sec-WebSocket-Key header");
    if (!valid_key(key))
        return refuse(out, 400, "Sec-WebSocket-Key must be the base64 encoding of 16 bytes");
    const char *version = mw_request_header(req, "Sec-WebSocket-Version");
    if (!version || !trimmed_equals(version, "13"))
        return refuse(out, 426, "unsupported Sec-WebSocket-Version (this server speaks 13)");
    if (mw_handshake_accept(key, out->accept, sizeof out->accept) != 0)
        return refuse(out, 400, "invalid Sec-WebSocket-Key");
    out->subprotocol = choose_subprotocol(req, subprotocols, nsubprotocols);
    out->status = 101;
    return 101;
}
