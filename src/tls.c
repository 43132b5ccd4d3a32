/*
 * tls.c - TLS server context and sessions on OpenSSL, with no socket.
 *
 * libuv owns the socket; OpenSSL only sees memory. Each session has one
 * small BIO of our own: reading from it returns what mw_tls_feed was given
 * (the loop's read buffer, not a copy), writing to it appends records to the
 * session's output queue, which conn.c writes like any other queue. We do
 * not use OpenSSL's BIO_s_mem pair: its buffers never shrink, so every
 * connection would keep the largest read or write it ever saw (85 KiB after
 * one 64 KiB read), and each byte would be copied once more in each
 * direction. With SSL_MODE_RELEASE_BUFFERS OpenSSL also frees its record
 * buffers whenever they are empty, so an idle session holds only the SSL
 * object and its keys.
 *
 * Policy lives in the context: TLS 1.2 at least (1.3 when configured),
 * OpenSSL's default cipher list with the server's order winning, no
 * renegotiation (it is a classic DoS lever and WebSocket never needs it),
 * no server-side session cache (resumption uses stateless tickets, so
 * memory does not grow with past clients). This file never logs; it
 * returns reasons and conn.c logs them with the peer's address.
 */
#include "tls.h"
#include "errors.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* mw_tls_encrypt gathers small queue entries into records of this size
 * and checks its budget between records. */
#define RECORD_MAX MW_TLS_RECORD_MAX

struct mw_tls_ctx {
    SSL_CTX *ssl;
};

struct mw_tls {
    SSL *ssl;
    const char *in; /* what the current mw_tls_feed has not handed over */
    size_t inlen;
    mw_outq_t out;      /* records to send */
    const char *reason; /* why the session failed (static OpenSSL string) */
    uint8_t failed;     /* fatal error: no more reads, writes or close_notify */
    uint8_t shut;       /* close_notify queued */
    uint8_t nomem;      /* the BIO could not queue a record */
};

/* ---- the BIO ------------------------------------------------------------ */

/* The BIO method is created once per process and never changes after;
 * every session's BIO points at it, so it is never freed (like OpenSSL's
 * own method tables). */
static BIO_METHOD *bio_method;
static CRYPTO_ONCE bio_once = CRYPTO_ONCE_STATIC_INIT;

/* bio_write queues a record OpenSSL produced. It never blocks: the output
 * queue grows, and mw_tls_encrypt's budget is what bounds it. */
static int bio_write(BIO *b, const char *data, int len) {
    mw_tls_t *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    if (mw_outq_append(&t->out, data, (size_t)len) != 0) {
        t->nomem = 1;
        return -1;
    }
    return len;
}

/* bio_read hands OpenSSL the bytes of the current feed; when they are used
 * up it says "retry", which surfaces as SSL_ERROR_WANT_READ. */
static int bio_read(BIO *b, char *buf, int len) {
    mw_tls_t *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (t->inlen == 0) {
        BIO_set_retry_read(b);
        return -1;
    }
    size_t n = (size_t)len < t->inlen ? (size_t)len : t->inlen;
    memcpy(buf, t->in, n);
    t->in += n;
    t->inlen -= n;
    return (int)n;
}

/* bio_ctrl answers the few controls libssl sends to a BIO: flush (nothing
 * to do, the queue is written by conn.c) and the close flag. */
static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;
    case BIO_CTRL_GET_CLOSE: return BIO_get_shutdown(b);
    case BIO_CTRL_SET_CLOSE: BIO_set_shutdown(b, (int)num); return 1;
    default: return 0;
    }
}

static int bio_create(BIO *b) {
    BIO_set_init(b, 1);
    return 1;
}

static void bio_method_init(void) {
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "moonwire");
    if (!m)
        return;
    if (!BIO_meth_set_write(m, bio_write) || !BIO_meth_set_read(m, bio_read) ||
        !BIO_meth_set_ctrl(m, bio_ctrl) || !BIO_meth_set_create(m, bio_create)) {
        BIO_meth_free(m);
        return;
    }
    bio_method = m;
}

/* ---- the context -------------------------------------------------------- */

/* no_passphrase refuses encrypted keys instead of letting OpenSSL prompt on
 * the terminal, which would block a server started by a supervisor. */
