/*
 * redis.h - a Redis client on the server's libuv loop.
 *
 * hiredis's async API and its libuv adapter do the protocol and the I/O; this
 * module adds what hiredis 0.14 lacks and a server needs: a connect timeout
 * and a timeout per command (uv timers), reconnection with bounded
 * exponential backoff, AUTH and SELECT on every (re)connect, commands that
 * fail fast while Redis is down instead of queueing, pub/sub on a second
 * connection that resubscribes after a reconnect, a free that is safe from
 * inside a callback, and counters for /metrics. Nothing here blocks: names
 * are resolved with uv_getaddrinfo, connects are non-blocking.
 *
 * A handle holds one connection for commands (all outstanding commands are
 * pipelined on it, replies come back in order) and, once something
 * subscribes, one for pub/sub. docs/architecture.md ("Redis") has the model.
 */
#ifndef MW_REDIS_H
#define MW_REDIS_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#define MW_REDIS_CONNECT_TIMEOUT_MS 2000 /* default connect (and AUTH/SELECT) timeout */
#define MW_REDIS_COMMAND_TIMEOUT_MS 5000 /* default timeout of a command */
#define MW_REDIS_RECONNECT_MIN_MS 100    /* first retry delay after a failure */
#define MW_REDIS_RECONNECT_MAX_MS 5000   /* the delay doubles up to this */

typedef struct mw_redis mw_redis_t;
typedef struct mw_redis_sub mw_redis_sub_t;

typedef struct {
    /* redis://[[user]:password@]host[:port][/db] (host may be [v6]; user and
     * password are %-decoded) or unix:/path/to/socket[?db=N]. Required. */
    const char *url;
    const char *password;        /* NULL: the URL's (if any); "" for none */
    int db;                      /* 0: the URL's (default 0) */
    uint64_t connect_timeout_ms; /* 0: MW_REDIS_CONNECT_TIMEOUT_MS */
    uint64_t command_timeout_ms; /* 0: MW_REDIS_COMMAND_TIMEOUT_MS */
    uint64_t reconnect_min_ms;   /* 0: MW_REDIS_RECONNECT_MIN_MS */
    uint64_t reconnect_max_ms;   /* 0: MW_REDIS_RECONNECT_MAX_MS */
    /* The handle's label in logs and /metrics; NULL: the URL without its
     * password. */
    const char *name;
} mw_redis_opts_t;

/* A command's outcome: exactly one call, with reply != NULL and err == 0
 * (a Redis error is a reply of type REDIS_REPLY_ERROR), or reply == NULL
 * and err one of MW_ETIMEOUT (no reply within its timeout; a reply that
 * comes later is dropped), MW_ECONNLOST (the connection broke first),
 * MW_ENOTCONN (it never reached a connected server) or MW_ECLOSED
 * (mw_redis_free). The reply is hiredis's and valid during the call only. */
typedef void (*mw_redis_reply_cb)(void *data, const redisReply *reply, int err);

/* A pub/sub message. pattern is NULL (patlen 0) for a channel
 * subscription; the bytes are valid during the call only. */
typedef void (*mw_redis_msg_cb)(void *data, const char *channel, size_t chlen, const char *pattern,
                                size_t patlen, const char *msg, size_t len);

/* mw_redis_create parses and checks opts, then starts connecting in the
 * background and returns at once: commands issued before that first attempt
 * ends wait for it (bounded by their timeout and connect_timeout_ms).
 * Returns 0, MW_EINVAL (bad URL or option; err says what) or MW_ENOMEM. */
int mw_redis_create(mw_redis_t **out, uv_loop_t *loop, const mw_redis_opts_t *opts, char *err,
                    size_t errlen);

/* mw_redis_check_url tells whether url is one mw_redis_create accepts:
 * 0, or MW_EINVAL with err saying why (MW_ENOMEM). */
int mw_redis_check_url(const char *url, char *err, size_t errlen);

/* mw_redis_free fails every pending command with MW_ECLOSED before it
 * returns; after that no callback of this handle runs again, and its
 * subscriptions are gone. Safe from inside any of the handle's callbacks.
 * The memory goes back once the loop has run the handles' close callbacks,
 * like any libuv handle. */
