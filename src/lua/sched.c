/*
 * sched.c - tasks (reused coroutines), waits, spawned tasks and app timers.
 *
 * See sched.h for the model. The rules that keep it simple:
 * - Only one task runs at a time, and only from the loop: a wait that
 *   completes while a task runs (an operation that fails at once, a
 *   spawn) does not resume its task inside that one; it goes on the ready
 *   list, which a zero-delay server timer drains after the dispatch.
 * - A wait has two sides, the task and the operation; it is freed when
 *   both are over. The task side ends when the task is resumed or
 *   dropped; the operation side when it calls mw_wait_done (a sleep has
 *   no operation: its timer is the whole wait).
 * - Threads are anchored in the registry. One that finished cleanly goes
 *   back to the pool; one that failed or yielded is left to the collector.
 */
#include "sched.h"
#include "../errors.h"
#include "../idmap.h"
#include "../list.h"
#include "../log.h"
#include "../state.h"
#include "../timers.h"
#include "api.h"

#include <lauxlib.h>
#include <stdlib.h>

/* Idle threads kept; more are made (and collected) under bursts. A task
 * that waits holds its thread meanwhile, so N clients waiting on Redis at
 * once need N threads: below that, every message beyond the pool made a
 * thread and left one to the collector (2.4k instructions a message with
 * 1000 clients, scripts/callgrind-echo --redis --k 1000). An idle one is
 * a few hundred bytes (the collector shrinks thread stacks). */
#define POOL_MAX 1024

struct mw_wait {
    mw_task_t *task;   /* NULL once the task side is over */
    mw_timer_t *timer; /* its timeout (or, for a sleep, its end) */
    int op_open;       /* the operation still holds it */
};

struct mw_task {
    mw_sched_t *sched;
    lua_State *co;
    int ref;
    int kind;
    void *owner;
    mw_wait_t *wait; /* while parked */
    int ready_nargs; /* on the ready list: values pushed for the resume */
    mw_list_t link;  /* sched->tasks, or sched->ready */
};

typedef struct app_timer {
    uint64_t id, ms;
    int every;
    int fn_ref;
    mw_timer_t *timer;
    mw_task_t *running; /* its run in flight */
    mw_sched_t *sched;
} app_timer_t;

struct mw_sched {
    lua_State *L;
    mw_lua_core_t *core;
    mw_sched_resume_fn resume;
    void *data;
    mw_task_t *pool[POOL_MAX]; /* idle tasks, each with its thread */
    int npool;
    mw_task_t *running;
    int in_dispatch;  /* the owner is in a call into Lua (mw_sched_in_dispatch) */
    mw_list_t tasks;  /* started and not freed, but not ready */
    mw_list_t ready;  /* to resume once the dispatch is over */
    mw_timer_t *kick; /* drains ready */
    mw_idmap_t timers;
    uint64_t next_timer_id;
    int stopped;
    mw_sched_stats_t stats;
};

static mw_server_t *server_of(const mw_sched_t *s) {
    return mw_lua_core_server(s->core);
}

mw_sched_t *mw_sched_create(lua_State *L, mw_lua_core_t *core, mw_sched_resume_fn resume,
                            void *data) {
    mw_sched_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->L = L;
    s->core = core;
    s->resume = resume;
    s->data = data;
    mw_list_init(&s->tasks);
    mw_list_init(&s->ready);
    mw_idmap_init(&s->timers);
    return s;
}

mw_task_t *mw_task_new(mw_sched_t *s, int kind, void *owner) {
    mw_task_t *t;
    if (s->npool > 0) {
        t = s->pool[--s->npool];
    } else {
        t = malloc(sizeof *t);
        if (!t)
            return NULL;
        t->co = lua_newthread(s->L);
        t->ref = luaL_ref(s->L, LUA_REGISTRYINDEX);
        t->sched = s;
        mw_list_init(&t->link);
    }
    t->kind = kind;
    t->owner = owner;
    t->wait = NULL;
    t->ready_nargs = -1;
    s->stats.tasks++;
    return t;
}

lua_State *mw_task_thread(const mw_task_t *t) {
    return t->co;
}

