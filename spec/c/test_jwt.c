/*
 * test_jwt.c - JWS signatures and base64url (src/jwt.c).
 *
 * HMAC is checked against the known answer of RFC 7515 appendix A.1. RSA
 * and EC keys are generated here with OpenSSL (nothing private is checked
 * in): tokens are signed with the private half and verified through the
 * PEM of the public half, in every PEM form mw_jwt_key_pem reads. Then
 * every refusal: tampered parts, wrong keys, key/algorithm mismatches
 * (alg confusion), "none", RSA-1024, foreign curves, private keys,
 * malformed and oversize tokens. OpenSSL's error queue must be empty after
 * each call, so no failure leaks into later TLS code.
 */
#include "errors.h"
#include "jwt.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

/* RFC 7515 A.1: the JWK "k" of the HMAC key, base64url-decoded. */
static const unsigned char a1_key[64] = {
    0x03, 0x23, 0x35, 0x4b, 0x2b, 0x0f, 0xa5, 0xbc, 0x83, 0x7e, 0x06, 0x65, 0x77, 0x7b, 0xa6, 0x8f,
    0x5a, 0xb3, 0x28, 0xe6, 0xf0, 0x54, 0xc9, 0x28, 0xa9, 0x0f, 0x84, 0xb2, 0xd2, 0x50, 0x2e, 0xbf,
    0xd3, 0xfb, 0x5a, 0x92, 0xd2, 0x06, 0x47, 0xef, 0x96, 0x8a, 0xb4, 0xc3, 0x77, 0x62, 0x3d, 0x22,
    0x3d, 0x2e, 0x21, 0x72, 0x05, 0x2e, 0x4f, 0x08, 0xc0, 0xcd, 0x9a, 0xf5, 0x67, 0xd0, 0x80, 0xa3};
static const char a1_header[] = "{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}";
static const char a1_payload[] =
    "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}";
static const char a1_token[] = /* header . payload . signature */
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxl"
    "LmNvbS9pc19yb290Ijp0cnVlfQ"
    ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/* Keys made once for the whole run (RSA generation is slow). */
static EVP_PKEY *rsa2048, *rsa2048_other, *rsa1024, *ec256, *ec384;

static unsigned char buf[MW_JWT_MAX_TOKEN];

/* ---- helpers ---------------------------------------------------------- */

/* PEM text of pkey's public half: SPKI, or PKCS#1 "RSA PUBLIC KEY". */
static char *public_pem(EVP_PKEY *pkey, int pkcs1) {
    BIO *bio = BIO_new(BIO_s_mem());
    if (pkcs1) {
        unsigned char *der = NULL;
        int len = i2d_PublicKey(pkey, &der);
        PEM_write_bio(bio, "RSA PUBLIC KEY", "", der, len);
        OPENSSL_free(der);
    } else {
        PEM_write_bio_PUBKEY(bio, pkey);
    }
    char *data;
    long len = BIO_get_mem_data(bio, &data);
    char *pem = malloc((size_t)len + 1);
    memcpy(pem, data, (size_t)len);
    pem[len] = '\0';
    BIO_free(bio);
    return pem;
}

static char *private_pem(EVP_PKEY *pkey) {
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL);
    char *data;
    long len = BIO_get_mem_data(bio, &data);
    char *pem = malloc((size_t)len + 1);
    memcpy(pem, data, (size_t)len);
    pem[len] = '\0';
    BIO_free(bio);
    return pem;
}

/* A self-signed certificate for pkey, as PEM. */
static char *cert_pem(EVP_PKEY *pkey) {
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, pkey);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"moonwire-test", -1,
                               -1, 0);
    X509_set_issuer_name(x, name);
    X509_sign(x, pkey, EVP_sha256());
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, x);
    char *data;
    long len = BIO_get_mem_data(bio, &data);
    char *pem = malloc((size_t)len + 1);
    memcpy(pem, data, (size_t)len);
    pem[len] = '\0';
    BIO_free(bio);
    X509_free(x);
    return pem;
}

