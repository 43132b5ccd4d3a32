/*
 * watchdog.c - the thread that notices a dispatch stuck past its timeout.
 *
 * Owns one pthread, one signal disposition (MW_WATCHDOG_SIGNAL) and the
 * shared record of the dispatch running on the watched thread. Never reads
 * or writes the script's memory: everything it reports is in this struct,
 * written by the watched thread with C11 atomics. Labels are copied once,
 * when the script registers them (mw_watchdog_intern), and published before
 * their id can be stored, so the watchdog reads immutable strings.
 *
 * The hot path (enter, running, leave) takes no lock, makes no system call
 * and reads no clock: the watchdog measures time itself, from the moment
 * it first sees a dispatch's sequence number, so a report comes between
 * timeout_ms and timeout_ms + one sampling period after the dispatch began.
 */
#include "watchdog.h"
#include "errors.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LABEL_MAX 256

struct mw_watchdog {
    mw_watchdog_opts_t opts;
    pthread_t thread, watched;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping; /* under mu */
    struct sigaction old_action;

    /* Written by the watched thread, read by the watchdog. */
    _Atomic uint64_t seq;           /* odd while a dispatch runs */
    _Atomic uint64_t interrupt_seq; /* the dispatch the watchdog interrupted */
    _Atomic(const char *) what;
    _Atomic uint64_t id;
    _Atomic unsigned label;                         /* id of the running label, 0: none */
    _Atomic(char *) labels[MW_WATCHDOG_LABELS + 1]; /* [0] unused */

    uint64_t local_seq; /* the watched thread's copy of seq */
    unsigned nlabels;   /* watched thread only */
};

/* The running watchdog, for the signal handler (handlers take no data). */
static _Atomic(mw_watchdog_t *) active;

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void on_signal(int sig) {
    (void)sig;
    int saved = errno;
    mw_watchdog_t *w = atomic_load(&active);
    /* A SIGURG sent to the process (not by us) may land on any thread that
     * does not block it; only the watched thread may run the callback. */
    if (w && w->opts.interrupt && pthread_equal(pthread_self(), w->watched))
        w->opts.interrupt(w->opts.data);
    errno = saved;
}

static void format_dispatch(char *buf, size_t size, const char *label, const char *what,
                            uint64_t id) {
    const char *sep = label[0] ? ", " : "";
    if (id)
        snprintf(buf, size, "%s%s%s (client %llu)", label, sep, what, (unsigned long long)id);
    else
        snprintf(buf, size, "%s%s%s", label, sep, what);
}

static const char *label_of(const mw_watchdog_t *w, unsigned n) {
    const char *label = NULL;
    if (n >= 1 && n <= MW_WATCHDOG_LABELS)
        label = atomic_load_explicit(&w->labels[n], memory_order_acquire);
    return label ? label : "";
}

/* describe formats the dispatch numbered seq; 0 when it has ended. */
static int describe(const mw_watchdog_t *w, uint64_t seq, char *buf, size_t size) {
    const char *what = atomic_load_explicit(&w->what, memory_order_relaxed);
    uint64_t id = atomic_load_explicit(&w->id, memory_order_relaxed);
    unsigned n = atomic_load_explicit(&w->label, memory_order_acquire);
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&w->seq, memory_order_relaxed) != seq)
        return 0;
    format_dispatch(buf, size, label_of(w, n), what ? what : "dispatch", id);
    return 1;
}

