/*
 * test_names.c - interned names (src/names.c): numbered from 1 in order,
 * the same number for the same text (whatever the buffer), bounded.
 */
#include "names.h"
#include "test.h"

#include <stdio.h>

static void test_intern_and_get(void) {
    mw_names_t t;
    mw_names_init(&t, 100);
    CHECK_EQ(mw_names_intern(&t, "chat.send", 9), 1);
    CHECK_EQ(mw_names_intern(&t, "chat.send (x.lua:1)", 19), 2);
    CHECK_EQ(mw_names_intern(&t, "chat.send (x.lua:1)", 9), 1); /* a prefix of a buffer */
    CHECK_EQ(mw_names_intern(&t, "chat", 4), 3);
    CHECK_EQ(mw_names_intern(&t, "chat.send", 9), 1);
    CHECK_STR(mw_names_get(&t, 1), "chat.send");
    CHECK_STR(mw_names_get(&t, 3), "chat");
    CHECK(mw_names_get(&t, 0) == NULL);
    CHECK(mw_names_get(&t, 4) == NULL);
    CHECK_EQ(mw_names_intern(&t, "a\0b", 3), 0); /* not text */
    mw_names_free(&t);
    CHECK_EQ(t.n, 0);
}

static void test_bounded(void) {
    mw_names_t t;
    mw_names_init(&t, 40);
    char name[16];
    for (int i = 0; i < 40; i++) {
        int n = snprintf(name, sizeof name, "r%d", i);
        CHECK_EQ(mw_names_intern(&t, name, (size_t)n), i + 1);
    }
    CHECK_EQ(mw_names_intern(&t, "one more", 8), 0);
    CHECK_EQ(mw_names_intern(&t, "r39", 3), 40); /* known names still answer */
    CHECK_STR(mw_names_get(&t, 40), "r39");
    mw_names_free(&t);
}

int main(void) {
    RUN(test_intern_and_get);
    RUN(test_bounded);
    return test_summary();
}
