/*
 * test_apikey.c - `Authorization: apikey KEY` (src/apikey.c): no key
 * configured lets everything through; with one, only the scheme (any
 * case) and exactly that key pass: not a prefix of it, not a longer text,
 * not another scheme, not a missing header.
 */
#include "apikey.h"
#include "test.h"

static void test_no_key_configured(void) {
    CHECK(mw_apikey_ok(NULL, NULL));
    CHECK(mw_apikey_ok("", NULL));
    CHECK(mw_apikey_ok("", "Bearer x"));
}

static void test_the_key_passes(void) {
    CHECK(mw_apikey_ok("s3cret", "apikey s3cret"));
    CHECK(mw_apikey_ok("s3cret", "ApiKey s3cret"));
    CHECK(mw_apikey_ok("s3cret", "APIKEY   s3cret"));
}

static void test_anything_else_fails(void) {
    CHECK(!mw_apikey_ok("s3cret", NULL));
    CHECK(!mw_apikey_ok("s3cret", ""));
    CHECK(!mw_apikey_ok("s3cret", "apikey"));
    CHECK(!mw_apikey_ok("s3cret", "apikey "));
    CHECK(!mw_apikey_ok("s3cret", "apikey s3cre"));
    CHECK(!mw_apikey_ok("s3cret", "apikey s3cret "));
    CHECK(!mw_apikey_ok("s3cret", "apikey s3cretx"));
    CHECK(!mw_apikey_ok("s3cret", "apikey S3CRET"));
    CHECK(!mw_apikey_ok("s3cret", "Bearer s3cret"));
    CHECK(!mw_apikey_ok("s3cret", "apikeys3cret"));
    CHECK(!mw_apikey_ok("s3cret", "s3cret"));
}

/* The configured key's digest is cached: a changed key (api_key is live)
 * must be the one checked from the next request on. */
static void test_a_changed_key_is_checked(void) {
    CHECK(mw_apikey_ok("one", "apikey one"));
    CHECK(!mw_apikey_ok("two", "apikey one"));
    CHECK(mw_apikey_ok("two", "apikey two"));
    CHECK(!mw_apikey_ok("one", "apikey two"));
    CHECK(mw_apikey_ok("one", "apikey one"));
    CHECK(!mw_apikey_ok("onex", "apikey one"));
    CHECK(mw_apikey_ok("onex", "apikey onex"));
}

int main(void) {
    RUN(test_no_key_configured);
    RUN(test_the_key_passes);
    RUN(test_anything_else_fails);
    RUN(test_a_changed_key_is_checked);
    return test_summary();
}
