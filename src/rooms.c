/*
 * rooms.c - the room index: a chained hash table of rooms by name, each
 * room an array of memberships, each client an array of memberships.
 *
 * A membership knows its index in the room's array, so leaving is O(1):
 * the last member takes the leaver's slot. Broadcast walks the room's
 * array front to back, which is contiguous and cache-friendly.
 *
 * Room names come from clients, so the hash is seeded at start-up
 * (hash.h) to keep chains short against chosen names.
 */
#include "rooms.h"
#include "errors.h"
#include "hash.h"

#include <stdlib.h>
#include <string.h>

struct mw_membership {
    mw_room_t *room;
    mw_room_client_t *client;
    uint32_t room_idx; /* where this membership sits in room->members */
};

struct mw_room {
    mw_room_t *next; /* hash chain */
    uint64_t hash;
    mw_membership_t **members;
    void **owners; /* owners[i] == members[i]->client->owner, contiguous for fan-out */
    uint32_t n, cap;
    size_t len;
    char name[]; /* NUL-terminated too, for logs */
};

struct mw_rooms {
    mw_room_t **buckets;
    size_t nbuckets, count;
    uint64_t seed;
    mw_rooms_limits_t limits;
};

int mw_rooms_create(mw_rooms_t **out, const mw_rooms_limits_t *limits) {
    mw_rooms_t *r = calloc(1, sizeof *r);
    if (!r)
        return MW_ENOMEM;
    r->nbuckets = 64;
    r->buckets = calloc(r->nbuckets, sizeof *r->buckets);
    if (!r->buckets) {
        free(r);
        return MW_ENOMEM;
    }
    r->seed = mw_hash_seed();
    r->limits = *limits;
    *out = r;
    return 0;
}

static void free_room(mw_room_t *room) {
    free(room->members);
    free(room->owners);
    free(room);
}

void mw_rooms_free(mw_rooms_t *r) {
    if (!r)
        return;
    for (size_t i = 0; i < r->nbuckets; i++) {
        mw_room_t *room = r->buckets[i];
        while (room) {
            mw_room_t *next = room->next;
            for (uint32_t j = 0; j < room->n; j++)
                free(room->members[j]);
            free_room(room);
            room = next;
        }
    }
    free(r->buckets);
    free(r);
}

mw_room_t *mw_rooms_find(const mw_rooms_t *r, const char *name, size_t len) {
    uint64_t h = mw_hash(r->seed, name, len);
    for (mw_room_t *room = r->buckets[h & (r->nbuckets - 1)]; room; room = room->next)
        if (room->hash == h && room->len == len && memcmp(room->name, name, len) == 0)
            return room;
    return NULL;
}

static void rehash(mw_rooms_t *r) {
    size_t n = r->nbuckets * 2;
    mw_room_t **b = calloc(n, sizeof *b);
    if (!b)
        return; /* keep the old table: longer chains, still correct */
    for (size_t i = 0; i < r->nbuckets; i++) {
        mw_room_t *room = r->buckets[i];
        while (room) {
            mw_room_t *next = room->next;
            room->next = b[room->hash & (n - 1)];
            b[room->hash & (n - 1)] = room;
            room = next;
        }
    }
    free(r->buckets);
    r->buckets = b;
    r->nbuckets = n;
}

static mw_room_t *create_room(mw_rooms_t *r, const char *name, size_t len) {
    mw_room_t *room = calloc(1, sizeof *room + len + 1);
    if (!room)
        return NULL;
    room->hash = mw_hash(r->seed, name, len);
    room->len = len;
    memcpy(room->name, name, len);
    room->name[len] = '\0';
    if (r->count + 1 > r->nbuckets)
        rehash(r);
    size_t b = room->hash & (r->nbuckets - 1);
    room->next = r->buckets[b];
    r->buckets[b] = room;
    r->count++;
    return room;
}

static void destroy_room(mw_rooms_t *r, mw_room_t *room) {
    mw_room_t **p = &r->buckets[room->hash & (r->nbuckets - 1)];
    while (*p != room)
        p = &(*p)->next;
    *p = room->next;
    r->count--;
    free_room(room);
}

static int grow(void **items, uint32_t *cap, uint32_t need, size_t size) {
    if (need <= *cap)
        return 0;
    uint32_t n = *cap ? *cap * 2 : 4;
    while (n < need)
        n *= 2;
    void *p = realloc(*items, (size_t)n * size);
    if (!p)
        return MW_ENOMEM;
    *items = p;
    *cap = n;
    return 0;
}

static int client_index(const mw_room_client_t *c, const mw_room_t *room) {
    for (uint32_t i = 0; i < c->n; i++)
        if (c->items[i]->room == room)
            return (int)i;
    return -1;
}