static mw_jwt_key_t *load_pem(const char *pem) {
    mw_jwt_key_t *key = NULL;
    int rc = mw_jwt_key_pem(&key, pem, strlen(pem));
    return rc == 0 ? key : NULL;
}

/* base64url(header).base64url(payload) into out; returns its length. */
static size_t signing_input(const char *header, const char *payload, char *out) {
    size_t n, o;
    mw_jwt_b64url_encode(header, strlen(header), out, &n);
    o = n;
    out[o++] = '.';
    mw_jwt_b64url_encode(payload, strlen(payload), out + o, &n);
    return o + n;
}

/* Appends ".base64url(sig)" to the signing input in out. */
static void append_sig(char *out, size_t o, const unsigned char *sig, size_t sig_len) {
    size_t n;
    out[o++] = '.';
    mw_jwt_b64url_encode(sig, sig_len, out + o, &n);
}

/* Signs with OpenSSL and returns the DER (ECDSA) or raw (RSA) signature. */
static size_t openssl_sign(EVP_PKEY *pkey, const char *data, size_t len, unsigned char *sig,
                           size_t cap) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t sig_len = cap;
    if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pkey) != 1 ||
        EVP_DigestSign(ctx, sig, &sig_len, (const unsigned char *)data, len) != 1)
        sig_len = 0;
    EVP_MD_CTX_free(ctx);
    return sig_len;
}

/* An RS256 token for header/payload, signed with pkey, into out. */
static void rs256_token(EVP_PKEY *pkey, const char *header, const char *payload, char *out) {
    size_t o = signing_input(header, payload, out);
    unsigned char sig[1024];
    size_t sig_len = openssl_sign(pkey, out, o, sig, sizeof sig);
    append_sig(out, o, sig, sig_len);
}

/* An ES256 token: OpenSSL's DER signature re-encoded as JWS r || s. When
 * der is set, the DER signature is used as is (which JWS forbids). */
static void es256_token(EVP_PKEY *pkey, const char *header, const char *payload, char *out,
                        int der) {
    size_t o = signing_input(header, payload, out);
    unsigned char sig[128];
    size_t sig_len = openssl_sign(pkey, out, o, sig, sizeof sig);
    if (der) {
        append_sig(out, o, sig, sig_len);
        return;
    }
    const unsigned char *p = sig;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sig_len);
    unsigned char raw[64];
    BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32);
    ECDSA_SIG_free(es);
    append_sig(out, o, raw, sizeof raw);
}

static int verify(const mw_jwt_key_t *key, mw_jwt_alg alg, const char *token) {
    mw_jwt_parts_t parts;
    return mw_jwt_verify(key, alg, token, strlen(token), buf, sizeof buf, &parts);
}

/* Flips one character in the middle of part `which` (0, 1, 2) of token. */
static void tamper(char *token, int which) {
    char *p = token;
    for (int i = 0; i < which; i++)
        p = strchr(p, '.') + 1;
    char *end = strchr(p, '.');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    char *c = p + len / 2;
    *c = *c == 'A' ? 'B' : 'A';
}

/* ---- algorithms and keys ---------------------------------------------- */

static void test_alg_parse(void) {
    CHECK_EQ(mw_jwt_alg_parse("HS256", 5), MW_JWT_HS256);
    CHECK_EQ(mw_jwt_alg_parse("HS384", 5), MW_JWT_HS384);
    CHECK_EQ(mw_jwt_alg_parse("HS512", 5), MW_JWT_HS512);
    CHECK_EQ(mw_jwt_alg_parse("RS256", 5), MW_JWT_RS256);
    CHECK_EQ(mw_jwt_alg_parse("ES256", 5), MW_JWT_ES256);
    CHECK_EQ(mw_jwt_alg_parse("none", 4), MW_EALG);
    CHECK_EQ(mw_jwt_alg_parse("hs256", 5), MW_EALG); /* case-sensitive */
    CHECK_EQ(mw_jwt_alg_parse("HS25", 4), MW_EALG);
    CHECK_EQ(mw_jwt_alg_parse("HS2566", 6), MW_EALG);
    CHECK_EQ(mw_jwt_alg_parse("PS256", 5), MW_EALG);
    CHECK_EQ(mw_jwt_alg_parse("", 0), MW_EALG);
    CHECK_STR(mw_jwt_alg_name(MW_JWT_ES256), "ES256");
    CHECK(mw_jwt_alg_name((mw_jwt_alg)99) == NULL);
}

