/*
 * test_tls.c - the TLS context and sessions (src/tls.c), with no sockets.
 *
 * A certificate and keys are made in-process and written to a temporary
 * folder. A client is a plain OpenSSL SSL over memory BIOs; the pump moves
 * bytes between it and an mw_tls_t, optionally one byte at a time. Covered:
 * every load error names its key (missing, unreadable, garbage, encrypted
 * key, key of another certificate, bad version), handshakes at 1.2 and 1.3,
 * data both ways with split input, the encryption budget, records before
 * the handshake, close_notify both ways, garbage and plain HTTP instead of
 * a ClientHello, a version below the minimum, refused renegotiation, and a
 * session outliving its context.
 */
#include "errors.h"
#include "outq.h"
#include "test.h"
#include "tls.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/mw-test-tls-XXXXXX";
static char cert_pem[256], key_pem[256], other_key_pem[256], enc_key_pem[256], junk_pem[256];

#define CHECK_PREFIX(s, prefix)                                                                    \
    do {                                                                                           \
        if (strncmp((s), (prefix), strlen(prefix)) != 0) {                                         \
            test_fail_at(__FILE__, __LINE__);                                                      \
            fprintf(stderr, "\"%s\" does not start with \"%s\"\n", (s), (prefix));                 \
        }                                                                                          \
    } while (0)

#define CHECK_CONTAINS(s, part)                                                                    \
    do {                                                                                           \
        if (!strstr((s), (part))) {                                                                \
            test_fail_at(__FILE__, __LINE__);                                                      \
            fprintf(stderr, "\"%s\" does not contain \"%s\"\n", (s), (part));                      \
        }                                                                                          \
    } while (0)

/* ---- fixtures ----------------------------------------------------------- */

static EVP_PKEY *make_key(void) {
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

static void write_key(const char *path, EVP_PKEY *k, const char *pass) {
    FILE *f = fopen(path, "w");
    if (!f)
        abort();
    const EVP_CIPHER *cipher = pass ? EVP_aes_128_cbc() : NULL;
    PEM_write_PrivateKey(f, k, cipher, (unsigned char *)pass, pass ? (int)strlen(pass) : 0, NULL,
                         NULL);
    fclose(f);
}

/* make_fixtures writes a self-signed certificate for 127.0.0.1, its key,
 * an unrelated key, the key encrypted, and a file that is no PEM at all. */
static int make_fixtures(void) {
    if (!mkdtemp(dir))
        return -1;
    snprintf(cert_pem, sizeof cert_pem, "%s/cert.pem", dir);
    snprintf(key_pem, sizeof key_pem, "%s/key.pem", dir);
    snprintf(other_key_pem, sizeof other_key_pem, "%s/other.pem", dir);
    snprintf(enc_key_pem, sizeof enc_key_pem, "%s/encrypted.pem", dir);
    snprintf(junk_pem, sizeof junk_pem, "%s/junk.pem", dir);
    EVP_PKEY *k = make_key(), *other = make_key();
    X509 *x = X509_new();
    if (!k || !other || !x)
        return -1;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, k);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    if (!X509_sign(x, k, EVP_sha256()))
        return -1;
    FILE *f = fopen(cert_pem, "w");
    if (!f)
        return -1;
    PEM_write_X509(f, x);
    fclose(f);
    write_key(key_pem, k, NULL);
    write_key(other_key_pem, other, NULL);
    write_key(enc_key_pem, k, "secret");
    f = fopen(junk_pem, "w");
    if (!f)
        return -1;
    fputs("this is not a certificate\n", f);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(k);
    EVP_PKEY_free(other);
    return 0;
}

static void remove_fixtures(void) {
    const char *files[] = {cert_pem, key_pem, other_key_pem, enc_key_pem, junk_pem};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        unlink(files[i]);
    rmdir(dir);
}

/* ---- a client and the pump ---------------------------------------------- */

typedef struct {
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *in;  /* what the server sent, for the client to read */
    BIO *out; /* what the client wrote, for the server */
} client_t;

