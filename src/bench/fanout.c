/*
 * fanout.c - the fan-out workload: N subscribers in one room, K publishers
 * (which do not subscribe). Measures deliveries/s, the latency from publish
 * to each delivery, and counts lost and duplicate deliveries.
 *
 * Every published message gets a global sequence number. A record per
 * message (send time, deliveries so far, publisher) and one bit per
 * (subscriber, message) are all the bookkeeping: a delivery is a bit test,
 * an increment and a histogram sample. The bitmaps grow by doubling, so
 * their total size is about deliveries / 8 bytes.
 *
 * Pacing: with --rate R a 1 ms timer publishes what is due, round robin over
 * the publishers (if the server falls more than 100 ms behind, the backlog
 * is skipped and counted instead of being burst later). With --rate 0 each
 * publisher keeps --window messages "open": a message closes once every
 * subscriber got it, or after --stall-timeout, and then the publisher sends
 * the next one.
 *
 * Lost deliveries = messages published x subscribers - distinct deliveries,
 * counted after a bounded drain, over every message ever published (warm-up
 * included). Rates and latencies cover the measured window only.
 *
 * The emit mode is the same workload with other publishers: HTTP/1.1
 * keep-alive connections that POST each message to the server API
 * (moonwire's /api/emit, --api-url) as an event, which a subscriber of the
 * app broadcasts to the room. Requests are pipelined within the same
 * window; every response must be a 200 saying that a subscriber took the
 * event ("subscribers": 0 is an error: the app has no subscriber on that
 * channel, and every delivery would be lost).
 *
 * Across nodes (--url2): the odd subscribers connect to a second node of
 * the same app (same path), the even ones and the publishers to --url, so
 * half of every delivery crosses from the publishing node to the other.
 *
 * With --server-pid, the server is measured as its processes (the pid and
 * its descendants: moonwire's supervisor and workers, procs.c): which of
 * them serves each connection (read once every subscriber is in the
 * room), and their CPU time at both ends of the measured window, so that
 * deliveries per server CPU-second compare servers with any number of
 * processes.
 *
 * Socket.IO (--engineio 1): each connection is a Socket.IO client over a
 * bare WebSocket (the URL's path is /socket.io/?EIO=4&transport=websocket):
 * the server opens with "0{...}", the client sends "40" (connect to the
 * main namespace) and counts as open once "40{...}" comes back; the
 * server's pings ("2") are answered ("3"). The templates are then Socket.IO
 * events ("42[...]"), and every other packet goes through as in fanout.
 */
#include "bench.h"
#include "tpl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { P_CONNECT, P_SUBSCRIBE, P_WARMUP, P_MEASURE, P_DRAIN, P_DONE };

typedef struct {
    uint64_t t_send; /* ns relative to net.t_base */
    uint32_t count;  /* distinct deliveries */
    uint16_t pub;
    uint8_t closed; /* 1 delivered to all, 2 given up (stalled) */
} fmsg_t;

typedef struct {
    uint64_t *bits;
    size_t nwords;
    int subscribed;
} fsub_t;

typedef struct {
    mw_bench_t *b;
    mw_bench_tpl_t sub_tpl, pub_tpl;
    mw_bench_client_t **clients; /* subscribers first, then publishers */
    fsub_t *subs;
    uint32_t *pub_open; /* per publisher: messages not closed */
    size_t nsub, npub, n, nopen, nsubscribed, nfailed;
    fmsg_t *msgs;
    size_t nmsgs, msgs_cap;
    size_t scan_from; /* first message that may still be open */
    uint64_t closed_all, stalled;
    uint64_t seq_t0, seq_t1; /* messages published in the window */
    uint64_t t0, t1, t_start, t_connect;
    double connect_s;
    int phase, rate_mode;
    uint64_t due_sent, skipped;
    size_t rr;
    uint64_t unique, dups, rx_window, other, pub_replies, unknown;
    int emit;               /* the emit mode: HTTP publishers */
    struct sockaddr_in api; /* emit: where the POSTs go */
    uint64_t responses, responses_bad, unsubscribed;
    size_t hint;             /* where replies carry the payload */
    struct sockaddr_in url2; /* --url2: the odd subscribers' node */
    size_t nsub2;            /* subscribers connected to it */
    int engineio;
    mw_bench_tpl_t eio_connect, eio_pong; /* "40", "3" */
    uint8_t *eio_ready;                   /* per client: "40{...}" came back */
    /* --server-pid: the processes and the connections each serves (read
     * when every subscriber is in), their CPU at the window's ends. */
    mw_bench_proc_t sp[MW_BENCH_MAX_PROCS], cpu0[MW_BENCH_MAX_PROCS], cpu1[MW_BENCH_MAX_PROCS];
    int nsp, ncpu0, ncpu1, split_ok;
    size_t sp_subs[MW_BENCH_MAX_PROCS], sp_pubs[MW_BENCH_MAX_PROCS], sp_unmatched[2];
    uv_timer_t timer, tick;
} fanout_t;

