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
#include <stdlib.h>
#include <strings.h>
#include <string.h>

/* sha256 returns SHA-256, fetched from the provider once: EVP_sha256()
 * makes EVP_Digest fetch it again on every call, which cost as much as the
 * hashing (scripts/callgrind-emit, docs/performance.md). */
static const EVP_MD *sha256(void) {
    static EVP_MD *md;
    if (!md)
        md = EVP_MD_fetch(NULL, "SHA256", NULL);
    return md;
}

static bool digest(const char *text, size_t len, unsigned char out[EVP_MAX_MD_SIZE]) {
    const EVP_MD *md = sha256();
    unsigned int n = 0;
    return md && EVP_Digest(text, len, out, &n, md, NULL) == 1 && n == 32;
}

/* configured_digest: the digest of the configured key, computed again only
 * when the key changes (api_key is live: a reload may change it). Comparing
 * the configured key with its cached copy involves nothing a client sent. */
static bool configured_digest(const char *configured, unsigned char out[EVP_MAX_MD_SIZE]) {
    static char *key;
    static unsigned char cached[EVP_MAX_MD_SIZE];
    if (!key || strcmp(key, configured) != 0) {
        free(key);
        key = NULL;
        if (!digest(configured, strlen(configured), cached))
            return false;
        key = strdup(configured);
        if (!key)
            return false;
    }
    memcpy(out, cached, 32);
    return true;
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
    if (!configured_digest(configured, want) || !digest(given, strlen(given), got))
        return false;
    return CRYPTO_memcmp(want, got, 32) == 0;
}
