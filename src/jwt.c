/*
 * jwt.c - JWS signatures for JWT: base64url, compact-token splitting,
 * signature checks (HS256/384/512, RS256, ES256) and HMAC signing.
 *
 * This unit owns the byte-level half of JWT: it turns a token into its
 * decoded header and payload once the signature over "header.payload"
 * matches. It never parses JSON (lua/moonwire/jwt.lua does, with
 * lua-cjson), never reads the clock, and never picks an algorithm from a
 * token: the caller passes the algorithm it allows, and the key must fit it
 * (an RSA public key is never used as an HMAC secret, the "alg confusion"
 * attack). All crypto and base64 is OpenSSL's; nothing here hand-rolls it.
 * Errors come back as mw_err codes, and OpenSSL's error queue is cleared
 * before returning so no failure leaks into later TLS or handshake code.
 */
#include "jwt.h"
#include "errors.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#define MIN_RSA_BITS 2048
#define ES256_SIG_LEN 64 /* r || s, 32 bytes each (RFC 7518 section 3.4) */

struct mw_jwt_key {
    mw_jwt_key_type type;
    EVP_PKEY *pkey;         /* RSA or EC; NULL for HMAC */
    size_t secret_len;      /* HMAC */
    unsigned char secret[]; /* HMAC secret bytes, wiped on free */
};

static const char *const alg_names[] = {"HS256", "HS384", "HS512", "RS256", "ES256"};
#define ALG_COUNT (sizeof alg_names / sizeof alg_names[0])

/* Algorithm names are matched exactly: RFC 7515 makes "alg" case-sensitive,
 * and anything not listed (notably "none") is refused. */
int mw_jwt_alg_parse(const char *name, size_t len) {
    for (size_t i = 0; i < ALG_COUNT; i++)
        if (strlen(alg_names[i]) == len && memcmp(alg_names[i], name, len) == 0)
            return (int)i;
    return MW_EALG;
}

const char *mw_jwt_alg_name(mw_jwt_alg alg) {
    return (unsigned)alg < ALG_COUNT ? alg_names[alg] : NULL;
}

/* The digest behind each algorithm; RS256 and ES256 both hash with SHA-256. */
static const EVP_MD *alg_md(mw_jwt_alg alg) {
    switch (alg) {
    case MW_JWT_HS384: return EVP_sha384();
    case MW_JWT_HS512: return EVP_sha512();
    default: return EVP_sha256();
    }
}

/* A secret is copied into the key so the caller's buffer (a Lua string) may
 * go away; an empty secret would make every HMAC forgeable. */
int mw_jwt_key_secret(mw_jwt_key_t **out, const void *secret, size_t len) {
    if (len == 0 || len > INT_MAX)
        return MW_EKEY;
    mw_jwt_key_t *key = calloc(1, sizeof *key + len);
    if (!key)
        return MW_ENOMEM;
    key->type = MW_JWT_KEY_HMAC;
    key->secret_len = len;
    memcpy(key->secret, secret, len);
    *out = key;
    return 0;
}

/* pem_pubkey reads the first PEM block and extracts its public key. The
 * label is checked by hand so private keys and other objects are refused
 * rather than silently reduced to their public half. */
static EVP_PKEY *pem_pubkey(const char *pem, size_t len) {
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio)
        return NULL;
    char *name = NULL, *header = NULL;
    unsigned char *data = NULL;
    long dlen = 0;
    EVP_PKEY *pkey = NULL;
    if (PEM_read_bio(bio, &name, &header, &data, &dlen) == 1) {
        const unsigned char *p = data;
        if (strcmp(name, PEM_STRING_PUBLIC) == 0) {
            pkey = d2i_PUBKEY(NULL, &p, dlen);
        } else if (strcmp(name, PEM_STRING_RSA_PUBLIC) == 0) {
            pkey = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, dlen);
        } else if (strcmp(name, PEM_STRING_X509) == 0) {
            X509 *cert = d2i_X509(NULL, &p, dlen);
            if (cert)
                pkey = X509_get_pubkey(cert);
            X509_free(cert);
        }
        if (pkey && p != data + dlen) { /* trailing bytes inside the block */
            EVP_PKEY_free(pkey);
            pkey = NULL;
        }
    }
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
    BIO_free(bio);
    return pkey;
}

