/*
 * apikey.c - checking `Authorization: apikey KEY` (Centrifugo's scheme)
 * for what backends and operators reach: /metrics now, the server API
 * (issue 10) later.
 *
 * The comparison must not tell an attacker how much of a guess was right,
 * nor how long the key is: both sides are hashed with SHA-256 (OpenSSL)
 * and the digests compared with CRYPTO_memcmp, in time that depends on
 * neither the key nor the guess.
 */
#include "apikey.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <strings.h>
#include <string.h>

static bool digest(const char *text, size_t len, unsigned char out[EVP_MAX_MD_SIZE]) {
    unsigned int n = 0;
    return EVP_Digest(text, len, out, &n, EVP_sha256(), NULL) == 1 && n == 32;
}

bool mw_apikey_ok(const char *configured, const char *authorization) {
    if (!configured || !*configured)
        return true;
    if (!authorization || strncasecmp(authorization, "apikey ", 7) != 0)
        return false;
    const char *given = authorization + 7;
    while (*given == ' ')
        given++;
    unsigned char want[EVP_MAX_MD_SIZE], got[EVP_MAX_MD_SIZE];
    if (!digest(configured, strlen(configured), want) || !digest(given, strlen(given), got))
        return false;
    return CRYPTO_memcmp(want, got, 32) == 0;
}
