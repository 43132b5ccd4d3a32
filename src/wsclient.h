/*
 * wsclient.h - one outgoing WebSocket connection (ws:// or wss://) on the
 * server's libuv loop: the client side of what conn.c serves.
 *
 * The connection resolves the host (uv_getaddrinfo), connects, runs TLS
 * when the URL is wss:// (tls.c's client sessions), sends the upgrade
 * request and checks the 101 (handshake.c), then speaks frames with wslay
 * in client mode (every frame masked with a key from RAND_bytes; pings are
 * answered by wslay; the close handshake of RFC 6455 section 7). Nothing
 * blocks. The app hears of it through three callbacks with a data pointer;
 * src/lua/wsclient_lua.c is the Lua face.
 */
#ifndef MW_WSCLIENT_H
#define MW_WSCLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "handshake.h"

#define MW_WSCLIENT_TIMEOUT_MS 10000         /* connect + TLS + upgrade */
#define MW_WSCLIENT_CLOSE_TIMEOUT_MS 5000    /* the peer's answer to our close */
#define MW_WSCLIENT_MAX_MESSAGE (1u << 20)   /* a received message, in bytes */
#define MW_WSCLIENT_MAX_BUFFERED (16u << 20) /* unsent output before send refuses */

typedef struct mw_wsclient mw_wsclient_t;

/* A parsed ws:// or wss:// URL. */
typedef struct {
    int tls;               /* wss:// */
    int port;              /* the URL's, or 80 / 443 */
    char host[256];        /* name or address, without IPv6 brackets */
    char host_header[300]; /* Host: the host, and the port unless the scheme's */
    char target[2048];     /* path and query, "/" when the URL has no path */
} mw_wsurl_t;

/* mw_wsclient_parse_url parses url (http-parser's URL parser): the scheme
 * must be ws or wss; no userinfo, no fragment. Returns 0 or MW_EINVAL
 * with err saying why. */
int mw_wsclient_parse_url(const char *url, mw_wsurl_t *out, char *err, size_t errlen);

typedef struct {
    const char *url;
    const char *protocols;                /* comma-separated subprotocols to offer, or NULL */
    const mw_handshake_header_t *headers; /* extra request headers */
    int nheaders;
    uint64_t timeout_ms;       /* 0: MW_WSCLIENT_TIMEOUT_MS */
    uint64_t close_timeout_ms; /* 0: MW_WSCLIENT_CLOSE_TIMEOUT_MS */
    size_t max_message_size;   /* 0: MW_WSCLIENT_MAX_MESSAGE */
    size_t max_buffered;       /* 0: MW_WSCLIENT_MAX_BUFFERED */
    int tls_verify;            /* wss://: check the server's certificate and name */
    const char *ca_file;       /* wss:// with tls_verify: trust these (PEM), not the system's */
} mw_wsclient_opts_t;

typedef struct {
    /* The connect attempt ended: err 0 (open), or MW_ETIMEOUT (why is
     * "timeout"), MW_EIO (resolve, connect or read failed), MW_ETLS,
     * MW_EHTTP (the server refused the upgrade or answered wrongly),
     * MW_ENOMEM; why is a sentence for the app. Called once. */
    void (*on_open)(void *data, int err, const char *why);
    /* A complete message (text already checked to be UTF-8); the bytes are
     * valid during the call only. */
    void (*on_message)(void *data, int binary, const char *msg, size_t len);
    /* After a successful open, once: the connection is gone. code is the
     * code we closed with when we failed it (1002, 1007, 1009), else the
     * peer's close code (1005 when its close frame had none), else 1006
     * (the TCP connection ended, or a close timed out, without one). */
    void (*on_close)(void *data, unsigned code, const char *reason, size_t len);
} mw_wsclient_cbs_t;

/* mw_wsclient_connect checks opts and starts connecting; the outcome
 * comes through cbs->on_open. Returns 0, MW_EINVAL (bad URL, header or
 * option: err says what), MW_ECONFIG (TLS ca_file: err) or MW_ENOMEM. */
int mw_wsclient_connect(mw_wsclient_t **out, uv_loop_t *loop, const mw_wsclient_opts_t *opts,
                        const mw_wsclient_cbs_t *cbs, void *data, char *err, size_t errlen);

/* mw_wsclient_send queues one message. Returns 0, MW_ECLOSED (not open, or
 * closing), MW_ESLOW (more than max_buffered bytes are still unsent) or
 * MW_ENOMEM. */
int mw_wsclient_send(mw_wsclient_t *c, int binary, const char *msg, size_t len);

/* mw_wsclient_close starts the close handshake with code (1000 when 0)
 * and reason (at most 123 bytes); on_close follows when the peer answers
 * or close_timeout_ms passes. Returns 0 or MW_ECLOSED (already closing). */
int mw_wsclient_close(mw_wsclient_t *c, unsigned code, const char *reason, size_t len);

/* mw_wsclient_pause stops (1) or resumes (0) reading from the socket:
 * the app's receive queue is full, TCP pushes back on the server. */
void mw_wsclient_pause(mw_wsclient_t *c, int paused);

/* mw_wsclient_free drops the connection at once (no close handshake) and
 * calls no callback after it returns. Safe from inside a callback: the
 * memory goes when libuv has closed the handles. */
void mw_wsclient_free(mw_wsclient_t *c);

/* The subprotocol the server chose ("" for none) and the bytes queued
 * for the peer and not yet written. */
const char *mw_wsclient_protocol(const mw_wsclient_t *c);
size_t mw_wsclient_buffered(const mw_wsclient_t *c);

#endif
