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
#include "server_private.h"
#include "conn.h"
#include "errors.h"
#include "log.h"
#include "lua/script.h"
#include "reload.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define READ_BUFFER_SIZE (64 * 1024)
#define CRON_INTERVAL_MS 100

static uint64_t wall_ms(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

int mw_server_create(mw_server_t **out, uv_loop_t *loop, const mw_config_t *cfg,
                     const char *app_dir, mw_script_t *script) {
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
    s->script = script;
    mw_list_init(&s->conns);
    mw_list_init(&s->timed);
    mw_list_init(&s->flushq);
    mw_list_init(&s->awake);
    mw_idmap_init(&s->clients);
    mw_rooms_limits_t limits = {cfg->max_connections_per_room, cfg->max_rooms_per_client,
                                !cfg->client_can_join_multiple_rooms};
    if (mw_rooms_create(&s->rooms, &limits) != 0 || mw_ws_encoder_create(&s->encoder) != 0) {
        mw_server_free(s);
        return MW_ENOMEM;
    }
    s->started_ms = wall_ms();
    *out = s;
    return 0;
}

static void on_connection(uv_stream_t *listener, int status) {
    mw_server_t *s = listener->data;
    if (status < 0) {
        mw_log_error("accept: %s", uv_strerror(status));
        return;
    }
    if (s->shutting_down)
        return;
    int rc = mw_conn_accept(s);
    if (rc != 0)
        mw_log_warn("accept failed: %s", mw_strerror(rc));
}

int mw_server_listen(mw_server_t *s) {
    struct sockaddr_storage addr;
    const mw_config_t *cfg = s->cfg;
    int rc;
    if (strchr(cfg->host, ':'))
        rc = uv_ip6_addr(cfg->host, cfg->port, (struct sockaddr_in6 *)&addr);
    else
        rc = uv_ip4_addr(cfg->host, cfg->port, (struct sockaddr_in *)&addr);
    if (rc != 0) {
        mw_log_error("host: \"%s\" is not an IPv4 or IPv6 address", cfg->host);
        return MW_ECONFIG;
    }
    uv_tcp_init(s->loop, &s->listener);
    s->listener.data = s;
    s->listening = 1;
    rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, 1024, on_connection);
    if (rc != 0) {
        mw_log_error("cannot listen on %s port %d: %s", cfg->host, cfg->port, uv_strerror(rc));
        uv_close((uv_handle_t *)&s->listener, NULL); /* the caller runs the loop to finish */
        s->listening = 0;
        return MW_EIO;
    }
    struct sockaddr_storage bound;
    int len = sizeof bound;
    int port = cfg->port;
    if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len) == 0)
        port = ntohs(((struct sockaddr_in *)&bound)->sin_port); /* same offset for v6 */
    const char *shown = cfg->host;
    int v6 = strchr(shown, ':') != NULL;
    const char *path = strcmp(cfg->path, "*") == 0 ? "/" : cfg->path;
    mw_log_info("listening on ws://%s%s%s:%d%s", v6 ? "[" : "", shown, v6 ? "]" : "", port, path);
    return 0;
}

void mw__server_flush(mw_server_t *s) {
    while (!mw_list_empty(&s->flushq)) {
        mw_list_t *l = s->flushq.next;
        mw_list_remove(l);
        mw_conn_flush(mw_conn_from_flush(l));
    }
}

static void on_flush_prepare(uv_prepare_t *h) {
    mw__server_flush(h->data);
}

static void on_flush_check(uv_check_t *h) {
    mw__server_flush(h->data);
}

static void on_cron(uv_timer_t *t) {
    mw_server_t *s = t->data;
    uint64_t now = uv_now(s->loop);
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
    mw_script_idle(s->script);
    if (slept >= 32 && now - s->last_trim >= 1000) {
        malloc_trim(0);
        s->last_trim = now;
    }
}

static void close_server_handles(mw_server_t *s) {
    uv_close((uv_handle_t *)&s->cron, NULL);
    uv_close((uv_handle_t *)&s->flush_prepare, NULL);
    uv_close((uv_handle_t *)&s->flush_check, NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->sighup, NULL);
    uv_close((uv_handle_t *)&s->shutdown_timer, NULL);
    mw_reload_stop(s->reload);
}

