/*
 * test_counters.c - the counters that need more than an increment
 * (src/counters.c): disconnects by close code, kept in code order, with an
 * overflow bucket once the table is full; the names of refusal reasons.
 */
#include "counters.h"
#include "test.h"

#include <string.h>

static void test_disconnects_sorted_by_code(void) {
    mw_counters_t m;
    memset(&m, 0, sizeof m);
    mw_counters_disconnect(&m, 1006);
    mw_counters_disconnect(&m, 1000);
    mw_counters_disconnect(&m, 4001);
    mw_counters_disconnect(&m, 1000);
    mw_counters_disconnect(&m, 1008);
    CHECK_EQ(m.ncodes, 4);
    CHECK_EQ(m.codes[0], 1000);
    CHECK_EQ(m.code_counts[0], 2);
    CHECK_EQ(m.codes[1], 1006);
    CHECK_EQ(m.code_counts[1], 1);
    CHECK_EQ(m.codes[2], 1008);
    CHECK_EQ(m.codes[3], 4001);
    CHECK_EQ(m.other_codes, 0);
}

static void test_disconnects_overflow_to_other(void) {
    mw_counters_t m;
    memset(&m, 0, sizeof m);
    for (unsigned i = 0; i < MW_COUNTERS_MAX_CODES; i++)
        mw_counters_disconnect(&m, 3000 + i);
    CHECK_EQ(m.ncodes, MW_COUNTERS_MAX_CODES);
    mw_counters_disconnect(&m, 4999);     /* a new code: no room left */
    mw_counters_disconnect(&m, 3000);     /* a known code still counts as itself */
    mw_counters_disconnect(&m, 0x10000u); /* not a close code */
    CHECK_EQ(m.other_codes, 2);
    CHECK_EQ(m.code_counts[0], 2);
}

static void test_reason_names(void) {
    CHECK_STR(mw_counters_reason_name(MW_REFUSED_OPEN_FILES), "open_files");
    CHECK_STR(mw_counters_reason_name(MW_REFUSED_IP_CONNECTIONS), "ip_connections");
    CHECK_STR(mw_counters_reason_name(MW_REFUSED_APP), "app");
    CHECK_STR(mw_counters_reason_name(MW_REFUSED_COUNT), "unknown");
    for (int r = 0; r < MW_REFUSED_COUNT; r++)
        CHECK(mw_counters_reason_name(r) != NULL && strcmp(mw_counters_reason_name(r), "unknown"));
}

int main(void) {
    RUN(test_disconnects_sorted_by_code);
    RUN(test_disconnects_overflow_to_other);
    RUN(test_reason_names);
    return test_summary();
}