static fanout_t F;

static uint64_t now_rel(void) {
    return uv_hrtime() - F.b->net.t_base;
}

/* The server's CPU time at the start (0) or the end (1) of the window. */
static void server_cpu(int end) {
    if (F.b->o.server_pid <= 0)
        return;
    if (end)
        F.ncpu1 = mw_bench_procs_read(F.b->o.server_pid, F.cpu1, MW_BENCH_MAX_PROCS, 0);
    else
        F.ncpu0 = mw_bench_procs_read(F.b->o.server_pid, F.cpu0, MW_BENCH_MAX_PROCS, 0);
}

static void finish(void) {
    if (F.phase == P_MEASURE) {
        F.t1 = now_rel();
        F.seq_t1 = F.nmsgs;
        mw_bench_cpu_end(F.b);
        server_cpu(1);
    }
    F.phase = P_DONE;
    uv_timer_stop(&F.timer);
    uv_timer_stop(&F.tick);
    uv_stop(F.b->loop);
}

static int publish(size_t p, uint64_t now) {
    mw_bench_client_t *c = F.clients[F.nsub + p];
    if (!c)
        return -1;
    if (F.nmsgs == F.msgs_cap) {
        size_t cap = F.msgs_cap ? F.msgs_cap * 2 : 65536;
        fmsg_t *nm = realloc(F.msgs, cap * sizeof(*nm));
        if (!nm) {
            mw_bench_error(F.b, "out of memory");
            finish();
            return -1;
        }
        F.msgs = nm;
        F.msgs_cap = cap;
    }
    char *dst = mw_bench_client_reserve(c, F.pub_tpl.frame_len);
    if (!dst)
        return -1;
    uint64_t seq = F.nmsgs++;
    F.msgs[seq] = (fmsg_t){now, 0, (uint16_t)p, 0};
    mw_bench_tpl_fill(&F.pub_tpl, dst, seq, now);
    if (F.emit)
        mw_bench_client_requested(c, 1);
    F.pub_open[p]++;
    return 0;
}

static void refill(size_t p, uint64_t now) {
    while (F.pub_open[p] < (uint32_t)F.b->o.window && publish(p, now) == 0) {
    }
}

static int publishing(void) {
    return F.phase == P_WARMUP || F.phase == P_MEASURE;
}

static int all_closed(void) {
    return F.closed_all + F.stalled == F.nmsgs;
}

static void close_msg(fmsg_t *m, int how, uint64_t now) {
    m->closed = (uint8_t)how;
    if (how == 1)
        F.closed_all++;
    else
        F.stalled++;
    F.pub_open[m->pub]--;
    if (!F.rate_mode && publishing())
        refill(m->pub, now);
}

/* Runs every millisecond: publishes what --rate says is due, and gives up on
 * messages that stalled. */