void mw__server_conn_gone(mw_server_t *s) {
    if (s->shutting_down && s->nconns == 0 && !uv_is_closing((uv_handle_t *)&s->cron)) {
        mw_log_info("all clients closed; exiting");
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
}

void mw_server_shutdown(mw_server_t *s) {
    if (s->shutting_down)
        return;
    s->shutting_down = 1;
    mw_log_info("shutting down: closing %zu client(s) with 1001", s->nclients);
    if (s->listening) {
        uv_close((uv_handle_t *)&s->listener, NULL);
        s->listening = 0;
    }
    mw_list_t *l = s->conns.next;
    while (l != &s->conns) {
        mw_list_t *next = l->next;
        mw_conn_close(mw_conn_from_link(l), 1001, "server shutting down", 20);
        l = next;
    }
    uv_timer_start(&s->shutdown_timer, on_shutdown_timeout, (uint64_t)s->cfg->shutdown_timeout, 0);
    mw__server_conn_gone(s); /* finishes at once when nobody is connected */
}

static void on_signal(uv_signal_t *h, int signum) {
    mw_server_t *s = h->data;
    if (signum == SIGHUP)
        mw_server_reload(s, "SIGHUP");
    else
        mw_server_shutdown(s);
}

void mw_server_reload(mw_server_t *s, const char *why) {
    char err[2048];
    if (mw_script_reload(s->script, err, sizeof err) == 0) {
        s->reloads++;
        free(s->last_reload_error);
        s->last_reload_error = NULL;
        mw_log_info("reloaded the app (%s)", why);
    } else {
        free(s->last_reload_error);
        s->last_reload_error = strdup(err);
        mw_log_error("reload failed (%s), the previous code keeps serving: %s", why, err);
    }
}

static void start_signal(mw_server_t *s, uv_signal_t *h, int signum) {
    uv_signal_init(s->loop, h);
    h->data = s;
    uv_signal_start(h, on_signal, signum);
}

int mw_server_run(mw_server_t *s) {
    uv_timer_init(s->loop, &s->cron);
    s->cron.data = s;
    uv_timer_start(&s->cron, on_cron, CRON_INTERVAL_MS, CRON_INTERVAL_MS);
    uv_prepare_init(s->loop, &s->flush_prepare);
    s->flush_prepare.data = s;
    uv_prepare_start(&s->flush_prepare, on_flush_prepare);
    uv_check_init(s->loop, &s->flush_check);
    s->flush_check.data = s;
    uv_check_start(&s->flush_check, on_flush_check);
    uv_timer_init(s->loop, &s->shutdown_timer);
    s->shutdown_timer.data = s;
    start_signal(s, &s->sigterm, SIGTERM);
    start_signal(s, &s->sigint, SIGINT);
    start_signal(s, &s->sighup, SIGHUP);
    if (s->cfg->reload && mw_reload_start(&s->reload, s) != 0)
        mw_log_warn("cannot watch %s for changes; reload with SIGHUP", s->app_dir);
    uv_run(s->loop, UV_RUN_DEFAULT);
    return 0;
}

int mw_server_send(mw_server_t *s, uint64_t id, int binary, const void *data, size_t len) {
    mw_conn_t *c = mw_idmap_get(&s->clients, id);
    if (!c)
        return MW_ECLOSED;
    return mw_conn_send(c, binary, data, len);
}

int mw_server_close_client(mw_server_t *s, uint64_t id, uint16_t code, const char *reason,
                           size_t len) {
    mw_conn_t *c = mw_idmap_get(&s->clients, id);
    if (!c)
        return MW_ECLOSED;
    return mw_conn_close(c, code, reason, len);
}

char *mw__health_json(mw_server_t *s, size_t *len) {
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f)
        return NULL;
    fprintf(f,
            "{\"status\":\"healthy\",\"connections\":%zu,\"rooms\":%zu,\"dropped\":%llu,"
            "\"uptime_s\":%llu,\"reloads\":%llu,\"last_reload_error\":",
            s->nclients, mw_rooms_size(s->rooms), (unsigned long long)s->dropped_total,
            (unsigned long long)((wall_ms() - s->started_ms) / 1000),
            (unsigned long long)s->reloads);
    if (s->last_reload_error) {
        fputc('"', f);
        mw_json_escape(f, s->last_reload_error);
        fputc('"', f);
    } else {
        fputs("null", f);
    }
    mw_script_stats_t lua; /* Lua isolation, docs/security.md */
    mw_script_stats(s->script, &lua);
    fprintf(f,
            ",\"lua\":{\"memory\":%zu,\"memory_limit\":%zu,\"memory_full\":%s,"
            "\"memory_limit_hits\":%llu,\"refused_messages\":%llu,\"timeouts\":%llu}",
            lua.memory, lua.memory_limit, lua.memory_full ? "true" : "false",
            (unsigned long long)lua.memory_limit_hits, (unsigned long long)lua.refused_messages,
            (unsigned long long)lua.timeouts);
    fputs("}\n", f);
    fclose(f);
    *len = size;
    return buf;
}

void mw_server_free(mw_server_t *s) {
    if (!s)
        return;
    mw_reload_free(s->reload);
    mw_idmap_free(&s->clients);
    mw_rooms_free(s->rooms);
    mw_ws_encoder_free(s->encoder);
    free(s->last_reload_error);
    free(s->readbuf);
    free(s);
}
