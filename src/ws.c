/*
 * ws.c - the WebSocket protocol for one connection, on wslay's event API.
 *
 * wslay parses and serializes frames, reassembles fragmented messages,
 * answers pings, validates UTF-8 (fail-fast, per chunk), masking, RSV bits,
 * opcodes and close codes, and enforces max_message_size with 1009 per frame.
 * We add the sum over a fragmented message, and judge the size from the
 * frame header (check_header): wslay only looks once a payload byte is in.
 *
 * Three things wslay 1.1 does not do the way RFC 6455 wants, and that we
 * fix here without touching its internals:
 *   - a frame-level violation (a control frame over 125 bytes or
 *     fragmented, a non-minimal or 63-bit length) makes wslay queue a close
 *     frame without a status code; we send 1002 instead;
 *   - a close frame with a 1-byte payload is taken as "no status"; it is a
 *     protocol error, so we send 1002;
 *   - its table of valid close codes predates IANA's registration of 1012
 *     (Service Restart), 1013 (Try Again Later) and 1014 (Bad Gateway): it
 *     fails a peer's close carrying one of them with 1002, and when it is
 *     the answer to our own close (1013 for a slow consumer, echoed as RFC
 *     6455 5.5.1 suggests) it stops reading without completing the
 *     handshake, so the connection would wait for close_timeout.
 * In the first two cases wslay's own queued close is never sent: once
 * `failed` is set, wslay_event_send is not called again. For the third,
 * the peer's close frame is judged by on_close, with the one rule for close
 * codes (mw_ws_close_code_sendable: what an endpoint may send is what we
 * accept). wslay hands us the payload of a close frame chunk by chunk and
 * calls on_frame_end before it looks at the code, so on_close decides first:
 * it fails the connection (1002, 1007), or records the close and queues the
 * answer itself with wslay_event_queue_close, which does not check codes.
 * wslay's own answer that follows (its echo, or its 1002 for a code it does
 * not know) then finds a close already queued or sent and is dropped
 * (WSLAY_ERR_NO_MORE_MSG), and wslay stops reading as after any close.
 *
 * Fast path for small complete frames: wslay's receive path costs about
 * 1,600 instructions per small message (copying into its buffer, unmasking
 * and UTF-8-checking one byte at a time, its callback chain). A data frame
 * that is complete in the bytes fed, unfragmented (FIN, text or binary),
 * without RSV bits, masked, with a minimal length under 64 KiB and within
 * max_message_size, whose text is valid UTF-8, and that arrives while wslay
 * is between frames with nothing else in progress (no fragmented message,
 * no close sent or started) is delivered by fast_frames: unmasked eight
 * bytes at a time into a scratch buffer, checked by mw_utf8_valid, handed
 * to on_message. wslay would accept it and deliver the same bytes, and it
 * leaves wslay's state as wslay itself would (between frames, nothing
 * held), so wslay takes over at any byte. Everything else (control frames,
 * fragments, frames split across reads, anything wslay would refuse) goes
 * through wslay as before; when the end of the frame wslay is given is
 * known, it gets only that frame and the fast path goes on after it
 * (wslay_share). fuzz_ws feeds the same bytes in one read (fast path), one
 * byte per read (wslay only) and random splits, and compares what is
 * delivered and written.
 *
 * Output ordering: data messages are framed by the worker's encoder (wslay's
 * frame API) straight into on_write; control frames wslay produces itself
 * (pongs, the close) are flushed with wslay_event_send as soon as they are
 * queued, also from inside wslay's receive callback. So replies, pongs,
 * broadcasts and the final close frame leave in the order they were
 * produced, and a message is copied once, into the output queue.
 */
#include "ws.h"
#include "errors.h"
#include "outq.h"
#include "utf8.h"

#include <stdlib.h>
#include <string.h>
#include <wslay/wslay.h>

struct mw_ws_encoder {
    wslay_frame_context_ptr fctx;
    int (*sink)(void *data, const uint8_t *bytes, size_t len);
    void *sink_data;
    int failed;
    /* The fast path's unmasked copy of one frame: one per loop (the
     * encoder is), allocated on the first frame that takes the fast path.
     * scratch_busy keeps a feed nested in on_message (none exists today)
     * off it. */
    uint8_t *scratch;
    int scratch_busy;
};

