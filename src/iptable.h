/*
 * iptable.h - per source address accounting: how many connections each
 * address has open, and how fast it opens new ones.
 *
 * Limits per address (max_connections_per_ip, connection_rate_per_ip) are
 * checked before a connection costs anything beyond its socket. Entries
 * live while the address has connections open or its rate cell is not
 * yet back to full, so connect/disconnect storms cannot reset their limit;
 * mw_iptable_sweep forgets the rest.
 */
#ifndef MW_IPTABLE_H
#define MW_IPTABLE_H

#include "ratelimit.h"

#include <stddef.h>
#include <stdint.h>

struct sockaddr;

typedef struct mw_iptable mw_iptable_t;

/* An address as a table key: IPv4 is stored IPv4-mapped (::ffff:a.b.c.d). */
typedef struct {
    uint8_t b[16];
} mw_ipkey_t;

/* mw_ipkey_from_sockaddr fills key from an AF_INET or AF_INET6 address.
 * Returns 0 or MW_EINVAL for another family. */
int mw_ipkey_from_sockaddr(const struct sockaddr *sa, mw_ipkey_t *key);

int mw_iptable_create(mw_iptable_t **out);
void mw_iptable_free(mw_iptable_t *t);

/* mw_iptable_admit counts a new connection from key at now_us: MW_ERATE
 * when the address opens connections faster than rate allows, MW_EBUSY
 * when it already has max_open (0: no cap) open, MW_ENOMEM; 0 when
 * admitted (the address then has one more open connection). */
int mw_iptable_admit(mw_iptable_t *t, const mw_ipkey_t *key, uint64_t now_us, const mw_rate_t *rate,
                     uint32_t max_open);

/* mw_iptable_release records that an admitted connection from key closed. */
void mw_iptable_release(mw_iptable_t *t, const mw_ipkey_t *key);

/* mw_iptable_open returns how many connections key has open. */
uint32_t mw_iptable_open(const mw_iptable_t *t, const mw_ipkey_t *key);

/* mw_iptable_sweep forgets addresses with nothing open and a full rate
 * cell. Returns how many entries remain. */
size_t mw_iptable_sweep(mw_iptable_t *t, uint64_t now_us);

#endif
