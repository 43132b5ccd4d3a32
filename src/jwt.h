/*
 * jwt.h - JSON Web Token signatures (RFC 7515 compact JWS, RFC 7518 algorithms).
 *
 * The crypto and format half of JWT verification: base64url, splitting a
 * compact token, checking its signature, and HMAC signing. JSON is not
 * parsed here: the decoded header and payload bytes go back to the caller
 * (the Lua facade lua/moonwire/jwt.lua decodes them with lua-cjson and
 * checks alg and the claims). Every function returns 0 or a negative
 * mw_err code; bad input never aborts.
 *
 * Algorithms: HS256, HS384, HS512 (HMAC), RS256 (RSA PKCS#1 v1.5, keys of
 * at least 2048 bits), ES256 (ECDSA P-256). "none" is never accepted.
 */
#ifndef MW_JWT_H
#define MW_JWT_H

#include <stddef.h>

/* The largest token accepted (and produced), in bytes. A JWT travels in an
 * HTTP header or a query string, where 8 KiB is the usual ceiling; the
 * decoded parts of a token never need more than this many bytes either. */
#define MW_JWT_MAX_TOKEN 8192

typedef enum {
    MW_JWT_HS256,
    MW_JWT_HS384,
    MW_JWT_HS512,
    MW_JWT_RS256,
    MW_JWT_ES256,
} mw_jwt_alg;

typedef enum {
    MW_JWT_KEY_HMAC,
    MW_JWT_KEY_RSA,
    MW_JWT_KEY_EC, /* always P-256 */
} mw_jwt_key_type;

/* A parsed key: an HMAC secret or a public key. Immutable once made, so one
 * key can verify any number of tokens. */
typedef struct mw_jwt_key mw_jwt_key_t;

/* The decoded parts of a token; each points into the caller's buffer. */
typedef struct {
    const unsigned char *header; /* the JOSE header, JSON bytes */
    size_t header_len;
    const unsigned char *payload; /* the claims, JSON bytes */
    size_t payload_len;
} mw_jwt_parts_t;

/* mw_jwt_alg_parse maps a JWS "alg" name (case-sensitive) to an algorithm.
 * Returns the mw_jwt_alg (>= 0) or MW_EALG ("none" and unknown names). */
int mw_jwt_alg_parse(const char *name, size_t len);

/* mw_jwt_alg_name is the JWS name of alg ("HS256"), or NULL if unknown. */
const char *mw_jwt_alg_name(mw_jwt_alg alg);

/* mw_jwt_key_secret makes an HMAC key from secret bytes (copied).
 * Returns 0, MW_EKEY (empty secret) or MW_ENOMEM. */
int mw_jwt_key_secret(mw_jwt_key_t **out, const void *secret, size_t len);

/* mw_jwt_key_pem parses a public key from PEM: "PUBLIC KEY" (SPKI, RSA or
 * EC), "RSA PUBLIC KEY" (PKCS#1) or "CERTIFICATE" (its subject key). Only
 * the first PEM block is read. Returns 0, MW_EKEY (not one of those, or an
 * EC key on another curve than P-256), MW_EWEAKKEY (RSA under 2048 bits)
 * or MW_ENOMEM. */
int mw_jwt_key_pem(mw_jwt_key_t **out, const char *pem, size_t len);

/* mw_jwt_key_free releases a key; NULL is allowed. */
void mw_jwt_key_free(mw_jwt_key_t *key);

mw_jwt_key_type mw_jwt_key_get_type(const mw_jwt_key_t *key);

/* mw_jwt_key_fits is 1 when key may verify alg (HS* with a secret, RS256
 * with RSA, ES256 with EC), else 0. */
int mw_jwt_key_fits(const mw_jwt_key_t *key, mw_jwt_alg alg);

/* mw_jwt_b64url_decode decodes unpadded base64url (RFC 7515 section 2)
 * into out, which must hold (len + 3) / 4 * 3 bytes. Padding, whitespace,
 * "+" and "/" are refused, and so are encodings that are not canonical
 * (unused bits set). Returns 0 with *outlen set, or MW_EMALFORMED. */
int mw_jwt_b64url_decode(const char *in, size_t len, unsigned char *out, size_t *outlen);

/* mw_jwt_b64url_encode encodes len bytes as unpadded base64url into out,
 * which must hold (len * 4 + 2) / 3 + 1 bytes (NUL-terminated). Sets
 * *outlen to the length without the NUL. Returns 0. */
int mw_jwt_b64url_encode(const void *in, size_t len, char *out, size_t *outlen);

/* mw_jwt_decode splits a compact token "header.payload.signature" and
 * decodes its header and payload into buf (buflen >= MW_JWT_MAX_TOKEN is
 * always enough), WITHOUT checking the signature: for reading the header
 * before choosing a key. Returns 0, MW_ETOKENBIG (over MW_JWT_MAX_TOKEN),
 * MW_EMALFORMED (not three non-empty-header-and-payload parts of valid
 * base64url) or MW_EINVAL (buf too small). */
int mw_jwt_decode(const char *token, size_t len, unsigned char *buf, size_t buflen,
                  mw_jwt_parts_t *out);

/* mw_jwt_verify checks the signature of token with key under alg (which
 * the caller chose: never take it from the token's header unchecked) and
 * decodes its header and payload into buf as mw_jwt_decode does. out is
 * set only on success. Returns 0, MW_ETOKENBIG, MW_EMALFORMED, MW_EKEYALG
 * (the key does not fit alg), MW_EBADSIG (wrong signature or signature
 * length), MW_EINVAL or MW_ENOMEM. */
int mw_jwt_verify(const mw_jwt_key_t *key, mw_jwt_alg alg, const char *token, size_t len,
                  unsigned char *buf, size_t buflen, mw_jwt_parts_t *out);

/* mw_jwt_sign builds the compact token base64url(header).base64url(payload)
 * .base64url(HMAC) into out (NUL-terminated; outsize >= MW_JWT_MAX_TOKEN + 1
 * is always enough). Only HS* algorithms: nobody signs with a public key.
 * Returns 0 with *outlen set, MW_EALG (not HS*), MW_EKEYALG (not an HMAC
 * key), MW_ETOKENBIG (the token would be over MW_JWT_MAX_TOKEN) or
 * MW_EINVAL (out too small). */
int mw_jwt_sign(const mw_jwt_key_t *key, mw_jwt_alg alg, const void *header, size_t header_len,
                const void *payload, size_t payload_len, char *out, size_t outsize, size_t *outlen);

#endif