static int no_passphrase(char *buf, int size, int rwflag, void *u) {
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

/* openssl_reason is the reason of the last queued OpenSSL error (static
 * text), or NULL, and clears the queue so the next call starts clean. */
static const char *openssl_reason(void) {
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return r;
}

/* ctx_fail formats "key: file: what (OpenSSL reason)" and frees ctx. */
static int ctx_fail(SSL_CTX *ctx, char *err, size_t errlen, const char *key, const char *file,
                    const char *what) {
    const char *r = openssl_reason();
    snprintf(err, errlen, "%s: %s: %s%s%s%s", key, file, what, r ? " (" : "", r ? r : "",
             r ? ")" : "");
    SSL_CTX_free(ctx);
    return MW_ECONFIG;
}

/* readable checks a file up front, so "no such file" and "permission
 * denied" read as such rather than as an OpenSSL "system lib" error. */
static int readable(const char *file, const char *key, char *err, size_t errlen) {
    FILE *f = fopen(file, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot read %s: %s", key, file, strerror(errno));
        return 0;
    }
    fclose(f);
    return 1;
}

/* ctx_new makes a context of method with the policy both sides share (at
 * least min_version, options, buffers released when idle, no session
 * cache) and the mw_tls_ctx_t that will hold it. Returns 0 or MW_ENOMEM. */
static int ctx_new(const SSL_METHOD *method, int min_version, uint64_t options, SSL_CTX **ctxp,
                   mw_tls_ctx_t **cp) {
    CRYPTO_THREAD_run_once(&bio_once, bio_method_init);
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(method);
    mw_tls_ctx_t *c = malloc(sizeof *c);
    if (!bio_method || !ctx || !c) {
        SSL_CTX_free(ctx);
        free(c);
        ERR_clear_error();
        return MW_ENOMEM;
    }
    SSL_CTX_set_min_proto_version(ctx, min_version);
    SSL_CTX_set_options(ctx, options);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_AUTO_RETRY);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    *ctxp = ctx;
    *cp = c;
    return 0;
}

/* One context per certificate generation: built at start and again on each
 * SIGHUP, and shared by every session accepted while it is current. All
 * policy is set here so sessions need no per-connection configuration. */
int mw_tls_ctx_create(mw_tls_ctx_t **out, const char *cert_file, const char *key_file,
                      const char *min_version, char *err, size_t errlen) {
    int version;
    if (!strcmp(min_version, "1.2"))
        version = TLS1_2_VERSION;
    else if (!strcmp(min_version, "1.3"))
        version = TLS1_3_VERSION;
    else {
        snprintf(err, errlen, "tls_min_version: must be \"1.2\" or \"1.3\"");
        return MW_ECONFIG;
    }
    if (!readable(cert_file, "tls_cert", err, errlen) ||
        !readable(key_file, "tls_key", err, errlen))
        return MW_ECONFIG;
    SSL_CTX *ctx;
    mw_tls_ctx_t *c;
    int rc =
        ctx_new(TLS_server_method(), version,
                SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION,
                &ctx, &c);
    if (rc != 0)
        return rc;
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        free(c);
        return ctx_fail(ctx, err, errlen, "tls_cert", cert_file, "not a PEM certificate chain");
    }
    BIO *kb = BIO_new_file(key_file, "r");
    EVP_PKEY *key = kb ? PEM_read_bio_PrivateKey(kb, NULL, no_passphrase, NULL) : NULL;
    BIO_free(kb);
    if (!key) {
        free(c);
        return ctx_fail(ctx, err, errlen, "tls_key", key_file,
                        "not an unencrypted PEM private key");
    }
    /* Checked here rather than left to the first handshake, so a key that
     * belongs to another certificate stops the server (or a reload) at
     * once, with both file names. */
    if (X509_check_private_key(SSL_CTX_get0_certificate(ctx), key) != 1) {
        const char *r = openssl_reason();
        snprintf(err, errlen, "tls_key: %s does not match the certificate in %s%s%s%s", key_file,
                 cert_file, r ? " (" : "", r ? r : "", r ? ")" : "");
        EVP_PKEY_free(key);
        SSL_CTX_free(ctx);
        free(c);
        return MW_ECONFIG;
    }
    int ok = SSL_CTX_use_PrivateKey(ctx, key) == 1 && SSL_CTX_check_private_key(ctx) == 1;
    EVP_PKEY_free(key);
    if (!ok) {
        free(c);
        return ctx_fail(ctx, err, errlen, "tls_key", key_file, "cannot be used with tls_cert");
    }
    ERR_clear_error(); /* decoders that were tried and did not match */
    c->ssl = ctx;
    *out = c;
    return 0;
}

