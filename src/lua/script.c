/*
 * script.c - the Lua state of a worker and every call into it.
 *
 * The C core never calls Lua anywhere else. Each event becomes one
 * protected call of a function of moonwire.runtime (see docs/boundary.md)
 * with a traceback handler at a fixed stack slot; an error that escapes the
 * runtime's own protection is logged here with its traceback, and the
 * server carries on. App policy (routing, errors sent to clients, reload
 * semantics) lives in lua/moonwire/runtime.lua, not here.
 *
 * It also bounds what one dispatch may take (docs/security.md, "Lua
 * isolation"): LuaJIT's allocator is wrapped so the state never holds more
 * than lua_memory_limit bytes, and a watchdog thread (watchdog.c) that
 * sees a dispatch run past script_timeout has this file arm a count hook
 * that raises "script timeout" in interpreted code. Neither costs the hot
 * path more than a compare per allocation and a few atomic stores per
 * dispatch: the hook is only set once a dispatch has overrun.
 */
#include "script.h"
#include "../errors.h"
#include "../health.h"
#include "../latency.h"
#include "../list.h"
#include "../log.h"
#include "../metrics.h"
#include "../state.h"
#include "../watchdog.h"
#include "api.h"
#include "config_lua.h"
#include "hub_lua.h"
#include "nats_lua.h"
#include "redis_lua.h"
#include "shdict_lua.h"
#include "wsclient_lua.h"
#include "sched.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define TRACEBACK_SLOT 1 /* in the server's own state, the message handler sits here */

/* The runtime functions each event calls (docs/boundary.md). The first
 * FN_EVENTS are what an attached script takes from its handlers table.
 * message_failed answers and logs a message whose task raised. */
enum {
    FN_UPGRADE,
    FN_OPEN,
    FN_MESSAGE,
    FN_MESSAGE_FAILED,
    FN_DISCONNECT,
    FN_RELOAD,
    FN_START,
    FN_ROUTES,
    FN_SUBSCRIBERS,
    FN_COUNT
};
#define FN_EVENTS (FN_START + 1)
static const char *const fn_names[FN_COUNT] = {"upgrade",        "open",       "message",
                                               "message_failed", "disconnect", "reload",
                                               "start",          "routes",     "subscriber_lines"};

struct mw_script {
    lua_State *L;
    int owned;           /* L is ours (the server), not borrowed (specs) */
    int traceback_ref;   /* borrowed states: the message handler, pushed per call */
    mw_lua_core_t *core; /* the moonwire.core context of this state */
    mw_app_t app;        /* what the server calls: this script's callbacks */
    int app_ref;         /* config.lua's `app` table, or LUA_NOREF */
    int fns[FN_COUNT];   /* refs to moonwire.runtime functions */
    int ready;
    uint64_t calls, calls_at_idle; /* events handled; the count at the last idle check */
    int depth;                     /* nesting of call(): only the outermost one is a dispatch */

    /* Memory cap. LuaJIT's own allocator does the work; capped_alloc counts. */
    lua_Alloc inner_alloc;
    void *inner_ud;
    size_t used;        /* bytes the state holds (what LUA_GCCOUNT says) */
    size_t limit;       /* lua_memory_limit; 0: unlimited */
    size_t cap;         /* what the heap may reach now: SIZE_MAX outside a
                           dispatch (only inside a protected call is a refusal
                           a Lua error rather than a panic) */
    size_t gc_at;       /* past this at the end of a dispatch: a full collection */
    size_t watch_at;    /* past this at the end of a dispatch: retune the collector */
    int pause, stepmul; /* the collector's settings now */
    int hit;            /* the running dispatch had an allocation refused */
    int full;           /* live data stays near the limit: messages are refused */
    int full_ticks;
    uint64_t calls_at_full_check;
    uint64_t limit_hits, refused_messages;
    uint64_t cur_id; /* the client of the running dispatch, or 0 */
    int http_ref;    /* runtime.http (plain HTTP requests), or LUA_NOREF */

    /* Script timeout. */
    mw_watchdog_t *wd;
    int timeout_ms;
    volatile sig_atomic_t hook_armed; /* set by the signal handler */
    int interrupting;                 /* the running dispatch was told it timed out */
    uint64_t timeouts;
    char *runtime_src; /* "@<luadir>/moonwire/": the runtime's own chunks */
    size_t runtime_src_len;

    /* Tasks (sched.h): every entry into app Lua runs in one. */
    mw_sched_t *sched;
    mw_list_t clients;    /* client_t: clients with a task that waits */
    int stopped;          /* the server stopped: nothing waits any more */
    mw_task_t *upgrading; /* the upgrade task app_upgrade runs now */
    int upgrade_status;   /* ... and what it decided, when it did not wait */
    char upgrade_msg[256];

    /* Handling time per route (/metrics): when the message that runs now
     * started, unless it waited (then its client_t keeps it). */
    mw_latency_t latency;
    uint64_t msg_start;
    unsigned *route; /* the route of the running message (api.h) */
};

/* Task kinds of this file (sched.h numbers the scheduler's own). */
enum {
    TASK_MESSAGE = MW_TASK_KIND_OWNER,
    TASK_UPGRADE,
    TASK_OPEN,
    TASK_CLOSE,
    TASK_START,
    TASK_HTTP /* owner: the request id */
};

/* A message or the disconnect of a client, waiting for the client's
 * task to finish. */
typedef struct pending {
    struct pending *next;
    int binary;
    size_t len;
    char data[];
} pending_t;

/* client_t: what this file keeps about a client only while one of its
 * tasks waits (mw_conn_app_data): events are handled one at a time, in
 * arrival order, so the ones that arrive meanwhile queue here. */
typedef struct client {
    mw_conn_t *c; /* valid until released: the core keeps a closed
                     connection whose close we answered MW_EPENDING */
    uint64_t id;
    mw_task_t *busy; /* the task handling its current event */
    pending_t *head, *tail;
    size_t n;
    int closed;        /* the close arrived: the disconnect runs last */
    int close_started; /* ... and has started */
    int held;          /* the core waits for mw_conn_release */
    unsigned code;
    char *reason;
    size_t rlen;
    uint64_t msg_start; /* while a message's task waits: when it started */
    unsigned route;     /* ... and the route it was routed to (0: none yet) */
    mw_list_t link;     /* sc->clients */
} client_t;

static const char script_key; /* registry: this state's mw_script_t */

/* Extra room a dispatch gets once an allocation was refused, so the error
 * can still be caught, logged and answered: 1/16 of the limit, >= 1 MiB. */
static size_t headroom(size_t limit) {
    return limit / 16 > ((size_t)1 << 20) ? limit / 16 : (size_t)1 << 20;
}

/* capped_alloc wraps LuaJIT's allocator (lua_getallocf/lua_setallocf; in
 * this GC64 build lua_newstate would take a custom allocator too, but
 * LuaJIT's own is faster than malloc). Growth past the cap fails only
 * inside a protected call, where LuaJIT turns it into a "not enough
 * memory" error, also from JIT-compiled code; shrinking and freeing never
 * fail. Main thread only, like everything in the state. */
static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    mw_script_t *sc = ud;
    if (nsize > osize && sc->used + (nsize - osize) > sc->cap) {
        if (!sc->hit) {
            sc->hit = 1;
            sc->cap = sc->limit + headroom(sc->limit);
        }
        return NULL;
    }
    void *p = sc->inner_alloc(sc->inner_ud, ptr, osize, nsize);
    if (p || nsize == 0)
        sc->used = sc->used - osize + nsize;
    return p;
}

static int collect_cb(lua_State *L) {
    lua_gc(L, (int)(intptr_t)lua_touserdata(L, 1), 0); /* the cpcall ud: what to do */
    return 0;
}

/* gc runs a collection (LUA_GCCOLLECT) or one step (LUA_GCSTEP) in
 * protected mode: LuaJIT re-raises an error from a __gc metamethod, which
 * must not reach the panic handler. */
static void gc(mw_script_t *sc, int what) {
    if (lua_cpcall(sc->L, collect_cb, (void *)(intptr_t)what) != 0) {
        mw_log_error("lua error in a __gc metamethod: %s", lua_tostring(sc->L, -1));
        lua_pop(sc->L, 1);
    }
}

static double mib(size_t bytes) {
    return (double)bytes / (1024.0 * 1024.0);
}

