/*
 * test_rooms.c - the room index (src/rooms.c), with no sockets.
 *
 * Join/leave counts on both sides of the index, rooms freed with their last
 * member, O(1) leave keeping the member array consistent, limits (members
 * per room, rooms per client), single-room moves, name bounds, leave_all,
 * visiting every room (mw_rooms_each), and a churn of many clients over many rooms back to an empty
 * index (ASan checks that nothing leaks).
 */
#include "errors.h"
#include "rooms.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

#define R(s) s, strlen(s)

static mw_rooms_t *make(int max_members, int max_rooms, int single) {
    mw_rooms_limits_t l = {max_members, max_rooms, single};
    mw_rooms_t *r = NULL;
    if (mw_rooms_create(&r, &l) != 0)
        return NULL;
    return r;
}

/* has_member reports whether owner is among the room's members. */
static int has_member(mw_rooms_t *r, const char *name, void *owner) {
    mw_room_t *room = mw_rooms_find(r, R(name));
    if (!room)
        return 0;
    for (size_t i = 0; i < mw_room_size(room); i++)
        if (mw_room_member(room, i) == owner)
            return 1;
    return 0;
}

static void test_join_leave_counts(void) {
    mw_rooms_t *r = make(0, 0, 0);
    REQUIRE(r);
    int a_owner, b_owner;
    mw_room_client_t a, b;
    mw_room_client_init(&a, &a_owner);
    mw_room_client_init(&b, &b_owner);
    char moved[MW_ROOM_NAME_MAX + 1];
    CHECK_EQ(mw_rooms_join(r, &a, R("lobby"), moved), 1);
    CHECK_EQ(moved[0], '\0');
    CHECK_EQ(mw_rooms_join(r, &b, R("lobby"), moved), 2);
    CHECK_EQ(mw_rooms_join(r, &a, R("lobby"), moved), 2); /* already in: unchanged */
    CHECK_EQ(mw_rooms_join(r, &a, R("games"), moved), 1);
    CHECK_EQ(mw_rooms_size(r), 2);
    CHECK_EQ(a.n, 2);
    CHECK(has_member(r, "lobby", &a_owner) && has_member(r, "lobby", &b_owner));
    size_t len;
    CHECK_STR(mw_room_name(mw_room_client_room(&a, 0), &len), "lobby");
    CHECK_STR(mw_room_name(mw_room_client_room(&a, 1), &len), "games");
    CHECK_EQ(mw_rooms_leave(r, &a, R("lobby")), 1);
    CHECK(!has_member(r, "lobby", &a_owner));
    CHECK_EQ(mw_rooms_leave(r, &a, R("lobby")), MW_ENOTFOUND);
    CHECK_EQ(mw_rooms_leave(r, &a, R("nowhere")), MW_ENOTFOUND);
    CHECK_EQ(mw_rooms_leave(r, &a, R("games")), 0); /* last member: freed */
    CHECK(mw_rooms_find(r, R("games")) == NULL);
    CHECK_EQ(mw_rooms_size(r), 1);
    mw_rooms_leave_all(r, &b);
    CHECK_EQ(mw_rooms_size(r), 0);
    CHECK(b.items == NULL && b.n == 0);
    mw_rooms_leave_all(r, &a);
    mw_rooms_free(r);
}

static void test_leave_keeps_member_array_consistent(void) {
    /* Leaving from the middle moves the last member into the hole; every
     * remaining member must still be found and leave correctly. */
    mw_rooms_t *r = make(0, 0, 0);
    REQUIRE(r);
    enum { N = 50 };
    int owners[N];
    mw_room_client_t c[N];
    char moved[MW_ROOM_NAME_MAX + 1];
    for (int i = 0; i < N; i++) {
        mw_room_client_init(&c[i], &owners[i]);
        CHECK_EQ(mw_rooms_join(r, &c[i], R("big"), moved), i + 1);
    }
    for (int i = 0; i < N; i += 3)
        CHECK_EQ(mw_rooms_leave(r, &c[i], R("big")), N - (i / 3) - 1);
    for (int i = 0; i < N; i++)
        CHECK_EQ(has_member(r, "big", &owners[i]), i % 3 != 0);
    for (int i = 0; i < N; i++)
        mw_rooms_leave_all(r, &c[i]);
    CHECK_EQ(mw_rooms_size(r), 0);
    mw_rooms_free(r);
}

