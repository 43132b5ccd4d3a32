/*
 * handshake.c - RFC 6455 opening handshake: the server's validation of a
 * request, the client's request and its validation of the response.
 *
 * SHA-1, base64 and the key's randomness come from OpenSSL, the response
 * head is parsed by http-parser (never hand-written). The server's checks
 * run in the order of section 4.2.1 so that the status a client gets
 * names the first thing wrong with its request; the client's follow
 * section 4.1 (the numbered list of what a client must check).
 */
#include "handshake.h"
#include "errors.h"

#include <ctype.h>
#include <http_parser.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
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

/* ---- the client side ------------------------------------------------------ */

int mw_handshake_client_key(char *key, size_t keylen) {
    unsigned char raw[16];
    if (keylen < 25)
        return MW_EINVAL;
    if (RAND_bytes(raw, sizeof raw) != 1)
        return MW_EIO;
    EVP_EncodeBlock((unsigned char *)key, raw, sizeof raw); /* 24 chars and NUL */
    return 0;
}

/* is_token: an HTTP header name (RFC 7230 tchar). */
static int is_token(const char *s) {
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
            return 0;
    return 1;
}

/* clean_value: no control character but tab (so no CR or LF that would
 * end the header and smuggle another). */
static int clean_value(const char *s) {
    for (; *s; s++)
        if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
            return 0;
    return 1;
}

/* The headers the handshake writes itself: an app's copy would make the
 * request ambiguous or break it. */
static const char *const reserved[] = {"Host",
                                       "Upgrade",
                                       "Connection",
                                       "Sec-WebSocket-Key",
                                       "Sec-WebSocket-Version",
                                       "Sec-WebSocket-Protocol",
                                       "Sec-WebSocket-Extensions",
                                       "Content-Length",
                                       "Transfer-Encoding"};

int mw_handshake_client_request(const char *host, const char *target, const char *key,
                                const char *protocols, const mw_handshake_header_t *headers,
                                int nheaders, char **out, size_t *outlen, char *err,
                                size_t errlen) {
    if (!target || !*target)
        target = "/";
    if (!clean_value(host) || !clean_value(target) || strchr(target, ' ') ||
        (protocols && !clean_value(protocols))) {
        snprintf(err, errlen, "the URL or protocols contain a control character or a space");
        return MW_EINVAL;
    }
    size_t need = strlen(host) + strlen(target) + strlen(key) + 160;
    if (protocols && *protocols)
        need += strlen(protocols) + 32;
    for (int i = 0; i < nheaders; i++) {
        const char *n = headers[i].name, *v = headers[i].value;
        if (!is_token(n)) {
            snprintf(err, errlen, "header name \"%.64s\" is not an HTTP token", n);
            return MW_EINVAL;
        }
        if (!clean_value(v)) {
            snprintf(err, errlen, "header %.64s: the value has a control character (CR, LF, ...)",
                     n);
            return MW_EINVAL;
        }
        for (size_t k = 0; k < sizeof reserved / sizeof reserved[0]; k++)
            if (strcasecmp(n, reserved[k]) == 0) {
                snprintf(err, errlen, "header %s is set by the handshake itself", reserved[k]);
                return MW_EINVAL;
            }
        need += strlen(n) + strlen(v) + 4;
    }
    char *buf = malloc(need);
    if (!buf)
        return MW_ENOMEM;
    int n = snprintf(buf, need,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: "
                     "Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n",
                     target, host, key);
    if (protocols && *protocols)
        n += snprintf(buf + n, need - (size_t)n, "Sec-WebSocket-Protocol: %s\r\n", protocols);
    for (int i = 0; i < nheaders; i++)
        n += snprintf(buf + n, need - (size_t)n, "%s: %s\r\n", headers[i].name, headers[i].value);
    n += snprintf(buf + n, need - (size_t)n, "\r\n");
    *out = buf;
    *outlen = (size_t)n;
    return 0;
}

/* The response's headers as http-parser hands them: pieces of the head
 * (which the caller holds whole), not copies. */
#define REPLY_MAX_HEADERS 64
typedef struct {
    const char *at;
    size_t len;
} piece_t;

typedef struct {
    piece_t name[REPLY_MAX_HEADERS], value[REPLY_MAX_HEADERS];
    int n, too_many, in_value, done;
} reply_parse_t;

/* grow extends the piece when http-parser hands the same item in two
 * calls (it does so only at buffer ends, so the pieces are adjacent). */
static void grow(piece_t *p, const char *at, size_t len) {
    if (p->at && p->at + p->len == at)
        p->len += len;
    else if (!p->at) {
        p->at = at;
        p->len = len;
    }
}

