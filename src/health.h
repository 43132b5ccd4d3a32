/*
 * health.h - the /health document: liveness and the counters an operator
 * watches (docs/protocol.md lists every field).
 */
#ifndef MW_HEALTH_H
#define MW_HEALTH_H

#include <stddef.h>

typedef struct mw_server mw_server_t;

/* mw_health_json formats the /health body into a malloc'd string of *len
 * bytes, or NULL when out of memory. The app adds its own members (app.h's
 * health callback). */
char *mw_health_json(mw_server_t *s, size_t *len);

#endif
