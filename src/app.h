/*
 * app.h - the application, as the core sees it: one table of callbacks.
 *
 * Everything that enters the application goes through this table, in the
 * shape of wslay's wslay_event_callbacks and libuv's callback-plus-data
 * handles: the server holds an mw_app_t and calls app->cb->message(
 * app->data, ...). The core never calls Lua by name; src/lua/ implements
 * the table (mw_script_app) and main.c hands it to the server. So the core
 * runs (and is tested) without Lua, and the Lua side runs on the real core.
 *
 * Every callback may be NULL: the core then behaves as for an app that
 * accepts every client and answers nothing. Callbacks run on the loop
 * thread, one at a time; a callback may call back into the core (send,
 * close, join, broadcast) but a connection passed in is only valid during
 * the call. Errors inside the app are the app's to log: a callback never
 * reports a failure the core would have to act on, except where its return
 * value says so (upgrade, http, reload).
 *
 * Timers and I/O the app waits on (sleep, Redis) are the app's own: the
 * core gives it the loop and the clock (timers.h), not a callback each.
 */
#ifndef MW_APP_H
#define MW_APP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "http.h"

typedef struct mw_conn mw_conn_t;

/* What the app learns about a client at the upgrade. Valid during the call. */
typedef struct {
    const char *remote_addr; /* "unknown" when the peer address cannot be read */
    int remote_port;
    const char *path, *query, *subprotocol; /* subprotocol: NULL when none */
    const mw_header_t *headers;
    int nheaders;
} mw_client_info_t;

typedef struct mw_app_callbacks {
    /* upgrade: a valid upgrade request for client mw_conn_id(c), before the
     * 101 is written. Returns 0 to accept, or the HTTP status (401, 403,
     * 500, ...) to refuse with, its text in msg: the client then never
     * existed (no open, no close). MW_EPENDING: the app decides later with
     * mw_conn_upgrade_decided (the connection is kept, its input held);
     * should it close first, close is called although open never was. */
    int (*upgrade)(void *data, mw_conn_t *c, const mw_client_info_t *info, char *msg,
                   size_t msglen);
    /* open: the client is connected (its upgrade was accepted). */
    void (*open)(void *data, mw_conn_t *c);
    /* message: one complete message from an open client that passed the
     * core's checks (size, UTF-8, rate_limit). A reply goes back with
     * mw_conn_send(c, ...) on the connection in hand. */
    void (*message)(void *data, mw_conn_t *c, int binary, const char *payload, size_t len);
    /* close: the client is gone (code as docs/boundary.md defines it). It is
     * still in its rooms during the call; sends to it fail. Returns 0, or
     * MW_EPENDING while the app still handles the client's messages: the
     * connection then stays (closed, in its rooms) until the app calls
     * mw_conn_release(c). */
    int (*close)(void *data, mw_conn_t *c, unsigned code, const char *reason, size_t len);
    /* http: a plain HTTP request for a path the core does not serve itself
     * (not /health, not the WebSocket endpoint). Returns 0 when it answered
     * with mw_conn_respond, MW_ENOTFOUND for the core's 404, any other
     * error for a 500. */
    int (*http)(void *data, mw_conn_t *c, const mw_request_t *req);
    /* reload: load the app's code again (a file changed, SIGHUP), with cfg
     * the running configuration. Returns 0, or MW_ESCRIPT with err
     * ("file:line: message") when the previous code keeps serving. */
    int (*reload)(void *data, const mw_config_t *cfg, char *err, size_t errlen);
    /* idle: the server's periodic pass (about every 100 ms). */
    void (*idle)(void *data);
    /* health: adds members to the /health JSON object, each written as
     * ,"name":value to out. */
    void (*health)(void *data, FILE *out);
    /* metrics: adds metric families to /metrics, each written whole (HELP,
     * TYPE, samples) with the writers of metrics.h. */
    void (*metrics)(void *data, FILE *out);
    /* stop: the server is going away (shutdown_timeout passed, or an
     * abort): the app gives up whatever still waits and releases every
     * connection it kept. */
    void (*stop)(void *data);
} mw_app_callbacks_t;

typedef struct mw_app {
    const mw_app_callbacks_t *cb; /* never NULL; its members may be */
    void *data;
} mw_app_t;

#endif
