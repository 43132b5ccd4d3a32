/*
 * api.h - the moonwire.core primitives (the only C functions Lua can call)
 * and the context through which they reach the server.
 */
#ifndef MW_LUA_API_H
#define MW_LUA_API_H

#include <lua.h>

#include "../conn.h"
#include "../latency.h"
#include "../server.h"
#include "../shdict.h"
#include "../watchdog.h"

typedef struct mw_lua_core mw_lua_core_t;
typedef struct mw_sched mw_sched_t;
typedef struct mw_connreg mw_connreg_t;

/* The per-message primitives core.send, core.running and core.now as plain
 * C functions, for LuaJIT's FFI: a compiled trace calls them where it
 * stops at a lua_CFunction. moonwire.core._ffi is a light userdata
 * pointing to this table; lua/moonwire/core_ffi.lua declares the same
 * layout (change both together) and wraps the calls so that they return
 * what the classic functions return. ctx is the context the classic
 * functions reach as their upvalue. */
#define MW_LUA_FFI_CLASSIC 1 /* not handled here: call the classic function */
typedef struct mw_lua_ffi {
    mw_lua_core_t *ctx;
    int (*send)(mw_lua_core_t *ctx, double id, const char *data, size_t len, int binary);
    void (*running)(mw_lua_core_t *ctx, double id);
    double (*now)(mw_lua_core_t *ctx);
    const char *(*strerror)(int rc);
} mw_lua_ffi_t;

/* mw_lua_push_result pushes what a primitive returns for rc: true, or nil
 * and mw_strerror(rc) (the convention of every moonwire.core function).
 * Returns how many values it pushed. */
int mw_lua_push_result(lua_State *L, int rc);

/* mw_lua_push_core pushes a new moonwire.core table and returns its
 * context (owned by the table: keep the table reachable). */
mw_lua_core_t *mw_lua_push_core(lua_State *L);

/* mw_lua_inject_core_api builds the moonwire.core table, registers it in
 * package.loaded and returns its context. */
mw_lua_core_t *mw_lua_inject_core_api(lua_State *L);

/* mw_lua_core_set_server records the server the primitives act on (NULL
 * while checking an app or scaffolding: they then return nil, "not
 * serving"). */
void mw_lua_core_set_server(mw_lua_core_t *ctx, mw_server_t *s);

/* mw_lua_core_set_current names the client whose message is being handled
 * (NULL after): the primitives act on it without looking it up. */
void mw_lua_core_set_current(mw_lua_core_t *ctx, mw_conn_t *c);

/* mw_lua_core_set_watchdog gives core.label and core.running the watchdog
 * they report to (NULL: none, script_timeout = 0). */
void mw_lua_core_set_watchdog(mw_lua_core_t *ctx, mw_watchdog_t *w);

/* mw_lua_core_set_sched gives the primitives that wait or start tasks
 * (sched_lua.c) the scheduler of the state (NULL: they fail with "not
 * serving"). mw_lua_core_sched and mw_lua_core_server read the context. */
void mw_lua_core_set_sched(mw_lua_core_t *ctx, mw_sched_t *s);
mw_sched_t *mw_lua_core_sched(const mw_lua_core_t *ctx);
mw_server_t *mw_lua_core_server(const mw_lua_core_t *ctx);

/* The route of the message being handled, for its handling time in
 * /metrics: core.running sets it from the label's text ("type.action",
 * up to the label's first space); the script resets it (0: not routed)
 * when a message starts and puts it back when a message's task resumes,
 * through the pointer mw_lua_core_route returns (valid as long as ctx).
 * mw_lua_core_route_name is the text of a route number (NULL for 0 or an
 * unknown number); the names live as long as the moonwire.core table. */
unsigned *mw_lua_core_route(mw_lua_core_t *ctx);
const char *mw_lua_core_route_name(const mw_lua_core_t *ctx, unsigned route);

/* mw_lua_core_set_latency gives core.observe the handling-time histogram
 * of /metrics it records into (the script's; NULL: it records nothing). */
void mw_lua_core_set_latency(mw_lua_core_t *ctx, mw_latency_t *l);

/* The Redis handles opened from this state (redis_lua.c sets it when it
 * injects its primitives; the script reaches them for stop and /metrics). */
void mw_lua_core_set_redis(mw_lua_core_t *ctx, mw_connreg_t *r);
mw_connreg_t *mw_lua_core_redis(const mw_lua_core_t *ctx);

/* The shared dicts core.shdict finds by name (shdict_lua.c): borrowed,
 * made at start-up (NULL: none). Each change bumps a generation, so a
 * dict handle made from an older set looks its dict up again by name. */
void mw_lua_core_set_shdicts(mw_lua_core_t *ctx, mw_shdicts_t *set);
mw_shdicts_t *mw_lua_core_shdicts(const mw_lua_core_t *ctx, unsigned *generation);

#endif