int mw_task_kind(const mw_task_t *t) {
    return t->kind;
}

void *mw_task_owner(const mw_task_t *t) {
    return t->owner;
}

void mw_task_set_owner(mw_task_t *t, void *owner) {
    t->owner = owner;
}

void mw_sched_in_dispatch(mw_sched_t *s, int on) {
    s->in_dispatch = on;
}

mw_task_t *mw_sched_running(const mw_sched_t *s) {
    return s->running;
}

int mw_task_resume(mw_task_t *t, int nargs) {
    mw_sched_t *s = t->sched;
    mw_task_t *prev = s->running;
    s->running = t;
    int rc = lua_resume(t->co, nargs);
    s->running = prev;
    if (rc == LUA_YIELD) {
        if (!t->wait)
            return MW_TASK_YIELDED;
        /* Parked: known to the scheduler until it is resumed or dropped
         * (mw_sched_stop). Tasks that run through are never listed. */
        if (!mw_list_linked(&t->link))
            mw_list_insert_tail(&s->tasks, &t->link);
        return MW_TASK_WAITING;
    }
    return rc == 0 ? MW_TASK_DONE : MW_TASK_ERROR;
}

/* end_wait_task_side: the task will not be resumed by w any more. */
static void end_wait_task_side(mw_wait_t *w) {
    if (w->timer) {
        mw_timer_stop(w->timer);
        w->timer = NULL;
    }
    w->task = NULL;
    if (!w->op_open)
        free(w);
}

void mw_task_free(mw_task_t *t) {
    mw_sched_t *s = t->sched;
    if (t->wait) {
        end_wait_task_side(t->wait);
        t->wait = NULL;
        s->stats.parked--;
    }
    if (t->kind == MW_TASK_TIMER && t->owner)
        ((app_timer_t *)t->owner)->running = NULL;
    if (mw_list_linked(&t->link))
        mw_list_remove(&t->link);
    if (lua_status(t->co) == 0 && s->npool < POOL_MAX && !s->stopped) {
        lua_settop(t->co, 0);
        s->pool[s->npool++] = t;
        return;
    }
    luaL_unref(s->L, LUA_REGISTRYINDEX, t->ref);
    free(t);
}

static void on_kick(void *data);

/* wake resumes a task whose wait is over, nargs values pushed: now, or
 * after the running dispatch. */
static void wake(mw_task_t *t, int nargs) {
    mw_sched_t *s = t->sched;
    if (!s->running && !s->in_dispatch && mw_list_empty(&s->ready)) {
        s->resume(s->data, t, nargs);
        return;
    }
    if (mw_list_linked(&t->link))
        mw_list_remove(&t->link);
    mw_list_insert_tail(&s->ready, &t->link);
    t->ready_nargs = nargs;
    mw_server_t *srv = server_of(s);
    if (!s->kick && srv && mw_timer_start(mw_server_timers(srv), 0, on_kick, s, &s->kick) != 0)
        s->kick = NULL; /* out of memory: the next wake tries again */
}

static void on_kick(void *data) {
    mw_sched_t *s = data;
    s->kick = NULL;
    while (!mw_list_empty(&s->ready)) {
        mw_task_t *t = mw_list_entry(s->ready.next, mw_task_t, link);
        int nargs = t->ready_nargs;
        mw_list_remove(&t->link);
        t->ready_nargs = -1;
        s->resume(s->data, t, nargs);
    }
}

static void on_wait_timeout(void *data);

/* begin makes the wait of the running task of L: op says whether an
 * operation will complete it; a timer (ms, cb) is armed when ms > 0 or
 * when it is the whole wait (a sleep). NULL with *why when L cannot wait. */
