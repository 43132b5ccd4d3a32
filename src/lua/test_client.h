/*
 * test_client.h - a WebSocket client over one end of a socketpair, for the
 * test driver (test_driver.c): the other end is adopted by a real server.
 *
 * It speaks to the server the way a browser would: a real HTTP upgrade
 * request, the 101 (or a refusal) parsed with http-parser, masked frames
 * written and the server's frames read with wslay's frame API, pings
 * answered, a close frame answered. It never blocks: mw_test_client_pump
 * moves whatever bytes can move now and returns, so the driver can
 * alternate it with turns of the server's loop. Plain C, no Lua.
 */
#ifndef MW_TEST_CLIENT_H
#define MW_TEST_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "../http.h"

typedef struct mw_test_client mw_test_client_t;

typedef enum {
    MW_TC_HANDSHAKE, /* the upgrade request is out, no response yet */
    MW_TC_OPEN,      /* 101 received: frames flow */
    MW_TC_REFUSED,   /* the server answered the upgrade with another status */
    MW_TC_CLOSED     /* the connection is gone (EOF, error or drop) */
} mw_test_client_state;

/* One complete message or control frame from the server. */
typedef struct {
    uint8_t opcode; /* 1 text, 2 binary, 8 close, 9 ping, 10 pong */
    char *payload;  /* for close: the reason; NUL-terminated */
    size_t len;
    uint16_t code; /* close frames: the status code, 1005 when absent */
} mw_test_frame_t;

typedef struct {
    const char *path;  /* "/" when NULL */
    const char *query; /* appended after '?' when not empty */
    const mw_header_t *headers;
    int nheaders;
} mw_test_request_t;

/* mw_test_client_create takes fd (non-blocking, connected) and queues the
 * upgrade request for req (copied). Returns 0, MW_EINVAL (a header with a
 * CR or LF) or MW_ENOMEM; on error fd is left open. */
int mw_test_client_create(mw_test_client_t **out, int fd, const mw_test_request_t *req);

/* mw_test_client_create_raw takes fd like mw_test_client_create and queues
 * len bytes as they are (a plain HTTP request, built by the caller): the
 * client then only reads the answer, MW_TC_REFUSED once it is complete
 * (its status and body as for a refused upgrade, its head lines with
 * mw_test_client_headers). Returns 0 or MW_ENOMEM. */
int mw_test_client_create_raw(mw_test_client_t **out, int fd, const char *bytes, size_t len);

/* mw_test_client_headers is the answer's header lines, "Name:value\n" each
 * as sent (the value's leading spaces dropped by http-parser). */
const char *mw_test_client_headers(const mw_test_client_t *c, size_t *len);

/* mw_test_client_pump writes what is queued and reads what has arrived
 * (unless reading is paused), parsing responses and frames. Returns the
 * number of bytes moved (0: nothing could move now). */
size_t mw_test_client_pump(mw_test_client_t *c);

mw_test_client_state mw_test_client_state_of(const mw_test_client_t *c);

/* mw_test_client_status is the HTTP status of the upgrade response (0
 * before it arrived); mw_test_client_body its body, for a refusal. */
int mw_test_client_status(const mw_test_client_t *c);
const char *mw_test_client_body(const mw_test_client_t *c, size_t *len);

/* mw_test_client_send queues one masked frame (opcode 1 text, 2 binary, 9
 * ping, 10 pong). Returns 0, MW_ECLOSED or MW_ENOMEM. */
int mw_test_client_send(mw_test_client_t *c, uint8_t opcode, const void *data, size_t len);

/* mw_test_client_close queues a close frame (code 0: without a status).
 * Returns 0, MW_ECLOSED or MW_ENOMEM. */
int mw_test_client_close(mw_test_client_t *c, uint16_t code, const char *reason, size_t len);

/* mw_test_client_drop closes the socket without a close frame. */
void mw_test_client_drop(mw_test_client_t *c);

/* Reading paused: the server's writes pile up in the socket buffers. */
void mw_test_client_pause(mw_test_client_t *c, int paused);

/* Whether pings are answered with a pong (the default: a browser does). */
void mw_test_client_auto_pong(mw_test_client_t *c, int on);

/* mw_test_client_sent_close: whether this side sent a close frame before
 * the server's (then the server's close is only the reply). */
int mw_test_client_closed_first(const mw_test_client_t *c);

/* The frames received so far, in order; valid until the next pump. */
const mw_test_frame_t *mw_test_client_frames(const mw_test_client_t *c, size_t *n);

/* mw_test_client_pending is how many bytes wait to be written. */
size_t mw_test_client_pending(const mw_test_client_t *c);

void mw_test_client_free(mw_test_client_t *c);

#endif
