/*
 * health.h - the /health document: liveness and the counters an operator
 * watches (docs/protocol.md lists every field).
 */
#ifndef MW_HEALTH_H
#define MW_HEALTH_H

#include <stddef.h>
#include <stdint.h>

typedef struct mw_server mw_server_t;

/* mw_health_json formats the /health body into a malloc'd string of *len
 * bytes, or NULL when out of memory. The app adds its own members (app.h's
 * health callback). */
char *mw_health_json(mw_server_t *s, size_t *len);

/* mw_health_total is for the app's health callback: with workers = N it
 * sets *v to the whole server's value of the metric sample series (as
 * /metrics names it, "moonwire_lua_memory_bytes", merged over the
 * workers' snapshots) and returns 0; otherwise, and outside the callback,
 * MW_ENOTFOUND, and the app's own numbers are the server's. */
int mw_health_total(mw_server_t *s, const char *series, uint64_t *v);

#endif