static mw_wait_t *begin(lua_State *L, mw_sched_t *s, uint64_t ms, int op, mw_timer_cb cb,
                        const char **why) {
    mw_task_t *t = s ? s->running : NULL;
    if (!t || t->co != L) {
        *why = t ? "cannot wait inside a coroutine the app created (only in the handler's own)"
                 : "cannot wait here (only in a handler, hook, timer or spawned task)";
        return NULL;
    }
    mw_server_t *srv = server_of(s);
    if (!srv || s->stopped) {
        *why = "not serving";
        return NULL;
    }
    mw_wait_t *w = calloc(1, sizeof *w);
    if (!w || ((ms || !op) && mw_timer_start(mw_server_timers(srv), ms, cb, w, &w->timer) != 0)) {
        free(w);
        *why = "out of memory";
        return NULL;
    }
    w->task = t;
    w->op_open = op;
    t->wait = w;
    s->stats.waits++;
    s->stats.parked++;
    return w;
}

mw_wait_t *mw_wait_begin(lua_State *L, mw_sched_t *s, uint64_t timeout_ms, const char **why) {
    return begin(L, s, timeout_ms, 1, on_wait_timeout, why);
}

static void on_wait_timeout(void *data) {
    mw_wait_t *w = data;
    mw_task_t *t = w->task;
    w->timer = NULL; /* freed by timers.c */
    t->wait = NULL;
    t->sched->stats.parked--;
    t->sched->stats.timeouts++;
    w->task = NULL;
    if (!w->op_open)
        free(w);
    lua_pushnil(t->co);
    lua_pushliteral(t->co, "timeout");
    wake(t, 2);
}

int mw_wait_yield(lua_State *L) {
    return lua_yield(L, 0);
}

void mw_wait_cancel(mw_wait_t *w) {
    mw_task_t *t = w->task;
    if (t) {
        t->wait = NULL;
        t->sched->stats.parked--;
    }
    w->op_open = 0;
    end_wait_task_side(w);
}

int mw_wait_done(mw_wait_t *w, mw_wait_push_fn push, void *data) {
    mw_task_t *t = w->task;
    w->op_open = 0;
    if (!t) {
        free(w);
        return MW_ECLOSED;
    }
    t->wait = NULL;
    t->sched->stats.parked--;
    end_wait_task_side(w); /* frees w */
    int n = push ? push(t->co, data) : 0;
    wake(t, n);
    return 0;
}

/* A sleep's end: its timer fired. */
static void on_sleep_end(void *data) {
    mw_wait_t *w = data;
    mw_task_t *t = w->task;
    w->timer = NULL;
    t->wait = NULL;
    t->sched->stats.parked--;
    free(w);
    lua_pushboolean(t->co, 1);
    wake(t, 1);
}

int mw_sched_sleep(lua_State *L, mw_sched_t *s, uint64_t ms) {
    const char *why = NULL;
    if (!begin(L, s, ms, 0, on_sleep_end, &why)) {
        lua_pushnil(L);
        lua_pushstring(L, why);
        return 2;
    }
    return mw_wait_yield(L);
}

int mw_sched_spawn(lua_State *L, mw_sched_t *s, int fn, int nargs) {
    if (!server_of(s) || s->stopped)
        return MW_ECLOSED;
    mw_task_t *t = mw_task_new(s, MW_TASK_SPAWN, NULL);
    if (!t)
        return MW_ENOMEM;
    lua_pushvalue(L, fn);
    lua_xmove(L, t->co, 1);
    for (int i = 1; i <= nargs; i++)
        lua_pushvalue(L, fn + i);
    lua_xmove(L, t->co, nargs);
    /* Started after the running dispatch, like a wait that completed. */
    mw_list_insert_tail(&s->ready, &t->link);
    t->ready_nargs = nargs;
    if (!s->kick && mw_timer_start(mw_server_timers(server_of(s)), 0, on_kick, s, &s->kick) != 0) {
        s->kick = NULL;
        mw_task_free(t);
        return MW_ENOMEM;
    }
    return 0;
}

/* find_spawned looks for co among the tasks of list (parked or ready). */
static mw_task_t *find_spawned(mw_list_t *list, lua_State *co) {
    for (mw_list_t *l = list->next; l != list; l = l->next) {
        mw_task_t *t = mw_list_entry(l, mw_task_t, link);
        if (t->co == co)
            return t->kind == MW_TASK_SPAWN ? t : NULL;
    }
    return NULL;
}

