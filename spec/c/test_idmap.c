/*
 * test_idmap.c - the client id -> pointer hash map (src/idmap.c).
 *
 * put/get/del and replace, refused ids, an empty map, 100k sequential ids
 * with interleaved deletes and re-puts (checked against a plain array), and
 * that connection churn (few live ids, many ever) keeps the table small.
 */
#include "idmap.h"
#include "errors.h"
#include "test.h"

#include <stdlib.h>

/* Distinct fake pointers: never dereferenced. */
static void *val(uint64_t id) {
    return (void *)(uintptr_t)(id * 16 + 8);
}

static void test_empty_map(void) {
    mw_idmap_t m;
    mw_idmap_init(&m);
    CHECK(mw_idmap_get(&m, 1) == NULL);
    CHECK(mw_idmap_get(&m, 0) == NULL);
    CHECK(mw_idmap_get(&m, UINT64_MAX) == NULL);
    CHECK_EQ(mw_idmap_del(&m, 1), MW_ENOTFOUND);
    CHECK_EQ(m.count, 0);
    mw_idmap_free(&m);
    mw_idmap_free(&m); /* free leaves an empty map */
    CHECK(mw_idmap_get(&m, 1) == NULL);
}

static void test_put_get_del(void) {
    mw_idmap_t m;
    mw_idmap_init(&m);
    CHECK_EQ(mw_idmap_put(&m, 1, val(1)), 0);
    CHECK_EQ(mw_idmap_put(&m, 2, val(2)), 0);
    CHECK_EQ(mw_idmap_put(&m, 1ULL << 40, val(3)), 0);
    CHECK(mw_idmap_get(&m, 1) == val(1));
    CHECK(mw_idmap_get(&m, 2) == val(2));
    CHECK(mw_idmap_get(&m, 1ULL << 40) == val(3));
    CHECK(mw_idmap_get(&m, 3) == NULL);
    CHECK_EQ(m.count, 3);

    /* Replace keeps one entry. */
    CHECK_EQ(mw_idmap_put(&m, 2, val(20)), 0);
    CHECK(mw_idmap_get(&m, 2) == val(20));
    CHECK_EQ(m.count, 3);

    CHECK_EQ(mw_idmap_del(&m, 2), 0);
    CHECK(mw_idmap_get(&m, 2) == NULL);
    CHECK_EQ(mw_idmap_del(&m, 2), MW_ENOTFOUND);
    CHECK_EQ(m.count, 2);
    CHECK(mw_idmap_get(&m, 1) == val(1));

    /* Re-put after delete. */
    CHECK_EQ(mw_idmap_put(&m, 2, val(21)), 0);
    CHECK(mw_idmap_get(&m, 2) == val(21));
    CHECK_EQ(m.count, 3);
    mw_idmap_free(&m);
}

static void test_refused_ids(void) {
    mw_idmap_t m;
    mw_idmap_init(&m);
    CHECK_EQ(mw_idmap_put(&m, 0, val(1)), MW_EINVAL);
    CHECK(mw_idmap_get(&m, 0) == NULL);
    CHECK_EQ(mw_idmap_del(&m, 0), MW_ENOTFOUND);
    CHECK_EQ(m.count, 0);
    /* The largest id is either stored or refused, never half-stored. */
    int rc = mw_idmap_put(&m, UINT64_MAX, val(2));
    CHECK(rc == 0 || rc == MW_EINVAL);
    CHECK(mw_idmap_get(&m, UINT64_MAX) == (rc == 0 ? val(2) : NULL));
    CHECK_EQ(m.count, rc == 0 ? 1 : 0);
    /* A refused put into a populated map changes nothing. */
    CHECK_EQ(mw_idmap_put(&m, 5, val(5)), 0);
    CHECK_EQ(mw_idmap_put(&m, 0, val(6)), MW_EINVAL);
    CHECK(mw_idmap_get(&m, 5) == val(5));
    mw_idmap_free(&m);
}

#define N 100000

/* Sequential ids as the server hands them out, with every third one
 * deleted soon after, then the deleted ones put back. A plain array is the
 * reference. */
static void test_sequential_ids_with_deletes(void) {
    mw_idmap_t m;
    mw_idmap_init(&m);
    unsigned char *live = calloc(N + 1, 1);
    REQUIRE(live);
    size_t count = 0;
    int errors = 0;
    for (uint64_t id = 1; id <= N; id++) {
        errors += mw_idmap_put(&m, id, val(id)) != 0;
        live[id] = 1, count++;
        if (id % 3 == 0 && id > 10) {
            errors += mw_idmap_del(&m, id - 10) != 0;
            live[id - 10] = 0, count--;
        }
    }
    CHECK_EQ(m.count, count);
    for (uint64_t id = 1; id <= N; id++)
        errors += mw_idmap_get(&m, id) != (live[id] ? val(id) : NULL);
    CHECK(mw_idmap_get(&m, N + 1) == NULL);
    CHECK_EQ(errors, 0);

    /* Put the deleted ones back with new values, delete the others. */
    for (uint64_t id = 1; id <= N; id++) {
        if (live[id])
            errors += mw_idmap_del(&m, id) != 0;
        else
            errors += mw_idmap_put(&m, id, val(id + 1)) != 0;
        live[id] = !live[id];
    }
    for (uint64_t id = 1; id <= N; id++)
        errors += mw_idmap_get(&m, id) != (live[id] ? val(id + 1) : NULL);
    CHECK_EQ(errors, 0);
    CHECK_EQ(m.count, N - count);
    CHECK(m.used <= m.cap * 7 / 10 + 1);
    free(live);
    mw_idmap_free(&m);
}

/* Connections come and go: at most 8 are live at a time, but 100k ids are
 * used over the map's life. Every lookup must still work, and the table must
 * stay sized for what is live, not for every id ever seen (the rebuild that
 * clears tombstones must not double the table each time). */
static void test_churn(void) {
    mw_idmap_t m;
    mw_idmap_init(&m);
    int errors = 0;
    size_t max_cap = 0;
    for (uint64_t id = 1; id <= N; id++) {
        errors += mw_idmap_put(&m, id, val(id)) != 0;
        if (id > 8)
            errors += mw_idmap_del(&m, id - 8) != 0;
        errors += mw_idmap_get(&m, id) != val(id);
        if (id > 8)
            errors += mw_idmap_get(&m, id - 8) != NULL;
        if (m.cap > max_cap)
            max_cap = m.cap;
    }
    CHECK_EQ(errors, 0);
    CHECK_EQ(m.count, 8);
    for (uint64_t id = N - 7; id <= N; id++)
        CHECK(mw_idmap_get(&m, id) == val(id));
    if (max_cap > 1024)
        fprintf(stderr, "  8 live ids, table grew to %zu slots\n", max_cap);
    CHECK(max_cap <= 1024);
    mw_idmap_free(&m);
}

int main(void) {
    RUN(test_empty_map);
    RUN(test_put_get_del);
    RUN(test_refused_ids);
    RUN(test_sequential_ids_with_deletes);
    RUN(test_churn);
    return test_summary();
}
