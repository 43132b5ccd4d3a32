/*
 * supervisor.c - the master process of `workers = N` (see supervisor.h).
 *
 * The master runs no app: it binds the listeners as mw_server_listen
 * would (same order, same addresses), spawns the workers with the
 * listeners as file descriptors 3.. and the shared dicts' memfds after
 * them (made here, once, so a restarted worker finds the same data), then
 * one end of a socketpair to the hub (hubd.h: the messages workers
 * exchange), then the stats zone's memfd (stats.h: each worker's numbers,
 * for /health and /metrics), and then only waits and forwards. Its loop
 * has five kinds of
 * handles: a uv_process_t per worker, the signals it passes on, a restart
 * timer per worker waiting for its backoff, the hub's sockets, and the
 * timer of a reload round (the workers' outcomes of one reload, logged
 * once per distinct outcome).
 *
 * A boot failure is fatal, a crash after serving is not (nginx and
 * gunicorn do the same): each worker gets the write end of a pipe of its
 * own (MW_READY_FD) and writes one byte once it listens and its app runs.
 * When a worker exits, the supervisor reads that pipe: the first worker of
 * a slot that exits without the byte could not start (a bad app, a bad
 * TLS file...), so the supervisor stops the others and exits with its
 * status, the worker's error already on stderr. A worker that served and
 * then exits, or a restarted one that cannot start, is restarted with
 * backoff while the others keep serving.
 */
#include "supervisor.h"
#include "errors.h"
#include "hubd.h"
#include "log.h"
#include "shdict.h"
#include "shlimits.h"
#include "stats.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

extern char **environ;

/* Restart backoff: from RESTART_MIN_MS, doubling to RESTART_MAX_MS; a
 * worker that ran RESTART_RESET_MS starts over from the minimum. */
#define RESTART_MIN_MS 100
#define RESTART_MAX_MS 5000
#define RESTART_RESET_MS 10000
#define MAX_WORKERS MW_HUBD_MAX_WORKERS
/* A reload round is logged when every worker expected has reported, or
 * this long after the first report (a worker that never reloaded). */
#define ROUND_MS 10000

typedef struct supervisor supervisor_t;

typedef struct {
    supervisor_t *sup;
    int id; /* 1..N */
    uv_process_t proc;
    int running;
    uint64_t started_ms;
    uint64_t backoff_ms;
    uv_timer_t restart;
    int ready_fd; /* read end of its ready pipe, -1 when none */
    int served;   /* this slot's worker once said it was ready */
} worker_t;

/* The workers' reload outcomes of one round (a SIGHUP, or a file change
 * every worker sees), logged as one line per distinct outcome; and their
 * notes (a restart-only option changed, the TLS certificate reread or
 * not: each a level digit and a text, NUL-terminated one after the other),
 * logged the same way, before the outcomes. */
typedef struct {
    int open;
    uint64_t expect, got; /* worker slots, a bit each */
    char *outcome[MAX_WORKERS];
    size_t len[MAX_WORKERS];
    char *notes[MAX_WORKERS];
    size_t notes_len[MAX_WORKERS];
    uv_timer_t timer;
} round_t;

struct supervisor {
    uv_loop_t *loop;
    char **argv;
    int fds[MW_MAX_LISTENERS];
    int nfds;
    mw_shdicts_t *dicts; /* shared_dicts, on memfds every worker maps */
    int ndicts;
    mw_hubd_t *hub;    /* the workers' messages to each other */
    mw_stats_t *stats; /* the workers' numbers (stats.h), on a memfd */
    int stats_fd;
    mw_shlimits_t *limits; /* the connection counts of every worker (shlimits.h) */
    int limits_fd;
    int nworkers;
    worker_t workers[MAX_WORKERS];
    int stopping;
    int alive;
    int status; /* the exit status: a worker's that could not start */
    uv_signal_t sigterm, sigint, sighup;
    round_t round;
};

int mw_worker_id(void) {
    const char *v = getenv("MW_WORKER");
    int id = v ? atoi(v) : 0;
    return id > 0 ? id : 0;
}