int mw_sched_drop(mw_sched_t *s, lua_State *co) {
    mw_task_t *t = find_spawned(&s->tasks, co);
    if (!t)
        t = find_spawned(&s->ready, co);
    if (!t || t == s->running)
        return MW_ENOTFOUND;
    mw_task_free(t);
    return 0;
}

static void free_timer(app_timer_t *at) {
    mw_sched_t *s = at->sched;
    if (at->timer)
        mw_timer_stop(at->timer);
    if (at->running)
        at->running->owner = NULL;
    mw_idmap_del(&s->timers, at->id);
    luaL_unref(s->L, LUA_REGISTRYINDEX, at->fn_ref);
    s->stats.timers--;
    free(at);
}

static void on_app_timer(void *data) {
    app_timer_t *at = data;
    mw_sched_t *s = at->sched;
    at->timer = NULL;
    int skip = at->running != NULL;
    if (at->every &&
        mw_timer_start(mw_server_timers(server_of(s)), at->ms, on_app_timer, at, &at->timer) != 0)
        at->timer = NULL; /* out of memory: this timer stops */
    if (skip) {
        mw_log_debug("timer %llu: the previous run still waits; skipping this one",
                     (unsigned long long)at->id);
        return;
    }
    mw_task_t *t = mw_task_new(s, MW_TASK_TIMER, at);
    if (!t) {
        mw_log_error("timer %llu: out of memory; run skipped", (unsigned long long)at->id);
        return;
    }
    at->running = t;
    lua_rawgeti(s->L, LUA_REGISTRYINDEX, at->fn_ref);
    lua_xmove(s->L, t->co, 1);
    if (!at->timer && !at->every) {
        /* One-shot, fired: the record goes, the run carries on alone. */
        at->running = NULL;
        t->owner = NULL;
        free_timer(at);
    }
    s->resume(s->data, t, 0);
}

uint64_t mw_sched_timer(lua_State *L, mw_sched_t *s, int fn, uint64_t ms, int every) {
    mw_server_t *srv = server_of(s);
    if (!srv || s->stopped)
        return 0;
    app_timer_t *at = calloc(1, sizeof *at);
    if (!at)
        return 0;
    at->sched = s;
    at->ms = ms;
    at->every = every;
    at->id = ++s->next_timer_id;
    if (mw_idmap_put(&s->timers, at->id, at) != 0 ||
        mw_timer_start(mw_server_timers(srv), ms, on_app_timer, at, &at->timer) != 0) {
        mw_idmap_del(&s->timers, at->id);
        free(at);
        return 0;
    }
    lua_pushvalue(L, fn);
    at->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    s->stats.timers++;
    return at->id;
}

int mw_sched_timer_cancel(mw_sched_t *s, uint64_t id) {
    app_timer_t *at = mw_idmap_get(&s->timers, id);
    if (!at)
        return MW_ENOTFOUND;
    free_timer(at);
    return 0;
}

void mw_sched_timers_cancel(mw_sched_t *s) {
    for (size_t i = 0; i < s->timers.cap; i++) {
        uint64_t id = s->timers.keys ? s->timers.keys[i] : 0;
        if (id && s->timers.vals[i])
            mw_sched_timer_cancel(s, id);
    }
}

void mw_sched_stop(mw_sched_t *s) {
    s->stopped = 1;
    mw_sched_timers_cancel(s);
    if (s->kick) {
        mw_timer_stop(s->kick);
        s->kick = NULL;
    }
    while (!mw_list_empty(&s->ready))
        mw_task_free(mw_list_entry(s->ready.next, mw_task_t, link));
    while (!mw_list_empty(&s->tasks))
        mw_task_free(mw_list_entry(s->tasks.next, mw_task_t, link));
}

void mw_sched_free(mw_sched_t *s) {
    if (!s)
        return;
    mw_sched_stop(s);
    for (int i = 0; i < s->npool; i++) {
        luaL_unref(s->L, LUA_REGISTRYINDEX, s->pool[i]->ref);
        free(s->pool[i]);
    }
    mw_idmap_free(&s->timers);
    free(s);
}

void mw_sched_stats(const mw_sched_t *s, mw_sched_stats_t *out) {
    *out = s->stats;
    out->threads = (size_t)s->npool;
}
