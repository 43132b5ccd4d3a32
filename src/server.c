/*
 * server.c - listeners, accept, the flush and deadline passes, signals and
 * graceful shutdown.
 *
 * One mw_server_t per worker owns the loop's handles and every connection.
 * Output is written in one pass per loop iteration (prepare and check
 * phases), so a burst of messages produced while handling one read becomes
 * one write per connection. Deadlines are enforced by one repeating timer
 * (the Redis clientsCron shape), not one timer per connection.
 */
#include "server.h"
#include "shlimits.h"
#include "state.h"
#include "aggregate.h"
#include "conn.h"
#include "errors.h"
#include "log.h"
#include "outq.h"
#include "reload.h"
#include "tls.h"

#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define READ_BUFFER_SIZE (64 * 1024)
#define CRON_INTERVAL_MS 100
/* Files kept for everything but client sockets: the listener, inotify,
 * the app's own files, Redis, logs, libuv's internals. */
#define FD_RESERVE 64

/* fd_ceiling: how many connections fit under the open-files limit with
 * FD_RESERVE to spare. Past it, new connections are closed at once instead
 * of letting accept() fail with EMFILE over and over. */
static size_t fd_ceiling(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return SIZE_MAX;
    return rl.rlim_cur > FD_RESERVE * 2 ? (size_t)(rl.rlim_cur - FD_RESERVE) : rl.rlim_cur / 2;
}

static const mw_app_callbacks_t no_callbacks;

int mw_server_create(mw_server_t **out, uv_loop_t *loop, mw_config_t *cfg, const char *app_dir,
                     const mw_app_t *app) {
    mw_server_t *s = calloc(1, sizeof *s);
    if (!s)
        return MW_ENOMEM;
    s->readbuf = malloc(READ_BUFFER_SIZE);
    if (!s->readbuf) {
        free(s);
        return MW_ENOMEM;
    }
    s->readbuf_size = READ_BUFFER_SIZE;
    s->loop = loop;
    s->cfg = cfg;
    s->app_dir = app_dir;
    if (app)
        s->app = *app;
    else
        s->app.cb = &no_callbacks;
    mw_list_init(&s->conns);
    mw_list_init(&s->timed);
    mw_list_init(&s->flushq);
    mw_list_init(&s->awake);
    mw_idmap_init(&s->clients);
    mw_idmap_init(&s->requests);
    s->id_first = s->id_stride = 1;
    mw_rooms_limits_t limits = {cfg->max_connections_per_room, cfg->max_rooms_per_client,
                                !cfg->client_can_join_multiple_rooms};
    if (mw_rooms_create(&s->rooms, &limits) != 0 || mw_ws_encoder_create(&s->encoder) != 0 ||
        mw_iptable_create(&s->ips) != 0 || mw_ws_encode_ping(s->encoder, &s->ping_frame) != 0) {
        mw_server_free(s);
        return MW_ENOMEM;
    }
    mw_rate_init(&s->ip_rate, 1000, (uint64_t)cfg->connection_rate_per_ip);
    mw_rate_init(&s->msg_rate, (uint64_t)cfg->rate_limit_window_ms,
                 (uint64_t)cfg->rate_limit_max_messages);
    s->fd_ceiling = fd_ceiling();
    s->started_ms = mw_server_wall_ms(s); /* the real clock until a virtual one is set */
    *out = s;
    return 0;
}

static void on_connection(uv_stream_t *listener, int status) {
    mw_server_t *s = listener->data;
    if (status < 0) {
        /* Logged at most once a second: a full process table or file
         * table would otherwise fill the log. */
        uint64_t now = uv_now(s->loop);
        if (!s->last_accept_error || now - s->last_accept_error >= 1000) {
            mw_log_error("accept: %s", uv_strerror(status));
            s->last_accept_error = now;
        }
        return;
    }
    if (s->shutting_down)
        return;
    /* wss:// on the TLS listener, or on the only one when tls_port is unset. */
    mw_tls_ctx_t *tls = NULL;
    if (s->tls && (listener == (uv_stream_t *)&s->tls_listener || s->cfg->tls_port < 0))
        tls = s->tls;
    int rc = mw_conn_accept(s, listener, tls);
    if (rc != 0)
        mw_log_warn("accept failed: %s", mw_strerror(rc));
}