int mw_worker_watch_parent(void) {
    if (!mw_worker_id())
        return 0;
    /* The supervisor gone (even killed with SIGKILL), its workers stop
     * gracefully instead of holding the port as orphans. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0)
        return -1;
    return getppid() == 1 ? -1 : 0; /* it died before the prctl */
}

/* env_fds reads the comma-separated fds of env var name (at most max). */
static int env_fds(const char *name, int *fds, int max) {
    const char *v = getenv(name);
    if (!v || !mw_worker_id())
        return 0;
    int n = 0;
    while (*v && n < max) {
        char *end;
        long fd = strtol(v, &end, 10);
        if (end == v || fd < 3)
            break;
        fds[n++] = (int)fd;
        v = *end == ',' ? end + 1 : end;
    }
    return n;
}

int mw_worker_listen_fds(int *fds) {
    return env_fds("MW_LISTEN_FDS", fds, MW_MAX_LISTENERS);
}

int mw_worker_shdict_fds(int *fds, int max) {
    return env_fds("MW_SHDICT_FDS", fds, max);
}

int mw_worker_limits_fd(void) {
    int fd;
    return env_fds("MW_LIMITS_FD", &fd, 1) == 1 ? fd : -1;
}

int mw_worker_stats_fd(void) {
    int fd;
    return env_fds("MW_STATS_FD", &fd, 1) == 1 ? fd : -1;
}

void mw_worker_ready(void) {
    int fd;
    if (env_fds("MW_READY_FD", &fd, 1) != 1)
        return;
    char b = 'r';
    ssize_t n;
    do
        n = write(fd, &b, 1);
    while (n < 0 && errno == EINTR);
    close(fd);
    unsetenv("MW_READY_FD"); /* once */
}

/* was_ready tells whether worker w wrote its ready byte, and closes its
 * end of the pipe: the byte stays in the pipe after the worker exits. */
static int was_ready(worker_t *w) {
    if (w->ready_fd < 0)
        return 0;
    char b;
    ssize_t n;
    do
        n = read(w->ready_fd, &b, 1);
    while (n < 0 && errno == EINTR);
    close(w->ready_fd);
    w->ready_fd = -1;
    return n == 1;
}

/* bind_listener binds and listens on host:port as listen_on in server.c
 * does. Returns 0 with *fd set, MW_ECONFIG-like 2 for a bad host, 1 when
 * the address cannot be bound. */
static int bind_listener(const char *host, int port, int *fd) {
    struct sockaddr_storage addr;
    int v6 = strchr(host, ':') != NULL;
    int rc = v6 ? uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr)
                : uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
    if (rc != 0) {
        mw_log_error("\"%s\" is not an IPv4 or IPv6 address", host);
        return 2;
    }
    int s = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int on = 1;
    if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
        bind(s, (struct sockaddr *)&addr,
             v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in)) != 0 ||
        listen(s, 1024) != 0) {
        mw_log_error("cannot listen on %s port %d: %s", host, port, strerror(errno));
        if (s >= 0)
            close(s);
        return 1;
    }
    *fd = s;
    return 0;
}

/* bind_all binds what mw_server_listen opens, in its order. */
static int bind_all(supervisor_t *sup, const mw_config_t *cfg) {
    int rc = bind_listener(cfg->host, cfg->port, &sup->fds[sup->nfds]);
    if (rc == 0)
        sup->nfds++;
    if (rc == 0 && cfg->tls_cert[0] && cfg->tls_port >= 0 &&
        (rc = bind_listener(cfg->host, cfg->tls_port, &sup->fds[sup->nfds])) == 0)
        sup->nfds++;
    if (rc == 0 && cfg->api_port > 0 && cfg->api_key[0] &&
        (rc = bind_listener(cfg->api_host, cfg->api_port, &sup->fds[sup->nfds])) == 0)
        sup->nfds++;
    return rc;
}

static int spawn_worker(worker_t *w);