static void test_limits(void) {
    mw_rooms_t *r = make(2, 3, 0);
    REQUIRE(r);
    mw_room_client_t c[4];
    int owners[4];
    char moved[MW_ROOM_NAME_MAX + 1];
    for (int i = 0; i < 4; i++)
        mw_room_client_init(&c[i], &owners[i]);
    CHECK_EQ(mw_rooms_join(r, &c[0], R("r"), moved), 1);
    CHECK_EQ(mw_rooms_join(r, &c[1], R("r"), moved), 2);
    CHECK_EQ(mw_rooms_join(r, &c[2], R("r"), moved), MW_EFULL);
    CHECK_EQ(mw_room_size(mw_rooms_find(r, R("r"))), 2);
    CHECK_EQ(mw_rooms_join(r, &c[0], R("r"), moved), 2); /* a member re-joining is fine */
    CHECK_EQ(mw_rooms_join(r, &c[0], R("a"), moved), 1);
    CHECK_EQ(mw_rooms_join(r, &c[0], R("b"), moved), 1);
    CHECK_EQ(mw_rooms_join(r, &c[0], R("c"), moved), MW_ELIMIT);
    CHECK(mw_rooms_find(r, R("c")) == NULL); /* a refused join creates nothing */
    CHECK_EQ(c[0].n, 3);
    for (int i = 0; i < 4; i++)
        mw_rooms_leave_all(r, &c[i]);
    mw_rooms_free(r);
}

static void test_single_room_moves(void) {
    mw_rooms_t *r = make(0, 0, 1);
    REQUIRE(r);
    int o1, o2;
    mw_room_client_t a, b;
    mw_room_client_init(&a, &o1);
    mw_room_client_init(&b, &o2);
    char moved[MW_ROOM_NAME_MAX + 1];
    CHECK_EQ(mw_rooms_join(r, &a, R("one"), moved), 1);
    CHECK_EQ(mw_rooms_join(r, &b, R("one"), moved), 2);
    CHECK_EQ(mw_rooms_join(r, &a, R("two"), moved), 1);
    CHECK_STR(moved, "one");
    CHECK_EQ(a.n, 1);
    CHECK_EQ(mw_room_size(mw_rooms_find(r, R("one"))), 1);
    CHECK_EQ(mw_rooms_join(r, &a, R("two"), moved), 1); /* same room: no move */
    CHECK_EQ(moved[0], '\0');
    CHECK_EQ(mw_rooms_join(r, &b, R("two"), moved), 2); /* "one" emptied: freed */
    CHECK_STR(moved, "one");
    CHECK(mw_rooms_find(r, R("one")) == NULL);
    mw_rooms_leave_all(r, &a);
    mw_rooms_leave_all(r, &b);
    mw_rooms_free(r);
}

static void test_names(void) {
    mw_rooms_t *r = make(0, 0, 0);
    REQUIRE(r);
    int o;
    mw_room_client_t c;
    mw_room_client_init(&c, &o);
    char moved[MW_ROOM_NAME_MAX + 1];
    char name[MW_ROOM_NAME_MAX + 2];
    memset(name, 'n', sizeof name);
    CHECK_EQ(mw_rooms_join(r, &c, "", 0, moved), MW_EINVAL);
    CHECK_EQ(mw_rooms_join(r, &c, name, MW_ROOM_NAME_MAX + 1, moved), MW_EINVAL);
    CHECK_EQ(mw_rooms_join(r, &c, name, MW_ROOM_NAME_MAX, moved), 1);
    /* Names are bytes: embedded NULs and case are significant. */
    CHECK_EQ(mw_rooms_join(r, &c, "a\0b", 3, moved), 1);
    CHECK_EQ(mw_rooms_join(r, &c, "a", 1, moved), 1);
    CHECK_EQ(mw_rooms_join(r, &c, "A", 1, moved), 1);
    CHECK_EQ(mw_rooms_size(r), 4);
    mw_rooms_leave_all(r, &c);
    mw_rooms_free(r);
}

