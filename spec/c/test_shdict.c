/*
 * test_shdict.c - shared dicts (src/shdict.c): every operation, expiry on
 * the passed clock, LRU eviction and the safe variants, a full zone, and
 * the process-shared lock across real fork()s: counts from two processes
 * add up, and a process killed while holding the lock does not wedge the
 * others. Zones on a memfd: the same zone mapped twice at different
 * addresses (links are offsets), and attached by an exec'd child (this
 * binary run again with "attach-incr FD N" or "attach-hold FD": the
 * workers' case).
 */
#include "errors.h"
#include "shdict.h"
#include "test.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define S(x) x, strlen(x)

static mw_shdict_value_t str(const char *s) {
    return (mw_shdict_value_t){.type = MW_SHDICT_STRING, .str = s, .len = strlen(s)};
}

static mw_shdict_value_t num(double n) {
    return (mw_shdict_value_t){.type = MW_SHDICT_NUMBER, .number = n};
}

/* get reads key at now into *v (a string stays valid until the next get). */
static int get(mw_shdict_t *d, const char *key, uint64_t now, mw_shdict_value_t *v) {
    static char *buf;
    static size_t cap;
    return mw_shdict_get(d, key, strlen(key), now, v, &buf, &cap);
}

static void test_get_set_types(void) {
    mw_shdict_t *d;
    REQUIRE(mw_shdict_create(&d, "t", 64 * 1024) == 0);
    CHECK_STR(mw_shdict_name(d), "t");
    mw_shdict_value_t v = str("hello"), out;
    v.flags = 7;
    CHECK_EQ(mw_shdict_set(d, S("s"), &v, 0, 1000, MW_SHDICT_SET, NULL), 0);
    v = num(3.5);
    CHECK_EQ(mw_shdict_set(d, S("n"), &v, 0, 1000, MW_SHDICT_SET, NULL), 0);
    v = (mw_shdict_value_t){.type = MW_SHDICT_BOOLEAN, .boolean = 1};
    CHECK_EQ(mw_shdict_set(d, S("b"), &v, 0, 1000, MW_SHDICT_SET, NULL), 0);
    v = (mw_shdict_value_t){.type = MW_SHDICT_BOOLEAN, .boolean = 0};
    CHECK_EQ(mw_shdict_set(d, S("f"), &v, 0, 1000, MW_SHDICT_SET, NULL), 0);
    v = str("");
    CHECK_EQ(mw_shdict_set(d, S(""), &v, 0, 1000, MW_SHDICT_SET, NULL), 0); /* the empty key */

    REQUIRE(get(d, "s", 1000, &out) == 0);
    CHECK_EQ(out.type, MW_SHDICT_STRING);
    CHECK_MEM(out.str, out.len, "hello", 5);
    CHECK_EQ(out.flags, 7);
    REQUIRE(get(d, "n", 1000, &out) == 0);
    CHECK_EQ(out.type, MW_SHDICT_NUMBER);
    CHECK(out.number == 3.5);
    REQUIRE(get(d, "b", 1000, &out) == 0);
    CHECK(out.type == MW_SHDICT_BOOLEAN && out.boolean == 1);
    REQUIRE(get(d, "f", 1000, &out) == 0);
    CHECK(out.type == MW_SHDICT_BOOLEAN && out.boolean == 0);
    REQUIRE(get(d, "", 1000, &out) == 0);
    CHECK_EQ(out.len, 0);
    CHECK_EQ(get(d, "missing", 1000, &out), MW_ENOTFOUND);

    /* a longer value replaces a shorter one and back */
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    v = str(big);
    CHECK_EQ(mw_shdict_set(d, S("s"), &v, 0, 1000, MW_SHDICT_SET, NULL), 0);
    REQUIRE(get(d, "s", 1000, &out) == 0);
    CHECK_MEM(out.str, out.len, big, strlen(big));
    v = str("hi");
    CHECK_EQ(mw_shdict_set(d, S("s"), &v, 0, 1000, MW_SHDICT_SET, NULL), 0);
    REQUIRE(get(d, "s", 1000, &out) == 0);
    CHECK_MEM(out.str, out.len, "hi", 2);

    /* a set of nil deletes; delete of an absent key is fine */
    v = (mw_shdict_value_t){.type = MW_SHDICT_NIL};
    CHECK_EQ(mw_shdict_set(d, S("n"), &v, 0, 1000, MW_SHDICT_SET, NULL), 0);
    CHECK_EQ(get(d, "n", 1000, &out), MW_ENOTFOUND);
    CHECK_EQ(mw_shdict_delete(d, S("b")), 0);
    CHECK_EQ(mw_shdict_delete(d, S("b")), 0);
    CHECK_EQ(get(d, "b", 1000, &out), MW_ENOTFOUND);

    /* keys too long are refused */
    char longkey[MW_SHDICT_KEY_MAX + 2];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    CHECK_EQ(mw_shdict_set(d, S(longkey), &v, 0, 1000, MW_SHDICT_SET, NULL), MW_EINVAL);
    CHECK_EQ(get(d, longkey, 1000, &out), MW_EINVAL);
    mw_shdict_free(d);
}