/* worker_list writes the workers of mask as "worker 2" or "workers 1-3, 5". */
static void worker_list(char *buf, size_t size, uint64_t mask) {
    int n = 0;
    for (int i = 0; i < MAX_WORKERS; i++)
        n += (mask >> i) & 1;
    size_t off = (size_t)snprintf(buf, size, "%s", n == 1 ? "worker " : "workers ");
    int first = 1;
    for (int i = 0; i < MAX_WORKERS && off < size; i++) {
        if (!((mask >> i) & 1))
            continue;
        int j = i;
        while (j + 1 < MAX_WORKERS && ((mask >> (j + 1)) & 1))
            j++;
        if (j == i)
            off += (size_t)snprintf(buf + off, size - off, "%s%d", first ? "" : ", ", i + 1);
        else
            off +=
                (size_t)snprintf(buf + off, size - off, "%s%d-%d", first ? "" : ", ", i + 1, j + 1);
        first = 0;
        i = j;
    }
}

/* log_outcome logs one outcome ("+why", "-why\nerror") for the workers of
 * mask. */
static void log_outcome(uint64_t mask, const char *text, size_t len) {
    char who[512];
    worker_list(who, sizeof who, mask);
    if (len > 0 && text[0] == '+') {
        mw_log_info("reloaded the app on %s (%.*s)", who, (int)(len - 1), text + 1);
        return;
    }
    const char *nl = len > 0 ? memchr(text, '\n', len) : NULL;
    const char *why = len > 0 ? text + 1 : "";
    int why_len = nl ? (int)(nl - why) : (len > 0 ? (int)(len - 1) : 0);
    const char *err = nl ? nl + 1 : "";
    int err_len = nl ? (int)(text + len - err) : 0;
    mw_log_error("reload failed on %s (%.*s), the previous code keeps serving: %.*s", who, why_len,
                 why, err_len, err);
}

/* has_note tells whether the notes of length len hold note. */
static int has_note(const char *notes, size_t len, const char *note) {
    for (size_t off = 0; off < len; off += strlen(notes + off) + 1)
        if (strcmp(notes + off, note) == 0)
            return 1;
    return 0;
}

/* flush_notes logs each distinct note of the round once, naming the
 * workers that had it. */
static void flush_notes(round_t *r) {
    for (int i = 0; i < MAX_WORKERS; i++) {
        for (size_t off = 0; r->notes[i] && off < r->notes_len[i];) {
            const char *note = r->notes[i] + off;
            size_t nlen = strlen(note);
            int seen = has_note(r->notes[i], off, note);
            for (int j = 0; j < i && !seen; j++)
                seen = r->notes[j] && has_note(r->notes[j], r->notes_len[j], note);
            uint64_t mask = 0;
            for (int j = i; j < MAX_WORKERS && !seen; j++)
                if (r->notes[j] && has_note(r->notes[j], r->notes_len[j], note))
                    mask |= (uint64_t)1 << j;
            if (!seen && nlen > 0) {
                char who[512];
                worker_list(who, sizeof who, mask);
                int level = note[0] - '0';
                mw_log(level >= MW_LOG_DEBUG && level <= MW_LOG_ERROR ? (mw_log_level)level
                                                                      : MW_LOG_INFO,
                       "%s (%s)", note + 1, who);
            }
            off += nlen + 1;
        }
    }
    for (int i = 0; i < MAX_WORKERS; i++) {
        free(r->notes[i]);
        r->notes[i] = NULL;
        r->notes_len[i] = 0;
    }
}

/* round_flush logs the round's notes and outcomes, one line per distinct
 * one naming every worker that had it, and closes the round. */
static void round_flush(supervisor_t *sup) {
    round_t *r = &sup->round;
    flush_notes(r);
    uint64_t left = r->got;
    for (int i = 0; i < MAX_WORKERS && left; i++) {
        if (!((left >> i) & 1))
            continue;
        uint64_t same = 0;
        for (int j = i; j < MAX_WORKERS; j++)
            if (((left >> j) & 1) && r->len[j] == r->len[i] &&
                memcmp(r->outcome[j], r->outcome[i], r->len[i]) == 0)
                same |= (uint64_t)1 << j;
        log_outcome(same, r->outcome[i], r->len[i]);
        left &= ~same;
    }
    for (int i = 0; i < MAX_WORKERS; i++) {
        free(r->outcome[i]);
        r->outcome[i] = NULL;
    }
    r->open = 0;
    r->expect = r->got = 0;
    uv_timer_stop(&r->timer);
}