static void on_tick(uv_timer_t *t) {
    (void)t;
    uint64_t now = now_rel();
    uint64_t limit = (uint64_t)(F.b->o.stall_timeout * 1e9);
    while (F.scan_from < F.nmsgs) {
        fmsg_t *m = &F.msgs[F.scan_from];
        if (!m->closed) {
            if (now - m->t_send < limit)
                break;
            close_msg(m, 2, now);
        }
        F.scan_from++;
    }
    if (F.rate_mode && publishing()) {
        uint64_t due = (uint64_t)(F.b->o.rate * (double)(now - F.t_start) / 1e9);
        uint64_t behind = due > F.due_sent ? due - F.due_sent : 0;
        uint64_t cap = (uint64_t)(F.b->o.rate / 10) + 1; /* 100 ms worth */
        uint64_t send = behind < cap ? behind : cap;
        F.skipped += behind - send;
        F.due_sent += behind;
        for (uint64_t i = 0; i < send; i++) {
            for (size_t tries = 0; tries < F.npub; tries++) {
                size_t p = F.rr++ % F.npub;
                if (publish(p, now) == 0)
                    break;
            }
        }
    }
    mw_bench_net_flush(&F.b->net);
    if (F.phase == P_DRAIN && all_closed())
        finish();
}

static void on_drain_end(uv_timer_t *t) {
    (void)t;
    finish();
}

static void on_measure_end(uv_timer_t *t) {
    (void)t;
    F.t1 = now_rel();
    F.seq_t1 = F.nmsgs;
    mw_bench_cpu_end(F.b);
    server_cpu(1);
    F.phase = P_DRAIN;
    if (all_closed()) {
        finish();
        return;
    }
    uv_timer_start(&F.timer, on_drain_end, (uint64_t)(F.b->o.drain_timeout * 1000), 0);
}

static void on_warmup_end(uv_timer_t *t) {
    (void)t;
    F.phase = P_MEASURE;
    F.t0 = now_rel();
    F.seq_t0 = F.nmsgs;
    F.seq_t1 = UINT64_MAX;
    F.rx_window = 0;
    mw_bench_cpu_begin(F.b);
    server_cpu(0);
    uv_timer_start(&F.timer, on_measure_end, (uint64_t)(F.b->o.duration * 1000), 0);
}

static void start(void) {
    uv_timer_stop(&F.timer);
    if (F.b->o.server_pid > 0) {
        F.nsp = mw_bench_procs_read(F.b->o.server_pid, F.sp, MW_BENCH_MAX_PROCS, 0);
        F.split_ok = F.nsp > 0 && mw_bench_procs_split(F.sp, F.nsp, F.clients, F.n, F.nsub,
                                                       F.sp_subs, F.sp_pubs, F.sp_unmatched) == 0;
        if (!F.split_ok)
            mw_bench_error(F.b, "--server-pid: could not read which process serves each "
                                "connection (/proc)");
    }
    F.phase = P_WARMUP;
    F.seq_t0 = F.seq_t1 = UINT64_MAX;
    F.t_start = now_rel();
    uv_timer_start(&F.tick, on_tick, 1, 1);
    if (!F.rate_mode)
        for (size_t p = 0; p < F.npub; p++)
            refill(p, F.t_start);
    mw_bench_net_flush(&F.b->net);
    if (F.b->o.warmup > 0)
        uv_timer_start(&F.timer, on_warmup_end, (uint64_t)(F.b->o.warmup * 1000), 0);
    else
        on_warmup_end(&F.timer);
}

static void on_setup_timeout(uv_timer_t *t) {
    (void)t;
    char msg[160];
    if (F.nopen < F.n)
        snprintf(msg, sizeof(msg), "only %zu of %zu connections opened within %g s", F.nopen, F.n,
                 F.b->o.connect_timeout);
    else
        snprintf(msg, sizeof(msg),
                 "only %zu of %zu subscribers got a reply to subscribe "
                 "within %g s",
                 F.nsubscribed, F.nsub, F.b->o.connect_timeout);
    mw_bench_error(F.b, msg);
    finish();
}

static void on_subscribe_wait(uv_timer_t *t) {
    (void)t;
    start();
}

/* The connection is ready for the workload's messages (WebSocket open;
 * Socket.IO: connected to the namespace). */
static void fan_open(mw_bench_client_t *c) {
    size_t i = mw_bench_client_id(c);
    if (i < F.nsub) {
        char *p = mw_bench_client_reserve(c, F.sub_tpl.frame_len);
        if (p)
            mw_bench_tpl_fill(&F.sub_tpl, p, 0, 0);
    }
    if (++F.nopen < F.n)
        return;
    F.connect_s = (double)(uv_hrtime() - F.t_connect) / 1e9;
    F.phase = P_SUBSCRIBE;
    if (F.b->o.subscribe_wait_ms > 0) {
        uv_timer_stop(&F.timer);
        uv_timer_start(&F.timer, on_subscribe_wait, (uint64_t)F.b->o.subscribe_wait_ms, 0);
    } else if (F.nsubscribed == F.nsub) {
        start();
    }
}