/* is_p256 checks an EC key's curve: ES256 is defined on P-256 only, and a
 * key on another curve would verify nothing (or something unexpected). */
static int is_p256(const EVP_PKEY *pkey) {
    char group[64];
    if (EVP_PKEY_get_group_name(pkey, group, sizeof group, NULL) != 1)
        return 0;
    int nid = OBJ_sn2nid(group);
    if (nid == NID_undef)
        nid = EC_curve_nist2nid(group);
    return nid == NID_X9_62_prime256v1;
}

/* Parsing a PEM costs far more than a verification, so it happens once
 * here and the resulting key is reused; the size and curve rules are
 * enforced at load time so a weak key never reaches mw_jwt_verify. */
int mw_jwt_key_pem(mw_jwt_key_t **out, const char *pem, size_t len) {
    if (len == 0 || len > INT_MAX)
        return MW_EKEY;
    EVP_PKEY *pkey = pem_pubkey(pem, len);
    int rc = 0;
    mw_jwt_key_type type = MW_JWT_KEY_RSA;
    if (!pkey)
        rc = MW_EKEY;
    else if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA)
        rc = EVP_PKEY_get_bits(pkey) < MIN_RSA_BITS ? MW_EWEAKKEY : 0;
    else if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC && is_p256(pkey))
        type = MW_JWT_KEY_EC;
    else
        rc = MW_EKEY; /* RSA-PSS, Ed25519, other curves, DSA, ... */
    ERR_clear_error();
    if (rc != 0) {
        EVP_PKEY_free(pkey);
        return rc;
    }
    mw_jwt_key_t *key = calloc(1, sizeof *key);
    if (!key) {
        EVP_PKEY_free(pkey);
        return MW_ENOMEM;
    }
    key->type = type;
    key->pkey = pkey;
    *out = key;
    return 0;
}

/* The secret is wiped so a freed key does not linger in the heap. */
void mw_jwt_key_free(mw_jwt_key_t *key) {
    if (!key)
        return;
    EVP_PKEY_free(key->pkey);
    OPENSSL_cleanse(key->secret, key->secret_len);
    free(key);
}

mw_jwt_key_type mw_jwt_key_get_type(const mw_jwt_key_t *key) {
    return key->type;
}

/* The one place that ties key types to algorithms: the defence against
 * alg confusion, whatever the caller allowed. */
int mw_jwt_key_fits(const mw_jwt_key_t *key, mw_jwt_alg alg) {
    switch (alg) {
    case MW_JWT_HS256:
    case MW_JWT_HS384:
    case MW_JWT_HS512: return key->type == MW_JWT_KEY_HMAC;
    case MW_JWT_RS256: return key->type == MW_JWT_KEY_RSA;
    case MW_JWT_ES256: return key->type == MW_JWT_KEY_EC;
    }
    return 0;
}

/* The 6-bit value of a base64url character, or -1. Checked before OpenSSL
 * sees the text, because EVP's decoder skips whitespace and accepts "+/",
 * and a token must have exactly one spelling. */
static int b64url_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* b64url_check accepts only the canonical unpadded spelling: a length that
 * is not 4k + 1, the 64 characters, and zero bits past the last whole byte
 * (so no two texts decode to the same bytes). */
static int b64url_check(const char *in, size_t len) {
    if (len % 4 == 1)
        return MW_EMALFORMED;
    for (size_t i = 0; i < len; i++)
        if (b64url_value((unsigned char)in[i]) < 0)
            return MW_EMALFORMED;
    if (len % 4 == 2 && (b64url_value((unsigned char)in[len - 1]) & 0x0f))
        return MW_EMALFORMED;
    if (len % 4 == 3 && (b64url_value((unsigned char)in[len - 1]) & 0x03))
        return MW_EMALFORMED;
    return 0;
}