static void on_round_timeout(uv_timer_t *t) {
    round_flush(t->data);
}

/* round_check logs the round once every worker expected has reported. */
static void round_check(supervisor_t *sup) {
    round_t *r = &sup->round;
    if (r->open && (r->got & r->expect) == r->expect)
        round_flush(sup);
}

/* round_open starts a round expecting the workers of mask. */
static void round_open(supervisor_t *sup, uint64_t mask) {
    round_t *r = &sup->round;
    r->open = 1;
    r->expect = mask;
    uv_timer_start(&r->timer, on_round_timeout, ROUND_MS, 0);
}

/* open_running opens a round expecting every running worker, unless one
 * is open. */
static void open_running(supervisor_t *sup) {
    if (sup->round.open)
        return;
    uint64_t running = 0;
    for (int i = 0; i < sup->nworkers; i++)
        if (sup->workers[i].running)
            running |= (uint64_t)1 << i;
    round_open(sup, running);
}

/* on_note keeps a worker's note for its round (it comes before the
 * worker's outcome of the same reload). */
static void on_note(supervisor_t *sup, int slot, const char *text, size_t len) {
    round_t *r = &sup->round;
    if (len == 0 || memchr(text, '\0', len))
        return;
    open_running(sup);
    char *more = realloc(r->notes[slot], r->notes_len[slot] + len + 1);
    if (!more) {
        mw_log_warn("worker %d: %.*s", slot + 1, (int)len - 1, text + 1);
        return;
    }
    memcpy(more + r->notes_len[slot], text, len);
    more[r->notes_len[slot] + len] = '\0';
    r->notes[slot] = more;
    r->notes_len[slot] += len + 1;
}

/* on_report takes a worker's reload outcome or note (over the hub):
 * outside a round (a file change every worker sees), the first opens one
 * expecting every running worker. */