static void send_tpl(mw_bench_client_t *c, const mw_bench_tpl_t *t) {
    char *p = mw_bench_client_reserve(c, t->frame_len);
    if (p)
        mw_bench_tpl_fill(t, p, 0, 0);
}

static void on_open(mw_bench_client_t *c) {
    if (F.engineio)
        send_tpl(c, &F.eio_connect); /* fan_open when "40{...}" comes back */
    else
        fan_open(c);
}

/* Socket.IO: handles the Engine.IO and Socket.IO control packets; returns
 * 1 when the message was one, 0 for an event ("42..."), a workload message. */
static int eio_control(mw_bench_client_t *c, const char *data, size_t len) {
    size_t i = mw_bench_client_id(c);
    if (len >= 2 && data[0] == '4' && data[1] == '2')
        return 0;
    if (len >= 1 && data[0] == '0')
        return 1; /* Engine.IO open: sid, ping interval */
    if (len == 1 && data[0] == '2') {
        send_tpl(c, &F.eio_pong);
        return 1;
    }
    if (len >= 2 && data[0] == '4' && data[1] == '0' && !F.eio_ready[i]) {
        F.eio_ready[i] = 1;
        fan_open(c);
        return 1;
    }
    char msg[200];
    snprintf(msg, sizeof(msg), "socket.io: unexpected packet from %s %zu: %.*s",
             i < F.nsub ? "subscriber" : "publisher", i < F.nsub ? i : i - F.nsub,
             (int)(len < 100 ? len : 100), data);
    mw_bench_error(F.b, msg);
    return 1;
}

static int bit_set(fsub_t *s, uint64_t seq) {
    size_t w = (size_t)(seq >> 6);
    if (w >= s->nwords) {
        size_t nw = s->nwords ? s->nwords * 2 : 64;
        while (nw <= w)
            nw *= 2;
        uint64_t *nb = realloc(s->bits, nw * sizeof(*nb));
        if (!nb)
            return -1;
        memset(nb + s->nwords, 0, (nw - s->nwords) * sizeof(*nb));
        s->bits = nb;
        s->nwords = nw;
    }
    uint64_t m = 1ull << (seq & 63);
    if (s->bits[w] & m)
        return 1;
    s->bits[w] |= m;
    return 0;
}

static void on_message(mw_bench_client_t *c, const char *data, size_t len, int op) {
    (void)op;
    if (F.engineio && eio_control(c, data, len))
        return;
    size_t i = mw_bench_client_id(c);
    if (i >= F.nsub) {
        F.pub_replies++;
        return;
    }
    fsub_t *s = &F.subs[i];
    if (!s->subscribed && F.b->o.subscribe_wait_ms <= 0) {
        /* The first message after subscribing is the acknowledgement. */
        s->subscribed = 1;
        if (++F.nsubscribed == F.nsub && F.phase == P_SUBSCRIBE && F.b->o.subscribe_wait_ms <= 0)
            start();
        return;
    }
    uint64_t seq, t;
    if (!mw_bench_payload_parse(data, len, &F.hint, &seq, &t)) {
        F.other++;
        return;
    }
    if (seq >= F.nmsgs) {
        if (F.unknown++ == 0)
            mw_bench_error(F.b, "protocol: a delivery carries a sequence never published");
        else
            F.b->errors++;
        return;
    }
    int r = bit_set(s, seq);
    if (r != 0) {
        if (r > 0)
            F.dups++;
        return;
    }
    F.unique++;
    uint64_t now = F.b->net.now_ns - F.b->net.t_base;
    if (seq >= F.seq_t0 && seq < F.seq_t1)
        mw_bench_hist_record(F.b->hist, now > t ? now - t : 0);
    if (F.phase == P_MEASURE)
        F.rx_window++;
    fmsg_t *m = &F.msgs[seq];
    if (++m->count == F.nsub && !m->closed) {
        close_msg(m, 1, now);
        if (F.phase == P_DRAIN && all_closed())
            finish();
    }
}