/* base64url differs from base64 in two characters and the padding; so the
 * input is translated in bounded chunks and handed to EVP_DecodeBlock,
 * which needs padded groups of four. */
int mw_jwt_b64url_decode(const char *in, size_t len, unsigned char *out, size_t *outlen) {
    enum { CHUNK = 1024 }; /* a multiple of 4: only the last chunk is padded */
    if (b64url_check(in, len) != 0)
        return MW_EMALFORMED;
    unsigned char chunk[CHUNK];
    size_t o = 0;
    for (size_t i = 0; i < len; i += CHUNK) {
        size_t n = len - i < CHUNK ? len - i : CHUNK;
        for (size_t j = 0; j < n; j++) {
            char c = in[i + j];
            chunk[j] = (unsigned char)(c == '-' ? '+' : c == '_' ? '/' : c);
        }
        size_t pad = (4 - n % 4) % 4;
        for (size_t j = 0; j < pad; j++)
            chunk[n + j] = '=';
        int r = EVP_DecodeBlock(out + o, chunk, (int)(n + pad));
        if (r < 0 || (size_t)r < pad) {
            ERR_clear_error();
            return MW_EMALFORMED;
        }
        o += (size_t)r - pad; /* EVP_DecodeBlock counts the padding's zero bytes */
    }
    *outlen = o;
    return 0;
}

/* Unpadded base64url length of n bytes. */
static size_t b64url_len(size_t n) {
    return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

/* Whole groups of three bytes are encoded straight into out, the tail
 * through a small buffer, so out needs no room for padding. */
int mw_jwt_b64url_encode(const void *in, size_t len, char *out, size_t *outlen) {
    const unsigned char *src = in;
    size_t whole = len / 3 * 3, o = 0;
    for (size_t i = 0; i < whole;) {
        size_t n = whole - i < 3 * 1024 ? whole - i : 3 * 1024;
        o += (size_t)EVP_EncodeBlock((unsigned char *)out + o, src + i, (int)n);
        i += n;
    }
    if (len > whole) {
        unsigned char tail[5];
        EVP_EncodeBlock(tail, src + whole, (int)(len - whole));
        size_t keep = len - whole + 1; /* 1 byte -> 2 chars, 2 bytes -> 3 */
        memcpy(out + o, tail, keep);
        o += keep;
    }
    for (size_t i = 0; i < o; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    out[o] = '\0';
    *outlen = o;
    return 0;
}

/* The three parts of a compact token, by offset. */
typedef struct {
    size_t header_len, payload_off, payload_len, sig_off, sig_len;
} span_t;

/* split finds the two dots. Five-part (JWE) tokens and empty header or
 * payload parts are malformed; an empty signature splits fine, so an
 * unsigned token fails on its algorithm, which is the clearer error. */
static int split(const char *token, size_t len, span_t *sp) {
    if (len > MW_JWT_MAX_TOKEN)
        return MW_ETOKENBIG;
    const char *d1 = memchr(token, '.', len);
    if (!d1)
        return MW_EMALFORMED;
    const char *d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token));
    if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)))
        return MW_EMALFORMED;
    sp->header_len = (size_t)(d1 - token);
    sp->payload_off = sp->header_len + 1;
    sp->payload_len = (size_t)(d2 - d1 - 1);
    sp->sig_off = (size_t)(d2 - token) + 1;
    sp->sig_len = len - sp->sig_off;
    if (sp->header_len == 0 || sp->payload_len == 0)
        return MW_EMALFORMED;
    return 0;
}

/* Bytes EVP_DecodeBlock may write for n base64url characters. */
static size_t decoded_room(size_t n) {
    return (n + 3) / 4 * 3;
}