static void test_key_secret(void) {
    mw_jwt_key_t *key = NULL;
    CHECK_EQ(mw_jwt_key_secret(&key, "", 0), MW_EKEY);
    REQUIRE(mw_jwt_key_secret(&key, "k", 1) == 0);
    CHECK_EQ(mw_jwt_key_get_type(key), MW_JWT_KEY_HMAC);
    CHECK(mw_jwt_key_fits(key, MW_JWT_HS256));
    CHECK(mw_jwt_key_fits(key, MW_JWT_HS512));
    CHECK(!mw_jwt_key_fits(key, MW_JWT_RS256));
    CHECK(!mw_jwt_key_fits(key, MW_JWT_ES256));
    mw_jwt_key_free(key);
    mw_jwt_key_free(NULL);
}

static void test_key_pem_forms(void) {
    char *spki = public_pem(rsa2048, 0), *pkcs1 = public_pem(rsa2048, 1);
    char *cert = cert_pem(rsa2048), *ec = public_pem(ec256, 0), *eccert = cert_pem(ec256);
    CHECK(strstr(spki, "-----BEGIN PUBLIC KEY-----") != NULL);
    CHECK(strstr(pkcs1, "-----BEGIN RSA PUBLIC KEY-----") != NULL);
    CHECK(strstr(cert, "-----BEGIN CERTIFICATE-----") != NULL);
    const char *pems[] = {spki, pkcs1, cert, ec, eccert};
    const mw_jwt_key_type types[] = {MW_JWT_KEY_RSA, MW_JWT_KEY_RSA, MW_JWT_KEY_RSA, MW_JWT_KEY_EC,
                                     MW_JWT_KEY_EC};
    for (int i = 0; i < 5; i++) {
        mw_jwt_key_t *key = load_pem(pems[i]);
        CHECK(key != NULL);
        if (key)
            CHECK_EQ(mw_jwt_key_get_type(key), types[i]);
        mw_jwt_key_free(key);
        CHECK_EQ(ERR_peek_error(), 0);
    }
    free(spki);
    free(pkcs1);
    free(cert);
    free(ec);
    free(eccert);
}

static void test_key_refused(void) {
    mw_jwt_key_t *key = NULL;
    char *weak = public_pem(rsa1024, 0), *weak1 = public_pem(rsa1024, 1);
    char *p384 = public_pem(ec384, 0), *priv = private_pem(rsa2048);
    CHECK_EQ(mw_jwt_key_pem(&key, weak, strlen(weak)), MW_EWEAKKEY);
    CHECK_EQ(mw_jwt_key_pem(&key, weak1, strlen(weak1)), MW_EWEAKKEY);
    CHECK_EQ(mw_jwt_key_pem(&key, p384, strlen(p384)), MW_EKEY);
    CHECK_EQ(mw_jwt_key_pem(&key, priv, strlen(priv)), MW_EKEY); /* never a private key */
    CHECK_EQ(mw_jwt_key_pem(&key, "", 0), MW_EKEY);
    const char *junk = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
    CHECK_EQ(mw_jwt_key_pem(&key, junk, strlen(junk)), MW_EKEY);
    const char *text = "not a pem at all";
    CHECK_EQ(mw_jwt_key_pem(&key, text, strlen(text)), MW_EKEY);
    /* A PEM cut short. */
    char *spki = public_pem(rsa2048, 0);
    CHECK_EQ(mw_jwt_key_pem(&key, spki, strlen(spki) / 2), MW_EKEY);
    CHECK(key == NULL);
    CHECK_EQ(ERR_peek_error(), 0);
    free(weak);
    free(weak1);
    free(p384);
    free(priv);
    free(spki);
}

