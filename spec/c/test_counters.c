/*
 * test_counters.c - the counters that need more than an increment
 * (src/counters.c): disconnects by close code and errors by code, kept in
 * order, with an overflow bucket once the table is full; the names of
 * refusal reasons.
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

static void test_errors_sorted_by_code(void) {
    mw_counters_t m;
    memset(&m, 0, sizeof m);
    mw_counters_error(&m, "NOT_FOUND", 9);
    mw_counters_error(&m, "INVALID_MESSAGE", 15);
    mw_counters_error(&m, "NOT_FOUNDX", 10); /* longer, same start */
    mw_counters_error(&m, "NOT_FOUND and more", 9);
    mw_counters_error(&m, "NOT", 3); /* shorter, same start */
    CHECK_EQ(m.nerrors, 4);
    CHECK_STR(m.errors[0], "INVALID_MESSAGE");
    CHECK_STR(m.errors[1], "NOT");
    CHECK_STR(m.errors[2], "NOT_FOUND");
    CHECK_EQ(m.error_counts[2], 2);
    CHECK_STR(m.errors[3], "NOT_FOUNDX");
    CHECK_EQ(m.other_errors, 0);
}

static void test_errors_bounded(void) {
    mw_counters_t m;
    memset(&m, 0, sizeof m);
    char code[32];
    for (int i = 0; i < MW_COUNTERS_MAX_ERRORS; i++) {
        int n = snprintf(code, sizeof code, "CODE_%03d", i);
        mw_counters_error(&m, code, (size_t)n);
    }
    CHECK_EQ(m.nerrors, MW_COUNTERS_MAX_ERRORS);
    mw_counters_error(&m, "ANOTHER", 7);  /* no room left */
    mw_counters_error(&m, "CODE_000", 8); /* a known code still counts as itself */
    mw_counters_error(&m, "", 0);         /* empty */
    mw_counters_error(&m, "A\0B", 3);     /* not text */
    char longer[MW_COUNTERS_ERROR_LEN + 2];
    memset(longer, 'X', sizeof longer);
    mw_counters_error(&m, longer, sizeof longer); /* too long to keep */
    CHECK_EQ(m.other_errors, 4);
    CHECK_EQ(m.error_counts[0], 2);
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
    RUN(test_errors_sorted_by_code);
    RUN(test_errors_bounded);
    RUN(test_reason_names);
    return test_summary();
}