static void test_add_replace(void) {
    mw_shdict_t *d;
    REQUIRE(mw_shdict_create(&d, "t", 64 * 1024) == 0);
    mw_shdict_value_t v = num(1), out;
    CHECK_EQ(mw_shdict_set(d, S("k"), &v, 0, 0, MW_SHDICT_REPLACE, NULL), MW_ENOTFOUND);
    CHECK_EQ(mw_shdict_set(d, S("k"), &v, 0, 0, MW_SHDICT_ADD, NULL), 0);
    v = num(2);
    CHECK_EQ(mw_shdict_set(d, S("k"), &v, 0, 0, MW_SHDICT_ADD, NULL), MW_EDUP);
    REQUIRE(get(d, "k", 0, &out) == 0);
    CHECK(out.number == 1);
    CHECK_EQ(mw_shdict_set(d, S("k"), &v, 0, 0, MW_SHDICT_REPLACE, NULL), 0);
    REQUIRE(get(d, "k", 0, &out) == 0);
    CHECK(out.number == 2);
    /* an expired key is absent for add and replace */
    CHECK_EQ(mw_shdict_set(d, S("e"), &v, 100, 0, MW_SHDICT_SET, NULL), 0);
    CHECK_EQ(mw_shdict_set(d, S("e"), &v, 0, 100, MW_SHDICT_REPLACE, NULL), MW_ENOTFOUND);
    CHECK_EQ(mw_shdict_set(d, S("e"), &v, 0, 100, MW_SHDICT_ADD, NULL), 0);
    mw_shdict_free(d);
}

static void test_incr(void) {
    mw_shdict_t *d;
    REQUIRE(mw_shdict_create(&d, "t", 64 * 1024) == 0);
    double out = 0, init = 10;
    CHECK_EQ(mw_shdict_incr(d, S("c"), 1, NULL, 0, 0, &out), MW_ENOTFOUND);
    CHECK_EQ(mw_shdict_incr(d, S("c"), 1, &init, 0, 0, &out), 0);
    CHECK(out == 11);
    CHECK_EQ(mw_shdict_incr(d, S("c"), -2.5, &init, 0, 0, &out), 0); /* init unused: exists */
    CHECK(out == 8.5);
    mw_shdict_value_t v = str("x");
    CHECK_EQ(mw_shdict_set(d, S("s"), &v, 0, 0, MW_SHDICT_SET, NULL), 0);
    CHECK_EQ(mw_shdict_incr(d, S("s"), 1, &init, 0, 0, &out), MW_EINVAL);
    /* init_ttl applies to a key incr creates; an existing key keeps its ttl */
    CHECK_EQ(mw_shdict_incr(d, S("t"), 1, &init, 500, 1000, &out), 0);
    uint64_t ttl;
    CHECK_EQ(mw_shdict_ttl(d, S("t"), 1200, &ttl), 0);
    CHECK_EQ(ttl, 300);
    CHECK_EQ(mw_shdict_incr(d, S("t"), 1, &init, 5000, 1300, &out), 0);
    CHECK(out == 12);
    CHECK_EQ(mw_shdict_ttl(d, S("t"), 1300, &ttl), 0);
    CHECK_EQ(ttl, 200);
    /* once expired, incr starts over from init */
    CHECK_EQ(mw_shdict_incr(d, S("t"), 1, NULL, 0, 1500, &out), MW_ENOTFOUND);
    CHECK_EQ(mw_shdict_incr(d, S("t"), 1, &init, 0, 1500, &out), 0);
    CHECK(out == 11);
    mw_shdict_free(d);
}