/* ---- base64url --------------------------------------------------------- */

static void test_b64url_round_trip(void) {
    unsigned char in[3000], out[3000 + 3];
    char enc[4100];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (unsigned char)(i * 7 + 3);
    /* Every tail length, and one input long enough for several chunks. */
    size_t lengths[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 63, 64, 65, 767, 768, 769, 3000};
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        size_t n = lengths[i], elen, dlen = 99999;
        mw_jwt_b64url_encode(in, n, enc, &elen);
        CHECK_EQ(elen, (n * 4 + 2) / 3);
        CHECK_EQ(strlen(enc), elen);
        CHECK(strpbrk(enc, "+/=") == NULL);
        CHECK_EQ(mw_jwt_b64url_decode(enc, elen, out, &dlen), 0);
        CHECK_MEM(out, dlen, in, n);
    }
    /* Bytes that use both URL-safe characters: 0xfb 0xff -> "-_8". */
    unsigned char ff[] = {0xfb, 0xff};
    size_t elen;
    mw_jwt_b64url_encode(ff, 2, enc, &elen);
    CHECK_STR(enc, "-_8");
}

static void test_b64url_refused(void) {
    unsigned char out[64];
    size_t n;
    const char *bad[] = {
        "A",     /* a length of 4k + 1 */
        "QQ==",  /* padding */
        "ab+c",  /* base64, not base64url */
        "ab/c",  /* likewise */
        "ab c",  /* whitespace, which EVP's decoder would skip */
        "ab\nc", /* likewise */
        "ab.c",  /* a separator */
        "ab\0c", /* a NUL */
        "QR",    /* unused bits set: not the canonical spelling of "A" */
        "QUJ",   /* likewise for "AB" ("QUI") */
    };
    const size_t lens[] = {1, 4, 4, 4, 4, 4, 4, 4, 2, 3};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ(mw_jwt_b64url_decode(bad[i], lens[i], out, &n), MW_EMALFORMED);
    CHECK_EQ(mw_jwt_b64url_decode("QQ", 2, out, &n), 0);
    CHECK_MEM(out, n, "A", 1);
    CHECK_EQ(mw_jwt_b64url_decode("QUI", 3, out, &n), 0);
    CHECK_MEM(out, n, "AB", 2);
    CHECK_EQ(mw_jwt_b64url_decode("", 0, out, &n), 0);
    CHECK_EQ(n, 0);
}

/* ---- HMAC ---------------------------------------------------------------- */

static void test_hs256_rfc7515_a1(void) {
    mw_jwt_key_t *key;
    REQUIRE(mw_jwt_key_secret(&key, a1_key, sizeof a1_key) == 0);
    mw_jwt_parts_t parts;
    CHECK_EQ(mw_jwt_verify(key, MW_JWT_HS256, a1_token, strlen(a1_token), buf, sizeof buf, &parts),
             0);
    CHECK_MEM(parts.header, parts.header_len, a1_header, strlen(a1_header));
    CHECK_MEM(parts.payload, parts.payload_len, a1_payload, strlen(a1_payload));
    /* Signing the same bytes gives the RFC's token exactly. */
    char out[MW_JWT_MAX_TOKEN + 1];
    size_t len;
    CHECK_EQ(mw_jwt_sign(key, MW_JWT_HS256, a1_header, strlen(a1_header), a1_payload,
                         strlen(a1_payload), out, sizeof out, &len),
             0);
    CHECK_STR(out, a1_token);
    CHECK_EQ(len, strlen(a1_token));
    /* The same token under HS384 or HS512 has the wrong MAC length. */
    CHECK_EQ(verify(key, MW_JWT_HS384, a1_token), MW_EBADSIG);
    CHECK_EQ(verify(key, MW_JWT_HS512, a1_token), MW_EBADSIG);
    mw_jwt_key_free(key);
}