/* tune paces LuaJIT's incremental collector for `live` bytes of live data.
 * LuaJIT has no emergency collection: an allocation refused at the limit
 * fails even if garbage could have been freed. With its defaults (pause
 * 200%, stepmul 200%) the next cycle starts at twice the live size, so past
 * about a third of the limit uncollected garbage would hit the limit first.
 * Here the next cycle starts halfway between live data and the limit and
 * runs fast enough (stepmul ~ live / room) to end before it. Below a
 * quarter of the limit the defaults stay. */
static void tune(mw_script_t *sc, size_t live) {
    size_t limit = sc->limit;
    int pause = 200, stepmul = 200;
    if (live > limit / 4) {
        size_t room = live < limit ? (limit - live) / 2 : 0;
        pause = room ? (int)(100 * (live + room) / live) : 105;
        stepmul = room && 200 * (live / room) < 2000 ? (int)(200 * live / room) : 2000;
        pause = pause < 105 ? 105 : pause > 200 ? 200 : pause;
        stepmul = stepmul < 200 ? 200 : stepmul;
    }
    if (pause != sc->pause || stepmul != sc->stepmul) {
        lua_gc(sc->L, LUA_GCSETPAUSE, pause);
        lua_gc(sc->L, LUA_GCSETSTEPMUL, stepmul);
        sc->pause = pause;
        sc->stepmul = stepmul;
    }
}

/* check_memory runs after a dispatch that hit the limit or left the heap
 * past watch_at. A hit, or a heap past gc_at, gets a full collection, then
 * the "full" state (live data over 90% of the limit) that refuses messages
 * until it drops below 75% (mw_script_idle rechecks). Otherwise the heap
 * only grew: the collector is retuned and its cycle started now, while the
 * current threshold (set with the old pause) may lie past the limit. */
static void check_memory(mw_script_t *sc, const char *what, uint64_t id) {
    int hit = sc->hit;
    size_t limit = sc->limit;
    sc->hit = 0;
    if (hit || sc->used > sc->gc_at) {
        /* The collection sets the next threshold from the pause it finds:
         * tuned for the heap now (an over-estimate of live data, so a
         * threshold on the safe side), then again for what stays. */
        tune(sc, sc->used);
        gc(sc, LUA_GCCOLLECT);
        size_t live = sc->used, floor = limit / 4 * 3;
        sc->gc_at = live + limit / 16 > floor ? live + limit / 16 : floor;
        tune(sc, live);
        if (hit) {
            sc->limit_hits++;
            mw_log_warn("lua_memory_limit (%.1f MiB) reached in %s (client %llu); %.1f MiB in "
                        "use after a full collection",
                        mib(limit), what, (unsigned long long)id, mib(live));
        }
        if (!sc->full && live > limit / 10 * 9) {
            sc->full = 1;
            sc->full_ticks = 0;
            sc->calls_at_full_check = sc->calls;
            mw_log_error("Lua memory stays at %.1f MiB after a full collection, over 90%% of "
                         "lua_memory_limit (%.1f MiB): messages are answered with "
                         "INTERNAL_ERROR until it drops below 75%%",
                         mib(live), mib(limit));
        }
    } else {
        tune(sc, sc->used);
        gc(sc, LUA_GCSTEP);
    }
    size_t next = sc->used + limit / 32;
    sc->watch_at = next < limit / 4 ? limit / 4 : next > sc->gc_at ? sc->gc_at : next;
}

/* Stops the count hook. The interrupt signal is blocked meanwhile so its
 * handler never runs lua_sethook in the middle of ours. */