/* emit: the server API's answer to one POST. */
static void on_response(mw_bench_client_t *c, int status, const char *body, size_t len) {
    (void)c;
    F.responses++;
    char msg[300];
    if (status != 200) {
        while (len && (body[len - 1] == '\n' || body[len - 1] == '\r'))
            len--;
        F.responses_bad++;
        snprintf(msg, sizeof(msg), "emit: answered %d: %.*s", status, (int)(len < 200 ? len : 200),
                 body);
        mw_bench_error(F.b, msg);
    } else if (memmem(body, len, "\"subscribers\":0", 15)) {
        /* Nobody took the event: its deliveries would all be lost. */
        if (F.unsubscribed++ == 0)
            mw_bench_error(F.b, "emit: \"subscribers\":0 -- no subscriber of the app takes "
                                "this channel (see --emit-template)");
        else
            F.b->errors++;
    }
}

static void on_error(mw_bench_client_t *c, const char *what) {
    size_t i = mw_bench_client_id(c);
    if (F.emit && i >= F.nsub && (F.phase == P_DRAIN || F.phase == P_DONE) &&
        mw_bench_client_outstanding(c) == 0) {
        /* An idle keep-alive connection the server closed after the last
         * request (its keep-alive timeout): not a failure. */
        F.clients[i] = NULL;
        return;
    }
    char msg[300];
    snprintf(msg, sizeof(msg), "%s %zu: %s",
             i < F.nsub ? "subscriber"
             : F.emit   ? "publisher (HTTP)"
                        : "publisher",
             i < F.nsub ? i : i - F.nsub, what);
    mw_bench_error(F.b, msg);
    F.clients[i] = NULL;
    F.nfailed++;
    if (F.phase == P_CONNECT || F.phase == P_SUBSCRIBE || F.nfailed == F.n)
        finish();
}

/* emit: the POST request of every message, from --api-url (or --url's
 * host and port), --api-key (or $MOONWIRE_API_KEY) and --emit-template.
 * Returns 0, or -1 with a message in err. */
static int emit_template(const mw_bench_opts_t *o, char *err, size_t errlen) {
    char url[512], hostport[80], perr[200];
    const char *path;
    if (o->api_url[0]) {
        snprintf(url, sizeof(url), "%s", o->api_url);
    } else {
        /* --url's ws://HOST:PORT, then /api/emit */
        const char *h = strncmp(o->url, "ws://", 5) == 0 ? o->url + 5 : o->url;
        size_t hl = strcspn(h, "/");
        snprintf(url, sizeof(url), "http://%.*s/api/emit", (int)hl, h);
    }
    if (mw_bench_parse_url(url, "http", &F.api, hostport, sizeof(hostport), &path, perr,
                           sizeof(perr)) != 0) {
        snprintf(err, errlen, "--api-url %s", perr);
        return -1;
    }
    const char *key = o->api_key[0] ? o->api_key : getenv("MOONWIRE_API_KEY");
    const char *pargs[2] = {o->room, NULL};
    char terr[200];
    if (mw_bench_tpl_init_post(&F.pub_tpl, path, hostport, key ? key : "", o->emit_template, pargs,
                               2, 1, (size_t)o->size, terr, sizeof(terr)) != 0) {
        snprintf(err, errlen, "--emit-template: %s", terr);
        return -1;
    }
    return 0;
}

/* --server-pid: the server's CPU over the window, per process and in all,
 * and the connections each process serves. */
