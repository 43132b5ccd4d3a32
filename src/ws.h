/*
 * ws.h - one WebSocket endpoint (server side), as a pure codec over wslay's
 * event API.
 *
 * ws.c never sees a socket: conn.c pushes received bytes in with
 * mw_ws_feed() and receives complete messages and outgoing bytes through
 * callbacks. All RFC 6455 rules (framing, masking, fragmentation, control
 * frames, UTF-8, close codes, message size) are enforced here or by wslay.
 */
#ifndef MW_WS_H
#define MW_WS_H

#include <stddef.h>
#include <stdint.h>

typedef struct mw_ws mw_ws_t;
typedef struct mw_ws_encoder mw_ws_encoder_t;
typedef struct mw_buf mw_buf_t;

/* An encoder frames server messages with wslay's frame API. One per worker
 * is shared by every endpoint: it frames a broadcast once, and frames direct
 * sends straight into the connection's output queue. */
int mw_ws_encoder_create(mw_ws_encoder_t **out);
void mw_ws_encoder_free(mw_ws_encoder_t *enc);

/* mw_ws_encode_ping frames an empty ping into a new buffer with one
 * reference: the server keeps one and queues it on every connection it
 * pings. Returns 0 or MW_ENOMEM. */
int mw_ws_encode_ping(mw_ws_encoder_t *enc, mw_buf_t **out);

/* mw_ws_encode frames one message into a new buffer with one reference
 * (for sharing across recipients). Text must be valid UTF-8.
 * Returns 0, MW_EUTF8 or MW_ENOMEM. */
int mw_ws_encode(mw_ws_encoder_t *enc, int binary, const uint8_t *msg, size_t len, mw_buf_t **out);

typedef struct {
    /* A complete data message. msg is valid only during the call. */
    void (*on_message)(void *data, int binary, const uint8_t *msg, size_t len);
    /* Bytes to send, in order. Must take all of them; returns 0 or an error. */
    int (*on_write)(void *data, const uint8_t *bytes, size_t len);
} mw_ws_callbacks_t;

/* mw_ws_create makes an endpoint that refuses messages over
 * max_message_size with 1009 and frames its messages with enc (borrowed).
 * Returns 0 or MW_ENOMEM. */
int mw_ws_create(mw_ws_t **out, uint64_t max_message_size, mw_ws_encoder_t *enc,
                 const mw_ws_callbacks_t *cb, void *data);

void mw_ws_free(mw_ws_t *ws);

/* mw_ws_feed parses received bytes, calling on_message for each complete
 * message and on_write for replies (pongs, close frames). Returns 0, or the
 * error that made it fail the connection (MW_EPROTO, MW_EUTF8, MW_ETOOBIG);
 * the matching close frame has then already been written. */
int mw_ws_feed(mw_ws_t *ws, const uint8_t *bytes, size_t len);

/* mw_ws_send frames and writes one message. Text must be valid UTF-8.
 * Returns 0, MW_ECLOSED (a close frame was already sent), MW_EUTF8 or
 * MW_ENOMEM. */
int mw_ws_send(mw_ws_t *ws, int binary, const uint8_t *msg, size_t len);

/* mw_ws_close starts the closing handshake with code and reason (at most
 * MW_WS_CLOSE_REASON_MAX bytes of UTF-8). Returns 0, MW_ECLOSED (already closing) or MW_EINVAL
 * (a code an endpoint may not send, or a bad reason). */
int mw_ws_close(mw_ws_t *ws, uint16_t code, const char *reason, size_t len);

/* mw_ws_sleep frees the wslay context of an idle endpoint (no partial
 * frame or fragmented message received, nothing queued, not closing), so an
 * idle connection keeps no parser buffers; the next mw_ws_feed or mw_ws_close
 * recreates it. Returns 1 if it slept, 0 if the endpoint is not idle. */
int mw_ws_sleep(mw_ws_t *ws);

/* mw_ws_awake is 1 while the endpoint holds a wslay context. */
int mw_ws_awake(const mw_ws_t *ws);

/* mw_ws_done is 1 when no more frames will be read or written: the close
 * handshake is complete, or the connection was failed. conn.c then flushes
 * and closes the TCP connection. */
int mw_ws_done(const mw_ws_t *ws);

/* mw_ws_can_send is 1 while messages may still be sent (no close frame
 * sent or queued, connection not failed). */
int mw_ws_can_send(const mw_ws_t *ws);

/* mw_ws_close_sent is 1 once our close frame was written. */
int mw_ws_close_sent(const mw_ws_t *ws);

/* mw_ws_status returns the close code this connection ended with (the
 * peer's, or the one we failed it with; 1005 when the close carried none,
 * 1006 when there was no close frame) and its reason (valid until free). */
uint16_t mw_ws_status(const mw_ws_t *ws, const char **reason, size_t *reason_len);

/* The longest close reason (RFC 6455 5.5: a control frame's payload is at
 * most 125 bytes, 2 of them the code). */
#define MW_WS_CLOSE_REASON_MAX 123

/* mw_ws_close_valid reports whether a server may close with code and this
 * reason: a sendable code, a reason of valid UTF-8 of at most
 * MW_WS_CLOSE_REASON_MAX bytes. The one place that rule lives. */
int mw_ws_close_valid(unsigned code, const char *reason, size_t len);

/* mw_ws_close_code_sendable reports whether an endpoint may put code in a
 * close frame it sends (RFC 6455 7.4 and the IANA registry): 1000-1003,
 * 1007-1014 and 3000-4999. It is also the rule for a peer's close: a code
 * outside it fails the connection with 1002. One rule both ways, since
 * neither RFC 6455 nor the registry reserves a code for one side. */
int mw_ws_close_code_sendable(unsigned code);

#endif