static void test_hs_tampered_and_wrong_key(void) {
    mw_jwt_key_t *key, *other;
    REQUIRE(mw_jwt_key_secret(&key, a1_key, sizeof a1_key) == 0);
    REQUIRE(mw_jwt_key_secret(&other, "another secret", 14) == 0);
    char t[sizeof a1_token];
    for (int part = 0; part < 3; part++) {
        memcpy(t, a1_token, sizeof t);
        tamper(t, part);
        int rc = verify(key, MW_JWT_HS256, t);
        /* A flipped character may break the JSON's base64url, never the check. */
        CHECK(rc == MW_EBADSIG || rc == MW_EMALFORMED);
        CHECK(rc != 0);
    }
    CHECK_EQ(verify(other, MW_JWT_HS256, a1_token), MW_EBADSIG);
    /* A truncated or missing signature. */
    memcpy(t, a1_token, sizeof t);
    t[strlen(t) - 3] = '\0'; /* 40 characters: 30 bytes of MAC */
    CHECK_EQ(verify(key, MW_JWT_HS256, t), MW_EBADSIG);
    memcpy(t, a1_token, sizeof t);
    *(strrchr(t, '.') + 1) = '\0';
    CHECK_EQ(verify(key, MW_JWT_HS256, t), MW_EBADSIG);
    mw_jwt_key_free(key);
    mw_jwt_key_free(other);
}

static void test_hs384_hs512_round_trip(void) {
    mw_jwt_key_t *key;
    REQUIRE(mw_jwt_key_secret(&key, "a long enough shared secret, 48 bytes of it....", 48) == 0);
    const char *h = "{\"alg\":\"HS512\"}", *p = "{\"sub\":\"42\"}";
    mw_jwt_alg algs[] = {MW_JWT_HS256, MW_JWT_HS384, MW_JWT_HS512};
    size_t sig_chars[] = {43, 64, 86}; /* 32, 48, 64 bytes */
    for (int i = 0; i < 3; i++) {
        char out[MW_JWT_MAX_TOKEN + 1];
        size_t len;
        CHECK_EQ(mw_jwt_sign(key, algs[i], h, strlen(h), p, strlen(p), out, sizeof out, &len), 0);
        CHECK_EQ(strlen(strrchr(out, '.') + 1), sig_chars[i]);
        mw_jwt_parts_t parts;
        CHECK_EQ(mw_jwt_verify(key, algs[i], out, len, buf, sizeof buf, &parts), 0);
        CHECK_MEM(parts.payload, parts.payload_len, p, strlen(p));
        for (int j = 0; j < 3; j++)
            if (j != i)
                CHECK_EQ(verify(key, algs[j], out), MW_EBADSIG);
    }
    mw_jwt_key_free(key);
}

/* ---- RS256 and ES256 ------------------------------------------------------ */

