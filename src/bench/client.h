/*
 * client.h - a cheap WebSocket client connection for moonwire-bench.
 *
 * mw_bench_net_t is what every connection shares: the loop, the server
 * address, the handshake request, THE read buffer (one for the whole
 * process: a connection keeps at most a 14-byte partial header and, only
 * when a message spans reads, a reassembly buffer it reuses), the list of
 * connections with output to flush, and the callbacks into the workload.
 *
 * Writes are batched: mw_bench_client_reserve() appends to the connection's
 * output buffer and marks it dirty; a uv_prepare handle flushes every dirty
 * connection once per loop iteration, just before libuv polls, with one
 * uv_try_write (falling back to uv_write). Call mw_bench_net_flush() to
 * flush earlier. Nothing here allocates per message.
 */
#ifndef MW_BENCH_CLIENT_H
#define MW_BENCH_CLIENT_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct mw_bench_client mw_bench_client_t;

typedef struct mw_bench_net_cbs {
    /* The handshake completed (101 with the right Sec-WebSocket-Accept). */
    void (*on_open)(mw_bench_client_t *c);
    /* A complete message (fragments reassembled). `data` is valid only
     * during the call. opcode is 1 (text) or 2 (binary). */
    void (*on_message)(mw_bench_client_t *c, const char *data, size_t len, int opcode);
    /* The connection failed (connect, handshake, protocol error, server
     * close, reset). Called once; the library then closes and frees the
     * client: forget the pointer and never pass it to
     * mw_bench_client_close(). */
    void (*on_error)(mw_bench_client_t *c, const char *what);
    /* HTTP clients only (mw_bench_client_http): a complete response.
     * `body` is valid only during the call. */
    void (*on_response)(mw_bench_client_t *c, int status, const char *body, size_t len);
} mw_bench_net_cbs_t;

typedef struct mw_bench_net {
    uv_loop_t *loop;
    struct sockaddr_in server;
    char *request; /* the opening handshake, shared */
    size_t request_len;
    char *rbuf; /* the one read buffer */
    size_t rbuf_len;
    mw_bench_net_cbs_t cbs;
    uint64_t t_base;    /* uv_hrtime() at start; payload times count from it */
    uint64_t now_ns;    /* uv_hrtime() of the read being processed */
    size_t max_message; /* larger server messages are a protocol error */
    /* Connection pacing: at most `concurrency` connects/handshakes at once. */
    mw_bench_client_t **queue;
    size_t queue_len, queue_next, connecting, concurrency;
    size_t live; /* connections not yet closed (handle alive) */
    mw_bench_client_t *dirty;
    uv_prepare_t flush;
} mw_bench_net_t;

/* Parses url (SCHEME://IPV4-OR-localhost[:port][/path], scheme "ws" or
 * "http") into the address, "host:port" (for the Host header, at least 80
 * bytes) and the path ("/" when none; points into url or is "/"). Returns
 * 0, or -1 with a message in err. */
int mw_bench_parse_url(const char *url, const char *scheme, struct sockaddr_in *sa, char *hostport,
                       size_t hplen, const char **path, char *err, size_t errlen);

/* Parses url (ws://IPV4-OR-localhost[:port][/path]), prepares the request
 * and the read buffer, starts the flush handle. Returns 0, or -1 with a
 * message in err. */
int mw_bench_net_init(mw_bench_net_t *net, uv_loop_t *loop, const char *url, char *err,
                      size_t errlen);
/* Stops the flush handle (closed on the next loop run) and frees what init
 * allocated. Call after every client is closed. */
void mw_bench_net_close(mw_bench_net_t *net);

/* Flushes every dirty connection now. */
void mw_bench_net_flush(mw_bench_net_t *net);

/* Connects clients[0..n) in order, `concurrency` at a time: the next starts
 * when one opens or fails. The array must outlive the connecting. */
void mw_bench_net_connect_all(mw_bench_net_t *net, mw_bench_client_t **clients, size_t n,
                              size_t concurrency);

/* A new, unconnected client. src (may be NULL) is the local address to bind
 * (port 0). Returns NULL when out of memory. */
mw_bench_client_t *mw_bench_client_new(mw_bench_net_t *net, uint32_t id, void *data,
                                       const struct sockaddr_in *src);
/* Makes c, not yet connected, a plain HTTP/1.1 keep-alive client of
 * `server` instead of a WebSocket client: it is "open" once the TCP
 * connection is (on_open), what is written with mw_bench_client_reserve
 * are whole requests (pipelined as they come), and every response (with a
 * Content-Length, as moonwire always sends) goes to on_response. */
void mw_bench_client_http(mw_bench_client_t *c, const struct sockaddr_in *server);
/* Makes c, not yet connected, connect to `server` instead of the net's
 * (the same handshake request: another node serving the same path). */
void mw_bench_client_server(mw_bench_client_t *c, const struct sockaddr_in *server);
/* Responses an HTTP client still waits for (requests written minus
 * responses read; the caller counts what it wrote with
 * mw_bench_client_requested). */
void mw_bench_client_requested(mw_bench_client_t *c, unsigned n);
unsigned mw_bench_client_outstanding(const mw_bench_client_t *c);
uint32_t mw_bench_client_id(const mw_bench_client_t *c);
void *mw_bench_client_data(const mw_bench_client_t *c);
int mw_bench_client_is_open(const mw_bench_client_t *c);
/* The local address of an open connection (what the server sees as its
 * peer). Returns 0, or -1 when c is not open. */
int mw_bench_client_sockname(const mw_bench_client_t *c, struct sockaddr_in *sa);
/* Bytes waiting to be written (not yet accepted by the kernel). */
size_t mw_bench_client_pending(const mw_bench_client_t *c);

/* Reserves n bytes at the end of the output buffer and returns them; the
 * caller writes one or more complete frames there. Returns NULL (and fails
 * the connection) when out of memory or when the client is not open. */
char *mw_bench_client_reserve(mw_bench_client_t *c, size_t n);

/* Closes the connection: sends a close frame (1000) if it is open, then
 * closes the socket. No callback is called after this. Call it once per
 * client that did not fail; the pointer is invalid afterwards (freed now,
 * or by libuv's close callback). */
void mw_bench_client_close(mw_bench_client_t *c);

#endif
