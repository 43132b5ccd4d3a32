/*
 * tpl.h - message templates and the measurement payload of moonwire-bench.
 *
 * A template such as {"type":"echo","data":"%s"} is expanded and framed ONCE
 * at start-up. Every message after that is a memcpy of the prepared frame
 * plus 24 digits written in place: the payload has a fixed width, so the
 * frame header never changes.
 *
 * The payload is "mwb:<seq, 10 digits>:<t_ns, 14 digits>:" padded with 'x'
 * to the requested size. It uses only characters that JSON never escapes,
 * and the reply is searched for the "mwb:" marker, so a server that decodes
 * and re-encodes JSON (reordering keys, changing spaces) still works. t_ns
 * counts from the start of the run (uv_hrtime), so 14 digits last 27 hours.
 */
#ifndef MW_BENCH_TPL_H
#define MW_BENCH_TPL_H

#include <stddef.h>
#include <stdint.h>

#define MW_BENCH_PAYLOAD_MIN 30 /* "mwb:" + 10 + ":" + 14 + ":" */

typedef struct mw_bench_tpl {
    char *frame; /* the complete client frame, masked (key 0) */
    size_t frame_len;
    size_t payload_off; /* where the payload starts in frame; 0 = none */
} mw_bench_tpl_t;

/* Expands `tpl`: each "%s" takes the next string of args, except that the
 * one at position payload_arg (0-based; -1 for none) becomes a payload of
 * payload_size bytes. "%%" is a literal '%'. The number of "%s" must equal
 * nargs. Frames the result as one text frame. Returns 0, or -1 with a
 * message in err. */
int mw_bench_tpl_init(mw_bench_tpl_t *t, const char *tpl, const char *const *args, int nargs,
                      int payload_arg, size_t payload_size, char *err, size_t errlen);
/* The same expansion as the body of an HTTP/1.1 POST to path (Host:
 * host; "Authorization: apikey KEY" unless api_key is ""), Content-Type
 * application/json: `frame` is then the whole request, ready to pipeline
 * on a keep-alive connection. */
int mw_bench_tpl_init_post(mw_bench_tpl_t *t, const char *path, const char *host,
                           const char *api_key, const char *tpl, const char *const *args, int nargs,
                           int payload_arg, size_t payload_size, char *err, size_t errlen);
void mw_bench_tpl_free(mw_bench_tpl_t *t);

/* Copies the frame to dst (frame_len bytes) with seq and t_ns filled in. */
void mw_bench_tpl_fill(const mw_bench_tpl_t *t, char *dst, uint64_t seq, uint64_t t_ns);

/* Finds the payload in a received message. Returns 1 and sets *seq and
 * *t_ns, or 0 when the message carries no (well-formed) payload. *hint is
 * where to look first (start with 0; it is updated to where the payload
 * was found, since one server puts it at the same offset every time). */
int mw_bench_payload_parse(const char *msg, size_t len, size_t *hint, uint64_t *seq,
                           uint64_t *t_ns);

/* Frames a control frame (close, ping, pong) for a client into dst, which
 * must hold 6 + len bytes (len <= 125); returns the frame length. */
size_t mw_bench_ctrl_frame(char *dst, int opcode, const char *payload, size_t len);

#endif
