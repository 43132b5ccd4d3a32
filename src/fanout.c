/*
 * fanout.c - broadcasts to a room, to a list of clients, to everyone.
 *
 * The three differ only in how they find their recipients, so they share
 * one delivery loop (fanout) that takes the way to the next recipient as a
 * function; it is inlined into each caller with that function known, so
 * the loop costs what a hand-written one would.
 */
#include "fanout.h"
#include "conn.h"
#include "dedupe.h"
#include "errors.h"
#include "outq.h"
#include "state.h"

#include <string.h>

typedef mw_conn_t *(*next_fn)(void *cursor);

/* fanout frames m once, then delivers it to each connection next() gives
 * until it gives NULL. Delivery never joins or leaves (a slow consumer
 * closed here leaves its rooms later, in its close callback), so the
 * recipients' containers are stable while we walk them. */
static inline __attribute__((always_inline)) int fanout(mw_server_t *s, const mw_fanout_msg_t *m,
                                                        next_fn next, void *cursor,
                                                        mw_fanout_result_t *res) {
    memset(res, 0, sizeof *res);
    mw_buf_t *frame;
    int rc = mw_ws_encode(s->encoder, m->binary, (const uint8_t *)m->data, m->len, &frame);
    if (rc)
        return rc;
    uint64_t hash = mw_dedupe_hash(m->event_id, m->event_len);
    for (mw_conn_t *c; (c = next(cursor));) {
        if (mw_conn_id(c) == m->exclude_id)
            continue;
        rc = mw_conn_deliver(c, frame, hash);
        if (rc == 0)
            res->delivered++;
        else if (rc == MW_ESLOW)
            res->dropped++;
    }
    mw_buf_unref(frame);
    s->counters.fanout_deliveries += res->delivered;
    s->counters.messages_sent += res->delivered;
    s->counters.bytes_sent += (uint64_t)res->delivered * m->len;
    return 0;
}

typedef struct {
    mw_room_t *room;
    size_t i, n;
} room_cursor_t;

static mw_conn_t *next_member(void *p) {
    room_cursor_t *rc = p;
    return rc->i < rc->n ? mw_room_member(rc->room, rc->i++) : NULL;
}

int mw_fanout_room(mw_server_t *s, const char *room, size_t room_len, const mw_fanout_msg_t *m,
                   mw_fanout_result_t *res) {
    room_cursor_t cur = {mw_rooms_find(s->rooms, room, room_len), 0, 0};
    if (!cur.room) {
        memset(res, 0, sizeof *res);
        return 0;
    }
    cur.n = mw_room_size(cur.room);
    return fanout(s, m, next_member, &cur, res);
}

typedef struct {
    mw_server_t *s;
    const uint64_t *ids;
    size_t i, n;
} ids_cursor_t;

static mw_conn_t *next_id(void *p) {
    ids_cursor_t *ic = p;
    while (ic->i < ic->n) {
        mw_conn_t *c = mw_server_client(ic->s, ic->ids[ic->i++]);
        if (c)
            return c;
    }
    return NULL;
}

int mw_fanout_clients(mw_server_t *s, const uint64_t *ids, size_t nids, const mw_fanout_msg_t *m,
                      mw_fanout_result_t *res) {
    if (nids == 0) {
        memset(res, 0, sizeof *res);
        return 0;
    }
    ids_cursor_t cur = {s, ids, 0, nids};
    return fanout(s, m, next_id, &cur, res);
}

typedef struct {
    mw_list_t *head, *l;
} all_cursor_t;

/* next_client skips connections that never became clients (id 0: still
 * in HTTP); mw_conn_deliver skips those that are closing. */
static mw_conn_t *next_client(void *p) {
    all_cursor_t *ac = p;
    while (ac->l != ac->head) {
        mw_conn_t *c = mw_conn_from_link(ac->l);
        ac->l = ac->l->next;
        if (mw_conn_id(c) != 0)
            return c;
    }
    return NULL;
}

int mw_fanout_all(mw_server_t *s, const mw_fanout_msg_t *m, mw_fanout_result_t *res) {
    all_cursor_t cur = {&s->conns, s->conns.next};
    return fanout(s, m, next_client, &cur, res);
}
