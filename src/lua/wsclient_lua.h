/*
 * wsclient_lua.h - moonwire.core's WebSocket client primitives
 * (wsclient_lua.c), the C side of lua/moonwire/websocket.lua, and the hook
 * the script calls when the server stops (the app's connections go).
 */
#ifndef MW_WSCLIENT_LUA_H
#define MW_WSCLIENT_LUA_H

#include <lua.h>

#include "api.h"

/* Sets the wsc_* primitives in the table at the top of the stack
 * (moonwire.core), with the registry of open connections they share. */
void mw_lua_inject_wsclient_api(lua_State *L, mw_lua_core_t *ctx);

/* mw_lua_wsclient_stop drops every connection the app of scheduler s
 * opened from state L (no close handshake: the peer sees the TCP
 * connection end). For the server's stop, after the scheduler has given
 * up its tasks; the handles stay valid Lua values that report "closed". */
void mw_lua_wsclient_stop(lua_State *L, mw_sched_t *s);

#endif
