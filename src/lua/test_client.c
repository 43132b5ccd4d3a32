/*
 * test_client.c - the client end of a socketpair, for specs on the real
 * core (see test_client.h).
 *
 * Everything that goes out is queued in one buffer and written as far as
 * the socket takes it; everything that comes in is appended to another and
 * parsed at once: first the HTTP response (http-parser), then frames
 * (wslay's frame API, the same codec the server's encoder uses). Nothing
 * here waits: the driver calls mw_test_client_pump between turns of the
 * server's loop until neither side moves.
 */
#include "test_client.h"
#include "../errors.h"
#include "../handshake.h"

#include <errno.h>
#include <http_parser.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wslay/wslay.h>

/* Any 16 bytes, base64: the server only echoes a hash of it. */
#define CLIENT_KEY "bW9vbndpcmUgc3BlY3MhIQ=="
#define READ_CHUNK 65536

typedef struct {
    char *data;
    size_t len, cap, off; /* off: bytes already consumed from the front */
} bytes_t;

struct mw_test_client {
    int fd;
    mw_test_client_state state;
    int paused, auto_pong, closed_first, close_sent;

    bytes_t out, in;

    /* The upgrade response. */
    http_parser parser;
    int status;
    bytes_t body;
    int header_is_accept; /* the header being parsed is Sec-WebSocket-Accept */
    bytes_t headers;      /* "Name:value\n" lines of the answer */
    int in_value;         /* the last header piece was part of a value */
    char accept[64];
    int accept_ok;

    /* Frames. */
    wslay_frame_context_ptr frames_ctx;
    uint32_t mask_seed;
    uint64_t frame_left; /* payload bytes of the current frame still to come */
    uint8_t msg_opcode;  /* opcode of the message being reassembled */
    bytes_t msg;         /* its payload so far */
    uint8_t ctl_opcode;  /* a control frame in progress */
    bytes_t ctl;
    int in_ctl;

    mw_test_frame_t *frames;
    size_t nframes, frames_cap;
};

static int bytes_add(bytes_t *b, const void *data, size_t len) {
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len + 1)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p)
            return MW_ENOMEM;
        b->data = p;
        b->cap = cap;
    }
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

/* bytes_compact drops what was consumed, so the buffer does not grow. */
static void bytes_compact(bytes_t *b) {
    if (b->off == 0)
        return;
    memmove(b->data, b->data + b->off, b->len - b->off);
    b->len -= b->off;
    b->off = 0;
    if (b->data)
        b->data[b->len] = '\0';
}