static void disarm(mw_script_t *sc) {
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, MW_WATCHDOG_SIGNAL);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    lua_sethook(sc->L, NULL, 0, 0);
    sc->hook_armed = 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* timeout_hook runs before every Lua instruction once armed (interpreter
 * only: LuaJIT's compiled traces never check hooks). It raises "script
 * timeout" at every instruction of app code, so an app's pcall cannot
 * swallow it, and lets the runtime's own code (lua/moonwire/) run, so the
 * runtime can log the traceback and answer the client. */
static void timeout_hook(lua_State *L, lua_Debug *ar) {
    lua_pushlightuserdata(L, (void *)&script_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    mw_script_t *sc = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!sc)
        return;
    if (!sc->wd || !mw_watchdog_interrupted(sc->wd)) {
        disarm(sc); /* a late signal, after the dispatch it was for */
        return;
    }
    if (lua_getinfo(L, "S", ar) && ar->source &&
        strncmp(ar->source, sc->runtime_src, sc->runtime_src_len) == 0)
        return;
    if (!sc->interrupting) {
        sc->interrupting = 1;
        sc->timeouts++;
    }
    /* A C hook adds no frame: level 0 is the interrupted Lua function. */
    luaL_where(L, 0);
    lua_pushfstring(L, "%sscript timeout (ran longer than script_timeout = %d ms)",
                    lua_tostring(L, -1), sc->timeout_ms);
    lua_error(L);
}

/* on_interrupt runs in the watchdog's signal handler on the loop thread.
 * lua_sethook is the one Lua API call made for this (LuaJIT's own lua.c
 * does the same on SIGINT): it takes effect at the next instruction the
 * interpreter runs. */
static void on_interrupt(void *data) {
    mw_script_t *sc = data;
    lua_sethook(sc->L, timeout_hook, LUA_MASKCOUNT, 1);
    sc->hook_armed = 1;
}

static void enter(mw_script_t *sc, const char *what, uint64_t id) {
    if (sc->depth++ > 0)
        return;
    if (sc->sched)
        mw_sched_in_dispatch(sc->sched, 1);
    sc->cur_id = id;
    if (sc->wd)
        mw_watchdog_enter(sc->wd, what, id);
    if (sc->limit)
        sc->cap = sc->limit;
}

static void leave(mw_script_t *sc, const char *what) {
    if (--sc->depth > 0)
        return;
    if (sc->sched)
        mw_sched_in_dispatch(sc->sched, 0);
    sc->cap = SIZE_MAX;
    if (sc->wd) {
        if (sc->hook_armed)
            disarm(sc);
        sc->interrupting = 0;
        mw_watchdog_leave(sc->wd);
    }
    if (sc->limit && (sc->hit || sc->used > sc->watch_at))
        check_memory(sc, what, sc->cur_id);
}

static int traceback(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (!msg)
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static const mw_app_callbacks_t app_callbacks; /* below */

/* ref_http keeps the `http` function of the table at idx (the runtime, or
 * an attached script's handlers): what plain HTTP requests call. Without
 * one, the core answers them 404. */
static void ref_http(mw_script_t *sc, int idx) {
    lua_getfield(sc->L, idx, "http");
    if (lua_isfunction(sc->L, -1)) {
        luaL_unref(sc->L, LUA_REGISTRYINDEX, sc->http_ref);
        sc->http_ref = luaL_ref(sc->L, LUA_REGISTRYINDEX);
    } else {
        lua_pop(sc->L, 1);
    }
}

static void on_resume(void *data, mw_task_t *t, int nargs);

/* init_common sets what both kinds of script start with. Returns 0 or
 * MW_ENOMEM (the scheduler). */
static int init_common(mw_script_t *sc) {
    sc->app_ref = LUA_NOREF;
    mw_list_init(&sc->clients);
    sc->sched = mw_sched_create(sc->L, sc->core, on_resume, sc);
    if (!sc->sched)
        return MW_ENOMEM;
    mw_lua_core_set_sched(sc->core, sc->sched);
    sc->route = mw_lua_core_route(sc->core);
    mw_lua_core_set_latency(sc->core, &sc->latency);
    sc->traceback_ref = LUA_NOREF;
    sc->http_ref = LUA_NOREF;
    for (int i = 0; i < FN_COUNT; i++)
        sc->fns[i] = LUA_NOREF;
    sc->app.cb = &app_callbacks;
    sc->app.data = sc;
    return 0;
}

static int lua_absindex_(lua_State *L, int idx) {
    return idx > 0 || idx <= LUA_REGISTRYINDEX ? idx : lua_gettop(L) + idx + 1;
}

int mw_script_create(mw_script_t **out, const char *luadir) {
    mw_script_t *sc = calloc(1, sizeof *sc);
    if (!sc)
        return MW_ENOMEM;
    size_t n = strlen(luadir) + sizeof "@/moonwire/";
    sc->runtime_src = malloc(n);
    sc->L = sc->runtime_src ? luaL_newstate() : NULL;
    if (!sc->L) {
        free(sc->runtime_src);
        free(sc);
        return MW_ENOMEM;
    }
    sc->runtime_src_len = (size_t)snprintf(sc->runtime_src, n, "@%s/moonwire/", luadir);
    lua_State *L = sc->L;
    sc->cap = SIZE_MAX;
    sc->pause = sc->stepmul = 200; /* LuaJIT's defaults */
    sc->inner_alloc = lua_getallocf(L, &sc->inner_ud);
    sc->used = (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB, 0);
    lua_setallocf(L, capped_alloc, sc);
    lua_pushlightuserdata(L, (void *)&script_key);
    lua_pushlightuserdata(L, sc);
    lua_rawset(L, LUA_REGISTRYINDEX);
    luaL_openlibs(L);
    lua_pushcfunction(L, traceback);
    /* stack: traceback */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", luadir, luadir, lua_tostring(L, -1));
    lua_setfield(L, -3, "path");
    lua_pop(L, 2);
    sc->core = mw_lua_inject_core_api(L);
    sc->owned = 1;
    if (init_common(sc) != 0) {
        lua_close(L);
        free(sc->runtime_src);
        free(sc);
        return MW_ENOMEM;
    }
    *out = sc;
    return 0;
}

int mw_script_attach(mw_script_t **out, lua_State *L, int handlers, mw_lua_core_t *core) {
    handlers = lua_absindex_(L, handlers);
    mw_script_t *sc = calloc(1, sizeof *sc);
    if (!sc)
        return MW_ENOMEM;
    sc->L = L;
    sc->core = core;
    sc->cap = SIZE_MAX;
    if (init_common(sc) != 0) {
        free(sc);
        return MW_ENOMEM;
    }
    lua_pushcfunction(L, traceback);
    sc->traceback_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    for (int i = 0; i < FN_EVENTS; i++) {
        lua_getfield(L, handlers, fn_names[i]);
        if (lua_isfunction(L, -1))
            sc->fns[i] = luaL_ref(L, LUA_REGISTRYINDEX);
        else
            lua_pop(L, 1);
    }
    ref_http(sc, handlers);
    sc->ready = 1;
    *out = sc;
    return 0;
}

void mw_script_set_shdicts(mw_script_t *sc, mw_shdicts_t *set) {
    mw_lua_core_set_shdicts(sc->core, set);
}

int mw_script_set_limits(mw_script_t *sc, long long memory_limit, int timeout_ms) {
    sc->limit = memory_limit > 0 ? (size_t)memory_limit : 0;
    sc->gc_at = sc->limit / 4 * 3;
    sc->watch_at = sc->limit / 4;
    sc->timeout_ms = timeout_ms;
    if (timeout_ms > 0 && !sc->wd) {
        mw_watchdog_opts_t opts = {
            .timeout_ms = (uint64_t)timeout_ms, .interrupt = on_interrupt, .data = sc};
        int rc = mw_watchdog_start(&sc->wd, &opts);
        if (rc != 0)
            return rc;
        mw_lua_core_set_watchdog(sc->core, sc->wd);
    }
    return 0;
}

int mw_script_load_config(mw_script_t *sc, const char *app_dir, mw_config_t *cfg, char *err,
                          size_t errlen) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.lua", app_dir);
    /* The `app` table of a successful load replaces the previous one (a
     * reload reads config.lua again); a failed load keeps it. */
    int ref = LUA_NOREF;
    int rc = mw_lua_load_config(sc->L, path, cfg, &ref, err, errlen);
    if (rc != 0) {
        luaL_unref(sc->L, LUA_REGISTRYINDEX, ref);
        return rc;
    }
    luaL_unref(sc->L, LUA_REGISTRYINDEX, sc->app_ref);
    sc->app_ref = ref;
    return 0;
}

/* call runs the function below the nargs values on top, protected, as one
 * watched dispatch (what: a string literal naming the event; id: the
 * client's, or 0). A borrowed state gets the message handler inserted
 * below the function (the server's own state keeps it at TRACEBACK_SLOT).
 * On error it copies the message to err (if given) or logs it. Either
 * way the caller restores the stack to what it was before it pushed. */
static int call(mw_script_t *sc, int nargs, int nresults, const char *what, uint64_t id, char *err,
                size_t errlen) {
    lua_State *L = sc->L;
    int handler = TRACEBACK_SLOT;
    if (!sc->owned) {
        handler = lua_gettop(L) - nargs;
        lua_rawgeti(L, LUA_REGISTRYINDEX, sc->traceback_ref);
        lua_insert(L, handler);
    }
    sc->calls++;
    enter(sc, what, id);
    int rc = lua_pcall(L, nargs, nresults, handler);
    leave(sc, what);
    if (rc != 0) {
        const char *msg = lua_tostring(L, -1);
        if (err)
            snprintf(err, errlen, "%s", msg ? msg : "unknown error");
        else
            mw_log_error("lua error in %s: %s", what, msg ? msg : "unknown error");
        lua_pop(L, 1);
        return MW_ESCRIPT;
    }
    return 0;
}

/* Entries as tasks (sched.h): every event a client or the clock brings
 * runs in a task, resumed within one dispatch bracket (enter/leave) per
 * stretch between two waits: script_timeout and the memory cap bound each
 * stretch, not the time spent waiting. A client's events run one at a
 * time, in arrival order; the ones that arrive while its task waits queue
 * in its client_t. */

static const char *task_what(int kind) {
    switch (kind) {
    case TASK_MESSAGE: return "message";
    case TASK_UPGRADE: return "upgrade";
    case TASK_OPEN: return "open";
    case TASK_CLOSE: return "disconnect";
    case TASK_START: return "start";
    case TASK_HTTP: return "http";
    case MW_TASK_SPAWN: return "spawned task";
    case MW_TASK_TIMER: return "timer";
    default: return "task";
    }
}

static int client_kind(int kind) {
    return kind == TASK_MESSAGE || kind == TASK_UPGRADE || kind == TASK_OPEN || kind == TASK_CLOSE;
}

/* client_get returns the client's record, creating it. NULL on ENOMEM. */
static client_t *client_get(mw_script_t *sc, mw_conn_t *c) {
    client_t *cl = mw_conn_app_data(c);
    if (cl)
        return cl;
    cl = calloc(1, sizeof *cl);
    if (!cl)
        return NULL;
    cl->c = c;
    cl->id = mw_conn_id(c);
    mw_list_insert_tail(&sc->clients, &cl->link);
    mw_conn_set_app_data(c, cl);
    return cl;
}

/* max_pending_messages, as the server runs now. */
static size_t max_pending(const mw_script_t *sc) {
    mw_server_t *s = mw_lua_core_server(sc->core);
    return s ? (size_t)mw_server_config(s)->max_pending_messages : 32;
}

static void client_free(client_t *cl) {
    while (cl->head) {
        pending_t *p = cl->head;
        cl->head = p->next;
        free(p);
    }
    mw_list_remove(&cl->link);
    free(cl->reason);
    free(cl);
}

/* Handling time (/metrics, moonwire_message_duration_seconds): from the
 * start of a message's task until the task that handles it is over, the
 * time it spent waiting included (that is what the client sees), under
 * the route core.running named (0: the message was never routed). The
 * clock is read when called (mw_server_now_ns), not the loop's cached
 * time, which would make every message answered within one loop
 * iteration take 0. */

static uint64_t clock_ns(const mw_script_t *sc) {
    mw_server_t *s = mw_lua_core_server(sc->core);
    return s ? mw_server_now_ns(s) : 0;
}

/* message_starts: a message's task is about to run for the first time. */
static void message_starts(mw_script_t *sc) {
    sc->msg_start = clock_ns(sc);
    *sc->route = 0;
}

/* message_waits: the message's task of cl parks (first: for the first
 * time); what it started with is kept in cl until it resumes. */
static void message_waits(mw_script_t *sc, client_t *cl, int first) {
    if (first)
        cl->msg_start = sc->msg_start;
    cl->route = *sc->route;
}

/* message_over: a message's task is over; cl is its client when the task
 * had waited, else NULL (it ran through since message_starts). */
static void message_over(mw_script_t *sc, client_t *cl) {
    uint64_t start = cl ? cl->msg_start : sc->msg_start, now = clock_ns(sc);
    mw_latency_observe(&sc->latency, *sc->route, now > start ? now - start : 0);
}

static void run_task(mw_script_t *sc, mw_task_t *t, int nargs, mw_conn_t *c, int refuse);
static void upgrade_decided(mw_script_t *sc, mw_task_t *t, mw_conn_t *c, int raised);
static void start_message(mw_script_t *sc, mw_conn_t *c, client_t *cl, int binary,
                          const char *payload, size_t len);
static void start_close(mw_script_t *sc, mw_conn_t *c, client_t *cl, unsigned code,
                        const char *reason, size_t len);

/* advance runs the client's next queued events once its task is over,
 * until one waits; a client with nothing left loses its record (and,
 * closed, its connection). A task it starts that finishes at once does
 * not come back here (its client was not busy with it): no recursion. */
static void advance(mw_script_t *sc, client_t *cl) {
    while (!cl->busy) {
        if (cl->head) {
            pending_t *p = cl->head;
            cl->head = p->next;
            if (!cl->head)
                cl->tail = NULL;
            cl->n--;
            if (cl->n < max_pending(sc) && !cl->closed)
                mw_conn_hold(cl->c, 0);
            start_message(sc, cl->c, cl, p->binary, p->data, p->len);
            free(p);
            continue;
        }
        if (cl->closed && !cl->close_started) {
            cl->close_started = 1;
            start_close(sc, cl->c, cl, cl->code, cl->reason ? cl->reason : "", cl->rlen);
            continue;
        }
        break;
    }
    if (cl->busy)
        return;
    mw_conn_t *c = cl->c;
    int release = cl->held;
    mw_conn_set_app_data(c, NULL);
    client_free(cl);
    if (release)
        mw_conn_release(c); /* the disconnect ran: memberships and id go now */
}

/* task_over frees a task that will not run again and moves its client on. */
static void task_over(mw_script_t *sc, mw_task_t *t) {
    int kind = mw_task_kind(t);
    client_t *cl = client_kind(kind) ? mw_task_owner(t) : NULL;
    if (kind == TASK_MESSAGE)
        message_over(sc, cl && cl->busy == t ? cl : NULL);
    mw_task_free(t);
    if (cl && cl->busy == t) {
        cl->busy = NULL;
        advance(sc, cl);
    }
}

/* parked: t waits. A client's task makes the client busy. */
static void parked(mw_script_t *sc, mw_task_t *t, mw_conn_t *c) {
    if (sc->stopped) {
        mw_log_warn("%s of client %llu waits while the server stops: given up",
                    task_what(mw_task_kind(t)), (unsigned long long)(c ? mw_conn_id(c) : 0));
        task_over(sc, t);
        return;
    }
    if (!client_kind(mw_task_kind(t)) || !c)
        return;
    client_t *cl = mw_task_owner(t);
    if (!cl) {
        cl = client_get(sc, c);
        if (!cl) {
            mw_log_error("client %llu: out of memory; its waiting handler is dropped",
                         (unsigned long long)mw_conn_id(c));
            mw_task_free(t);
            return;
        }
        mw_task_set_owner(t, cl);
        if (mw_task_kind(t) == TASK_CLOSE)
            cl->closed = cl->close_started = 1;
    }
    if (mw_task_kind(t) == TASK_MESSAGE)
        message_waits(sc, cl, cl->busy != t);
    cl->busy = t;
}

/* Pushes the task's thread (a Lua value) on L. */
static void push_thread(lua_State *L, mw_task_t *t) {
    lua_State *co = mw_task_thread(t);
    lua_pushthread(co);
    lua_xmove(co, L, 1);
}

static const char yield_msg[] = "coroutine.yield reached the handler's own coroutine: a handler "
                                "waits only through moonwire's APIs (moonwire.sleep, Redis calls, "
                                "...), not by yielding";

/* failed handles a task that raised or yielded bare (the error value, or
 * the yielded values, on its thread). A message is answered by
 * runtime.message_failed(err, thread), run as a new task in its place
 * (it may run the app's on_error, which may wait): returned, with its
 * status in *st. Anything else is logged with its traceback. */
static mw_task_t *failed(mw_script_t *sc, mw_task_t *t, mw_conn_t *c, int *st) {
    lua_State *co = mw_task_thread(t), *L = sc->L;
    int kind = mw_task_kind(t);
    if (*st == MW_TASK_YIELDED) {
        lua_settop(co, 0);
        luaL_where(co, 0);
        lua_pushfstring(co, "%s%s", lua_tostring(co, -1), yield_msg);
        lua_remove(co, -2);
    }
    if (kind == TASK_MESSAGE && sc->fns[FN_MESSAGE_FAILED] != LUA_NOREF) {
        mw_task_t *t2 = mw_task_new(sc->sched, TASK_MESSAGE, mw_task_owner(t));
        if (t2) {
            lua_State *co2 = mw_task_thread(t2);
            lua_rawgeti(co2, LUA_REGISTRYINDEX, sc->fns[FN_MESSAGE_FAILED]);
            lua_xmove(co, co2, 1); /* the error */
            push_thread(co2, t);
            client_t *cl = mw_task_owner(t);
            if (cl && cl->busy == t)
                cl->busy = t2;
            mw_task_free(t);
            *st = mw_task_resume(t2, 2);
            if (*st == MW_TASK_ERROR || *st == MW_TASK_YIELDED) {
                mw_log_error("lua error in message_failed: %s", lua_tostring(co2, -1));
                *st = MW_TASK_DONE;
            }
            return t2;
        }
    }
    const char *msg = lua_tostring(co, -1);
    if (!msg)
        msg = lua_pushfstring(co, "(error object is a %s value)", luaL_typename(co, -1));
    luaL_traceback(L, co, msg, 0);
    mw_log_error("lua error in %s%s%.0llu: %s", task_what(kind), c ? " of client " : "",
                 (unsigned long long)(c ? mw_conn_id(c) : 0), lua_tostring(L, -1));
    lua_pop(L, 1);
    if (kind == TASK_HTTP) {
        /* The runtime answers its own errors; this one escaped it. A
         * request it had answered already is gone: MW_ECLOSED, ignored. */
        static const char body[] = "{\"error\":\"internal error\"}";
        mw_server_t *s = mw_lua_core_server(sc->core);
        if (s)
            mw_server_http_respond(s, (uint64_t)(uintptr_t)mw_task_owner(t), 500, NULL,
                                   "application/json", body, sizeof body - 1);
    }
    *st = MW_TASK_DONE;
    return t;
}

/* upgrade_decided reads what runtime.upgrade returned (nothing to
 * accept; false, status, message to refuse; a raise refuses with 500:
 * authentication never fails open) and applies it: handed back to
 * app_upgrade when it did not wait, else to the core, which kept the
 * connection meanwhile. */
static void upgrade_decided(mw_script_t *sc, mw_task_t *t, mw_conn_t *c, int raised) {
    lua_State *co = mw_task_thread(t);
    int status = 0;
    char msg[256] = "";
    if (raised) {
        status = 500;
        snprintf(msg, sizeof msg, "internal error");
    } else if (lua_gettop(co) >= 1 && lua_type(co, 1) == LUA_TBOOLEAN && !lua_toboolean(co, 1)) {
        lua_Number n = lua_tonumber(co, 2);
        status = n >= 400 && n <= 599 ? (int)n : 403;
        const char *m = lua_tostring(co, 3);
        snprintf(msg, sizeof msg, "%s", m ? m : "forbidden");
    }
    if (sc->upgrading == t) {
        sc->upgrade_status = status;
        memcpy(sc->upgrade_msg, msg, sizeof msg);
        return;
    }
    if (c && mw_conn_upgrade_decided(c, status, msg) != 0)
        mw_log_debug("client %llu left before the decision on its upgrade",
                     (unsigned long long)mw_conn_id(c));
}

/* run_task resumes t (nargs values pushed on its thread) as one dispatch,
 * c being the client it handles (NULL: none, or gone). refuse gives a
 * refused message the memory headroom at once (see call_message's
 * predecessor in docs/security.md). */
static void run_task(mw_script_t *sc, mw_task_t *t, int nargs, mw_conn_t *c, int refuse) {
    const char *what = task_what(mw_task_kind(t));
    if (c)
        mw_lua_core_set_current(sc->core, c);
    sc->calls++;
    enter(sc, what, c ? mw_conn_id(c) : 0);
    if (refuse && sc->limit)
        sc->cap = sc->limit + headroom(sc->limit);
    int st = mw_task_resume(t, nargs);
    int raised = st == MW_TASK_ERROR || st == MW_TASK_YIELDED;
    if (raised)
        t = failed(sc, t, c, &st);
    leave(sc, what);
    if (c)
        mw_lua_core_set_current(sc->core, NULL);
    if (st == MW_TASK_WAITING) {
        parked(sc, t, c);
        return;
    }
    if (mw_task_kind(t) == TASK_UPGRADE)
        upgrade_decided(sc, t, c, raised);
    task_over(sc, t);
}

/* The scheduler's hook: a parked task can go on. */
static void on_resume(void *data, mw_task_t *t, int nargs) {
    mw_script_t *sc = data;
    client_t *cl = client_kind(mw_task_kind(t)) ? mw_task_owner(t) : NULL;
    if (cl && mw_task_kind(t) == TASK_MESSAGE)
        *sc->route = cl->route;
    run_task(sc, t, nargs, cl ? cl->c : NULL, 0);
}

/* new_task makes a task that will call runtime function fn, pushed on its
 * thread, which it returns in *co. NULL (logged) on ENOMEM. */
static mw_task_t *new_task(mw_script_t *sc, int kind, client_t *cl, int fn, lua_State **co) {
    mw_task_t *t = mw_task_new(sc->sched, kind, cl);
    if (!t) {
        mw_log_error("out of memory: %s not run", task_what(kind));
        return NULL;
    }
    *co = mw_task_thread(t);
    lua_rawgeti(*co, LUA_REGISTRYINDEX, sc->fns[fn]);
    return t;
}

static void start_message(mw_script_t *sc, mw_conn_t *c, client_t *cl, int binary,
                          const char *payload, size_t len) {
    message_starts(sc);
    lua_State *co;
    mw_task_t *t = new_task(sc, TASK_MESSAGE, cl, FN_MESSAGE, &co);
    if (!t)
        return;
    lua_pushnumber(co, (lua_Number)mw_conn_id(c));
    lua_pushlstring(co, payload, len);
    lua_pushboolean(co, binary);
    int nargs = 3;
    if (sc->full) {
        lua_pushboolean(co, 1); /* refuse: live data is at the memory limit */
        nargs = 4;
        sc->refused_messages++;
    }
    run_task(sc, t, nargs, c, sc->full);
}

static void start_close(mw_script_t *sc, mw_conn_t *c, client_t *cl, unsigned code,
                        const char *reason, size_t len) {
    lua_State *co;
    mw_task_t *t = new_task(sc, TASK_CLOSE, cl, FN_DISCONNECT, &co);
    if (!t)
        return;
    lua_pushnumber(co, (lua_Number)mw_conn_id(c));
    lua_pushinteger(co, (lua_Integer)code);
    lua_pushlstring(co, reason, len);
    run_task(sc, t, 3, c, 0);
}

/* first_line copies the first line of a traceback ("file:line: message"). */
static void first_line(char *err) {
    char *nl = strchr(err, '\n');
    if (nl)
        *nl = '\0';
}

int mw_script_init_app(mw_script_t *sc, mw_server_t *server, const char *app_dir,
                       const mw_config_t *cfg, const char *mode, char *err, size_t errlen) {
    lua_State *L = sc->L;
    int base = lua_gettop(L);
    mw_lua_core_set_server(sc->core, server);
    lua_getglobal(L, "require");
    lua_pushstring(L, "moonwire.runtime");
    if (call(sc, 1, 1, "require", 0, err, errlen) != 0)
        return MW_ESCRIPT;
    /* stack: runtime */
    if (!lua_istable(L, -1)) {
        snprintf(err, errlen, "moonwire.runtime did not return a table");
        lua_settop(L, base);
        return MW_ESCRIPT;
    }
    for (int i = 0; i < FN_COUNT; i++) {
        lua_getfield(L, -1, fn_names[i]);
        if (!lua_isfunction(L, -1)) {
            snprintf(err, errlen, "moonwire.runtime.%s is not a function", fn_names[i]);
            lua_settop(L, base);
            return MW_ESCRIPT;
        }
        sc->fns[i] = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    ref_http(sc, -1);
    lua_getfield(L, -1, "init");
    lua_createtable(L, 0, 3);
    lua_pushstring(L, app_dir);
    lua_setfield(L, -2, "app_dir");
    mw_lua_push_config(L, cfg, sc->app_ref);
    lua_setfield(L, -2, "config");
    lua_pushstring(L, mode);
    lua_setfield(L, -2, "mode");
    /* stack: runtime init opts */
    if (call(sc, 1, 2, "init", 0, err, errlen) != 0) {
        first_line(err);
        lua_settop(L, base);
        return MW_ESCRIPT;
    }
    /* stack: runtime ok err */
    int ok = lua_toboolean(L, -2);
    if (!ok)
        snprintf(err, errlen, "%s",
                 lua_isstring(L, -1) ? lua_tostring(L, -1) : "app failed to load");
    lua_settop(L, base);
    sc->ready = ok;
    return ok ? 0 : MW_ESCRIPT;
}

/* print_lines writes the strings of the list that runtime function fn
 * returns, one per line, indented. Returns the count or MW_ESCRIPT. */
static int print_lines(mw_script_t *sc, int fn, FILE *out) {
    lua_State *L = sc->L;
    int base = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, sc->fns[fn]);
    if (call(sc, 0, 1, fn_names[fn], 0, NULL, 0) != 0)
        return MW_ESCRIPT;
    int n = 0;
    if (lua_istable(L, -1)) {
        n = (int)lua_objlen(L, -1);
        for (int i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            fprintf(out, "  %s\n", lua_tostring(L, -1));
            lua_pop(L, 1);
        }
    }
    lua_settop(L, base);
    return n;
}

int mw_script_print_routes(mw_script_t *sc, FILE *out) {
    return print_lines(sc, FN_ROUTES, out);
}

int mw_script_print_subscribers(mw_script_t *sc, FILE *out) {
    return print_lines(sc, FN_SUBSCRIBERS, out);
}

void mw_script_start(mw_script_t *sc) {
    if (!sc->ready || sc->fns[FN_START] == LUA_NOREF)
        return;
    mw_lua_hub_start(sc->L, sc->core); /* a worker's link to its supervisor */
    lua_State *co;
    mw_task_t *t = new_task(sc, TASK_START, NULL, FN_START, &co);
    if (t)
        run_task(sc, t, 0, NULL, 0);
}

/* Headers that only carried the handshake: they say nothing an app can use
 * and would cost every idle client a bigger Lua table. */
static int handshake_only(const char *name) {
    static const char *const skip[] = {"upgrade", "connection", "sec-websocket-key",
                                       "sec-websocket-version", "sec-websocket-extensions"};
    for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
        if (strcmp(name, skip[i]) == 0)
            return 1;
    return 0;
}

/* lower_name copies a header name lower-cased into out (256 bytes);
 * returns 0 when the name is too long to keep. */
static int lower_name(const char *name, char *out) {
    size_t n = strlen(name);
    if (n >= 256)
        return 0;
    for (size_t j = 0; j <= n; j++) {
        char ch = name[j];
        out[j] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
    }
    return 1;
}

static void push_headers(lua_State *L, const mw_client_info_t *info) {
    char name[256];
    int kept = 0;
    for (int i = 0; i < info->nheaders; i++)
        kept += lower_name(info->headers[i].name, name) && !handshake_only(name);
    /* Sized for what is kept: every idle client holds this table. */
    lua_createtable(L, 0, kept);
    for (int i = 0; i < info->nheaders; i++) {
        /* Lower-case names; repeated headers are joined with ", " (RFC 7230 3.2.2). */
        if (!lower_name(info->headers[i].name, name) || handshake_only(name))
            continue;
        lua_getfield(L, -1, name);
        if (lua_isstring(L, -1)) {
            lua_pushliteral(L, ", ");
            lua_pushstring(L, info->headers[i].value);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushstring(L, info->headers[i].value);
        }
        lua_setfield(L, -2, name);
    }
}

/* The application callbacks (app.h). Each runs a runtime function in a
 * task (above); a Lua error is logged and the server carries on. */

/* app_upgrade asks runtime.upgrade, in a task, whether this client may
 * connect (upgrade_decided reads the answer). When the task waits (an
 * authenticate hook asking Redis), the core keeps the request until the
 * decision (MW_EPENDING). */
static int app_upgrade(void *data, mw_conn_t *c, const mw_client_info_t *info, char *msg,
                       size_t msglen) {
    mw_script_t *sc = data;
    if (!sc->ready || sc->fns[FN_UPGRADE] == LUA_NOREF)
        return 0;
    lua_State *co;
    mw_task_t *t = new_task(sc, TASK_UPGRADE, NULL, FN_UPGRADE, &co);
    if (!t) {
        snprintf(msg, msglen, "internal error");
        return 500;
    }
    lua_pushnumber(co, (lua_Number)mw_conn_id(c));
    lua_createtable(co, 0, 6);
    lua_pushstring(co, info->remote_addr);
    lua_setfield(co, -2, "remote_addr");
    lua_pushinteger(co, info->remote_port);
    lua_setfield(co, -2, "remote_port");
    lua_pushstring(co, info->path);
    lua_setfield(co, -2, "path");
    lua_pushstring(co, info->query);
    lua_setfield(co, -2, "query");
    if (info->subprotocol) {
        lua_pushstring(co, info->subprotocol);
        lua_setfield(co, -2, "subprotocol");
    }
    push_headers(co, info);
    lua_setfield(co, -2, "headers");
    sc->upgrading = t;
    sc->upgrade_status = MW_EPENDING;
    run_task(sc, t, 2, c, 0);
    sc->upgrading = NULL;
    /* Not decided: the task waits (authenticate asks Redis, say). */
    if (sc->upgrade_status == MW_EPENDING)
        return MW_EPENDING;
    snprintf(msg, msglen, "%s", sc->upgrade_msg);
    return sc->upgrade_status;
}

static void app_open(void *data, mw_conn_t *c) {
    mw_script_t *sc = data;
    if (!sc->ready || sc->fns[FN_OPEN] == LUA_NOREF)
        return;
    lua_State *co;
    mw_task_t *t = new_task(sc, TASK_OPEN, NULL, FN_OPEN, &co);
    if (!t)
        return;
    lua_pushnumber(co, (lua_Number)mw_conn_id(c));
    run_task(sc, t, 1, c, 0);
}

/* app_message: the hot path. A client whose task waits gets the message
 * queued (and, past max_pending_messages, its socket no longer read);
 * otherwise it runs now, in a pooled task, the client being the core's
 * current one so the reply needs no lookup by id. */
static void app_message(void *data, mw_conn_t *c, int binary, const char *payload, size_t len) {
    mw_script_t *sc = data;
    if (!sc->ready || sc->fns[FN_MESSAGE] == LUA_NOREF)
        return;
    client_t *cl = mw_conn_app_data(c);
    if (__builtin_expect(cl != NULL, 0)) {
        pending_t *p = malloc(sizeof *p + len);
        if (!p) {
            mw_log_error("client %llu: out of memory; a message is dropped",
                         (unsigned long long)mw_conn_id(c));
            return;
        }
        p->next = NULL;
        p->binary = binary;
        p->len = len;
        memcpy(p->data, payload, len);
        if (cl->tail)
            cl->tail->next = p;
        else
            cl->head = p;
        cl->tail = p;
        if (++cl->n >= max_pending(sc))
            mw_conn_hold(c, 1);
        return;
    }
    start_message(sc, c, NULL, binary, payload, len);
}

/* app_close runs runtime.disconnect after the client's queued events;
 * while any of them (or the disconnect itself) waits, the core keeps the
 * closed connection in its rooms (MW_EPENDING) until advance releases it. */
static int app_close(void *data, mw_conn_t *c, unsigned code, const char *reason, size_t len) {
    mw_script_t *sc = data;
    if (!sc->ready || sc->fns[FN_DISCONNECT] == LUA_NOREF)
        return 0;
    client_t *cl = mw_conn_app_data(c);
    if (cl) {
        char *copy = malloc(len + 1);
        if (copy) {
            memcpy(copy, reason, len);
            copy[len] = '\0';
        }
        cl->closed = 1;
        cl->code = code;
        cl->reason = copy;
        cl->rlen = copy ? len : 0;
        cl->held = 1;
        return MW_EPENDING;
    }
    start_close(sc, c, NULL, code, reason, len);
    cl = mw_conn_app_data(c);
    if (!cl)
        return 0;
    cl->held = 1;
    return MW_EPENDING;
}

/* app_stop: the server is going away. Waiting tasks are given up (never
 * resumed); a client the core kept for us gets its disconnect now (what
 * of it would wait is given up too) and is released. */
static void app_stop(void *data) {
    mw_script_t *sc = data;
    sc->stopped = 1;
    while (!mw_list_empty(&sc->clients)) {
        client_t *cl = mw_list_entry(sc->clients.next, client_t, link);
        mw_conn_t *c = cl->c;
        int held = cl->held, ran = cl->close_started;
        unsigned code = cl->code;
        char *reason = cl->reason;
        size_t rlen = cl->rlen;
        cl->reason = NULL;
        if (cl->busy) {
            mw_log_warn("client %llu: its %s waits while the server stops: given up",
                        (unsigned long long)cl->id, task_what(mw_task_kind(cl->busy)));
            mw_task_free(cl->busy);
        }
        mw_conn_set_app_data(c, NULL);
        client_free(cl);
        if (held) {
            if (!ran)
                start_close(sc, c, NULL, code, reason ? reason : "", rlen);
            mw_conn_release(c);
        }
        free(reason);
    }
    mw_sched_stop(sc->sched);
    mw_lua_redis_stop(sc->core, sc->sched); /* after the tasks: nothing resumes */
    mw_lua_hub_stop(sc->L);                 /* messages to and from the other workers */
    mw_lua_nats_stop(sc->L, sc->sched);
    mw_lua_wsclient_stop(sc->L, sc->sched); /* the app's WebSocket client connections */
}

static int app_reload(void *data, const mw_config_t *cfg, char *err, size_t errlen) {
    return mw_script_reload(data, cfg, err, errlen);
}

static void app_idle(void *data) {
    mw_script_idle(data);
}

/* What waits now: the tasks (sched.h) and, from the client records, the
 * messages queued behind a client's waiting task and the clients whose
 * reading is held because max_pending_messages of them are queued. */
typedef struct {
    mw_sched_stats_t sched;
    uint64_t queued, held;
} waiting_t;

static void waiting(const mw_script_t *sc, waiting_t *w) {
    mw_sched_stats(sc->sched, &w->sched);
    w->queued = w->held = 0;
    size_t max = max_pending(sc);
    for (const mw_list_t *l = sc->clients.next; l != &sc->clients; l = l->next) {
        const client_t *cl = mw_list_entry(l, client_t, link);
        w->queued += cl->n;
        w->held += cl->n >= max && !cl->closed;
    }
}

static void cluster_health(mw_script_t *sc, FILE *f);

/* total is the whole server's value of the metric sample series while
 * /health answers for several workers (health.h: merged from app_metrics'
 * families of every worker), else live, this Lua state's own. */
static unsigned long long total(mw_script_t *sc, const char *series, uint64_t live) {
    uint64_t v;
    if (mw_health_total(mw_lua_core_server(sc->core), series, &v) == 0)
        return (unsigned long long)v;
    return (unsigned long long)live;
}

/* app_health adds the Lua isolation counters (docs/security.md) and what
 * waits: each field is one of app_metrics' families. */
static void app_health(void *data, FILE *f) {
    mw_script_t *sc = data;
    waiting_t w;
    waiting(sc, &w);
    fprintf(f,
            ",\"lua\":{\"memory\":%llu,\"memory_limit\":%llu,\"memory_full\":%s,"
            "\"memory_limit_hits\":%llu,\"refused_messages\":%llu,\"timeouts\":%llu,"
            "\"tasks_waiting\":%llu,\"wait_timeouts\":%llu,\"queued_messages\":%llu,"
            "\"held_clients\":%llu}",
            total(sc, "moonwire_lua_memory_bytes", sc->used),
            total(sc, "moonwire_lua_memory_limit_bytes", sc->limit),
            total(sc, "moonwire_lua_memory_full", sc->full) ? "true" : "false",
            total(sc, "moonwire_lua_memory_limit_hits_total", sc->limit_hits),
            total(sc, "moonwire_lua_refused_messages_total", sc->refused_messages),
            total(sc, "moonwire_lua_timeouts_total", sc->timeouts),
            total(sc, "moonwire_lua_tasks_waiting", w.sched.parked),
            total(sc, "moonwire_lua_wait_timeouts_total", w.sched.timeouts),
            total(sc, "moonwire_lua_queued_messages", w.queued),
            total(sc, "moonwire_lua_held_clients", w.held));
    cluster_health(sc, f);
    mw_lua_hub_health(f);
}

/* route_name labels a route of the latency histogram. */
static const char *route_name(void *data, unsigned route) {
    mw_script_t *sc = data;
    return route ? mw_lua_core_route_name(sc->core, route) : "unrouted";
}

/* app_metrics adds the Lua heap and the isolation counters to /metrics:
 * what app_health says, as metric families. */
/* bus_metrics writes the event bus's counters (moonwire.bus.stats(), read
 * from Lua when /metrics is asked for: the bus counts in Lua, where its
 * handlers run, and costs C nothing per event). Nothing when the bus was
 * never loaded. */
static void bus_metrics(mw_script_t *sc, FILE *f) {
    static const struct {
        const char *key, *family, *type, *help;
    } rows[] = {
        {"emitted", "bus_events_total", "counter", "Events emitted that matched a subscriber."},
        {"handled", "bus_handlers_total", "counter", "Subscriber handlers started."},
        {"failed", "bus_handler_errors_total", "counter", "Subscriber handlers that raised."},
        {"timed_out", "bus_handler_timeouts_total", "counter",
         "Subscriber handlers given up past their timeout."},
        {"refused", "bus_refused_total", "counter",
         "Emits refused: events nested past bus_max_depth."},
        {"dropped", "bus_dropped_total", "counter",
         "Emits dropped: bus_max_pending handlers were running."},
        {"running", "bus_handlers_running", "gauge", "Subscriber handlers running now."},
    };
    lua_State *L = sc->L;
    int base = lua_gettop(L);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    lua_getfield(L, -1, "moonwire.bus");
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "stats");
        if (lua_isfunction(L, -1) && lua_pcall(L, 0, 1, 0) == 0 && lua_istable(L, -1)) {
            for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
                lua_getfield(L, -1, rows[i].key);
                mw_metrics_family(f, rows[i].family, rows[i].type, rows[i].help);
                mw_metrics_sample(f, rows[i].family, NULL, NULL, (uint64_t)lua_tonumber(L, -1));
                lua_pop(L, 1);
            }
        }
    }
    lua_settop(L, base);
}

