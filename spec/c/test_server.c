/*
 * test_server.c - the real core (server.c, conn.c, ws.c, http.c, rooms.c)
 * driven by an application written in C against app.h: no Lua anywhere.
 *
 * Each case makes a server on a loop of its own, on a virtual clock, and
 * serves clients that are the other end of a socketpair (mw_server_adopt).
 * A client writes a real HTTP request and masked frames built with wslay's
 * frame API, and parses what the server wrote with wslay_frame_recv. The
 * loop runs with UV_RUN_NOWAIT in bounded loops: socketpair bytes are
 * readable at once and time moves only with mw_server_advance, so no case
 * waits or depends on the machine's speed.
 *
 * Covered: the upgrade callback (request, peer, refusal with 401), open,
 * message and a reply with mw_conn_send, close (code, reason, still in its
 * rooms), plain HTTP (the app's http callback, 404, 500, /health with the
 * app's members; answers given later by request id, keep-alive and its
 * idle timeout, pipelined requests, bodies and their limit, 100-continue,
 * HEAD, a client gone before its answer, the /api/ door and api_key, the
 * app's own /health), heartbeats and the handshake timeout on the virtual
 * clock, rate_limit windows, and mw_server_client.
 */
#include "conn.h"
#include "errors.h"
#include "log.h"
#include "rooms.h"
#include "server.h"
#include "test.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>
#include <wslay/wslay.h>

#define PUMP_MAX 200 /* loop iterations a case waits for something, at most */
#define MAX_CLIENTS 8
#define MAX_FRAMES 16
#define T0 1000000 /* the virtual clock's start, in ms */

/* ---- the application: records what the core tells it ---- */

typedef struct {
    mw_server_t *s;
    /* behaviour, set by each case */
    int refuse;       /* upgrade returns this */
    const char *room; /* open joins it, when set */
    int echo;         /* message replies "echo:<message>" with mw_conn_send */
    /* what the app saw, in order: U(pgrade) O(pen) M(essage) C(lose) H(ttp) */
    char events[64];
    int nupgrade, nopen, nmessage, nclose, nhttp;
    uint64_t upgrade_id, open_id, close_id;
    mw_conn_t *open_conn;
    char path[64], query[64], x_test[64], addr[48];
    int port;
    char msg[256];
    size_t msglen;
    int binary, send_rc;
    unsigned close_code;
    char reason[128];
    size_t reasonlen;
    long room_size_at_close; /* -1: the room did not exist */
    char http_path[64];
    int respond_rc, respond_again_rc;
    /* plain HTTP: what the app was handed, and the request it owes */
    char http_method[16], http_body[256];
    size_t http_body_len;
    int http_api, http_keep_alive;
    uint64_t pending_id; /* /later: answered by the case with mw_server_http_respond */
    uint64_t request_ids[8];
} app_t;

static void app_event(app_t *a, char e) {
    size_t n = strlen(a->events);
    if (n + 1 < sizeof a->events) {
        a->events[n] = e;
        a->events[n + 1] = '\0';
    }
}

static void copy_str(char *dst, size_t size, const char *src) {
    snprintf(dst, size, "%s", src ? src : "(null)");
}

static int app_upgrade(void *data, mw_conn_t *c, const mw_client_info_t *info, char *msg,
                       size_t msglen) {
    app_t *a = data;
    app_event(a, 'U');
    a->nupgrade++;
    a->upgrade_id = mw_conn_id(c);
    copy_str(a->path, sizeof a->path, info->path);
    copy_str(a->query, sizeof a->query, info->query);
    copy_str(a->addr, sizeof a->addr, info->remote_addr);
    a->port = info->remote_port;
    a->x_test[0] = '\0';
    for (int i = 0; i < info->nheaders; i++)
        if (strcasecmp(info->headers[i].name, "X-Test") == 0)
            copy_str(a->x_test, sizeof a->x_test, info->headers[i].value);
    if (a->refuse)
        snprintf(msg, msglen, "token required");
    return a->refuse;
}

static void app_open(void *data, mw_conn_t *c) {
    app_t *a = data;
    app_event(a, 'O');
    a->nopen++;
    a->open_id = mw_conn_id(c);
    a->open_conn = c;
    if (a->room) {
        char moved[MW_ROOM_NAME_MAX + 1];
        mw_rooms_join(mw_server_rooms(a->s), mw_conn_rooms(c), a->room, strlen(a->room), moved);
    }
}

static void app_message(void *data, mw_conn_t *c, int binary, const char *payload, size_t len) {
    app_t *a = data;
    app_event(a, 'M');
    a->nmessage++;
    a->binary = binary;
    a->msglen = len < sizeof a->msg ? len : sizeof a->msg - 1;
    memcpy(a->msg, payload, a->msglen);
    a->msg[a->msglen] = '\0';
    if (a->echo) {
        char reply[300];
        int n = snprintf(reply, sizeof reply, "echo:%s", a->msg);
        a->send_rc = mw_conn_send(c, 0, reply, (size_t)n);
    }
}

/* room_size: members of the room, or -1 when it does not exist. */
static long room_size(mw_server_t *s, const char *name) {
    mw_room_t *r = mw_rooms_find(mw_server_rooms(s), name, strlen(name));
    return r ? (long)mw_room_size(r) : -1;
}

static int app_close(void *data, mw_conn_t *c, unsigned code, const char *reason, size_t len) {
    app_t *a = data;
    app_event(a, 'C');
    a->nclose++;
    a->close_id = mw_conn_id(c);
    a->close_code = code;
    a->reasonlen = len < sizeof a->reason ? len : sizeof a->reason - 1;
    memcpy(a->reason, reason, a->reasonlen);
    a->reason[a->reasonlen] = '\0';
    a->room_size_at_close = a->room ? room_size(a->s, a->room) : -1;
    return 0;
}

/* /hello is answered by the app, /boom fails, /later is answered later by
 * the case (by request id), /echo answers the body, /api/... and /health
 * (when the app serves it) answer what they are; anything else is not
 * found. */
static int app_http(void *data, mw_conn_t *c, const mw_request_t *req) {
    app_t *a = data;
    app_event(a, 'H');
    if (a->nhttp < 8)
        a->request_ids[a->nhttp] = mw_conn_request_id(c);
    a->nhttp++;
    copy_str(a->http_path, sizeof a->http_path, req->path);
    copy_str(a->http_method, sizeof a->http_method, req->method);
    a->http_body_len = req->body_len;
    snprintf(a->http_body, sizeof a->http_body, "%s", req->body);
    a->http_api = req->api;
    a->http_keep_alive = req->keep_alive;
    if (strcmp(req->path, "/later") == 0) {
        a->pending_id = mw_conn_request_id(c);
        return 0;
    }
    if (strcmp(req->path, "/echo") == 0) {
        mw_conn_respond(c, 200, NULL, "text/plain", req->body, req->body_len);
        return 0;
    }
    if (req->api || strcmp(req->path, "/health") == 0) {
        const char *what = req->api ? "api" : "app health";
        mw_conn_respond(c, 200, NULL, "text/plain", what, strlen(what));
        return 0;
    }
    if (strcmp(req->path, "/hello") == 0) {
        a->respond_rc = mw_conn_respond(c, 200, "X-App: yes\r\n", "text/plain", "hi", 2);
        a->respond_again_rc = mw_conn_respond(c, 200, NULL, "text/plain", "again", 5);
        return 0;
    }
    if (strcmp(req->path, "/boom") == 0)
        return MW_EINVAL;
    return MW_ENOTFOUND;
}