static void on_report(void *data, int worker, const char *what, size_t what_len, const char *text,
                      size_t len) {
    supervisor_t *sup = data;
    round_t *r = &sup->round;
    int slot = worker - 1;
    if (slot < 0 || slot >= MAX_WORKERS)
        return;
    if (what_len == 4 && memcmp(what, "note", 4) == 0) {
        on_note(sup, slot, text, len);
        return;
    }
    if (what_len != 6 || memcmp(what, "reload", 6) != 0)
        return;
    char *copy = malloc(len + 1);
    if (!copy) {
        log_outcome((uint64_t)1 << slot, text, len);
        return;
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    open_running(sup);
    free(r->outcome[slot]); /* it reloaded again: its latest outcome */
    r->outcome[slot] = copy;
    r->len[slot] = len;
    r->got |= (uint64_t)1 << slot;
    r->expect |= (uint64_t)1 << slot;
    round_check(sup);
}

static void on_restart_closed(uv_handle_t *h) {
    (void)h;
}

static void on_restart(uv_timer_t *t) {
    worker_t *w = t->data;
    if (w->sup->stopping)
        return;
    if (spawn_worker(w) != 0) {
        w->backoff_ms = w->backoff_ms * 2 > RESTART_MAX_MS ? RESTART_MAX_MS : w->backoff_ms * 2;
        uv_timer_start(&w->restart, on_restart, w->backoff_ms, 0);
    }
}

static void stop_all(supervisor_t *sup, int signum);

/* The last worker's handle closed while stopping: close the rest. Workers
 * that exit in the same loop iteration (one SIGCHLD reaps them all) each
 * get here with alive already 0; only the first closes. */
static void on_proc_closed(uv_handle_t *h) {
    worker_t *w = h->data;
    supervisor_t *sup = w->sup;
    if (sup->stopping && sup->alive == 0 && !uv_is_closing((uv_handle_t *)&sup->sigterm)) {
        uv_signal_stop(&sup->sigterm);
        uv_signal_stop(&sup->sigint);
        uv_signal_stop(&sup->sighup);
        uv_close((uv_handle_t *)&sup->sigterm, NULL);
        uv_close((uv_handle_t *)&sup->sigint, NULL);
        uv_close((uv_handle_t *)&sup->sighup, NULL);
        for (int i = 0; i < sup->nworkers; i++)
            if (!uv_is_closing((uv_handle_t *)&sup->workers[i].restart))
                uv_close((uv_handle_t *)&sup->workers[i].restart, on_restart_closed);
        if (sup->round.open)
            round_flush(sup);
        if (!uv_is_closing((uv_handle_t *)&sup->round.timer))
            uv_close((uv_handle_t *)&sup->round.timer, NULL);
        mw_hubd_free(sup->hub);
        sup->hub = NULL;
    }
}

static void on_worker_exit(uv_process_t *p, int64_t status, int signum) {
    worker_t *w = p->data;
    supervisor_t *sup = w->sup;
    int ready = was_ready(w);
    w->running = 0;
    sup->alive--;
    mw_hubd_detach(sup->hub, w->id - 1);
    if (sup->round.open) {
        /* a reload round does not wait for a worker that is gone */
        sup->round.expect &= ~((uint64_t)1 << (w->id - 1));
        round_check(sup);
    }
    if (sup->stats)
        mw_stats_exited(sup->stats, w->id); /* its last snapshot: counters only */
    if (sup->limits)
        mw_shlimits_clear(sup->limits, w->id); /* its connections are gone with it */
    uv_close((uv_handle_t *)p, on_proc_closed);
    if (sup->stopping) {
        mw_log_info("worker %d (pid %d) stopped", w->id, p->pid);
        return;
    }
    if (!ready && !w->served) {
        /* it never started: the next one would fail the same way */
        sup->status = !signum && status > 0 && status < 126 ? (int)status : 1;
        if (signum)
            mw_log_error("worker %d (pid %d) killed by signal %d before it could serve; stopping",
                         w->id, p->pid, signum);
        else
            mw_log_error("worker %d (pid %d) could not start (exit status %lld); stopping", w->id,
                         p->pid, (long long)status);
        sup->stopping = 1;
        stop_all(sup, SIGTERM);
        return;
    }
    w->served = 1;
    uint64_t ran = uv_now(sup->loop) - w->started_ms;
    if (ran >= RESTART_RESET_MS)
        w->backoff_ms = RESTART_MIN_MS;
    if (signum)
        mw_log_error("worker %d (pid %d) killed by signal %d; restarting it in %llu ms", w->id,
                     p->pid, signum, (unsigned long long)w->backoff_ms);
    else
        mw_log_error("worker %d (pid %d) exited with status %lld; restarting it in %llu ms", w->id,
                     p->pid, (long long)status, (unsigned long long)w->backoff_ms);
    uv_timer_start(&w->restart, on_restart, w->backoff_ms, 0);
    w->backoff_ms = w->backoff_ms * 2 > RESTART_MAX_MS ? RESTART_MAX_MS : w->backoff_ms * 2;
}

/* spawn_worker starts worker w: this binary with the master's arguments,
 * MW_WORKER, MW_LISTEN_FDS, MW_SHDICT_FDS, MW_HUB_FD, MW_STATS_FD and MW_LIMITS_FD in
 * its environment, the listeners as fds 3.., then the shared dicts'
 * memfds, then its end of the hub, then the stats zone, then the
 * connection counts. */
static int spawn_worker(worker_t *w) {
    supervisor_t *sup = w->sup;
    size_t nenv = 0;
    while (environ[nenv])
        nenv++;
    /* the parent's, then MW_WORKER, MW_LISTEN_FDS, MW_SHDICT_FDS, MW_HUB_FD,
     * MW_STATS_FD, MW_LIMITS_FD, MW_READY_FD and the NULL */
    char **env = calloc(nenv + 8, sizeof *env);
    if (!env)
        return UV_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < nenv; i++)
        if (strncmp(environ[i], "MW_WORKER=", 10) && strncmp(environ[i], "MW_LISTEN_FDS=", 14) &&
            strncmp(environ[i], "MW_SHDICT_FDS=", 14) && strncmp(environ[i], "MW_HUB_FD=", 10) &&
            strncmp(environ[i], "MW_STATS_FD=", 12) && strncmp(environ[i], "MW_LIMITS_FD=", 13) &&
            strncmp(environ[i], "MW_READY_FD=", 12))
            env[k++] = environ[i];
    int hub_fd = -1;
    if (mw_hubd_attach(sup->hub, w->id - 1, &hub_fd) != 0) {
        free(env);
        mw_log_error("cannot start worker %d: no socket to the hub", w->id);
        return MW_EIO;
    }
    char idvar[32], fdvar[64], hubvar[32], dictvar[32 + 12 * MW_CONFIG_MAX_SUBPROTOCOLS];
    snprintf(idvar, sizeof idvar, "MW_WORKER=%d", w->id);
    int off = snprintf(fdvar, sizeof fdvar, "MW_LISTEN_FDS=");
    for (int i = 0; i < sup->nfds; i++)
        off += snprintf(fdvar + off, sizeof fdvar - (size_t)off, "%s%d", i ? "," : "", 3 + i);
    env[k++] = idvar;
    env[k++] = fdvar;
    if (sup->ndicts > 0) {
        off = snprintf(dictvar, sizeof dictvar, "MW_SHDICT_FDS=");
        for (int i = 0; i < sup->ndicts; i++)
            off += snprintf(dictvar + off, sizeof dictvar - (size_t)off, "%s%d", i ? "," : "",
                            3 + sup->nfds + i);
        env[k++] = dictvar;
    }
    int hub_at = 3 + sup->nfds + sup->ndicts;
    snprintf(hubvar, sizeof hubvar, "MW_HUB_FD=%d", hub_at);
    env[k++] = hubvar;
    int stats_at = hub_at + 1;
    char statsvar[32];
    snprintf(statsvar, sizeof statsvar, "MW_STATS_FD=%d", stats_at);
    if (sup->stats)
        env[k++] = statsvar;
    int limits_at = sup->stats ? stats_at + 1 : stats_at;
    char limitsvar[32];
    snprintf(limitsvar, sizeof limitsvar, "MW_LIMITS_FD=%d", limits_at);
    if (sup->limits)
        env[k++] = limitsvar;
    int ready_at = sup->limits ? limits_at + 1 : limits_at;
    int ready[2] = {-1, -1};
    char readyvar[32];
    snprintf(readyvar, sizeof readyvar, "MW_READY_FD=%d", ready_at);
    if (w->ready_fd >= 0)
        close(w->ready_fd);
    w->ready_fd = -1;
    if (pipe2(ready, O_CLOEXEC | O_NONBLOCK) == 0)
        env[k++] = readyvar;
    else /* without it, the worker counts as ready when it exits */
        w->served = 1;
    env[k] = NULL;

    /* stdin/out/err, the listeners, the dicts (a list option: at most
     * MW_CONFIG_MAX_SUBPROTOCOLS), the hub, stats, limits, ready */
    uv_stdio_container_t stdio[3 + MW_MAX_LISTENERS + MW_CONFIG_MAX_SUBPROTOCOLS + 4];
    for (int i = 0; i < 3; i++) {
        stdio[i].flags = UV_INHERIT_FD;
        stdio[i].data.fd = i;
    }
    for (int i = 0; i < sup->nfds; i++) {
        stdio[3 + i].flags = UV_INHERIT_FD;
        stdio[3 + i].data.fd = sup->fds[i];
    }
    for (int i = 0; i < sup->ndicts; i++) {
        stdio[3 + sup->nfds + i].flags = UV_INHERIT_FD;
        stdio[3 + sup->nfds + i].data.fd = mw_shdicts_fd(sup->dicts, (size_t)i);
    }
    stdio[hub_at].flags = UV_INHERIT_FD;
    stdio[hub_at].data.fd = hub_fd;
    stdio[stats_at].flags = UV_INHERIT_FD;
    stdio[stats_at].data.fd = sup->stats_fd;
    stdio[limits_at].flags = UV_INHERIT_FD;
    stdio[limits_at].data.fd = sup->limits_fd;
    stdio[ready_at].flags = UV_INHERIT_FD; /* after the limits': it may take their slot */
    stdio[ready_at].data.fd = ready[1];
    uv_process_options_t opts = {
        .exit_cb = on_worker_exit,
        .file = "/proc/self/exe",
        .args = sup->argv,
        .env = env,
        .stdio_count = ready[1] >= 0 ? ready_at + 1 : ready_at,
        .stdio = stdio,
    };
    w->proc.data = w;
    int rc = uv_spawn(sup->loop, &w->proc, &opts);
    free(env);
    if (ready[1] >= 0)
        close(ready[1]); /* the worker's end: ours is ready[0] */
    if (rc == 0)
        w->ready_fd = ready[0];
    else if (ready[0] >= 0)
        close(ready[0]);
    mw_hubd_spawned(sup->hub, w->id - 1);
    if (rc != 0) {
        mw_hubd_detach(sup->hub, w->id - 1);
        mw_log_error("cannot start worker %d: %s", w->id, uv_strerror(rc));
        uv_close((uv_handle_t *)&w->proc, NULL);
        return rc;
    }
    w->running = 1;
    w->started_ms = uv_now(sup->loop);
    if (sup->stats)
        mw_stats_spawned(sup->stats, w->id, w->proc.pid);
    sup->alive++;
    mw_log_info("worker %d started (pid %d)", w->id, w->proc.pid);
    return 0;
}

