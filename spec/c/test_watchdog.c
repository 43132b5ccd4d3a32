/*
 * test_watchdog.c - the dispatch watchdog (src/watchdog.c), with a real
 * thread and a real signal but no Lua: the "script" is this thread, which
 * brackets busy loops with enter/leave.
 *
 * Many short dispatches never trigger it, however long they add up to; a
 * dispatch stuck past the timeout gets the interrupt callback on this thread
 * (in the signal handler) and, when it ignores it, the fatal callback after
 * the grace period, with a report naming the label and the client; a late
 * interrupt is never mistaken for one aimed at the next dispatch; labels are
 * interned once.
 *
 * Timing: only lower bounds (nothing fires before its timeout) and a
 * generous HANG_MS that catches a watchdog that never fires, never how soon
 * it fires: on a loaded machine (the suite runs under ASan, on shared
 * cores) the watchdog thread may be scheduled late by any amount.
 */
#include "watchdog.h"
#include "errors.h"
#include "log.h"
#include "test.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TIMEOUT_MS 100
#define GRACE_MS 200
#define HANG_MS 30000 /* not fired by then: the watchdog is broken, not slow */

static volatile sig_atomic_t interrupts;
static _Atomic int fatals;
static char fatal_report[512];

static void on_interrupt(void *data) {
    (void)data;
    interrupts++;
}

