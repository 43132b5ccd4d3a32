/*
 * hub_lua.h - moonwire.core.hub_*: a worker's end of the supervisor's hub
 * (src/hub.h) from Lua, the transport lua/moonwire/cluster.lua uses
 * between the workers of one machine.
 */
#ifndef MW_HUB_LUA_H
#define MW_HUB_LUA_H

#include <lua.h>
#include <stdio.h>

#include "api.h"

/* Sets the hub_* primitives in the table at the top of the stack
 * (moonwire.core). */
void mw_lua_inject_hub_api(lua_State *L, mw_lua_core_t *ctx);

/* mw_lua_hub_start opens this worker's hub socket, once, when its script
 * starts serving (nothing outside a supervisor's worker): the supervisor's
 * reload requests are served and reload outcomes reported from then on,
 * and core.hub_open only adds the runtime's cluster to it. */
void mw_lua_hub_start(lua_State *L, mw_lua_core_t *ctx);

/* mw_lua_hub_stop closes the hub socket (the server stops; a worker's
 * messages end with it). */
void mw_lua_hub_stop(lua_State *L);

/* mw_lua_hub_health adds "hub":{"up","pending_subscriptions","ready"} to
 * /health in a worker whose hub is open: ready once the supervisor has
 * confirmed every subscription this worker sent (test_workers.py waits
 * for it before it publishes). */
void mw_lua_hub_health(FILE *f);

#endif
