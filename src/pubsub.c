/*
 * pubsub.c - joins, leaves and fan-out by client id.
 *
 * A broadcast is framed once (ws.c's encoder, wslay's frame API) into one
 * refcounted buffer; each recipient's output queue takes a reference, and
 * the server's flush pass writes every queue once per loop iteration. So
 * the per-recipient cost is a few checks and a ring entry: no copy, no
 * allocation, no syscall until the batch is written.
 */
#include "pubsub.h"
#include "conn.h"
#include "errors.h"
#include "outq.h"
#include "server_private.h"

#include <string.h>

static mw_conn_t *find_open(mw_server_t *s, uint64_t id) {
    mw_conn_t *c = mw_idmap_get(&s->clients, id);
    return c && mw_conn_is_open(c) ? c : NULL;
}

int mw_pubsub_join(mw_server_t *s, uint64_t id, const char *name, size_t len, char *moved_from) {
    mw_conn_t *c = find_open(s, id);
    moved_from[0] = '\0';
    if (!c)
        return MW_ECLOSED;
    return mw_rooms_join(s->rooms, mw_conn_rooms(c), name, len, moved_from);
}

int mw_pubsub_leave(mw_server_t *s, uint64_t id, const char *name, size_t len) {
    mw_conn_t *c = mw_idmap_get(&s->clients, id);
    if (!c)
        return MW_ECLOSED;
    return mw_rooms_leave(s->rooms, mw_conn_rooms(c), name, len);
}

int mw_pubsub_rooms(mw_server_t *s, uint64_t id,
                    void (*each)(void *ud, const char *name, size_t len), void *ud) {
    mw_conn_t *c = mw_idmap_get(&s->clients, id);
    if (!c)
        return MW_ECLOSED;
    mw_room_client_t *rc = mw_conn_rooms(c);
    for (uint32_t i = 0; i < rc->n; i++) {
        size_t len;
        const char *name = mw_room_name(mw_room_client_room(rc, i), &len);
        each(ud, name, len);
    }
    return (int)rc->n;
}

size_t mw_pubsub_members(mw_server_t *s, const char *name, size_t len,
                         void (*each)(void *ud, uint64_t id), void *ud) {
    mw_room_t *room = mw_rooms_find(s->rooms, name, len);
    if (!room)
        return 0;
    size_t n = mw_room_size(room);
    for (size_t i = 0; i < n; i++)
        each(ud, mw_conn_id(mw_room_member(room, i)));
    return n;
}

size_t mw_pubsub_count(mw_server_t *s, const char *name, size_t len) {
    mw_room_t *room = mw_rooms_find(s->rooms, name, len);
    return room ? mw_room_size(room) : 0;
}

size_t mw_pubsub_room_count(mw_server_t *s) {
    return mw_rooms_size(s->rooms);
}

/* event_hash turns an event id into the 64-bit key the per-client caches
 * keep (FNV-1a; 0 is reserved for "no event id"). */
static uint64_t event_hash(const char *id, size_t len) {
    if (!id)
        return 0;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)id[i];
        h *= 0x100000001b3ULL;
    }
    return h ? h : 1;
}

static void count(mw_fanout_result_t *res, int rc) {
    if (rc == 0)
        res->delivered++;
    else if (rc == MW_ESLOW)
        res->dropped++;
}

/* prepare frames the message once and hashes its event id: the first
 * step of every fan-out. Returns 0, MW_EUTF8 or MW_ENOMEM. */
static int prepare(mw_server_t *s, int binary, const char *data, size_t len, const char *event_id,
                   size_t event_len, mw_buf_t **frame, uint64_t *hash) {
    *hash = event_hash(event_id, event_len);
    return mw_ws_encode(s->encoder, binary, (const uint8_t *)data, len, frame);
}

int mw_pubsub_broadcast(mw_server_t *s, const char *room_name, size_t room_len, int binary,
                        const char *data, size_t len, uint64_t exclude_id, const char *event_id,
                        size_t event_len, mw_fanout_result_t *res) {
    memset(res, 0, sizeof *res);
    mw_room_t *room = mw_rooms_find(s->rooms, room_name, room_len);
    if (!room)
        return 0;
    mw_buf_t *f;
    uint64_t h;
    int rc = prepare(s, binary, data, len, event_id, event_len, &f, &h);
    if (rc)
        return rc;
    /* Delivery never joins or leaves (a slow consumer closed here leaves
     * its rooms later, in its close callback), so the member array is
     * stable while we walk it. */
    size_t n = mw_room_size(room);
    for (size_t i = 0; i < n; i++) {
        mw_conn_t *c = mw_room_member(room, i);
        if (mw_conn_id(c) != exclude_id)
            count(res, mw_conn_deliver(c, f, h));
    }
    mw_buf_unref(f);
    return 0;
}

int mw_pubsub_send_many(mw_server_t *s, const uint64_t *ids, size_t nids, int binary,
                        const char *data, size_t len, const char *event_id, size_t event_len,
                        mw_fanout_result_t *res) {
    memset(res, 0, sizeof *res);
    if (nids == 0)
        return 0;
    mw_buf_t *f;
    uint64_t h;
    int rc = prepare(s, binary, data, len, event_id, event_len, &f, &h);
    if (rc)
        return rc;
    for (size_t i = 0; i < nids; i++) {
        mw_conn_t *c = mw_idmap_get(&s->clients, ids[i]);
        if (c)
            count(res, mw_conn_deliver(c, f, h));
    }
    mw_buf_unref(f);
    return 0;
}

int mw_pubsub_broadcast_all(mw_server_t *s, int binary, const char *data, size_t len,
                            uint64_t exclude_id, const char *event_id, size_t event_len,
                            mw_fanout_result_t *res) {
    memset(res, 0, sizeof *res);
    mw_buf_t *f;
    uint64_t h;
    int rc = prepare(s, binary, data, len, event_id, event_len, &f, &h);
    if (rc)
        return rc;
    for (mw_list_t *l = s->conns.next; l != &s->conns; l = l->next) {
        mw_conn_t *c = mw_conn_from_link(l);
        if (mw_conn_id(c) != 0 && mw_conn_id(c) != exclude_id)
            count(res, mw_conn_deliver(c, f, h));
    }
    mw_buf_unref(f);
    return 0;
}

int mw_pubsub_dedupe(mw_server_t *s, uint64_t id, int on) {
    mw_conn_t *c = find_open(s, id);
    if (!c)
        return MW_ECLOSED;
    return mw_conn_set_dedupe(c, on);
}

int mw_pubsub_client_stats(mw_server_t *s, uint64_t id, size_t *buffered, uint64_t *dropped) {
    mw_conn_t *c = mw_idmap_get(&s->clients, id);
    if (!c)
        return MW_ECLOSED;
    mw_conn_stats(c, buffered, dropped);
    return 0;
}