static void on_fatal(void *data, const char *report) {
    (void)data;
    snprintf(fatal_report, sizeof fatal_report, "%s", report);
    atomic_fetch_add(&fatals, 1);
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void busy_ms(uint64_t ms) {
    uint64_t end = now_ms() + ms;
    while (now_ms() < end) {
    }
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static mw_watchdog_t *start_with(uint64_t timeout_ms) {
    interrupts = 0;
    atomic_store(&fatals, 0);
    fatal_report[0] = '\0';
    mw_watchdog_opts_t o = {.timeout_ms = timeout_ms,
                            .grace_ms = GRACE_MS,
                            .interrupt = on_interrupt,
                            .fatal = on_fatal};
    mw_watchdog_t *w = NULL;
    return mw_watchdog_start(&w, &o) == 0 ? w : NULL;
}

static mw_watchdog_t *start(void) {
    return start_with(TIMEOUT_MS);
}

/* interrupted_early: the dispatch entered at t0 is marked interrupted
 * before its timeout. (Marked after it is fine: this thread may have been
 * off the CPU that long since it entered.) */
static int interrupted_early(mw_watchdog_t *w, uint64_t t0) {
    return mw_watchdog_interrupted(w) && now_ms() - t0 < TIMEOUT_MS;
}

static void test_start_refuses(void) {
    mw_watchdog_t *w = NULL;
    mw_watchdog_opts_t o = {.timeout_ms = 0};
    CHECK_EQ(mw_watchdog_start(&w, &o), MW_EINVAL);
    w = start();
    REQUIRE(w);
    mw_watchdog_t *second = NULL;
    o.timeout_ms = 10;
    CHECK_EQ(mw_watchdog_start(&second, &o), MW_EINVAL); /* one per process */
    mw_watchdog_stop(w);
    mw_watchdog_stop(NULL);
}

/* Per dispatch, not throughput: 110 dispatches of 5 ms back to back add up
 * to more than the timeout and are never reported. Each is a hundredth of
 * the timeout, so this thread may lose the CPU for most of it inside a
 * dispatch (a loaded machine) without making that dispatch a long one. */
static void test_short_dispatches_are_fine(void) {
    enum { SHORT_TIMEOUT_MS = 500, EACH_MS = 5, N = 110 };
    mw_watchdog_t *w = start_with(SHORT_TIMEOUT_MS);
    REQUIRE(w);
    uint64_t t0 = now_ms();
    for (int i = 0; i < N; i++) {
        mw_watchdog_enter(w, "message", 1);
        busy_ms(EACH_MS);
        mw_watchdog_leave(w);
    }
    CHECK(now_ms() - t0 > SHORT_TIMEOUT_MS);
    sleep_ms(2 * SHORT_TIMEOUT_MS); /* idle is not a dispatch either */
    CHECK_EQ(interrupts, 0);
    CHECK_EQ(atomic_load(&fatals), 0);
    mw_watchdog_stop(w);
}

static void test_stuck_dispatch_is_interrupted(void) {
    mw_watchdog_t *w = start();
    REQUIRE(w);
    uint64_t t0 = now_ms();
    mw_watchdog_enter(w, "message", 7);
    CHECK(!interrupted_early(w, t0));
    while (!interrupts && now_ms() - t0 < HANG_MS) {
    }
    uint64_t took = now_ms() - t0;
    CHECK_EQ(interrupts, 1);
    CHECK(took >= TIMEOUT_MS); /* never early; how late depends on the machine */
    CHECK(mw_watchdog_interrupted(w));
    mw_watchdog_leave(w); /* it obeyed: no fatal */
    uint64_t left = now_ms() - t0;
    CHECK(!mw_watchdog_interrupted(w));
    sleep_ms(2 * GRACE_MS);
    /* No fatal, unless this thread was off the CPU for the whole grace
     * between the interrupt and its leave. */
    CHECK(atomic_load(&fatals) == 0 || left >= TIMEOUT_MS + GRACE_MS);

    /* The next dispatch is not the interrupted one. */
    uint64_t t1 = now_ms();
    mw_watchdog_enter(w, "message", 8);
    CHECK(!interrupted_early(w, t1));
    mw_watchdog_leave(w);
    mw_watchdog_stop(w);
}

static void test_uninterruptible_dispatch_is_fatal(void) {
    mw_watchdog_t *w = start();
    REQUIRE(w);
    const char *label = "spin.forever (controllers/spin.lua:5)";
    unsigned id = mw_watchdog_intern(w, label, strlen(label));
    CHECK(id >= 1);
    uint64_t t0 = now_ms();
    mw_watchdog_enter(w, "message", 7);
    mw_watchdog_running(w, id);
    char desc[256];
    mw_watchdog_describe(w, desc, sizeof desc);
    CHECK_STR(desc, "spin.forever (controllers/spin.lua:5), message (client 7)");
    while (!atomic_load(&fatals) && now_ms() - t0 < HANG_MS) {
    } /* ignores the interrupt, like a JIT-compiled loop */
    uint64_t took = now_ms() - t0;
    mw_watchdog_leave(w);
    CHECK_EQ(interrupts, 1);
    CHECK_EQ(atomic_load(&fatals), 1);
    CHECK(took >= TIMEOUT_MS + GRACE_MS); /* the grace is given in full */
    CHECK(strstr(fatal_report, "spin.forever (controllers/spin.lua:5), message (client 7)"));
    CHECK(strstr(fatal_report, "exiting with status 70"));
    sleep_ms(2 * GRACE_MS);
    CHECK_EQ(atomic_load(&fatals), 1); /* once per dispatch */
    mw_watchdog_stop(w);
}

/* A SIGURG from outside reaches the callback, which must check
 * mw_watchdog_interrupted() before acting on it. */
static void test_stray_signal(void) {
    mw_watchdog_t *w = start();
    REQUIRE(w);
    uint64_t t0 = now_ms();
    mw_watchdog_enter(w, "connect", 3);
    raise(MW_WATCHDOG_SIGNAL);
    CHECK(interrupts >= 1); /* 2 if the watchdog fired too, on a stalled machine */
    CHECK(!interrupted_early(w, t0));
    mw_watchdog_leave(w);
    mw_watchdog_stop(w);
}

static void test_labels(void) {
    mw_watchdog_t *w = start();
    REQUIRE(w);
    unsigned a = mw_watchdog_intern(w, "a.x (a.lua:1)", 13);
    unsigned b = mw_watchdog_intern(w, "b.y (b.lua:2)", 13);
    CHECK(a >= 1 && b >= 1 && a != b);
    CHECK_EQ(mw_watchdog_intern(w, "a.x (a.lua:1)", 13), a);     /* a reload registers again */
    unsigned prefix = mw_watchdog_intern(w, "a.x (a.lua:1)", 5); /* "a.x (" is another text */
    CHECK(prefix >= 1 && prefix != a);
    CHECK_EQ(mw_watchdog_intern(w, "a.x (", 5), prefix);
    char buf[32];
    unsigned last = 0;
    for (int i = 0; i < MW_WATCHDOG_LABELS + 10; i++) {
        snprintf(buf, sizeof buf, "route.%d", i);
        unsigned id = mw_watchdog_intern(w, buf, strlen(buf));
        if (id)
            last = id;
    }
    CHECK_EQ(last, MW_WATCHDOG_LABELS); /* full: later labels get 0 */
    CHECK_EQ(mw_watchdog_intern(w, "never seen", 10), 0);
    mw_watchdog_enter(w, "message", 1);
    mw_watchdog_running(w, 0);
    char desc[64];
    mw_watchdog_describe(w, desc, sizeof desc);
    CHECK_STR(desc, "message (client 1)");
    mw_watchdog_leave(w);
    mw_watchdog_stop(w);
}

int main(void) {
    mw_log_configure(MW_LOG_ERROR + 1, 0); /* the watchdog's log lines are expected here */
    RUN(test_start_refuses);
    RUN(test_short_dispatches_are_fine);
    RUN(test_stuck_dispatch_is_interrupted);
    RUN(test_uninterruptible_dispatch_is_fatal);
    RUN(test_stray_signal);
    RUN(test_labels);
    return test_summary();
}