/* Dropping the server's reference is all a reload needs: OpenSSL frees the
 * context when the last session started with it is gone. */
void mw_tls_ctx_free(mw_tls_ctx_t *ctx) {
    if (!ctx)
        return;
    SSL_CTX_free(ctx->ssl); /* sessions keep their own reference */
    free(ctx);
}

/* ---- sessions ----------------------------------------------------------- */

/* A session per connection, in server mode from its first byte; its BIO is
 * the only way OpenSSL reaches (the memory of) the connection. */
int mw_tls_create(mw_tls_t **out, mw_tls_ctx_t *ctx) {
    mw_tls_t *t = calloc(1, sizeof *t);
    if (!t)
        return MW_ENOMEM;
    mw_outq_init(&t->out);
    t->reason = "";
    t->ssl = SSL_new(ctx->ssl);
    BIO *b = t->ssl ? BIO_new(bio_method) : NULL;
    if (!b) {
        SSL_free(t->ssl);
        free(t);
        ERR_clear_error();
        return MW_ENOMEM;
    }
    BIO_set_data(b, t);
    SSL_set_bio(t->ssl, b, b); /* one reference, owned by the SSL */
    SSL_set_accept_state(t->ssl);
    *out = t;
    return 0;
}

/* ---- the client side ------------------------------------------------------ */

/* A client context per connection option set: its policy is what
 * OpenSSL's defaults are for a client, plus a minimum of TLS 1.2 and no
 * renegotiation. Verification is on unless the app turned it off. */
int mw_tls_client_ctx_create(mw_tls_ctx_t **out, int verify, const char *ca_file, char *err,
                             size_t errlen) {
    if (ca_file && !readable(ca_file, "ca_file", err, errlen))
        return MW_ECONFIG;
    SSL_CTX *ctx;
    mw_tls_ctx_t *c;
    int rc = ctx_new(TLS_client_method(), TLS1_2_VERSION,
                     SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION, &ctx, &c);
    if (rc != 0)
        return rc;
    if (verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        int ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                         : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
            free(c);
            return ctx_fail(ctx, err, errlen, "ca_file", ca_file ? ca_file : "(system store)",
                            "no PEM certificate could be loaded");
        }
    }
    ERR_clear_error();
    c->ssl = ctx;
    *out = c;
    return 0;
}

int mw_tls_client_create(mw_tls_t **out, mw_tls_ctx_t *ctx, const char *host) {
    if (strlen(host) > 253)
        return MW_EINVAL;
    int rc = mw_tls_create(out, ctx);
    if (rc != 0)
        return rc;
    SSL *ssl = (*out)->ssl;
    SSL_set_connect_state(ssl);
    unsigned char addr[16];
    int is_ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
    int ok = 1;
    if (!is_ip)
        ok = SSL_set_tlsext_host_name(ssl, host) == 1 && SSL_set1_host(ssl, host) == 1;
    else
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1;
    if (!ok) {
        mw_tls_free(*out);
        *out = NULL;
        ERR_clear_error();
        return MW_ENOMEM;
    }
    return 0;
}

int mw_tls_ready(const mw_tls_t *t) {
    return !t->failed && SSL_is_init_finished(t->ssl);
}

/* Called from the connection's close callback, never mid-feed. */
void mw_tls_free(mw_tls_t *t) {
    if (!t)
        return;
    SSL_free(t->ssl);
    mw_outq_clear(&t->out);
    free(t);
}

/* fail marks the session dead and keeps the reason for the log line. A
 * client that refused the server's certificate says why (the chain's
 * verdict is more telling than "certificate verify failed"). */
static int fail(mw_tls_t *t) {
    const char *r = openssl_reason();
    long v = SSL_is_server(t->ssl) ? X509_V_OK : SSL_get_verify_result(t->ssl);
    t->failed = 1;
    t->reason = t->nomem         ? "out of memory"
                : v != X509_V_OK ? X509_verify_cert_error_string(v)
                : r              ? r
                                 : "unexpected error";
    return MW_ETLS;
}

/* Reads are driven by what libuv delivered: OpenSSL pulls from t->in until
 * it is used up (WANT_READ), so between feeds nothing waits outside
 * OpenSSL's own partial-record buffer, and the loop's read buffer can be
 * reused for the next connection. */