static void app_health(void *data, FILE *out) {
    app_t *a = data;
    fprintf(out, ",\"app_opened\":%d,\"app_name\":\"ctest\"", a->nopen);
}

static const mw_app_callbacks_t callbacks = {
    .upgrade = app_upgrade,
    .open = app_open,
    .message = app_message,
    .close = app_close,
    .http = app_http,
    .health = app_health,
};

static const mw_app_callbacks_t callbacks_without_http = {
    .upgrade = app_upgrade,
    .open = app_open,
    .message = app_message,
    .close = app_close,
};

/* ---- clients: the far end of a socketpair, speaking through wslay ---- */

typedef struct {
    int opcode;
    size_t len;
    uint8_t data[256]; /* the first 256 bytes of a longer frame */
} frame_t;

typedef struct {
    int fd;
    int ws;          /* the 101 arrived: what follows are frames */
    int eof;         /* the server closed its side */
    char http[8192]; /* the HTTP response (head, and body unless 101) */
    size_t httplen;
    uint8_t pending[4096]; /* bytes read past the 101 head, wslay reads them first */
    size_t npending, pendoff;
    wslay_frame_context_ptr fctx;
    uint8_t cur[8192]; /* the frame being received */
    size_t curlen;
    frame_t frames[MAX_FRAMES];
    int nframes;
    uint8_t mask_seed;
} client_t;

static ssize_t client_send_cb(const uint8_t *data, size_t len, int flags, void *user) {
    (void)flags;
    client_t *cl = user;
    ssize_t n = write(cl->fd, data, len);
    return n > 0 ? n : -1;
}

static ssize_t client_recv_cb(uint8_t *buf, size_t len, int flags, void *user) {
    (void)flags;
    client_t *cl = user;
    if (cl->pendoff < cl->npending) {
        size_t n = cl->npending - cl->pendoff;
        n = n < len ? n : len;
        memcpy(buf, cl->pending + cl->pendoff, n);
        cl->pendoff += n;
        return (ssize_t)n;
    }
    ssize_t n = read(cl->fd, buf, len);
    if (n == 0)
        cl->eof = 1;
    return n > 0 ? n : -1; /* -1: wslay wants more later */
}

static int client_genmask_cb(uint8_t *buf, size_t len, void *user) {
    client_t *cl = user;
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(0x5a ^ (cl->mask_seed++ * 37u));
    return 0;
}

static const struct wslay_frame_callbacks client_frame_cb = {client_send_cb, client_recv_cb,
                                                             client_genmask_cb};

/* client_read_http reads the HTTP response; at the end of a 101 head it
 * switches to frames, keeping the bytes that came after the head. */
static void client_read_http(client_t *cl) {
    for (;;) {
        size_t room = sizeof cl->http - 1 - cl->httplen;
        if (room == 0)
            return;
        ssize_t n = read(cl->fd, cl->http + cl->httplen, room);
        if (n == 0)
            cl->eof = 1;
        if (n <= 0)
            return;
        cl->httplen += (size_t)n;
        cl->http[cl->httplen] = '\0';
        char *end = strstr(cl->http, "\r\n\r\n");
        if (end && strncmp(cl->http, "HTTP/1.1 101 ", 13) == 0) {
            end += 4;
            size_t head = (size_t)(end - cl->http);
            cl->npending = cl->httplen - head;
            memcpy(cl->pending, end, cl->npending);
            cl->httplen = head;
            *end = '\0';
            cl->ws = 1;
            return;
        }
    }
}

/* client_read_frames receives every complete frame that arrived. */
static void client_read_frames(client_t *cl) {
    for (;;) {
        struct wslay_frame_iocb iocb;
        memset(&iocb, 0, sizeof iocb);
        ssize_t r = wslay_frame_recv(cl->fctx, &iocb);
        if (r < 0)
            return; /* WANT_READ, or a protocol error the checks will show */
        if (cl->curlen + iocb.data_length > sizeof cl->cur)
            abort();
        memcpy(cl->cur + cl->curlen, iocb.data, iocb.data_length);
        cl->curlen += iocb.data_length;
        if (cl->curlen < iocb.payload_length)
            continue;
        if (cl->nframes < MAX_FRAMES) { /* len is the whole frame's; data its start */
            frame_t *f = &cl->frames[cl->nframes++];
            f->opcode = iocb.opcode;
            f->len = cl->curlen;
            memcpy(f->data, cl->cur, f->len < sizeof f->data ? f->len : sizeof f->data);
        }
        cl->curlen = 0;
    }
}

static void client_read(client_t *cl) {
    if (cl->fd < 0)
        return;
    if (!cl->ws)
        client_read_http(cl);
    if (cl->ws)
        client_read_frames(cl);
}

/* client_send sends one masked frame. Returns 0 or -1. */
static int client_send(client_t *cl, int opcode, const void *data, size_t len) {
    struct wslay_frame_iocb iocb = {
        .fin = 1,
        .opcode = (uint8_t)opcode,
        .payload_length = len,
        .mask = 1,
        .data = data,
        .data_length = len,
    };
    ssize_t r = wslay_frame_send(cl->fctx, &iocb);
    return r == (ssize_t)len ? 0 : -1;
}

static int client_send_text(client_t *cl, const char *text) {
    return client_send(cl, WSLAY_TEXT_FRAME, text, strlen(text));
}

static int client_write(client_t *cl, const char *bytes) {
    size_t len = strlen(bytes);
    return write(cl->fd, bytes, len) == (ssize_t)len ? 0 : -1;
}

/* client_frame returns the first frame received with opcode (and payload,
 * when not NULL), or NULL. */
static const frame_t *client_frame(const client_t *cl, int opcode, const char *payload) {
    for (int i = 0; i < cl->nframes; i++) {
        const frame_t *f = &cl->frames[i];
        if (f->opcode == opcode &&
            (!payload || (f->len == strlen(payload) && f->len <= sizeof f->data &&
                          memcmp(f->data, payload, f->len) == 0)))
            return f;
    }
    return NULL;
}

/* client_hangup closes the client's end, as a peer going away. */
static void client_hangup(client_t *cl) {
    if (cl->fd >= 0)
        close(cl->fd);
    cl->fd = -1;
}

/* ---- a world: one loop, one server, its app and its clients ---- */

