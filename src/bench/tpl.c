/*
 * tpl.c - template expansion, framing and payload parsing (see tpl.h).
 *
 * Framing goes through wslay's frame API, once per template. Client frames
 * must be masked (RFC 6455 section 5.3); we always use the all-zero masking
 * key. That is valid masking (the key is "any 32-bit value"; a client that
 * is not a browser has no cross-protocol attack to prevent) and, since
 * x XOR 0 = x, the masked payload is the plain payload: the sequence number
 * and timestamp can be written straight into a prepared frame.
 */
#include "tpl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <wslay/wslay.h>

typedef struct {
    char *buf;
    size_t len, cap;
} sink_t;

static ssize_t sink_send(const uint8_t *data, size_t len, int flags, void *user) {
    (void)flags;
    sink_t *s = user;
    if (s->len + len > s->cap) {
        size_t cap = (s->len + len) * 2;
        char *nb = realloc(s->buf, cap);
        if (!nb)
            return -1;
        s->buf = nb;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, len);
    s->len += len;
    return (ssize_t)len;
}

static ssize_t sink_recv(uint8_t *buf, size_t len, int flags, void *user) {
    (void)buf, (void)len, (void)flags, (void)user;
    return -1;
}

static int zero_mask(uint8_t *buf, size_t len, void *user) {
    (void)user;
    memset(buf, 0, len); /* the all-zero masking key: see the file comment */
    return 0;
}

/* Frames payload as a masked text frame into s. Returns the header size. */
static long frame_text(sink_t *s, const char *payload, size_t len) {
    struct wslay_frame_callbacks cbs = {sink_send, sink_recv, zero_mask};
    wslay_frame_context_ptr ctx;
    if (wslay_frame_context_init(&ctx, &cbs, s) != 0)
        return -1;
    struct wslay_frame_iocb io = {0};
    io.fin = 1;
    io.opcode = WSLAY_TEXT_FRAME;
    io.mask = 1;
    io.payload_length = len;
    size_t sent = 0;
    long hdr = -1;
    do {
        io.data = (const uint8_t *)payload + sent;
        io.data_length = len - sent;
        ssize_t r = wslay_frame_send(ctx, &io);
        if (r < 0)
            break;
        sent += (size_t)r;
        hdr = (long)(s->len - sent);
    } while (sent < len);
    wslay_frame_context_free(ctx);
    return sent == len ? hdr : -1;
}

/* Expands tpl (see mw_bench_tpl_init) into a malloc'd text: returns it
 * with its length in *len and the payload's offset in *poff, or NULL with
 * a message in err. */
static char *expand(const char *tpl, const char *const *args, int nargs, int payload_arg,
                    size_t payload_size, size_t *len, size_t *poff_out, char *err, size_t errlen) {
    if (payload_arg >= 0 && payload_size < MW_BENCH_PAYLOAD_MIN) {
        snprintf(err, errlen, "the payload needs at least %d bytes", MW_BENCH_PAYLOAD_MIN);
        return NULL;
    }
    /* First pass: count and size. */
    int n = 0;
    size_t total = 0;
    for (const char *p = tpl; *p; p++) {
        if (p[0] == '%' && p[1] == '%') {
            total++;
            p++;
        } else if (p[0] == '%' && p[1] == 's') {
            if (n >= nargs) {
                n++;
                break;
            }
            total += n == payload_arg ? payload_size : strlen(args[n]);
            n++;
            p++;
        } else if (p[0] == '%') {
            snprintf(err, errlen, "template \"%s\": only %%s and %%%% are allowed", tpl);
            return NULL;
        } else {
            total++;
        }
    }
    if (n != nargs) {
        snprintf(err, errlen, "template \"%s\" must contain exactly %d %%s", tpl, nargs);
        return NULL;
    }
    char *text = malloc(total + 1);
    if (!text) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    size_t off = 0, poff = 0;
    n = 0;
    for (const char *p = tpl; *p; p++) {
        if (p[0] == '%' && p[1] == '%') {
            text[off++] = '%';
            p++;
        } else if (p[0] == '%' && p[1] == 's') {
            if (n == payload_arg) {
                poff = off;
                memset(text + off, 'x', payload_size);
                memcpy(text + off, "mwb:0000000000:00000000000000:", MW_BENCH_PAYLOAD_MIN);
                off += payload_size;
            } else {
                size_t l = strlen(args[n]);
                memcpy(text + off, args[n], l);
                off += l;
            }
            n++;
            p++;
        } else {
            text[off++] = *p;
        }
    }
    *len = off;
    *poff_out = poff;
    return text;
}

int mw_bench_tpl_init(mw_bench_tpl_t *t, const char *tpl, const char *const *args, int nargs,
                      int payload_arg, size_t payload_size, char *err, size_t errlen) {
    memset(t, 0, sizeof(*t));
    size_t off, poff;
    char *text = expand(tpl, args, nargs, payload_arg, payload_size, &off, &poff, err, errlen);
    if (!text)
        return -1;
    sink_t s = {0};
    long hdr = frame_text(&s, text, off);
    free(text);
    if (hdr < 0) {
        free(s.buf);
        snprintf(err, errlen, "could not frame template \"%s\"", tpl);
        return -1;
    }
    t->frame = s.buf;
    t->frame_len = s.len;
    t->payload_off = payload_arg >= 0 ? (size_t)hdr + poff : 0;
    return 0;
}

