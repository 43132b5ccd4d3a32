/*
 * script.h - the Lua side of a worker, as the C core sees it.
 *
 * The core never includes this header: it calls the application through
 * the callback table of app.h, which a script implements (mw_script_app);
 * only main.c (which wires the two) and src/lua/ see it. No lua.h here
 * either (Redis's script.h vs script_lua.c split). Every entry
 * into Lua is a protected call with a traceback handler; a Lua error is
 * logged with file:line and never reaches the caller as a crash.
 */
#ifndef MW_SCRIPT_H
#define MW_SCRIPT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../app.h"
#include "../config.h"
#include "../server.h"
#include "../shdict.h"

typedef struct mw_script mw_script_t;
typedef struct mw_lua_core mw_lua_core_t;
struct lua_State;

/* mw_script_create makes a Lua state whose runtime modules come from luadir
 * (the server's own state). Returns 0 or MW_ENOMEM. */
int mw_script_create(mw_script_t **out, const char *luadir);

/* mw_script_attach makes a script over a state it does not own (busted
 * running app specs on the real core, through the moonwire.core module):
 * the functions it calls for each event are the fields upgrade, open,
 * message, capture, message_failed, disconnect and reload of the table at
 * stack index handlers (moonwire.runtime's instance methods, bound; see
 * docs/boundary.md for capture and message_failed), and core is the context
 * of the moonwire.core table that state uses (api.h). No memory cap, no
 * watchdog. Returns 0 or MW_ENOMEM. */
int mw_script_attach(mw_script_t **out, struct lua_State *L, int handlers, mw_lua_core_t *core);

/* mw_script_app is the application callback table (app.h) this script
 * implements, for mw_server_create. Valid as long as the script. */
const mw_app_t *mw_script_app(mw_script_t *sc);

/* mw_script_set_shdicts gives moonwire.shared the dicts made at start-up
 * (borrowed; NULL: none). Set it before the app loads, so code at its top
 * level finds them. */
void mw_script_set_shdicts(mw_script_t *sc, mw_shdicts_t *set);

/* mw_script_set_limits bounds every later dispatch into Lua (see
 * docs/security.md): the Lua heap to memory_limit bytes (0: unlimited) and
 * one dispatch to timeout_ms (0: no watchdog), by starting the watchdog
 * thread. Call it from the loop thread, once the config is known. Returns
 * 0, or an mw_err from mw_watchdog_start. */
int mw_script_set_limits(mw_script_t *sc, long long memory_limit, int timeout_ms);

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

/* mw_script_print_subscribers writes one line per event-bus subscriber
 * (name, selector, priority, file:line). Returns the count or MW_ESCRIPT. */
int mw_script_print_subscribers(mw_script_t *sc, FILE *out);

/* mw_script_start runs the app's on_start (errors are logged). */
void mw_script_start(mw_script_t *sc);

/* mw_script_idle runs a bounded incremental garbage-collection step when no
 * event reached Lua since the previous call, so garbage from a burst of
 * connects or messages is collected while the worker is quiet instead of
 * waiting for the next allocation-driven cycle. Called by the server cron. */
void mw_script_idle(mw_script_t *sc);

/* mw_script_reload reloads the app with cfg (NULL: the configuration it
 * has); on failure the old code stays. Returns 0 or MW_ESCRIPT with err
 * (file:line: message). */
int mw_script_reload(mw_script_t *sc, const mw_config_t *cfg, char *err, size_t errlen);

/* mw_script_scaffold writes a new app skeleton into dir (moonwire new).
 * Returns 0 or MW_ESCRIPT with err. */
int mw_script_scaffold(mw_script_t *sc, const char *dir, char *err, size_t errlen);

/* mw_script_scaffold_subscriber writes dir/subscribers/NAME.lua and its
 * spec (moonwire new subscriber NAME [APP]). Returns 0 or MW_ESCRIPT. */
int mw_script_scaffold_subscriber(mw_script_t *sc, const char *dir, const char *name, char *err,
                                  size_t errlen);

void mw_script_free(mw_script_t *sc);

#endif