static void bytes_free(bytes_t *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* wslay's frame callbacks: out to the queue, in from the buffer. */
static ssize_t frame_send(const uint8_t *data, size_t len, int flags, void *user) {
    (void)flags;
    mw_test_client_t *c = user;
    if (bytes_add(&c->out, data, len) != 0)
        return -1;
    return (ssize_t)len;
}

static ssize_t frame_recv(uint8_t *buf, size_t len, int flags, void *user) {
    (void)flags;
    mw_test_client_t *c = user;
    size_t avail = c->in.len - c->in.off;
    if (avail == 0)
        return -1; /* wslay: WANT_READ */
    if (len > avail)
        len = avail;
    memcpy(buf, c->in.data + c->in.off, len);
    c->in.off += len;
    return (ssize_t)len;
}

/* Masks need not be unpredictable here: the server only unmasks them. */
static int frame_mask(uint8_t *buf, size_t len, void *user) {
    mw_test_client_t *c = user;
    for (size_t i = 0; i < len; i++) {
        c->mask_seed = c->mask_seed * 1103515245u + 12345u;
        buf[i] = (uint8_t)(c->mask_seed >> 16);
    }
    return 0;
}

static const struct wslay_frame_callbacks frame_cbs = {frame_send, frame_recv, frame_mask};

/* The upgrade response, through http-parser. */
static int on_header_field(http_parser *p, const char *at, size_t len) {
    mw_test_client_t *c = p->data;
    c->header_is_accept = len == 20 && strncasecmp(at, "Sec-WebSocket-Accept", len) == 0;
    if (c->in_value)
        bytes_add(&c->headers, "\n", 1);
    c->in_value = 0;
    return bytes_add(&c->headers, at, len) == 0 ? 0 : -1;
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
    mw_test_client_t *c = p->data;
    if (!c->in_value)
        bytes_add(&c->headers, ":", 1);
    c->in_value = 1;
    if (bytes_add(&c->headers, at, len) != 0)
        return -1;
    if (c->header_is_accept && len < sizeof c->accept) {
        memcpy(c->accept, at, len);
        c->accept[len] = '\0';
    }
    return 0;
}

static int on_headers_complete(http_parser *p) {
    mw_test_client_t *c = p->data;
    c->status = (int)p->status_code;
    if (c->in_value)
        bytes_add(&c->headers, "\n", 1);
    c->in_value = 0;
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
    mw_test_client_t *c = p->data;
    return bytes_add(&c->body, at, len) == 0 ? 0 : -1;
}

static int on_message_complete(http_parser *p) {
    mw_test_client_t *c = p->data;
    if (c->status != 101)
        c->state = MW_TC_REFUSED;
    return 0;
}

static const http_parser_settings response_settings = {
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static int has_crlf(const char *s) {
    return s && strpbrk(s, "\r\n") != NULL;
}

int mw_test_client_create(mw_test_client_t **out, int fd, const mw_test_request_t *req) {
    const char *path = req->path && req->path[0] ? req->path : "/";
    const char *query = req->query ? req->query : "";
    if (has_crlf(path) || has_crlf(query) || strchr(path, ' ') || strchr(query, ' '))
        return MW_EINVAL;
    for (int i = 0; i < req->nheaders; i++)
        if (has_crlf(req->headers[i].name) || has_crlf(req->headers[i].value) ||
            strchr(req->headers[i].name, ':'))
            return MW_EINVAL;
    mw_test_client_t *c = calloc(1, sizeof *c);
    if (!c)
        return MW_ENOMEM;
    c->fd = fd;
    c->auto_pong = 1;
    c->mask_seed = (uint32_t)fd * 2654435761u;
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
    int rc = wslay_frame_context_init(&c->frames_ctx, &frame_cbs, c) == 0 ? 0 : MW_ENOMEM;
    /* The request a browser would send, then the spec's own headers. */
    rc = rc ? rc : bytes_add(&c->out, "GET ", 4);
    rc = rc ? rc : bytes_add(&c->out, path, strlen(path));
    if (query[0]) {
        rc = rc ? rc : bytes_add(&c->out, "?", 1);
        rc = rc ? rc : bytes_add(&c->out, query, strlen(query));
    }
    static const char head[] = " HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                               "Sec-WebSocket-Key: " CLIENT_KEY "\r\n"
                               "Sec-WebSocket-Version: 13\r\n";
    rc = rc ? rc : bytes_add(&c->out, head, sizeof head - 1);
    int has_host = 0;
    for (int i = 0; i < req->nheaders && rc == 0; i++) {
        const mw_header_t *h = &req->headers[i];
        has_host |= strcasecmp(h->name, "host") == 0;
        rc = bytes_add(&c->out, h->name, strlen(h->name));
        rc = rc ? rc : bytes_add(&c->out, ": ", 2);
        rc = rc ? rc : bytes_add(&c->out, h->value, strlen(h->value));
        rc = rc ? rc : bytes_add(&c->out, "\r\n", 2);
    }
    if (!has_host)
        rc = rc ? rc : bytes_add(&c->out, "Host: moonwire.test\r\n", 21);
    rc = rc ? rc : bytes_add(&c->out, "\r\n", 2);
    if (rc != 0) {
        c->fd = -1; /* the caller keeps fd */
        mw_test_client_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int mw_test_client_create_raw(mw_test_client_t **out, int fd, const char *bytes, size_t len) {
    mw_test_client_t *c = calloc(1, sizeof *c);
    if (!c)
        return MW_ENOMEM;
    c->fd = fd;
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
    if (wslay_frame_context_init(&c->frames_ctx, &frame_cbs, c) != 0 ||
        bytes_add(&c->out, bytes, len) != 0) {
        c->fd = -1;
        mw_test_client_free(c);
        return MW_ENOMEM;
    }
    *out = c;
    return 0;
}

const char *mw_test_client_headers(const mw_test_client_t *c, size_t *len) {
    *len = c->headers.len;
    return c->headers.data ? c->headers.data : "";
}

static int push_frame(mw_test_client_t *c, uint8_t opcode, const char *data, size_t len) {
    if (c->nframes == c->frames_cap) {
        size_t cap = c->frames_cap ? c->frames_cap * 2 : 16;
        mw_test_frame_t *f = realloc(c->frames, cap * sizeof *f);
        if (!f)
            return MW_ENOMEM;
        c->frames = f;
        c->frames_cap = cap;
    }
    mw_test_frame_t *f = &c->frames[c->nframes];
    memset(f, 0, sizeof *f);
    f->opcode = opcode;
    if (opcode == WSLAY_CONNECTION_CLOSE) {
        f->code = len >= 2 ? (uint16_t)(((uint8_t)data[0] << 8) | (uint8_t)data[1]) : 1005;
        data = len >= 2 ? data + 2 : data;
        len = len >= 2 ? len - 2 : 0;
    }
    f->payload = malloc(len + 1);
    if (!f->payload)
        return MW_ENOMEM;
    if (len)
        memcpy(f->payload, data, len);
    f->payload[len] = '\0';
    f->len = len;
    c->nframes++;
    return 0;
}

static int send_frame(mw_test_client_t *c, uint8_t opcode, const void *data, size_t len) {
    struct wslay_frame_iocb iocb = {
        .fin = 1,
        .opcode = opcode,
        .mask = 1,
        .payload_length = len,
        .data = data,
        .data_length = len,
    };
    /* frame_send takes every byte, so one call sends the whole frame
     * (a zero-length payload returns 0). */
    ssize_t r = wslay_frame_send(c->frames_ctx, &iocb);
    return r < 0 || (size_t)r != len ? MW_ENOMEM : 0;
}

/* A control frame is complete: record it and answer as a browser would. */
static void on_control(mw_test_client_t *c, uint8_t opcode, const char *data, size_t len) {
    push_frame(c, opcode, data, len);
    if (opcode == WSLAY_PING && c->auto_pong && !c->close_sent)
        send_frame(c, WSLAY_PONG, data, len);
    if (opcode == WSLAY_CONNECTION_CLOSE && !c->close_sent) {
        /* Echo the status code, as RFC 6455 section 5.5.1 asks. */
        c->close_sent = 1;
        send_frame(c, WSLAY_CONNECTION_CLOSE, data, len >= 2 ? 2 : 0);
    }
}

/* parse_frames runs wslay's frame parser over the input buffer. Data
 * frames are reassembled into messages; control frames may come between
 * the fragments of a message, so they have a buffer of their own. */
static void parse_frames(mw_test_client_t *c) {
    for (;;) {
        struct wslay_frame_iocb iocb;
        memset(&iocb, 0, sizeof iocb);
        int starting = c->frame_left == 0;
        ssize_t r = wslay_frame_recv(c->frames_ctx, &iocb);
        if (r == WSLAY_ERR_WANT_READ)
            break;
        if (r < 0) {
            mw_test_client_drop(c); /* the server broke framing: a spec sees the drop */
            break;
        }
        if (starting) {
            c->frame_left = iocb.payload_length;
            c->in_ctl = wslay_is_ctrl_frame(iocb.opcode);
            if (c->in_ctl) {
                c->ctl_opcode = iocb.opcode;
                c->ctl.len = 0;
            } else if (iocb.opcode != WSLAY_CONTINUATION_FRAME) {
                c->msg_opcode = iocb.opcode;
                c->msg.len = 0;
            }
        }
        bytes_add(c->in_ctl ? &c->ctl : &c->msg, iocb.data, iocb.data_length);
        c->frame_left -= iocb.data_length;
        if (c->frame_left > 0)
            continue;
        if (c->in_ctl)
            on_control(c, c->ctl_opcode, c->ctl.data, c->ctl.len);
        else if (iocb.fin)
            push_frame(c, c->msg_opcode, c->msg.data, c->msg.len);
    }
    bytes_compact(&c->in);
}

/* parse_response feeds the upgrade response to http-parser; what follows
 * a 101 is frames. */
static void parse_response(mw_test_client_t *c, int eof) {
    size_t avail = c->in.len - c->in.off;
    size_t n = http_parser_execute(&c->parser, &response_settings,
                                   eof ? NULL : c->in.data + c->in.off, eof ? 0 : avail);
    if (eof)
        return;
    c->in.off += n;
    if (c->parser.upgrade && c->status == 101) {
        char want[64];
        if (mw_handshake_accept(CLIENT_KEY, want, sizeof want) != 0 ||
            strcmp(want, c->accept) != 0) {
            mw_test_client_drop(c); /* not a WebSocket server answering */
            return;
        }
        c->state = MW_TC_OPEN;
        parse_frames(c);
    } else if (HTTP_PARSER_ERRNO(&c->parser) != HPE_OK) {
        mw_test_client_drop(c);
    } else {
        bytes_compact(&c->in);
    }
}

size_t mw_test_client_pump(mw_test_client_t *c) {
    size_t moved = 0;
    if (c->fd < 0)
        return 0;
    while (c->out.off < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out.off, c->out.len - c->out.off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* EAGAIN: the server is not reading; EPIPE: it is gone */
        c->out.off += (size_t)n;
        moved += (size_t)n;
    }
    if (c->out.off == c->out.len)
        c->out.off = c->out.len = 0;
    size_t queued = c->out.len; /* what the parsers add (a pong) goes out below */
    int eof = 0;
    while (!c->paused) {
        char buf[READ_CHUNK];
        ssize_t n = read(c->fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break; /* EAGAIN (or a reset: seen as EOF next time) */
        if (n == 0) {
            eof = 1;
            break;
        }
        moved += (size_t)n;
        if (bytes_add(&c->in, buf, (size_t)n) != 0)
            break;
    }
    if (c->state == MW_TC_HANDSHAKE)
        parse_response(c, 0);
    else if (c->state == MW_TC_OPEN)
        parse_frames(c);
    if (eof) {
        if (c->state == MW_TC_HANDSHAKE)
            parse_response(c, 1);
        if (c->state == MW_TC_HANDSHAKE && c->status && c->status != 101)
            c->state = MW_TC_REFUSED;
        if (c->state != MW_TC_REFUSED)
            c->state = MW_TC_CLOSED;
        close(c->fd);
        c->fd = -1;
        moved++; /* an EOF is news too */
    }
    /* Anything the parsers queued (a pong, the close reply) goes out now. */
    if (c->fd >= 0 && c->out.len > queued)
        moved += mw_test_client_pump(c);
    return moved;
}

mw_test_client_state mw_test_client_state_of(const mw_test_client_t *c) {
    return c->state;
}

int mw_test_client_status(const mw_test_client_t *c) {
    return c->status;
}

const char *mw_test_client_body(const mw_test_client_t *c, size_t *len) {
    *len = c->body.len;
    return c->body.data ? c->body.data : "";
}

int mw_test_client_send(mw_test_client_t *c, uint8_t opcode, const void *data, size_t len) {
    if (c->state != MW_TC_OPEN || c->close_sent || c->fd < 0)
        return MW_ECLOSED;
    return send_frame(c, opcode, data, len);
}

int mw_test_client_close(mw_test_client_t *c, uint16_t code, const char *reason, size_t len) {
    if (c->state != MW_TC_OPEN || c->close_sent || c->fd < 0)
        return MW_ECLOSED;
    if (len > 123 || (code == 0 && len > 0))
        return MW_EINVAL;
    uint8_t payload[125];
    size_t n = 0;
    if (code) {
        payload[0] = (uint8_t)(code >> 8);
        payload[1] = (uint8_t)code;
        memcpy(payload + 2, reason, len);
        n = 2 + len;
    }
    c->close_sent = 1;
    c->closed_first = 1;
    return send_frame(c, WSLAY_CONNECTION_CLOSE, payload, n);
}

void mw_test_client_drop(mw_test_client_t *c) {
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    if (c->state != MW_TC_REFUSED)
        c->state = MW_TC_CLOSED;
}

void mw_test_client_pause(mw_test_client_t *c, int paused) {
    c->paused = paused;
}

void mw_test_client_auto_pong(mw_test_client_t *c, int on) {
    c->auto_pong = on;
}

int mw_test_client_closed_first(const mw_test_client_t *c) {
    return c->closed_first;
}

const mw_test_frame_t *mw_test_client_frames(const mw_test_client_t *c, size_t *n) {
    *n = c->nframes;
    return c->frames;
}

size_t mw_test_client_pending(const mw_test_client_t *c) {
    return c->out.len - c->out.off;
}

void mw_test_client_free(mw_test_client_t *c) {
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    for (size_t i = 0; i < c->nframes; i++)
        free(c->frames[i].payload);
    free(c->frames);
    if (c->frames_ctx)
        wslay_frame_context_free(c->frames_ctx);
    bytes_free(&c->out);
    bytes_free(&c->in);
    bytes_free(&c->body);
    bytes_free(&c->headers);
    bytes_free(&c->msg);
    bytes_free(&c->ctl);
    free(c);
}