static void report_server(uint64_t deliveries, double window) {
    mw_bench_t *b = F.b;
    if (b->o.server_pid <= 0)
        return;
    if (!F.ncpu0 || !F.ncpu1) {
        mw_bench_error(b, "--server-pid: the server's CPU time was not read at both ends of "
                          "the window (it exited?)");
        return;
    }
    double tck = (double)mw_bench_clk_tck();
    long long ut = 0, st = 0, wr = 0, rd = 0;
    int changed = F.ncpu0 != F.ncpu1, io = 1;
    char procs[MW_BENCH_MAX_PROCS * 200], *w = procs;
    size_t left = sizeof(procs);
    int k = snprintf(w, left, "[");
    w += k, left -= (size_t)k;
    printf("  server       %d process%s (--server-pid %ld and descendants)\n", F.ncpu1,
           F.ncpu1 == 1 ? "" : "es", b->o.server_pid);
    for (int i = 0; i < F.ncpu1; i++) {
        const mw_bench_proc_t *p1 = &F.cpu1[i];
        const mw_bench_proc_t *p0 = mw_bench_procs_find(F.cpu0, F.ncpu0, p1->pid);
        if (!p0)
            changed = 1; /* started during the window: all its time is in it */
        long long du = p1->utime - (p0 ? p0->utime : 0), ds = p1->stime - (p0 ? p0->stime : 0);
        ut += du, st += ds;
        long long dw = -1, dr = -1;
        if (p0 && p0->syscw >= 0 && p1->syscw >= 0)
            dw = p1->syscw - p0->syscw, dr = p1->syscr - p0->syscr;
        else
            io = 0;
        wr += dw, rd += dr;
        long long subs = -1, pubs = -1;
        for (int j = 0; F.split_ok && j < F.nsp; j++)
            if (F.sp[j].pid == p1->pid)
                subs = (long long)F.sp_subs[j], pubs = (long long)F.sp_pubs[j];
        printf("    pid %-7ld %-15s CPU %.2f s (user %.2f + sys %.2f), %lld writes, %lld reads",
               p1->pid, p1->name, (double)(du + ds) / tck, (double)du / tck, (double)ds / tck, dw,
               dr);
        if (subs >= 0)
            printf(", serves %lld subscribers, %lld publishers", subs, pubs);
        printf("\n");
        k = snprintf(w, left,
                     "%s{\"pid\":%ld,\"name\":\"%s\",\"cpu_user_s\":%.2f,\"cpu_sys_s\":%.2f,"
                     "\"write_syscalls\":%lld,\"read_syscalls\":%lld,"
                     "\"subscribers\":%lld,\"publishers\":%lld}",
                     i ? "," : "", p1->pid, p1->name, (double)du / tck, (double)ds / tck, dw, dr,
                     subs, pubs);
        if (k > 0 && (size_t)k < left)
            w += k, left -= (size_t)k;
    }
    snprintf(w, left, "]");
    double cpu = (double)(ut + st) / tck;
    double per = cpu > 0 ? (double)deliveries / cpu : 0;
    printf("  server cpu   %.2f s in the %.2f s window (user %.2f + sys %.2f): %.0f deliveries "
           "per server CPU-second\n",
           cpu, window, (double)ut / tck, (double)st / tck, per);
    if (io && wr > 0)
        printf("  server io    %lld write and %lld read syscalls in the window: %.1f deliveries "
               "per write\n",
               wr, rd, (double)deliveries / (double)wr);
    if (F.split_ok && (F.sp_unmatched[0] || F.sp_unmatched[1]))
        printf("  server       %zu subscribers and %zu publishers not served by these "
               "processes\n",
               F.sp_unmatched[0], F.sp_unmatched[1]);
    if (changed)
        printf("  WARNING: the server's processes changed during the window\n");
    mw_bench_json_raw(b, "server_processes", procs);
    mw_bench_json_int(b, "server_process_count", F.ncpu1);
    mw_bench_json_int(b, "server_processes_changed", changed);
    mw_bench_json_num(b, "server_cpu_s", cpu);
    mw_bench_json_num(b, "server_cpu_user_s", (double)ut / tck);
    mw_bench_json_num(b, "server_cpu_sys_s", (double)st / tck);
    mw_bench_json_num(b, "deliveries_per_server_cpu_s", per);
    if (io) {
        mw_bench_json_int(b, "server_write_syscalls", wr);
        mw_bench_json_int(b, "server_read_syscalls", rd);
    }
    if (F.split_ok) {
        mw_bench_json_int(b, "subscribers_unmatched", (long long)F.sp_unmatched[0]);
        mw_bench_json_int(b, "publishers_unmatched", (long long)F.sp_unmatched[1]);
    }
}