/* listen_on binds h to host:port, starts accepting, and logs the URL with
 * its scheme ("ws", "wss", or "http" for the server API, whose log line
 * names /api/). Returns 0, MW_ECONFIG (bad host) or MW_EIO. */
static int listen_on(mw_server_t *s, uv_tcp_t *h, int *listening, const char *host, int port,
                     const char *scheme) {
    struct sockaddr_storage addr;
    const mw_config_t *cfg = s->cfg;
    int rc;
    if (strchr(host, ':'))
        rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr);
    else
        rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
    if (rc != 0) {
        mw_log_error("%s: \"%s\" is not an IPv4 or IPv6 address",
                     host == cfg->host ? "host" : "api_host", host);
        return MW_ECONFIG;
    }
    uv_tcp_init(s->loop, h);
    h->data = s;
    *listening = 1;
    if (s->next_listen_fd < s->nlisten_fds) /* a worker: the supervisor bound it */
        rc = uv_tcp_open(h, s->listen_fds[s->next_listen_fd++]);
    else
        rc = uv_tcp_bind(h, (const struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)h, 1024, on_connection);
    if (rc != 0) {
        mw_log_error("cannot listen on %s port %d: %s", host, port, uv_strerror(rc));
        uv_close((uv_handle_t *)h, NULL); /* the caller runs the loop to finish */
        *listening = 0;
        return MW_EIO;
    }
    struct sockaddr_storage bound;
    int len = sizeof bound;
    if (uv_tcp_getsockname(h, (struct sockaddr *)&bound, &len) == 0)
        port = ntohs(((struct sockaddr_in *)&bound)->sin_port); /* same offset for v6 */
    int v6 = strchr(host, ':') != NULL;
    int api = strcmp(scheme, "http") == 0;
    const char *path = api ? "/api/" : strcmp(cfg->path, "*") == 0 ? "/" : cfg->path;
    mw_log_info("%slistening on %s://%s%s%s:%d%s", api ? "server API " : "", scheme, v6 ? "[" : "",
                host, v6 ? "]" : "", port, path);
    return 0;
}

/* tls_load builds a TLS context from the configured files. Returns 0 or
 * the error of mw_tls_ctx_create, with its message in err. */
static int tls_load(mw_server_t *s, mw_tls_ctx_t **out, char *err, size_t errlen) {
    const mw_config_t *cfg = s->cfg;
    int rc = mw_tls_ctx_create(out, cfg->tls_cert, cfg->tls_key, cfg->tls_min_version, err, errlen);
    if (rc == MW_ENOMEM)
        snprintf(err, errlen, "out of memory");
    return rc;
}

static void stop_listening(mw_server_t *s);

void mw_server_set_listen_fds(mw_server_t *s, const int *fds, int n) {
    for (int i = 0; i < n && i < MW_SERVER_MAX_LISTEN_FDS; i++)
        s->listen_fds[i] = fds[i];
    s->nlisten_fds = n < MW_SERVER_MAX_LISTEN_FDS ? n : MW_SERVER_MAX_LISTEN_FDS;
    s->next_listen_fd = 0;
}

void mw_server_set_worker(mw_server_t *s, int worker, int nworkers) {
    if (worker < 1 || nworkers < worker)
        return;
    s->id_first = (uint64_t)worker;
    s->id_stride = (uint64_t)nworkers;
}