/* decode_parts decodes header, payload and (if sig) signature into buf, in
 * that order. */
static int decode_parts(const char *token, const span_t *sp, unsigned char *buf, size_t buflen,
                        mw_jwt_parts_t *parts, const unsigned char **sig, size_t *sig_len) {
    size_t need = decoded_room(sp->header_len) + decoded_room(sp->payload_len) +
                  (sig ? decoded_room(sp->sig_len) : 0);
    if (need > buflen)
        return MW_EINVAL;
    size_t hlen, plen, slen = 0;
    if (mw_jwt_b64url_decode(token, sp->header_len, buf, &hlen) != 0)
        return MW_EMALFORMED;
    unsigned char *p = buf + hlen;
    if (mw_jwt_b64url_decode(token + sp->payload_off, sp->payload_len, p, &plen) != 0)
        return MW_EMALFORMED;
    if (sig && mw_jwt_b64url_decode(token + sp->sig_off, sp->sig_len, p + plen, &slen) != 0)
        return MW_EMALFORMED;
    parts->header = buf;
    parts->header_len = hlen;
    parts->payload = p;
    parts->payload_len = plen;
    if (sig) {
        *sig = p + plen;
        *sig_len = slen;
    }
    return 0;
}

int mw_jwt_decode(const char *token, size_t len, unsigned char *buf, size_t buflen,
                  mw_jwt_parts_t *out) {
    span_t sp;
    int rc = split(token, len, &sp);
    if (rc != 0)
        return rc;
    /* The signature is not needed, but a token whose signature is not even
     * base64url is malformed whoever looks at it. */
    if (b64url_check(token + sp.sig_off, sp.sig_len) != 0)
        return MW_EMALFORMED;
    return decode_parts(token, &sp, buf, buflen, out, NULL, NULL);
}

/* HMAC signatures are compared in constant time, so timing does not reveal
 * how many leading bytes of a forged MAC were right. */
static int verify_hmac(const mw_jwt_key_t *key, mw_jwt_alg alg, const char *data, size_t len,
                       const unsigned char *sig, size_t sig_len) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (!HMAC(alg_md(alg), key->secret, (int)key->secret_len, (const unsigned char *)data, len, mac,
              &mac_len))
        return MW_ENOMEM;
    if (sig_len != mac_len || CRYPTO_memcmp(mac, sig, mac_len) != 0)
        return MW_EBADSIG;
    return 0;
}

/* verify_digest runs EVP's verify for RSA (PKCS#1 v1.5 padding, set
 * explicitly rather than trusting the default) and ECDSA (DER signature). */
static int verify_digest(EVP_PKEY *pkey, int rsa, const char *data, size_t len,
                         const unsigned char *sig, size_t sig_len) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return MW_ENOMEM;
    EVP_PKEY_CTX *pctx = NULL;
    int rc = MW_EBADSIG;
    if (EVP_DigestVerifyInit(ctx, &pctx, EVP_sha256(), NULL, pkey) == 1 &&
        (!rsa || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) > 0) &&
        EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)data, len) == 1)
        rc = 0;
    EVP_MD_CTX_free(ctx);
    return rc;
}

/* JWS carries ECDSA signatures as fixed-size r || s (RFC 7518 3.4) while
 * OpenSSL verifies DER, so the pair is re-encoded before verifying. */
static int verify_es256(EVP_PKEY *pkey, const char *data, size_t len, const unsigned char *sig,
                        size_t sig_len) {
    if (sig_len != ES256_SIG_LEN)
        return MW_EBADSIG;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, ES256_SIG_LEN / 2, NULL);
    BIGNUM *s = BN_bin2bn(sig + ES256_SIG_LEN / 2, ES256_SIG_LEN / 2, NULL);
    if (!es || !r || !s || ECDSA_SIG_set0(es, r, s) != 1) {
        ECDSA_SIG_free(es);
        BN_free(r);
        BN_free(s);
        return MW_ENOMEM;
    }
    unsigned char der[80]; /* SEQUENCE of two INTEGERs of at most 33 bytes: 72 */
    int der_len = i2d_ECDSA_SIG(es, NULL);
    int rc = MW_EBADSIG;
    if (der_len > 0 && (size_t)der_len <= sizeof der) {
        unsigned char *p = der;
        i2d_ECDSA_SIG(es, &p);
        rc = verify_digest(pkey, 0, data, len, der, (size_t)der_len);
    }
    ECDSA_SIG_free(es);
    return rc;
}