int mw_tls_feed(mw_tls_t *t, const char *in, size_t len, char *buf, size_t buflen,
                mw_tls_plain_cb cb, void *data) {
    if (t->failed)
        return MW_ETLS;
    int rc = 0;
    int cap = buflen > INT_MAX ? INT_MAX : (int)buflen;
    t->in = in;
    t->inlen = len;
    for (;;) {
        size_t before = t->inlen;
        ERR_clear_error(); /* SSL_get_error reads the queue: start it empty */
        int n = SSL_read(t->ssl, buf, cap);
        if (n > 0) {
            if (cb(data, buf, (size_t)n) != 0)
                break;
            continue;
        }
        int e = SSL_get_error(t->ssl, n);
        if (e == SSL_ERROR_WANT_READ) {
            if (t->inlen > 0 && t->inlen < before)
                continue; /* a non-data record was handled; more input waits */
            break;
        }
        if (e == SSL_ERROR_ZERO_RETURN) {
            rc = MW_ECLOSED;
            break;
        }
        rc = fail(t); /* SSL_ERROR_SSL; SYSCALL only when our BIO failed */
        break;
    }
    t->in = NULL;
    t->inlen = 0;
    return rc;
}

/* write_record encrypts len (at most RECORD_MAX) bytes as one record. */
static int write_record(mw_tls_t *t, const char *p, size_t len) {
    ERR_clear_error();
    int n = SSL_write(t->ssl, p, (int)len);
    if (n == (int)len)
        return 0;
    fail(t);
    return t->nomem ? MW_ENOMEM : MW_ETLS;
}

/* Encryption happens at flush time, not when a message is queued, so a
 * broadcast is still framed once and shared as plaintext, and only what is
 * about to be written is turned into records. */
int mw_tls_encrypt(mw_tls_t *t, mw_outq_t *plain, size_t budget) {
    if (t->failed || t->shut || !SSL_is_init_finished(t->ssl))
        return MW_ECLOSED;
    /* Small queue entries (one frame each, often a shared broadcast) are
     * gathered into whole records: one record per entry would cost a
     * header, a tag and a cipher call each. Large entries are encrypted
     * in place, a record at a time. */
    char stage[RECORD_MAX];
    uv_buf_t iov[MW_OUTQ_MAX_IOV];
    while (plain->bytes > 0 && t->out.bytes < budget) {
        int n = mw_outq_peek(plain, iov, MW_OUTQ_MAX_IOV);
        size_t used = 0, staged = 0;
        int rc = 0;
        for (int i = 0; i < n && rc == 0 && t->out.bytes < budget; i++) {
            const char *p = iov[i].base;
            size_t len = iov[i].len;
            while (len > 0 && rc == 0 && t->out.bytes < budget) {
                size_t k;
                if (staged == 0 && len >= RECORD_MAX) {
                    k = RECORD_MAX;
                    rc = write_record(t, p, k);
                } else {
                    k = len < RECORD_MAX - staged ? len : RECORD_MAX - staged;
                    memcpy(stage + staged, p, k);
                    staged += k;
                    if (staged == RECORD_MAX) {
                        rc = write_record(t, stage, staged);
                        staged = 0;
                    }
                }
                p += k;
                len -= k;
                used += k;
            }
        }
        if (rc == 0 && staged > 0)
            rc = write_record(t, stage, staged);
        mw_outq_written(plain, used);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* close_notify tells the peer the stream ended on purpose, not truncated.
 * It is never sent after a fatal alert (that already ended the session) or
 * before the handshake finished (there is nothing to close yet). */
void mw_tls_shutdown(mw_tls_t *t) {
    if (t->shut || t->failed || !SSL_is_init_finished(t->ssl))
        return;
    t->shut = 1;
    ERR_clear_error();
    SSL_shutdown(t->ssl); /* 0: sent, the peer's is not awaited (we close) */
    ERR_clear_error();
}

/* The record queue is exposed rather than copied out, so conn.c writes it
 * with the same code (and the same uv_write lifetimes) as a plain queue. */
mw_outq_t *mw_tls_output(mw_tls_t *t) {
    return &t->out;
}

/* An idle session should hold no output memory, and a ring of 8 entries
 * is cheap to allocate again for the next flush. */
void mw_tls_trim(mw_tls_t *t) {
    if (t->out.count == 0)
        mw_outq_clear(&t->out);
}

/* Kept as a static OpenSSL string, so logging a failure allocates nothing. */
const char *mw_tls_reason(const mw_tls_t *t) {
    return t->reason;
}