int mw_server_listen(mw_server_t *s) {
    const mw_config_t *cfg = s->cfg;
    if (cfg->tls_cert[0]) {
        /* Loaded before listening, so a bad file stops the server at once
         * (exit status 2, the message names the key and the file). */
        char err[1024];
        int rc = tls_load(s, &s->tls, err, sizeof err);
        if (rc == 0 && !(s->tls_buf = malloc(MW_TLS_RECORD_MAX))) {
            rc = MW_ENOMEM;
            snprintf(err, sizeof err, "out of memory");
        }
        if (rc != 0) {
            mw_log_error("%s%s", rc == MW_ECONFIG ? "invalid configuration: " : "", err);
            return rc;
        }
    }
    int separate = s->tls && cfg->tls_port >= 0;
    int rc = listen_on(s, &s->listener, &s->listening, cfg->host, cfg->port,
                       s->tls && !separate ? "wss" : "ws");
    if (rc == 0 && separate)
        rc = listen_on(s, &s->tls_listener, &s->tls_listening, cfg->host, cfg->tls_port, "wss");
    /* The server API on a port of its own: plain HTTP, by default on the
     * loopback interface only (docs/protocol.md, "The server API"). */
    if (rc == 0 && cfg->api_port > 0 && cfg->api_key[0])
        rc =
            listen_on(s, &s->api_listener, &s->api_listening, cfg->api_host, cfg->api_port, "http");
    if (rc != 0)
        stop_listening(s);
    return rc;
}

static void shutdown_check(mw_server_t *s);

/* flush writes the queued output of every connection on flushq. */
static void flush(mw_server_t *s) {
    while (!mw_list_empty(&s->flushq)) {
        mw_list_t *l = s->flushq.next;
        mw_list_remove(l);
        mw_conn_flush(mw_conn_from_flush(l));
    }
}

static void on_flush_prepare(uv_prepare_t *h) {
    flush(h->data);
}

/* Once per loop iteration, after I/O: write what it produced, and finish a
 * graceful shutdown once the last connection is gone (connections do not
 * call back into the server when they are freed). */
static void on_flush_check(uv_check_t *h) {
    flush(h->data);
    shutdown_check(h->data);
}

/* cron_pass: deadlines (handshake, close, linger, expiry), idle memory,
 * the app's idle work; every CRON_INTERVAL_MS. */
static void cron_pass(mw_server_t *s) {
    uint64_t now = mw_server_now(s);
    mw_list_t *l = s->timed.next;
    while (l != &s->timed) {
        mw_list_t *next = l->next; /* tick may unlink l, never next */
        mw_conn_tick(mw_conn_from_timed(l), now);
        l = next;
    }
    size_t slept = 0;
    l = s->awake.next;
    while (l != &s->awake) {
        mw_list_t *next = l->next;
        slept += mw_conn_idle(mw_conn_from_awake(l), now);
        l = next;
    }
    /* Parser contexts of idle connections were freed; give whole free
     * pages back to the system so idle connections show their real cost
     * (glibc keeps freed chunks otherwise). Bounded to once a second. */
    if (s->app.cb->idle)
        s->app.cb->idle(s->app.data);
    if (s->agg)
        mw_aggregate_tick(s); /* this worker's numbers, for the others' /health and /metrics */
    if (now - s->last_sweep >= 1000) {
        mw_iptable_sweep(s->ips, now * 1000);
        mw_buf_cache_trim(); /* output chunks no batch took in the last second */
        s->last_sweep = now;
    }
    if (slept >= 32 && now - s->last_trim >= 1000) {
        malloc_trim(0);
        s->last_trim = now;
    }
}

/* heartbeat_interval: how often the liveness pass runs, fine enough for
 * the shortest configured timeout (a quarter of it), at least every 100 ms
 * and at most every second. 0 when nothing is configured. */
static uint64_t heartbeat_interval(const mw_config_t *cfg) {
    uint64_t ms = 1000;
    if (!cfg->ping_interval && !cfg->inactive_time)
        return 0;
    if (cfg->ping_interval) {
        uint64_t a = (uint64_t)cfg->ping_interval / 4, b = (uint64_t)cfg->pong_timeout / 4;
        ms = a < ms ? a : ms;
        ms = b < ms ? b : ms;
    }
    if (cfg->inactive_time && (uint64_t)cfg->inactive_check_interval < ms)
        ms = (uint64_t)cfg->inactive_check_interval;
    return ms < 100 ? 100 : ms;
}

static void on_cron(uv_timer_t *t) {
    cron_pass(t->data);
}