/* The key must fit alg before anything is decoded, so a token can never
 * steer which kind of check runs; the signing input is the token's own
 * text up to the second dot. */
int mw_jwt_verify(const mw_jwt_key_t *key, mw_jwt_alg alg, const char *token, size_t len,
                  unsigned char *buf, size_t buflen, mw_jwt_parts_t *out) {
    if (!mw_jwt_key_fits(key, alg))
        return MW_EKEYALG;
    span_t sp;
    int rc = split(token, len, &sp);
    if (rc != 0)
        return rc;
    mw_jwt_parts_t parts;
    const unsigned char *sig;
    size_t sig_len;
    rc = decode_parts(token, &sp, buf, buflen, &parts, &sig, &sig_len);
    if (rc != 0)
        return rc;
    size_t signed_len = sp.sig_off - 1;
    switch (key->type) {
    case MW_JWT_KEY_HMAC: rc = verify_hmac(key, alg, token, signed_len, sig, sig_len); break;
    case MW_JWT_KEY_RSA:
        /* A PKCS#1 v1.5 signature is exactly as long as the modulus. */
        rc = sig_len == (size_t)EVP_PKEY_get_size(key->pkey)
                 ? verify_digest(key->pkey, 1, token, signed_len, sig, sig_len)
                 : MW_EBADSIG;
        break;
    case MW_JWT_KEY_EC: rc = verify_es256(key->pkey, token, signed_len, sig, sig_len); break;
    }
    ERR_clear_error();
    if (rc == 0)
        *out = parts;
    return rc;
}

/* Signing is HMAC only: apps and tests issue tokens with a shared secret,
 * and public keys cannot sign. The token is assembled in out, which is
 * also the signing input. */
int mw_jwt_sign(const mw_jwt_key_t *key, mw_jwt_alg alg, const void *header, size_t header_len,
                const void *payload, size_t payload_len, char *out, size_t outsize,
                size_t *outlen) {
    if (alg != MW_JWT_HS256 && alg != MW_JWT_HS384 && alg != MW_JWT_HS512)
        return MW_EALG;
    if (!mw_jwt_key_fits(key, alg))
        return MW_EKEYALG;
    const EVP_MD *md = alg_md(alg);
    size_t mac_size = (size_t)EVP_MD_get_size(md);
    if (header_len > MW_JWT_MAX_TOKEN || payload_len > MW_JWT_MAX_TOKEN)
        return MW_ETOKENBIG;
    size_t total = b64url_len(header_len) + 1 + b64url_len(payload_len) + 1 + b64url_len(mac_size);
    if (total > MW_JWT_MAX_TOKEN)
        return MW_ETOKENBIG;
    if (outsize < total + 1)
        return MW_EINVAL;
    size_t n, o;
    mw_jwt_b64url_encode(header, header_len, out, &n);
    o = n;
    out[o++] = '.';
    mw_jwt_b64url_encode(payload, payload_len, out + o, &n);
    o += n;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (!HMAC(md, key->secret, (int)key->secret_len, (const unsigned char *)out, o, mac,
              &mac_len)) {
        ERR_clear_error();
        return MW_ENOMEM;
    }
    out[o++] = '.';
    mw_jwt_b64url_encode(mac, mac_len, out + o, &n);
    OPENSSL_cleanse(mac, sizeof mac);
    *outlen = o + n;
    return 0;
}
