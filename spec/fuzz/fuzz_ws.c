/*
 * fuzz_ws.c - libFuzzer target: frames and messages (src/ws.c over wslay,
 * with ws.c's own message assembly, size limit, UTF-8 and close-code
 * handling, and the idle sleep that frees wslay's context).
 *
 * Why: after the upgrade every byte a client sends goes through ws.c, and
 * ws.c is where moonwire departs from wslay (no-buffering assembly, the
 * fragmented-size check, its own close codes for frame violations, the
 * re-check of close reasons, putting idle contexts to sleep). The input is
 * the bytes a client sends after its upgrade request. Like spec/c/test_ws.c,
 * no socket: an mw_ws_t whose callbacks record what it delivers and writes.
 * The app echoes every message back from inside the message callback (what
 * a controller calling client:send does), and closes with 1000 "bye" when a
 * message starts with "CLOSE". conn.c stops feeding once the connection has
 * failed or the close handshake is done; so does this target.
 *
 * Checks, on every run: the server writes only well-formed, unmasked frames
 * (its echoes in order, pongs, at most one close and nothing after it); a
 * close it sends carries a code an endpoint may send and a UTF-8 reason; a
 * failure writes the close that matches the error (1007 MW_EUTF8, 1009
 * MW_ETOOBIG, 1002 MW_EPROTO) and is sticky; delivered text is valid UTF-8
 * and no message exceeds the limit; mw_ws_encode frames a message exactly
 * as mw_ws_send does.
 * Across runs: the input is fed in one read, one byte per read, and in
 * reads of random sizes with mw_ws_sleep after each (what the cron does to
 * an idle connection), and all three must deliver the same messages and
 * write the same bytes. The one difference allowed is the wslay 1.1 defect
 * documented in docs/architecture.md: how the peer's close frame is split
 * decides whether wslay sees a bad (or misjudges a good) reason, so that
 * one close may be answered 1007 in one run and otherwise in another.
 */
#include "fuzz.h"
#include "errors.h"
#include "outq.h"
#include "utf8.h"
#include "ws.h"

#include <string.h>

#define MAX_MESSAGE 8192 /* larger than wslay's 4 KiB read buffer */

typedef struct {
    uint8_t *p;
    size_t len, cap;
} buf_t;

static void buf_add(buf_t *b, const void *data, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        FUZZ_CHECK(b->p != NULL);
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, data, n);
    b->len += n;
}

typedef struct {
    mw_ws_t *ws;
    buf_t out;    /* every byte ws.c wrote */
    buf_t msgs;   /* delivered messages: binary flag, length, payload */
    buf_t echoes; /* the same, for the messages echoed back */
    int app_closed;
    int rc; /* the error mw_ws_feed returned, or 0 */
    uint16_t status;
    buf_t reason;
} run_t;

static mw_ws_encoder_t *encoder; /* one per process, like one per worker */

static void record(buf_t *b, int binary, const uint8_t *msg, size_t len) {
    uint8_t flag = (uint8_t)binary;
    uint64_t n = len;
    buf_add(b, &flag, 1);
    buf_add(b, &n, sizeof n);
    buf_add(b, msg, len);
}

static void on_message(void *data, int binary, const uint8_t *msg, size_t len) {
    run_t *r = data;
    FUZZ_CHECK(len <= MAX_MESSAGE);
    FUZZ_CHECK(binary || mw_utf8_valid(msg, len));
    FUZZ_CHECK(mw_ws_can_send(r->ws)); /* nothing is delivered once closing */
    record(&r->msgs, binary, msg, len);
    if (len >= 5 && memcmp(msg, "CLOSE", 5) == 0) {
        FUZZ_CHECK(mw_ws_close(r->ws, 1000, "bye", 3) == 0);
        r->app_closed = 1;
        return;
    }
    size_t before = r->out.len;
    FUZZ_CHECK(mw_ws_send(r->ws, binary, msg, len) == 0);
    record(&r->echoes, binary, msg, len);
    /* A broadcast is framed by mw_ws_encode into a shared buffer: it must
     * hold the very bytes a direct send writes. */
    mw_buf_t *b = NULL;
    FUZZ_CHECK(mw_ws_encode(encoder, binary, msg, len, &b) == 0);
    FUZZ_CHECK(b->len == r->out.len - before);
    FUZZ_CHECK(memcmp(b->data, r->out.p + before, b->len) == 0);
    mw_buf_unref(b);
}

static int on_write(void *data, const uint8_t *bytes, size_t len) {
    run_t *r = data;
    buf_add(&r->out, bytes, len);
    return 0;
}

static const mw_ws_callbacks_t callbacks = {on_message, on_write};