/* The cluster's counters (moonwire.cluster.stats(), docs/scaling.md), the
 * way bus_metrics reads the bus's. */
static const struct {
    const char *key, *family, *type, *help;
} cluster_rows[] = {
    {"up", "cluster_up", "gauge min", "1 while the cluster's Redis is reachable."},
    {"published", "cluster_published_total", "counter", "Messages published to the other nodes."},
    {"publish_failed", "cluster_publish_failed_total", "counter",
     "Messages for the other nodes dropped because Redis was unreachable."},
    {"received", "cluster_received_total", "counter", "Messages received from the other nodes."},
    {"outages", "cluster_outages_total", "counter", "Times Redis became unreachable."},
    {"subscriptions", "cluster_subscriptions", "gauge",
     "Redis channels this node takes (its rooms, users, node, all, bus)."},
};
#define NCLUSTER_ROWS (sizeof cluster_rows / sizeof cluster_rows[0])

/* push_cluster_stats pushes moonwire.cluster.stats() and returns 1, or
 * pushes nothing and returns 0 when the cluster is off. */
static int push_cluster_stats(lua_State *L) {
    int base = lua_gettop(L);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    lua_getfield(L, -1, "moonwire.cluster");
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "stats");
        if (lua_isfunction(L, -1) && lua_pcall(L, 0, 1, 0) == 0 && lua_istable(L, -1)) {
            lua_replace(L, base + 1);
            lua_settop(L, base + 1);
            return 1;
        }
    }
    lua_settop(L, base);
    return 0;
}