static void test_rs256(void) {
    const char *h = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}", *p = "{\"sub\":\"alice\"}";
    char token[MW_JWT_MAX_TOKEN + 1];
    rs256_token(rsa2048, h, p, token);
    char *pems[] = {public_pem(rsa2048, 0), public_pem(rsa2048, 1), cert_pem(rsa2048)};
    for (int i = 0; i < 3; i++) {
        mw_jwt_key_t *key = load_pem(pems[i]);
        REQUIRE(key != NULL);
        mw_jwt_parts_t parts;
        CHECK_EQ(mw_jwt_verify(key, MW_JWT_RS256, token, strlen(token), buf, sizeof buf, &parts),
                 0);
        CHECK_MEM(parts.header, parts.header_len, h, strlen(h));
        CHECK_MEM(parts.payload, parts.payload_len, p, strlen(p));
        for (int part = 0; part < 3; part++) {
            char t[sizeof token];
            memcpy(t, token, sizeof t);
            tamper(t, part);
            int rc = verify(key, MW_JWT_RS256, t);
            CHECK(rc == MW_EBADSIG || rc == MW_EMALFORMED);
        }
        /* The key can only do RS256, whatever the caller asks. */
        CHECK_EQ(verify(key, MW_JWT_ES256, token), MW_EKEYALG);
        CHECK_EQ(verify(key, MW_JWT_HS256, token), MW_EKEYALG);
        CHECK_EQ(ERR_peek_error(), 0);
        mw_jwt_key_free(key);
        free(pems[i]);
    }
    /* Signed by another RSA key. */
    char *other_pem = public_pem(rsa2048_other, 0);
    mw_jwt_key_t *other = load_pem(other_pem);
    REQUIRE(other != NULL);
    CHECK_EQ(verify(other, MW_JWT_RS256, token), MW_EBADSIG);
    /* A signature one byte short of the modulus. */
    char t[sizeof token];
    size_t o = signing_input(h, p, t);
    unsigned char sig[1024];
    size_t sig_len = openssl_sign(rsa2048_other, t, o, sig, sizeof sig);
    append_sig(t, o, sig, sig_len - 1);
    CHECK_EQ(verify(other, MW_JWT_RS256, t), MW_EBADSIG);
    CHECK_EQ(ERR_peek_error(), 0);
    mw_jwt_key_free(other);
    free(other_pem);
}

static void test_es256(void) {
    const char *h = "{\"alg\":\"ES256\"}", *p = "{\"sub\":\"bob\",\"n\":1}";
    char token[MW_JWT_MAX_TOKEN + 1], der[MW_JWT_MAX_TOKEN + 1];
    es256_token(ec256, h, p, token, 0);
    es256_token(ec256, h, p, der, 1);
    char *pems[] = {public_pem(ec256, 0), cert_pem(ec256)};
    for (int i = 0; i < 2; i++) {
        mw_jwt_key_t *key = load_pem(pems[i]);
        REQUIRE(key != NULL);
        mw_jwt_parts_t parts;
        CHECK_EQ(mw_jwt_verify(key, MW_JWT_ES256, token, strlen(token), buf, sizeof buf, &parts),
                 0);
        CHECK_MEM(parts.payload, parts.payload_len, p, strlen(p));
        /* JWS wants r || s, not OpenSSL's DER. */
        CHECK_EQ(verify(key, MW_JWT_ES256, der), MW_EBADSIG);
        for (int part = 0; part < 3; part++) {
            char t[sizeof token];
            memcpy(t, token, sizeof t);
            tamper(t, part);
            int rc = verify(key, MW_JWT_ES256, t);
            CHECK(rc == MW_EBADSIG || rc == MW_EMALFORMED);
        }
        CHECK_EQ(verify(key, MW_JWT_RS256, token), MW_EKEYALG);
        CHECK_EQ(verify(key, MW_JWT_HS256, token), MW_EKEYALG);
        CHECK_EQ(ERR_peek_error(), 0);
        mw_jwt_key_free(key);
        free(pems[i]);
    }
    /* All-zero and all-0xff r || s are refused, not crashes. */
    char t[MW_JWT_MAX_TOKEN + 1];
    unsigned char raw[64];
    char *pem = public_pem(ec256, 0);
    mw_jwt_key_t *key = load_pem(pem);
    REQUIRE(key != NULL);
    for (int fill = 0; fill < 2; fill++) {
        memset(raw, fill ? 0xff : 0, sizeof raw);
        append_sig(t, signing_input(h, p, t), raw, sizeof raw);
        CHECK_EQ(verify(key, MW_JWT_ES256, t), MW_EBADSIG);
    }
    CHECK_EQ(ERR_peek_error(), 0);
    mw_jwt_key_free(key);
    free(pem);
}