static int client_init(client_t *c, int min_version, int max_version) {
    memset(c, 0, sizeof *c);
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (!c->ctx)
        return -1;
    SSL_CTX_set_min_proto_version(c->ctx, min_version);
    SSL_CTX_set_max_proto_version(c->ctx, max_version);
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
    c->ssl = SSL_new(c->ctx);
    c->in = BIO_new(BIO_s_mem());
    c->out = BIO_new(BIO_s_mem());
    SSL_set_bio(c->ssl, c->in, c->out);
    SSL_set_connect_state(c->ssl);
    return 0;
}

static void client_free(client_t *c) {
    SSL_free(c->ssl);
    SSL_CTX_free(c->ctx);
}

/* What the server decrypted, accumulated. */
typedef struct {
    char data[1 << 16];
    size_t len;
    int stop_after; /* cb asks to stop after this many calls (0: never) */
    int calls;
} sink_t;

static int on_plain(void *data, const char *plain, size_t len) {
    sink_t *s = data;
    if (s->len + len <= sizeof s->data) {
        memcpy(s->data + s->len, plain, len);
        s->len += len;
    }
    s->calls++;
    return s->stop_after && s->calls >= s->stop_after;
}

static char plainbuf[MW_TLS_RECORD_MAX];

/* to_client moves the server's queued records into the client's BIO. */
static size_t to_client(mw_tls_t *t, client_t *c) {
    mw_outq_t *q = mw_tls_output(t);
    uv_buf_t iov[MW_OUTQ_MAX_IOV];
    size_t moved = 0;
    while (q->bytes > 0) {
        int n = mw_outq_peek(q, iov, MW_OUTQ_MAX_IOV);
        size_t k = 0;
        for (int i = 0; i < n; i++) {
            BIO_write(c->in, iov[i].base, (int)iov[i].len);
            k += iov[i].len;
        }
        mw_outq_written(q, k);
        moved += k;
    }
    mw_tls_trim(t);
    return moved;
}

/* to_server feeds what the client wrote to the server, in pieces of at
 * most split bytes (0: all at once). Returns the first non-zero result. */
static int to_server(client_t *c, mw_tls_t *t, sink_t *sink, size_t split, size_t *moved) {
    char buf[1 << 16];
    int rc = 0;
    *moved = 0;
    for (;;) {
        int n = BIO_read(c->out, buf, sizeof buf);
        if (n <= 0)
            break;
        *moved += (size_t)n;
        for (size_t off = 0; off < (size_t)n && rc == 0;) {
            size_t k = split && split < (size_t)n - off ? split : (size_t)n - off;
            rc = mw_tls_feed(t, buf + off, k, plainbuf, sizeof plainbuf, on_plain, sink);
            off += k;
        }
        if (rc)
            break;
    }
    return rc;
}

/* pump runs the client's handshake and moves bytes both ways until
 * nothing moves. Returns the first non-zero feed result. */
static int pump(client_t *c, mw_tls_t *t, sink_t *sink, size_t split) {
    for (int round = 0; round < 50; round++) {
        if (!SSL_is_init_finished(c->ssl))
            SSL_do_handshake(c->ssl);
        size_t up = 0;
        int rc = to_server(c, t, sink, split, &up);
        if (rc)
            return rc;
        size_t down = to_client(t, c);
        if (up == 0 && down == 0)
            return 0;
    }
    return 0;
}

static mw_tls_ctx_t *load(const char *min) {
    char err[512] = "";
    mw_tls_ctx_t *ctx = NULL;
    int rc = mw_tls_ctx_create(&ctx, cert_pem, key_pem, min, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "mw_tls_ctx_create: %s\n", err);
    return ctx;
}

/* client_read reads everything the client can decrypt into buf. */
static size_t client_read(client_t *c, char *buf, size_t cap) {
    size_t len = 0;
    for (;;) {
        int n = SSL_read(c->ssl, buf + len, (int)(cap - len));
        if (n <= 0)
            return len;
        len += (size_t)n;
    }
}

/* ---- tests -------------------------------------------------------------- */

