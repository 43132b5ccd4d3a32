/*
 * sched.h - the coroutines app Lua runs in, and the waits that park them.
 *
 * Every entry into app Lua (a message, a connect, a disconnect, a timer, a
 * spawned task) runs as a task: a Lua coroutine resumed from C, as
 * OpenResty runs each request in one. Threads are reused: a task that
 * finishes gives its thread back to a pool, so a handler that never waits
 * costs one lua_resume instead of a lua_pcall and allocates nothing.
 *
 * A primitive that waits (core.sleep, a Redis call) parks the running task:
 *
 *     mw_wait_t *w = mw_wait_begin(L, sched, timeout_ms, &why);
 *     if (!w) return luaL_error(L, "%s", why);
 *     ...start the operation, keeping w...
 *     return mw_wait_yield(L);
 *
 * and the operation, when it completes, calls mw_wait_done(w, push, data):
 * push puts the primitive's results on the task's stack, and the task is
 * resumed with them as the values the primitive returns. A wait with a
 * timeout that passes first returns nil, "timeout" instead, and the late
 * mw_wait_done gets MW_ECLOSED (the operation just drops its result).
 *
 * What a task runs, and what happens when it finishes, fails or parks, is
 * its owner's business (script.c): the scheduler only calls the owner's
 * resume hook when a parked task can go on.
 */
#ifndef MW_LUA_SCHED_H
#define MW_LUA_SCHED_H

#include <lua.h>
#include <stdint.h>

#include "../server.h"

typedef struct mw_sched mw_sched_t;
typedef struct mw_task mw_task_t;
typedef struct mw_wait mw_wait_t;
typedef struct mw_lua_core mw_lua_core_t;

/* How a resume ended (mw_task_resume). */
enum {
    MW_TASK_DONE,    /* the function returned; its results are on the thread */
    MW_TASK_WAITING, /* parked in a wait: the owner hears from it again later */
    MW_TASK_ERROR,   /* it raised: the error value is on top of the thread */
    MW_TASK_YIELDED  /* a bare coroutine.yield reached the task's base: it is dropped */
};

/* Task kinds the scheduler itself starts (moonwire.spawn, moonwire.timer);
 * owners number their own kinds from MW_TASK_KIND_OWNER. */
enum { MW_TASK_SPAWN = 1, MW_TASK_TIMER, MW_TASK_KIND_OWNER };

/* The owner's hook: resume t, whose nargs values are pushed on its thread
 * (wrapped in the owner's dispatch bracket; it calls mw_task_resume). */
typedef void (*mw_sched_resume_fn)(void *data, mw_task_t *t, int nargs);

/* push puts the results of a completed wait on the task's thread co and
 * returns how many. */
typedef int (*mw_wait_push_fn)(lua_State *co, void *data);

/* mw_sched_create makes the scheduler of state L; core is the
 * moonwire.core context whose server gives the clock. NULL on ENOMEM. */
mw_sched_t *mw_sched_create(lua_State *L, mw_lua_core_t *core, mw_sched_resume_fn resume,
                            void *data);

/* mw_sched_stop drops every task and timer: parked tasks are never
 * resumed, their waits end (the operations get MW_ECLOSED). For the
 * server's stop, and before freeing. */
void mw_sched_stop(mw_sched_t *s);
void mw_sched_free(mw_sched_t *s);

/* mw_task_new takes a thread from the pool (or makes one). The caller
 * pushes the function and its arguments on mw_task_thread(t), then calls
 * mw_task_resume. kind and owner are the caller's. NULL on ENOMEM. */
mw_task_t *mw_task_new(mw_sched_t *s, int kind, void *owner);
lua_State *mw_task_thread(const mw_task_t *t);
int mw_task_kind(const mw_task_t *t);
void *mw_task_owner(const mw_task_t *t);
void mw_task_set_owner(mw_task_t *t, void *owner);