static uint64_t cluster_value(lua_State *L, const char *key) {
    lua_getfield(L, -1, key);
    uint64_t v =
        lua_isboolean(L, -1) ? (uint64_t)lua_toboolean(L, -1) : (uint64_t)lua_tonumber(L, -1);
    lua_pop(L, 1);
    return v;
}

static void cluster_metrics(mw_script_t *sc, FILE *f) {
    if (!push_cluster_stats(sc->L))
        return;
    for (size_t i = 0; i < NCLUSTER_ROWS; i++) {
        mw_metrics_family(f, cluster_rows[i].family, cluster_rows[i].type, cluster_rows[i].help);
        mw_metrics_sample(f, cluster_rows[i].family, NULL, NULL,
                          cluster_value(sc->L, cluster_rows[i].key));
    }
    lua_pop(sc->L, 1);
}

/* cluster_health adds "cluster":{...} to /health when the cluster is on. */
static void cluster_health(mw_script_t *sc, FILE *f) {
    lua_State *L = sc->L;
    if (!push_cluster_stats(L))
        return;
    lua_getfield(L, -1, "node");
    fprintf(f, ",\"cluster\":{\"node\":\"%s\"", lua_isstring(L, -1) ? lua_tostring(L, -1) : "");
    lua_pop(L, 1);
    char series[64];
    for (size_t i = 0; i < NCLUSTER_ROWS; i++) {
        snprintf(series, sizeof series, "moonwire_%s", cluster_rows[i].family);
        uint64_t v = total(sc, series, cluster_value(L, cluster_rows[i].key));
        if (!strcmp(cluster_rows[i].key, "up"))
            fprintf(f, ",\"up\":%s", v ? "true" : "false");
        else
            fprintf(f, ",\"%s\":%llu", cluster_rows[i].key, (unsigned long long)v);
    }
    fputc('}', f);
    lua_pop(L, 1);
}

