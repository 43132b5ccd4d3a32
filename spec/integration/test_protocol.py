#!/usr/bin/python3
"""Raw-socket RFC 6455 conformance suite for moonwire (examples/echo).

Handshake validation, frame lengths, fragmentation with interleaved control
frames, control-frame rules, RSV bits, reserved opcodes, masking, length
encodings, UTF-8 validation (whole and split), close codes, oversize messages.
Every violation case keeps a second "bystander" client connected and checks it
still works after the violator was closed (isolation).
"""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG,  # noqa: E402
                     OP_TEXT, build_frame, build_request, close_payload, eq,
                     check, header, read_http_head)

S = H.Suite("moonwire protocol (raw sockets)")
MIB = 1048576


@S.setup
def start_echo(ctx):
    ctx.start("echo", ctx.example("echo"))


def echo(ctx):
    return ctx.servers["echo"]


def lazy_server(ctx, key, app, **kw):
    if key not in ctx.servers:
        ctx.start(key, app, **kw)
    return ctx.servers[key]


def client(ctx, srv=None, **kw):
    srv = srv or echo(ctx)
    return ctx.track(srv.client(**kw))


def raw(ctx, srv=None):
    srv = srv or echo(ctx)
    return ctx.track(H.RawClient(srv.connect_host, srv.port))