static void test_load_errors(void) {
    char err[512];
    mw_tls_ctx_t *ctx = NULL;
    char missing[300];
    snprintf(missing, sizeof missing, "%s/missing.pem", dir);

    CHECK_EQ(mw_tls_ctx_create(&ctx, missing, key_pem, "1.2", err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "tls_cert: cannot read ");
    CHECK_CONTAINS(err, "missing.pem");
    CHECK_CONTAINS(err, "No such file");

    CHECK_EQ(mw_tls_ctx_create(&ctx, cert_pem, missing, "1.2", err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "tls_key: cannot read ");

    CHECK_EQ(mw_tls_ctx_create(&ctx, junk_pem, key_pem, "1.2", err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "tls_cert: ");
    CHECK_CONTAINS(err, "junk.pem");
    CHECK_CONTAINS(err, "not a PEM certificate chain");

    CHECK_EQ(mw_tls_ctx_create(&ctx, cert_pem, junk_pem, "1.2", err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "tls_key: ");
    CHECK_CONTAINS(err, "junk.pem");

    /* An encrypted key is refused (no terminal prompt). */
    CHECK_EQ(mw_tls_ctx_create(&ctx, cert_pem, enc_key_pem, "1.2", err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "tls_key: ");
    CHECK_CONTAINS(err, "unencrypted");

    CHECK_EQ(mw_tls_ctx_create(&ctx, cert_pem, other_key_pem, "1.2", err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "tls_key: ");
    CHECK_CONTAINS(err, "does not match the certificate in");
    CHECK_CONTAINS(err, "cert.pem");

    /* The certificate file given as the key: no key in it. */
    CHECK_EQ(mw_tls_ctx_create(&ctx, cert_pem, cert_pem, "1.2", err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "tls_key: ");

    CHECK_EQ(mw_tls_ctx_create(&ctx, cert_pem, key_pem, "1.1", err, sizeof err), MW_ECONFIG);
    CHECK_PREFIX(err, "tls_min_version: ");

    CHECK(ctx == NULL);
    CHECK_EQ(ERR_peek_error(), 0); /* nothing left in OpenSSL's error queue */

    REQUIRE(mw_tls_ctx_create(&ctx, cert_pem, key_pem, "1.3", err, sizeof err) == 0);
    CHECK_EQ(ERR_peek_error(), 0);
    mw_tls_ctx_free(ctx);
    mw_tls_ctx_free(NULL);
}

/* roundtrip: handshake, a request split as given, and a reply. */
static void roundtrip(int version, size_t split) {
    mw_tls_ctx_t *ctx = load("1.2");
    REQUIRE(ctx);
    mw_tls_t *t;
    REQUIRE(mw_tls_create(&t, ctx) == 0);
    client_t c;
    REQUIRE(client_init(&c, version, version) == 0);
    sink_t *sink = calloc(1, sizeof *sink);
    REQUIRE(sink);

    CHECK_EQ(pump(&c, t, sink, split), 0);
    CHECK(SSL_is_init_finished(c.ssl));
    CHECK_EQ(SSL_version(c.ssl), version);

    const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK_EQ(SSL_write(c.ssl, req, (int)strlen(req)), (int)strlen(req));
    CHECK_EQ(pump(&c, t, sink, split), 0);
    CHECK_MEM(sink->data, sink->len, req, strlen(req));

    /* Three queue entries become records; the client reads them in order. */
    mw_outq_t plain;
    mw_outq_init(&plain);
    const char *parts[] = {"HTTP/1.1 101 ", "Switching ", "Protocols\r\n\r\n"};
    for (int i = 0; i < 3; i++) {
        mw_buf_t *b = mw_buf_new(64);
        REQUIRE(b);
        memcpy(b->data, parts[i], strlen(parts[i]));
        b->len = (uint32_t)strlen(parts[i]);
        mw_outq_push(&plain, b);
        mw_buf_unref(b);
    }
    CHECK_EQ(mw_tls_encrypt(t, &plain, 1 << 16), 0);
    CHECK_EQ(plain.bytes, 0);
    to_client(t, &c);
    char got[256];
    size_t n = client_read(&c, got, sizeof got);
    const char want[] = "HTTP/1.1 101 Switching Protocols\r\n\r\n";
    CHECK_MEM(got, n, want, strlen(want));
    mw_outq_clear(&plain);

    client_free(&c);
    mw_tls_free(t);
    mw_tls_ctx_free(ctx);
    free(sink);
}

static void test_tls13(void) {
    roundtrip(TLS1_3_VERSION, 0);
}
static void test_tls12(void) {
    roundtrip(TLS1_2_VERSION, 0);
}
static void test_tls13_one_byte_reads(void) {
    roundtrip(TLS1_3_VERSION, 1);
}
static void test_tls12_seven_byte_reads(void) {
    roundtrip(TLS1_2_VERSION, 7);
}

/* handshake makes a connected pair; the caller frees both. */
static int handshake(mw_tls_ctx_t *ctx, mw_tls_t **t, client_t *c, sink_t *sink) {
    if (mw_tls_create(t, ctx) != 0 || client_init(c, TLS1_2_VERSION, TLS1_3_VERSION) != 0)
        return -1;
    if (pump(c, *t, sink, 0) != 0 || !SSL_is_init_finished(c->ssl))
        return -1;
    return 0;
}

static void test_budget_and_large_data(void) {
    mw_tls_ctx_t *ctx = load("1.2");
    REQUIRE(ctx);
    mw_tls_t *t;
    client_t c;
    sink_t *sink = calloc(1, sizeof *sink);
    REQUIRE(sink && handshake(ctx, &t, &c, sink) == 0);

    size_t total = 1 << 20;
    char *big = malloc(total), *got = malloc(total);
    REQUIRE(big && got);
    for (size_t i = 0; i < total; i++)
        big[i] = (char)('a' + i % 26);
    mw_outq_t plain;
    mw_outq_init(&plain);
    REQUIRE(mw_outq_append(&plain, big, total) == 0);

    /* Each call stops near the budget: the rest stays plaintext, counted. */
    size_t budget = 64 * 1024, n = 0;
    int calls = 0;
    while (plain.bytes > 0 && calls < 100) {
        CHECK_EQ(mw_tls_encrypt(t, &plain, budget), 0);
        size_t queued = mw_tls_output(t)->bytes;
        CHECK(queued >= budget || plain.bytes == 0);
        CHECK(queued < budget + MW_TLS_RECORD_MAX + 1024);
        to_client(t, &c);
        n += client_read(&c, got + n, total - n);
        calls++;
    }
    CHECK_EQ(plain.bytes, 0);
    CHECK(calls >= 16);
    CHECK_MEM(got, n, big, total);
    CHECK(mw_tls_output(t)->ents == NULL); /* trimmed */

    mw_outq_clear(&plain);
    free(big);
    free(got);
    client_free(&c);
    mw_tls_free(t);
    mw_tls_ctx_free(ctx);
    free(sink);
}

static void test_no_data_before_handshake(void) {
    mw_tls_ctx_t *ctx = load("1.2");
    REQUIRE(ctx);
    mw_tls_t *t;
    REQUIRE(mw_tls_create(&t, ctx) == 0);
    mw_outq_t plain;
    mw_outq_init(&plain);
    REQUIRE(mw_outq_append(&plain, "HTTP/1.1 408 Request Timeout\r\n", 30) == 0);
    CHECK_EQ(mw_tls_encrypt(t, &plain, 1 << 16), MW_ECLOSED);
    CHECK_EQ(plain.bytes, 30); /* nothing taken */
    CHECK_EQ(mw_tls_output(t)->bytes, 0);
    mw_tls_shutdown(t); /* nothing to close yet: no-op */
    CHECK_EQ(mw_tls_output(t)->bytes, 0);
    mw_outq_clear(&plain);
    mw_tls_free(t);
    mw_tls_ctx_free(ctx);
}

static void test_close_notify_both_ways(void) {
    mw_tls_ctx_t *ctx = load("1.2");
    REQUIRE(ctx);
    mw_tls_t *t;
    client_t c;
    sink_t *sink = calloc(1, sizeof *sink);
    REQUIRE(sink && handshake(ctx, &t, &c, sink) == 0);

    /* Server side: close_notify once, then no more data. */
    mw_tls_shutdown(t);
    size_t first = mw_tls_output(t)->bytes;
    CHECK(first > 0);
    mw_tls_shutdown(t);
    CHECK_EQ(mw_tls_output(t)->bytes, first);
    to_client(t, &c);
    char buf[16];
    CHECK(SSL_read(c.ssl, buf, sizeof buf) <= 0);
    CHECK_EQ(SSL_get_error(c.ssl, 0), SSL_ERROR_ZERO_RETURN);
    mw_outq_t plain;
    mw_outq_init(&plain);
    REQUIRE(mw_outq_append(&plain, "late", 4) == 0);
    CHECK_EQ(mw_tls_encrypt(t, &plain, 1 << 16), MW_ECLOSED);
    mw_outq_clear(&plain);

    /* Client side: its close_notify reads as MW_ECLOSED. */
    client_t c2;
    mw_tls_t *t2;
    REQUIRE(handshake(ctx, &t2, &c2, sink) == 0);
    SSL_shutdown(c2.ssl);
    size_t up;
    CHECK_EQ(to_server(&c2, t2, sink, 0, &up), MW_ECLOSED);

    client_free(&c);
    client_free(&c2);
    mw_tls_free(t);
    mw_tls_free(t2);
    mw_tls_ctx_free(ctx);
    free(sink);
}

static void test_garbage_and_plain_http(void) {
    mw_tls_ctx_t *ctx = load("1.2");
    REQUIRE(ctx);
    sink_t *sink = calloc(1, sizeof *sink);
    REQUIRE(sink);

    mw_tls_t *t;
    REQUIRE(mw_tls_create(&t, ctx) == 0);
    const char http[] = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n";
    CHECK_EQ(mw_tls_feed(t, http, strlen(http), plainbuf, sizeof plainbuf, on_plain, sink),
             MW_ETLS);
    CHECK_STR(mw_tls_reason(t), "http request");
    CHECK_EQ(sink->len, 0);
    /* A dead session stays dead and sends nothing more. */
    CHECK_EQ(mw_tls_feed(t, "x", 1, plainbuf, sizeof plainbuf, on_plain, sink), MW_ETLS);
    mw_tls_free(t);

    /* A handshake record header announcing a ClientHello, then junk. */
    REQUIRE(mw_tls_create(&t, ctx) == 0);
    unsigned char junk[64] = {0x16, 0x03, 0x01, 0x00, 0x3b, 0x01, 0x00, 0x00, 0x37, 0x03, 0x03};
    for (size_t i = 11; i < sizeof junk; i++)
        junk[i] = (unsigned char)(i * 37);
    CHECK_EQ(mw_tls_feed(t, (char *)junk, sizeof junk, plainbuf, sizeof plainbuf, on_plain, sink),
             MW_ETLS);
    CHECK(strlen(mw_tls_reason(t)) > 0);
    CHECK(mw_tls_output(t)->bytes > 0); /* the alert */
    mw_tls_free(t);

    /* A truncated ClientHello just waits for more (the deadline is conn.c's). */
    REQUIRE(mw_tls_create(&t, ctx) == 0);
    CHECK_EQ(mw_tls_feed(t, (char *)junk, 9, plainbuf, sizeof plainbuf, on_plain, sink), 0);
    CHECK_EQ(mw_tls_output(t)->bytes, 0);
    mw_tls_free(t);

    CHECK_EQ(ERR_peek_error(), 0);
    mw_tls_ctx_free(ctx);
    free(sink);
}

static void test_min_version(void) {
    mw_tls_ctx_t *ctx = load("1.3");
    REQUIRE(ctx);
    sink_t *sink = calloc(1, sizeof *sink);
    REQUIRE(sink);
    mw_tls_t *t;
    REQUIRE(mw_tls_create(&t, ctx) == 0);
    client_t c;
    REQUIRE(client_init(&c, TLS1_2_VERSION, TLS1_2_VERSION) == 0);
    CHECK_EQ(pump(&c, t, sink, 0), MW_ETLS);
    CHECK_STR(mw_tls_reason(t), "unsupported protocol");
    CHECK(mw_tls_output(t)->bytes > 0); /* a protocol_version alert */
    to_client(t, &c);
    CHECK(SSL_do_handshake(c.ssl) <= 0);
    CHECK(!SSL_is_init_finished(c.ssl));
    ERR_clear_error();
    client_free(&c);
    mw_tls_free(t);
    mw_tls_ctx_free(ctx);
    free(sink);
}

static void test_renegotiation_refused(void) {
    mw_tls_ctx_t *ctx = load("1.2");
    REQUIRE(ctx);
    sink_t *sink = calloc(1, sizeof *sink);
    REQUIRE(sink);
    mw_tls_t *t;
    client_t c;
    REQUIRE(mw_tls_create(&t, ctx) == 0);
    REQUIRE(client_init(&c, TLS1_2_VERSION, TLS1_2_VERSION) == 0);
    REQUIRE(pump(&c, t, sink, 0) == 0 && SSL_is_init_finished(c.ssl));
    CHECK_EQ(SSL_renegotiate(c.ssl), 1);
    SSL_do_handshake(c.ssl);
    pump(&c, t, sink, 0);
    char buf[16];
    SSL_read(c.ssl, buf, sizeof buf);
    CHECK_EQ(SSL_renegotiate_pending(c.ssl), 1); /* never completed */
    ERR_clear_error();
    client_free(&c);
    mw_tls_free(t);
    mw_tls_ctx_free(ctx);
    free(sink);
}

static void test_session_outlives_context(void) {
    mw_tls_ctx_t *ctx = load("1.2");
    REQUIRE(ctx);
    sink_t *sink = calloc(1, sizeof *sink);
    REQUIRE(sink);
    mw_tls_t *t;
    REQUIRE(mw_tls_create(&t, ctx) == 0);
    mw_tls_ctx_free(ctx); /* a SIGHUP replaced it */
    client_t c;
    REQUIRE(client_init(&c, TLS1_2_VERSION, TLS1_3_VERSION) == 0);
    CHECK_EQ(pump(&c, t, sink, 0), 0);
    CHECK(SSL_is_init_finished(c.ssl));
    CHECK_EQ(SSL_write(c.ssl, "ping", 4), 4);
    CHECK_EQ(pump(&c, t, sink, 0), 0);
    CHECK_MEM(sink->data, sink->len, "ping", 4);
    client_free(&c);
    mw_tls_free(t);
    free(sink);
}

static void test_callback_stops(void) {
    mw_tls_ctx_t *ctx = load("1.2");
    REQUIRE(ctx);
    mw_tls_t *t;
    client_t c;
    sink_t *sink = calloc(1, sizeof *sink);
    REQUIRE(sink && handshake(ctx, &t, &c, sink) == 0);
    /* Two records in one read; the callback stops after the first. */
    CHECK_EQ(SSL_write(c.ssl, "first", 5), 5);
    CHECK_EQ(SSL_write(c.ssl, "second", 6), 6);
    sink->stop_after = sink->calls + 1;
    size_t up;
    CHECK_EQ(to_server(&c, t, sink, 0, &up), 0);
    CHECK_MEM(sink->data, sink->len, "first", 5);
    client_free(&c);
    mw_tls_free(t);
    mw_tls_ctx_free(ctx);
    free(sink);
}

int main(void) {
    if (make_fixtures() != 0) {
        fprintf(stderr, "cannot make the certificate fixtures\n");
        return 1;
    }
    RUN(test_load_errors);
    RUN(test_tls13);
    RUN(test_tls12);
    RUN(test_tls13_one_byte_reads);
    RUN(test_tls12_seven_byte_reads);
    RUN(test_budget_and_large_data);
    RUN(test_no_data_before_handshake);
    RUN(test_close_notify_both_ways);
    RUN(test_garbage_and_plain_http);
    RUN(test_min_version);
    RUN(test_renegotiation_refused);
    RUN(test_session_outlives_context);
    RUN(test_callback_stops);
    remove_fixtures();
    return test_summary();
}