static void app_metrics(void *data, FILE *f) {
    mw_script_t *sc = data;
    mw_metrics_family(f, "lua_memory_bytes", "gauge", "Bytes the Lua state holds now.");
    mw_metrics_sample(f, "lua_memory_bytes", NULL, NULL, sc->used);
    mw_metrics_family(f, "lua_memory_limit_bytes", "gauge max",
                      "lua_memory_limit: what the Lua heap may hold (0: unlimited).");
    mw_metrics_sample(f, "lua_memory_limit_bytes", NULL, NULL, sc->limit);
    mw_metrics_family(f, "lua_memory_full", "gauge max",
                      "1 while live Lua data stays near the limit and messages are refused.");
    mw_metrics_sample(f, "lua_memory_full", NULL, NULL, sc->full ? 1 : 0);
    mw_metrics_family(f, "lua_memory_limit_hits_total", "counter",
                      "Lua allocations refused at lua_memory_limit.");
    mw_metrics_sample(f, "lua_memory_limit_hits_total", NULL, NULL, sc->limit_hits);
    mw_metrics_family(f, "lua_refused_messages_total", "counter",
                      "Messages refused because the Lua heap was full.");
    mw_metrics_sample(f, "lua_refused_messages_total", NULL, NULL, sc->refused_messages);
    mw_metrics_family(f, "lua_timeouts_total", "counter", "Lua calls stopped by script_timeout.");
    mw_metrics_sample(f, "lua_timeouts_total", NULL, NULL, sc->timeouts);
    waiting_t w;
    waiting(sc, &w);
    mw_metrics_family(f, "lua_tasks_total", "counter",
                      "Tasks started: messages, connects, disconnects, timer runs, spawns.");
    mw_metrics_sample(f, "lua_tasks_total", NULL, NULL, w.sched.tasks);
    mw_metrics_family(f, "lua_tasks_waiting", "gauge",
                      "Tasks waiting now (moonwire.sleep, Redis, ...).");
    mw_metrics_sample(f, "lua_tasks_waiting", NULL, NULL, w.sched.parked);
    mw_metrics_family(f, "lua_waits_total", "counter", "Waits begun by tasks.");
    mw_metrics_sample(f, "lua_waits_total", NULL, NULL, w.sched.waits);
    mw_metrics_family(f, "lua_wait_timeouts_total", "counter",
                      "Waits that ended because their timeout passed first.");
    mw_metrics_sample(f, "lua_wait_timeouts_total", NULL, NULL, w.sched.timeouts);
    mw_metrics_family(f, "lua_timers", "gauge", "App timers now (moonwire.timer).");
    mw_metrics_sample(f, "lua_timers", NULL, NULL, w.sched.timers);
    mw_metrics_family(f, "lua_queued_messages", "gauge",
                      "Messages queued behind their client's waiting handler.");
    mw_metrics_sample(f, "lua_queued_messages", NULL, NULL, w.queued);
    mw_metrics_family(f, "lua_held_clients", "gauge",
                      "Clients not read because max_pending_messages of their messages are "
                      "queued.");
    mw_metrics_sample(f, "lua_held_clients", NULL, NULL, w.held);
    mw_latency_write(&sc->latency, f, "message_duration_seconds",
                     "Time from the start of a message's handling until its handler is done, "
                     "waits included, by route (type.action; unrouted: never routed; others: timed "
                     "by the timing middleware, such as bus:<subscriber>).",
                     route_name, sc);
    mw_lua_nats_metrics(sc->L, sc->sched, f);     /* moonwire_nats_* */
    mw_lua_redis_metrics(sc->core, sc->sched, f); /* moonwire_redis_*, one series per handle */
    mw_lua_shdict_metrics(sc->core, f);           /* moonwire_shdict_*, one series per dict */
    bus_metrics(sc, f);
    cluster_metrics(sc, f);
}

