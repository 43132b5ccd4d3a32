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
#include <uv.h>

#include "list.h"
#include "rooms.h"
typedef struct mw_server mw_server_t;

typedef struct mw_buf mw_buf_t;
typedef struct mw_tls_ctx mw_tls_ctx_t;

typedef struct mw_conn mw_conn_t;

/* mw_conn_accept accepts one pending connection from listener (one of
 * the server's). With tls (borrowed: the session takes its own reference)
 * the connection speaks wss://. Returns 0, MW_ENOMEM or MW_EIO. */
int mw_conn_accept(mw_server_t *s, uv_stream_t *listener, mw_tls_ctx_t *tls);

/* mw_conn_adopt serves fd, a connected stream socket (one end of a
 * socketpair), as a new connection: see mw_server_adopt. */
int mw_conn_adopt(mw_server_t *s, int fd, const char *peer_addr, int peer_port);

/* mw_conn_send sends a message on an OPEN connection.
 * Returns 0, MW_ECLOSED, MW_EUTF8 or MW_ENOMEM. */
int mw_conn_send(mw_conn_t *c, int binary, const void *data, size_t len);

/* The most extra header bytes an answer to the app's request may carry. */
#define MW_CONN_HEADERS_MAX 8192

/* mw_conn_respond answers the plain HTTP request the app was handed (its
 * http callback, app.h) with status, extra header lines (each "Name:
 * value\r\n", or NULL), content_type and body (only the head for HEAD,
 * neither type nor body for 204 and 304). The connection then carries the
 * client's next request (keep-alive), or is closed once the answer is sent
 * (the client asked for it, or http_keepalive_timeout is 0). Returns 0,
 * MW_ECLOSED (no request waits for an answer: answered already, gone, not
 * HTTP) or MW_EINVAL (a status outside 200..599, a content type over 100
 * bytes or with CR/LF, headers over MW_CONN_HEADERS_MAX or not well-formed
 * lines, or one of Content-Length, Content-Type, Transfer-Encoding and
 * Connection, which the core writes). */
int mw_conn_respond(mw_conn_t *c, int status, const char *headers, const char *content_type,
                    const void *body, size_t len);

/* mw_conn_request_id is the id of the request the app was handed and has
 * not answered yet (server-unique, never 0), or 0: see
 * mw_server_http_respond, which answers it by this id. */
uint64_t mw_conn_request_id(const mw_conn_t *c);

/* mw_conn_peer writes the peer's address into buf (at least 48 bytes;
 * "unknown" when it cannot be read) and returns its port. */
int mw_conn_peer(const mw_conn_t *c, char *buf, size_t len);

/* mw_conn_close starts the closing handshake (OPEN connections) or drops
 * the connection (any other state). Returns 0, MW_ECLOSED or MW_EINVAL. */
int mw_conn_close(mw_conn_t *c, uint16_t code, const char *reason, size_t len);

/* mw_conn_deliver queues a reference to a pre-framed message (a broadcast).
 * Returns 0 (queued), MW_ECLOSED (not open: skipped), MW_EDUP (event_hash
 * already delivered to this client, which opted in to duplicate
 * suppression) or MW_ESLOW (over max_buffered_bytes: dropped and counted;
 * with slow_consumer_policy "close" the client is also closed with 1013),
 * or MW_ENOMEM. */
int mw_conn_deliver(mw_conn_t *c, mw_buf_t *frame, uint64_t event_hash);

/* mw_conn_is_open is 1 while the connection accepts messages. */
int mw_conn_is_open(const mw_conn_t *c);

uint64_t mw_conn_id(const mw_conn_t *c);

/* mw_conn_rooms is the connection's side of the room index. */
mw_room_client_t *mw_conn_rooms(mw_conn_t *c);

/* mw_conn_join and mw_conn_leave are mw_rooms_join and mw_rooms_leave
 * (rooms.h: same results) for c in the server's rooms; with workers and
 * max_connections_per_room, the room's members are also counted for the
 * whole server (shlimits.h) and a join that would pass the cap on all
 * workers together is MW_EFULL. A connection's rooms are given back when
 * it is freed. */
int mw_conn_join(mw_conn_t *c, const char *name, size_t len, char *moved_from);
int mw_conn_leave(mw_conn_t *c, const char *name, size_t len);

