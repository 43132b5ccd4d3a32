/*
 * watchdog.h - notices a dispatch into the script that runs too long.
 *
 * The watched thread (the event loop) brackets every call into the script
 * with mw_watchdog_enter/mw_watchdog_leave: two atomic increments of a
 * sequence number and a few relaxed stores, no clock read, no lock. A
 * separate thread samples that sequence number; when one dispatch is still
 * the same dispatch after `timeout_ms`, it logs, sets the interrupt mark and
 * sends MW_WATCHDOG_SIGNAL to the watched thread, whose handler runs the
 * `interrupt` callback (the script arms its Lua hook there). When the same
 * dispatch is still running `grace_ms` later, the watchdog logs what it knows
 * (the event, the client id, the label the script recorded) and calls
 * `fatal`, by default _exit(MW_EXIT_SCRIPT_TIMEOUT).
 *
 * Only the per-dispatch sequence number is checked, never throughput: a loop
 * busy with many short dispatches is never reported. A watchdog never looks
 * at the script's own memory (a Lua stack cannot be walked safely from
 * another thread); labels are copies the watched thread made, named by id.
 *
 * One watchdog per process (the signal handler has no user data).
 */
#ifndef MW_WATCHDOG_H
#define MW_WATCHDOG_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

/* Exit status of a server the watchdog stopped (sysexits' EX_SOFTWARE). */
#define MW_EXIT_SCRIPT_TIMEOUT 70

/* The signal that delivers an interrupt to the watched thread. Ignored by
 * default and unused by sockets that never ask for out-of-band data, the
 * same reasoning as Go's runtime, which uses it for asynchronous preemption. */
#define MW_WATCHDOG_SIGNAL SIGURG

/* How long a dispatch may stay stuck after the interrupt before `fatal`. */
#define MW_WATCHDOG_GRACE_MS 1000

/* How many distinct labels a watchdog keeps. */
#define MW_WATCHDOG_LABELS 4096

typedef struct mw_watchdog mw_watchdog_t;

typedef struct {
    uint64_t timeout_ms; /* > 0 */
    uint64_t grace_ms;   /* 0: MW_WATCHDOG_GRACE_MS */
    /* Runs on the watched thread inside a signal handler: async-signal-safe
     * code only. May be NULL. */
    void (*interrupt)(void *data);
    /* Runs on the watchdog thread once a dispatch outlived the grace period,
     * after the report was logged. NULL: _exit(MW_EXIT_SCRIPT_TIMEOUT). */
    void (*fatal)(void *data, const char *report);
    void *data;
} mw_watchdog_opts_t;

/* mw_watchdog_start starts the watchdog thread; the calling thread is the
 * one watched. Returns 0, MW_EINVAL (timeout_ms is 0, or a watchdog already
 * runs), MW_ENOMEM or MW_EIO (the thread or the signal handler could not be
 * set up). */
int mw_watchdog_start(mw_watchdog_t **out, const mw_watchdog_opts_t *opts);

/* mw_watchdog_enter marks the start of a dispatch. `what` names the event
 * and must be a string literal (the watchdog thread may read it later); id
 * is the client id or 0. Watched thread only; not re-entrant (the caller
 * brackets only the outermost call). */
void mw_watchdog_enter(mw_watchdog_t *w, const char *what, uint64_t id);

/* mw_watchdog_intern keeps a copy of a label (a route and its source
 * position, truncated to 255 bytes) and returns its id: >= 1, the same id
 * for the same text, or 0 once MW_WATCHDOG_LABELS labels exist or memory
 * ran out. Labels live as long as the watchdog. Watched thread only. */
unsigned mw_watchdog_intern(mw_watchdog_t *w, const char *label, size_t len);

/* mw_watchdog_running records that the current dispatch runs the label with
 * this id (0: none): one relaxed atomic store, for the hot path. */
void mw_watchdog_running(mw_watchdog_t *w, unsigned id);

/* mw_watchdog_leave marks the end of the dispatch. */
void mw_watchdog_leave(mw_watchdog_t *w);

/* mw_watchdog_interrupted tells, on the watched thread, whether the
 * dispatch running now is the one the watchdog asked to interrupt (a late
 * signal after that dispatch ended is told apart by its sequence number). */
int mw_watchdog_interrupted(const mw_watchdog_t *w);

/* mw_watchdog_describe writes "<label>, <what> (client <id>)" for the
 * dispatch running now (watched thread) into buf. */
void mw_watchdog_describe(const mw_watchdog_t *w, char *buf, size_t size);

/* mw_watchdog_stop stops and joins the thread, restores the signal's
 * previous disposition and frees w. NULL is accepted. */
void mw_watchdog_stop(mw_watchdog_t *w);

#endif
