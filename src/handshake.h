/*
 * handshake.h - the server side of the WebSocket opening handshake
 * (RFC 6455 section 4.2.1), as a pure function of a parsed request.
 *
 * Pure so that every rule can be unit-tested without a socket: conn.c feeds
 * the request in and writes whatever status this decides.
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

#endif