/* heartbeat_pass walks every connection: O(connections) per pass, a few
 * nanoseconds each, at most ten passes a second. */
static void heartbeat_pass(mw_server_t *s) {
    uint64_t now = mw_server_now(s);
    mw_list_t *l = s->conns.next;
    while (l != &s->conns) {
        mw_list_t *next = l->next; /* a drop unlinks l only in its close callback */
        mw_conn_heartbeat(mw_conn_from_link(l), now);
        l = next;
    }
}

static void on_heartbeat(uv_timer_t *t) {
    heartbeat_pass(t->data);
}

/* stop_app tells the app the server is going away, once: it gives up
 * what still waits and releases the connections it kept. */
static void stop_app(mw_server_t *s) {
    if (s->app_stopped)
        return;
    s->app_stopped = 1;
    if (s->app.cb->stop)
        s->app.cb->stop(s->app.data);
}

static void close_server_handles(mw_server_t *s) {
    stop_app(s);
    if (s->started) {
        mw_timers_close(&s->timers);
        uv_close((uv_handle_t *)&s->cron, NULL);
        uv_close((uv_handle_t *)&s->heartbeat, NULL);
        uv_close((uv_handle_t *)&s->flush_prepare, NULL);
        uv_close((uv_handle_t *)&s->flush_check, NULL);
        uv_close((uv_handle_t *)&s->shutdown_timer, NULL);
        s->started = 0;
    }
    if (s->signals) {
        uv_close((uv_handle_t *)&s->sigterm, NULL);
        uv_close((uv_handle_t *)&s->sigint, NULL);
        uv_close((uv_handle_t *)&s->sighup, NULL);
        s->signals = 0;
    }
    mw_reload_stop(s->reload);
}

static void shutdown_check(mw_server_t *s) {
    if (s->shutting_down && s->nconns == 0 && s->started) {
        mw_log_info("all clients closed; exiting");
        if (s->agg)
            mw_aggregate_publish(s); /* the last numbers, for the workers that remain */
        close_server_handles(s);
    }
}

static void on_shutdown_timeout(uv_timer_t *t) {
    mw_server_t *s = t->data;
    mw_log_warn("shutdown_timeout reached: dropping %zu remaining connection(s)", s->nconns);
    mw_list_t *l = s->conns.next;
    while (l != &s->conns) {
        mw_list_t *next = l->next;
        mw_conn_abort(mw_conn_from_link(l));
        l = next;
    }
    /* Handlers still waiting on a closed client keep it (mw_conn_release);
     * past the timeout they are given up. */
    stop_app(s);
}

/* stop_listening closes the listeners: no new connections. */
static void stop_listening(mw_server_t *s) {
    if (s->listening) {
        uv_close((uv_handle_t *)&s->listener, NULL);
        s->listening = 0;
    }
    if (s->tls_listening) {
        uv_close((uv_handle_t *)&s->tls_listener, NULL);
        s->tls_listening = 0;
    }
    if (s->api_listening) {
        uv_close((uv_handle_t *)&s->api_listener, NULL);
        s->api_listening = 0;
    }
}

void mw_server_shutdown(mw_server_t *s) {
    if (s->shutting_down)
        return;
    s->shutting_down = 1;
    mw_log_info("shutting down: closing %zu client(s) with 1001", s->nclients);
    stop_listening(s);
    mw_list_t *l = s->conns.next;
    while (l != &s->conns) {
        mw_list_t *next = l->next;
        mw_conn_close(mw_conn_from_link(l), 1001, "server shutting down", 20);
        l = next;
    }
    uv_timer_start(&s->shutdown_timer, on_shutdown_timeout, (uint64_t)s->cfg->shutdown_timeout, 0);
    shutdown_check(s); /* finishes at once when nobody is connected */
}

/* reload_note logs one outcome of a reload other than the app's own, or
 * gives it to the reload_note hook (a worker's supervisor logs it once for
 * every worker with the same line). */