/* The alg-confusion attack: an HS256 token whose MAC key is the server's
 * RSA public key PEM. With the PEM loaded as a public key, HS256 is
 * refused; only an app that passed the PEM text as an HMAC secret would
 * accept it, and the Lua facade never does (see spec/unit/jwt_spec.lua). */
static void test_alg_confusion(void) {
    char *pem = public_pem(rsa2048, 0);
    mw_jwt_key_t *as_secret, *as_key = load_pem(pem);
    REQUIRE(as_key != NULL);
    REQUIRE(mw_jwt_key_secret(&as_secret, pem, strlen(pem)) == 0);
    const char *h = "{\"alg\":\"HS256\"}", *p = "{\"admin\":true}";
    char token[MW_JWT_MAX_TOKEN + 1];
    size_t len;
    REQUIRE(mw_jwt_sign(as_secret, MW_JWT_HS256, h, strlen(h), p, strlen(p), token, sizeof token,
                        &len) == 0);
    CHECK_EQ(verify(as_key, MW_JWT_HS256, token), MW_EKEYALG);
    CHECK_EQ(verify(as_key, MW_JWT_RS256, token), MW_EBADSIG);
    /* Nor can a public key sign. */
    CHECK_EQ(
        mw_jwt_sign(as_key, MW_JWT_HS256, h, strlen(h), p, strlen(p), token, sizeof token, &len),
        MW_EKEYALG);
    CHECK_EQ(
        mw_jwt_sign(as_secret, MW_JWT_RS256, h, strlen(h), p, strlen(p), token, sizeof token, &len),
        MW_EALG);
    mw_jwt_key_free(as_key);
    mw_jwt_key_free(as_secret);
    free(pem);
}

/* ---- malformed and oversize tokens ------------------------------------------ */

static void test_alg_none(void) {
    /* {"alg":"none"}.{"sub":"x"}. : no algorithm name maps to "none", and
     * an empty signature never verifies under a real one. */
    const char *none = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.";
    mw_jwt_parts_t parts;
    CHECK_EQ(mw_jwt_decode(none, strlen(none), buf, sizeof buf, &parts), 0);
    CHECK_MEM(parts.header, parts.header_len, "{\"alg\":\"none\"}", 14);
    mw_jwt_key_t *key;
    REQUIRE(mw_jwt_key_secret(&key, "k", 1) == 0);
    CHECK_EQ(verify(key, MW_JWT_HS256, none), MW_EBADSIG);
    mw_jwt_key_free(key);
}

static void test_malformed(void) {
    mw_jwt_key_t *key;
    REQUIRE(mw_jwt_key_secret(&key, a1_key, sizeof a1_key) == 0);
    const char *bad[] = {
        "",
        "abc",
        "eyJhIjoxfQ.eyJhIjoxfQ",        /* two parts */
        "eyJhIjoxfQ.eyJhIjoxfQ.sig.x",  /* four */
        "eyJhIjoxfQ.eyJhIjoxfQ.a.b.c",  /* five (JWE) */
        ".eyJhIjoxfQ.c2ln",             /* empty header */
        "eyJhIjoxfQ..c2ln",             /* empty payload */
        "eyJhIjox fQ.eyJhIjoxfQ.c2ln",  /* a space */
        "eyJhIjoxfQ==.eyJhIjoxfQ.c2ln", /* padding */
        "eyJhIjoxfQ.eyJhIjoxfQ.c2ln+",  /* a base64 signature */
        "eyJhIjoxfQ.eyJhIjoxfQ.c",      /* 4k + 1 characters */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mw_jwt_parts_t parts;
        CHECK_EQ(mw_jwt_decode(bad[i], strlen(bad[i]), buf, sizeof buf, &parts), MW_EMALFORMED);
        CHECK_EQ(verify(key, MW_JWT_HS256, bad[i]), MW_EMALFORMED);
    }
    /* A NUL inside the token is just a bad character. */
    char nul[] = "eyJhIjoxfQ.eyJhIjoxfQ.c2ln";
    nul[3] = '\0';
    mw_jwt_parts_t parts;
    CHECK_EQ(mw_jwt_decode(nul, sizeof nul - 1, buf, sizeof buf, &parts), MW_EMALFORMED);
    /* Too small a buffer is the caller's error, not the token's. */
    CHECK_EQ(mw_jwt_decode(a1_token, strlen(a1_token), buf, 16, &parts), MW_EINVAL);
    mw_jwt_key_free(key);
}