int mw_bench_run_fanout(mw_bench_t *b) {
    mw_bench_opts_t *o = &b->o;
    memset(&F, 0, sizeof(F));
    F.b = b;
    F.nsub = (size_t)o->subscribers;
    F.npub = (size_t)o->publishers;
    F.n = F.nsub + F.npub;
    F.rate_mode = o->rate > 0;
    F.emit = strcmp(o->mode, "emit") == 0;
    F.engineio = (int)o->engineio;
    char err[256];
    if (o->url2[0]) {
        char hp[80], perr[200];
        const char *path;
        if (mw_bench_parse_url(o->url2, "ws", &F.url2, hp, sizeof(hp), &path, perr, sizeof(perr)) !=
            0) {
            fprintf(stderr, "moonwire-bench: --url2 %s\n", perr);
            return 2;
        }
    }
    if (mw_bench_tpl_init(&F.eio_connect, "40", NULL, 0, -1, 0, err, sizeof(err)) ||
        mw_bench_tpl_init(&F.eio_pong, "3", NULL, 0, -1, 0, err, sizeof(err))) {
        fprintf(stderr, "moonwire-bench: %s\n", err);
        return 1;
    }
    const char *sargs[1] = {o->room};
    const char *pargs[2] = {o->room, NULL};
    if (mw_bench_tpl_init(&F.sub_tpl, o->subscribe_template, sargs, 1, -1, 0, err, sizeof(err))) {
        fprintf(stderr, "moonwire-bench: --subscribe-template: %s\n", err);
        return 2;
    }
    if (F.emit) {
        if (emit_template(o, err, sizeof(err)) != 0) {
            fprintf(stderr, "moonwire-bench: %s\n", err);
            return 2;
        }
    } else if (mw_bench_tpl_init(&F.pub_tpl, o->publish_template, pargs, 2, 1, (size_t)o->size, err,
                                 sizeof(err))) {
        fprintf(stderr, "moonwire-bench: --publish-template: %s\n", err);
        return 2;
    }
    F.clients = calloc(F.n, sizeof(*F.clients));
    F.subs = calloc(F.nsub, sizeof(*F.subs));
    F.pub_open = calloc(F.npub, sizeof(*F.pub_open));
    F.eio_ready = calloc(F.n, 1);
    if (!F.clients || !F.subs || !F.pub_open || !F.eio_ready) {
        fprintf(stderr, "moonwire-bench: out of memory\n");
        return 1;
    }
    b->net.cbs = (mw_bench_net_cbs_t){on_open, on_message, on_error, on_response};
    for (size_t i = 0; i < F.n; i++) {
        struct sockaddr_in sa;
        F.clients[i] = mw_bench_client_new(&b->net, (uint32_t)i, &F, mw_bench_src(b, i, &sa));
        if (!F.clients[i]) {
            fprintf(stderr, "moonwire-bench: out of memory\n");
            return 1;
        }
        if (F.emit && i >= F.nsub)
            mw_bench_client_http(F.clients[i], &F.api);
        if (o->url2[0] && i < F.nsub && (i & 1)) {
            mw_bench_client_server(F.clients[i], &F.url2);
            F.nsub2++;
        }
    }
    uv_timer_init(b->loop, &F.timer);
    uv_timer_init(b->loop, &F.tick);
    F.phase = P_CONNECT;
    F.t0 = F.t1 = 0;
    uv_timer_start(&F.timer, on_setup_timeout, (uint64_t)(o->connect_timeout * 1000), 0);
    mw_bench_guard(b, o->connect_timeout + o->subscribe_wait_ms / 1000 + o->warmup + o->duration +
                          o->drain_timeout + 10);
    F.t_connect = uv_hrtime();
    mw_bench_net_connect_all(&b->net, F.clients, F.n, (size_t)o->concurrency);
    uv_run(b->loop, UV_RUN_DEFAULT);

    int measured = F.t0 < F.t1;
    double window = measured ? (double)(F.t1 - F.t0) / 1e9 : 0;
    uint64_t published_w = measured && F.seq_t1 != UINT64_MAX ? F.seq_t1 - F.seq_t0 : 0;
    double dps = window > 0 ? (double)F.rx_window / window : 0;
    double pps = window > 0 ? (double)published_w / window : 0;
    uint64_t expected = (uint64_t)F.nmsgs * F.nsub;
    uint64_t lost = expected - F.unique;

    printf("moonwire-bench %s: %s  room \"%s\", %zu subscribers, %zu %spublishers, ", o->mode,
           o->url, o->room, F.nsub, F.npub, F.emit ? "HTTP " : "");
    if (F.rate_mode)
        printf("%.0f msgs/s, ", o->rate);
    else
        printf("as fast as delivered (window %ld), ", o->window);
    printf("%ld-byte payload, %.1f s (+%.1f s warm-up)\n", o->size, o->duration, o->warmup);
    printf("  connections  %zu opened in %.2f s, %zu failed; %zu subscribed\n", F.nopen,
           F.connect_s, F.nfailed, F.nsubscribed);
    if (o->url2[0])
        printf("  across nodes %zu subscribers on %s, %zu on %s (with the publishers)\n", F.nsub2,
               o->url2, F.nsub - F.nsub2, o->url);
    mw_bench_json_int(b, "subscribers_url2", (long long)F.nsub2);
    printf("  deliveries   %llu in %.2f s = %.0f deliveries/s (%.0f publishes/s)\n",
           (unsigned long long)F.rx_window, window, dps, pps);
    mw_bench_json_int(b, "connections_open", (long long)F.nopen);
    mw_bench_json_num(b, "connect_s", F.connect_s);
    mw_bench_json_int(b, "deliveries", (long long)F.rx_window);
    mw_bench_json_num(b, "window_s", window);
    mw_bench_json_num(b, "deliveries_per_s", dps);
    mw_bench_json_num(b, "publishes_per_s", pps);
    mw_bench_report_latency(b, F.emit ? "POST to delivery" : "publish to delivery");
    printf("  published %zu, expected %llu deliveries, got %llu: lost %llu, duplicates %llu\n",
           F.nmsgs, (unsigned long long)expected, (unsigned long long)F.unique,
           (unsigned long long)lost, (unsigned long long)F.dups);
    if (F.stalled || F.skipped || F.other || F.pub_replies)
        printf("  stalled messages %llu, skipped publishes %llu (server behind --rate), "
               "other messages %llu, replies to publishers %llu\n",
               (unsigned long long)F.stalled, (unsigned long long)F.skipped,
               (unsigned long long)F.other, (unsigned long long)F.pub_replies);
    mw_bench_json_int(b, "published", (long long)F.nmsgs);
    mw_bench_json_int(b, "expected", (long long)expected);
    mw_bench_json_int(b, "received", (long long)F.unique);
    mw_bench_json_int(b, "lost", (long long)lost);
    mw_bench_json_int(b, "duplicates", (long long)F.dups);
    mw_bench_json_int(b, "stalled", (long long)F.stalled);
    mw_bench_json_int(b, "skipped_publishes", (long long)F.skipped);
    mw_bench_json_int(b, "other_messages", (long long)F.other);
    mw_bench_json_int(b, "publisher_replies", (long long)F.pub_replies);
    if (F.emit) {
        printf(
            "  emit         %llu responses to %zu POSTs, %llu not 200, %llu with no subscriber\n",
            (unsigned long long)F.responses, F.nmsgs, (unsigned long long)F.responses_bad,
            (unsigned long long)F.unsubscribed);
        mw_bench_json_int(b, "emit_responses", (long long)F.responses);
        mw_bench_json_int(b, "emit_responses_not_200", (long long)F.responses_bad);
        mw_bench_json_int(b, "emit_unsubscribed", (long long)F.unsubscribed);
    }
    report_server(measured ? F.rx_window : 0, window);
    mw_bench_report_cpu(b);

    mw_bench_teardown(b, F.clients, F.n);
    uv_close((uv_handle_t *)&F.timer, NULL);
    uv_close((uv_handle_t *)&F.tick, NULL);
    uv_run(b->loop, UV_RUN_NOWAIT);
    for (size_t i = 0; i < F.nsub; i++)
        free(F.subs[i].bits);
    free(F.subs);
    free(F.pub_open);
    free(F.eio_ready);
    free(F.clients);
    free(F.msgs);
    mw_bench_tpl_free(&F.sub_tpl);
    mw_bench_tpl_free(&F.pub_tpl);
    mw_bench_tpl_free(&F.eio_connect);
    mw_bench_tpl_free(&F.eio_pong);
    return (F.nopen < F.n || !measured) ? 1 : 0;
}