typedef struct {
    uv_loop_t loop;
    mw_config_t cfg;
    mw_server_t *s;
    app_t app;
    client_t clients[MAX_CLIENTS];
    int nclients;
} world_t;

/* world_init makes the loop and the default configuration, with the
 * WebSocket endpoint at /ws; a case adjusts cfg, then calls world_start. */
static int world_init(world_t *w) {
    memset(w, 0, sizeof *w);
    char err[256];
    if (uv_loop_init(&w->loop) != 0)
        return -1;
    if (mw_config_init(&w->cfg) != 0 ||
        mw_config_set_string(&w->cfg, "path", "/ws", err, sizeof err) != 0) {
        uv_loop_close(&w->loop);
        return -1;
    }
    w->app.room_size_at_close = -2;
    return 0;
}

/* world_start makes the server on the virtual clock and starts it. */
static int world_start(world_t *w, const mw_app_callbacks_t *cb) {
    mw_app_t app = {cb, &w->app};
    if (mw_server_create(&w->s, &w->loop, &w->cfg, ".", &app) != 0)
        return -1;
    w->app.s = w->s;
    mw_server_use_virtual_clock(w->s, T0);
    return mw_server_start(w->s);
}

/* world_end drops everything, runs the loop until every handle is closed
 * and frees it all; the loop must close cleanly (nothing left behind). */
static void world_end(world_t *w) {
    if (w->s) {
        mw_server_abort(w->s);
        while (uv_run(&w->loop, UV_RUN_DEFAULT) != 0) {
        }
        mw_server_free(w->s);
        w->s = NULL;
    }
    CHECK_EQ(uv_loop_close(&w->loop), 0);
    for (int i = 0; i < w->nclients; i++) {
        client_hangup(&w->clients[i]);
        wslay_frame_context_free(w->clients[i].fctx);
    }
    mw_config_free(&w->cfg);
}

static void pump_once(world_t *w) {
    uv_run(&w->loop, UV_RUN_NOWAIT);
    for (int i = 0; i < w->nclients; i++)
        client_read(&w->clients[i]);
}

static void pump(world_t *w, int n) {
    for (int i = 0; i < n; i++)
        pump_once(w);
}

/* PUMP_UNTIL runs the loop and reads every client until cond holds (at
 * most PUMP_MAX times); when it never does, fails and leaves the case. */
