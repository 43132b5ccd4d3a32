/*
 * script.h - the Lua side of a worker, as the C core sees it.
 *
 * This header is the whole scripting boundary for the rest of src/: plain C
 * types in, nothing of Lua out (no lua.h here), so conn.c and server.c stay
 * engine-agnostic (Redis's script.h vs script_lua.c split). Every entry
 * into Lua is a protected call with a traceback handler; a Lua error is
 * logged with file:line and never reaches the caller as a crash.
 */
#ifndef MW_SCRIPT_H
#define MW_SCRIPT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../config.h"
#include "../http.h"
#include "../server.h"

typedef struct mw_script mw_script_t;

/* What Lua learns about a client when it connects. Valid during the call. */
typedef struct {
    const char *remote_addr;
    int remote_port;
    const char *path, *query, *subprotocol;
    const mw_header_t *headers;
    int nheaders;
} mw_client_info_t;

/* mw_script_create makes a Lua state whose runtime modules come from luadir.
 * Returns 0 or MW_ENOMEM. */
int mw_script_create(mw_script_t **out, const char *luadir);

/* mw_script_set_limits bounds every later dispatch into Lua (see
 * docs/security.md): the Lua heap to memory_limit bytes (0: unlimited) and
 * one dispatch to timeout_ms (0: no watchdog), by starting the watchdog
 * thread. Call it from the loop thread, once the config is known. Returns
 * 0, or an mw_err from mw_watchdog_start. */
int mw_script_set_limits(mw_script_t *sc, long long memory_limit, int timeout_ms);

/* What /health reports about the Lua state. */
typedef struct {
    size_t memory;              /* bytes the Lua heap holds now */
    size_t memory_limit;        /* lua_memory_limit, 0: unlimited */
    int memory_full;            /* live data over 90% of the limit: messages refused */
    uint64_t memory_limit_hits; /* dispatches that had an allocation refused */
    uint64_t refused_messages;  /* messages answered INTERNAL_ERROR while full */
    uint64_t timeouts;          /* dispatches interrupted by script_timeout */
} mw_script_stats_t;

void mw_script_stats(const mw_script_t *sc, mw_script_stats_t *out);

/* mw_script_load_config runs APP/config.lua (when present) and applies each
 * key to cfg. Returns 0, or MW_ECONFIG with err naming the file and key. */
int mw_script_load_config(mw_script_t *sc, const char *app_dir, mw_config_t *cfg, char *err,
                          size_t errlen);

/* mw_script_init_app loads the app through moonwire.runtime. server may be
 * NULL (moonwire check). mode is "serve" or "check". Returns 0 or
 * MW_ESCRIPT with err starting with file:line. */
int mw_script_init_app(mw_script_t *sc, mw_server_t *server, const char *app_dir,
                       const mw_config_t *cfg, const char *mode, char *err, size_t errlen);

/* mw_script_print_routes writes "type.action" lines. Returns the count or
 * MW_ESCRIPT. */
int mw_script_print_routes(mw_script_t *sc, FILE *out);

/* Lifecycle events. Errors are logged, never returned. */
void mw_script_start(mw_script_t *sc);

/* mw_script_on_connect runs before the 101 goes out (it is queued, not yet
 * written): 0 when the runtime accepted the client, or the HTTP status
 * (401, 403, ...) it refused the upgrade with, its text in msg. A runtime
 * that raised refuses with 500: authentication must never fail open. */
int mw_script_on_connect(mw_script_t *sc, uint64_t id, const mw_client_info_t *info, char *msg,
                         size_t msglen);
void mw_script_on_message(mw_script_t *sc, uint64_t id, int binary, const char *data, size_t len);
void mw_script_on_disconnect(mw_script_t *sc, uint64_t id, unsigned code, const char *reason,
                             size_t len);

/* mw_script_idle runs a bounded incremental garbage-collection step when no
 * event reached Lua since the previous call, so garbage from a burst of
 * connects or messages is collected while the worker is quiet instead of
 * waiting for the next allocation-driven cycle. Called by the server cron. */
void mw_script_idle(mw_script_t *sc);

/* mw_script_reload reloads the app; on failure the old code stays.
 * Returns 0 or MW_ESCRIPT with err (file:line: message). */
int mw_script_reload(mw_script_t *sc, char *err, size_t errlen);

/* mw_script_scaffold writes a new app skeleton into dir (moonwire new).
 * Returns 0 or MW_ESCRIPT with err. */
int mw_script_scaffold(mw_script_t *sc, const char *dir, char *err, size_t errlen);

void mw_script_free(mw_script_t *sc);

#endif
