/*
 * test.h - a tiny header-only harness for the C unit tests.
 *
 * Each test is a void function registered with RUN() from main. CHECK and
 * CHECK_EQ report file:line and keep going; REQUIRE returns from the test
 * when continuing would crash. test_summary() prints "N passed, N failed"
 * (counting tests, not checks) and returns the process exit status.
 */
#ifndef MW_SPEC_TEST_H
#define MW_SPEC_TEST_H

#include <stdio.h>
#include <string.h>

static int test_passed, test_failed, test_cur_failed;
static const char *test_cur_name = "";

static inline void test_fail_at(const char *file, int line) {
    if (!test_cur_failed)
        fprintf(stderr, "FAIL %s\n", test_cur_name);
    test_cur_failed = 1;
    fprintf(stderr, "  %s:%d: ", file, line);
}

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            test_fail_at(__FILE__, __LINE__);                                                      \
            fprintf(stderr, "CHECK(%s)\n", #cond);                                                 \
        }                                                                                          \
    } while (0)

/* Integers (and enums) of any signedness up to 64 bits. */
#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        long long test_a_ = (long long)(a), test_b_ = (long long)(b);                              \
        if (test_a_ != test_b_) {                                                                  \
            test_fail_at(__FILE__, __LINE__);                                                      \
            fprintf(stderr, "CHECK_EQ(%s, %s): %lld != %lld\n", #a, #b, test_a_, test_b_);         \
        }                                                                                          \
    } while (0)

/* NUL-terminated strings; NULL is allowed on either side. */
#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *test_a_ = (a), *test_b_ = (b);                                                 \
        if (!test_a_ || !test_b_ ? test_a_ != test_b_ : strcmp(test_a_, test_b_) != 0) {           \
            test_fail_at(__FILE__, __LINE__);                                                      \
            fprintf(stderr, "CHECK_STR(%s, %s): \"%s\" != \"%s\"\n", #a, #b,                       \
                    test_a_ ? test_a_ : "(null)", test_b_ ? test_b_ : "(null)");                   \
        }                                                                                          \
    } while (0)

/* Byte buffers with lengths. */
#define CHECK_MEM(a, alen, b, blen)                                                                \
    do {                                                                                           \
        size_t test_al_ = (alen), test_bl_ = (blen);                                               \
        if (test_al_ != test_bl_ || (test_al_ && memcmp((a), (b), test_al_) != 0)) {               \
            test_fail_at(__FILE__, __LINE__);                                                      \
            fprintf(stderr, "CHECK_MEM(%s, %s): lengths %zu and %zu or bytes differ\n", #a, #b,    \
                    test_al_, test_bl_);                                                           \
        }                                                                                          \
    } while (0)

/* Like CHECK, but leaves the current test when cond is false. */
#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            test_fail_at(__FILE__, __LINE__);                                                      \
            fprintf(stderr, "REQUIRE(%s)\n", #cond);                                               \
            return;                                                                                \
        }                                                                                          \
    } while (0)

static inline void test_run(const char *name, void (*fn)(void)) {
    test_cur_name = name;
    test_cur_failed = 0;
    fn();
    if (test_cur_failed)
        test_failed++;
    else
        test_passed++;
}

#define RUN(fn) test_run(#fn, fn)

static inline int test_summary(void) {
    printf("%d passed, %d failed\n", test_passed, test_failed);
    return test_failed ? 1 : 0;
}

#endif
