/*
 * fanout.h - one message to many clients, framed once.
 *
 * A broadcast is framed once (ws.c's encoder, wslay's frame API) into one
 * refcounted buffer; each recipient's output queue takes a reference, and
 * the server's flush pass writes every queue once per loop iteration. So
 * the per-recipient cost is a few checks and a ring entry: no copy, no
 * allocation, no syscall until the batch is written.
 */
#ifndef MW_FANOUT_H
#define MW_FANOUT_H

#include <stddef.h>
#include <stdint.h>

typedef struct mw_server mw_server_t;

/* What to send. exclude_id: a client that does not get it (0: nobody).
 * event_id: for duplicate suppression (NULL: none), see dedupe.h. */
typedef struct {
    int binary;
    const char *data;
    size_t len;
    uint64_t exclude_id;
    const char *event_id;
    size_t event_len;
} mw_fanout_msg_t;

/* What a fan-out did. */
typedef struct {
    size_t delivered; /* queued to a client */
    size_t dropped;   /* refused by backpressure */
} mw_fanout_result_t;

/* Each fan-out frames the message once and queues a reference to every
 * recipient that is open, is not the excluded one and has not seen the
 * event. Returns 0, MW_EUTF8 (text that is not UTF-8; nothing is sent) or
 * MW_ENOMEM. */

/* mw_fanout_room: to the members of a room (none when it does not exist). */
int mw_fanout_room(mw_server_t *s, const char *room, size_t room_len, const mw_fanout_msg_t *m,
                   mw_fanout_result_t *res);

/* mw_fanout_clients: to the clients with these ids (unknown ids skipped). */
int mw_fanout_clients(mw_server_t *s, const uint64_t *ids, size_t nids, const mw_fanout_msg_t *m,
                      mw_fanout_result_t *res);

/* mw_fanout_all: to every connected client. */
int mw_fanout_all(mw_server_t *s, const mw_fanout_msg_t *m, mw_fanout_result_t *res);

#endif