static void reload_note(mw_server_t *s, mw_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reload_note(mw_server_t *s, mw_log_level level, const char *fmt, ...) {
    char text[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (s->reload_note && s->reload_note(s->reload_report_data, (int)level, text) == 0)
        mw_log_debug("%s", text);
    else
        mw_log(level, "%s", text);
}

/* reload_tls rereads the certificate and key (SIGHUP, for renewals). New
 * connections get the new context; open ones keep the one they started
 * with (each session holds a reference). On failure the old one stays. */
static void reload_tls(mw_server_t *s) {
    char err[1024];
    mw_tls_ctx_t *ctx;
    if (tls_load(s, &ctx, err, sizeof err) != 0) {
        reload_note(s, MW_LOG_ERROR,
                    "TLS reload failed, the previous certificate keeps serving: %s", err);
        return;
    }
    mw_tls_ctx_free(s->tls);
    s->tls = ctx;
    reload_note(s, MW_LOG_INFO, "reloaded the TLS certificate from %s", s->cfg->tls_cert);
}

void mw_server_hangup(mw_server_t *s) {
    /* The certificate first: a worker's notes reach its supervisor before
     * the reload's outcome, which closes the round (supervisor.c). */
    if (s->tls)
        reload_tls(s);
    mw_server_reload(s, "SIGHUP");
}

static void on_signal(uv_signal_t *h, int signum) {
    mw_server_t *s = h->data;
    if (signum == SIGHUP)
        mw_server_hangup(s);
    else
        mw_server_shutdown(s);
}

void mw_server_set_config_loader(mw_server_t *s, mw_config_loader_fn load, void *data) {
    s->load_config = load;
    s->load_config_data = data;
}

void mw_server_set_reload_report(mw_server_t *s, mw_reload_report_fn report, void *data) {
    s->reload_report = report;
    s->reload_report_data = data;
}

void mw_server_set_reload_note(mw_server_t *s, mw_reload_note_fn note) {
    s->reload_note = note;
}

/* note_restart records a changed restart-only option, warning once. */
static void note_restart(void *ud, const mw_config_desc_t *d) {
    mw_server_t *s = ud;
    if (d->live)
        return;
    for (int i = 0; i < s->nrestart_required; i++)
        if (s->restart_required[i] == d)
            return;
    if (s->nrestart_required < MW_CONFIG_MAX_OPTIONS)
        s->restart_required[s->nrestart_required++] = d;
    reload_note(s, MW_LOG_WARN,
                "config: %s changed; it needs a restart to take effect (the running value stays)",
                d->name);
}

/* reload_config rereads the configuration and applies its live options.
 * Returns 0, or an error (in err) that fails the reload: a broken
 * config.lua keeps every option as it was. */
static int reload_config(mw_server_t *s, char *err, size_t errlen) {
    if (!s->load_config)
        return 0;
    mw_config_t fresh;
    memset(&fresh, 0, sizeof fresh);
    int rc = s->load_config(s->load_config_data, &fresh, err, errlen);
    if (rc == 0) {
        mw_config_diff(s->cfg, &fresh, note_restart, s);
        rc = mw_config_copy_live(s->cfg, &fresh);
        if (rc != 0)
            snprintf(err, errlen, "config: out of memory");
    }
    mw_config_free(&fresh);
    if (rc != 0)
        return rc;
    /* What was derived from live options when the server started. */
    mw_log_configure((mw_log_level)mw_log_level_parse(s->cfg->log_level),
                     strcmp(s->cfg->log_format, "json") == 0);
    mw_rate_init(&s->ip_rate, 1000, (uint64_t)s->cfg->connection_rate_per_ip);
    mw_rate_init(&s->msg_rate, (uint64_t)s->cfg->rate_limit_window_ms,
                 (uint64_t)s->cfg->rate_limit_max_messages);
    return 0;
}

void mw_server_reload(mw_server_t *s, const char *why) {
    char err[2048];
    int rc = reload_config(s, err, sizeof err);
    if (rc == 0 && s->app.cb->reload)
        rc = s->app.cb->reload(s->app.data, s->cfg, err, sizeof err);
    /* A worker's outcome goes to its supervisor, which logs one line for
     * all the workers with the same outcome (supervisor.c). */
    int reported = s->reload_report &&
                   s->reload_report(s->reload_report_data, rc == 0, why, rc == 0 ? NULL : err) == 0;
    if (rc == 0) {
        s->reloads++;
        free(s->last_reload_error);
        s->last_reload_error = NULL;
        if (reported)
            mw_log_debug("reloaded the app (%s)", why);
        else
            mw_log_info("reloaded the app (%s)", why);
    } else {
        s->counters.reload_failures++;
        free(s->last_reload_error);
        s->last_reload_error = strdup(err);
        if (reported)
            mw_log_debug("reload failed (%s), the previous code keeps serving: %s", why, err);
        else
            mw_log_error("reload failed (%s), the previous code keeps serving: %s", why, err);
    }
}

static void on_files_changed(void *data, const char *why) {
    mw_server_reload(data, why);
}

static void start_signal(mw_server_t *s, uv_signal_t *h, int signum) {
    uv_signal_init(s->loop, h);
    h->data = s;
    uv_signal_start(h, on_signal, signum);
}

static uint64_t server_clock(void *data) {
    return mw_server_now(data);
}

int mw_server_start(mw_server_t *s) {
    if (s->started)
        return 0;
    s->started = 1;
    uv_timer_init(s->loop, &s->cron);
    s->cron.data = s;
    uv_timer_init(s->loop, &s->heartbeat);
    s->heartbeat.data = s;
    mw_timers_init(&s->timers, s->loop, server_clock, s, s->virtual_clock);
    s->heartbeat_ms = heartbeat_interval(s->cfg);
    if (s->virtual_clock) {
        s->next_cron = s->vnow + CRON_INTERVAL_MS;
        s->next_heartbeat = s->vnow + s->heartbeat_ms;
    } else {
        uv_timer_start(&s->cron, on_cron, CRON_INTERVAL_MS, CRON_INTERVAL_MS);
        if (s->heartbeat_ms)
            uv_timer_start(&s->heartbeat, on_heartbeat, s->heartbeat_ms, s->heartbeat_ms);
    }
    uv_prepare_init(s->loop, &s->flush_prepare);
    s->flush_prepare.data = s;
    uv_prepare_start(&s->flush_prepare, on_flush_prepare);
    uv_check_init(s->loop, &s->flush_check);
    s->flush_check.data = s;
    uv_check_start(&s->flush_check, on_flush_check);
    uv_timer_init(s->loop, &s->shutdown_timer);
    s->shutdown_timer.data = s;
    return 0;
}

void mw_server_use_virtual_clock(mw_server_t *s, uint64_t start_ms) {
    s->virtual_clock = 1;
    s->vnow = start_ms;
    s->started_ms = start_ms;
}

/* Rounds of timers at one instant of the virtual clock before advancing
 * gives up (a task that only ever sleeps 0). */
#define MAX_TIMER_ROUNDS 100000

void mw_server_advance(mw_server_t *s, uint64_t ms) {
    if (!s->virtual_clock || !s->started)
        return;
    uint64_t end = s->vnow + ms;
    int same_instant = 0;
    for (;;) {
        /* The next pass due, in the order the real timers would fire. */
        uint64_t next = s->next_cron, timer = mw_timers_next(&s->timers);
        if (s->heartbeat_ms && s->next_heartbeat < next)
            next = s->next_heartbeat;
        if (timer < next)
            next = timer;
        if (next > end)
            break;
        if (next > s->vnow) {
            s->vnow = next;
            same_instant = 0;
        }
        if (timer <= s->vnow) {
            /* Timers first, as a zero-delay chain (a task that sleeps 0
             * again and again) fires within one instant; a chain that
             * never ends would keep the clock from moving: stopped. */
            if (++same_instant > MAX_TIMER_ROUNDS) {
                mw_log_error("virtual clock: timers keep firing at %llu ms; advance stopped",
                             (unsigned long long)s->vnow);
                break;
            }
            mw_timers_run(&s->timers, s->vnow);
            flush(s);
            continue;
        }
        if (s->heartbeat_ms && s->next_heartbeat == next) {
            heartbeat_pass(s);
            s->next_heartbeat += s->heartbeat_ms;
        }
        if (s->next_cron == next) {
            cron_pass(s);
            s->next_cron += CRON_INTERVAL_MS;
        }
        flush(s);
    }
    s->vnow = end;
}

int mw_server_adopt(mw_server_t *s, int fd, const char *peer_addr, int peer_port) {
    return mw_conn_adopt(s, fd, peer_addr, peer_port);
}

void mw_server_abort(mw_server_t *s) {
    s->shutting_down = 1;
    stop_listening(s);
    mw_list_t *l = s->conns.next;
    while (l != &s->conns) {
        mw_list_t *next = l->next;
        mw_conn_abort(mw_conn_from_link(l));
        l = next;
    }
    close_server_handles(s);
}

void mw_server_arm(mw_server_t *s) {
    if (s->signals)
        return;
    start_signal(s, &s->sigterm, SIGTERM);
    start_signal(s, &s->sigint, SIGINT);
    start_signal(s, &s->sighup, SIGHUP);
    s->signals = 1;
    if (s->cfg->reload && mw_reload_start(&s->reload, s->loop, s->app_dir, &s->cfg->reload_debounce,
                                          on_files_changed, s) != 0)
        mw_log_warn("cannot watch %s for changes; reload with SIGHUP", s->app_dir);
}

int mw_server_run(mw_server_t *s) {
    mw_server_start(s);
    mw_server_arm(s);
    uv_run(s->loop, UV_RUN_DEFAULT);
    return 0;
}

int mw_server_set_reply(mw_server_t *s, mw_reply_t which, const void *data, size_t len, int binary,
                        size_t ts_off, size_t ts_len) {
    if ((unsigned)which >= MW_REPLY_COUNT || ts_off > len || ts_len > len - ts_off)
        return MW_EINVAL;
    char *copy = malloc(len ? len : 1);
    if (!copy)
        return MW_ENOMEM;
    memcpy(copy, data, len);
    free(s->reply[which]);
    s->reply[which] = copy;
    s->reply_len[which] = len;
    s->reply_binary[which] = binary ? 1 : 0;
    s->reply_ts_off[which] = ts_off;
    s->reply_ts_len[which] = ts_len;
    return 0;
}

int mw_server_http_respond(mw_server_t *s, uint64_t request_id, int status, const char *headers,
                           const char *content_type, const void *body, size_t len) {
    mw_conn_t *c = request_id ? mw_idmap_get(&s->requests, request_id) : NULL;
    if (!c)
        return MW_ECLOSED;
    return mw_conn_respond(c, status, headers, content_type, body, len);
}

void mw_server_set_health_route(mw_server_t *s, int app) {
    s->app_health = app ? 1 : 0;
}

void mw_server_set_rooms_elsewhere(mw_server_t *s, uint64_t n) {
    s->rooms_elsewhere = n;
}

int mw_server_attach_limits(mw_server_t *s, int fd, int worker) {
    mw_shlimits_t *l;
    int rc = mw_shlimits_attach(&l, fd, worker);
    if (rc != 0)
        return rc;
    mw_shlimits_free(s->limits);
    s->limits = l;
    mw_shlimits_set_clients(l, s->nclients);
    return 0;
}

void mw_server_free(mw_server_t *s) {
    if (!s)
        return;
    mw_reload_free(s->reload);
    mw_aggregate_free(s->agg);
    mw_timers_free(&s->timers);
    mw_idmap_free(&s->clients);
    mw_idmap_free(&s->requests);
    mw_rooms_free(s->rooms);
    mw_iptable_free(s->ips);
    mw_shlimits_free(s->limits);
    if (s->ping_frame)
        mw_buf_unref(s->ping_frame);
    mw_ws_encoder_free(s->encoder);
    mw_tls_ctx_free(s->tls);
    free(s->tls_buf);
    free(s->last_reload_error);
    for (int i = 0; i < MW_REPLY_COUNT; i++)
        free(s->reply[i]);
    free(s->readbuf);
    free(s);
    mw_buf_cache_release();
}
