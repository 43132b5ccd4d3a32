/*
 * state.h - the state of one worker that the parts of the server share:
 * its loop, configuration, application, connections, rooms and counters,
 * with the accessors every part uses (state.c).
 *
 * Data at the bottom, behaviour above it: conn.c, fanout.c and health.c
 * read and update this struct and call nothing in server.c, which owns the
 * struct's lifecycle (listeners, passes, signals, shutdown). So the
 * modules form no circle. Only the server's own files touch the struct's
 * fields (hiredis's async_private.h pattern); everything else, src/lua/
 * included, uses the accessors below and server.h.
 */
#ifndef MW_STATE_H
#define MW_STATE_H

#include "app.h"
#include "config.h"
#include "counters.h"
#include "idmap.h"
#include "iptable.h"
#include "shlimits.h"
#include "list.h"
#include "ratelimit.h"
#include "rooms.h"
#include "timers.h"
#include "tls.h"
#include "ws.h"

#include <uv.h>

typedef struct mw_reload mw_reload_t;
typedef struct mw_aggregate mw_aggregate_t;
typedef struct mw_server mw_server_t;
typedef struct mw_conn mw_conn_t;

/* How the server rereads its configuration on reload: fills out (zeroed)
 * through every layer (config.lua, environment, flags). Returns 0, or
 * MW_ECONFIG with err naming the key. */
typedef int (*mw_config_loader_fn)(void *data, mw_config_t *out, char *err, size_t errlen);

/* Where a reload's outcome goes instead of this process's log (a worker
 * reports it to its supervisor, which logs one line for every worker):
 * ok, why ("SIGHUP", "file change") and, when it failed, the error.
 * Returns 0 when it took the report, else the server logs it itself. */
typedef int (*mw_reload_report_fn)(void *data, int ok, const char *why, const char *err);

/* Where a reload's other outcomes go the same way (a changed restart-only
 * option, the TLS certificate reread or not): one log line's level and
 * text. Returns 0 when it took the note, else the server logs it itself. */
typedef int (*mw_reload_note_fn)(void *data, int level, const char *text);

/* Replies the C core sends without calling Lua, encoded by the app's
 * protocol (the runtime sets them at start and after every reload). */
typedef enum {
    MW_REPLY_RATE_LIMITED, /* a message refused by rate_limit */
    MW_REPLY_PING,         /* the app protocol's ping event (app_ping) */
    MW_REPLY_COUNT
} mw_reply_t;

struct mw_server {
    uv_loop_t *loop;
    mw_config_t *cfg;                /* borrowed; its live options change on reload */
    mw_config_loader_fn load_config; /* rereads the configuration (NULL: never) */
    void *load_config_data;
    mw_reload_report_fn reload_report; /* a reload's outcome (NULL: logged here) */
    void *reload_report_data;
    mw_reload_note_fn reload_note; /* its other log lines (NULL: logged here) */
    const mw_config_desc_t *restart_required[MW_CONFIG_MAX_OPTIONS]; /* changed, not applied */
    int nrestart_required;
    const char *app_dir;
    mw_app_t app; /* everything that enters the application */

    uv_tcp_t listener;
    int listening;
    int listen_fds[3]; /* a worker's inherited listeners (supervisor.c) */
    int nlisten_fds, next_listen_fd;
    uv_tcp_t tls_listener; /* tls_port, when TLS has a port of its own */
    int tls_listening;
    uv_tcp_t api_listener; /* api_port: the server API alone */
    int api_listening;
    mw_tls_ctx_t *tls; /* NULL when TLS is off; replaced on SIGHUP */
    char *tls_buf;     /* the one decryption buffer of this loop */

    mw_list_t conns;          /* every connection */
    mw_list_t timed;          /* connections with a deadline */
    mw_list_t flushq;         /* connections with output to write */
    mw_list_t awake;          /* connections whose wslay context is allocated */
    mw_idmap_t clients;       /* id -> WebSocket connection, until it is freed */
    mw_rooms_t *rooms;        /* room index */
    mw_ws_encoder_t *encoder; /* frames every message this worker sends */
    uint64_t dropped_total;   /* broadcasts dropped by backpressure */
    uint64_t next_id;         /* the next client id: next_id * id_stride + id_first */
    uint64_t id_first;        /* 1; worker w of N: w (mw_server_set_worker) */
    uint64_t id_stride;       /* 1; worker w of N: N */
    mw_idmap_t requests;      /* request id -> connection, while the app owes the answer */
    uint64_t next_request_id;
    int app_health; /* GET /health goes to the app (mw_server_set_health_route) */
    size_t nconns, nclients;
    uint64_t rooms_elsewhere; /* workers = N: rooms only the others have members in */

