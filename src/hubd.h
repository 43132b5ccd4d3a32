/*
 * hubd.h - the supervisor's end of the hub (hub.h): it keeps, for each
 * channel, the set of workers subscribed to it and passes each record a
 * worker publishes on to the others in that set, the same bytes to each;
 * and it keeps each worker's entries (SET, DEL: the store), passes them
 * on to the other workers, and gives them all to a worker that starts.
 *
 * One loop, no threads, no lock. A worker's set is a bit in a 64-bit
 * mask per channel (a supervisor runs at most 64 workers). A worker that
 * exits loses every subscription and every entry, and the others are
 * told (EXIT); the one started in its place subscribes again as its
 * clients join.
 */
#ifndef MW_HUBD_H
#define MW_HUBD_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define MW_HUBD_MAX_WORKERS 64

typedef struct mw_hubd mw_hubd_t;

/* mw_hubd_create makes an empty hub on loop. Returns 0 or MW_ENOMEM. */
int mw_hubd_create(mw_hubd_t **out, uv_loop_t *loop);

/* A worker (1..64) reported an outcome (hub.h's REPORT): what, e.g.
 * "reload", and its text. */
typedef void (*mw_hubd_report_cb)(void *data, int worker, const char *what, size_t what_len,
                                  const char *text, size_t len);

/* mw_hubd_on_report makes cb get every REPORT a worker sends. */
void mw_hubd_on_report(mw_hubd_t *h, mw_hubd_report_cb cb, void *data);

/* mw_hubd_reload asks worker slot to reload (RELOAD): it does when it
 * reads it. Returns 0, or an error code when slot is not attached. */
int mw_hubd_reload(mw_hubd_t *h, int slot);

/* mw_hubd_attach makes the socketpair of worker slot (0..63), starts
 * reading the supervisor's end and queues every other worker's entries
 * on it; *child_fd is the worker's end, to be inherited by the spawned
 * worker and then closed with mw_hubd_spawned. A slot still attached is
 * detached first. */
int mw_hubd_attach(mw_hubd_t *h, int slot, int *child_fd);

/* mw_hubd_spawned closes the worker's end in the supervisor (the worker
 * has its copy). */
void mw_hubd_spawned(mw_hubd_t *h, int slot);

/* mw_hubd_detach forgets worker slot: its socket closes, its
 * subscriptions and entries go, and every other worker gets EXIT. */
void mw_hubd_detach(mw_hubd_t *h, int slot);

/* mw_hubd_free detaches every worker; h is freed once the loop has closed
 * the sockets (run the loop after). */
void mw_hubd_free(mw_hubd_t *h);

/* Counters for logs and tests: records forwarded and dropped (a worker
 * that does not read, past its queue limit). */
uint64_t mw_hubd_forwarded(const mw_hubd_t *h);
uint64_t mw_hubd_dropped(const mw_hubd_t *h);

/* mw_hubd_entries is how many entries the store holds, every worker's. */
size_t mw_hubd_entries(const mw_hubd_t *h);

#endif