void mw_redis_free(mw_redis_t *r);

/* mw_redis_command sends argv (binary-safe: argvlen gives each length; NULL
 * for C strings) with a timeout (0: the handle's command_timeout_ms).
 * Returns 0 and calls cb exactly once later (never from inside this call),
 * or returns an error and never calls cb: MW_ENOTCONN at once while Redis is
 * down (fail fast: nothing waits for a reconnect), MW_ECLOSED after
 * mw_redis_free, MW_EINVAL for a command mw_redis_check_command refuses,
 * MW_ENOMEM. Commands issued one after another without returning to the
 * loop go out back to back (MULTI ... EXEC issued at once is a transaction;
 * spread over several loop turns, other users' commands would join it). */
int mw_redis_command(mw_redis_t *r, int argc, const char **argv, const size_t *argvlen,
                     uint64_t timeout_ms, mw_redis_reply_cb cb, void *data);

/* mw_redis_check_command returns why a command cannot go on the shared
 * command connection, or NULL: pub/sub (use mw_redis_subscribe), MONITOR,
 * SYNC and PSYNC (they take over the connection), SELECT, AUTH, HELLO,
 * RESET, QUIT and CLIENT REPLY (they change what every user of the
 * connection gets). Blocking commands (BLPOP, WAIT, ...) are allowed but
 * hold up every command behind them on the shared connection. */
const char *mw_redis_check_command(int argc, const char **argv, const size_t *argvlen);

/* mw_redis_subscribe adds a subscription to a channel (is_pattern 0) or a
 * pattern (PSUBSCRIBE) on the pub/sub connection, which it opens on first
 * use. It holds across reconnects (every subscription is sent again) until
 * mw_redis_unsubscribe; several on the same name each get every message.
 * Returns 0 (also while Redis is down: it is sent once connected),
 * MW_EINVAL, MW_ECLOSED or MW_ENOMEM. *out identifies it. */
int mw_redis_subscribe(mw_redis_t *r, const char *name, size_t len, int is_pattern,
                       mw_redis_msg_cb cb, void *data, mw_redis_sub_t **out);

/* mw_redis_unsubscribe ends a subscription: its callback is not called
 * again, even from inside a message callback. */
void mw_redis_unsubscribe(mw_redis_t *r, mw_redis_sub_t *sub);

/* mw_redis_sub_active tells whether Redis has confirmed the subscription on
 * the current pub/sub connection (messages published from now on arrive). */
int mw_redis_sub_active(const mw_redis_sub_t *sub);

/* The handle's counters (for /metrics and tests). */
typedef struct {
    uint64_t commands;       /* commands sent */
    uint64_t replies;        /* replies delivered (error replies included) */
    uint64_t error_replies;  /* replies of type REDIS_REPLY_ERROR */
    uint64_t failed;         /* commands refused or failed without a reply (timeouts too) */
    uint64_t timeouts;       /* commands that timed out */
    uint64_t reconnects;     /* connections established again after a loss or failure */
    uint64_t connect_errors; /* connection attempts that failed */
    uint64_t messages;       /* pub/sub messages delivered */
    uint64_t subscriptions;  /* channels and patterns subscribed now (distinct names) */
} mw_redis_stats_t;

void mw_redis_stats(const mw_redis_t *r, mw_redis_stats_t *st);

/* mw_redis_up tells whether the command connection is ready (connected,
 * AUTH and SELECT done). */
int mw_redis_up(const mw_redis_t *r);

/* mw_redis_last_error is why the handle is down (a hiredis or Redis
 * message), or "" while it is up or still on its first attempt. */
const char *mw_redis_last_error(const mw_redis_t *r);

/* mw_redis_name is the handle's label (opts.name or the URL without its
 * password). */
const char *mw_redis_name(const mw_redis_t *r);

/* mw_redis_metrics writes the moonwire_redis_* families to out, with one
 * sample (labelled name="...") per handle in rs[0..n). Nothing when n is 0. */
void mw_redis_metrics(FILE *out, mw_redis_t *const *rs, size_t n);

#endif