static void test_expiry(void) {
    mw_shdict_t *d;
    REQUIRE(mw_shdict_create(&d, "t", 64 * 1024) == 0);
    mw_shdict_value_t v = str("v"), out;
    uint64_t ttl = 99;
    CHECK_EQ(mw_shdict_set(d, S("k"), &v, 1000, 5000, MW_SHDICT_SET, NULL), 0);
    CHECK_EQ(mw_shdict_set(d, S("forever"), &v, 0, 5000, MW_SHDICT_SET, NULL), 0);
    CHECK_EQ(mw_shdict_ttl(d, S("k"), 5000, &ttl), 0);
    CHECK_EQ(ttl, 1000);
    CHECK_EQ(mw_shdict_ttl(d, S("forever"), 5000, &ttl), 0);
    CHECK_EQ(ttl, 0);
    CHECK_EQ(get(d, "k", 5999, &out), 0);
    mw_shdict_stats_t st;
    mw_shdict_stats(d, &st);
    CHECK_EQ(st.keys, 2);
    CHECK_EQ(get(d, "k", 6000, &out), MW_ENOTFOUND); /* dead on read, and reclaimed */
    mw_shdict_stats(d, &st);
    CHECK_EQ(st.keys, 1);
    CHECK_EQ(mw_shdict_ttl(d, S("k"), 6000, &ttl), MW_ENOTFOUND);
    CHECK_EQ(mw_shdict_expire(d, S("k"), 10, 6000), MW_ENOTFOUND);

    /* expire sets, extends and clears a key's ttl */
    CHECK_EQ(mw_shdict_expire(d, S("forever"), 100, 6000), 0);
    CHECK_EQ(mw_shdict_ttl(d, S("forever"), 6050, &ttl), 0);
    CHECK_EQ(ttl, 50);
    CHECK_EQ(mw_shdict_expire(d, S("forever"), 0, 6050), 0);
    CHECK_EQ(get(d, "forever", 1000000, &out), 0);

    /* flush_expired reclaims the dead ones only, up to max */
    for (int i = 0; i < 5; i++) {
        char key[16];
        snprintf(key, sizeof key, "e%d", i);
        CHECK_EQ(mw_shdict_set(d, S(key), &v, 10, 7000, MW_SHDICT_SET, NULL), 0);
    }
    size_t free_before = mw_shdict_free_space(d);
    CHECK_EQ(mw_shdict_flush_expired(d, 7005, 0), 0);
    CHECK_EQ(mw_shdict_flush_expired(d, 7010, 2), 2);
    CHECK_EQ(mw_shdict_flush_expired(d, 7010, 0), 3);
    CHECK(mw_shdict_free_space(d) > free_before);
    mw_shdict_stats(d, &st);
    CHECK_EQ(st.keys, 1);

    /* each write reclaims expired keys from the least recently used end */
    for (int i = 0; i < 3; i++) {
        char key[16];
        snprintf(key, sizeof key, "w%d", i);
        CHECK_EQ(mw_shdict_set(d, S(key), &v, 10, 8000, MW_SHDICT_SET, NULL), 0);
    }
    CHECK_EQ(get(d, "forever", 8000, &out), 0); /* forever is the most recent now */
    CHECK_EQ(mw_shdict_set(d, S("new"), &v, 0, 9000, MW_SHDICT_SET, NULL), 0);
    mw_shdict_stats(d, &st);
    CHECK_EQ(st.keys, 2);
    mw_shdict_free(d);
}

static void collect(void *ud, const char *key, size_t klen) {
    char *acc = ud;
    strncat(acc, key, klen);
    strcat(acc, ",");
}

static void test_keys_and_flush_all(void) {
    mw_shdict_t *d;
    REQUIRE(mw_shdict_create(&d, "t", 64 * 1024) == 0);
    mw_shdict_value_t v = num(1), out;
    CHECK_EQ(mw_shdict_set(d, S("a"), &v, 0, 0, MW_SHDICT_SET, NULL), 0);
    CHECK_EQ(mw_shdict_set(d, S("b"), &v, 10, 0, MW_SHDICT_SET, NULL), 0);
    CHECK_EQ(mw_shdict_set(d, S("c"), &v, 0, 0, MW_SHDICT_SET, NULL), 0);
    char acc[64] = "";
    CHECK_EQ(mw_shdict_keys(d, 5, 0, collect, acc), 3);
    CHECK_STR(acc, "c,b,a,"); /* most recently used first */
    acc[0] = '\0';
    CHECK_EQ(mw_shdict_keys(d, 20, 0, collect, acc), 2); /* b expired */
    CHECK_STR(acc, "c,a,");
    acc[0] = '\0';
    CHECK_EQ(mw_shdict_keys(d, 20, 1, collect, acc), 1);
    CHECK_STR(acc, "c,");
    size_t cap = mw_shdict_capacity(d);
    CHECK(cap > 60 * 1024 && cap < 64 * 1024);
    CHECK(mw_shdict_free_space(d) < cap);
    mw_shdict_flush_all(d);
    CHECK_EQ(mw_shdict_free_space(d), cap);
    CHECK_EQ(get(d, "a", 0, &out), MW_ENOTFOUND);
    mw_shdict_free(d);
}