struct mw_ws {
    wslay_event_context_ptr ctx; /* NULL while asleep (see mw_ws_sleep) */
    mw_ws_encoder_t *enc;
    uint64_t max_message_size;
    uint64_t fed, framed; /* bytes given to wslay, and bytes of completed frames */
    int in_fragments;     /* a fragmented message is being received */
    int in_frame;         /* wslay reported a frame start and not yet its end */
    uint8_t hdr[14];      /* the next frame's header bytes wslay holds unreported */
    /* Message assembly (wslay runs in no-buffering mode for data frames). */
    uint64_t cur_payload; /* payload length of the frame being received */
    uint8_t cur_opcode;   /* opcode of the frame being received */
    uint8_t cur_fin;
    int msg_binary;
    const uint8_t *direct; /* the whole message, still in wslay's input buffer */
    size_t direct_len;
    uint8_t *msg; /* assembled message when it came in pieces */
    size_t msg_len, msg_cap;
    mw_ws_callbacks_t cb;
    void *data;
    const uint8_t *in; /* the bytes mw_ws_feed is working through */
    size_t inlen;
    int failed;  /* we failed the connection; wslay sends nothing more */
    int closing; /* mw_ws_close was called */
    int write_error;
    uint16_t fail_code;
    uint16_t peer_code; /* from the peer's close frame, 1005 if it had none */
    int peer_closed;
    /* The peer's close payload as it arrives (on_frame_chunk), then only
     * its reason (on_close); allocated when a close frame with a payload
     * starts. */
    char *reason;
    size_t reason_len;
};

