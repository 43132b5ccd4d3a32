/*
 * timers.h - one-shot timers on the server's clock, for the app.
 *
 * moonwire.sleep, moonwire.timer and every wait with a timeout need a
 * deadline. They run on the server's clock (state.h, mw_server_now), so
 * that specs on the virtual clock see them fire when they advance it, in
 * the same order real time would. All of a server's timers share one
 * binary heap and one uv_timer armed for the earliest deadline: thousands
 * of sleeping handlers cost one loop handle.
 */
#ifndef MW_TIMERS_H
#define MW_TIMERS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct mw_timer mw_timer_t;

/* Called once when the timer fires; the timer is freed right after. */
typedef void (*mw_timer_cb)(void *data);

/* The server's clock, as the timers read it. */
typedef uint64_t (*mw_timers_clock_fn)(void *data);

/* A server's timers (embedded in its state). */
typedef struct {
    mw_timer_t **heap; /* earliest deadline first */
    size_t n, cap;
    uint64_t seq;  /* start order: ties fire in the order they were started */
    uv_timer_t uv; /* armed for heap[0] */
    int uv_ready;
    int manual; /* a virtual clock: time moves with mw_timers_run */
    mw_timers_clock_fn now;
    void *now_data;
} mw_timers_t;

/* mw_timer_start calls cb(data) once, ms milliseconds from now on the
 * server's clock. Returns 0 with *out set (the caller may stop it until
 * it fires), MW_ECLOSED when the server is stopped, or MW_ENOMEM. */
int mw_timer_start(mw_timers_t *h, uint64_t ms, mw_timer_cb cb, void *data, mw_timer_t **out);

/* mw_timer_stop cancels a timer that has not fired, and frees it. */
void mw_timer_stop(mw_timer_t *t);

/* For the server (server.c): start the heap on loop with the server's
 * clock (manual: a virtual one), close and free it; fire every timer due
 * at now (the virtual clock calls this as it advances); the deadline of
 * the earliest timer, or UINT64_MAX. */
void mw_timers_init(mw_timers_t *h, uv_loop_t *loop, mw_timers_clock_fn now, void *data,
                    int manual);
void mw_timers_close(mw_timers_t *h);
void mw_timers_free(mw_timers_t *h);
void mw_timers_run(mw_timers_t *h, uint64_t now);
uint64_t mw_timers_next(const mw_timers_t *h);

#endif