/* fill_up stores 100-byte values under k0, k1, ... until the zone is full,
 * without eviction. Returns how many fit. */
static int fill_up(mw_shdict_t *d, uint64_t now) {
    char val[101];
    memset(val, 'v', 100);
    val[100] = '\0';
    mw_shdict_value_t v = str(val);
    int i = 0;
    for (;; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        int rc = mw_shdict_set(d, S(key), &v, 0, now, MW_SHDICT_SET | MW_SHDICT_SAFE, NULL);
        if (rc != 0) {
            CHECK_EQ(rc, MW_ENOMEM);
            return i;
        }
    }
}

static void test_eviction_lru_order(void) {
    mw_shdict_t *d;
    REQUIRE(mw_shdict_create(&d, "t", MW_SHDICT_MIN_SIZE) == 0);
    int n = fill_up(d, 0);
    CHECK(n > 50);
    mw_shdict_value_t out,
        v = str("new value of about the same size as the others, to evict one...."
                "...................................");
    /* touch k0: k1 becomes the least recently used */
    CHECK_EQ(get(d, "k0", 0, &out), 0);
    /* safe_set and safe_add fail rather than evict */
    CHECK_EQ(mw_shdict_set(d, S("x"), &v, 0, 0, MW_SHDICT_SET | MW_SHDICT_SAFE, NULL), MW_ENOMEM);
    CHECK_EQ(mw_shdict_set(d, S("x"), &v, 0, 0, MW_SHDICT_ADD | MW_SHDICT_SAFE, NULL), MW_ENOMEM);
    mw_shdict_stats_t st;
    mw_shdict_stats(d, &st);
    CHECK_EQ(st.evictions, 0);
    CHECK_EQ(st.keys, (size_t)n);
    /* set evicts the least recently used: k1, not k0 */
    int evicted = 0;
    CHECK_EQ(mw_shdict_set(d, S("x"), &v, 0, 0, MW_SHDICT_SET, &evicted), 0);
    CHECK_EQ(evicted, 1);
    CHECK_EQ(get(d, "k1", 0, &out), MW_ENOTFOUND);
    CHECK_EQ(get(d, "k0", 0, &out), 0);
    CHECK_EQ(get(d, "k2", 0, &out), 0);
    CHECK_EQ(get(d, "x", 0, &out), 0);
    mw_shdict_stats(d, &st);
    CHECK_EQ(st.evictions, 1);
    /* an expired key at the least recently used end is reclaimed first,
     * and that is not an eviction: k3 is the least recently used now */
    CHECK_EQ(mw_shdict_expire(d, S("k3"), 1, 0), 0);
    CHECK_EQ(mw_shdict_set(d, S("y"), &v, 0, 10, MW_SHDICT_SET, &evicted), 0);
    CHECK_EQ(evicted, 0);
    CHECK_EQ(get(d, "k3", 10, &out), MW_ENOTFOUND);
    CHECK_EQ(get(d, "k4", 10, &out), 0);
    mw_shdict_stats(d, &st);
    CHECK_EQ(st.evictions, 1);
    mw_shdict_free(d);
}

static void test_full_zone(void) {
    mw_shdict_t *d;
    REQUIRE(mw_shdict_create(&d, "t", MW_SHDICT_MIN_SIZE) == 0);
    size_t cap = mw_shdict_capacity(d);
    /* a value larger than the zone never fits */
    char *huge = malloc(cap + 1);
    REQUIRE(huge);
    memset(huge, 'h', cap);
    huge[cap] = '\0';
    mw_shdict_value_t v = str(huge), out;
    CHECK_EQ(mw_shdict_set(d, S("h"), &v, 0, 0, MW_SHDICT_SET, NULL), MW_ETOOBIG);
    /* one that takes most of the zone evicts everything else (in bounded
     * steps) and fits */
    int n = fill_up(d, 0);
    CHECK(n > 50);
    huge[cap / 2] = '\0';
    v = str(huge);
    int rc = mw_shdict_set(d, S("h"), &v, 0, 0, MW_SHDICT_SET, NULL);
    /* 30 evictions of ~200-byte items do not make room for cap/2 */
    CHECK_EQ(rc, MW_ENOMEM);
    mw_shdict_flush_all(d);
    CHECK_EQ(mw_shdict_set(d, S("h"), &v, 0, 0, MW_SHDICT_SET, NULL), 0);
    REQUIRE(get(d, "h", 0, &out) == 0);
    CHECK_EQ(out.len, cap / 2);
    /* safe replace keeps the old value when the new one does not fit */
    huge[cap / 2] = 'h';
    huge[cap * 3 / 4] = '\0';
    v = str(huge);
    CHECK_EQ(mw_shdict_set(d, S("h"), &v, 0, 0, MW_SHDICT_SET | MW_SHDICT_SAFE, NULL), MW_ENOMEM);
    REQUIRE(get(d, "h", 0, &out) == 0);
    CHECK_EQ(out.len, cap / 2);
    /* a plain set replaces it (its own room is given back first) */
    CHECK_EQ(mw_shdict_set(d, S("h"), &v, 0, 0, MW_SHDICT_SET, NULL), 0);
    REQUIRE(get(d, "h", 0, &out) == 0);
    CHECK_EQ(out.len, cap * 3 / 4);
    /* everything freed merges back into one block */
    CHECK_EQ(mw_shdict_delete(d, S("h")), 0);
    CHECK_EQ(mw_shdict_free_space(d), cap);
    huge[cap - 200] = '\0';
    v = str(huge);
    CHECK_EQ(mw_shdict_set(d, S("h"), &v, 0, 0, MW_SHDICT_SET | MW_SHDICT_SAFE, NULL), 0);
    free(huge);
    mw_shdict_free(d);
}

