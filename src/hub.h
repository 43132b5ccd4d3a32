/*
 * hub.h - workers on one machine exchange messages through their
 * supervisor (the hub, hubd.h): this is the record format both sides
 * speak and the worker's end of it.
 *
 * Each worker has one Unix stream socket to the supervisor (a socketpair
 * the supervisor makes, inherited as MW_HUB_FD). On it go records:
 *
 *   u32 length (big-endian, of what follows) | u8 op | u8 worker
 *   | u16 channel length | channel | payload
 *
 * worker is 0 in what a worker sends; in what the supervisor passes on it
 * is the number (1..64) of the worker the record came from.
 *
 * op is SUB or UNSUB (no payload) from a worker, or PUB either way: a
 * worker publishes to a channel, and the supervisor passes the same record
 * on (worker set) to every other worker subscribed to that channel. So a
 * message is encoded once by the worker it comes from (moonwire.cluster
 * puts its header in the payload) and copied into each receiving worker's
 * socket once; no lock anywhere: each side is one loop. Both sides write
 * once per loop iteration whatever records it made (a worker to the
 * supervisor, the supervisor to each worker), so a burst of publishes
 * crosses in a few writes and reads, and reaches the receiving worker's
 * subscribers in one write each, as it does the publisher's.
 *
 * ACK goes from the supervisor to a worker: its payload is a count (in
 * decimal) of that worker's SUB and UNSUB records the supervisor has
 * applied since its last ACK. A worker with no SUB or UNSUB unconfirmed
 * knows that whatever another worker publishes from now on reaches it
 * per its subscriptions (mw_hub_pending, "hub" in /health).
 *
 * SET (channel: a key, payload: its value) and DEL (a key) keep a
 * worker's entries in the supervisor's store, one set of keys per worker
 * (moonwire.cluster keeps there the members of its rooms). The supervisor
 * passes each on to every other worker, and gives a worker that starts
 * every other worker's entries (SET records) before anything else. When
 * a worker exits its entries go, and every other worker gets EXIT (worker
 * set to the one that exited, no channel or payload): the supervisor's
 * store and each worker's copy of it never keep a dead worker's entries.
 *
 * RELOAD goes from the supervisor to a worker (no channel or payload):
 * reload as on SIGHUP. It waits in the socket until the worker reads it,
 * where a signal could reach a worker that has no handler yet and kill
 * it. REPORT goes back: an outcome the supervisor logs once for every
 * worker that had the same (channel: what, "reload"; payload: "+why" when
 * it went well, "-why\nerror" when not).
 */
#ifndef MW_HUB_H
#define MW_HUB_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

enum {
    MW_HUB_SUB = 1,
    MW_HUB_UNSUB = 2,
    MW_HUB_PUB = 3,
    MW_HUB_ACK = 4,
    MW_HUB_SET = 5,
    MW_HUB_DEL = 6,
    MW_HUB_EXIT = 7,
    MW_HUB_REPORT = 8,
    MW_HUB_RELOAD = 9,
};
#define MW_HUB_OP_MAX MW_HUB_RELOAD

#define MW_HUB_HEADER 8               /* length, op, worker, channel length */
#define MW_HUB_WORKER_AT 5            /* the worker byte's offset */
#define MW_HUB_CHANNEL_MAX 65535      /* a channel name's bytes, at most */
#define MW_HUB_RECORD_MAX (64u << 20) /* a record's bytes, at most */

/* A record parsed in place: pointers into the buffer it was read from. */
typedef struct {
    int op;
    int worker; /* the worker it came from (records the supervisor passes on) */
    const char *channel;
    size_t channel_len;
    const char *payload;
    size_t payload_len;
} mw_hub_record_t;

/* mw_hub_record_size is the bytes of a record with these lengths. */
size_t mw_hub_record_size(size_t channel_len, size_t payload_len);

/* mw_hub_record_write writes a record into buf (mw_hub_record_size
 * bytes); worker: 0 from a worker, the origin from the supervisor. */
void mw_hub_record_write(char *buf, int op, int worker, const char *channel, size_t channel_len,
                         const char *payload, size_t payload_len);

/* mw_hub_record_parse parses the record at the start of buf (n bytes).
 * Returns its size (> 0) with *rec set, 0 when buf holds only part of one,
 * or MW_EPROTO for bytes that are not a record. */
long mw_hub_record_parse(const char *buf, size_t n, mw_hub_record_t *rec);

/* A stream that reads records: bytes come in pieces, records go out
 * whole. Both ends use it. */
typedef struct {
    char *buf;
    size_t len, cap;
} mw_hub_reader_t;

/* mw_hub_reader_alloc gives libuv room for the next read (uv_alloc_cb's
 * work); mw_hub_reader_take then records that nread bytes came and calls
 * fn(data, record) for every whole record. Returns 0, or MW_EPROTO /
 * MW_ENOMEM (the stream should be closed). */
int mw_hub_reader_alloc(mw_hub_reader_t *r, uv_buf_t *buf);
int mw_hub_reader_take(mw_hub_reader_t *r, size_t nread,
                       void (*fn)(void *data, const mw_hub_record_t *rec), void *data);
void mw_hub_reader_free(mw_hub_reader_t *r);

/* ---- the worker's end ---------------------------------------------------- */

typedef struct mw_hub mw_hub_t;

/* A record for the worker arrived: a published message of a subscribed
 * channel (PUB), another worker's entry set or deleted (SET, DEL), or a
 * worker gone (EXIT). ACKs are the hub's own (mw_hub_pending). */
typedef void (*mw_hub_message_cb)(void *data, const mw_hub_record_t *rec);

/* mw_hub_worker_fd is the inherited socket of MW_HUB_FD, or -1 when this
 * process is not a supervisor's worker. */
int mw_hub_worker_fd(void);

/* mw_hub_open starts reading fd on loop; cb gets every message. The
 * handle does not keep the loop alive (a stopping worker does not wait
 * for its supervisor). Returns 0 or an error code. */
int mw_hub_open(mw_hub_t **out, uv_loop_t *loop, int fd, mw_hub_message_cb cb, void *data);

/* mw_hub_send queues a record (op, channel, payload) to the supervisor.
 * The records of one loop iteration go with one write at its end (after
 * its I/O, or before the loop waits for more), in the order they were
 * queued. Returns 0, MW_ECLOSED once the supervisor's end is gone,
 * MW_EINVAL for a channel or record too long, MW_ENOMEM. */
int mw_hub_send(mw_hub_t *h, int op, const char *channel, size_t channel_len, const char *payload,
                size_t len);

/* mw_hub_up is whether the supervisor's end is still there. */
int mw_hub_up(const mw_hub_t *h);

/* mw_hub_pending is how many SUB and UNSUB records sent are not yet
 * confirmed by an ACK: 0 means every subscription is in place. */
uint64_t mw_hub_pending(const mw_hub_t *h);

/* mw_hub_close closes the socket; h is freed once libuv is done with it. */
void mw_hub_close(mw_hub_t *h);

#endif
