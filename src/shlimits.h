/*
 * shlimits.h - the connection limits of `workers = N` counted for the
 * whole server: max_connections, max_connections_per_ip,
 * connection_rate_per_ip and max_connections_per_user hold across every
 * worker, not per worker, and so does max_connections_per_room
 * (docs/configuration.md, docs/scaling.md).
 *
 * One memfd, made by the supervisor like the stats zone and inherited by
 * every worker (MW_LIMITS_FD). Each worker owns a slice: its client count
 * and its per-address, per-user and per-room counts. A worker only ever
 * changes its own slice, with atomic adds; a decision sums the slices (N
 * loads per number). A worker that dies leaves its slice behind and the
 * supervisor zeroes it (mw_shlimits_clear) before the slot's next worker
 * starts, so a SIGKILLed worker's connections and memberships stop
 * counting at once. The new-connection rate cells (GCRA, ratelimit.h) are
 * shared by every worker and updated with compare-and-swap. No lock
 * anywhere: this runs once per connection (accept, upgrade,
 * authentication) and once per join and leave with
 * max_connections_per_room, never per message.
 *
 * Addresses, users and rooms are not stored: each is hashed (the zone's
 * seed, the same in every worker) to one counter in each of
 * MW_SHLIMITS_ROWS rows, and its count is the smallest of its counters (a
 * count-min sketch). A count is never lower than the truth, so a limit is
 * never exceeded; it is higher only when every one of the key's counters
 * is shared with other keys, and then the key is refused early, never
 * admitted late. With 4 rows of 131,072 counters that is about 1 key in
 * 2,500 with 20,000 distinct keys of a kind on the server, 1 in 100 with
 * 50,000 (docs/scaling.md). The table cannot fill up, whatever addresses
 * an attacker uses. A slice is 6 MiB of counters, taken from memory only
 * where written, and given back (punched out of the memfd) when the
 * supervisor clears it.
 *
 * Concurrent decisions on two workers are made as one process makes them
 * alone, with one difference: two admissions racing for the last place
 * may both be refused (each takes its place, then checks the sum), and a
 * rate cell or max_connections may let one more through per worker
 * racing (check, then update), as one worker's pending upgrades may.
 */
#ifndef MW_SHLIMITS_H
#define MW_SHLIMITS_H

#include <stddef.h>
#include <stdint.h>

#include "iptable.h"
#include "ratelimit.h"

#define MW_SHLIMITS_ROWS 4
#define MW_SHLIMITS_WIDTH 131072 /* counters a row; a power of two */

typedef struct mw_shlimits mw_shlimits_t;

/* mw_shlimits_create maps a new zone for nworkers (1..64) workers on a
 * memfd (close-on-exec, its descriptor in *fd). The handle is the
 * supervisor's: it clears slices, it takes no decision. Returns 0,
 * MW_EINVAL or MW_ENOMEM. */
int mw_shlimits_create(mw_shlimits_t **out, int nworkers, int *fd);

/* mw_shlimits_attach maps the zone on fd as worker (1..N): the handle's
 * changes go to that worker's slice. Returns 0, MW_EINVAL (not a limits
 * zone, or no such worker) or MW_ENOMEM. The fd stays the caller's. */
int mw_shlimits_attach(mw_shlimits_t **out, int fd, int worker);

void mw_shlimits_free(mw_shlimits_t *l);

/* mw_shlimits_clear zeroes worker's slice: the supervisor's, once that
 * worker has exited and before another takes its place. */
void mw_shlimits_clear(mw_shlimits_t *l, int worker);

/* mw_shlimits_set_clients records how many WebSocket clients this worker
 * has open; mw_shlimits_clients is the whole server's. */
void mw_shlimits_set_clients(mw_shlimits_t *l, uint64_t n);
uint64_t mw_shlimits_clients(const mw_shlimits_t *l);

/* mw_shlimits_ip_admit is mw_iptable_admit for the whole server: MW_EBUSY
 * when key has max_open (0: no cap) open on all workers, MW_ERATE when
 * the server-wide rate cell refuses, 0 when admitted (key then has one
 * more open, in this worker's slice, until mw_shlimits_ip_release). */
int mw_shlimits_ip_admit(mw_shlimits_t *l, const mw_ipkey_t *key, uint64_t now_us,
                         const mw_rate_t *rate, uint32_t max_open);
void mw_shlimits_ip_release(mw_shlimits_t *l, const mw_ipkey_t *key);
uint32_t mw_shlimits_ip_open(const mw_shlimits_t *l, const mw_ipkey_t *key);

/* mw_shlimits_hash is the key of a user id or a room name (the zone's
 * seed: the same in every worker). */
uint64_t mw_shlimits_hash(const mw_shlimits_t *l, const char *key, size_t len);

/* mw_shlimits_user_claim counts one more connection of that user in this
 * worker's slice and returns how many the whole server has (this one
 * included); mw_shlimits_user_release gives it back. */
uint32_t mw_shlimits_user_claim(mw_shlimits_t *l, uint64_t hash);
void mw_shlimits_user_release(mw_shlimits_t *l, uint64_t hash);

/* mw_shlimits_room_claim and mw_shlimits_room_release do the same for
 * the members of a room (max_connections_per_room), in a sketch of their
 * own. */
uint32_t mw_shlimits_room_claim(mw_shlimits_t *l, uint64_t hash);
void mw_shlimits_room_release(mw_shlimits_t *l, uint64_t hash);

#endif