/* stop_all passes signum (SIGTERM) on to every running worker and stops
 * restarting them: the supervisor exits after the last. */
static void stop_all(supervisor_t *sup, int signum) {
    for (int i = 0; i < sup->nworkers; i++) {
        worker_t *w = &sup->workers[i];
        uv_timer_stop(&w->restart);
        if (w->running)
            uv_process_kill(&w->proc, signum);
    }
}

static void on_signal(uv_signal_t *h, int signum) {
    supervisor_t *sup = h->data;
    if (signum == SIGHUP) {
        /* Over the hub, not by signal: a worker reads it once it can (a
         * SIGHUP before its handler is installed would kill it). */
        mw_log_info("SIGHUP: reloading every worker");
        if (sup->round.open)
            round_flush(sup); /* what came before this SIGHUP */
        uint64_t asked = 0;
        for (int i = 0; i < sup->nworkers; i++) {
            if (!sup->workers[i].running)
                continue;
            if (mw_hubd_reload(sup->hub, i) == 0)
                asked |= (uint64_t)1 << i;
            else
                mw_log_error("worker %d cannot be asked to reload", i + 1);
        }
        if (asked)
            round_open(sup, asked);
        return;
    }
    if (!sup->stopping)
        mw_log_info("%s: stopping %d workers", signum == SIGTERM ? "SIGTERM" : "SIGINT",
                    sup->alive);
    sup->stopping = 1;
    stop_all(sup, SIGTERM);
    if (sup->alive == 0)
        on_proc_closed((uv_handle_t *)&sup->workers[0].proc);
}