/* Random operations against the allocator: whatever the order, deleting
 * everything gives the whole arena back as free space. */
static void test_churn(void) {
    mw_shdict_t *d;
    REQUIRE(mw_shdict_create(&d, "t", 256 * 1024) == 0);
    srand(42);
    char val[2000];
    memset(val, 'z', sizeof val);
    for (int i = 0; i < 20000; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", rand() % 500);
        if (rand() % 4 == 0) {
            CHECK_EQ(mw_shdict_delete(d, S(key)), 0);
        } else {
            mw_shdict_value_t v = {
                .type = MW_SHDICT_STRING, .str = val, .len = (size_t)(rand() % 2000)};
            CHECK_EQ(mw_shdict_set(d, S(key), &v, (uint64_t)(rand() % 3) * 50, (uint64_t)i,
                                   MW_SHDICT_SET, NULL),
                     0);
        }
    }
    for (int i = 0; i < 500; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        mw_shdict_delete(d, S(key));
    }
    CHECK_EQ(mw_shdict_free_space(d), mw_shdict_capacity(d));
    mw_shdict_free(d);
}

static void test_parse_spec_and_set(void) {
    char name[MW_SHDICT_NAME_MAX + 1];
    size_t size = 0;
    CHECK(mw_shdict_parse_spec("cache:10m", name, &size) == NULL);
    CHECK_STR(name, "cache");
    CHECK_EQ(size, 10 * 1024 * 1024);
    CHECK(mw_shdict_parse_spec("a-b_1:64k", name, &size) == NULL);
    CHECK_EQ(size, 64 * 1024);
    CHECK(mw_shdict_parse_spec("x:1g", name, &size) == NULL);
    CHECK(mw_shdict_parse_spec("x:20000", name, &size) == NULL);
    CHECK_EQ(size, 20000);
    CHECK(mw_shdict_parse_spec("cache", name, &size) != NULL);
    CHECK(mw_shdict_parse_spec(":10m", name, &size) != NULL);
    CHECK(mw_shdict_parse_spec("ca che:10m", name, &size) != NULL);
    CHECK(mw_shdict_parse_spec("cache:10x", name, &size) != NULL);
    CHECK(mw_shdict_parse_spec("cache:1k", name, &size) != NULL); /* under 16k */
    CHECK(mw_shdict_parse_spec("cache:17g", name, &size) != NULL);
    CHECK(mw_shdict_parse_spec("cache:-1", name, &size) != NULL);
    CHECK(mw_shdict_parse_spec("cache:99999999999999999999", name, &size) != NULL);

    char *specs[] = {"a:16k", "b:32k"};
    mw_shdicts_t *set;
    REQUIRE(mw_shdicts_create(&set, specs, 2) == 0);
    CHECK(mw_shdicts_find(set, S("a")) == mw_shdicts_at(set, 0));
    CHECK(mw_shdicts_find(set, S("b")) == mw_shdicts_at(set, 1));
    CHECK(mw_shdicts_find(set, S("c")) == NULL);
    CHECK(mw_shdicts_at(set, 2) == NULL);
    mw_shdicts_free(set);
    char *dup[] = {"a:16k", "a:32k"};
    CHECK_EQ(mw_shdicts_create(&set, dup, 2), MW_EINVAL);
    CHECK(set == NULL);
}

