/*
 * sched_lua.h - moonwire.core's primitives for time and tasks: sleep,
 * spawn, timer, timer_cancel, timers_cancel (sched_lua.c).
 */
#ifndef MW_SCHED_LUA_H
#define MW_SCHED_LUA_H

#include <lua.h>

#include "api.h"

/* Sets the primitives in the table at the top of the stack (moonwire.core);
 * each reaches the scheduler through ctx. */
void mw_lua_inject_sched_api(lua_State *L, mw_lua_core_t *ctx);

#endif