int mw_bench_tpl_init_post(mw_bench_tpl_t *t, const char *path, const char *host,
                           const char *api_key, const char *tpl, const char *const *args, int nargs,
                           int payload_arg, size_t payload_size, char *err, size_t errlen) {
    memset(t, 0, sizeof(*t));
    size_t blen, poff;
    char *body = expand(tpl, args, nargs, payload_arg, payload_size, &blen, &poff, err, errlen);
    if (!body)
        return -1;
    if (strpbrk(path, " \r\n") || strpbrk(host, "\r\n") || strpbrk(api_key, "\r\n")) {
        free(body);
        snprintf(err, errlen, "the path, host and API key may not contain CR, LF (path: space)");
        return -1;
    }
    const char *fmt = "POST %s HTTP/1.1\r\nHost: %s\r\n%s%s%sContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n";
    int auth = api_key[0] != 0;
    int hl = snprintf(NULL, 0, fmt, path, host, auth ? "Authorization: apikey " : "", api_key,
                      auth ? "\r\n" : "", blen);
    char *req = hl > 0 ? malloc((size_t)hl + blen + 1) : NULL;
    if (!req) {
        free(body);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(req, (size_t)hl + 1, fmt, path, host, auth ? "Authorization: apikey " : "", api_key,
             auth ? "\r\n" : "", blen);
    memcpy(req + hl, body, blen);
    free(body);
    t->frame = req;
    t->frame_len = (size_t)hl + blen;
    t->payload_off = payload_arg >= 0 ? (size_t)hl + poff : 0;
    return 0;
}

void mw_bench_tpl_free(mw_bench_tpl_t *t) {
    free(t->frame);
    t->frame = NULL;
}

static void put_dec(char *p, int width, uint64_t v) {
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

void mw_bench_tpl_fill(const mw_bench_tpl_t *t, char *dst, uint64_t seq, uint64_t t_ns) {
    memcpy(dst, t->frame, t->frame_len);
    if (t->payload_off) {
        put_dec(dst + t->payload_off + 4, 10, seq);
        put_dec(dst + t->payload_off + 15, 14, t_ns);
    }
}

/* Parses 8 ASCII digits at once (SWAR, little-endian), or returns -1. */
static int64_t dec8(const char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    if (((v & 0xF0F0F0F0F0F0F0F0ull) |
         (((v + 0x0606060606060606ull) & 0xF0F0F0F0F0F0F0F0ull) >> 4)) != 0x3333333333333333ull)
        return -1;
    v -= 0x3030303030303030ull;
    v = v * 10 + (v >> 8);
    v = (((v & 0x000000FF000000FFull) * (100 + (1000000ull << 32))) +
         (((v >> 16) & 0x000000FF000000FFull) * (1 + (10000ull << 32)))) >>
        32;
    return (int64_t)v;
}

/* width >= 8 digits: a short loop for the leading ones, then dec8. */
static int get_dec(const char *p, int width, uint64_t *out) {
    uint64_t v = 0;
    for (int i = 0; i < width - 8; i++) {
        unsigned d = (unsigned)(p[i] - '0');
        if (d > 9)
            return 0;
        v = v * 10 + d;
    }
    int64_t low = dec8(p + width - 8);
    if (low < 0)
        return 0;
    *out = v * 100000000ull + (uint64_t)low;
    return 1;
}

static int marker_at(const char *msg, size_t len, size_t off) {
    return off + MW_BENCH_PAYLOAD_MIN <= len && memcmp(msg + off, "mwb:", 4) == 0;
}

int mw_bench_payload_parse(const char *msg, size_t len, size_t *hint, uint64_t *seq,
                           uint64_t *t_ns) {
    size_t off = *hint;
    if (!marker_at(msg, len, off)) {
        /* memchr for the rare 'w' is much faster than memmem on short
         * messages; the hint makes even that rare after the first reply. */
        const char *p = msg + 1, *end = msg + len;
        for (;;) {
            p = memchr(p, 'w', (size_t)(end - p));
            if (!p)
                return 0;
            off = (size_t)(p - msg) - 1;
            if (marker_at(msg, len, off))
                break;
            p++;
        }
        *hint = off;
    }
    const char *p = msg + off;
    if (p[14] != ':' || p[29] != ':')
        return 0;
    return get_dec(p + 4, 10, seq) && get_dec(p + 15, 14, t_ns);
}

size_t mw_bench_ctrl_frame(char *dst, int opcode, const char *payload, size_t len) {
    if (len > 125)
        len = 125;
    dst[0] = (char)(0x80 | opcode);
    dst[1] = (char)(0x80 | len); /* masked, 7-bit length */
    memset(dst + 2, 0, 4);       /* the all-zero masking key */
    if (len)
        memcpy(dst + 6, payload, len);
    return 6 + len;
}