static void test_size_limit(void) {
    mw_jwt_key_t *key;
    REQUIRE(mw_jwt_key_secret(&key, a1_key, sizeof a1_key) == 0);
    const char *h = "{\"alg\":\"HS256\"}";
    static char payload[MW_JWT_MAX_TOKEN], out[MW_JWT_MAX_TOKEN + 1];
    /* Grow the payload until sign refuses: the last size that worked must
     * verify, and be within a few bytes of the limit. */
    size_t n = 6000, best = 0, len = 0;
    for (;; n++) {
        memset(payload, 'x', n);
        payload[0] = '"';
        payload[n - 1] = '"';
        int rc = mw_jwt_sign(key, MW_JWT_HS256, h, strlen(h), payload, n, out, sizeof out, &len);
        if (rc == MW_ETOKENBIG)
            break;
        REQUIRE(rc == 0);
        best = len;
    }
    CHECK(best <= MW_JWT_MAX_TOKEN && best >= MW_JWT_MAX_TOKEN - 3);
    memset(payload, 'x', n - 1);
    payload[0] = '"';
    payload[n - 2] = '"';
    REQUIRE(mw_jwt_sign(key, MW_JWT_HS256, h, strlen(h), payload, n - 1, out, sizeof out, &len) ==
            0);
    CHECK_EQ(verify(key, MW_JWT_HS256, out), 0);
    /* One byte over the limit, and far over: refused before any work. */
    static char big[4 * MW_JWT_MAX_TOKEN];
    memset(big, 'A', sizeof big);
    memcpy(big, a1_token, strlen(a1_token)); /* a valid start, then junk */
    mw_jwt_parts_t parts;
    CHECK_EQ(mw_jwt_decode(big, MW_JWT_MAX_TOKEN + 1, buf, sizeof buf, &parts), MW_ETOKENBIG);
    CHECK_EQ(mw_jwt_verify(key, MW_JWT_HS256, big, sizeof big, buf, sizeof buf, &parts),
             MW_ETOKENBIG);
    /* Too small an output buffer for sign. */
    CHECK_EQ(mw_jwt_sign(key, MW_JWT_HS256, h, strlen(h), "{}", 2, out, 10, &len), MW_EINVAL);
    mw_jwt_key_free(key);
}

int main(void) {
    rsa2048 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    rsa2048_other = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    rsa1024 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    ec256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ec384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    if (!rsa2048 || !rsa2048_other || !rsa1024 || !ec256 || !ec384) {
        fprintf(stderr, "key generation failed\n");
        return 1;
    }
    RUN(test_alg_parse);
    RUN(test_key_secret);
    RUN(test_key_pem_forms);
    RUN(test_key_refused);
    RUN(test_b64url_round_trip);
    RUN(test_b64url_refused);
    RUN(test_hs256_rfc7515_a1);
    RUN(test_hs_tampered_and_wrong_key);
    RUN(test_hs384_hs512_round_trip);
    RUN(test_rs256);
    RUN(test_es256);
    RUN(test_alg_confusion);
    RUN(test_alg_none);
    RUN(test_malformed);
    RUN(test_size_limit);
    EVP_PKEY_free(rsa2048);
    EVP_PKEY_free(rsa2048_other);
    EVP_PKEY_free(rsa1024);
    EVP_PKEY_free(ec256);
    EVP_PKEY_free(ec384);
    return test_summary();
}
