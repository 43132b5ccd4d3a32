/*
 * apikey.h - the server API's key: `Authorization: apikey KEY` checked
 * against the configured api_key (apikey.c says how).
 */
#ifndef MW_APIKEY_H
#define MW_APIKEY_H

#include <stdbool.h>

/* mw_apikey_ok says whether an Authorization header value (NULL when the
 * request had none) carries the configured key: "apikey" (any case), one
 * or more spaces, then exactly the key. An empty or NULL key accepts
 * everything: no key is configured. */
bool mw_apikey_ok(const char *configured, const char *authorization);

#endif
