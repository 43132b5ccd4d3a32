/*
 * server_private.h - the server struct, shared by the files that make up
 * the server (server.c, conn.c, pubsub.c, reload.c) and nobody else
 * (hiredis's async_private.h pattern). Everything outside goes through
 * server.h.
 */
#ifndef MW_SERVER_PRIVATE_H
#define MW_SERVER_PRIVATE_H

#include "config.h"
#include "idmap.h"
#include "iptable.h"
#include "list.h"
#include "ratelimit.h"
#include "rooms.h"
#include "server.h"
#include "tls.h"
#include "ws.h"

#include <uv.h>

typedef struct mw_reload mw_reload_t;

struct mw_server {
    uv_loop_t *loop;
    const mw_config_t *cfg;
    const char *app_dir;
    mw_script_t *script;

    uv_tcp_t listener;
    int listening;
    uv_tcp_t tls_listener; /* tls_port, when TLS has a port of its own */
    int tls_listening;
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
    uint64_t next_id;
    size_t nconns, nclients;

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
    mw_rate_t ip_rate;           /* connection_rate_per_ip */
    mw_rate_t msg_rate;          /* rate_limit: messages per connection */
    size_t fd_ceiling;           /* connections past which accept() would run out of files */
    uint64_t refused_total;      /* connections refused by a limit (429, 503, 403) */
    uint64_t rate_limited_total; /* messages refused by rate_limit */
    uint64_t last_accept_error;  /* loop time of the last accept error logged */
    char *reply[MW_REPLY_COUNT]; /* see mw_server_set_reply */
    size_t reply_len[MW_REPLY_COUNT];
    uint8_t reply_binary[MW_REPLY_COUNT];
    mw_buf_t *ping_frame; /* one framed ping, queued by reference on every client */
    uv_timer_t heartbeat; /* pings, pong timeouts, inactive clients */

    uint64_t last_trim;  /* loop time of the last malloc_trim */
    uint64_t last_sweep; /* loop time of the last per-address table sweep */
    int shutting_down;
    uint64_t started_ms;

    /* reload state for /health */
    uint64_t reloads;
    char *last_reload_error;
};

/* mw__server_flush writes queued output of every connection on flushq. */
void mw__server_flush(mw_server_t *s);

/* mw__server_conn_gone is called by conn.c when a connection is freed, so
 * a pending shutdown can finish when the last one goes. */
void mw__server_conn_gone(mw_server_t *s);

/* mw__health_json formats the /health body into a malloc'd string. */
char *mw__health_json(mw_server_t *s, size_t *len);

#endif