/* Two processes incrementing the same key: every increment counts. */
static void test_fork_incr(void) {
    mw_shdict_t *d;
    REQUIRE(mw_shdict_create(&d, "t", 64 * 1024) == 0);
    enum { N = 20000 };
    double init = 0, out;
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        for (int i = 0; i < N; i++)
            if (mw_shdict_incr(d, S("c"), 1, &init, 0, 0, &out) != 0)
                _exit(1);
        _exit(0);
    }
    for (int i = 0; i < N; i++)
        CHECK_EQ(mw_shdict_incr(d, S("c"), 1, &init, 0, 0, &out), 0);
    int status;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    mw_shdict_value_t v;
    REQUIRE(get(d, "c", 0, &v) == 0);
    CHECK(v.number == 2 * N);
    mw_shdict_free(d);
}

/* A child that dies holding the lock (SIGKILL, mid-change or not): the
 * parent's next call gets the lock back through EOWNERDEAD. */
static void kill_holder(mw_shdict_t *d, int mid_change) {
    int ready[2];
    REQUIRE(pipe(ready) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        close(ready[0]);
        mw__shdict_lock(d);
        if (mid_change)
            mw__shdict_mark_busy(d);
        if (write(ready[1], "x", 1) != 1)
            _exit(1);
        pause(); /* killed here, the lock held */
        _exit(0);
    }
    close(ready[1]);
    char c;
    REQUIRE(read(ready[0], &c, 1) == 1);
    close(ready[0]);
    kill(pid, SIGKILL);
    int status;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status));
}

static void test_fork_killed_holder(void) {
    mw_shdict_t *d;
    REQUIRE(mw_shdict_create(&d, "t", 64 * 1024) == 0);
    mw_shdict_value_t v = str("kept"), out;
    CHECK_EQ(mw_shdict_set(d, S("k"), &v, 0, 0, MW_SHDICT_SET, NULL), 0);

    /* died between changes: the data is intact */
    kill_holder(d, 0);
    REQUIRE(get(d, "k", 0, &out) == 0);
    CHECK_MEM(out.str, out.len, "kept", 4);
    mw_shdict_stats_t st;
    mw_shdict_stats(d, &st);
    CHECK_EQ(st.recoveries, 1);

    /* died mid-change: the dict starts over empty, and works */
    kill_holder(d, 1);
    CHECK_EQ(get(d, "k", 0, &out), MW_ENOTFOUND);
    mw_shdict_stats(d, &st);
    CHECK_EQ(st.recoveries, 2);
    CHECK_EQ(st.keys, 0);
    CHECK_EQ(mw_shdict_free_space(d), mw_shdict_capacity(d));
    CHECK_EQ(mw_shdict_set(d, S("k"), &v, 0, 0, MW_SHDICT_SET, NULL), 0);
    REQUIRE(get(d, "k", 0, &out) == 0);
    /* and the lock is an ordinary one again */
    double n;
    double init = 0;
    CHECK_EQ(mw_shdict_incr(d, S("c"), 1, &init, 0, 0, &n), 0);
    mw_shdict_stats(d, &st);
    CHECK_EQ(st.recoveries, 2);
    mw_shdict_free(d);
}

/* The same memfd mapped twice, at two addresses: what one mapping writes
 * (items, evictions, deletes, all of it links) the other reads. */