/* mw_conn_set_dedupe opts the client in (1) or out (0) of duplicate
 * suppression. Returns 0. */
int mw_conn_set_dedupe(mw_conn_t *c, int on);

/* mw_conn_stats reports queued output bytes and broadcasts dropped. */
void mw_conn_stats(const mw_conn_t *c, size_t *buffered, uint64_t *dropped);

/* mw_conn_flush writes what is queued; called from the server's flush pass. */
void mw_conn_flush(mw_conn_t *c);

/* mw_conn_tick enforces the connection's deadline at loop time now (ms). */
void mw_conn_tick(mw_conn_t *c, uint64_t now);

/* mw_conn_idle lets a connection that has read nothing for a while drop
 * its parser state (see mw_ws_sleep); called by the server's cron for
 * connections on its awake list. Returns 1 when it freed the state. */
int mw_conn_idle(mw_conn_t *c, uint64_t now);

/* mw_conn_throttle counts one message of the route in slot against max
 * per window_ms for this connection. Returns 0 when allowed, MW_ERATE when
 * over, MW_ECLOSED, MW_EINVAL (slot out of range) or MW_ENOMEM. */
int mw_conn_throttle(mw_conn_t *c, unsigned slot, uint64_t window_ms, uint64_t max);

/* mw_conn_claim_user counts the open connection c as one of user's (len
 * bytes) for max_connections_per_user across workers (shlimits.h), in
 * place of a user it was counted for before, until it closes; *count is
 * how many the user has on the whole server, c included. MW_ENOTFOUND
 * when the server has no shared counts (workers = 1: the app counts its
 * own clients), MW_ECLOSED, MW_ENOMEM. */
int mw_conn_claim_user(mw_conn_t *c, const char *user, size_t len, uint32_t *count);

/* mw_conn_set_expiry closes an open connection with code and reason once
 * ms have passed (authentication timeout, token expiry); ms < 0 cancels.
 * Returns 0, MW_ECLOSED, MW_EINVAL (a code that may not be sent, a reason
 * over 123 bytes) or MW_ENOMEM. */
int mw_conn_set_expiry(mw_conn_t *c, int64_t ms, uint16_t code, const char *reason, size_t len);

/* mw_conn_heartbeat runs the liveness checks of an open connection at loop
 * time now: a protocol ping after ping_interval of silence, a drop when it
 * is not answered within pong_timeout, a close (1000 "inactive") after
 * inactive_time without a message. */
void mw_conn_heartbeat(mw_conn_t *c, uint64_t now);

/* mw_conn_hold stops (on) or resumes (off) reading from the client on
 * the app's behalf, while it has too many of the client's messages
 * waiting to be handled: TCP then pushes back on the client. Reading
 * resumes once neither the app nor the output queue (its high
 * watermark) holds it. */
void mw_conn_hold(mw_conn_t *c, int on);

/* The app's own pointer for the client (NULL until set), for per-client
 * state it keeps only while it needs to (messages waiting their turn). */
void *mw_conn_app_data(const mw_conn_t *c);
void mw_conn_set_app_data(mw_conn_t *c, void *data);

/* mw_conn_upgrade_decided applies the app's late decision on an upgrade
 * whose upgrade callback answered MW_EPENDING: status 0 accepts (the 101
 * goes out, then the open callback), else refuses with that HTTP status
 * and msg, as a refusal in the callback would have. Returns 0, or
 * MW_ECLOSED when the client is gone (or timed out) meanwhile. */
int mw_conn_upgrade_decided(mw_conn_t *c, int status, const char *msg);

/* mw_conn_release ends a closed connection the app's close callback kept
 * (it answered MW_EPENDING): its rooms, its id and its memory go now.
 * Until then it stays in its rooms and every send to it fails. */
void mw_conn_release(mw_conn_t *c);

/* mw_conn_abort closes the TCP connection at once (shutdown timeout). */
void mw_conn_abort(mw_conn_t *c);

/* List links, for the server's passes. */
mw_conn_t *mw_conn_from_link(mw_list_t *link);
mw_conn_t *mw_conn_from_timed(mw_list_t *link);
mw_conn_t *mw_conn_from_flush(mw_list_t *link);
mw_conn_t *mw_conn_from_awake(mw_list_t *link);

#endif