/* remove_membership unlinks membership i of c from both sides. */
static size_t remove_membership(mw_rooms_t *r, mw_room_client_t *c, uint32_t i) {
    mw_membership_t *m = c->items[i];
    mw_room_t *room = m->room;
    mw_membership_t *last = room->members[--room->n];
    room->members[m->room_idx] = last;
    room->owners[m->room_idx] = room->owners[room->n];
    last->room_idx = m->room_idx;
    memmove(&c->items[i], &c->items[i + 1], (c->n - i - 1) * sizeof *c->items);
    c->n--;
    free(m);
    size_t left = room->n;
    if (left == 0)
        destroy_room(r, room);
    return left;
}

int mw_rooms_is_member(const mw_rooms_t *r, const mw_room_client_t *c, const char *name,
                       size_t len) {
    const mw_room_t *room = mw_rooms_find(r, name, len);
    return room && client_index(c, room) >= 0;
}

int mw_rooms_join(mw_rooms_t *r, mw_room_client_t *c, const char *name, size_t len,
                  char *moved_from) {
    if (moved_from)
        moved_from[0] = '\0';
    if (!mw_room_name_valid(name, len))
        return MW_EINVAL;
    mw_room_t *room = mw_rooms_find(r, name, len);
    if (room && client_index(c, room) >= 0)
        return (int)room->n;
    if (room && r->limits.max_members > 0 && room->n >= (uint32_t)r->limits.max_members)
        return MW_EFULL;
    if (!r->limits.single_room && r->limits.max_rooms > 0 && c->n >= (uint32_t)r->limits.max_rooms)
        return MW_ELIMIT;
    if (grow((void **)&c->items, &c->cap, c->n + 1, sizeof *c->items) != 0)
        return MW_ENOMEM;
    mw_membership_t *m = malloc(sizeof *m);
    if (!m)
        return MW_ENOMEM;
    int created = 0;
    if (!room) {
        room = create_room(r, name, len);
        if (!room) {
            free(m);
            return MW_ENOMEM;
        }
        created = 1;
    }
    if (room->n + 1 > room->cap) {
        uint32_t cap = room->cap;
        void *owners = NULL;
        int rc = grow((void **)&room->members, &cap, room->n + 1, sizeof *room->members);
        if (rc == 0) {
            owners = realloc(room->owners, (size_t)cap * sizeof *room->owners);
            if (owners) {
                room->owners = owners;
                room->cap = cap;
            }
        }
        if (rc != 0 || !owners) {
            free(m);
            if (created)
                destroy_room(r, room);
            return MW_ENOMEM;
        }
    }
    /* Move out of the previous room only once the join cannot fail. */
    if (r->limits.single_room) {
        while (c->n > 0) {
            const mw_room_t *old = c->items[0]->room;
            if (moved_from) {
                memcpy(moved_from, old->name, old->len + 1);
            }
            remove_membership(r, c, 0);
        }
    }
    m->room = room;
    m->client = c;
    m->room_idx = room->n;
    room->owners[room->n] = c->owner;
    room->members[room->n++] = m;
    c->items[c->n++] = m;
    return (int)room->n;
}

int mw_rooms_leave(mw_rooms_t *r, mw_room_client_t *c, const char *name, size_t len) {
    mw_room_t *room = mw_rooms_find(r, name, len);
    int i = room ? client_index(c, room) : -1;
    if (i < 0)
        return MW_ENOTFOUND;
    return (int)remove_membership(r, c, (uint32_t)i);
}

void mw_rooms_leave_all(mw_rooms_t *r, mw_room_client_t *c) {
    while (c->n > 0)
        remove_membership(r, c, c->n - 1);
    free(c->items);
    c->items = NULL;
    c->cap = 0;
}

size_t mw_rooms_size(const mw_rooms_t *r) {
    return r->count;
}

void mw_rooms_each(const mw_rooms_t *r, void (*fn)(void *ud, const mw_room_t *room), void *ud) {
    for (size_t i = 0; i < r->nbuckets; i++)
        for (const mw_room_t *room = r->buckets[i]; room; room = room->next)
            fn(ud, room);
}

size_t mw_room_size(const mw_room_t *room) {
    return room->n;
}

void *mw_room_member(const mw_room_t *room, size_t i) {
    return room->owners[i];
}

const char *mw_room_name(const mw_room_t *room, size_t *len) {
    *len = room->len;
    return room->name;
}

const mw_room_t *mw_room_client_room(const mw_room_client_t *c, uint32_t i) {
    return c->items[i]->room;
}
