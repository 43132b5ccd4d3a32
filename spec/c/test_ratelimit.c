/*
 * test_ratelimit.c - GCRA cells (src/ratelimit.c) and the per-address
 * table (src/iptable.c): bursts up to the limit, the sustained rate,
 * refusals that cost nothing, open-connection caps, and sweeping.
 */
#include "errors.h"
#include "iptable.h"
#include "ratelimit.h"
#include "test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static void test_burst_then_sustained_rate(void) {
    mw_rate_t r;
    mw_rate_init(&r, 1000, 10); /* 10 per second */
    CHECK(mw_rate_enabled(&r));
    uint64_t tat = 0, t = 5000000;
    int allowed = 0;
    for (int i = 0; i < 20; i++)
        allowed += mw_rate_take(&r, &tat, t);
    CHECK_EQ(allowed, 10); /* the whole window's worth at once, no more */
    /* One more every 100 ms from then on. */
    CHECK_EQ(mw_rate_take(&r, &tat, t + 99999), 0);
    CHECK_EQ(mw_rate_take(&r, &tat, t + 100000), 1);
    CHECK_EQ(mw_rate_take(&r, &tat, t + 100000), 0);
    /* After a whole quiet window the full burst is back. */
    allowed = 0;
    for (int i = 0; i < 20; i++)
        allowed += mw_rate_take(&r, &tat, t + 1200000);
    CHECK_EQ(allowed, 10);
}

static void test_refusals_do_not_push_the_limit_further(void) {
    mw_rate_t r;
    mw_rate_init(&r, 1000, 1);
    uint64_t tat = 0;
    CHECK_EQ(mw_rate_take(&r, &tat, 1000000), 1);
    uint64_t before = tat;
    for (int i = 0; i < 1000; i++)
        CHECK_EQ(mw_rate_take(&r, &tat, 1000000 + (uint64_t)i), 0);
    CHECK_EQ(tat, before);
    CHECK_EQ(mw_rate_take(&r, &tat, 2000000), 1); /* one window after the first */
}

static void test_zero_means_unlimited(void) {
    mw_rate_t r;
    mw_rate_init(&r, 1000, 0);
    CHECK(!mw_rate_enabled(&r));
    uint64_t tat = 0;
    for (int i = 0; i < 100000; i++)
        REQUIRE(mw_rate_take(&r, &tat, 1));
    mw_rate_init(&r, 1, 1000000); /* faster than 1 per µs: effectively unlimited */
    CHECK(mw_rate_enabled(&r));
}

static void test_idle(void) {
    mw_rate_t r;
    mw_rate_init(&r, 1000, 2);
    uint64_t tat = 0;
    CHECK(mw_rate_idle(tat, 0));
    mw_rate_take(&r, &tat, 10000000);
    CHECK(!mw_rate_idle(tat, 10000000));
    CHECK(mw_rate_idle(tat, 10000000 + 500000));
}

static mw_ipkey_t v4(const char *s) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    inet_pton(AF_INET, s, &a.sin_addr);
    mw_ipkey_t k;
    mw_ipkey_from_sockaddr((const struct sockaddr *)&a, &k);
    return k;
}

static void test_keys(void) {
    mw_ipkey_t a = v4("10.0.0.1");
    struct sockaddr_in6 b;
    memset(&b, 0, sizeof b);
    b.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "::ffff:10.0.0.1", &b.sin6_addr);
    mw_ipkey_t k;
    CHECK_EQ(mw_ipkey_from_sockaddr((const struct sockaddr *)&b, &k), 0);
    CHECK(memcmp(a.b, k.b, 16) == 0); /* IPv4 and its mapped form are one address */
    struct sockaddr un = {.sa_family = AF_UNIX};
    CHECK_EQ(mw_ipkey_from_sockaddr(&un, &k), MW_EINVAL);
}

static void test_open_cap_and_release(void) {
    mw_iptable_t *t;
    REQUIRE(mw_iptable_create(&t) == 0);
    mw_rate_t none;
    mw_rate_init(&none, 1000, 0);
    mw_ipkey_t a = v4("192.0.2.1"), b = v4("192.0.2.2");
    CHECK_EQ(mw_iptable_admit(t, &a, 1, &none, 2), 0);
    CHECK_EQ(mw_iptable_admit(t, &a, 1, &none, 2), 0);
    CHECK_EQ(mw_iptable_admit(t, &a, 1, &none, 2), MW_EBUSY);
    CHECK_EQ(mw_iptable_admit(t, &b, 1, &none, 2), 0); /* others are not affected */
    CHECK_EQ(mw_iptable_open(t, &a), 2);
    mw_iptable_release(t, &a);
    CHECK_EQ(mw_iptable_admit(t, &a, 1, &none, 2), 0);
    CHECK_EQ(mw_iptable_admit(t, &a, 1, &none, 0), 0); /* 0: no cap */
    mw_iptable_free(t);
}

static void test_connection_rate_survives_disconnects(void) {
    mw_iptable_t *t;
    REQUIRE(mw_iptable_create(&t) == 0);
    mw_rate_t r;
    mw_rate_init(&r, 1000, 3);
    mw_ipkey_t a = v4("198.51.100.7");
    uint64_t now = 1000000000;
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(mw_iptable_admit(t, &a, now, &r, 0), 0);
        mw_iptable_release(t, &a); /* connect, disconnect, connect... */
    }
    CHECK_EQ(mw_iptable_sweep(t, now), 1); /* the rate cell keeps the entry */
    CHECK_EQ(mw_iptable_admit(t, &a, now, &r, 0), MW_ERATE);
    CHECK_EQ(mw_iptable_sweep(t, now + 1000000), 0); /* a quiet second later: forgotten */
    CHECK_EQ(mw_iptable_admit(t, &a, now + 1000000, &r, 0), 0);
    mw_iptable_free(t);
}

static void test_many_addresses(void) {
    mw_iptable_t *t;
    REQUIRE(mw_iptable_create(&t) == 0);
    mw_rate_t none;
    mw_rate_init(&none, 1000, 0);
    for (uint32_t i = 0; i < 5000; i++) {
        mw_ipkey_t k;
        memset(&k, 0, sizeof k);
        memcpy(k.b + 12, &i, 4);
        REQUIRE(mw_iptable_admit(t, &k, 1, &none, 1) == 0);
    }
    for (uint32_t i = 0; i < 5000; i++) {
        mw_ipkey_t k;
        memset(&k, 0, sizeof k);
        memcpy(k.b + 12, &i, 4);
        CHECK_EQ(mw_iptable_open(t, &k), 1);
        mw_iptable_release(t, &k);
    }
    CHECK_EQ(mw_iptable_sweep(t, 2), 0);
    mw_iptable_free(t);
}

int main(void) {
    RUN(test_burst_then_sustained_rate);
    RUN(test_refusals_do_not_push_the_limit_further);
    RUN(test_zero_means_unlimited);
    RUN(test_idle);
    RUN(test_keys);
    RUN(test_open_cap_and_release);
    RUN(test_connection_rate_survives_disconnects);
    RUN(test_many_addresses);
    return test_summary();
}