static int on_rfield(http_parser *hp, const char *at, size_t len) {
    reply_parse_t *r = hp->data;
    if (r->in_value || r->n == 0) {
        if (r->n == REPLY_MAX_HEADERS) {
            r->too_many = 1;
            return 1;
        }
        r->n++;
        r->in_value = 0;
    }
    grow(&r->name[r->n - 1], at, len);
    return 0;
}

static int on_rvalue(http_parser *hp, const char *at, size_t len) {
    reply_parse_t *r = hp->data;
    r->in_value = 1;
    grow(&r->value[r->n - 1], at, len);
    return 0;
}

static int on_rdone(http_parser *hp) {
    ((reply_parse_t *)hp->data)->done = 1;
    return 1; /* stop: what follows the head is not HTTP */
}

/* copy_header copies the values of every header called name, joined with
 * ", " (RFC 7230 3.2.2), into buf; 0 when there is none. */
static int copy_header(const reply_parse_t *r, const char *name, char *buf, size_t buflen) {
    size_t nlen = strlen(name), used = 0;
    int found = 0;
    buf[0] = '\0';
    for (int i = 0; i < r->n; i++) {
        if (r->name[i].len != nlen || strncasecmp(r->name[i].at, name, nlen) != 0)
            continue;
        int w = snprintf(buf + used, buflen - used, "%s%.*s", found ? ", " : "",
                         (int)r->value[i].len, r->value[i].at ? r->value[i].at : "");
        used += w > 0 ? (size_t)w : 0;
        if (used >= buflen)
            used = buflen - 1;
        found = 1;
    }
    return found;
}

static int reply_fail(mw_handshake_reply_t *out, const char *fmt, const char *arg) {
    snprintf(out->reason, sizeof out->reason, fmt, arg);
    return MW_EHTTP;
}

int mw_handshake_client_check(const char *head, size_t len, const char *key, const char *protocols,
                              mw_handshake_reply_t *out) {
    memset(out, 0, sizeof *out);
    reply_parse_t r;
    memset(&r, 0, sizeof r);
    http_parser_settings st;
    http_parser_settings_init(&st);
    st.on_header_field = on_rfield;
    st.on_header_value = on_rvalue;
    st.on_headers_complete = on_rdone;
    http_parser hp;
    http_parser_init(&hp, HTTP_RESPONSE);
    hp.data = &r;
    http_parser_execute(&hp, &st, head, len);
    if (!r.done) {
        if (r.too_many)
            return reply_fail(out, "the response has more than %s headers", "64");
        return reply_fail(out, "the response is not HTTP (%s)",
                          http_errno_description(HTTP_PARSER_ERRNO(&hp)));
    }
    out->status = hp.status_code;
    if (hp.status_code != 101) {
        snprintf(out->reason, sizeof out->reason, "the server answered %d instead of 101",
                 hp.status_code);
        return MW_EHTTP;
    }
    char v[256];
    if (!copy_header(&r, "Upgrade", v, sizeof v) || !mw_token_list_has(v, "websocket"))
        return reply_fail(out, "the response's Upgrade header is not %s", "\"websocket\"");
    if (!copy_header(&r, "Connection", v, sizeof v) || !mw_token_list_has(v, "upgrade"))
        return reply_fail(out, "the response's Connection header does not contain %s",
                          "\"Upgrade\"");
    char want[32];
    if (mw_handshake_accept(key, want, sizeof want) != 0)
        return reply_fail(out, "%s", "invalid Sec-WebSocket-Key");
    if (!copy_header(&r, "Sec-WebSocket-Accept", v, sizeof v))
        return reply_fail(out, "the response has no %s header", "Sec-WebSocket-Accept");
    if (!trimmed_equals(v, want))
        return reply_fail(out, "Sec-WebSocket-Accept does not match the key (%s)",
                          "the server is not speaking WebSocket to us");
    if (copy_header(&r, "Sec-WebSocket-Extensions", v, sizeof v) && v[0])
        return reply_fail(out, "the server chose an extension that was not offered (%.100s)", v);
    if (copy_header(&r, "Sec-WebSocket-Protocol", v, sizeof v)) {
        const char *p = v;
        while (*p == ' ' || *p == '\t')
            p++;
        size_t n = strlen(p);
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n >= sizeof out->protocol || memchr(p, ',', n))
            return reply_fail(out, "the server chose more than one subprotocol (%.100s)", v);
        memcpy(out->protocol, p, n);
        out->protocol[n] = '\0';
        if (n && (!protocols || !mw_token_list_has(protocols, out->protocol))) {
            snprintf(out->reason, sizeof out->reason,
                     "the server chose subprotocol \"%s\", which was not offered", out->protocol);
            out->protocol[0] = '\0';
            return MW_EHTTP;
        }
    }
    return 0;
}
