/*
 * conn.h - one client connection, from accept to free.
 *
 * A connection starts in HTTP (reading a request head), becomes OPEN after
 * a successful upgrade, CLOSING when we sent a close frame and wait for the
 * peer's, DRAINING when nothing more will be sent but queued bytes must be
 * flushed and the TCP connection shut down, and is freed from uv_close's
 * callback, never from inside its own callback chain.
 */
#ifndef MW_CONN_H
#define MW_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "list.h"
#include "server.h"

typedef struct mw_conn mw_conn_t;

/* mw_conn_accept accepts one pending connection from the server's
 * listener. Returns 0, MW_ENOMEM or MW_EIO. */
int mw_conn_accept(mw_server_t *s);

/* mw_conn_send sends a message on an OPEN connection.
 * Returns 0, MW_ECLOSED, MW_EUTF8 or MW_ENOMEM. */
int mw_conn_send(mw_conn_t *c, int binary, const void *data, size_t len);

/* mw_conn_close starts the closing handshake (OPEN connections) or drops
 * the connection (any other state). Returns 0, MW_ECLOSED or MW_EINVAL. */
int mw_conn_close(mw_conn_t *c, uint16_t code, const char *reason, size_t len);

/* mw_conn_flush writes what is queued; called from the server's flush pass. */
void mw_conn_flush(mw_conn_t *c);

/* mw_conn_tick enforces the connection's deadline at loop time now (ms). */
void mw_conn_tick(mw_conn_t *c, uint64_t now);

/* mw_conn_abort closes the TCP connection at once (shutdown timeout). */
void mw_conn_abort(mw_conn_t *c);

/* List links, for the server's passes. */
mw_conn_t *mw_conn_from_link(mw_list_t *link);
mw_conn_t *mw_conn_from_timed(mw_list_t *link);
mw_conn_t *mw_conn_from_flush(mw_list_t *link);

#endif
