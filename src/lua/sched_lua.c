/*
 * sched_lua.c - moonwire.core.sleep, spawn, task_drop, timer, timer_cancel
 * and timers_cancel: the Lua face of sched.c.
 *
 * The convention of api.c: misuse raises, a failure the caller must
 * handle returns nil and a short string. sleep is the one primitive here
 * that waits: called from a task's own thread, it parks the task and
 * returns true when the time has passed.
 */
#include "sched_lua.h"
#include "../errors.h"
#include "sched.h"

#include <lauxlib.h>
#include <math.h>

/* The longest delay: a day of milliseconds fits every timer a server
 * needs, and keeps deadlines far from overflow. */
#define MAX_DELAY_MS 86400000.0

static mw_sched_t *sched_of(lua_State *L) {
    return mw_lua_core_sched(lua_touserdata(L, lua_upvalueindex(1)));
}

static uint64_t check_ms(lua_State *L, int arg) {
    lua_Number ms = luaL_checknumber(L, arg);
    luaL_argcheck(L, ms >= 0 && ms <= MAX_DELAY_MS, arg,
                  "milliseconds must be a number from 0 to 86400000");
    return (uint64_t)ceil(ms);
}

static int not_serving(lua_State *L) {
    lua_pushnil(L);
    lua_pushliteral(L, "not serving");
    return 2;
}

/* core.sleep(ms) -> true (after ms), raises where no task can wait */
static int l_sleep(lua_State *L) {
    uint64_t ms = check_ms(L, 1);
    mw_sched_t *s = sched_of(L);
    if (!s)
        return not_serving(L);
    return mw_sched_sleep(L, s, ms);
}

/* core.spawn(fn, ...) -> true | nil, err */
static int l_spawn(lua_State *L) {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    mw_sched_t *s = sched_of(L);
    if (!s)
        return not_serving(L);
    int rc = mw_sched_spawn(L, s, 1, lua_gettop(L) - 1);
    if (rc == MW_ECLOSED)
        return not_serving(L);
    return mw_lua_push_result(L, rc);
}

/* core.task_drop(co) -> true | nil, "no such object": ends a spawned
 * task that is parked or not yet started (it is never resumed). */
static int l_task_drop(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTHREAD);
    mw_sched_t *s = sched_of(L);
    if (!s)
        return not_serving(L);
    return mw_lua_push_result(L, mw_sched_drop(s, lua_tothread(L, 1)));
}

/* core.timer(ms, fn, every) -> id | nil, err */
static int l_timer(lua_State *L) {
    uint64_t ms = check_ms(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    int every = lua_toboolean(L, 3);
    luaL_argcheck(L, !every || ms > 0, 1, "an interval must be at least 1 ms");
    mw_sched_t *s = sched_of(L);
    if (!s)
        return not_serving(L);
    uint64_t id = mw_sched_timer(L, s, 2, ms, every);
    if (!id)
        return mw_lua_core_server(lua_touserdata(L, lua_upvalueindex(1)))
                   ? mw_lua_push_result(L, MW_ENOMEM)
                   : not_serving(L);
    lua_pushnumber(L, (lua_Number)id);
    return 1;
}

/* core.timer_cancel(id) -> true | nil, "no such object" */
static int l_timer_cancel(lua_State *L) {
    lua_Number id = luaL_checknumber(L, 1);
    mw_sched_t *s = sched_of(L);
    if (!s)
        return not_serving(L);
    int rc =
        id >= 1 && id <= 9007199254740992.0 ? mw_sched_timer_cancel(s, (uint64_t)id) : MW_ENOTFOUND;
    return mw_lua_push_result(L, rc);
}

/* core.timers_cancel(): every app timer (a reload replaces the code). */
static int l_timers_cancel(lua_State *L) {
    mw_sched_t *s = sched_of(L);
    if (s)
        mw_sched_timers_cancel(s);
    return 0;
}

void mw_lua_inject_sched_api(lua_State *L, mw_lua_core_t *ctx) {
    static const luaL_Reg fns[] = {
        {"sleep", l_sleep},
        {"spawn", l_spawn},
        {"task_drop", l_task_drop},
        {"timer", l_timer},
        {"timer_cancel", l_timer_cancel},
        {"timers_cancel", l_timers_cancel},
        {NULL, NULL},
    };
    for (const luaL_Reg *f = fns; f->name; f++) {
        lua_pushlightuserdata(L, ctx);
        lua_pushcclosure(L, f->func, 1);
        lua_setfield(L, -2, f->name);
    }
}