/* mw_task_resume runs t until it finishes, fails or parks: MW_TASK_*. */
int mw_task_resume(mw_task_t *t, int nargs);

/* mw_task_free ends a task that is done, failed, yielded or parked (its
 * wait ends: the operation gets MW_ECLOSED). A thread that finished
 * cleanly goes back to the pool. */
void mw_task_free(mw_task_t *t);

/* mw_sched_in_dispatch tells the scheduler its owner is inside a call
 * into Lua (on) or back out (off): a wait completing meanwhile resumes
 * its task only after that call. */
void mw_sched_in_dispatch(mw_sched_t *s, int on);

/* mw_sched_running is the task being resumed now, or NULL. */
mw_task_t *mw_sched_running(const mw_sched_t *s);

/* mw_wait_begin prepares to park the task whose thread is L, for at most
 * timeout_ms (0: no limit). NULL with *why set when L cannot wait: not a
 * task's thread (the app's own coroutine, or code that is not a task),
 * no server, or out of memory. */
mw_wait_t *mw_wait_begin(lua_State *L, mw_sched_t *s, uint64_t timeout_ms, const char **why);

/* mw_wait_yield parks the task: `return mw_wait_yield(L);` ends the
 * primitive that began the wait. */
int mw_wait_yield(lua_State *L);

/* mw_wait_done completes w with push's values. Returns 0, or MW_ECLOSED
 * when the wait already ended (timed out, the task dropped): push is not
 * called. Either way w is gone. */
int mw_wait_done(mw_wait_t *w, mw_wait_push_fn push, void *data);

/* mw_wait_cancel gives w up before mw_wait_yield (the operation could not
 * start): the primitive then returns normally. */
void mw_wait_cancel(mw_wait_t *w);

/* mw_sched_sleep parks the running task of L for ms milliseconds (the
 * primitive behind moonwire.sleep): `return mw_sched_sleep(L, s, ms);`
 * returns true after ms, or nil and mw_wait_begin's why at once. */
int mw_sched_sleep(lua_State *L, mw_sched_t *s, uint64_t ms);

/* mw_sched_spawn starts a task running the function at stack index fn
 * with the nargs values above it (they are moved), once the current
 * dispatch is over. Returns 0, MW_ECLOSED (no server) or MW_ENOMEM. */
int mw_sched_spawn(lua_State *L, mw_sched_t *s, int fn, int nargs);

/* mw_sched_drop ends the spawned task whose thread is co, if it is
 * parked or not yet started: it is never resumed, and its wait ends (the
 * operation gets MW_ECLOSED). For the event bus, which gives up a
 * subscriber's handler past its timeout. Returns 0, or MW_ENOTFOUND when
 * co is no such task (finished, running, or not spawned). */
int mw_sched_drop(mw_sched_t *s, lua_State *co);

/* App timers (moonwire.timer): run the function at stack index fn as a
 * task after ms, and every ms after that when every is set. A run that
 * still waits when the next one is due makes that one skip. Returns the
 * timer's id (> 0), or 0 on MW_ENOMEM / no server. */
uint64_t mw_sched_timer(lua_State *L, mw_sched_t *s, int fn, uint64_t ms, int every);

/* mw_sched_timer_cancel stops a timer (a run in flight finishes).
 * Returns 0 or MW_ENOTFOUND. mw_sched_timers_cancel stops them all. */
int mw_sched_timer_cancel(mw_sched_t *s, uint64_t id);
void mw_sched_timers_cancel(mw_sched_t *s);

/* Counters for /health and /metrics. */
typedef struct {
    uint64_t tasks;    /* tasks started */
    uint64_t waits;    /* waits begun */
    uint64_t timeouts; /* waits that timed out */
    size_t parked;     /* tasks waiting now */
    size_t threads;    /* threads in the pool */
    size_t timers;     /* app timers now */
} mw_sched_stats_t;
void mw_sched_stats(const mw_sched_t *s, mw_sched_stats_t *out);

#endif