static void feed(run_t *r, const uint8_t *data, size_t len, int mode) {
    memset(r, 0, sizeof *r);
    FUZZ_CHECK(mw_ws_create(&r->ws, MAX_MESSAGE, encoder, &callbacks, r) == 0);
    fuzz_split_t s = fuzz_split_init(mode, data, len);
    for (size_t off = 0; off < len;) {
        size_t n = fuzz_next_chunk(&s, len - off);
        r->rc = mw_ws_feed(r->ws, data + off, n);
        off += n;
        if (r->rc != 0 || mw_ws_done(r->ws))
            break; /* conn.c drains: later bytes are discarded */
        if (mode == FUZZ_RANDOM)
            mw_ws_sleep(r->ws); /* only sleeps when nothing is pending */
    }
    if (r->rc != 0) {
        FUZZ_CHECK(r->rc == MW_EPROTO || r->rc == MW_EUTF8 || r->rc == MW_ETOOBIG);
        FUZZ_CHECK(mw_ws_done(r->ws) && !mw_ws_can_send(r->ws) && mw_ws_close_sent(r->ws));
        /* Sticky: more input changes nothing and writes nothing. */
        size_t before = r->out.len;
        FUZZ_CHECK(mw_ws_feed(r->ws, data, len) == r->rc);
        FUZZ_CHECK(mw_ws_send(r->ws, 1, (const uint8_t *)"x", 1) == MW_ECLOSED);
        FUZZ_CHECK(r->out.len == before);
    }
    const char *reason;
    size_t rlen;
    r->status = mw_ws_status(r->ws, &reason, &rlen);
    FUZZ_CHECK(rlen <= 123 && mw_utf8_valid((const uint8_t *)reason, rlen));
    buf_add(&r->reason, reason, rlen);
}

typedef struct {
    int opcode;
    const uint8_t *payload;
    size_t len;
    size_t start; /* offset of the frame in out */
} frame_t;

/* next_frame parses one server frame at *off; every frame the server
 * writes is final, unmasked and without RSV bits. */
static frame_t next_frame(const buf_t *out, size_t *off) {
    const uint8_t *p = out->p + *off;
    size_t avail = out->len - *off, hl = 2;
    FUZZ_CHECK(avail >= 2);
    FUZZ_CHECK((p[0] & 0xF0) == 0x80); /* FIN, no RSV */
    FUZZ_CHECK((p[1] & 0x80) == 0);    /* a server never masks */
    uint64_t len = p[1] & 0x7F;
    if (len == 126) {
        FUZZ_CHECK(avail >= 4);
        len = (uint64_t)p[2] << 8 | p[3];
        FUZZ_CHECK(len >= 126); /* minimal length encodings */
        hl = 4;
    } else if (len == 127) {
        FUZZ_CHECK(avail >= 10);
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | p[2 + i];
        FUZZ_CHECK(len >= 65536);
        hl = 10;
    }
    FUZZ_CHECK(avail - hl >= len);
    frame_t f = {p[0] & 0x0F, p + hl, (size_t)len, *off};
    *off += hl + (size_t)len;
    return f;
}

/* check_output walks what the server wrote; returns the offset of its
 * close frame (out.len when it wrote none). */
static size_t check_output(const run_t *r) {
    size_t off = 0, echo = 0, close_at = r->out.len;
    while (off < r->out.len) {
        FUZZ_CHECK(close_at == r->out.len); /* nothing after a close */
        frame_t f = next_frame(&r->out, &off);
        switch (f.opcode) {
        case 0x1:
        case 0x2: { /* our echoes, in order */
            FUZZ_CHECK(echo < r->echoes.len);
            const uint8_t *e = r->echoes.p + echo;
            uint64_t n;
            memcpy(&n, e + 1, sizeof n);
            FUZZ_CHECK(e[0] == (f.opcode == 0x2) && n == f.len);
            FUZZ_CHECK(memcmp(e + 1 + sizeof n, f.payload, f.len) == 0);
            FUZZ_CHECK(f.opcode == 0x2 || mw_utf8_valid(f.payload, f.len));
            echo += 1 + sizeof n + f.len;
            break;
        }
        case 0xA: FUZZ_CHECK(f.len <= 125); break;
        case 0x8: {
            FUZZ_CHECK(f.len == 0 || (f.len >= 2 && f.len <= 125));
            if (f.len >= 2) {
                FUZZ_CHECK(mw_ws_close_code_sendable((unsigned)(f.payload[0] << 8 | f.payload[1])));
                FUZZ_CHECK(mw_utf8_valid(f.payload + 2, f.len - 2));
            }
            close_at = f.start;
            break;
        }
        default: FUZZ_CHECK(!"the server wrote a frame with an unexpected opcode");
        }
    }
    FUZZ_CHECK(echo == r->echoes.len); /* every echo was written */
    return close_at;
}

static int close_code_of(const run_t *r, size_t close_at) {
    size_t off = close_at;
    frame_t f = next_frame(&r->out, &off);
    return f.len >= 2 ? f.payload[0] << 8 | f.payload[1] : -1;
}

/* check_close: the close frame and the status agree with how the
 * connection ended. */