/* push_http_request pushes what runtime.http learns about a plain HTTP
 * request (docs/boundary.md): method, path, raw query, headers as the
 * upgrade's info has them, body, peer, HTTP version, and whether it came
 * through the server API's door (the key already checked in C). */
static void push_http_request(lua_State *L, mw_conn_t *c, const mw_request_t *req) {
    char addr[48];
    int port = mw_conn_peer(c, addr, sizeof addr);
    lua_createtable(L, 0, 9);
    lua_pushstring(L, req->method);
    lua_setfield(L, -2, "method");
    lua_pushstring(L, req->path);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, req->query);
    lua_setfield(L, -2, "query");
    mw_client_info_t info = {.headers = req->headers, .nheaders = req->nheaders};
    push_headers(L, &info);
    lua_setfield(L, -2, "headers");
    lua_pushlstring(L, req->body, req->body_len);
    lua_setfield(L, -2, "body");
    lua_pushstring(L, addr);
    lua_setfield(L, -2, "remote_addr");
    lua_pushinteger(L, port);
    lua_setfield(L, -2, "remote_port");
    lua_pushfstring(L, "%d.%d", req->http_major, req->http_minor);
    lua_setfield(L, -2, "http_version");
    lua_pushboolean(L, req->api);
    lua_setfield(L, -2, "api");
}