int mw_ws_close_code_sendable(unsigned code) {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *user_data) {
    (void)flags;
    mw_ws_t *ws = user_data;
    if (ws->inlen == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < ws->inlen ? len : ws->inlen;
    memcpy(buf, ws->in, n);
    ws->in += n;
    ws->inlen -= n;
    ws->fed += n;
    return (ssize_t)n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user_data) {
    (void)flags;
    mw_ws_t *ws = user_data;
    if (ws->cb.on_write(ws->data, data, len) != 0) {
        ws->write_error = 1;
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static int genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user_data) {
    (void)ctx;
    (void)user_data;
    memset(buf, 0, len); /* a server never masks; wslay never asks */
    return 0;
}

static void flush(mw_ws_t *ws) {
    if (!ws->failed && ws->ctx)
        wslay_event_send(ws->ctx);
}

static void fail(mw_ws_t *ws, uint16_t code);
static int encode_to(mw_ws_encoder_t *enc, uint8_t opcode, const uint8_t *msg, size_t len,
                     int (*sink)(void *, const uint8_t *, size_t), void *sink_data);

/* wire_size is a client frame's size on the wire: 2 bytes, the extended
 * length (wslay refuses non-minimal encodings, so it follows from the
 * length), the 4-byte mask key and the payload. Summed at each frame end
 * and compared with the bytes fed, it tells mw_ws_sleep when wslay holds no
 * partial frame. */
static uint64_t wire_size(uint64_t payload) {
    return 2 + 4 + (payload < 126 ? 0 : payload < 65536 ? 2 : 8) + payload;
}

static int is_data(uint8_t opcode) {
    return opcode == WSLAY_TEXT_FRAME || opcode == WSLAY_BINARY_FRAME ||
           opcode == WSLAY_CONTINUATION_FRAME;
}

static void on_frame_start(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_start_arg *arg, void *user_data) {
    (void)ctx;
    mw_ws_t *ws = user_data;
    uint64_t n = arg->payload_length;
    ws->cur_payload = n;
    ws->cur_opcode = arg->opcode;
    ws->cur_fin = arg->fin;
    ws->in_frame = 1;
    if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME) {
        ws->in_fragments = !arg->fin;
        ws->msg_binary = arg->opcode == WSLAY_BINARY_FRAME;
        ws->msg_len = 0;
        ws->direct = NULL;
    } else if (arg->opcode == WSLAY_CONTINUATION_FRAME && arg->fin) {
        ws->in_fragments = 0;
    }
    /* wslay checks each frame against max_message_size; in no-buffering
     * mode the sum over a fragmented message is ours to check. */
    if (is_data(arg->opcode) && ws->msg_len + n > ws->max_message_size)
        fail(ws, 1009);
    /* A close frame's payload (at most 125 bytes: wslay refuses a longer
     * control frame before reporting it) is collected for on_close. */
    if (arg->opcode == WSLAY_CONNECTION_CLOSE && !ws->failed) {
        free(ws->reason);
        ws->reason = NULL;
        ws->reason_len = 0;
        if (n > 0 && !(ws->reason = malloc((size_t)n)))
            fail(ws, 1011);
    }
}

/* append copies a piece of the message being assembled. */
static int append(mw_ws_t *ws, const uint8_t *data, size_t len) {
    if (ws->msg_len + len > ws->msg_cap) {
        size_t cap = ws->msg_cap ? ws->msg_cap * 2 : 1024;
        while (cap < ws->msg_len + len)
            cap *= 2;
        uint8_t *m = realloc(ws->msg, cap);
        if (!m)
            return MW_ENOMEM;
        ws->msg = m;
        ws->msg_cap = cap;
    }
    memcpy(ws->msg + ws->msg_len, data, len);
    ws->msg_len += len;
    return 0;
}

static void on_frame_chunk(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_chunk_arg *arg, void *user_data) {
    (void)ctx;
    mw_ws_t *ws = user_data;
    if (ws->failed)
        return;
    if (ws->cur_opcode == WSLAY_CONNECTION_CLOSE) {
        /* wslay found these bytes valid so far (UTF-8 of the reason). */
        if (arg->data_length && ws->reason_len + arg->data_length <= ws->cur_payload) {
            memcpy(ws->reason + ws->reason_len, arg->data, arg->data_length);
            ws->reason_len += arg->data_length;
        }
        return;
    }
    if (!is_data(ws->cur_opcode))
        return; /* wslay buffers pings and pongs itself */
    /* Fast path: an unfragmented message whose payload arrived in one piece
     * is delivered straight from wslay's input buffer, which stays valid
     * until the frame-end callback that follows at once (the frame is
     * complete, so no other chunk of it can come first). */
    if (ws->cur_opcode != WSLAY_CONTINUATION_FRAME && ws->cur_fin && ws->msg_len == 0 &&
        !ws->direct && arg->data_length == ws->cur_payload) {
        ws->direct = arg->data;
        ws->direct_len = arg->data_length;
        return;
    }
    if (arg->data_length && append(ws, arg->data, arg->data_length) != 0)
        fail(ws, 1011);
}

static void on_close(mw_ws_t *ws);

static void on_frame_end(wslay_event_context_ptr ctx, void *user_data) {
    (void)ctx;
    mw_ws_t *ws = user_data;
    ws->framed += wire_size(ws->cur_payload);
    ws->in_frame = 0;
    if (!ws->failed && ws->cur_opcode == WSLAY_CONNECTION_CLOSE) {
        on_close(ws);
        return;
    }
    if (ws->failed || !is_data(ws->cur_opcode) || !ws->cur_fin)
        return;
    /* A complete, UTF-8-checked message (wslay rejects a text message that
     * ends mid-sequence before calling this). After we sent a close frame,
     * data from the peer is discarded. */
    const uint8_t *m = ws->direct ? ws->direct : ws->msg;
    size_t len = ws->direct ? ws->direct_len : ws->msg_len;
    ws->direct = NULL;
    ws->msg_len = 0;
    if (!ws->closing && !wslay_event_get_close_sent(ws->ctx))
        ws->cb.on_message(ws->data, ws->msg_binary, m ? m : (const uint8_t *)"", len);
    if (ws->msg_cap > 64 * 1024) { /* do not keep a big buffer after a big message */
        free(ws->msg);
        ws->msg = NULL;
        ws->msg_cap = 0;
    }
    /* No wslay_event_send here: replies bypass wslay's queue (the encoder
     * writes them), and a close the app started flushed itself. */
}

static ssize_t frame_recv_cb(uint8_t *buf, size_t len, int flags, void *user_data) {
    (void)buf, (void)len, (void)flags, (void)user_data;
    return -1;
}

static int frame_genmask_cb(uint8_t *buf, size_t len, void *user_data) {
    (void)user_data;
    memset(buf, 0, len);
    return 0;
}

static void fail(mw_ws_t *ws, uint16_t code) {
    if (ws->failed)
        return;
    ws->failed = 1;
    ws->fail_code = code;
    wslay_event_shutdown_read(ws->ctx);
    if (wslay_event_get_close_sent(ws->ctx))
        return; /* our close frame is already out; nothing more may follow */
    /* The close wslay would not send right, framed by the worker's encoder
     * (wslay's frame API, never by hand); wslay's own is never flushed. */
    uint8_t payload[2] = {(uint8_t)(code >> 8), (uint8_t)(code & 0xff)};
    encode_to(ws->enc, WSLAY_CONNECTION_CLOSE, payload, 2, ws->cb.on_write, ws->data);
}

/* on_close judges the peer's complete close frame before wslay does (see
 * the file comment): a 1-byte payload or a code no endpoint may send fails
 * the connection with 1002, a reason that is not UTF-8 (re-checked: wslay
 * 1.1 can miss one, docs/architecture.md) with 1007. Otherwise the close is
 * recorded and, unless our own close is already out, answered with the
 * same code and reason (an empty close when it had none). */
static void on_close(mw_ws_t *ws) {
    size_t len = ws->reason_len;
    uint16_t code = 1005;
    if (len == 1) {
        fail(ws, 1002);
        return;
    }
    if (len >= 2) {
        const uint8_t *p = (const uint8_t *)ws->reason;
        code = (uint16_t)(p[0] << 8 | p[1]);
        if (!mw_ws_close_code_sendable(code)) {
            fail(ws, 1002);
            return;
        }
        if (!mw_utf8_valid(p + 2, len - 2)) {
            fail(ws, 1007);
            return;
        }
        memmove(ws->reason, ws->reason + 2, len - 2);
        ws->reason_len = len - 2;
    }
    if (!ws->closing) {
        int r = wslay_event_queue_close(ws->ctx, len >= 2 ? code : 0, (const uint8_t *)ws->reason,
                                        ws->reason_len);
        if (r != 0 && r != WSLAY_ERR_NO_MORE_MSG) {
            fail(ws, 1011); /* out of memory */
            return;
        }
    }
    ws->peer_closed = 1;
    ws->peer_code = code;
    flush(ws);
}

/* on_msg_recv sends the pong wslay queued for a ping at once, in order
 * with our replies. Data messages were delivered by on_frame_end
 * (no-buffering mode), a close was judged and answered by on_close, and a
 * pong needs nothing. */
static void on_msg_recv(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                        void *user_data) {
    (void)ctx;
    mw_ws_t *ws = user_data;
    if (!ws->failed && arg->opcode == WSLAY_PING)
        flush(ws);
}

static ssize_t enc_send_cb(const uint8_t *data, size_t len, int flags, void *user_data) {
    (void)flags;
    mw_ws_encoder_t *enc = user_data;
    if (enc->sink(enc->sink_data, data, len) != 0) {
        enc->failed = 1;
        return -1;
    }
    return (ssize_t)len;
}

static int encoder_context(mw_ws_encoder_t *enc, wslay_frame_context_ptr *out) {
    static const struct wslay_frame_callbacks fcb = {enc_send_cb, frame_recv_cb, frame_genmask_cb};
    return wslay_frame_context_init(out, &fcb, enc) == 0 ? 0 : MW_ENOMEM;
}

int mw_ws_encoder_create(mw_ws_encoder_t **out) {
    mw_ws_encoder_t *enc = calloc(1, sizeof *enc);
    if (!enc)
        return MW_ENOMEM;
    if (encoder_context(enc, &enc->fctx) != 0) {
        free(enc);
        return MW_ENOMEM;
    }
    *out = enc;
    return 0;
}

void mw_ws_encoder_free(mw_ws_encoder_t *enc) {
    if (!enc)
        return;
    wslay_frame_context_free(enc->fctx);
    free(enc->scratch);
    free(enc);
}

/* encode_to frames one unfragmented message (data, or a close) into sink. */
static int encode_to(mw_ws_encoder_t *enc, uint8_t opcode, const uint8_t *msg, size_t len,
                     int (*sink)(void *, const uint8_t *, size_t), void *sink_data) {
    enc->sink = sink;
    enc->sink_data = sink_data;
    enc->failed = 0;
    struct wslay_frame_iocb iocb = {
        .fin = 1, .opcode = opcode, .payload_length = len, .data = msg, .data_length = len};
    ssize_t r = wslay_frame_send(enc->fctx, &iocb);
    /* The sinks take every byte, so one call writes the whole frame. */
    if (enc->failed || r < 0 || (size_t)r != len) {
        /* A sink that ran out of memory left wslay mid-frame: start over
         * with a fresh context so the next frame is not corrupted. */
        wslay_frame_context_ptr fresh;
        if (encoder_context(enc, &fresh) == 0) {
            wslay_frame_context_free(enc->fctx);
            enc->fctx = fresh;
        }
        return MW_ENOMEM;
    }
    return 0;
}

static int buf_sink(void *data, const uint8_t *bytes, size_t len) {
    mw_buf_t *b = data;
    if (b->cap - b->len < len)
        return -1;
    memcpy(b->data + b->len, bytes, len);
    b->len += (uint32_t)len;
    return 0;
}

int mw_ws_encode_ping(mw_ws_encoder_t *enc, mw_buf_t **out) {
    mw_buf_t *b = mw_buf_new(2);
    if (!b)
        return MW_ENOMEM;
    if (encode_to(enc, WSLAY_PING, NULL, 0, buf_sink, b) != 0) {
        mw_buf_unref(b);
        return MW_ENOMEM;
    }
    *out = b;
    return 0;
}

int mw_ws_encode(mw_ws_encoder_t *enc, int binary, const uint8_t *msg, size_t len, mw_buf_t **out) {
    if (!binary && !mw_utf8_valid(msg, len))
        return MW_EUTF8;
    mw_buf_t *b = mw_buf_new(len + 10); /* the largest server frame header is 10 bytes */
    if (!b)
        return MW_ENOMEM;
    int rc = encode_to(enc, binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME, msg, len, buf_sink, b);
    if (rc != 0) {
        mw_buf_unref(b);
        return rc;
    }
    *out = b;
    return 0;
}

#define FAST_MAX 65535 /* frames with a 16-bit length at most: the scratch size */

/* unmask copies n bytes of payload from src to dst, XORed with the 4-byte
 * key, eight bytes at a time. */
static void unmask(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t key[4]) {
    uint32_t k32;
    memcpy(&k32, key, 4);
    uint64_t k = (uint64_t)k32 << 32 | k32, w;
    size_t i = 0;
    for (; n - i >= 8; i += 8) {
        memcpy(&w, src + i, 8);
        w ^= k;
        memcpy(dst + i, &w, 8);
    }
    for (; i < n; i++)
        dst[i] = src[i] ^ key[i & 3];
}

/* fast_ready is 1 when wslay sits between frames with nothing in progress
 * and a data message may be delivered (see the file comment). Whether our
 * close was sent is asked once per feed, in fast_frames: inside on_message
 * only the app can start a close, and that sets `closing`. */
static int fast_ready(const mw_ws_t *ws) {
    return !ws->failed && !ws->closing && !ws->in_fragments && ws->fed == ws->framed;
}

/* fast_frames delivers the complete, simple data frames at the start of
 * p (see the file comment) and returns how many bytes they took; it stops
 * at the first frame it leaves to wslay. */
static size_t fast_frames(mw_ws_t *ws, const uint8_t *p, size_t len) {
    size_t used = 0;
    mw_ws_encoder_t *enc = ws->enc;
    if (enc->scratch_busy || wslay_event_get_close_sent(ws->ctx))
        return 0;
    if (!enc->scratch && !(enc->scratch = malloc(FAST_MAX)))
        return 0; /* no memory for the fast path: wslay takes everything */
    while (len - used >= 6 && fast_ready(ws)) {
        const uint8_t *f = p + used;
        size_t avail = len - used, hlen = 6;
        uint8_t b0 = f[0], b1 = f[1];
        if ((b0 != 0x81 && b0 != 0x82) || !(b1 & 0x80))
            break; /* not FIN + text/binary, RSV bits, or unmasked */
        size_t n = b1 & 0x7f;
        if (n == 126) {
            if (avail < 8)
                break;
            n = (size_t)f[2] << 8 | f[3];
            hlen = 8;
            if (n < 126)
                break; /* not minimal: wslay's 1002 */
        } else if (n == 127) {
            break;
        }
        if (avail - hlen < n || n > ws->max_message_size)
            break;
        unmask(enc->scratch, f + hlen, n, f + hlen - 4);
        int binary = b0 == 0x82;
        if (!binary && !mw_utf8_valid(enc->scratch, n))
            break; /* wslay's 1007, found where wslay finds it */
        used += hlen + n;
        enc->scratch_busy = 1;
        ws->cb.on_message(ws->data, binary, enc->scratch, n);
        enc->scratch_busy = 0;
    }
    return used;
}

/* wake (re)creates the wslay context of a sleeping endpoint. */
static int wake(mw_ws_t *ws) {
    static const struct wslay_event_callbacks callbacks = {
        recv_cb, send_cb, genmask_cb, on_frame_start, on_frame_chunk, on_frame_end, on_msg_recv};
    if (ws->ctx)
        return 0;
    if (wslay_event_context_server_init(&ws->ctx, &callbacks, ws) != 0) {
        ws->ctx = NULL;
        return MW_ENOMEM;
    }
    wslay_event_config_set_max_recv_msg_length(ws->ctx, ws->max_message_size);
    /* Data frames reach us piece by piece (on_frame_chunk) instead of being
     * copied into a per-message allocation and flattened again. */
    wslay_event_config_set_no_buffering(ws->ctx, 1);
    ws->fed = ws->framed = 0;
    ws->in_frame = 0;
    return 0;
}

int mw_ws_create(mw_ws_t **out, uint64_t max_message_size, mw_ws_encoder_t *enc,
                 const mw_ws_callbacks_t *cb, void *data) {
    mw_ws_t *ws = calloc(1, sizeof *ws);
    if (!ws)
        return MW_ENOMEM;
    ws->cb = *cb;
    ws->data = data;
    ws->enc = enc;
    ws->max_message_size = max_message_size;
    /* No wslay context yet: a client that never sends costs no parser
     * buffers. mw_ws_feed and mw_ws_close create it when needed. */
    *out = ws;
    return 0;
}

int mw_ws_awake(const mw_ws_t *ws) {
    return ws->ctx != NULL;
}

int mw_ws_sleep(mw_ws_t *ws) {
    if (!ws->ctx || ws->failed || ws->closing || ws->peer_closed || ws->write_error ||
        ws->in_fragments || ws->fed != ws->framed || wslay_event_want_write(ws->ctx) ||
        wslay_event_get_close_sent(ws->ctx) || wslay_event_get_close_received(ws->ctx))
        return 0;
    wslay_event_context_free(ws->ctx);
    ws->ctx = NULL;
    free(ws->msg);
    ws->msg = NULL;
    ws->msg_len = ws->msg_cap = 0;
    return 1;
}

void mw_ws_free(mw_ws_t *ws) {
    if (!ws)
        return;
    free(ws->reason);
    free(ws->msg);
    wslay_event_context_free(ws->ctx);
    free(ws);
}

static int error_for(uint16_t code) {
    switch (code) {
    case 1007: return MW_EUTF8;
    case 1009: return MW_ETOOBIG;
    default: return MW_EPROTO;
    }
}

/* check_header fails with 1009 on the header of a data frame that takes
 * its message past max_message_size, before any of the payload arrives.
 * wslay reports a frame (and checks its size) only with the first payload
 * byte, so a peer announcing a gigabyte and sending nothing more would hold
 * the connection. Called once wslay has consumed a feed (`got` bytes of
 * it, ending at `end`): when no frame is in progress, the bytes after the
 * last complete frame are the next header, kept in hdr across feeds. wslay
 * has checked what it parsed of them (control frame lengths, minimal
 * length encodings). The size is judged only when wslay's other
 * frame-start checks (RSV bits, mask, opcode in sequence) will pass, so
 * however the bytes are split, a bad frame gets the same close code. */
static void check_header(mw_ws_t *ws, const uint8_t *end, size_t got) {
    uint64_t pending = ws->fed - ws->framed;
    if (ws->in_frame || pending == 0 || pending > sizeof ws->hdr || ws->closing ||
        wslay_event_get_close_sent(ws->ctx))
        return; /* after our close, wslay discards the peer's data as before */
    if (pending <= got)
        memcpy(ws->hdr, end - pending, pending);
    else
        memcpy(ws->hdr + (pending - got), end - got, got);
    if (pending < 2)
        return;
    uint8_t b0 = ws->hdr[0], b1 = ws->hdr[1], opcode = b0 & 0x0f;
    size_t hlen = (b1 & 0x7f) == 127 ? 10 : (b1 & 0x7f) == 126 ? 4 : 2;
    if (pending < hlen || (b0 & 0x70) || !(b1 & 0x80))
        return; /* RSV bits or no mask: wslay's 1002 */
    int starts = opcode == WSLAY_TEXT_FRAME || opcode == WSLAY_BINARY_FRAME;
    if (starts ? ws->in_fragments : !(opcode == WSLAY_CONTINUATION_FRAME && ws->in_fragments))
        return; /* a control frame, or an opcode out of sequence (1002) */
    uint64_t n = b1 & 0x7f;
    if (hlen > 2) {
        n = 0;
        for (size_t i = 2; i < hlen; i++)
            n = n << 8 | ws->hdr[i];
    }
    if ((starts ? 0 : ws->msg_len) + n > ws->max_message_size)
        fail(ws, 1009);
}

/* frame_size reads a client frame header from h (have bytes of it) and
 * returns the frame's size on the wire, or 0 when the header is not all
 * there or is one wslay refuses from the header alone (it then fails the
 * connection before needing more bytes). */
static uint64_t frame_size(const uint8_t *h, size_t have) {
    if (have < 2 || !(h[1] & 0x80))
        return 0;
    size_t n7 = h[1] & 0x7f, hlen = n7 == 127 ? 14 : n7 == 126 ? 8 : 6;
    if (have < hlen)
        return 0;
    uint64_t n = n7;
    if (hlen > 6) {
        n = 0;
        for (size_t i = 2; i < hlen - 4; i++)
            n = n << 8 | h[i];
    }
    return n > UINT64_MAX - 14 ? 0 : hlen + n;
}

/* wslay_share returns how many of the len bytes at p wslay must take
 * before the fast path may look again: the rest of the frame wslay is in
 * (or the frame at p, which the fast path just left to it), when that
 * frame's end is known and the fast path could take what follows; all of
 * them otherwise. Splitting wslay's input at frame ends is what a TCP
 * split there would do, so wslay behaves the same. */
static size_t wslay_share(mw_ws_t *ws, const uint8_t *p, size_t len) {
    if (ws->failed || ws->closing || ws->in_fragments || ws->enc->scratch_busy ||
        wslay_event_get_close_sent(ws->ctx))
        return len;
    uint64_t pending = ws->fed - ws->framed, size;
    if (ws->in_frame) {
        size = wire_size(ws->cur_payload); /* the header wslay accepted was minimal */
    } else if (pending == 0) {
        size = frame_size(p, len);
    } else if (pending <= sizeof ws->hdr) {
        uint8_t h[sizeof ws->hdr]; /* the header bytes wslay holds (check_header), then p's */
        size_t have = (size_t)pending, more = len < sizeof h - have ? len : sizeof h - have;
        memcpy(h, ws->hdr, have);
        memcpy(h + have, p, more);
        size = frame_size(h, have + more);
    } else {
        return len;
    }
    if (size <= pending || size - pending >= len)
        return len;
    return (size_t)(size - pending);
}

/* feed_wslay runs wslay over len bytes and settles what it did: the close
 * codes wslay does not send right, the early size check on a pending
 * header, control frames to flush. Returns like mw_ws_feed. */
static int feed_wslay(mw_ws_t *ws, const uint8_t *bytes, size_t len) {
    ws->in = bytes;
    ws->inlen = len;
    uint64_t fed = ws->fed;
    int r = wslay_event_recv(ws->ctx);
    ws->in = NULL;
    ws->inlen = 0;
    if (r == WSLAY_ERR_CALLBACK_FAILURE && !ws->write_error) {
        /* Our recv callback never fails, so this is a frame-level
         * violation that wslay answers without a status code. */
        fail(ws, 1002);
    } else if (r != 0 && !ws->failed) {
        fail(ws, 1011); /* out of memory inside wslay */
    }
    if (!ws->failed && wslay_event_get_read_enabled(ws->ctx))
        check_header(ws, bytes + (ws->fed - fed), (size_t)(ws->fed - fed));
    if (ws->failed)
        return error_for(ws->fail_code);
    flush(ws);
    /* wslay failed the connection itself (RSV, opcode, masking, UTF-8,
     * size, close code): it sent a close we did not ask for, and the peer
     * sent none. */
    if (wslay_event_get_close_sent(ws->ctx) && !ws->closing && !ws->peer_closed) {
        ws->failed = 1;
        ws->fail_code = wslay_event_get_status_code_sent(ws->ctx);
        return error_for(ws->fail_code);
    }
    return 0;
}

int mw_ws_feed(mw_ws_t *ws, const uint8_t *bytes, size_t len) {
    if (ws->failed)
        return error_for(ws->fail_code);
    if (wake(ws) != 0) {
        ws->write_error = 1; /* cannot parse without a context: end it */
        return MW_ENOMEM;
    }
    /* The fast path and wslay take turns (see the file comment); a frame
     * split across reads is finished by wslay, and the fast path goes on
     * after it. */
    for (;;) {
        if (!wslay_event_get_read_enabled(ws->ctx))
            return 0; /* the close handshake is over: the rest is discarded */
        size_t fast = fast_frames(ws, bytes, len);
        bytes += fast;
        len -= fast;
        if (len == 0)
            return 0; /* wslay was not involved since its last turn: nothing to flush */
        size_t n = wslay_share(ws, bytes, len);
        int rc = feed_wslay(ws, bytes, n);
        if (rc != 0 || n == len)
            return rc;
        bytes += n;
        len -= n;
    }
}

int mw_ws_can_send(const mw_ws_t *ws) {
    return !ws->failed && !ws->closing && !ws->peer_closed && !ws->write_error &&
           (!ws->ctx || !wslay_event_get_close_sent(ws->ctx));
}

int mw_ws_send(mw_ws_t *ws, int binary, const uint8_t *msg, size_t len) {
    if (!mw_ws_can_send(ws))
        return MW_ECLOSED;
    if (!binary && !mw_utf8_valid(msg, len))
        return MW_EUTF8;
    int rc = encode_to(ws->enc, binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME, msg, len,
                       ws->cb.on_write, ws->data);
    if (rc != 0)
        ws->write_error = 1; /* part of a frame may be out: the stream is over */
    return rc;
}

int mw_ws_close_valid(unsigned code, const char *reason, size_t len) {
    return mw_ws_close_code_sendable(code) && len <= MW_WS_CLOSE_REASON_MAX &&
           mw_utf8_valid((const uint8_t *)reason, len);
}

int mw_ws_close(mw_ws_t *ws, uint16_t code, const char *reason, size_t len) {
    if (!mw_ws_close_valid(code, reason, len))
        return MW_EINVAL;
    if (!mw_ws_can_send(ws))
        return MW_ECLOSED;
    if (wake(ws) != 0)
        return MW_ENOMEM;
    int r = wslay_event_queue_close(ws->ctx, code, (const uint8_t *)reason, len);
    if (r == WSLAY_ERR_NO_MORE_MSG)
        return MW_ECLOSED;
    if (r != 0)
        return MW_ENOMEM;
    ws->closing = 1;
    flush(ws);
    return 0;
}

int mw_ws_done(const mw_ws_t *ws) {
    return ws->failed || ws->write_error ||
           (ws->ctx && wslay_event_get_close_sent(ws->ctx) && ws->peer_closed);
}

int mw_ws_close_sent(const mw_ws_t *ws) {
    return ws->failed || (ws->ctx && wslay_event_get_close_sent(ws->ctx));
}

uint16_t mw_ws_status(const mw_ws_t *ws, const char **reason, size_t *reason_len) {
    *reason = ws->reason ? ws->reason : "";
    *reason_len = 0;
    if (ws->peer_closed) {
        *reason_len = ws->reason_len;
        return ws->peer_code;
    }
    if (ws->failed)
        return ws->fail_code;
    return 1006;
}
