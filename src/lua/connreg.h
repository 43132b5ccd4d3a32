/*
 * connreg.h - the registry of client connections a Lua binding keeps
 * (redis_lua.c, nats_lua.c): connections opened from Lua, each tagged
 * with the app (scheduler) that opened it and the key it was opened with,
 * and their subscriptions, both known to Lua by id (idmap.h).
 *
 * The binding embeds mw_connreg_conn_t and mw_connreg_sub_t in its own
 * records and says how to free them (mw_connreg_ops_t); the registry does
 * the ids, the lists, the sharing of a connection by key, the closing of
 * an app's connections when its server stops, and its own __gc.
 */
#ifndef MW_CONNREG_H
#define MW_CONNREG_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

#include "../idmap.h"
#include "../list.h"
#include "sched.h"

typedef struct mw_connreg mw_connreg_t;

typedef struct mw_connreg_conn {
    mw_connreg_t *reg;
    mw_sched_t *sched; /* the app that opened it */
    uint64_t id;
    char *key; /* what it was opened with: the same key shares it */
    mw_list_t link;
} mw_connreg_conn_t;

typedef struct mw_connreg_sub {
    mw_connreg_t *reg;
    mw_connreg_conn_t *conn;
    uint64_t id;
    int fn_ref; /* the Lua function a message calls */
    int keep;   /* the runtime's own: an app's unsubscribe_all keeps it */
    mw_list_t link;
} mw_connreg_sub_t;

typedef struct {
    /* Closes the client and frees the binding's record (after the registry
     * has dropped it and its subscriptions). */
    void (*free_conn)(mw_connreg_conn_t *c);
    /* Ends the subscription with the client and frees the record. */
    void (*free_sub)(mw_connreg_sub_t *s);
} mw_connreg_ops_t;

struct mw_connreg {
    lua_State *T; /* never resumed: the stack C callbacks work on */
    int T_ref;
    const mw_connreg_ops_t *ops;
    mw_idmap_t conn_ids, sub_ids; /* id -> mw_connreg_conn_t, mw_connreg_sub_t */
    mw_list_t conns, subs;
    uint64_t next_id;
};

/* mw_connreg_new pushes a new registry (a userdata whose __gc frees it)
 * and returns it; the caller anchors the userdata. At the state's close,
 * connections still open belong to a server that never stopped, whose loop
 * may be gone: they are left, only the registry's memory goes. */
mw_connreg_t *mw_connreg_new(lua_State *L, const mw_connreg_ops_t *ops);

/* mw_connreg_conn and mw_connreg_sub return what the Lua id at arg
 * names, or NULL (closed, or not an id). */
mw_connreg_conn_t *mw_connreg_conn(mw_connreg_t *reg, lua_State *L, int arg);
mw_connreg_sub_t *mw_connreg_sub(mw_connreg_t *reg, lua_State *L, int arg);

/* mw_connreg_find returns the connection app s opened with key, or NULL. */
mw_connreg_conn_t *mw_connreg_find(mw_connreg_t *reg, mw_sched_t *s, const char *key);

/* mw_connreg_next returns the connection of app s after c (the first when
 * c is NULL), or NULL past the last. */
mw_connreg_conn_t *mw_connreg_next(mw_connreg_t *reg, mw_sched_t *s, mw_connreg_conn_t *c);

/* mw_connreg_count returns how many connections app s has open. */
size_t mw_connreg_count(mw_connreg_t *reg, mw_sched_t *s);

/* mw_connreg_add gives c (its client open) an id and enters it for app s
 * under key. Returns 0 or MW_ENOMEM (c is not entered, the caller frees it). */
int mw_connreg_add(mw_connreg_t *reg, mw_connreg_conn_t *c, mw_sched_t *s, const char *key);

/* mw_connreg_add_sub gives sub (subscribed on conn) an id and holds the
 * function at index fn of L for it. Returns 0 or MW_ENOMEM (sub is not
 * entered, the caller ends and frees it). */
int mw_connreg_add_sub(mw_connreg_t *reg, mw_connreg_sub_t *sub, mw_connreg_conn_t *conn,
                       lua_State *L, int fn);

/* mw_connreg_close frees c and its subscriptions (ops->free_sub, then
 * ops->free_conn). */
void mw_connreg_close(mw_connreg_conn_t *c);

/* mw_connreg_unsubscribe frees one subscription (ops->free_sub). */
void mw_connreg_unsubscribe(mw_connreg_sub_t *s);

/* mw_connreg_unsubscribe_all frees the subscriptions of app s but those
 * kept (a reload replaces the code whose functions they call). */
void mw_connreg_unsubscribe_all(mw_connreg_t *reg, mw_sched_t *s);

/* mw_connreg_stop closes every connection of app s (the server stops). */
void mw_connreg_stop(mw_connreg_t *reg, mw_sched_t *s);

#endif
