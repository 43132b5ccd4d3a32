/*
 * connreg.c - the registry of client connections a Lua binding keeps
 * (connreg.h): ids, the lists of connections and subscriptions, sharing
 * by key, and what goes when an app stops or the state closes.
 */
#include "connreg.h"
#include "../errors.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

/* The registry's __gc (the state closes, or busted drops a loaded core):
 * what is still open is left to the loop that may be gone, only the
 * registry's memory goes. */
static int l_gc(lua_State *L) {
    mw_connreg_t *reg = lua_touserdata(L, 1);
    while (!mw_list_empty(&reg->subs))
        mw_list_remove(reg->subs.next);
    while (!mw_list_empty(&reg->conns))
        mw_list_remove(reg->conns.next);
    mw_idmap_free(&reg->conn_ids);
    mw_idmap_free(&reg->sub_ids);
    luaL_unref(L, LUA_REGISTRYINDEX, reg->T_ref);
    return 0;
}

mw_connreg_t *mw_connreg_new(lua_State *L, const mw_connreg_ops_t *ops) {
    mw_connreg_t *reg = lua_newuserdata(L, sizeof *reg);
    memset(reg, 0, sizeof *reg);
    reg->ops = ops;
    mw_idmap_init(&reg->conn_ids);
    mw_idmap_init(&reg->sub_ids);
    mw_list_init(&reg->conns);
    mw_list_init(&reg->subs);
    reg->T = lua_newthread(L);
    reg->T_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, l_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    return reg;
}

/* Lua numbers are ids up to 2^53; anything else names nothing. */
static uint64_t check_id(lua_State *L, int arg) {
    lua_Number id = luaL_checknumber(L, arg);
    return id >= 1 && id <= 9007199254740992.0 ? (uint64_t)id : 0;
}

mw_connreg_conn_t *mw_connreg_conn(mw_connreg_t *reg, lua_State *L, int arg) {
    uint64_t id = check_id(L, arg);
    return id ? mw_idmap_get(&reg->conn_ids, id) : NULL;
}

mw_connreg_sub_t *mw_connreg_sub(mw_connreg_t *reg, lua_State *L, int arg) {
    uint64_t id = check_id(L, arg);
    return id ? mw_idmap_get(&reg->sub_ids, id) : NULL;
}

mw_connreg_conn_t *mw_connreg_next(mw_connreg_t *reg, mw_sched_t *s, mw_connreg_conn_t *c) {
    for (mw_list_t *n = c ? c->link.next : reg->conns.next; n != &reg->conns; n = n->next) {
        c = mw_list_entry(n, mw_connreg_conn_t, link);
        if (c->sched == s)
            return c;
    }
    return NULL;
}

mw_connreg_conn_t *mw_connreg_find(mw_connreg_t *reg, mw_sched_t *s, const char *key) {
    mw_connreg_conn_t *c = NULL;
    while ((c = mw_connreg_next(reg, s, c)) && strcmp(c->key, key) != 0)
        ;
    return c;
}

size_t mw_connreg_count(mw_connreg_t *reg, mw_sched_t *s) {
    size_t n = 0;
    for (mw_connreg_conn_t *c = NULL; (c = mw_connreg_next(reg, s, c));)
        n++;
    return n;
}

int mw_connreg_add(mw_connreg_t *reg, mw_connreg_conn_t *c, mw_sched_t *s, const char *key) {
    char *k = strdup(key);
    if (!k || mw_idmap_put(&reg->conn_ids, reg->next_id + 1, c) != 0) {
        free(k);
        return MW_ENOMEM;
    }
    c->reg = reg;
    c->sched = s;
    c->key = k;
    c->id = ++reg->next_id;
    mw_list_insert_tail(&reg->conns, &c->link);
    return 0;
}

int mw_connreg_add_sub(mw_connreg_t *reg, mw_connreg_sub_t *sub, mw_connreg_conn_t *conn,
                       lua_State *L, int fn) {
    if (mw_idmap_put(&reg->sub_ids, reg->next_id + 1, sub) != 0)
        return MW_ENOMEM;
    sub->reg = reg;
    sub->conn = conn;
    sub->id = ++reg->next_id;
    lua_pushvalue(L, fn);
    sub->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    mw_list_insert_tail(&reg->subs, &sub->link);
    return 0;
}

void mw_connreg_unsubscribe(mw_connreg_sub_t *s) {
    mw_connreg_t *reg = s->reg;
    mw_idmap_del(&reg->sub_ids, s->id);
    luaL_unref(reg->T, LUA_REGISTRYINDEX, s->fn_ref);
    mw_list_remove(&s->link);
    reg->ops->free_sub(s);
}

void mw_connreg_close(mw_connreg_conn_t *c) {
    mw_connreg_t *reg = c->reg;
    for (mw_list_t *n = reg->subs.next, *next; n != &reg->subs; n = next) {
        next = n->next;
        mw_connreg_sub_t *sub = mw_list_entry(n, mw_connreg_sub_t, link);
        if (sub->conn == c)
            mw_connreg_unsubscribe(sub);
    }
    mw_idmap_del(&reg->conn_ids, c->id);
    mw_list_remove(&c->link);
    free(c->key);
    reg->ops->free_conn(c);
}

void mw_connreg_unsubscribe_all(mw_connreg_t *reg, mw_sched_t *s) {
    for (mw_list_t *n = reg->subs.next, *next; n != &reg->subs; n = next) {
        next = n->next;
        mw_connreg_sub_t *sub = mw_list_entry(n, mw_connreg_sub_t, link);
        if (sub->conn->sched == s && !sub->keep)
            mw_connreg_unsubscribe(sub);
    }
}

void mw_connreg_stop(mw_connreg_t *reg, mw_sched_t *s) {
    for (mw_list_t *n = reg->conns.next, *next; n != &reg->conns; n = next) {
        next = n->next;
        mw_connreg_conn_t *c = mw_list_entry(n, mw_connreg_conn_t, link);
        if (c->sched == s)
            mw_connreg_close(c);
    }
}