    char *readbuf; /* the one read buffer of this loop */
    size_t readbuf_size;

    uv_timer_t cron; /* deadlines: handshake, close, linger */
    uv_prepare_t flush_prepare;
    uv_check_t flush_check;
    uv_signal_t sigterm, sigint, sighup;
    uv_timer_t shutdown_timer;
    mw_reload_t *reload;

    /* admission (docs/security.md) */
    mw_iptable_t *ips;           /* per source address: open connections, new-connection rate */
    mw_shlimits_t *limits;       /* workers = N: every worker's counts (shlimits.h), not ips */
    mw_rate_t ip_rate;           /* connection_rate_per_ip */
    mw_rate_t msg_rate;          /* rate_limit: messages per connection */
    size_t fd_ceiling;           /* connections past which accept() would run out of files */
    uint64_t refused_total;      /* connections refused by a limit (429, 503, 403) */
    uint64_t rate_limited_total; /* messages refused by rate_limit */
    uint64_t last_accept_error;  /* loop time of the last accept error logged */
    char *reply[MW_REPLY_COUNT]; /* see mw_server_set_reply */
    size_t reply_len[MW_REPLY_COUNT];
    uint8_t reply_binary[MW_REPLY_COUNT];
    size_t reply_ts_off[MW_REPLY_COUNT]; /* where its time stamp is, when ts_len > 0 */
    size_t reply_ts_len[MW_REPLY_COUNT];
    mw_buf_t *ping_frame; /* one framed ping, queued by reference on every client */
    uv_timer_t heartbeat; /* pings, pong timeouts, inactive clients */

    uint64_t last_trim;  /* loop time of the last malloc_trim */
    uint64_t last_sweep; /* loop time of the last per-address table sweep */
    int shutting_down;
    int started; /* mw_server_start ran: handles to close */
    int signals; /* signal handlers are installed */
    uint64_t started_ms;

    /* the virtual clock (mw_server_use_virtual_clock), for specs */
    int virtual_clock;
    uint64_t vnow; /* ms; also the wall clock's reading */
    uint64_t next_cron, next_heartbeat, heartbeat_ms;

    /* reload state for /health */
    uint64_t reloads;
    char *last_reload_error;

    mw_counters_t counters; /* what /metrics counts besides the above (counters.h) */
    mw_aggregate_t *agg;    /* workers = N: the stats zone (aggregate.h); NULL otherwise */
    mw_timers_t timers;     /* the app's timers on this clock (timers.h) */
    int app_stopped;        /* the app's stop callback ran */
};

/* mw_server_client is THE lookup of a client by id: the connection, or
 * NULL when no client has this id (never connected, or freed). */
mw_conn_t *mw_server_client(mw_server_t *s, uint64_t id);

/* mw_server_config is the configuration the server runs with now (live
 * options change it on reload). */
const mw_config_t *mw_server_config(const mw_server_t *s);

/* mw_server_timers is the server's timer heap, on its clock (timers.h). */
mw_timers_t *mw_server_timers(mw_server_t *s);

/* mw_server_rooms is the server's room index (rooms.h). */
mw_rooms_t *mw_server_rooms(mw_server_t *s);

/* mw_server_room_count is the number of rooms of the whole server as this
 * worker sees them: its own and those only the other workers have
 * (mw_server_set_rooms_elsewhere); with one process, its own. */
uint64_t mw_server_room_count(const mw_server_t *s);

/* mw_server_now is the server's clock in milliseconds: the loop's time, or
 * the virtual clock of mw_server_use_virtual_clock. Every deadline, rate
 * and heartbeat of the core reads it. */
uint64_t mw_server_now(const mw_server_t *s);

/* mw_server_now_ns is the server's clock in nanoseconds, read when called
 * (CLOCK_MONOTONIC, the clock uv_hrtime reads and uv_now caches in ms once
 * per loop iteration), or the virtual clock: for durations shorter than
 * one loop iteration (handling latency, metrics). */
uint64_t mw_server_now_ns(const mw_server_t *s);

/* mw_server_count_error counts an error envelope the app sent, by its code
 * (len bytes; /metrics, counters.h). */
void mw_server_count_error(mw_server_t *s, const char *code, size_t len);

/* mw_server_wall_ms is wall-clock time in ms since the epoch: the system's,
 * or the virtual clock's. s may be NULL (no server yet): the system's. */
uint64_t mw_server_wall_ms(const mw_server_t *s);

#endif /* MW_STATE_H */
