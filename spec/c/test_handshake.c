/*
 * test_handshake.c - the opening handshake rules (src/handshake.c).
 *
 * mw_handshake_check is fed hand-built mw_request_t values, one rule broken
 * at a time, and must answer the status RFC 6455 section 4.2.1 asks for;
 * also Sec-WebSocket-Accept, subprotocol choice and mw_token_list_has.
 * The client side (section 4.1): the key, the request it writes, and its
 * check of the server's response, one wrong answer at a time.
 */
#include "handshake.h"
#include "errors.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

static const char sample_key[] = "dGhlIHNhbXBsZSBub25jZQ==";
static const char sample_accept[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/* A valid upgrade request, as http.c would produce it. */
static mw_request_t valid_request(void) {
    mw_request_t r;
    memset(&r, 0, sizeof r);
    r.method = "GET";
    r.http_major = 1;
    r.http_minor = 1;
    r.url = r.path = "/chat";
    r.query = "";
    r.upgrade = 1;
    static const char *const h[][2] = {
        {"Host", "server.example.com"},   {"Upgrade", "websocket"},
        {"Connection", "Upgrade"},        {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
        {"Origin", "http://example.com"}, {"Sec-WebSocket-Version", "13"},
    };
    for (size_t i = 0; i < sizeof h / sizeof h[0]; i++) {
        r.headers[i].name = h[i][0];
        r.headers[i].value = h[i][1];
    }
    r.nheaders = (int)(sizeof h / sizeof h[0]);
    return r;
}

/* Removes every header called name (exact spelling). */
static void del_header(mw_request_t *r, const char *name) {
    int w = 0;
    for (int i = 0; i < r->nheaders; i++)
        if (strcmp(r->headers[i].name, name) != 0)
            r->headers[w++] = r->headers[i];
    r->nheaders = w;
}

static void add_header(mw_request_t *r, const char *name, const char *value) {
    r->headers[r->nheaders].name = name;
    r->headers[r->nheaders].value = value;
    r->nheaders++;
}

static void set_header(mw_request_t *r, const char *name, const char *value) {
    del_header(r, name);
    add_header(r, name, value);
}

static int check(const mw_request_t *r, mw_handshake_t *out) {
    return mw_handshake_check(r, NULL, 0, out);
}

static int status_with(const char *name, const char *value) {
    mw_request_t r = valid_request();
    mw_handshake_t out;
    if (value)
        set_header(&r, name, value);
    else
        del_header(&r, name);
    int s = check(&r, &out);
    if (s != out.status)
        return -1;
    if (s != 101 && out.reason == NULL)
        return -2; /* a refusal always says why */
    return s;
}

static void test_valid_request_is_accepted(void) {
    mw_request_t r = valid_request();
    mw_handshake_t out;
    memset(&out, 0xAA, sizeof out);
    CHECK_EQ(check(&r, &out), 101);
    CHECK_EQ(out.status, 101);
    CHECK_STR(out.accept, sample_accept);
    CHECK(out.reason == NULL);
    CHECK(out.subprotocol == NULL);
}

static void test_accept_value(void) {
    char out[32];
    CHECK_EQ(mw_handshake_accept(sample_key, out, sizeof out), 0);
    CHECK_STR(out, sample_accept);
    CHECK_EQ(mw_handshake_accept(sample_key, out, 29), 0);
    CHECK_STR(out, sample_accept);
    CHECK_EQ(mw_handshake_accept(sample_key, out, 28), MW_EINVAL);
    /* Another key, computed independently (Python: b64(sha1(key + GUID))). */
    CHECK_EQ(mw_handshake_accept("x3JJHMbDL1EzLkh9GBhXDw==", out, sizeof out), 0);
    CHECK_STR(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
    /* Surrounding whitespace is not part of the key. */
    CHECK_EQ(mw_handshake_accept(" \tdGhlIHNhbXBsZSBub25jZQ== ", out, sizeof out), 0);
    CHECK_STR(out, sample_accept);
}

static void test_method_and_version(void) {
    mw_request_t r = valid_request();
    mw_handshake_t out;
    r.method = "POST";
    CHECK_EQ(check(&r, &out), 405);
    CHECK_EQ(out.status, 405);
    CHECK(out.reason != NULL);
    r.method = "get";
    CHECK_EQ(check(&r, &out), 405);

    r = valid_request();
    r.http_minor = 0;
    CHECK_EQ(check(&r, &out), 400);
    r.http_major = 0;
    r.http_minor = 9;
    CHECK_EQ(check(&r, &out), 400);
    r.http_major = 2;
    r.http_minor = 0;
    CHECK_EQ(check(&r, &out), 400);
}

static void test_host(void) {
    CHECK_EQ(status_with("Host", NULL), 400);
    CHECK_EQ(status_with("Host", ""), 400);
    CHECK_EQ(status_with("Host", "localhost:8080"), 101);
}

static void test_upgrade_header(void) {
    CHECK_EQ(status_with("Upgrade", NULL), 426);
    CHECK_EQ(status_with("Upgrade", "h2c"), 400);
    CHECK_EQ(status_with("Upgrade", "websocketx"), 400);
    CHECK_EQ(status_with("Upgrade", ""), 400);
    CHECK_EQ(status_with("Upgrade", "WebSocket"), 101);
    CHECK_EQ(status_with("Upgrade", "WEBSOCKET"), 101);
    CHECK_EQ(status_with("Upgrade", "h2c, websocket"), 101);
}

static void test_connection_header(void) {
    CHECK_EQ(status_with("Connection", "keep-alive, Upgrade"), 101);
    CHECK_EQ(status_with("Connection", "upgrade"), 101);
    CHECK_EQ(status_with("Connection", "keep-alive"), 400);
    CHECK_EQ(status_with("Connection", "Upgrades"), 400);
    CHECK_EQ(status_with("Connection", NULL), 400);

    /* The list split over two header lines (RFC 7230 3.2.2). */
    mw_request_t r = valid_request();
    mw_handshake_t out;
    del_header(&r, "Connection");
    add_header(&r, "Connection", "keep-alive");
    add_header(&r, "connection", "Upgrade");
    CHECK_EQ(check(&r, &out), 101);
    CHECK_STR(out.accept, sample_accept);

    /* Same for Upgrade. */
    r = valid_request();
    del_header(&r, "Upgrade");
    add_header(&r, "Upgrade", "h2c");
    add_header(&r, "UPGRADE", "websocket");
    CHECK_EQ(check(&r, &out), 101);
}

static void test_key(void) {
    CHECK_EQ(status_with("Sec-WebSocket-Key", NULL), 400);
    CHECK_EQ(status_with("Sec-WebSocket-Key", ""), 400);
    CHECK_EQ(status_with("Sec-WebSocket-Key", "not base64 at all!!!!!=="), 400);
    CHECK_EQ(status_with("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25j*Q=="), 400);
    /* base64 of 15 bytes: 20 characters, no padding */
    CHECK_EQ(status_with("Sec-WebSocket-Key", "AAECAwQFBgcICQoLDA0O"), 400);
    /* base64 of 17 bytes: 24 characters ending in a single "=" */
    CHECK_EQ(status_with("Sec-WebSocket-Key", "AAECAwQFBgcICQoLDA0ODxA="), 400);
    /* base64 of 18 bytes: 24 characters, no padding */
    CHECK_EQ(status_with("Sec-WebSocket-Key", "AAECAwQFBgcICQoLDA0ODxAR"), 400);
    /* 16 bytes but the unused low bits of the last symbol are not zero */
    CHECK_EQ(status_with("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZR=="), 400);
    CHECK_EQ(status_with("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZf=="), 400);
    /* padding in the wrong place */
    CHECK_EQ(status_with("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25j=Q=="), 400);
    /* too long */
    CHECK_EQ(status_with("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==dGhl"), 400);
    /* the 16 zero bytes and 16 0xFF bytes are fine */
    CHECK_EQ(status_with("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA=="), 101);
    CHECK_EQ(status_with("Sec-WebSocket-Key", "/////////////////////w=="), 101);

    /* Surrounding whitespace is ignored, for validation and the accept value. */
    mw_request_t r = valid_request();
    mw_handshake_t out;
    set_header(&r, "Sec-WebSocket-Key", "  dGhlIHNhbXBsZSBub25jZQ==\t ");
    CHECK_EQ(check(&r, &out), 101);
    CHECK_STR(out.accept, sample_accept);
}

static void test_version(void) {
    CHECK_EQ(status_with("Sec-WebSocket-Version", NULL), 426);
    CHECK_EQ(status_with("Sec-WebSocket-Version", "8"), 426);
    CHECK_EQ(status_with("Sec-WebSocket-Version", "13, 8"), 426);
    CHECK_EQ(status_with("Sec-WebSocket-Version", "130"), 426);
    CHECK_EQ(status_with("Sec-WebSocket-Version", ""), 426);
    CHECK_EQ(status_with("Sec-WebSocket-Version", " 13 "), 101);
}

static void test_checks_run_in_rfc_order(void) {
    /* Several things wrong: the status names the first in 4.2.1 order. */
    mw_request_t r = valid_request();
    mw_handshake_t out;
    r.method = "POST";
    r.http_minor = 0;
    del_header(&r, "Host");
    CHECK_EQ(check(&r, &out), 405);
    r.method = "GET";
    del_header(&r, "Upgrade");
    CHECK_EQ(check(&r, &out), 400); /* HTTP/1.0 before the missing Upgrade */
    r.http_minor = 1;
    add_header(&r, "Host", "h");
    set_header(&r, "Sec-WebSocket-Version", "8");
    CHECK_EQ(check(&r, &out), 426); /* missing Upgrade */
    /* A refused request leaves no accept value and no subprotocol. */
    CHECK_STR(out.accept, "");
    CHECK(out.subprotocol == NULL);
}

static void test_subprotocol_choice(void) {
    char *server[] = {"b", "a"};
    mw_handshake_t out;
    mw_request_t r = valid_request();

    add_header(&r, "Sec-WebSocket-Protocol", "a, b");
    CHECK_EQ(mw_handshake_check(&r, server, 2, &out), 101);
    CHECK(out.subprotocol == server[0]); /* the server's preference wins */

    set_header(&r, "Sec-WebSocket-Protocol", "a");
    CHECK_EQ(mw_handshake_check(&r, server, 2, &out), 101);
    CHECK(out.subprotocol == server[1]);

    set_header(&r, "Sec-WebSocket-Protocol", "c");
    CHECK_EQ(mw_handshake_check(&r, server, 2, &out), 101);
    CHECK(out.subprotocol == NULL);

    set_header(&r, "Sec-WebSocket-Protocol", "ab, ba");
    CHECK_EQ(mw_handshake_check(&r, server, 2, &out), 101);
    CHECK(out.subprotocol == NULL);

    /* Offers over two header lines. */
    set_header(&r, "Sec-WebSocket-Protocol", "c");
    add_header(&r, "sec-websocket-protocol", "x, a");
    CHECK_EQ(mw_handshake_check(&r, server, 2, &out), 101);
    CHECK(out.subprotocol == server[1]);

    /* The server speaks none: never pick one. */
    CHECK_EQ(mw_handshake_check(&r, NULL, 0, &out), 101);
    CHECK(out.subprotocol == NULL);
    CHECK_EQ(mw_handshake_check(&r, server, 0, &out), 101);
    CHECK(out.subprotocol == NULL);

    /* The client offers none. */
    r = valid_request();
    CHECK_EQ(mw_handshake_check(&r, server, 2, &out), 101);
    CHECK(out.subprotocol == NULL);
}

static void test_token_list_has(void) {
    CHECK_EQ(mw_token_list_has("Upgrade", "upgrade"), 1);
    CHECK_EQ(mw_token_list_has("keep-alive, Upgrade", "upgrade"), 1);
    CHECK_EQ(mw_token_list_has("keep-alive,Upgrade", "upgrade"), 1);
    CHECK_EQ(mw_token_list_has("Upgrade, keep-alive", "upgrade"), 1);
    CHECK_EQ(mw_token_list_has("  Upgrade\t ,keep-alive", "upgrade"), 1);
    CHECK_EQ(mw_token_list_has("a ,\tb\t", "b"), 1);
    CHECK_EQ(mw_token_list_has(",,upgrade,,", "upgrade"), 1);
    CHECK_EQ(mw_token_list_has("", "upgrade"), 0);
    CHECK_EQ(mw_token_list_has(" , ,", "upgrade"), 0);
    CHECK_EQ(mw_token_list_has("upgrades", "upgrade"), 0);
    CHECK_EQ(mw_token_list_has("xupgrade", "upgrade"), 0);
    CHECK_EQ(mw_token_list_has("upgrad", "upgrade"), 0);
    CHECK_EQ(mw_token_list_has("up grade", "upgrade"), 0);
    CHECK_EQ(mw_token_list_has("keep-alive", "upgrade"), 0);
    CHECK_EQ(mw_token_list_has("upgrade;q=1", "upgrade"), 0);
}

/* ---- the client side ------------------------------------------------------ */

static void test_client_key(void) {
    char a[32], b[32];
    REQUIRE(mw_handshake_client_key(a, sizeof a) == 0);
    REQUIRE(mw_handshake_client_key(b, sizeof b) == 0);
    CHECK_EQ(strlen(a), 24);
    CHECK(strcmp(a, b) != 0); /* fresh randomness each time */
    /* The server side accepts it: base64 of exactly 16 bytes. */
    mw_request_t r = valid_request();
    set_header(&r, "Sec-WebSocket-Key", a);
    mw_handshake_t out;
    CHECK_EQ(mw_handshake_check(&r, NULL, 0, &out), 101);
    CHECK_EQ(mw_handshake_client_key(a, 24), MW_EINVAL);
}

static void test_client_request(void) {
    char *req = NULL, err[128];
    size_t len = 0;
    mw_handshake_header_t h[] = {{"Authorization", "Bearer x"}, {"X-Trace", "a b\tc"}};
    REQUIRE(mw_handshake_client_request("example.com:8080", "/chat?room=1", sample_key,
                                        "chat, superchat", h, 2, &req, &len, err, sizeof err) == 0);
    CHECK_EQ(len, strlen(req));
    CHECK_STR(req, "GET /chat?room=1 HTTP/1.1\r\n"
                   "Host: example.com:8080\r\n"
                   "Upgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Protocol: chat, superchat\r\n"
                   "Authorization: Bearer x\r\n"
                   "X-Trace: a b\tc\r\n"
                   "\r\n");
    free(req);
    REQUIRE(mw_handshake_client_request("h", "", sample_key, NULL, NULL, 0, &req, &len, err,
                                        sizeof err) == 0);
    CHECK(strncmp(req, "GET / HTTP/1.1\r\nHost: h\r\n", 25) == 0);
    CHECK(strstr(req, "Sec-WebSocket-Protocol") == NULL);
    free(req);

    /* What would smuggle a header, or break the request, is refused. */
    mw_handshake_header_t crlf[] = {{"X-Evil", "a\r\nInjected: 1"}};
    CHECK_EQ(mw_handshake_client_request("h", "/", sample_key, NULL, crlf, 1, &req, &len, err,
                                         sizeof err),
             MW_EINVAL);
    CHECK(strstr(err, "control character") != NULL);
    mw_handshake_header_t badname[] = {{"X Evil", "a"}};
    CHECK_EQ(mw_handshake_client_request("h", "/", sample_key, NULL, badname, 1, &req, &len, err,
                                         sizeof err),
             MW_EINVAL);
    mw_handshake_header_t reserved[] = {{"sec-websocket-key", "a"}};
    CHECK_EQ(mw_handshake_client_request("h", "/", sample_key, NULL, reserved, 1, &req, &len, err,
                                         sizeof err),
             MW_EINVAL);
    CHECK(strstr(err, "set by the handshake") != NULL);
    CHECK_EQ(mw_handshake_client_request("h", "/a b", sample_key, NULL, NULL, 0, &req, &len, err,
                                         sizeof err),
             MW_EINVAL);
    CHECK_EQ(mw_handshake_client_request("h\r\nX: y", "/", sample_key, NULL, NULL, 0, &req, &len,
                                         err, sizeof err),
             MW_EINVAL);
}

/* check_reply runs the client's check on a response head. */
static int check_reply(const char *head, const char *protocols, mw_handshake_reply_t *out) {
    return mw_handshake_client_check(head, strlen(head), sample_key, protocols, out);
}

static void test_client_check(void) {
    mw_handshake_reply_t out;
    /* RFC 6455 section 1.3's example. */
    CHECK_EQ(check_reply("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\n"
                         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                         NULL, &out),
             0);
    CHECK_EQ(out.status, 101);
    CHECK_STR(out.protocol, "");
    /* Case and token lists do not matter. */
    CHECK_EQ(check_reply("HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\n"
                         "connection: keep-alive, upgrade\r\n"
                         "sec-websocket-accept:  s3pPLMBiTxaQ9kYGzzhZRbK+xOo= \r\n\r\n",
                         NULL, &out),
             0);
    /* A subprotocol that was offered. */
    CHECK_EQ(check_reply("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                         "Sec-WebSocket-Protocol: superchat\r\n\r\n",
                         "chat, superchat", &out),
             0);
    CHECK_STR(out.protocol, "superchat");
}

static void test_client_check_refusals(void) {
    static const struct {
        const char *head, *protocols, *reason;
    } cases[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", NULL, "200 instead of 101"},
        {"HTTP/1.1 403 Forbidden\r\n\r\n", NULL, "403 instead of 101"},
        {"SSH-2.0-OpenSSH\r\n\r\n", NULL, "not HTTP"},
        {"HTTP/1.1 101 OK\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
         NULL, "Upgrade header"},
        {"HTTP/1.1 101 OK\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
         NULL, "Upgrade header"},
        {"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n"
         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
         NULL, "Connection header"},
        {"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", NULL,
         "no Sec-WebSocket-Accept"},
        {"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
         NULL, "does not match the key"},
        {"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
         "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
         NULL, "extension that was not offered"},
        {"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
         "Sec-WebSocket-Protocol: other\r\n\r\n",
         "chat", "was not offered"},
        {"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
         "Sec-WebSocket-Protocol: chat\r\n\r\n",
         NULL, "was not offered"},
        {"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
         "Sec-WebSocket-Protocol: chat, superchat\r\n\r\n",
         "chat, superchat", "more than one subprotocol"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mw_handshake_reply_t out;
        CHECK_EQ(check_reply(cases[i].head, cases[i].protocols, &out), MW_EHTTP);
        if (!strstr(out.reason, cases[i].reason)) {
            test_fail_at(__FILE__, __LINE__);
            fprintf(stderr, "case %zu: reason \"%s\" lacks \"%s\"\n", i, out.reason,
                    cases[i].reason);
        }
    }
}

int main(void) {
    RUN(test_valid_request_is_accepted);
    RUN(test_accept_value);
    RUN(test_method_and_version);
    RUN(test_host);
    RUN(test_upgrade_header);
    RUN(test_connection_header);
    RUN(test_key);
    RUN(test_version);
    RUN(test_checks_run_in_rfc_order);
    RUN(test_subprotocol_choice);
    RUN(test_token_list_has);
    RUN(test_client_key);
    RUN(test_client_request);
    RUN(test_client_check);
    RUN(test_client_check_refusals);
    return test_summary();
}