typedef struct {
    int n;
    size_t members;
    int seen_a, seen_b;
} visit_t;

static void visit(void *ud, const mw_room_t *room) {
    visit_t *v = ud;
    size_t len;
    const char *name = mw_room_name(room, &len);
    v->n++;
    v->members += mw_room_size(room);
    v->seen_a += len == 1 && name[0] == 'a';
    v->seen_b += len == 1 && name[0] == 'b';
}

/* mw_rooms_each visits each room that exists once, past a rehash. */
static void test_each(void) {
    mw_rooms_t *r = make(0, 0, 0);
    REQUIRE(r);
    visit_t v = {0};
    mw_rooms_each(r, visit, &v);
    CHECK_EQ(v.n, 0);
    int o1, o2;
    mw_room_client_t c1, c2;
    mw_room_client_init(&c1, &o1);
    mw_room_client_init(&c2, &o2);
    char moved[MW_ROOM_NAME_MAX + 1], name[16];
    CHECK_EQ(mw_rooms_join(r, &c1, R("a"), moved), 1);
    CHECK_EQ(mw_rooms_join(r, &c2, R("a"), moved), 2);
    CHECK_EQ(mw_rooms_join(r, &c2, R("b"), moved), 1);
    for (int i = 0; i < 200; i++) { /* past the first rehash */
        snprintf(name, sizeof name, "r%d", i);
        CHECK_EQ(mw_rooms_join(r, &c1, name, strlen(name), moved), 1);
    }
    mw_rooms_each(r, visit, &v);
    CHECK_EQ(v.n, 202);
    CHECK_EQ(v.members, 203);
    CHECK_EQ(v.seen_a, 1);
    CHECK_EQ(v.seen_b, 1);
    mw_rooms_leave_all(r, &c1);
    mw_rooms_leave_all(r, &c2);
    mw_rooms_free(r);
}

static void test_churn_back_to_empty(void) {
    /* Many clients over many rooms, joining and leaving in a mixed order,
     * past several rehashes: the index ends empty and consistent. */
    mw_rooms_t *r = make(0, 0, 0);
    REQUIRE(r);
    enum { CLIENTS = 200, ROOMS = 500, ROUNDS = 20000 };
    mw_room_client_t *c = calloc(CLIENTS, sizeof *c);
    int *owners = calloc(CLIENTS, sizeof *owners);
    REQUIRE(c && owners);
    for (int i = 0; i < CLIENTS; i++)
        mw_room_client_init(&c[i], &owners[i]);
    char moved[MW_ROOM_NAME_MAX + 1], name[32];
    unsigned seed = 7;
    size_t total = 0;
    for (int k = 0; k < ROUNDS; k++) {
        seed = seed * 1103515245u + 12345u;
        int who = (int)((seed >> 8) % CLIENTS);
        int room = (int)((seed >> 16) % ROOMS);
        snprintf(name, sizeof name, "room-%d", room);
        if ((seed >> 4) & 1) {
            int before = c[who].n;
            int n = mw_rooms_join(r, &c[who], name, strlen(name), moved);
            CHECK(n >= 1);
            total += (size_t)(c[who].n - before);
        } else if (mw_rooms_leave(r, &c[who], name, strlen(name)) >= 0) {
            total--;
        }
    }
    size_t sum = 0;
    for (int i = 0; i < CLIENTS; i++)
        sum += c[i].n;
    CHECK_EQ(sum, total);
    for (int i = 0; i < CLIENTS; i++)
        mw_rooms_leave_all(r, &c[i]);
    CHECK_EQ(mw_rooms_size(r), 0);
    mw_rooms_free(r);
    free(c);
    free(owners);
}

int main(void) {
    RUN(test_join_leave_counts);
    RUN(test_leave_keeps_member_array_consistent);
    RUN(test_limits);
    RUN(test_single_room_moves);
    RUN(test_names);
    RUN(test_each);
    RUN(test_churn_back_to_empty);
    return test_summary();
}