int mw_supervisor_run(const mw_config_t *cfg, int nworkers, char **argv) {
    static supervisor_t sup; /* one per process, and its handles outlive this frame */
    memset(&sup, 0, sizeof sup);
    sup.loop = uv_default_loop();
    sup.argv = argv;
    sup.nworkers = nworkers > MAX_WORKERS ? MAX_WORKERS : nworkers;
    int rc = bind_all(&sup, cfg);
    if (rc != 0) {
        for (int i = 0; i < sup.nfds; i++)
            close(sup.fds[i]);
        return rc;
    }
    /* The shared dicts, made once here: every worker, restarted ones too,
     * maps these same zones. */
    rc = mw_shdicts_create(&sup.dicts, cfg->shared_dicts, cfg->nshared_dicts);
    if (rc != 0) {
        mw_log_error("cannot map shared_dicts: %s", mw_strerror(rc));
        for (int i = 0; i < sup.nfds; i++)
            close(sup.fds[i]);
        return 1;
    }
    sup.ndicts = cfg->nshared_dicts;
    /* The stats zone: without it every worker answers /health and
     * /metrics with its own numbers only, so it is not fatal. */
    sup.stats_fd = -1;
    rc = mw_stats_create(&sup.stats, sup.nworkers, MW_STATS_TEXT_MAX, &sup.stats_fd);
    if (rc != 0) {
        mw_log_warn("cannot map the stats zone (%s): /health and /metrics show one worker each",
                    mw_strerror(rc));
        rc = 0;
    }
    /* The connection counts: without them each worker applies the
     * connection limits to its own connections, so it is not fatal. */
    sup.limits_fd = -1;
    rc = mw_shlimits_create(&sup.limits, sup.nworkers, &sup.limits_fd);
    if (rc != 0) {
        mw_log_warn("cannot map the connection counts (%s): each worker applies the connection "
                    "limits alone",
                    mw_strerror(rc));
        rc = 0;
    }
    if (mw_hubd_create(&sup.hub, sup.loop) != 0) {
        mw_log_error("cannot make the workers' hub: out of memory");
        for (int i = 0; i < sup.nfds; i++)
            close(sup.fds[i]);
        mw_shdicts_free(sup.dicts);
        mw_shlimits_free(sup.limits);
        return 1;
    }
    mw_hubd_on_report(sup.hub, on_report, &sup);
    uv_timer_init(sup.loop, &sup.round.timer);
    sup.round.timer.data = &sup;
    mw_log_info("supervisor (pid %d): %d workers", (int)getpid(), sup.nworkers);
    uv_signal_t *sigs[] = {&sup.sigterm, &sup.sigint, &sup.sighup};
    int nums[] = {SIGTERM, SIGINT, SIGHUP};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(sup.loop, sigs[i]);
        sigs[i]->data = &sup;
        uv_signal_start(sigs[i], on_signal, nums[i]);
    }
    for (int i = 0; i < sup.nworkers; i++) {
        worker_t *w = &sup.workers[i];
        w->sup = &sup;
        w->id = i + 1;
        w->backoff_ms = RESTART_MIN_MS;
        w->ready_fd = -1;
        uv_timer_init(sup.loop, &w->restart);
        w->restart.data = w;
        w->proc.data = w;
        if (spawn_worker(w) != 0 && sup.alive == 0) {
            rc = 1;
            sup.stopping = 1;
            stop_all(&sup, SIGTERM);
            break;
        }
    }
    if (rc != 0) {
        uv_close((uv_handle_t *)&sup.round.timer, NULL);
        for (int i = 0; i < 3; i++)
            uv_close((uv_handle_t *)sigs[i], NULL);
        for (int i = 0; i < sup.nworkers; i++)
            if (sup.workers[i].sup)
                uv_close((uv_handle_t *)&sup.workers[i].restart, NULL);
    }
    uv_run(sup.loop, UV_RUN_DEFAULT);
    if (rc == 0)
        rc = sup.status;
    for (int i = 0; i < sup.nworkers; i++)
        if (sup.workers[i].ready_fd >= 0)
            close(sup.workers[i].ready_fd);
    for (int i = 0; i < sup.nfds; i++)
        close(sup.fds[i]);
    mw_shdicts_free(sup.dicts);
    mw_stats_free(sup.stats);
    if (sup.stats_fd >= 0)
        close(sup.stats_fd);
    mw_shlimits_free(sup.limits);
    if (sup.limits_fd >= 0)
        close(sup.limits_fd);
    uv_loop_close(sup.loop);
    if (rc == 0)
        mw_log_info("supervisor: every worker stopped");
    return rc;
}