/* app_http hands a plain HTTP request to runtime.http(request_id, req) in
 * a task (the request id rides as the task's owner): the runtime answers
 * with core.http_respond, before the task ends or after its handler has
 * waited. A raise that escapes the runtime is answered 500 here. */
static int app_http(void *data, mw_conn_t *c, const mw_request_t *req) {
    mw_script_t *sc = data;
    if (!sc->ready || sc->http_ref == LUA_NOREF)
        return MW_ENOTFOUND;
    uint64_t id = mw_conn_request_id(c);
    mw_task_t *t = mw_task_new(sc->sched, TASK_HTTP, (void *)(uintptr_t)id);
    if (!t)
        return MW_ENOMEM;
    lua_State *co = mw_task_thread(t);
    lua_rawgeti(co, LUA_REGISTRYINDEX, sc->http_ref);
    lua_pushnumber(co, (lua_Number)id);
    push_http_request(co, c, req);
    run_task(sc, t, 2, NULL, 0);
    return 0;
}

static const mw_app_callbacks_t app_callbacks = {
    .upgrade = app_upgrade,
    .open = app_open,
    .message = app_message,
    .close = app_close,
    .http = app_http,
    .reload = app_reload,
    .idle = app_idle,
    .health = app_health,
    .metrics = app_metrics,
    .stop = app_stop,
};

const mw_app_t *mw_script_app(mw_script_t *sc) {
    return &sc->app;
}

/* How much work one idle step does, in LuaJIT's units (as if this many KB
 * had been allocated): enough to finish a cycle over tens of MB within a
 * few seconds of quiet, small enough to stay well under a millisecond. */
#define IDLE_GC_STEP_KB 512

static int idle_step_cb(lua_State *L) {
    lua_gc(L, LUA_GCSTEP, IDLE_GC_STEP_KB);
    return 0;
}

/* Ticks (of the 100 ms cron) between two checks of a full Lua heap. */
#define FULL_CHECK_TICKS 10

void mw_script_idle(mw_script_t *sc) {
    if (sc->full && ++sc->full_ticks >= FULL_CHECK_TICKS && sc->calls != sc->calls_at_full_check) {
        /* Only Lua code running (a disconnect, a refused message) can free
         * app state, so the heap is rechecked once a second while it does. */
        sc->full_ticks = 0;
        sc->calls_at_full_check = sc->calls;
        gc(sc, LUA_GCCOLLECT);
        if (sc->used < sc->limit / 4 * 3) {
            sc->full = 0;
            sc->gc_at = sc->limit / 4 * 3;
            sc->watch_at = sc->used + sc->limit / 32;
            mw_log_info("Lua memory back to %.1f MiB (lua_memory_limit %.1f MiB): messages are "
                        "dispatched again",
                        mib(sc->used), mib(sc->limit));
        }
    }
    if (sc->limit && sc->pause != 200 && sc->used < sc->limit / 4) {
        tune(sc, sc->used); /* live data shrank: LuaJIT's defaults again */
        sc->watch_at = sc->limit / 4;
    }
    if (sc->calls != sc->calls_at_idle) {
        sc->calls_at_idle = sc->calls;
        return; /* busy: the allocation-driven collector is running anyway */
    }
    if (lua_cpcall(sc->L, idle_step_cb, NULL) != 0) {
        mw_log_error("lua error in a __gc metamethod: %s", lua_tostring(sc->L, -1));
        lua_pop(sc->L, 1);
    }
}

int mw_script_reload(mw_script_t *sc, const mw_config_t *cfg, char *err, size_t errlen) {
    if (!sc->ready) {
        snprintf(err, errlen, "the app is not loaded");
        return MW_ESCRIPT;
    }
    if (sc->fns[FN_RELOAD] == LUA_NOREF) {
        snprintf(err, errlen, "this runtime cannot reload");
        return MW_ESCRIPT;
    }
    lua_State *L = sc->L;
    int base = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, sc->fns[FN_RELOAD]);
    if (cfg)
        mw_lua_push_config(L, cfg, sc->app_ref);
    else
        lua_pushnil(L);
    if (call(sc, 1, 2, "reload", 0, err, errlen) != 0) {
        first_line(err);
        lua_settop(L, base);
        return MW_ESCRIPT;
    }
    int ok = lua_toboolean(L, -2);
    if (!ok)
        snprintf(err, errlen, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "reload failed");
    lua_settop(L, base);
    if (!ok)
        return MW_ESCRIPT;
    /* The new code starts as the first did: on_start, in a task of its
     * own (the old code's timers were cancelled by the reload). */
    mw_script_start(sc);
    return 0;
}

/* scaffold calls moonwire.scaffold's fn with the strings a and b (b may
 * be NULL): true, or nil, err. */
static int scaffold(mw_script_t *sc, const char *fn, const char *a, const char *b, char *err,
                    size_t errlen) {
    lua_State *L = sc->L;
    int base = lua_gettop(L);
    lua_getglobal(L, "require");
    lua_pushstring(L, "moonwire.scaffold");
    if (call(sc, 1, 1, "require", 0, err, errlen) != 0)
        return MW_ESCRIPT;
    lua_getfield(L, -1, fn);
    lua_pushstring(L, a);
    if (b)
        lua_pushstring(L, b);
    if (call(sc, b ? 2 : 1, 2, "scaffold", 0, err, errlen) != 0) {
        lua_settop(L, base);
        return MW_ESCRIPT;
    }
    int ok = lua_toboolean(L, -2);
    if (!ok)
        snprintf(err, errlen, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "failed");
    lua_settop(L, base);
    return ok ? 0 : MW_ESCRIPT;
}

int mw_script_scaffold(mw_script_t *sc, const char *dir, char *err, size_t errlen) {
    return scaffold(sc, "create", dir, NULL, err, errlen);
}

int mw_script_scaffold_subscriber(mw_script_t *sc, const char *dir, const char *name, char *err,
                                  size_t errlen) {
    return scaffold(sc, "subscriber", dir, name, err, errlen);
}

void mw_script_free(mw_script_t *sc) {
    if (!sc)
        return;
    mw_watchdog_stop(sc->wd);
    /* The server's stop (app_stop) gave up every task and client record
     * while the connections and timers they point to existed. */
    if (!sc->stopped && mw_lua_core_server(sc->core))
        app_stop(sc);
    mw_sched_free(sc->sched);
    if (mw_lua_core_sched(sc->core) == sc->sched)
        mw_lua_core_set_sched(sc->core, NULL);
    if (sc->owned) {
        lua_close(sc->L);
    } else {
        for (int i = 0; i < FN_COUNT; i++)
            luaL_unref(sc->L, LUA_REGISTRYINDEX, sc->fns[i]);
        luaL_unref(sc->L, LUA_REGISTRYINDEX, sc->traceback_ref);
        luaL_unref(sc->L, LUA_REGISTRYINDEX, sc->http_ref);
    }
    mw_latency_free(&sc->latency);
    free(sc->runtime_src);
    free(sc);
}
