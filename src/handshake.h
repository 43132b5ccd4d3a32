/*
 * handshake.h - the WebSocket opening handshake (RFC 6455 section 4), as
 * pure functions: the server side checks a parsed request (section 4.2.1),
 * the client side (src/wsclient.c) builds a request and checks the
 * server's response (section 4.1).
 *
 * Pure so that every rule can be unit-tested without a socket: conn.c feeds
 * the request in and writes whatever status this decides; wsclient.c
 * writes the request this builds and hands back the response head.
 */
#ifndef MW_HANDSHAKE_H
#define MW_HANDSHAKE_H

#include "http.h"

typedef struct {
    int status;              /* 101 when the upgrade is accepted, else the HTTP error */
    const char *reason;      /* why it was refused (response body), or NULL */
    char accept[32];         /* Sec-WebSocket-Accept, NUL-terminated (101 only) */
    const char *subprotocol; /* the chosen subprotocol (one of the server's), or NULL */
} mw_handshake_t;

/* mw_handshake_check validates req as an upgrade request and picks the first
 * of the server's subprotocols (in the server's order of preference) that
 * the client offered; never one the client did not offer.
 * Fills out and returns its status: 101, or 400 (malformed upgrade), 405
 * (method is not GET), 426 (no Upgrade header, or an unsupported
 * Sec-WebSocket-Version; the response must then carry
 * "Sec-WebSocket-Version: 13"). */
int mw_handshake_check(const mw_request_t *req, char *const *subprotocols, int nsubprotocols,
                       mw_handshake_t *out);

/* mw_handshake_accept computes Sec-WebSocket-Accept for a client key into
 * out (at least 29 bytes). Returns 0 or MW_EINVAL. */
int mw_handshake_accept(const char *key, char *out, size_t outlen);

/* mw_token_list_has reports whether a comma-separated header value contains
 * token, compared case-insensitively with surrounding whitespace ignored. */
int mw_token_list_has(const char *list, const char *token);

/* ---- the client side --------------------------------------------------- */

/* A header an app adds to its upgrade request. */
typedef struct {
    const char *name;
    const char *value;
} mw_handshake_header_t;

/* mw_handshake_client_key fills key (at least 25 bytes) with a fresh
 * Sec-WebSocket-Key: the base64 of 16 random bytes from OpenSSL's
 * RAND_bytes. Returns 0, or MW_EIO when the generator failed. */
int mw_handshake_client_key(char *key, size_t keylen);

/* mw_handshake_client_request builds the upgrade request for target (the
 * path and query, "/" when empty) on host (the Host header, port included
 * when it is not the scheme's), carrying key, offering protocols (a
 * comma-separated list, or NULL) and the app's extra headers. *out is a
 * malloc'd, NUL-terminated string of *outlen bytes (the caller frees it).
 * Returns 0, MW_EINVAL (a header name that is not an HTTP token, a value
 * with a control character such as CR or LF, a header the handshake sets
 * itself; err says which) or MW_ENOMEM. */
int mw_handshake_client_request(const char *host, const char *target, const char *key,
                                const char *protocols, const mw_handshake_header_t *headers,
                                int nheaders, char **out, size_t *outlen, char *err, size_t errlen);

typedef struct {
    int status;        /* the response's status code, 0 when it is not HTTP */
    char protocol[64]; /* the subprotocol the server chose, "" for none */
    char reason[192];  /* why the response was refused */
} mw_handshake_reply_t;

/* mw_handshake_client_check validates the head of the server's response
 * (len bytes up to and including the blank line) to a request that
 * carried key and offered protocols (comma-separated, or NULL): status
 * 101, "Upgrade: websocket", "Connection: Upgrade", the
 * Sec-WebSocket-Accept that key asks for, no extension (none is offered),
 * and a subprotocol only when it is one of those offered.
 * Returns 0, or MW_EHTTP with out->reason saying what was wrong. */
int mw_handshake_client_check(const char *head, size_t len, const char *key, const char *protocols,
                              mw_handshake_reply_t *out);

#endif
