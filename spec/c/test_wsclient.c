/*
 * test_wsclient.c - the URL rules of the WebSocket client (src/wsclient.c):
 * what mw_wsclient_parse_url accepts, the Host header and request target
 * it derives, and what it refuses. The connection itself is exercised on
 * the real binary (spec/integration/test_wsclient.py).
 */
#include "errors.h"
#include "test.h"
#include "wsclient.h"

static void test_parse_ok(void) {
    mw_wsurl_t u;
    char err[200];
    REQUIRE(mw_wsclient_parse_url("ws://example.com/chat?room=1", &u, err, sizeof err) == 0);
    CHECK_EQ(u.tls, 0);
    CHECK_EQ(u.port, 80);
    CHECK_STR(u.host, "example.com");
    CHECK_STR(u.host_header, "example.com");
    CHECK_STR(u.target, "/chat?room=1");

    REQUIRE(mw_wsclient_parse_url("wss://example.com", &u, err, sizeof err) == 0);
    CHECK_EQ(u.tls, 1);
    CHECK_EQ(u.port, 443);
    CHECK_STR(u.target, "/");

    REQUIRE(mw_wsclient_parse_url("WSS://127.0.0.1:8443/x", &u, err, sizeof err) == 0);
    CHECK_EQ(u.tls, 1);
    CHECK_EQ(u.port, 8443);
    CHECK_STR(u.host_header, "127.0.0.1:8443");

    REQUIRE(mw_wsclient_parse_url("ws://[::1]:9000/?a=b", &u, err, sizeof err) == 0);
    CHECK_STR(u.host, "::1");
    CHECK_STR(u.host_header, "[::1]:9000");
    CHECK_STR(u.target, "/?a=b");

    REQUIRE(mw_wsclient_parse_url("ws://[::1]:80/", &u, err, sizeof err) == 0);
    CHECK_STR(u.host_header, "[::1]"); /* the scheme's port is left out */
}

static void test_parse_refused(void) {
    static const struct {
        const char *url, *why;
    } cases[] = {
        {"", "not a ws"},
        {"example.com", "not a ws"},
        {"http://example.com/", "scheme must be ws or wss"},
        {"wsx://example.com/", "scheme must be ws or wss"},
        {"ws://user:pw@example.com/", "user or password"},
        {"ws://example.com/#frag", "no fragment"},
        {"ws://example.com:0/", "port"},
        {"ws:///path", "not a ws"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mw_wsurl_t u;
        char err[200] = "";
        CHECK_EQ(mw_wsclient_parse_url(cases[i].url, &u, err, sizeof err), MW_EINVAL);
        if (!strstr(err, cases[i].why)) {
            test_fail_at(__FILE__, __LINE__);
            fprintf(stderr, "%s: \"%s\" lacks \"%s\"\n", cases[i].url, err, cases[i].why);
        }
    }
}

int main(void) {
    RUN(test_parse_ok);
    RUN(test_parse_refused);
    return test_summary();
}