static void *run(void *arg) {
    mw_watchdog_t *w = arg;
    uint64_t timeout = w->opts.timeout_ms, grace = w->opts.grace_ms;
    uint64_t period = timeout / 8;
    if (period < 5)
        period = 5;
    if (period > 200)
        period = 200;
    uint64_t last = atomic_load_explicit(&w->seq, memory_order_acquire);
    uint64_t since = now_ms(), interrupted_at = 0;
    enum { WATCHING, INTERRUPTED, REPORTED } state = WATCHING;
    char desc[256], report[512];

    pthread_mutex_lock(&w->mu);
    while (!w->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += (long)(period % 1000) * 1000000L;
        until.tv_sec += (time_t)(period / 1000) + until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&w->cv, &w->mu, &until);
        if (w->stopping)
            break;
        uint64_t s = atomic_load_explicit(&w->seq, memory_order_acquire);
        uint64_t t = now_ms();
        if (s != last || !(s & 1)) {
            last = s;
            since = t;
            state = WATCHING;
            continue;
        }
        if (state == WATCHING && t - since >= timeout) {
            if (!describe(w, s, desc, sizeof desc))
                continue;
            mw_log_warn("script timeout: %s has run for more than %llu ms (script_timeout); "
                        "interrupting it",
                        desc, (unsigned long long)(t - since));
            atomic_store_explicit(&w->interrupt_seq, s, memory_order_release);
            pthread_kill(w->watched, MW_WATCHDOG_SIGNAL);
            state = INTERRUPTED;
            interrupted_at = t;
        } else if (state == INTERRUPTED && t - interrupted_at >= grace) {
            if (!describe(w, s, desc, sizeof desc))
                continue;
            snprintf(
                report, sizeof report,
                "script timeout: %s is still running %llu ms after the interrupt (JIT-compiled "
                "Lua code and C calls cannot be interrupted); exiting with status %d",
                desc, (unsigned long long)(t - interrupted_at), MW_EXIT_SCRIPT_TIMEOUT);
            mw_log_error("%s", report);
            state = REPORTED;
            if (!w->opts.fatal)
                _exit(MW_EXIT_SCRIPT_TIMEOUT);
            w->opts.fatal(w->opts.data, report);
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int mw_watchdog_start(mw_watchdog_t **out, const mw_watchdog_opts_t *opts) {
    if (!opts->timeout_ms)
        return MW_EINVAL;
    mw_watchdog_t *w = calloc(1, sizeof *w);
    if (!w)
        return MW_ENOMEM;
    w->opts = *opts;
    if (!w->opts.grace_ms)
        w->opts.grace_ms = MW_WATCHDOG_GRACE_MS;
    w->watched = pthread_self();
    mw_watchdog_t *none = NULL;
    if (!atomic_compare_exchange_strong(&active, &none, w)) {
        free(w);
        return MW_EINVAL;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&w->mu, NULL);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    int rc = sigaction(MW_WATCHDOG_SIGNAL, &sa, &w->old_action);

    /* The watchdog thread starts with the signal blocked, so a SIGURG sent
     * to the process is never handled there. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, MW_WATCHDOG_SIGNAL);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    if (rc == 0)
        rc = pthread_create(&w->thread, NULL, run, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        sigaction(MW_WATCHDOG_SIGNAL, &w->old_action, NULL);
        atomic_store(&active, NULL);
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w);
        return MW_EIO;
    }
    *out = w;
    return 0;
}

void mw_watchdog_enter(mw_watchdog_t *w, const char *what, uint64_t id) {
    atomic_store_explicit(&w->what, what, memory_order_relaxed);
    atomic_store_explicit(&w->id, id, memory_order_relaxed);
    atomic_store_explicit(&w->label, 0, memory_order_relaxed);
    w->local_seq++; /* odd: running */
    atomic_store_explicit(&w->seq, w->local_seq, memory_order_release);
}

unsigned mw_watchdog_intern(mw_watchdog_t *w, const char *label, size_t len) {
    if (len >= LABEL_MAX)
        len = LABEL_MAX - 1;
    /* Newest first: a reload registers the same labels again. Only at app
     * load, so a linear scan is fine. */
    for (unsigned n = w->nlabels; n >= 1; n--) {
        const char *old = atomic_load_explicit(&w->labels[n], memory_order_relaxed);
        if (strlen(old) == len && memcmp(old, label, len) == 0)
            return n;
    }
    if (w->nlabels == MW_WATCHDOG_LABELS)
        return 0;
    char *copy = malloc(len + 1);
    if (!copy)
        return 0;
    memcpy(copy, label, len);
    copy[len] = '\0';
    w->nlabels++;
    atomic_store_explicit(&w->labels[w->nlabels], copy, memory_order_release);
    return w->nlabels;
}

void mw_watchdog_running(mw_watchdog_t *w, unsigned id) {
    atomic_store_explicit(&w->label, id, memory_order_release);
}

void mw_watchdog_leave(mw_watchdog_t *w) {
    w->local_seq++; /* even: idle */
    atomic_store_explicit(&w->seq, w->local_seq, memory_order_release);
}

int mw_watchdog_interrupted(const mw_watchdog_t *w) {
    return (w->local_seq & 1) &&
           atomic_load_explicit(&w->interrupt_seq, memory_order_acquire) == w->local_seq;
}

void mw_watchdog_describe(const mw_watchdog_t *w, char *buf, size_t size) {
    const char *what = atomic_load_explicit(&w->what, memory_order_relaxed);
    format_dispatch(buf, size, label_of(w, atomic_load_explicit(&w->label, memory_order_relaxed)),
                    what ? what : "dispatch", atomic_load_explicit(&w->id, memory_order_relaxed));
}

void mw_watchdog_stop(mw_watchdog_t *w) {
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    sigaction(MW_WATCHDOG_SIGNAL, &w->old_action, NULL);
    atomic_store(&active, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    for (unsigned n = 1; n <= w->nlabels; n++)
        free(atomic_load_explicit(&w->labels[n], memory_order_relaxed));
    free(w);
}