static void test_memfd_two_mappings(void) {
    mw_shdict_t *a, *b;
    int fd;
    REQUIRE(mw_shdict_create_fd(&a, "two", MW_SHDICT_MIN_SIZE, &fd) == 0);
    REQUIRE(mw_shdict_attach(&b, fd) == 0);
    CHECK(a != b);
    CHECK_STR(mw_shdict_name(b), "two");
    CHECK_EQ(mw_shdict_capacity(b), mw_shdict_capacity(a));
    char key[32], val[200];
    mw_shdict_value_t v, out;
    /* far more than fits: evictions run through both mappings' writes */
    for (int i = 0; i < 400; i++) {
        snprintf(key, sizeof key, "k%d", i);
        memset(val, 'a' + i % 26, sizeof val - 1);
        val[sizeof val - 1] = '\0';
        v = str(val);
        CHECK_EQ(mw_shdict_set(i % 2 ? a : b, S(key), &v, 0, 0, MW_SHDICT_SET, NULL), 0);
    }
    mw_shdict_stats_t sa, sb;
    mw_shdict_stats(a, &sa);
    mw_shdict_stats(b, &sb);
    CHECK(sa.evictions > 0);
    CHECK_EQ(sa.keys, sb.keys);
    /* the most recent key, written through a, is read through b and back */
    REQUIRE(get(b, "k399", 0, &out) == 0);
    CHECK_EQ(out.len, sizeof val - 1);
    CHECK_EQ(out.str[0], 'a' + 399 % 26);
    CHECK_EQ(get(a, "k0", 0, &out), MW_ENOTFOUND); /* evicted */
    double init = 0, n;
    CHECK_EQ(mw_shdict_incr(a, S("c"), 1, &init, 0, 0, &n), 0);
    CHECK_EQ(mw_shdict_incr(b, S("c"), 1, &init, 0, 0, &n), 0);
    CHECK(n == 2);
    CHECK_EQ(mw_shdict_delete(b, S("k399")), 0);
    CHECK_EQ(get(a, "k399", 0, &out), MW_ENOTFOUND);
    /* the keys, most recent first, the same through both */
    char seen_a[64] = "", seen_b[64] = "";
    mw_shdict_keys(a, 0, 1, collect, seen_a);
    mw_shdict_keys(b, 0, 1, collect, seen_b);
    CHECK_STR(seen_a, "c,");
    CHECK_STR(seen_b, "c,");
    mw_shdict_flush_all(b);
    CHECK_EQ(mw_shdict_free_space(a), mw_shdict_capacity(a));
    mw_shdict_free(b);
    /* a stays usable after b is gone */
    v = str("still");
    CHECK_EQ(mw_shdict_set(a, S("s"), &v, 0, 0, MW_SHDICT_SET, NULL), 0);
    REQUIRE(get(a, "s", 0, &out) == 0);
    CHECK_MEM(out.str, out.len, "still", 5);
    mw_shdict_free(a);
    close(fd);
}

/* attach refuses what is not a dict: an empty memfd of a valid size, one
 * too small, a zone whose size does not match its header. */
static void test_attach_refuses(void) {
    mw_shdict_t *d;
    int fd = memfd_create("x", MFD_CLOEXEC);
    REQUIRE(fd >= 0);
    REQUIRE(ftruncate(fd, 1024) == 0);
    CHECK_EQ(mw_shdict_attach(&d, fd), MW_EINVAL);
    REQUIRE(ftruncate(fd, MW_SHDICT_MIN_SIZE) == 0);
    CHECK_EQ(mw_shdict_attach(&d, fd), MW_EINVAL); /* zeros: no magic */
    close(fd);
    mw_shdict_t *a;
    REQUIRE(mw_shdict_create_fd(&a, "grown", MW_SHDICT_MIN_SIZE, &fd) == 0);
    REQUIRE(ftruncate(fd, 2 * MW_SHDICT_MIN_SIZE) == 0);
    CHECK_EQ(mw_shdict_attach(&d, fd), MW_EINVAL);
    mw_shdict_free(a);
    close(fd);
    CHECK_EQ(mw_shdict_attach(&d, -1), MW_EINVAL);
}

/* A set made on memfds, attached by its fds: the same dicts by name. */
static void test_shdicts_attach(void) {
    char *specs[] = {"a:16k", "b:32k"};
    mw_shdicts_t *set, *other;
    REQUIRE(mw_shdicts_create(&set, specs, 2) == 0);
    int fds[2] = {dup(mw_shdicts_fd(set, 0)), dup(mw_shdicts_fd(set, 1))};
    CHECK_EQ(mw_shdicts_fd(set, 2), -1);
    REQUIRE(mw_shdicts_attach(&other, fds, 2) == 0);
    mw_shdict_value_t v = num(42), out;
    CHECK_EQ(mw_shdict_set(mw_shdicts_find(set, S("b")), S("x"), &v, 0, 0, 0, NULL), 0);
    mw_shdict_t *ob = mw_shdicts_find(other, S("b"));
    REQUIRE(ob != NULL);
    CHECK(ob != mw_shdicts_find(set, S("b")));
    REQUIRE(get(ob, "x", 0, &out) == 0);
    CHECK(out.number == 42);
    CHECK(mw_shdicts_find(other, S("a")) == mw_shdicts_at(other, 0));
    CHECK_EQ(mw_shdicts_fd(other, 1), fds[1]);
    CHECK(fcntl(fds[0], F_GETFD) & FD_CLOEXEC);
    mw_shdicts_free(other); /* closes fds */
    CHECK(fcntl(fds[0], F_GETFD) == -1);
    /* the same fd twice is a name twice */
    int twice[2] = {mw_shdicts_fd(set, 0), mw_shdicts_fd(set, 0)};
    CHECK_EQ(mw_shdicts_attach(&other, twice, 2), MW_EINVAL);
    CHECK(fcntl(twice[0], F_GETFD) != -1); /* still open: the caller's */
    mw_shdicts_free(set);
}

