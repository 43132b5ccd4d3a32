/*
 * rooms.h - rooms and their members, as a pure two-way index.
 *
 * room -> members and client -> rooms are updated together by join and
 * leave (Redis pubsub.c's shape), so leaving every room on disconnect costs
 * the client's own room count, not a scan. A room exists while it has
 * members: the last leave frees it. Members are opaque owner pointers (the
 * connection); this module never looks inside them and does no I/O.
 */
#ifndef MW_ROOMS_H
#define MW_ROOMS_H

#include <stddef.h>
#include <stdint.h>

/* The room-name rule, in one place: 1 to MW_ROOM_NAME_MAX bytes, any
 * bytes (config's presence patterns and Lua's checks use it too). */
#define MW_ROOM_NAME_MAX 256
#define MW_ROOM_NAME_STR_(n) #n
#define MW_ROOM_NAME_STR(n) MW_ROOM_NAME_STR_(n)
/* The rule in words, for error messages. */
#define MW_ROOM_NAME_RULE "room names of 1 to " MW_ROOM_NAME_STR(MW_ROOM_NAME_MAX) " bytes"

static inline int mw_room_name_valid(const char *name, size_t len) {
    (void)name;
    return len > 0 && len <= MW_ROOM_NAME_MAX;
}

typedef struct mw_rooms mw_rooms_t;
typedef struct mw_room mw_room_t;
typedef struct mw_membership mw_membership_t;

/* A client's side of the index, embedded in the connection. */
typedef struct {
    mw_membership_t **items; /* in join order */
    uint32_t n, cap;
    void *owner; /* what rooms hand back as a member */
} mw_room_client_t;

typedef struct {
    int max_members; /* per room; 0 = unlimited */
    int max_rooms;   /* per client; 0 = unlimited */
    int single_room; /* a join moves the client out of its other room */
} mw_rooms_limits_t;

/* mw_rooms_create returns 0 or MW_ENOMEM. */
int mw_rooms_create(mw_rooms_t **out, const mw_rooms_limits_t *limits);

/* mw_rooms_free frees every room; clients must have left (or be freed too). */
void mw_rooms_free(mw_rooms_t *r);

static inline void mw_room_client_init(mw_room_client_t *c, void *owner) {
    c->items = NULL;
    c->n = c->cap = 0;
    c->owner = owner;
}

/* mw_rooms_join adds c to room `name` (created when missing) and returns
 * the member count after the join (>= 1); joining a room c is already in
 * returns the count unchanged. With single_room, c first leaves the room it
 * was in; its name is copied to moved_from (NUL-terminated, at least
 * MW_ROOM_NAME_MAX + 1 bytes), else moved_from[0] is '\0'.
 * Errors: MW_EINVAL (name empty or longer than MW_ROOM_NAME_MAX), MW_EFULL
 * (max_members), MW_ELIMIT (max_rooms), MW_ENOMEM. On error nothing changed. */
int mw_rooms_join(mw_rooms_t *r, mw_room_client_t *c, const char *name, size_t len,
                  char *moved_from);

/* mw_rooms_leave removes c from the room and returns the count left in it
 * (0 means the room was freed), or MW_ENOTFOUND when c was not in it. */
int mw_rooms_leave(mw_rooms_t *r, mw_room_client_t *c, const char *name, size_t len);

/* mw_rooms_leave_all removes c from every room and frees its list. */
void mw_rooms_leave_all(mw_rooms_t *r, mw_room_client_t *c);

/* mw_rooms_is_member tells whether c is in room `name`. */
int mw_rooms_is_member(const mw_rooms_t *r, const mw_room_client_t *c, const char *name,
                       size_t len);

/* mw_rooms_find returns the room, or NULL when it does not exist. */
mw_room_t *mw_rooms_find(const mw_rooms_t *r, const char *name, size_t len);

/* mw_rooms_size returns how many rooms exist. */
size_t mw_rooms_size(const mw_rooms_t *r);

/* mw_rooms_each calls fn for every room that exists, in no particular
 * order; fn must not join or leave. */
void mw_rooms_each(const mw_rooms_t *r, void (*fn)(void *ud, const mw_room_t *room), void *ud);

/* mw_room_size returns how many members the room has. */
size_t mw_room_size(const mw_room_t *room);

/* mw_room_member returns the owner pointer of member i (0 <= i < size).
 * The order changes when members leave; do not join or leave while
 * iterating. */
void *mw_room_member(const mw_room_t *room, size_t i);

/* mw_room_name returns the room's name and its length. */
const char *mw_room_name(const mw_room_t *room, size_t *len);

/* mw_room_client_room returns the i-th room of c (join order). */
const mw_room_t *mw_room_client_room(const mw_room_client_t *c, uint32_t i);

#endif