def gen_text(n):
    """Exactly n bytes of valid UTF-8 mixing 1-4 byte sequences."""
    unit = "héllo wörld € 😀 κόσμε ".encode("utf-8")
    out = (unit * (n // len(unit) + 1))[:n]
    # cut back to a character boundary, then pad with ASCII
    while out:
        try:
            out.decode("utf-8")
            break
        except UnicodeDecodeError:
            out = out[:-1]
    return out + b"x" * (n - len(out))


def gen_binary(n):
    unit = bytes((i * 7 + 3) & 0xFF for i in range(256))
    return (unit * (n // 256 + 1))[:n]


def send_quiet(c, data):
    try:
        c.send(data)
    except OSError:
        pass  # the server may already have closed; the close frame is what we check


def violation(ctx, data, codes, background=False):
    """Bystander connected; violator sends `data`; expect close `codes` + TCP close;
    bystander still echoes afterwards."""
    by = client(ctx)
    by.roundtrip("bystander-before")
    c = client(ctx)
    if background:
        c.send_background(data)
    else:
        send_quiet(c, data)
    c.expect_close(codes)
    check(not c.reset, "the server reset the connection instead of a clean FIN")
    by.roundtrip("bystander-after")
    by.send_binary(b"\x00\xff" * 10)
    by.expect_echo(OP_BINARY, b"\x00\xff" * 10)


# ==========================================================================
# handshake
# ==========================================================================

def http_status(ctx, req, srv=None):
    s = raw(ctx, srv)
    s.send(req)
    status, reason, headers, rest = read_http_head(s.sock)
    return status, headers


@S.case("handshake: valid request -> 101 with correct accept and headers")
def test_handshake_valid_101(ctx):
    c = client(ctx)
    status, headers = c.response
    eq(status, 101, "status")
    check((header(headers, "Upgrade") or "").lower() == "websocket", "Upgrade header %r" % header(headers, "Upgrade"))
    check("upgrade" in (header(headers, "Connection") or "").lower(), "Connection header %r" % header(headers, "Connection"))
    check(header(headers, "Sec-WebSocket-Protocol") is None, "no subprotocol offered but one selected")
    c.roundtrip()


@S.case("handshake: Upgrade value is case-insensitive (WebSocket)")
def test_handshake_upgrade_case_insensitive(ctx):
    client(ctx, override={"Upgrade": "WebSocket"}).roundtrip()


@S.case("handshake: Connection token list 'keep-alive, Upgrade'")
def test_handshake_connection_token_list(ctx):
    client(ctx, override={"Connection": "keep-alive, Upgrade"}).roundtrip()


@S.case("handshake: Connection token is case-insensitive (UPGRADE)")
def test_handshake_connection_case_insensitive(ctx):
    client(ctx, override={"Connection": "UPGRADE"}).roundtrip()


@S.case("handshake: header names are case-insensitive")
def test_handshake_header_names_case_insensitive(ctx):
    key = H.ws_key()
    req = ("GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nUPGRADE: websocket\r\nconnection: upgrade\r\n"
           "sec-websocket-key: %s\r\nSEC-WEBSOCKET-VERSION: 13\r\n\r\n" % key).encode()
    c = raw(ctx)
    c.send(req)
    status, _, headers, c.buf = read_http_head(c.sock)
    eq(status, 101, "status")
    eq(header(headers, "Sec-WebSocket-Accept"), H.accept_for(key), "accept")
    c.roundtrip()


@S.case("handshake: extra unknown headers and a query string are fine")
def test_handshake_extra_headers_and_query(ctx):
    client(ctx, path="/any/path?x=1&y=2",
           extra=[("User-Agent", "it"), ("Origin", "http://example.com"),
                  ("Sec-WebSocket-Extensions", "x-unknown-ext")]).roundtrip()


@S.case("handshake: request and first frame in the same TCP write")
def test_handshake_and_frame_in_one_write(ctx):
    req, key = build_request()
    c = raw(ctx)
    c.send(req + build_frame(OP_TEXT, b"pipelined"))
    status, _, headers, c.buf = read_http_head(c.sock)
    eq(status, 101, "status")
    c.expect_echo(OP_TEXT, b"pipelined")


for _m in ("POST", "PUT", "DELETE"):
    def _mk(m):
        def run(ctx):
            status, headers = http_status(ctx, build_request(method=m)[0])
            eq(status, 405, m + " status")
            check("GET" in (header(headers, "Allow") or ""), "405 without 'Allow: GET' (RFC 7231 6.5.5): %r" % headers)
        return run
    S.add("handshake: %s -> 405 with Allow: GET" % _m, _mk(_m))


@S.case("handshake: error responses have Content-Length and the server closes the connection")
def test_handshake_errors_close_with_length(ctx):
    for req in (build_request(method="POST")[0], build_request(version="HTTP/1.0")[0],
                build_request(override={"Upgrade": None})[0], b"garbage\r\n\r\n"):
        c = raw(ctx)
        c.send(req)
        status, _, headers, rest = read_http_head(c.sock)
        check(header(headers, "Content-Length") is not None or header(headers, "Transfer-Encoding"),
              "%d response without a body length: %r" % (status, headers))
        H.read_body(c.sock, headers, rest)
        closed, _ = H.is_closed_within(c.sock, 3)
        check(closed, "connection left open after a %d response" % status)

S.add("handshake: HTTP/1.0 -> 400",
      lambda ctx: eq(http_status(ctx, build_request(version="HTTP/1.0")[0])[0], 400, "status"))
S.add("handshake: missing Host -> 400",
      lambda ctx: eq(http_status(ctx, build_request(host=None)[0])[0], 400, "status"))
@S.case("handshake: missing Upgrade -> 426 with Upgrade: websocket")
def test_handshake_missing_upgrade_426(ctx):
    status, headers = http_status(ctx, build_request(override={"Upgrade": None})[0])
    eq(status, 426, "status")
    eq((header(headers, "Upgrade") or "").lower(), "websocket", "Upgrade header of the 426 (RFC 7231 6.5.15)")


S.add("handshake: Upgrade: h2c -> 400",
      lambda ctx: eq(http_status(ctx, build_request(override={"Upgrade": "h2c"})[0])[0], 400, "status"))
S.add("handshake: Connection without upgrade token -> 400",
      lambda ctx: eq(http_status(ctx, build_request(override={"Connection": "keep-alive"})[0])[0], 400, "status"))
S.add("handshake: missing Connection -> 400",
      lambda ctx: eq(http_status(ctx, build_request(override={"Connection": None})[0])[0], 400, "status"))
S.add("handshake: missing Sec-WebSocket-Key -> 400",
      lambda ctx: eq(http_status(ctx, build_request(key=None)[0])[0], 400, "status"))
S.add("handshake: key not base64 -> 400",
      lambda ctx: eq(http_status(ctx, build_request(key="!!!not*base64!!!====")[0])[0], 400, "status"))
S.add("handshake: key decodes to 15 bytes -> 400",
      lambda ctx: eq(http_status(ctx, build_request(key=H.ws_key(os.urandom(15)))[0])[0], 400, "status"))
S.add("handshake: key decodes to 17 bytes -> 400",
      lambda ctx: eq(http_status(ctx, build_request(key=H.ws_key(os.urandom(17)))[0])[0], 400, "status"))


def _version_case(value):
    def run(ctx):
        ov = {"Sec-WebSocket-Version": value}
        status, headers = http_status(ctx, build_request(override=ov)[0])
        eq(status, 426, "status")
        eq(header(headers, "Sec-WebSocket-Version"), "13", "Sec-WebSocket-Version response header")
        eq((header(headers, "Upgrade") or "").lower(), "websocket", "Upgrade header of the 426 (RFC 7231 6.5.15)")
    return run


S.add("handshake: missing Sec-WebSocket-Version -> 426 + version header", _version_case(None))
S.add("handshake: Sec-WebSocket-Version 8 -> 426 + version header", _version_case("8"))
S.add("handshake: Sec-WebSocket-Version 14 -> 426 + version header", _version_case("14"))


@S.case("handshake: text garbage that is not HTTP -> 400")
def test_handshake_text_garbage_400(ctx):
    eq(http_status(ctx, b"this is not http at all\r\n\r\n")[0], 400, "status")


@S.case("handshake: binary garbage (TLS ClientHello) -> 400")
def test_handshake_tls_hello_400(ctx):
    hello = bytes.fromhex("16030100a5010000a10303") + os.urandom(32) + b"\x00" * 40
    eq(http_status(ctx, hello)[0], 400, "status")


@S.case("handshake: headers larger than max_header_bytes (8192) -> 431")
def test_handshake_large_headers_431(ctx):
    req = build_request(extra=[("X-Pad", "a" * 9000)])[0]
    c = raw(ctx)
    c.send_background(req)
    status, _, _, _ = read_http_head(c.sock)
    eq(status, 431, "status")


@S.case("handshake: more than 64 header lines -> 431")
def test_handshake_too_many_headers_431(ctx):
    req = build_request(extra=[("X-H%02d" % i, "v") for i in range(70)])[0]
    eq(http_status(ctx, req)[0], 431, "status")


@S.case("handshake: many headers just under max_header_bytes still accepted")
def test_handshake_headers_under_limit_accepted(ctx):
    extra = [("X-H%02d" % i, "v" * 100) for i in range(55)]  # ~6 KB, 60 header lines
    client(ctx, extra=extra).roundtrip()


@S.case("handshake: unknown path -> 404 (app with path = /ws)")
def test_handshake_unknown_path_404(ctx):
    srv = lazy_server(ctx, "pathed", ctx.fixture("pathed"))
    eq(http_status(ctx, build_request(path="/nope")[0], srv)[0], 404, "status")
    eq(http_status(ctx, build_request(path="/")[0], srv)[0], 404, "status /")


@S.case("handshake: configured path /ws (with query) -> 101")
def test_handshake_configured_path_101(ctx):
    srv = lazy_server(ctx, "pathed", ctx.fixture("pathed"))
    c = client(ctx, srv, path="/ws?token=abc")
    eq(c.response[0], 101, "status")


@S.case("handshake: Connection split over two header lines (keep-alive / Upgrade) -> 101")
def test_handshake_connection_split_lines(ctx):
    client(ctx, override={"Connection": "keep-alive"}, extra=[("Connection", "Upgrade")]).roundtrip()


@S.case("handshake: request delivered one byte per TCP write -> 101")
def test_handshake_one_byte_per_write(ctx):
    req, key = build_request()
    c = raw(ctx)
    for i in range(len(req)):
        c.send(req[i:i + 1])
    status, _, headers, c.buf = read_http_head(c.sock)
    eq(status, 101, "status")
    eq(header(headers, "Sec-WebSocket-Accept"), H.accept_for(key), "accept")
    c.roundtrip()


S.add("handshake: key of 24 base64 chars decoding to 18 bytes -> 400",
      lambda ctx: eq(http_status(ctx, build_request(key="A" * 24)[0])[0], 400, "status"))


def _stall_server(ctx):
    return lazy_server(ctx, "stall", ctx.example("echo"),
                       env={"MOONWIRE_HANDSHAKE_TIMEOUT": "1500"})


@S.case("handshake: half a request then stall -> 408 and close after handshake_timeout", timeout=20)
def test_handshake_half_request_408(ctx):
    srv = _stall_server(ctx)
    c = raw(ctx, srv)
    t0 = time.monotonic()
    c.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
    closed, got = H.is_closed_within(c.sock, 8.0)
    dt = time.monotonic() - t0
    check(closed, "connection still open 8 s after a stalled request (handshake_timeout=1500ms)")
    check(got.startswith(b"HTTP/1.1 408"), "expected a 408 before the close, got %r" % got[:80])
    check(dt >= 1.0, "closed after %.2fs, before handshake_timeout (1.5 s)" % dt)


@S.case("handshake: connect and send nothing -> 408 and close after handshake_timeout", timeout=20)
def test_handshake_silent_connect_408(ctx):
    srv = _stall_server(ctx)
    c = raw(ctx, srv)
    t0 = time.monotonic()
    closed, got = H.is_closed_within(c.sock, 8.0)
    dt = time.monotonic() - t0
    check(closed, "idle connection still open after 8 s (handshake_timeout=1500ms)")
    check(got.startswith(b"HTTP/1.1 408"), "expected a 408 before the close, got %r" % got[:80])
    check(dt >= 1.0, "closed after %.2fs, before handshake_timeout" % dt)


@S.case("handshake: a completed upgrade is not cut by handshake_timeout", timeout=20)
def test_handshake_timeout_spares_upgraded(ctx):
    srv = _stall_server(ctx)
    c = client(ctx, srv)
    c.expect_silence(2.5)
    c.roundtrip("still-here")


@S.case("handshake: drip-feeding header bytes does not extend handshake_timeout", timeout=20)
def test_handshake_drip_feed_not_extended(ctx):
    srv = _stall_server(ctx)
    c = raw(ctx, srv)
    t0 = time.monotonic()
    req = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100
    closed = False
    for i in range(len(req)):
        try:
            c.send(req[i:i + 1])
        except OSError:
            closed = True
            break
        closed, _ = H.is_closed_within(c.sock, 0.25)
        if closed or time.monotonic() - t0 > 8:
            break
    dt = time.monotonic() - t0
    check(closed, "a client sending one byte every 250 ms was still connected after %.1fs "
                  "(handshake_timeout=1500ms)" % dt)
    check(dt >= 1.0, "closed after %.2fs, before handshake_timeout (1.5 s)" % dt)


# ==========================================================================
# frame lengths
# ==========================================================================

for _n in (0, 1, 125, 126, 127, 65535, 65536, 100000, MIB):
    for _op, _gen, _nm in ((OP_TEXT, gen_text, "text"), (OP_BINARY, gen_binary, "binary")):
        def _mk(n, op, gen):
            def run(ctx):
                payload = gen(n)
                eq(len(payload), n, "generated length")
                c = client(ctx)
                if n > 200000:
                    c.send_background(build_frame(op, payload))
                else:
                    c.send_frame(op, payload)
                c.expect_echo(op, payload)
            return run
        _enc = 7 if _n < 126 else (16 if _n < 65536 else 64)
        S.add("length: %s %d bytes (%d-bit length) echoed" % (_nm, _n, _enc), _mk(_n, _op, _gen), timeout=40)


@S.case("frames: all-zero masking key")
def test_frame_zero_masking_key(ctx):
    c = client(ctx)
    c.send_frame(OP_TEXT, b"zero mask", mask_key=b"\x00\x00\x00\x00")
    c.expect_echo(OP_TEXT, b"zero mask")


@S.case("frames: 100 messages in one TCP write echoed in order")
def test_frames_100_in_one_write(ctx):
    c = client(ctx)
    msgs = [("m%03d" % i).encode() * (i % 7 + 1) for i in range(100)]
    c.send(b"".join(build_frame(OP_TEXT if i % 2 else OP_BINARY, m) for i, m in enumerate(msgs)))
    for i, m in enumerate(msgs):
        c.expect_echo(OP_TEXT if i % 2 else OP_BINARY, m, "message %d" % i)


@S.case("frames: a frame delivered one byte per TCP write")
def test_frame_one_byte_per_write(ctx):
    c = client(ctx)
    data = build_frame(OP_TEXT, gen_text(300))
    for i in range(len(data)):
        c.send(data[i:i + 1])
        if i % 50 == 0:
            time.sleep(0.005)
    c.expect_echo(OP_TEXT, gen_text(300))


# ==========================================================================
# fragmentation
# ==========================================================================

def frags(op, parts, between=None):
    """Frames for a fragmented message; `between` (bytes) is inserted after each
    non-final fragment."""
    out = b""
    for i, p in enumerate(parts):
        last = i == len(parts) - 1
        out += build_frame(op if i == 0 else OP_CONT, p, fin=last)
        if between is not None and not last:
            out += between
    return out


def frag_case(op, parts, expect=None):
    def run(ctx):
        c = client(ctx)
        c.send(frags(op, parts))
        c.expect_echo(op, b"".join(parts) if expect is None else expect)
    return run


_t = gen_text(3000)
S.add("fragments: text in 3 fragments", frag_case(OP_TEXT, [b"Hello, ", b"fragmented ", b"world"]))
S.add("fragments: binary in 3 fragments", frag_case(OP_BINARY, [b"\x00\x01", b"\x02\x03\xff", b"\xfe"]))
S.add("fragments: text in 200 fragments", frag_case(OP_TEXT, [b"abcdefghij"[i % 10:i % 10 + 1] * 15 for i in range(200)]))
S.add("fragments: binary in 500 fragments", frag_case(OP_BINARY, [bytes([i & 0xFF]) * 3 for i in range(500)]))
S.add("fragments: 1-byte text fragments", frag_case(OP_TEXT, [bytes([b]) for b in b"one byte at a time"]))
S.add("fragments: empty first and last fragments", frag_case(OP_TEXT, [b"", b"middle", b""]))
S.add("fragments: empty fragments only (empty message)", frag_case(OP_TEXT, [b"", b"", b""]))
S.add("fragments: many empty fragments around data", frag_case(OP_BINARY, [b""] * 10 + [b"x"] + [b""] * 10))
S.add("fragments: two 70000-byte binary fragments", frag_case(OP_BINARY, [gen_binary(70000), gen_binary(70000)[::-1]]))
S.add("fragments: 1 MiB text in 16 fragments (exactly max_message_size)",
      frag_case(OP_TEXT, [gen_text(MIB // 16)] * 16))


@S.case("fragments: ping between fragments -> pong, message continues")
def test_fragments_ping_between(ctx):
    c = client(ctx)
    c.send(build_frame(OP_TEXT, b"part1-", fin=False) + build_frame(OP_PING, b"ping-in-middle"))
    f = c.recv_frame()
    eq(f.opcode, OP_PONG, "opcode")
    eq(f.payload, b"ping-in-middle", "pong payload")
    check(f.fin, "pong must have fin set")
    c.send(build_frame(OP_CONT, b"part2", fin=True))
    c.expect_echo(OP_TEXT, b"part1-part2")


@S.case("fragments: ping after every 1-byte fragment")
def test_fragments_ping_after_each_byte(ctx):
    c = client(ctx)
    text = b"interleaved!"
    parts = [bytes([b]) for b in text]
    data = b""
    for i, p in enumerate(parts):
        data += build_frame(OP_TEXT if i == 0 else OP_CONT, p, fin=(i == len(parts) - 1))
        if i < len(parts) - 1:
            data += build_frame(OP_PING, b"p%d" % i)
    c.send(data)
    for i in range(len(parts) - 1):
        f = c.recv_frame()
        eq((f.opcode, f.payload), (OP_PONG, b"p%d" % i), "pong %d" % i)
    c.expect_echo(OP_TEXT, text)


@S.case("fragments: binary with pings and unsolicited pongs interleaved")
def test_fragments_binary_with_control_frames(ctx):
    c = client(ctx)
    parts = [b"\x01" * 10, b"\x02" * 10, b"\x03" * 10]
    data = build_frame(OP_BINARY, parts[0], fin=False) + build_frame(OP_PONG, b"unsolicited")
    data += build_frame(OP_CONT, parts[1], fin=False) + build_frame(OP_PING, b"")
    data += build_frame(OP_CONT, parts[2], fin=True)
    c.send(data)
    f = c.recv_frame()
    eq((f.opcode, f.payload), (OP_PONG, b""), "pong for empty ping")
    c.expect_echo(OP_BINARY, b"".join(parts))


@S.case("fragments: valid multi-byte char split across fragments is accepted")
def test_fragments_split_multibyte_char(ctx):
    c = client(ctx)
    euro = "€".encode()  # e2 82 ac
    c.send(frags(OP_TEXT, [b"price: " + euro[:1], euro[1:] + b" 10"]))
    c.expect_echo(OP_TEXT, b"price: " + euro + b" 10")


@S.case("fragments: 4-byte char split 1|3, 2|2, 3|1 accepted")
def test_fragments_split_4_byte_char(ctx):
    c = client(ctx)
    em = "😀".encode()
    for k in (1, 2, 3):
        c.send(frags(OP_TEXT, [b"a" + em[:k], em[k:] + b"b"]))
        c.expect_echo(OP_TEXT, b"a" + em + b"b", "split %d" % k)


@S.case("fragments: multi-byte char split over three fragments accepted")
def test_fragments_char_over_three_fragments(ctx):
    c = client(ctx)
    euro = "€".encode()
    c.send(frags(OP_TEXT, [euro[:1], euro[1:2], euro[2:]]))
    c.expect_echo(OP_TEXT, euro)


@S.case("fragments: every byte of 'κόσμε' in its own fragment accepted")
def test_fragments_each_byte_of_kosme(ctx):
    t = "κόσμε".encode()
    c = client(ctx)
    c.send(frags(OP_TEXT, [bytes([b]) for b in t]))
    c.expect_echo(OP_TEXT, t)


# ==========================================================================
# control frames
# ==========================================================================

@S.case("ping: empty payload -> empty pong")
def test_ping_empty_payload(ctx):
    c = client(ctx)
    c.send_frame(OP_PING, b"")
    f = c.recv_frame()
    eq((f.opcode, f.payload, f.fin), (OP_PONG, b"", 1), "pong")


@S.case("ping: 125-byte payload -> pong with the same payload")
def test_ping_125_byte_payload(ctx):
    c = client(ctx)
    p = bytes(range(125))
    c.send_frame(OP_PING, p)
    f = c.recv_frame()
    eq((f.opcode, f.payload), (OP_PONG, p), "pong")
    c.roundtrip()


@S.case("ping: 10 pings in one write -> 10 pongs in order")
def test_ping_10_in_one_write(ctx):
    c = client(ctx)
    c.send(b"".join(build_frame(OP_PING, b"n%d" % i) for i in range(10)))
    for i in range(10):
        f = c.recv_frame()
        eq((f.opcode, f.payload), (OP_PONG, b"n%d" % i), "pong %d" % i)


@S.case("pong: unsolicited pong is ignored")
def test_pong_unsolicited_ignored(ctx):
    c = client(ctx)
    c.send_frame(OP_PONG, b"nobody asked")
    c.send_frame(OP_TEXT, b"after pong")
    c.expect_echo(OP_TEXT, b"after pong")
    c.expect_silence(0.3)


S.add("violation: ping with 126-byte payload -> 1002",
      lambda ctx: violation(ctx, build_frame(OP_PING, b"x" * 126), 1002))
S.add("violation: pong with 126-byte payload -> 1002",
      lambda ctx: violation(ctx, build_frame(OP_PONG, b"x" * 126), 1002))
S.add("violation: close with 126-byte payload -> 1002",
      lambda ctx: violation(ctx, build_frame(OP_CLOSE, close_payload(1000, b"r" * 124)), 1002))
S.add("violation: ping with 16-bit length field (200 bytes) -> 1002",
      lambda ctx: violation(ctx, build_frame(OP_PING, b"y" * 200), 1002))
S.add("violation: fragmented ping (fin=0) -> 1002",
      lambda ctx: violation(ctx, build_frame(OP_PING, b"a", fin=False), 1002))
S.add("violation: fragmented close (fin=0) -> 1002",
      lambda ctx: violation(ctx, build_frame(OP_CLOSE, close_payload(1000), fin=False), 1002))
S.add("violation: fragmented pong (fin=0) -> 1002",
      lambda ctx: violation(ctx, build_frame(OP_PONG, b"a", fin=False), 1002))

# ==========================================================================
# reserved bits and opcodes
# ==========================================================================

for _bit, _nm in ((4, "RSV1"), (2, "RSV2"), (1, "RSV3")):
    for _op, _on, _pl in ((OP_TEXT, "text", b"hi"), (OP_BINARY, "binary", b"\x01"),
                          (OP_PING, "ping", b"p"), (OP_CLOSE, "close", close_payload(1000))):
        def _mk(bit, op, pl):
            return lambda ctx: violation(ctx, build_frame(op, pl, rsv=bit), 1002)
        S.add("violation: %s set on %s frame -> 1002" % (_nm, _on), _mk(_bit, _op, _pl))

S.add("violation: RSV1 on a continuation frame -> 1002",
      lambda ctx: violation(ctx, build_frame(OP_TEXT, b"a", fin=False) +
                            build_frame(OP_CONT, b"b", rsv=4), 1002))

for _op in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF):
    def _mk(op):
        return lambda ctx: violation(ctx, build_frame(op, b"reserved"), 1002)
    S.add("violation: reserved opcode %#x -> 1002" % _op, _mk(_op))

S.add("violation: reserved opcode 0x5 inside a fragmented message -> 1002",
      lambda ctx: violation(ctx, build_frame(OP_TEXT, b"a", fin=False) + build_frame(5, b""), 1002))

# ==========================================================================
# fragmentation state violations
# ==========================================================================

S.add("violation: continuation (fin=1) with no message in progress -> 1002",
      lambda ctx: violation(ctx, build_frame(OP_CONT, b"orphan", fin=True), 1002))
S.add("violation: continuation (fin=0) with no message in progress -> 1002",
      lambda ctx: violation(ctx, build_frame(OP_CONT, b"orphan", fin=False), 1002))
S.add("violation: continuation after a complete message -> 1002",
      lambda ctx: violation(ctx, build_frame(OP_TEXT, b"done") + build_frame(OP_CONT, b"late"), 1002))
S.add("violation: text frame while fragmented text in progress -> 1002",
      lambda ctx: violation(ctx, build_frame(OP_TEXT, b"a", fin=False) + build_frame(OP_TEXT, b"b"), 1002))
S.add("violation: binary frame while fragmented text in progress -> 1002",
      lambda ctx: violation(ctx, build_frame(OP_TEXT, b"a", fin=False) + build_frame(OP_BINARY, b"b"), 1002))
S.add("violation: text frame while fragmented binary in progress -> 1002",
      lambda ctx: violation(ctx, build_frame(OP_BINARY, b"a", fin=False) + build_frame(OP_TEXT, b"b", fin=False), 1002))

# ==========================================================================
# masking and length encoding
# ==========================================================================

S.add("violation: unmasked text frame -> 1002",
      lambda ctx: violation(ctx, build_frame(OP_TEXT, b"naked", mask=False), 1002))
S.add("violation: unmasked binary frame -> 1002",
      lambda ctx: violation(ctx, build_frame(OP_BINARY, b"naked", mask=False), 1002))
S.add("violation: unmasked ping frame -> 1002",
      lambda ctx: violation(ctx, build_frame(OP_PING, b"naked", mask=False), 1002))
S.add("violation: unmasked continuation frame -> 1002",
      lambda ctx: violation(ctx, build_frame(OP_TEXT, b"a", fin=False) + build_frame(OP_CONT, b"b", mask=False), 1002))
S.add("violation: 64-bit length with the top bit set -> 1002",
      lambda ctx: violation(ctx, build_frame(OP_BINARY, b"", length_enc=64, declared_len=(1 << 63) + 5)[:10] + b"\x00" * 4, 1002))
S.add("violation: 16-bit length for a 5-byte payload (non-minimal) -> 1002",
      lambda ctx: violation(ctx, build_frame(OP_TEXT, b"hello", length_enc=16), 1002))
S.add("violation: 64-bit length for a 100-byte payload (non-minimal) -> 1002",
      lambda ctx: violation(ctx, build_frame(OP_TEXT, b"a" * 100, length_enc=64), 1002))
S.add("violation: 64-bit length for a 1000-byte payload (non-minimal) -> 1002",
      lambda ctx: violation(ctx, build_frame(OP_BINARY, b"a" * 1000, length_enc=64), 1002))

# ==========================================================================
# UTF-8
# ==========================================================================

INVALID_UTF8 = [
    ("lone continuation byte 0x80", b"\x80"),
    ("lone continuation byte 0xBF after ASCII", b"abc\xbf"),
    ("overlong '/' (C0 AF)", b"\xc0\xaf"),
    ("overlong 2-byte (C1 BF)", b"\xc1\xbf"),
    ("overlong 3-byte (E0 80 AF)", b"\xe0\x80\xaf"),
    ("overlong 4-byte (F0 80 80 AF)", b"\xf0\x80\x80\xaf"),
    ("surrogate U+D800 (ED A0 80)", b"\xed\xa0\x80"),
    ("surrogate U+DFFF (ED BF BF)", b"\xed\xbf\xbf"),
    ("above U+10FFFF (F4 90 80 80)", b"\xf4\x90\x80\x80"),
    ("lead byte F5", b"\xf5\x80\x80\x80"),
    ("byte FE", b"ab\xfe"),
    ("byte FF", b"\xff"),
    ("truncated 3-byte sequence at the end", b"abc\xe2\x82"),
    ("lone lead byte at the end", b"abc\xc2"),
    ("bad continuation (E2 28 A1)", b"\xe2\x28\xa1"),
    ("valid text then a surrogate", "κόσμε".encode() + b"\xed\xa0\x80edited"),
]

for _nm, _bytes in INVALID_UTF8:
    def _mk(b):
        return lambda ctx: violation(ctx, build_frame(OP_TEXT, b), 1007)
    S.add("utf8: %s -> 1007" % _nm, _mk(_bytes))

S.add("utf8: invalid sequence in the second fragment -> 1007",
      lambda ctx: violation(ctx, frags(OP_TEXT, [b"hello ", b"\xed\xa0\x80"]), 1007))
S.add("utf8: truncated sequence at the end of the last fragment -> 1007",
      lambda ctx: violation(ctx, frags(OP_TEXT, [b"abc", b"\xe2\x82"]), 1007))
S.add("utf8: message ends inside a char split over fragments (last empty) -> 1007",
      lambda ctx: violation(ctx, frags(OP_TEXT, [b"abc\xe2", b"\x82", b""]), 1007))
S.add("utf8: above U+10FFFF split across fragments -> 1007",
      lambda ctx: violation(ctx, frags(OP_TEXT, [b"x\xf4", b"\x90\x80\x80"]), 1007))
S.add("utf8: invalid first fragment, valid rest -> 1007",
      lambda ctx: violation(ctx, frags(OP_TEXT, [b"\xc0\xaf", b"valid", b"valid"]), 1007))
S.add("utf8: invalid byte in a middle fragment of many -> 1007",
      lambda ctx: violation(ctx, frags(OP_TEXT, [b"aaaa"] * 5 + [b"\xff"] + [b"bbbb"] * 5), 1007))


S.add("utf8: 5-byte sequence (F8 88 80 80 80) -> 1007",
      lambda ctx: violation(ctx, build_frame(OP_TEXT, b"\xf8\x88\x80\x80\x80"), 1007))
S.add("utf8: overlong NUL (C0 80) -> 1007",
      lambda ctx: violation(ctx, build_frame(OP_TEXT, b"a\xc0\x80b"), 1007))
S.add("utf8: invalid byte at the end of a 500 KB text message -> 1007",
      lambda ctx: violation(ctx, build_frame(OP_TEXT, b"a" * 500000 + b"\xff"), 1007, background=True))


@S.case("utf8: boundary code points (U+7F..U+10FFFF, U+D7FF, U+E000, U+FFFF) accepted")
def test_utf8_boundary_code_points(ctx):
    cps = [0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFD, 0xFEFF, 0xFFFE, 0xFFFF,
           0x10000, 0x1F600, 0x10FFFF]
    p = "".join(chr(cp) for cp in cps).encode("utf-8")
    c = client(ctx)
    c.send_frame(OP_TEXT, p)
    c.expect_echo(OP_TEXT, p)
    c.send(frags(OP_TEXT, [bytes([b]) for b in p]))
    c.expect_echo(OP_TEXT, p, "byte-per-fragment")


@S.case("ping: non-UTF-8 payload is fine (pong echoes it)")
def test_ping_non_utf8_payload(ctx):
    c = client(ctx)
    c.send_frame(OP_PING, b"\xff\xfe\xc0")
    f = c.recv_frame()
    eq((f.opcode, f.payload), (OP_PONG, b"\xff\xfe\xc0"), "pong")


@S.case("utf8: invalid first fragment fails before the message ends (fail fast)")
def test_utf8_invalid_first_fragment_fails_fast(ctx):
    by = client(ctx)
    c = client(ctx)
    c.send(build_frame(OP_TEXT, b"ok so far \xc0\xaf", fin=False))
    c.expect_close(1007)   # no final fragment was ever sent
    by.roundtrip()


@S.case("utf8: invalid UTF-8 in a BINARY message is fine")
def test_utf8_invalid_in_binary_fine(ctx):
    c = client(ctx)
    p = b"\xff\xfe\xed\xa0\x80\xc0\xaf"
    c.send_frame(OP_BINARY, p)
    c.expect_echo(OP_BINARY, p)


# ==========================================================================
# close handling
# ==========================================================================

def f_codes(want, code):
    return [code] if want is None else [c for c in want if c == code]


def close_case(code, reason=b"", want=None):
    def run(ctx):
        by = client(ctx)
        c = client(ctx)
        c.send_close(code, reason)
        f = c.expect_close(want if want is not None else [code])
        if reason and code in f_codes(want, code):
            eq(f.payload[2:], reason, "echoed close reason (docs/protocol.md: same code and reason)")
        by.roundtrip("bystander-after-close")
    return run


# 1012-1014: registered with IANA after RFC 6455 (Service Restart, Try Again
# Later, Bad Gateway); wslay 1.1 alone would refuse them with 1002.
for _code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
              3000, 3999, 4000, 4999):
    S.add("close: valid code %d -> echoed" % _code, close_case(_code, b"r"))

for _code in (0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535):
    S.add("close: invalid code %d -> 1002" % _code, close_case(_code, want=[1002]))


@S.case("close: empty payload -> empty close or 1000")
def test_close_empty_payload(ctx):
    c = client(ctx)
    c.send_close(None)
    c.expect_close([None, 1000])


@S.case("close: 1-byte payload -> 1002")
def test_close_1_byte_payload_1002(ctx):
    violation(ctx, build_frame(OP_CLOSE, b"\x03"), 1002)


@S.case("close: reason with invalid UTF-8 -> 1007")
def test_close_invalid_utf8_reason_1007(ctx):
    violation(ctx, build_frame(OP_CLOSE, close_payload(1000, b"bad \xff\xfe reason")), 1007)


@S.case("close: reason that is a lone continuation byte -> 1007")
def test_close_lone_continuation_reason_1007(ctx):
    violation(ctx, build_frame(OP_CLOSE, close_payload(1000, b"\x80")), 1007)


@S.case("violation: frames sent after a violating frame are not processed")
def test_violation_stops_processing(ctx):
    c = client(ctx)
    c.send(build_frame(3, b"") + build_frame(OP_TEXT, b"must not echo") + build_frame(OP_PING, b"nor pong"))
    c.expect_close(1002, allow_data=False)
    check(c.buf == b"", "data after the close frame: %r" % c.buf[:60])


@S.case("close: 123-byte reason -> code echoed")
def test_close_123_byte_reason(ctx):
    close_case(1000, gen_text(123))(ctx)


@S.case("close: valid UTF-8 reason accepted")
def test_close_utf8_reason(ctx):
    close_case(4321, "bye – κόσμε".encode())(ctx)


@S.case("close: data frames after the close are ignored")
def test_close_then_data_ignored(ctx):
    c = client(ctx)
    c.send(build_frame(OP_CLOSE, close_payload(1000)) + build_frame(OP_TEXT, b"after close") +
           build_frame(OP_BINARY, b"after close too") + build_frame(OP_PING, b"late ping"))
    c.expect_close([1000], allow_data=False)
    check(c.buf == b"", "data after the server's close frame: %r" % c.buf[:60])


@S.case("close: close in the middle of a fragmented message -> echoed")
def test_close_mid_fragmented_message(ctx):
    c = client(ctx)
    c.send(build_frame(OP_TEXT, b"unfinished", fin=False) + build_frame(OP_CLOSE, close_payload(1000)))
    c.expect_close([1000], allow_data=False)


@S.case("close: client closes TCP abruptly without a close frame; server unaffected")
def test_close_abrupt_tcp(ctx):
    c = client(ctx)
    c.send(build_frame(OP_TEXT, b"half", fin=False))
    c.close()
    by = client(ctx)
    by.roundtrip("after-abrupt")


# ==========================================================================
# oversize messages (max_message_size = 1048576 by default)
# ==========================================================================

S.add("oversize: single text frame of 1 MiB + 1 -> 1009",
      lambda ctx: violation(ctx, build_frame(OP_TEXT, gen_text(MIB + 1)), 1009, background=True), timeout=40)
S.add("oversize: single binary frame of 2 MiB -> 1009",
      lambda ctx: violation(ctx, build_frame(OP_BINARY, gen_binary(2 * MIB)), 1009, background=True), timeout=40)
S.add("oversize: fragments summing to 1 MiB + 1 -> 1009",
      lambda ctx: violation(ctx, frags(OP_BINARY, [gen_binary(MIB // 2), gen_binary(MIB // 2), b"!"]), 1009,
                            background=True), timeout=40)
S.add("oversize: 200 text fragments of 8 KiB (1.6 MiB) -> 1009",
      lambda ctx: violation(ctx, frags(OP_TEXT, [gen_text(8192)] * 200), 1009, background=True), timeout=40)
S.add("oversize: header declares 8 GiB -> 1009 without waiting for the payload",
      lambda ctx: violation(ctx, build_frame(OP_BINARY, b"", declared_len=8 << 30)[:10] + b"\x00" * 4 + b"abc",
                            [1009]))


@S.case("oversize: only the header of a too-big frame -> 1009, no payload sent")
def oversize_header_alone(ctx):
    # The header (with its mask key) and not one payload byte: the server
    # must answer from the announced length alone (docs/protocol.md).
    for declared, enc in ((MIB + 1, 64), (8 << 30, 64)):
        hdr = build_frame(OP_BINARY, b"", declared_len=declared, length_enc=enc)
        eq(len(hdr), 14, "a 64-bit length header with its mask key")
        violation(ctx, hdr, [1009])


@S.case("oversize: only the header of a continuation past the limit -> 1009")
def oversize_continuation_header_alone(ctx):
    first = build_frame(OP_BINARY, gen_binary(1000), fin=False)
    cont = build_frame(OP_CONT, b"", declared_len=MIB - 1000 + 1)  # 1 MiB + 1 in all
    violation(ctx, first + cont, [1009])


# ==========================================================================
# isolation and liveness
# ==========================================================================

@S.case("isolation: 20 violators in a row while a bystander keeps echoing")
def test_violators_spare_bystander(ctx):
    by = client(ctx)
    bad = [build_frame(OP_PING, b"x" * 126), build_frame(3, b""), build_frame(OP_TEXT, b"\xff"),
           build_frame(OP_TEXT, b"x", mask=False), build_frame(OP_CONT, b"x")]
    for i in range(20):
        c = client(ctx)
        c.send(bad[i % len(bad)])
        c.expect_close([1002, 1007])
        c.close()
        by.roundtrip("by-%d" % i)


@S.case("isolation: bystander mid-fragmented-message while another client violates")
def test_violator_spares_fragmenting_bystander(ctx):
    by = client(ctx)
    by.send(build_frame(OP_TEXT, b"first-", fin=False))
    c = client(ctx)
    c.send(build_frame(OP_BINARY, b"x", rsv=2))
    c.expect_close(1002)
    by.send(build_frame(OP_CONT, b"second", fin=True))
    by.expect_echo(OP_TEXT, b"first-second")


@S.case("backpressure: a client that never reads is pushed back, loses nothing, "
        "and others are served", timeout=60)
def test_backpressure_never_reading_client(ctx):
    # Without read backpressure the server would read (and queue echoes for)
    # everything this client sends: sendall would never block.
    msg = gen_binary(1 << 20)
    frame = build_frame(OP_BINARY, msg)
    c = client(ctx)
    c.sock.settimeout(2.0)
    sent, limit = 0, 400
    try:
        while sent < limit:
            c.sock.sendall(frame)
            sent += 1
    except socket.timeout:
        pass  # pushed back: the server stopped reading from this client
    check(sent < 200, "sent %d MiB without being pushed back" % sent)
    by = client(ctx)
    by.roundtrip("served-while-another-is-paused")
    # Reading now drains the queue, the server resumes reading, and every
    # message that was fully sent comes back, in order and intact.
    c.sock.settimeout(10.0)
    for i in range(sent):
        op, data = c.recv_message()
        check(op == OP_BINARY and data == msg, "echo %d of %d differs" % (i + 1, sent))


@S.case("liveness: server process alive and /health answers after the suite")
def test_server_alive_after_suite(ctx):
    srv = echo(ctx)
    check(srv.alive(), "server process died")
    h = srv.health()
    eq(h.get("status"), "healthy", "health status")


@S.case("liveness: /health connections returns to 0 once every client left", timeout=20)
def test_health_connections_back_to_0(ctx):
    srv = echo(ctx)
    ctx.close_clients()
    H.poll(lambda: srv.fresh_health()["connections"] == 0, timeout=10,
           what="connections to drop to 0 (now %r)" % srv.health()["connections"])


if __name__ == "__main__":
    H.main(S)