static const char *const self_exe = "/proc/self/exe";

/* spawn_attached runs this binary again (fork + exec: nothing of this
 * process's mappings survives) with mode and fd, made inheritable. */
static pid_t spawn_attached(const char *mode, int fd, const char *arg, int out) {
    pid_t pid = fork();
    if (pid == 0) {
        char fdarg[16];
        snprintf(fdarg, sizeof fdarg, "%d", fd);
        fcntl(fd, F_SETFD, 0);
        if (out >= 0)
            dup2(out, 1);
        execl(self_exe, self_exe, mode, fdarg, arg, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* An exec'd child and this process increment the same key, each through
 * its own mapping of the memfd, under the lock in the zone. */
static void test_exec_attach_incr(void) {
    mw_shdict_t *d;
    int fd;
    REQUIRE(mw_shdict_create_fd(&d, "t", 64 * 1024, &fd) == 0);
    enum { N = 20000 };
    pid_t pid = spawn_attached("attach-incr", fd, "20000", -1);
    REQUIRE(pid > 0);
    double init = 0, out;
    for (int i = 0; i < N; i++)
        CHECK_EQ(mw_shdict_incr(d, S("c"), 1, &init, 0, 0, &out), 0);
    int status;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    mw_shdict_value_t v;
    REQUIRE(get(d, "c", 0, &v) == 0);
    CHECK(v.number == 2 * N);
    REQUIRE(get(d, "child", 0, &v) == 0); /* what the child set, read here */
    CHECK_MEM(v.str, v.len, "was here", 8);
    mw_shdict_free(d);
    close(fd);
}

/* An exec'd child killed holding the zone's lock mid-change: this process
 * gets the lock back (EOWNERDEAD) and the dict starts over. */
static void test_exec_killed_holder(void) {
    mw_shdict_t *d;
    int fd;
    REQUIRE(mw_shdict_create_fd(&d, "t", 64 * 1024, &fd) == 0);
    mw_shdict_value_t v = str("lost"), out;
    CHECK_EQ(mw_shdict_set(d, S("k"), &v, 0, 0, MW_SHDICT_SET, NULL), 0);
    int ready[2];
    REQUIRE(pipe(ready) == 0);
    pid_t pid = spawn_attached("attach-hold", fd, "", ready[1]);
    REQUIRE(pid > 0);
    close(ready[1]);
    char c;
    REQUIRE(read(ready[0], &c, 1) == 1);
    close(ready[0]);
    kill(pid, SIGKILL);
    int status;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status));
    CHECK_EQ(get(d, "k", 0, &out), MW_ENOTFOUND);
    mw_shdict_stats_t st;
    mw_shdict_stats(d, &st);
    CHECK_EQ(st.recoveries, 1);
    CHECK_EQ(mw_shdict_set(d, S("k"), &v, 0, 0, MW_SHDICT_SET, NULL), 0);
    mw_shdict_free(d);
    close(fd);
}

/* child runs the exec'd side of the tests above. */
static int child(const char *mode, int fd, const char *arg) {
    mw_shdict_t *d;
    if (mw_shdict_attach(&d, fd) != 0)
        return 2;
    if (strcmp(mode, "attach-incr") == 0) {
        double init = 0, out;
        for (long i = 0, n = atol(arg); i < n; i++)
            if (mw_shdict_incr(d, S("c"), 1, &init, 0, 0, &out) != 0)
                return 1;
        mw_shdict_value_t v = str("was here");
        return mw_shdict_set(d, S("child"), &v, 0, 0, MW_SHDICT_SET, NULL) != 0;
    }
    mw__shdict_lock(d);
    mw__shdict_mark_busy(d);
    if (write(1, "x", 1) != 1)
        return 1;
    pause(); /* killed here, the lock held */
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4)
        return child(argv[1], atoi(argv[2]), argv[3]);
    (void)argv;
    RUN(test_get_set_types);
    RUN(test_add_replace);
    RUN(test_incr);
    RUN(test_expiry);
    RUN(test_keys_and_flush_all);
    RUN(test_eviction_lru_order);
    RUN(test_full_zone);
    RUN(test_churn);
    RUN(test_parse_spec_and_set);
    RUN(test_fork_incr);
    RUN(test_fork_killed_holder);
    RUN(test_memfd_two_mappings);
    RUN(test_attach_refuses);
    RUN(test_shdicts_attach);
    RUN(test_exec_attach_incr);
    RUN(test_exec_killed_holder);
    return test_summary();
}
