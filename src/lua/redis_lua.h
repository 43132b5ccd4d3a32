/*
 * redis_lua.h - moonwire.core's Redis primitives (redis_lua.c), the C side
 * of lua/moonwire/redis.lua, and the hooks the script calls: the server
 * stops (the app's handles go), /metrics is written (their families).
 */
#ifndef MW_REDIS_LUA_H
#define MW_REDIS_LUA_H

#include <lua.h>
#include <stdio.h>

#include "api.h"

/* Sets the redis_* primitives in the table at the top of the stack
 * (moonwire.core), with the registry of open handles they share, and
 * records that registry in ctx. */
void mw_lua_inject_redis_api(lua_State *L, mw_lua_core_t *ctx);

/* mw_lua_redis_stop frees every handle the app of scheduler s opened (and
 * their subscriptions): pending commands end with "closed". For the
 * server's stop, after the scheduler has given up its tasks. */
void mw_lua_redis_stop(mw_lua_core_t *ctx, mw_sched_t *s);

/* mw_lua_redis_metrics writes the moonwire_redis_* families of the
 * handles the app of scheduler s opened (nothing when it has none). */
void mw_lua_redis_metrics(mw_lua_core_t *ctx, mw_sched_t *s, FILE *out);

#endif
