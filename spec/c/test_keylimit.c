/*
 * test_keylimit.c - rate limits per key (src/keylimit.c): each key has its
 * own limit, refusals say when to retry, idle keys are forgotten as the
 * table is used, and a table full of counting keys stays bounded by
 * forgetting the least recently used one.
 */
#include "errors.h"
#include "keylimit.h"
#include "test.h"

#include <stdio.h>
#include <string.h>

#define S(x) x, strlen(x)

static void test_each_key_has_its_own_limit(void) {
    mw_keylimit_t *t;
    REQUIRE(mw_keylimit_create(&t, 1000, 3, 100) == 0);
    uint64_t now = 10000000;
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(mw_keylimit_take(t, S("alice"), now, NULL), 0);
    }
    CHECK_EQ(mw_keylimit_take(t, S("alice"), now, NULL), MW_ERATE);
    /* bob is not affected by alice */
    CHECK_EQ(mw_keylimit_take(t, S("bob"), now, NULL), 0);
    /* the empty key and keys with NUL bytes are keys like any other */
    CHECK_EQ(mw_keylimit_take(t, "", 0, now, NULL), 0);
    CHECK_EQ(mw_keylimit_take(t, "a\0b", 3, now, NULL), 0);
    CHECK_EQ(mw_keylimit_take(t, "a\0c", 3, now, NULL), 0);
    CHECK_EQ(mw_keylimit_size(t), 5);
    mw_keylimit_free(t);
}

static void test_refusal_tells_when_to_retry(void) {
    mw_keylimit_t *t;
    REQUIRE(mw_keylimit_create(&t, 1000, 2, 10) == 0); /* one per 500 ms sustained */
    uint64_t now = 5000000, retry = 0;
    CHECK_EQ(mw_keylimit_take(t, S("k"), now, &retry), 0);
    CHECK_EQ(mw_keylimit_take(t, S("k"), now, &retry), 0);
    CHECK_EQ(mw_keylimit_take(t, S("k"), now, &retry), MW_ERATE);
    CHECK_EQ(retry, 500000);
    CHECK_EQ(mw_keylimit_take(t, S("k"), now + 200000, &retry), MW_ERATE);
    CHECK_EQ(retry, 300000);
    /* refusals counted nothing: allowed exactly when it said */
    CHECK_EQ(mw_keylimit_take(t, S("k"), now + 499999, NULL), MW_ERATE);
    CHECK_EQ(mw_keylimit_take(t, S("k"), now + 500000, NULL), 0);
    mw_keylimit_free(t);
}

static void test_bad_arguments(void) {
    mw_keylimit_t *t = NULL;
    CHECK_EQ(mw_keylimit_create(&t, 0, 1, 1), MW_EINVAL);
    CHECK_EQ(mw_keylimit_create(&t, 1, 0, 1), MW_EINVAL);
    CHECK_EQ(mw_keylimit_create(&t, 1, 1, 0), MW_EINVAL);
    REQUIRE(mw_keylimit_create(&t, 1000, 1, 10) == 0);
    static char big[MW_KEYLIMIT_KEY_MAX + 1];
    memset(big, 'x', sizeof big);
    CHECK_EQ(mw_keylimit_take(t, big, sizeof big, 1, NULL), MW_EINVAL);
    CHECK_EQ(mw_keylimit_take(t, big, sizeof big - 1, 1, NULL), 0);
    CHECK_EQ(mw_keylimit_size(t), 1);
    mw_keylimit_free(t);
}

static void test_idle_keys_are_forgotten_as_it_is_used(void) {
    mw_keylimit_t *t;
    REQUIRE(mw_keylimit_create(&t, 1000, 1, 1000) == 0);
    char key[32];
    uint64_t now = 1000000;
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "user-%d", i);
        CHECK_EQ(mw_keylimit_take(t, S(key), now, NULL), 0);
    }
    CHECK_EQ(mw_keylimit_size(t), 100);
    /* A window later every key is idle: each take forgets a few of them,
     * while taking the same key again and again. */
    now += 1000000;
    for (int i = 0; i < 60; i++)
        mw_keylimit_take(t, S("steady"), now + (uint64_t)i * 1000000, NULL);
    CHECK_EQ(mw_keylimit_size(t), 1); /* only "steady" */
    CHECK_EQ(mw_keylimit_evicted(t), 0);
    mw_keylimit_free(t);
}

static void test_sweep(void) {
    mw_keylimit_t *t;
    REQUIRE(mw_keylimit_create(&t, 1000, 1, 1000) == 0);
    CHECK_EQ(mw_keylimit_take(t, S("old"), 1000000, NULL), 0);
    CHECK_EQ(mw_keylimit_take(t, S("new"), 1900000, NULL), 0);
    CHECK_EQ(mw_keylimit_sweep(t, 1950000), 2);
    CHECK_EQ(mw_keylimit_sweep(t, 2000000), 1);                       /* old is full again */
    CHECK_EQ(mw_keylimit_take(t, S("new"), 2000000, NULL), MW_ERATE); /* new still counts */
    CHECK_EQ(mw_keylimit_sweep(t, 2900000), 0);
    mw_keylimit_free(t);
}

static void test_full_table_forgets_the_least_recently_used(void) {
    mw_keylimit_t *t;
    REQUIRE(mw_keylimit_create(&t, 60000, 1, 3) == 0); /* 1 a minute, 3 keys */
    uint64_t now = 1000000;
    CHECK_EQ(mw_keylimit_take(t, S("a"), now, NULL), 0);
    CHECK_EQ(mw_keylimit_take(t, S("b"), now, NULL), 0);
    CHECK_EQ(mw_keylimit_take(t, S("c"), now, NULL), 0);
    CHECK_EQ(mw_keylimit_take(t, S("a"), now, NULL), MW_ERATE); /* a is now the most recent */
    CHECK_EQ(mw_keylimit_take(t, S("d"), now, NULL), 0);        /* b goes */
    CHECK_EQ(mw_keylimit_size(t), 3);
    CHECK_EQ(mw_keylimit_evicted(t), 1);
    CHECK_EQ(mw_keylimit_take(t, S("a"), now, NULL), MW_ERATE); /* a kept its count */
    CHECK_EQ(mw_keylimit_take(t, S("c"), now, NULL), MW_ERATE);
    CHECK_EQ(mw_keylimit_take(t, S("b"), now, NULL), 0); /* b starts over; d goes */
    CHECK_EQ(mw_keylimit_evicted(t), 2);
    CHECK_EQ(mw_keylimit_size(t), 3);
    mw_keylimit_free(t);
}

static void test_many_keys(void) {
    mw_keylimit_t *t;
    REQUIRE(mw_keylimit_create(&t, 1000, 1, 50000) == 0);
    char key[32];
    int allowed = 0;
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof key, "%d", i);
        allowed += mw_keylimit_take(t, S(key), 1000, NULL) == 0;
    }
    CHECK_EQ(allowed, 20000);
    CHECK_EQ(mw_keylimit_size(t), 20000);
    int refused = 0;
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof key, "%d", i);
        refused += mw_keylimit_take(t, S(key), 1000, NULL) == MW_ERATE;
    }
    CHECK_EQ(refused, 20000);
    mw_keylimit_free(t);
}

int main(void) {
    RUN(test_each_key_has_its_own_limit);
    RUN(test_refusal_tells_when_to_retry);
    RUN(test_bad_arguments);
    RUN(test_idle_keys_are_forgotten_as_it_is_used);
    RUN(test_sweep);
    RUN(test_full_table_forgets_the_least_recently_used);
    RUN(test_many_keys);
    return test_summary();
}
