/*
 * tls.h - TLS for wss://: a server context (certificate, key, versions) and
 * one session per connection, as a pure codec over OpenSSL; and the same
 * sessions on the client side, for the Lua WebSocket client (wsclient.c).
 *
 * tls.c never sees a socket. conn.c hands it the bytes libuv read, gets the
 * plaintext back through a callback (the same bytes a ws:// connection
 * would have read), hands it the plaintext output queue to encrypt, and
 * writes the records the session queued. Everything above the records —
 * HTTP, the upgrade, WebSocket frames, rooms, Lua — is unchanged.
 */
#ifndef MW_TLS_H
#define MW_TLS_H

#include <stddef.h>

#include "outq.h"

typedef struct mw_tls_ctx mw_tls_ctx_t;
typedef struct mw_tls mw_tls_t;

/* The most plaintext one record carries (RFC 8446 5.1): a buffer of this
 * size receives any record mw_tls_feed decrypts in one piece. */
#define MW_TLS_RECORD_MAX 16384

/* mw_tls_ctx_create loads a server context: the certificate chain in
 * cert_file (PEM, the server's certificate first), the unencrypted private
 * key in key_file (PEM), and the lowest protocol version accepted ("1.2" or
 * "1.3"). Renegotiation is refused and the server's cipher order wins
 * (OpenSSL's default list). Returns 0, MW_ECONFIG with a message in err
 * that starts with the option at fault ("tls_cert: ...", "tls_key: ...",
 * "tls_min_version: ...") and names the file, or MW_ENOMEM. */
int mw_tls_ctx_create(mw_tls_ctx_t **out, const char *cert_file, const char *key_file,
                      const char *min_version, char *err, size_t errlen);

/* mw_tls_ctx_free drops the caller's reference. Sessions created from the
 * context hold their own, so it may be freed (replaced on SIGHUP) while
 * they are still open. NULL is allowed. */
void mw_tls_ctx_free(mw_tls_ctx_t *ctx);

/* mw_tls_create starts a server session on ctx, waiting for a ClientHello.
 * Returns 0 or MW_ENOMEM. */
int mw_tls_create(mw_tls_t **out, mw_tls_ctx_t *ctx);

void mw_tls_free(mw_tls_t *t);

/* mw_tls_client_ctx_create makes a client context: TLS 1.2 at least, and,
 * when verify is set, the server's certificate checked against ca_file
 * (PEM, one or more certificates) or, when ca_file is NULL, the system's
 * trust store. Returns 0, MW_ECONFIG (ca_file cannot be read or holds no
 * certificate; err says which) or MW_ENOMEM. */
int mw_tls_client_ctx_create(mw_tls_ctx_t **out, int verify, const char *ca_file, char *err,
                             size_t errlen);

/* mw_tls_client_create starts a client session on a client ctx for host:
 * the name sent as SNI (not for an IP address) and, when the context
 * verifies, the name (or address) the certificate must carry. The first
 * mw_tls_feed, with no bytes, queues the ClientHello. Returns 0,
 * MW_EINVAL (host too long) or MW_ENOMEM. */
int mw_tls_client_create(mw_tls_t **out, mw_tls_ctx_t *ctx, const char *host);

/* mw_tls_ready is 1 once the handshake has finished (data can flow). */
int mw_tls_ready(const mw_tls_t *t);

/* Called with each piece of plaintext, in order; plain is valid only during
 * the call. Return 0 to go on, non-zero to stop: the rest of the input is
 * then discarded (the connection is closing and no longer reads). */
typedef int (*mw_tls_plain_cb)(void *data, const char *plain, size_t len);

/* mw_tls_feed takes bytes read from the socket: it advances the handshake
 * and decrypts records into buf (buflen bytes; 16 KiB holds any record),
 * calling cb for each piece of plaintext. Partial records are kept by the
 * session until the next feed. Records the session must send (handshake,
 * alerts, session tickets) are appended to mw_tls_output(). Returns 0 (all
 * input used), MW_ECLOSED (the peer sent close_notify) or MW_ETLS (the
 * handshake failed or a record was bad; mw_tls_reason says why, and an
 * alert may be queued: send it, then close the connection). */
int mw_tls_feed(mw_tls_t *t, const char *in, size_t len, char *buf, size_t buflen,
                mw_tls_plain_cb cb, void *data);

/* mw_tls_encrypt moves plaintext from the head of plain into records on
 * mw_tls_output() until that queue holds at least budget bytes or plain is
 * empty, so plain keeps counting what the peer has not been sent yet.
 * Returns 0, MW_ECLOSED (the session cannot carry data: the handshake has
 * not finished, it failed, or close_notify was sent; nothing was taken),
 * MW_ENOMEM or MW_ETLS (OpenSSL refused to encrypt; the session is dead). */
int mw_tls_encrypt(mw_tls_t *t, mw_outq_t *plain, size_t budget);

/* mw_tls_shutdown queues close_notify once, after the handshake completed
 * and if nothing failed; otherwise it does nothing. */
void mw_tls_shutdown(mw_tls_t *t);

/* mw_tls_output is the queue of records to send, in order. The caller
 * writes from it like from any mw_outq_t (peek, then written). */
mw_outq_t *mw_tls_output(mw_tls_t *t);

/* mw_tls_trim gives the output queue's ring back once everything was
 * written, so an idle session holds no output memory. */
void mw_tls_trim(mw_tls_t *t);

/* mw_tls_reason is the OpenSSL reason of the last MW_ETLS ("wrong version
 * number", "unsupported protocol", ...), or "" when there was none. */
const char *mw_tls_reason(const mw_tls_t *t);

#endif