static void check_close(const run_t *r, size_t close_at) {
    int wrote_close = close_at < r->out.len;
    if (r->rc != 0) {
        FUZZ_CHECK(wrote_close);
        int want = r->rc == MW_EUTF8 ? 1007 : r->rc == MW_ETOOBIG ? 1009 : 1002;
        FUZZ_CHECK(r->status == want);
        if (!r->app_closed)
            FUZZ_CHECK(close_code_of(r, close_at) == want);
        return;
    }
    if (r->app_closed) {
        FUZZ_CHECK(wrote_close && close_code_of(r, close_at) == 1000);
        FUZZ_CHECK(r->status == 1006 || mw_ws_done(r->ws)); /* 1006 until the peer answers */
        return;
    }
    if (!wrote_close) {
        FUZZ_CHECK(r->status == 1006 && !mw_ws_done(r->ws));
        return;
    }
    /* The peer closed: we echoed its code and reason, or an empty close. */
    FUZZ_CHECK(mw_ws_done(r->ws));
    size_t off = close_at;
    frame_t f = next_frame(&r->out, &off);
    if (r->status == 1005) {
        FUZZ_CHECK(f.len == 0);
    } else {
        FUZZ_CHECK(close_code_of(r, close_at) == r->status);
        FUZZ_CHECK(mw_ws_close_code_sendable(r->status));
        FUZZ_CHECK(f.len - 2 == r->reason.len &&
                   (f.len == 2 || memcmp(f.payload + 2, r->reason.p, r->reason.len) == 0));
    }
}

static int same_buf(const buf_t *a, const buf_t *b) {
    return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

static int same_run(const run_t *a, const run_t *b) {
    return a->rc == b->rc && a->status == b->status && a->app_closed == b->app_closed &&
           same_buf(&a->out, &b->out) && same_buf(&a->reason, &b->reason);
}

static int refused_reason(const run_t *r) {
    return r->rc == MW_EUTF8 && r->status == 1007;
}

/* The known wslay 1.1 defect (docs/architecture.md): wslay checks the
 * UTF-8 of a close reason chunk by chunk, skipping the first two bytes of
 * every chunk, so the fate of the peer's close frame can depend on how it
 * was split. One run refuses it with 1007 where the other echoes it (its
 * reason valid, with non-ASCII characters), refuses it with 1002 (its code
 * invalid too, and the bad reason unseen until after the code check), or
 * still waits for the rest of the frame (a bad reason unseen so far). If
 * our own close was already out, neither run writes anything more, and
 * only the status differs (1006 when wslay refused the frame, so it was
 * never read; 1002 when its code is invalid too and ws.c saw that first).
 * Everything written before that close is the same. */
static int after_our_close(const run_t *r) {
    return r->rc == 0 || refused_reason(r) || (r->rc == MW_EPROTO && r->status == 1002);
}

static int close_reason_defect(const run_t *a, size_t a_close, const run_t *b, size_t b_close) {
    if (a->app_closed)
        return same_buf(&a->out, &b->out) && after_our_close(a) && after_our_close(b);
    if (refused_reason(a)) {
        const run_t *t = a;
        a = b, b = t;
        size_t c = a_close;
        a_close = b_close, b_close = c;
    }
    if (!refused_reason(b) || b_close == b->out.len)
        return 0;
    int waiting = a->rc == 0 && a_close == a->out.len && a->status == 1006;
    if (a->rc == 0 && !waiting) { /* echoed: a reason wslay can misjudge */
        int non_ascii = 0;
        for (size_t i = 0; i < a->reason.len; i++)
            non_ascii |= a->reason.p[i] >= 0x80;
        if (!non_ascii || a_close == a->out.len)
            return 0;
    } else if (a->rc != 0 && a->rc != MW_EPROTO) {
        return 0;
    }
    return a_close == b_close && (a_close == 0 || memcmp(a->out.p, b->out.p, a_close) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
    if (!encoder)
        FUZZ_CHECK(mw_ws_encoder_create(&encoder) == 0);
    run_t runs[FUZZ_NSPLITS];
    size_t close_at[FUZZ_NSPLITS];
    for (int m = 0; m < FUZZ_NSPLITS; m++) {
        feed(&runs[m], data, len, m);
        close_at[m] = check_output(&runs[m]);
        if (getenv("FUZZ_VERBOSE")) /* to read a crash: what each run did */
            fprintf(stderr, "split %d: rc %d status %u app_closed %d wrote %zu (close at %zu)\n", m,
                    runs[m].rc, runs[m].status, runs[m].app_closed, runs[m].out.len, close_at[m]);
        check_close(&runs[m], close_at[m]);
    }
    for (int m = 1; m < FUZZ_NSPLITS; m++) {
        const run_t *a = &runs[0], *b = &runs[m];
        FUZZ_CHECK(same_buf(&a->msgs, &b->msgs)); /* always the same messages */
        FUZZ_CHECK(same_run(a, b) || close_reason_defect(a, close_at[0], b, close_at[m]));
    }
    for (int m = 0; m < FUZZ_NSPLITS; m++) {
        mw_ws_free(runs[m].ws);
        free(runs[m].out.p);
        free(runs[m].msgs.p);
        free(runs[m].echoes.p);
        free(runs[m].reason.p);
    }
    return 0;
}