#define PUMP_UNTIL(w, cond)                                                                        \
    do {                                                                                           \
        int pump_ok_ = 0;                                                                          \
        for (int pump_i_ = 0; !(pump_ok_ = (cond)) && pump_i_ < PUMP_MAX; pump_i_++)               \
            pump_once(w);                                                                          \
        if (!pump_ok_) {                                                                           \
            test_fail_at(__FILE__, __LINE__);                                                      \
            fprintf(stderr, "PUMP_UNTIL(%s): never true\n", #cond);                                \
            world_end(w);                                                                          \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* REQUIRE_W is REQUIRE for a case with a world running: it ends it first. */
#define REQUIRE_W(w, cond)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            test_fail_at(__FILE__, __LINE__);                                                      \
            fprintf(stderr, "REQUIRE(%s)\n", #cond);                                               \
            world_end(w);                                                                          \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* client_new adopts one end of a fresh socketpair as a connection from
 * 127.0.0.1:port and returns the client holding the other, or NULL. */
static client_t *client_new(world_t *w, int port) {
    int sv[2];
    if (w->nclients == MAX_CLIENTS || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return NULL;
    client_t *cl = &w->clients[w->nclients];
    memset(cl, 0, sizeof *cl);
    cl->fd = sv[0];
    if (fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK) != 0 ||
        wslay_frame_context_init(&cl->fctx, &client_frame_cb, cl) != 0) {
        close(sv[0]);
        close(sv[1]);
        return NULL;
    }
    w->nclients++;
    if (mw_server_adopt(w->s, sv[1], "127.0.0.1", port) != 0)
        return NULL;
    return cl;
}

#define UPGRADE_HEAD                                                                               \
    "Host: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"                                  \
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"

/* client_upgrade sends the upgrade request for target and reads until the
 * 101 or the end of another answer. Returns 0 or -1. */
static int client_upgrade(world_t *w, client_t *cl, const char *target) {
    char req[1024];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\n" UPGRADE_HEAD "X-Test: abc\r\n\r\n", target);
    if (client_write(cl, req) != 0)
        return -1;
    for (int i = 0; i < PUMP_MAX && !cl->ws && !cl->eof; i++)
        pump_once(w);
    return cl->ws || cl->eof ? 0 : -1;
}

/* client_connect: a client that completed its upgrade, or NULL. */
static client_t *client_connect(world_t *w, int port) {
    client_t *cl = client_new(w, port);
    if (!cl || client_upgrade(w, cl, "/ws") != 0 || !cl->ws)
        return NULL;
    return cl;
}

/* client_get sends a plain GET for target and reads the whole answer (the
 * server closes its side after it: the request asks it to). Returns 0 or
 * -1. */
static int client_get(world_t *w, client_t *cl, const char *target) {
    char req[512];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n", target);
    if (client_write(cl, req) != 0)
        return -1;
    for (int i = 0; i < PUMP_MAX && !cl->eof; i++)
        pump_once(w);
    return cl->eof ? 0 : -1;
}

/* ---- the cases ---- */

/* The upgrade callback sees the request and the adopted peer; a refusal
 * is the client's HTTP answer and the client never existed for the app. */
static void test_upgrade_refused_then_accepted(void) {
    world_t w;
    REQUIRE(world_init(&w) == 0);
    REQUIRE(world_start(&w, &callbacks) == 0);
    w.app.refuse = 401;
    client_t *a = client_new(&w, 40001);
    REQUIRE_W(&w, a);
    REQUIRE_W(&w, client_upgrade(&w, a, "/ws?room=a&x=1") == 0);
    PUMP_UNTIL(&w, a->eof);
    CHECK(strncmp(a->http, "HTTP/1.1 401 ", 13) == 0);
    CHECK(strstr(a->http, "\r\nWWW-Authenticate: ") != NULL);
    CHECK(strstr(a->http, "\r\n\r\ntoken required\n") != NULL);
    CHECK(!a->ws);
    CHECK_EQ(w.app.nupgrade, 1);
    CHECK_STR(w.app.path, "/ws");
    CHECK_STR(w.app.query, "room=a&x=1");
    CHECK_STR(w.app.x_test, "abc");
    CHECK_STR(w.app.addr, "127.0.0.1");
    CHECK_EQ(w.app.port, 40001);
    uint64_t refused_id = w.app.upgrade_id;
    CHECK(refused_id != 0);
    CHECK(mw_server_client(w.s, refused_id) == NULL);
    client_hangup(a);
    pump(&w, 20);
    CHECK_STR(w.app.events, "U"); /* neither open nor close */

    w.app.refuse = 0;
    client_t *b = client_new(&w, 40002);
    REQUIRE_W(&w, b);
    REQUIRE_W(&w, client_upgrade(&w, b, "/ws") == 0);
    CHECK(b->ws);
    CHECK(strncmp(b->http, "HTTP/1.1 101 ", 13) == 0);
    CHECK(strstr(b->http, "\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != NULL);
    pump(&w, 5);
    CHECK_STR(w.app.events, "UUO");
    CHECK_EQ(w.app.nopen, 1);
    CHECK_EQ(w.app.port, 40002);
    CHECK_STR(w.app.query, "");
    uint64_t id = w.app.open_id;
    CHECK(id != 0 && id == w.app.upgrade_id && id != refused_id);
    CHECK(mw_server_client(w.s, id) == w.app.open_conn);
    world_end(&w);
    /* Only the accepted client is ever closed (dropped by the abort). */
    CHECK_EQ(w.app.nclose, 1);
    CHECK_EQ(w.app.close_id, id);
}

/* A text message reaches the app; the reply on the connection in hand
 * reaches the client. */
static void test_message_and_reply(void) {
    world_t w;
    REQUIRE(world_init(&w) == 0);
    REQUIRE(world_start(&w, &callbacks) == 0);
    w.app.echo = 1;
    client_t *cl = client_connect(&w, 40001);
    REQUIRE_W(&w, cl);
    REQUIRE_W(&w, client_send_text(cl, "hello") == 0);
    PUMP_UNTIL(&w, cl->nframes >= 1);
    CHECK_EQ(w.app.nmessage, 1);
    CHECK_STR(w.app.msg, "hello");
    CHECK_EQ(w.app.msglen, 5);
    CHECK_EQ(w.app.binary, 0);
    CHECK_EQ(w.app.send_rc, 0);
    CHECK(client_frame(cl, WSLAY_TEXT_FRAME, "echo:hello") != NULL);
    CHECK_EQ(cl->nframes, 1);
    REQUIRE_W(&w, client_send(cl, WSLAY_BINARY_FRAME, "\x01\x02", 2) == 0);
    PUMP_UNTIL(&w, w.app.nmessage == 2);
    CHECK_EQ(w.app.binary, 1);
    CHECK_MEM(w.app.msg, w.app.msglen, "\x01\x02", 2);
    world_end(&w);
}

/* The client's close frame: the app hears its code and reason once, while
 * the client is still in its rooms; they are left after. */
static void test_close_from_client(void) {
    world_t w;
    REQUIRE(world_init(&w) == 0);
    REQUIRE(world_start(&w, &callbacks) == 0);
    w.app.room = "lobby";
    client_t *cl = client_connect(&w, 40001);
    REQUIRE_W(&w, cl);
    PUMP_UNTIL(&w, w.app.nopen == 1);
    CHECK_EQ(room_size(w.s, "lobby"), 1);
    const uint8_t close_payload[] = {4001 >> 8, 4001 & 0xff, 'b', 'y', 'e'};
    REQUIRE_W(&w,
              client_send(cl, WSLAY_CONNECTION_CLOSE, close_payload, sizeof close_payload) == 0);
    PUMP_UNTIL(&w, client_frame(cl, WSLAY_CONNECTION_CLOSE, NULL) != NULL);
    const frame_t *f = client_frame(cl, WSLAY_CONNECTION_CLOSE, NULL);
    CHECK(f->len >= 2 && (f->data[0] << 8 | f->data[1]) == 4001); /* the code echoed */
    PUMP_UNTIL(&w, cl->eof);
    client_hangup(cl);
    PUMP_UNTIL(&w, w.app.nclose == 1);
    pump(&w, 5);
    CHECK_EQ(w.app.nclose, 1);
    CHECK_EQ(w.app.close_code, 4001);
    CHECK_STR(w.app.reason, "bye");
    CHECK_EQ(w.app.room_size_at_close, 1);
    CHECK_EQ(room_size(w.s, "lobby"), -1); /* its last member left: freed */
    CHECK_EQ(mw_rooms_size(mw_server_rooms(w.s)), 0);
    CHECK_STR(w.app.events, "UOC");
    world_end(&w);
    CHECK_EQ(w.app.nclose, 1);
}

/* Plain HTTP: other paths go to the app's http callback (404 when it has
 * none or finds nothing, its own answer, 500 when it fails); /health is
 * the core's, with the members the app adds. */
static void test_http(void) {
    world_t w;
    REQUIRE(world_init(&w) == 0);
    REQUIRE(world_start(&w, &callbacks) == 0);
    client_t *cl = client_new(&w, 40001);
    REQUIRE_W(&w, cl);
    REQUIRE_W(&w, client_get(&w, cl, "/other?x=1") == 0);
    CHECK(strncmp(cl->http, "HTTP/1.1 404 ", 13) == 0);
    CHECK_EQ(w.app.nhttp, 1);
    CHECK_STR(w.app.http_path, "/other");

    cl = client_new(&w, 40002);
    REQUIRE_W(&w, cl);
    REQUIRE_W(&w, client_get(&w, cl, "/hello") == 0);
    CHECK(strncmp(cl->http, "HTTP/1.1 200 ", 13) == 0);
    CHECK(strstr(cl->http, "\r\nX-App: yes\r\n") != NULL);
    CHECK(strstr(cl->http, "\r\nContent-Type: text/plain\r\n") != NULL);
    CHECK(cl->httplen >= 6 && strcmp(cl->http + cl->httplen - 6, "\r\n\r\nhi") == 0);
    CHECK_EQ(w.app.respond_rc, 0);
    CHECK_EQ(w.app.respond_again_rc, MW_ECLOSED); /* one answer per request */
    CHECK_EQ(w.app.nhttp, 2);

    cl = client_new(&w, 40003);
    REQUIRE_W(&w, cl);
    REQUIRE_W(&w, client_get(&w, cl, "/boom") == 0);
    CHECK(strncmp(cl->http, "HTTP/1.1 500 ", 13) == 0);
    CHECK_EQ(w.app.nhttp, 3);

    cl = client_new(&w, 40004);
    REQUIRE_W(&w, cl);
    REQUIRE_W(&w, client_get(&w, cl, "/health") == 0);
    CHECK(strncmp(cl->http, "HTTP/1.1 200 ", 13) == 0);
    CHECK(strstr(cl->http, "\r\nContent-Type: application/json\r\n") != NULL);
    const char *body = strstr(cl->http, "\r\n\r\n");
    REQUIRE_W(&w, body);
    body += 4;
    CHECK(strncmp(body, "{\"status\":\"healthy\",", 20) == 0);
    /* The app's members, last in the object. */
    CHECK(strstr(body, ",\"app_opened\":0,\"app_name\":\"ctest\"}\n") != NULL);
    CHECK_EQ(w.app.nhttp, 3); /* /health never reaches the app */
    CHECK_STR(w.app.events, "HHH");
    world_end(&w);

    REQUIRE(world_init(&w) == 0);
    REQUIRE(world_start(&w, &callbacks_without_http) == 0);
    cl = client_new(&w, 40001);
    REQUIRE_W(&w, cl);
    REQUIRE_W(&w, client_get(&w, cl, "/other") == 0);
    CHECK(strncmp(cl->http, "HTTP/1.1 404 ", 13) == 0);
    CHECK_STR(w.app.events, "");
    world_end(&w);
}

/* response_at finds the n-th (0-based) complete answer in what cl read:
 * *head points at its status line, *body at its body (of *len bytes, by
 * its Content-Length; 0 without one). Returns 1, or 0 while it is not all
 * there. A "100 Continue" counts as an answer of its own. */
static int response_at(const client_t *cl, int n, const char **head, const char **body,
                       size_t *len) {
    const char *p = cl->http, *end = cl->http + cl->httplen;
    for (int i = 0;; i++) {
        const char *eoh = strstr(p, "\r\n\r\n");
        if (!eoh || eoh + 4 > end)
            return 0;
        size_t blen = 0;
        const char *cl_hdr = strstr(p, "\r\nContent-Length: ");
        if (cl_hdr && cl_hdr < eoh)
            blen = (size_t)strtoul(cl_hdr + 18, NULL, 10);
        if (eoh + 4 + blen > end)
            return 0;
        if (i == n) {
            *head = p;
            *body = eoh + 4;
            *len = blen;
            return 1;
        }
        p = eoh + 4 + blen;
    }
}

static int responses(const client_t *cl) {
    const char *h, *b;
    size_t l;
    int n = 0;
    while (response_at(cl, n, &h, &b, &l))
        n++;
    return n;
}

/* status_of is the status of the n-th answer, or 0. */
static int status_of(const client_t *cl, int n) {
    const char *h, *b;
    size_t l;
    return response_at(cl, n, &h, &b, &l) ? atoi(h + 9) : 0;
}

/* body_is: the n-th answer's body is exactly text. */
static int body_is(const client_t *cl, int n, const char *text) {
    const char *h, *b;
    size_t l;
    return response_at(cl, n, &h, &b, &l) && l == strlen(text) && memcmp(b, text, l) == 0;
}

/* has_header: the n-th answer's head has this exact line ("Name: value"). */
static int has_header(const client_t *cl, int n, const char *line) {
    const char *h, *b;
    size_t l;
    if (!response_at(cl, n, &h, &b, &l))
        return 0;
    char want[256];
    snprintf(want, sizeof want, "\r\n%s\r\n", line);
    const char *at = strstr(h, want);
    return at && at < b;
}

/* The app answers later, by request id: the request waits (no deadline),
 * the second answer and an unknown id are refused, a pipelined request
 * behind it waits for it and is answered after it, in order. */
static void test_http_answer_later(void) {
    world_t w;
    REQUIRE(world_init(&w) == 0);
    REQUIRE(world_start(&w, &callbacks) == 0);
    client_t *cl = client_new(&w, 40001);
    REQUIRE_W(&w, cl);
    REQUIRE_W(&w, client_write(cl, "GET /later HTTP/1.1\r\nHost: t\r\n\r\n"
                                   "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    PUMP_UNTIL(&w, w.app.nhttp == 1);
    uint64_t id = w.app.pending_id;
    CHECK(id != 0);
    CHECK_EQ(w.app.request_ids[0], id);
    /* Waiting costs nothing of handshake_timeout. */
    mw_server_advance(w.s, (uint64_t)w.cfg.handshake_timeout * 3);
    pump(&w, 10);
    CHECK_EQ(cl->httplen, 0);
    CHECK(!cl->eof);
    CHECK_EQ(w.app.nhttp, 1); /* the second request is not read yet */
    CHECK_EQ(mw_server_http_respond(w.s, id + 1000, 200, NULL, "text/plain", "x", 1), MW_ECLOSED);
    CHECK_EQ(mw_server_http_respond(w.s, id, 99, NULL, "text/plain", "x", 1), MW_EINVAL);
    CHECK_EQ(mw_server_http_respond(w.s, id, 200, "Content-Length: 3\r\n", "text/plain", "x", 1),
             MW_EINVAL);
    CHECK_EQ(mw_server_http_respond(w.s, id, 200, "X-A: 1\r\nX-B\r\n", "text/plain", "x", 1),
             MW_EINVAL);
    CHECK_EQ(mw_server_http_respond(w.s, id, 200, "X-A: 1\r\nX-B: 2\n", "text/plain", "x", 1),
             MW_EINVAL);
    CHECK_EQ(mw_server_http_respond(w.s, id, 201, "X-Later: yes\r\n", "text/plain", "late", 4), 0);
    CHECK_EQ(mw_server_http_respond(w.s, id, 200, NULL, "text/plain", "x", 1), MW_ECLOSED);
    PUMP_UNTIL(&w, responses(cl) == 2);
    CHECK_EQ(status_of(cl, 0), 201);
    CHECK(body_is(cl, 0, "late"));
    CHECK(has_header(cl, 0, "X-Later: yes"));
    CHECK(has_header(cl, 0, "Connection: keep-alive"));
    CHECK_EQ(status_of(cl, 1), 200);
    CHECK(body_is(cl, 1, "hi"));
    CHECK_EQ(w.app.nhttp, 2);
    CHECK(w.app.request_ids[1] != 0 && w.app.request_ids[1] != id);
    CHECK(!cl->eof);
    world_end(&w);
}

/* A client gone while its request waits: the request is forgotten (the
 * answer is refused, nothing is written, nothing leaks under ASan), the
 * app's other requests are unaffected. */
static void test_http_client_gone_before_answer(void) {
    world_t w;
    REQUIRE(world_init(&w) == 0);
    REQUIRE(world_start(&w, &callbacks) == 0);
    client_t *cl = client_new(&w, 40001);
    REQUIRE_W(&w, cl);
    REQUIRE_W(&w, client_write(cl, "POST /later HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
                                   "GET /hello HTTP/1.1\r\n\r\n") == 0);
    PUMP_UNTIL(&w, w.app.nhttp == 1);
    uint64_t id = w.app.pending_id;
    CHECK_STR(w.app.http_body, "abc");
    client_hangup(cl);
    pump(&w, 10);
    CHECK_EQ(mw_server_http_respond(w.s, id, 200, NULL, "text/plain", "x", 1), MW_ECLOSED);
    CHECK_EQ(w.app.nhttp, 1);

    client_t *other = client_new(&w, 40002);
    REQUIRE_W(&w, other);
    REQUIRE_W(&w, client_write(other, "GET /later HTTP/1.1\r\n\r\n") == 0);
    PUMP_UNTIL(&w, w.app.nhttp == 2);
    CHECK(w.app.pending_id != id);
    CHECK_EQ(mw_server_http_respond(w.s, w.app.pending_id, 204, NULL, "text/plain", "", 0), 0);
    PUMP_UNTIL(&w, responses(other) == 1);
    CHECK_EQ(status_of(other, 0), 204);
    CHECK(strstr(other->http, "Content-Length") == NULL);
    world_end(&w);
}

/* Keep-alive: HTTP/1.1 requests one after the other on one connection,
 * then the idle connection is closed after http_keepalive_timeout (and
 * not before); Connection: close and HTTP/1.0 close after the answer,
 * HTTP/1.0 with keep-alive does not. */
static void test_http_keep_alive(void) {
    world_t w;
    REQUIRE(world_init(&w) == 0);
    w.cfg.http_keepalive_timeout = 3000;
    REQUIRE(world_start(&w, &callbacks) == 0);
    client_t *cl = client_new(&w, 40001);
    REQUIRE_W(&w, cl);
    REQUIRE_W(&w, client_write(cl, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    PUMP_UNTIL(&w, responses(cl) == 1);
    CHECK(has_header(cl, 0, "Connection: keep-alive"));
    mw_server_advance(w.s, 2000);
    REQUIRE_W(&w, client_write(cl, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    PUMP_UNTIL(&w, responses(cl) == 2);
    CHECK_EQ(status_of(cl, 1), 200);
    CHECK(has_header(cl, 1, "Content-Type: application/json"));
    mw_server_advance(w.s, 2900);
    pump(&w, 10);
    CHECK(!cl->eof);
    mw_server_advance(w.s, 200);
    PUMP_UNTIL(&w, cl->eof);
    CHECK_EQ(responses(cl), 2); /* closed quietly, no 408 */

    static const char *const close_after[] = {
        "GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n",
        "GET /hello HTTP/1.0\r\n\r\n",
    };
    for (int i = 0; i < 2; i++) {
        cl = client_new(&w, 40002 + i);
        REQUIRE_W(&w, cl);
        REQUIRE_W(&w, client_write(cl, close_after[i]) == 0);
        PUMP_UNTIL(&w, cl->eof);
        CHECK_EQ(responses(cl), 1);
        CHECK(has_header(cl, 0, "Connection: close"));
    }
    world_end(&w);

    REQUIRE(world_init(&w) == 0);
    REQUIRE(world_start(&w, &callbacks) == 0);
    cl = client_new(&w, 40001);
    REQUIRE_W(&w, cl);
    REQUIRE_W(&w, client_write(cl, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                                   "GET /nope HTTP/1.0\r\nConnection: keep-alive\r\n\r\n") == 0);
    PUMP_UNTIL(&w, responses(cl) == 2);
    CHECK(has_header(cl, 0, "Connection: keep-alive"));
    CHECK_EQ(status_of(cl, 1), 404);
    CHECK(!cl->eof);
    world_end(&w);

    /* http_keepalive_timeout = 0: one request per connection. */
    REQUIRE(world_init(&w) == 0);
    w.cfg.http_keepalive_timeout = 0;
    REQUIRE(world_start(&w, &callbacks) == 0);
    cl = client_new(&w, 40001);
    REQUIRE_W(&w, cl);
    REQUIRE_W(&w, client_write(cl, "GET /hello HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\n\r\n") == 0);
    PUMP_UNTIL(&w, cl->eof);
    CHECK_EQ(responses(cl), 1);
    CHECK_EQ(w.app.nhttp, 1);
    world_end(&w);
}

/* Bodies: the app gets the body (by length or chunked); over
 * http_max_body it is 413 and close, at once when Content-Length says so;
 * Expect: 100-continue is answered before the body; a body that does not
 * arrive within handshake_timeout is 408. */
static void test_http_bodies(void) {
    world_t w;
    REQUIRE(world_init(&w) == 0);
    w.cfg.http_max_body = 16;
    REQUIRE(world_start(&w, &callbacks) == 0);
    client_t *cl = client_new(&w, 40001);
    REQUIRE_W(&w, cl);
    REQUIRE_W(&w, client_write(cl, "POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
                                   "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                                   "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n") == 0);
    PUMP_UNTIL(&w, responses(cl) == 2);
    CHECK(body_is(cl, 0, "hello"));
    CHECK(body_is(cl, 1, "abcdefg"));
    CHECK_STR(w.app.http_method, "POST");

    cl = client_new(&w, 40002);
    REQUIRE_W(&w, cl);
    REQUIRE_W(&w, client_write(cl, "POST /echo HTTP/1.1\r\nContent-Length: 17\r\n\r\n") == 0);
    PUMP_UNTIL(&w, cl->eof);
    CHECK_EQ(status_of(cl, 0), 413);
    CHECK(has_header(cl, 0, "Connection: close"));
    CHECK_EQ(w.app.nhttp, 2);

    cl = client_new(&w, 40003);
    REQUIRE_W(&w, cl);
    REQUIRE_W(&w, client_write(cl, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                                   "a\r\n0123456789\r\na\r\n0123456789\r\n") == 0);
    PUMP_UNTIL(&w, cl->eof);
    CHECK_EQ(status_of(cl, 0), 413);
    CHECK_EQ(w.app.nhttp, 2);

    cl = client_new(&w, 40004);
    REQUIRE_W(&w, cl);
    REQUIRE_W(&w, client_write(cl, "PUT /echo HTTP/1.1\r\nExpect: 100-continue\r\n"
                                   "Content-Length: 2\r\n\r\n") == 0);
    PUMP_UNTIL(&w, responses(cl) == 1);
    CHECK_EQ(status_of(cl, 0), 100);
    CHECK_EQ(w.app.nhttp, 2);
    REQUIRE_W(&w, client_write(cl, "ok") == 0);
    PUMP_UNTIL(&w, responses(cl) == 2);
    CHECK(body_is(cl, 1, "ok"));

    /* A body that stops coming: 408 once handshake_timeout has passed. */
    cl = client_new(&w, 40005);
    REQUIRE_W(&w, cl);
    REQUIRE_W(&w, client_write(cl, "POST /echo HTTP/1.1\r\nContent-Length: 9\r\n\r\nslow") == 0);
    pump(&w, 10);
    mw_server_advance(w.s, (uint64_t)w.cfg.handshake_timeout + 200);
    PUMP_UNTIL(&w, cl->eof);
    CHECK_EQ(status_of(cl, 0), 408);
    CHECK_EQ(w.app.nhttp, 3);
    world_end(&w);
}

/* HEAD: the GET answer's head (its Content-Length too), no body. */
static void test_http_head(void) {
    world_t w;
    REQUIRE(world_init(&w) == 0);
    REQUIRE(world_start(&w, &callbacks) == 0);
    client_t *cl = client_new(&w, 40001);
    REQUIRE_W(&w, cl);
    REQUIRE_W(&w, client_write(cl, "HEAD /hello HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\n\r\n") == 0);
    PUMP_UNTIL(&w, strstr(cl->http, "\r\n\r\nhi") != NULL);
    CHECK(strncmp(cl->http, "HTTP/1.1 200 OK\r\n", 17) == 0);
    CHECK(strstr(cl->http, "Content-Length: 2\r\n") != NULL);
    /* The head of the first answer is followed at once by the second. */
    const char *second = strstr(cl->http, "\r\n\r\nHTTP/1.1 200 OK\r\n");
    CHECK(second != NULL);
    CHECK_STR(w.app.http_method, "GET");

    /* An error answer to the request after a HEAD has its body. */
    cl = client_new(&w, 40002);
    REQUIRE_W(&w, cl);
    REQUIRE_W(&w,
              client_write(cl, "HEAD /hello HTTP/1.1\r\n\r\nGET /x HTTP/1.1\r\nBad\r\n\r\n") == 0);
    PUMP_UNTIL(&w, cl->eof);
    CHECK(strstr(cl->http, "HTTP/1.1 400 Bad Request\r\n") != NULL);
    CHECK(strstr(cl->http, "\r\n\r\nmalformed HTTP request\n") != NULL);
    world_end(&w);
}

/* /api/: the core's 404 without api_key; with one, 401 without the right
 * key (the app never sees it), the app's API routes with it; with
 * api_port, not on the main port. The app can take /health. */
static void test_http_api_door_and_health_route(void) {
    world_t w;
    REQUIRE(world_init(&w) == 0);
    REQUIRE(world_start(&w, &callbacks) == 0);
    client_t *cl = client_new(&w, 40001);
    REQUIRE_W(&w, cl);
    REQUIRE_W(&w,
              client_write(cl, "GET /api/stats HTTP/1.1\r\nAuthorization: apikey k\r\n\r\n") == 0);
    PUMP_UNTIL(&w, responses(cl) == 1);
    CHECK_EQ(status_of(cl, 0), 404);
    CHECK_EQ(w.app.nhttp, 0);
    world_end(&w);

    char err[128];
    REQUIRE(world_init(&w) == 0);
    REQUIRE(mw_config_set_string(&w.cfg, "api_key", "s3cret", err, sizeof err) == 0);
    REQUIRE(world_start(&w, &callbacks) == 0);
    static const char *const refused[] = {
        "GET /api/stats HTTP/1.1\r\n\r\n",
        "GET /api/stats HTTP/1.1\r\nAuthorization: apikey wrong\r\n\r\n",
        "GET /api HTTP/1.1\r\nAuthorization: Bearer s3cret\r\n\r\n",
    };
    for (int i = 0; i < 3; i++) {
        cl = client_new(&w, 40001 + i);
        REQUIRE_W(&w, cl);
        REQUIRE_W(&w, client_write(cl, refused[i]) == 0);
        PUMP_UNTIL(&w, cl->eof);
        CHECK_EQ(status_of(cl, 0), 401);
        CHECK(has_header(cl, 0, "WWW-Authenticate: apikey"));
    }
    CHECK_EQ(w.app.nhttp, 0);
    cl = client_new(&w, 40004);
    REQUIRE_W(&w, cl);
    REQUIRE_W(&w, client_write(cl, "POST /api/publish HTTP/1.1\r\nAuthorization: APIKEY  s3cret\r\n"
                                   "Content-Length: 2\r\n\r\n{}"
                                   "GET /apiary HTTP/1.1\r\n\r\n"
                                   "GET /health HTTP/1.1\r\n\r\n") == 0);
    PUMP_UNTIL(&w, responses(cl) == 3);
    CHECK(body_is(cl, 0, "api"));
    CHECK_EQ(status_of(cl, 1), 404); /* not /api/: the app's 404 */
    CHECK_STR(w.app.http_path, "/apiary");
    CHECK_EQ(w.app.http_api, 0);
    CHECK(has_header(cl, 2, "Content-Type: application/json")); /* the core's /health */
    CHECK_EQ(w.app.nhttp, 2);
    mw_server_set_health_route(w.s, 1);
    REQUIRE_W(&w, client_write(cl, "GET /health HTTP/1.1\r\n\r\n") == 0);
    PUMP_UNTIL(&w, responses(cl) == 4);
    CHECK(body_is(cl, 3, "app health"));
    CHECK_EQ(w.app.http_api, 0);
    world_end(&w);

    /* With api_port, the main port has no /api/ (the api_port listener
     * is tested with the real binary, spec/integration/test_http_api.py). */
    REQUIRE(world_init(&w) == 0);
    REQUIRE(mw_config_set_string(&w.cfg, "api_key", "s3cret", err, sizeof err) == 0);
    w.cfg.api_port = 9999;
    REQUIRE(world_start(&w, &callbacks) == 0);
    cl = client_new(&w, 40001);
    REQUIRE_W(&w, cl);
    REQUIRE_W(&w, client_write(
                      cl, "GET /api/stats HTTP/1.1\r\nAuthorization: apikey s3cret\r\n\r\n") == 0);
    PUMP_UNTIL(&w, responses(cl) == 1);
    CHECK_EQ(status_of(cl, 0), 404);
    CHECK_EQ(w.app.nhttp, 0);
    world_end(&w);
}

/* Heartbeats on the virtual clock: a ping after ping_interval of silence,
 * a drop (1006) when it is not answered within pong_timeout. */
static void test_heartbeat_unanswered(void) {
    world_t w;
    REQUIRE(world_init(&w) == 0);
    w.cfg.ping_interval = 1000;
    w.cfg.pong_timeout = 500;
    REQUIRE(world_start(&w, &callbacks) == 0);
    client_t *cl = client_connect(&w, 40001);
    REQUIRE_W(&w, cl);
    pump(&w, 10);
    CHECK_EQ(cl->nframes, 0);
    mw_server_advance(w.s, 1100);
    client_read(cl); /* written during the advance: no loop run, no waiting */
    CHECK(client_frame(cl, WSLAY_PING, NULL) != NULL);
    CHECK_EQ(w.app.nclose, 0);
    mw_server_advance(w.s, 600);
    PUMP_UNTIL(&w, w.app.nclose == 1);
    CHECK_EQ(w.app.close_code, 1006);
    PUMP_UNTIL(&w, cl->eof);
    CHECK(mw_server_client(w.s, w.app.open_id) == NULL);
    world_end(&w);
}

/* app_ping: the event the core sends by itself carries the time of each
 * send in its stamp, also when the app protocol makes it larger than the
 * stack buffer send_reply stamps small replies in. */
static void test_app_ping_stamped(void) {
    world_t w;
    REQUIRE(world_init(&w) == 0);
    w.cfg.ping_interval = 1000;
    w.cfg.pong_timeout = 5000;
    w.cfg.app_ping = 1;
    REQUIRE(world_start(&w, &callbacks) == 0);
    char big[5000];
    memset(big, 'x', sizeof big);
    memcpy(big + 100, "1234567890123", 13);
    REQUIRE_W(&w, mw_server_set_reply(w.s, MW_REPLY_PING, big, sizeof big, 0, 100, 13) == 0);
    client_t *cl = client_connect(&w, 40001);
    REQUIRE_W(&w, cl);
    mw_server_advance(w.s, 1100);
    PUMP_UNTIL(&w, client_frame(cl, WSLAY_TEXT_FRAME, NULL) != NULL);
    const frame_t *f = client_frame(cl, WSLAY_TEXT_FRAME, NULL);
    REQUIRE_W(&w, f != NULL);
    /* The stamp is the time of the heartbeat pass that sent it: after the
     * ping interval, not after now; 7 digits here, not the marker's 13. */
    char *end;
    unsigned long long stamp = strtoull((const char *)f->data + 100, &end, 10);
    size_t n = (size_t)(end - (const char *)f->data - 100);
    CHECK(stamp >= T0 + 1000 && stamp <= mw_server_wall_ms(w.s));
    CHECK_EQ(f->len, sizeof big - 13 + n);
    CHECK(*end == 'x');
    world_end(&w);
}

/* The same with the ping answered: the connection stays open. */
static void test_heartbeat_answered(void) {
    world_t w;
    REQUIRE(world_init(&w) == 0);
    w.cfg.ping_interval = 1000;
    w.cfg.pong_timeout = 500;
    REQUIRE(world_start(&w, &callbacks) == 0);
    client_t *cl = client_connect(&w, 40001);
    REQUIRE_W(&w, cl);
    mw_server_advance(w.s, 1100);
    PUMP_UNTIL(&w, client_frame(cl, WSLAY_PING, NULL) != NULL);
    const frame_t *ping = client_frame(cl, WSLAY_PING, NULL);
    REQUIRE_W(&w, client_send(cl, WSLAY_PONG, ping->data, ping->len) == 0);
    REQUIRE_W(&w, client_send_text(cl, "after pong") == 0);
    PUMP_UNTIL(&w, w.app.nmessage == 1); /* so the pong before it was read too */
    mw_server_advance(w.s, 600);
    pump(&w, 20);
    CHECK_EQ(w.app.nclose, 0);
    CHECK(!cl->eof);
    CHECK(mw_server_client(w.s, w.app.open_id) == w.app.open_conn);
    REQUIRE_W(&w, client_send_text(cl, "still here") == 0);
    PUMP_UNTIL(&w, w.app.nmessage == 2);
    CHECK_STR(w.app.msg, "still here");
    world_end(&w);
}

/* A socket that sends nothing gets 408 once handshake_timeout has passed
 * on the virtual clock, and not before. */
static void test_handshake_timeout(void) {
    world_t w;
    REQUIRE(world_init(&w) == 0);
    w.cfg.handshake_timeout = 2000;
    REQUIRE(world_start(&w, &callbacks) == 0);
    client_t *cl = client_new(&w, 40001);
    REQUIRE_W(&w, cl);
    pump(&w, 10);
    mw_server_advance(w.s, 1800);
    pump(&w, 10);
    CHECK_EQ(cl->httplen, 0);
    CHECK(!cl->eof);
    mw_server_advance(w.s, 300);
    PUMP_UNTIL(&w, cl->eof);
    CHECK(strncmp(cl->http, "HTTP/1.1 408 ", 13) == 0);
    CHECK_STR(w.app.events, "");
    world_end(&w);
}

/* rate_limit: the third message of a window never reaches the app; once
 * the window has passed on the virtual clock, messages do again. */
static void test_rate_limit(void) {
    world_t w;
    REQUIRE(world_init(&w) == 0);
    w.cfg.rate_limit_max_messages = 2;
    w.cfg.rate_limit_window_ms = 1000;
    w.cfg.rate_limit_max_violations = 0;
    REQUIRE(world_start(&w, &callbacks) == 0);
    REQUIRE_W(&w, mw_server_set_reply(w.s, MW_REPLY_RATE_LIMITED, "limited", 7, 0, 0, 0) == 0);
    client_t *cl = client_connect(&w, 40001);
    REQUIRE_W(&w, cl);
    REQUIRE_W(&w, client_send_text(cl, "m1") == 0);
    REQUIRE_W(&w, client_send_text(cl, "m2") == 0);
    REQUIRE_W(&w, client_send_text(cl, "m3") == 0);
    /* The refusal's reply shows the server has read m3. */
    PUMP_UNTIL(&w, client_frame(cl, WSLAY_TEXT_FRAME, "limited") != NULL);
    pump(&w, 5);
    CHECK_EQ(w.app.nmessage, 2);
    CHECK_STR(w.app.msg, "m2");
    mw_server_advance(w.s, 1000);
    REQUIRE_W(&w, client_send_text(cl, "m4") == 0);
    PUMP_UNTIL(&w, w.app.nmessage == 3);
    CHECK_STR(w.app.msg, "m4");
    CHECK_STR(w.app.events, "UOMMM");
    world_end(&w);
}

/* mw_server_client finds an open client by its id, and nothing once the
 * connection is freed. */
static void test_client_lookup(void) {
    world_t w;
    REQUIRE(world_init(&w) == 0);
    REQUIRE(world_start(&w, &callbacks) == 0);
    client_t *cl = client_connect(&w, 40001);
    REQUIRE_W(&w, cl);
    client_t *other = client_connect(&w, 40002);
    REQUIRE_W(&w, other);
    PUMP_UNTIL(&w, w.app.nopen == 2);
    uint64_t id = w.app.open_id; /* the second client */
    mw_conn_t *c = w.app.open_conn;
    CHECK(id != 0);
    CHECK(mw_server_client(w.s, id) == c);
    CHECK(mw_server_client(w.s, id - 1) != NULL && mw_server_client(w.s, id - 1) != c);
    CHECK(mw_server_client(w.s, id + 1) == NULL);
    CHECK(mw_server_client(w.s, 0) == NULL);
    client_hangup(other);
    PUMP_UNTIL(&w, w.app.nclose == 1);
    CHECK_EQ(w.app.close_id, id);
    pump(&w, 5);
    CHECK(mw_server_client(w.s, id) == NULL);
    CHECK(mw_server_client(w.s, id - 1) != NULL); /* the first is still open */
    world_end(&w);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN); /* a write to a closed socketpair end is an error, not a kill */
    mw_log_configure(MW_LOG_WARN, 0);
    RUN(test_upgrade_refused_then_accepted);
    RUN(test_message_and_reply);
    RUN(test_close_from_client);
    RUN(test_http);
    RUN(test_http_answer_later);
    RUN(test_http_client_gone_before_answer);
    RUN(test_http_keep_alive);
    RUN(test_http_bodies);
    RUN(test_http_head);
    RUN(test_http_api_door_and_health_route);
    RUN(test_heartbeat_unanswered);
    RUN(test_heartbeat_answered);
    RUN(test_app_ping_stamped);
    RUN(test_handshake_timeout);
    RUN(test_rate_limit);
    RUN(test_client_lookup);
    return test_summary();
}
