/*
 * nats_lua.h - moonwire.core's NATS primitives (nats_lua.c), the C side of
 * lua/moonwire/nats.lua, and the hooks the script calls: the server stops
 * (the app's connections go), /metrics is written (their families).
 */
#ifndef MW_NATS_LUA_H
#define MW_NATS_LUA_H

#include <lua.h>
#include <stdio.h>

#include "api.h"

/* Sets the nats_* primitives in the table at the top of the stack
 * (moonwire.core), with the registry of open connections they share (one
 * per Lua state, kept in the Lua registry). */
void mw_lua_inject_nats_api(lua_State *L, mw_lua_core_t *ctx);

/* mw_lua_nats_stop closes every connection the app of scheduler s opened
 * (and its subscriptions): pending requests end with "closed". For the
 * server's stop, after the scheduler has given up its tasks. */
void mw_lua_nats_stop(lua_State *L, mw_sched_t *s);

/* mw_lua_nats_metrics writes the moonwire_nats_* families of the
 * connections the app of scheduler s opened (nothing when it has none). */
void mw_lua_nats_metrics(lua_State *L, mw_sched_t *s, FILE *out);

#endif
