/*
 * pubsub.h - rooms and fan-out at the server level, addressed by client id
 * (what Lua holds). The room index itself is rooms.c; delivery to one
 * connection is conn.c; this file joins the two and frames each broadcast
 * once.
 */
#ifndef MW_PUBSUB_H
#define MW_PUBSUB_H

#include <stddef.h>
#include <stdint.h>

#include "server.h"

/* mw_pubsub_join puts client id in a room. Returns the member count, or
 * MW_ECLOSED, MW_EINVAL (bad name), MW_EFULL, MW_ELIMIT, MW_ENOMEM. When
 * the client was moved out of a room (client_can_join_multiple_rooms =
 * false) its name is in moved_from (MW_ROOM_NAME_MAX + 1 bytes), else "". */
int mw_pubsub_join(mw_server_t *s, uint64_t id, const char *name, size_t len, char *moved_from);

/* mw_pubsub_leave returns the count left in the room, MW_ENOTFOUND (not a
 * member) or MW_ECLOSED. */
int mw_pubsub_leave(mw_server_t *s, uint64_t id, const char *name, size_t len);

/* mw_pubsub_rooms calls each(ud, name, len) for the client's rooms in join
 * order. Returns how many, or MW_ECLOSED. */
int mw_pubsub_rooms(mw_server_t *s, uint64_t id,
                    void (*each)(void *ud, const char *name, size_t len), void *ud);

/* mw_pubsub_members calls each(ud, id) for every member of the room and
 * returns how many (0 when the room does not exist). */
size_t mw_pubsub_members(mw_server_t *s, const char *name, size_t len,
                         void (*each)(void *ud, uint64_t id), void *ud);

size_t mw_pubsub_count(mw_server_t *s, const char *name, size_t len);
size_t mw_pubsub_room_count(mw_server_t *s);

/* What a fan-out did. */
typedef struct {
    size_t delivered; /* queued to a client */
    size_t dropped;   /* refused by backpressure */
} mw_fanout_result_t;

/* The three fan-outs frame the message once and queue a reference to every
 * recipient that is open, is not exclude_id (0: nobody), and has not seen
 * event_id (NULL: no duplicate suppression). Returns 0, MW_EUTF8 (text
 * that is not UTF-8; nothing is sent) or MW_ENOMEM. */
int mw_pubsub_broadcast(mw_server_t *s, const char *room, size_t room_len, int binary,
                        const char *data, size_t len, uint64_t exclude_id, const char *event_id,
                        size_t event_len, mw_fanout_result_t *res);
int mw_pubsub_send_many(mw_server_t *s, const uint64_t *ids, size_t nids, int binary,
                        const char *data, size_t len, const char *event_id, size_t event_len,
                        mw_fanout_result_t *res);
int mw_pubsub_broadcast_all(mw_server_t *s, int binary, const char *data, size_t len,
                            uint64_t exclude_id, const char *event_id, size_t event_len,
                            mw_fanout_result_t *res);

/* mw_pubsub_dedupe opts a client in or out of duplicate suppression.
 * Returns 0 or MW_ECLOSED. */
int mw_pubsub_dedupe(mw_server_t *s, uint64_t id, int on);

/* mw_pubsub_client_stats reports a client's queued bytes and drops.
 * Returns 0 or MW_ECLOSED. */
int mw_pubsub_client_stats(mw_server_t *s, uint64_t id, size_t *buffered, uint64_t *dropped);

#endif
