#!/usr/bin/python3
"""The Lua WebSocket client (moonwire.websocket) on the real binary.

Fixture: fixtures/wsclient. The test asks the app's probe controller to
connect somewhere and report what the client saw: the server itself (its
own port), a second moonwire, a moonwire serving wss:// (certificates made
with the openssl command line, as test_tls.py does), and Python peers that
misbehave on purpose (refuse, stay silent, answer a wrong
Sec-WebSocket-Accept, close in the middle of a fragmented message, send a
message over max_message_size, send more than the client queues). The
Python peers also check what the client sends: every frame masked, close
codes as RFC 6455 wants them.
"""

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

S = H.Suite("moonwire WebSocket client (Lua)")


class State:
    app = None
    srv = None    # the server whose app code runs the client
    other = None  # a second moonwire
    tls = None    # a moonwire serving wss://
    cert = None


def openssl(*args):
    p = subprocess.run(["openssl"] + list(args), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if p.returncode != 0:
        raise H.Failure("openssl failed: %s" % p.stderr.decode()[-500:])


@S.setup
def start(ctx):
    State.app = ctx.copy_app(ctx.fixture("wsclient"))
    port = H.free_port()
    State.srv = ctx.start("main", State.app, port=port,
                          env={"WSC_SELF_URL": "ws://127.0.0.1:%d/" % port})
    State.other = ctx.start("other", ctx.copy_app(ctx.fixture("wsclient")))
    d = ctx.tmpdir("moonwire-wsc-tls-")
    State.cert, key = os.path.join(d, "c.crt"), os.path.join(d, "c.key")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", State.cert, "-days", "2", "-subj", "/CN=moonwire-wsc",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost")
    State.tls = ctx.start("tls", ctx.copy_app(ctx.fixture("wsclient")),
                          env={"MOONWIRE_TLS_CERT": State.cert, "MOONWIRE_TLS_KEY": key})
    m = State.tls.wait_log(r"listening on wss://\S+:(\d+)/", timeout=5)
    State.tls.wss_port = int(m.group(1))


def probe(ctx, action, data, srv=None):
    c = ctx.track(H.JsonClient(srv or State.srv))
    r = c.request("probe", action, data)
    c.close()
    check("error" not in r, "probe.%s failed: %r" % (action, r))
    return r.get("data")


# --------------------------------------------------------------------------
# a Python peer speaking raw WebSocket (server side)
# --------------------------------------------------------------------------

class Peer:
    """Listens on a free port; each accepted connection runs fn(sock, peer)
    in a thread. Records what the client sent for the test to check."""

    def __init__(self, fn):
        self.fn = fn
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.frames = []   # (fin, opcode, masked, payload) the client sent
        self.errors = []
        self.done = threading.Event()
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path="/"):
        return "ws://127.0.0.1:%d%s" % (self.port, path)

    def _accept(self):
        try:
            s, _ = self.lsock.accept()
        except OSError:
            return
        self.conns.append(s)
        s.settimeout(10)
        try:
            self.fn(s, self)
        except Exception as e:  # reported by the test
            self.errors.append(repr(e))
        finally:
            self.done.set()

    def close(self):
        for s in self.conns + [self.lsock]:
            try:
                s.close()
            except OSError:
                pass

    # helpers for fn
    def read_request(self, s):
        status, reason, headers, rest = None, None, None, b""
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                raise EOFError("the client closed before its request was complete")
            buf += chunk
        head, rest = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        self.request_line = lines[0]
        self.headers = headers
        return headers, rest

    def accept(self, s, accept=None):
        headers, rest = self.read_request(s)
        key = headers["sec-websocket-key"]
        s.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n"
                   % (accept or H.accept_for(key))).encode())
        return rest

    def read_frame(self, s, buf=b""):
        def need(n):
            nonlocal buf
            while len(buf) < n:
                chunk = s.recv(65536)
                if not chunk:
                    raise EOFError("EOF")
                buf += chunk
        need(2)
        b0, b1 = buf[0], buf[1]
        n, off = b1 & 0x7F, 2
        if n == 126:
            need(4)
            n, off = struct.unpack("!H", buf[2:4])[0], 4
        elif n == 127:
            need(10)
            n, off = struct.unpack("!Q", buf[2:10])[0], 10
        masked = bool(b1 & 0x80)
        key = b""
        if masked:
            need(off + 4)
            key, off = buf[off:off + 4], off + 4
        need(off + n)
        payload = buf[off:off + n]
        if masked:
            payload = H.mask_bytes(payload, key)
        frame = (bool(b0 & 0x80), b0 & 0x0F, masked, payload)
        self.frames.append(frame)
        return frame, buf[off + n:]


def frame(opcode, payload=b"", fin=True):
    return H.build_frame(opcode, payload, fin=fin, mask=False)


# --------------------------------------------------------------------------
# against moonwire
# --------------------------------------------------------------------------

@S.case("a controller action connects to its own server, sends, receives and closes")
def test_self_roundtrip(ctx):
    r = probe(ctx, "roundtrip", {"url": State.srv.url(), "message": {
        "type": "echo", "action": "say", "id": "r1", "data": {"n": 42}}})
    eq(r.get("ok"), True, "connected")
    eq(r.get("open"), True, "is_open() while open")
    eq(r.get("kind"), "text", "reply kind")
    reply = json.loads(r["reply"])
    eq(reply.get("id"), "r1", "reply id")
    eq(reply.get("data"), {"n": 42}, "reply data")
    eq(r.get("after"), ["nil", "timeout"], "a receive with nothing to come times out")
    eq(r.get("closed"), True, "close() returns true")
    eq(r.get("close_code"), 1000, "the server answered our close with 1000")
    eq(r.get("open_after"), False, "is_open() after close")


@S.case("a second moonwire on another port; a text string and a subprotocol header")
def test_other_server(ctx):
    r = probe(ctx, "roundtrip", {"url": State.other.url("/?x=1"),
                                 "message": '{"type":"echo","action":"say","id":"o","data":{"s":"hi"}}',
                                 "code": 4001, "reason": "enough",
                                 "opts": {"headers": {"X-Trace": "abc"}}})
    eq(r.get("ok"), True, "connected: %r" % r)
    eq(json.loads(r["reply"]).get("data"), {"s": "hi"}, "reply data")
    eq(r.get("close_code"), 4001, "the server echoed our close code")


@S.case("controllers route {type, action} messages; unknown routes and errors are logged")
def test_controllers(ctx):
    start = len(State.srv.log())
    items = [
        {"type": "chat", "action": "message", "data": {"text": "one"}},
        {"type": "chat", "action": "nope", "data": {}},
        {"type": "chat", "action": "fail", "data": {}},
        {"type": "chat", "action": "message", "data": {"text": "wait"}},
        {"type": "chat", "action": "message", "data": {"text": "two"}},
    ]
    r = probe(ctx, "routes", {"url": State.other.url(), "items": items, "expect": 5})
    eq(r.get("ok"), True, "connected: %r" % r)
    eq(r.get("seen"), ["chat.message:one", "chat.fail", "chat.message:wait", "chat.message:two",
                       "echo.push:5:p1"], "routed in order (the reply to echo.push too)")
    eq(r.get("closed"), {"code": 4000, "reason": "done"}, "on_close got the server's close")
    log = State.srv.log()[start:]
    check("no controller action for type chat, action nope" in log, "unknown route logged")
    check("chat.fail failed" in log and "handler failure on purpose" in log,
          "handler error logged")


@S.case("a timer started by on_start connects to the server itself")
def test_timer(ctx):
    State.srv.wait_log(r"timer roundtrip: .*\"from\":\"timer\".* close 1000")


@S.case("wss:// against a moonwire serving TLS: verified with ca_file, refused without")
def test_wss(ctx):
    url = "wss://127.0.0.1:%d/" % State.tls.wss_port
    msg = {"type": "echo", "action": "say", "id": "s", "data": {"s": "secure"}}
    r = probe(ctx, "roundtrip", {"url": url, "message": msg,
                                 "opts": {"tls": {"ca_file": State.cert}}})
    eq(r.get("ok"), True, "verified connection: %r" % r)
    eq(json.loads(r["reply"]).get("data"), {"s": "secure"}, "reply over TLS")
    eq(r.get("close_code"), 1000, "close over TLS")
    r = probe(ctx, "connect", {"url": url})
    eq(r.get("ok"), False, "the system store does not trust a self-signed certificate")
    check("TLS" in r.get("err", "") and "self" in r.get("err", ""),
          "a clear TLS error: %r" % r.get("err"))
    r = probe(ctx, "roundtrip", {"url": url, "message": msg, "opts": {"tls": {"verify": False}}})
    eq(r.get("ok"), True, "verify = false connects")
    r = probe(ctx, "connect", {"url": "wss://localhost:%d/" % State.tls.wss_port,
                               "opts": {"tls": {"ca_file": State.cert}}})
    eq(r.get("ok"), True, "a host name checked against the certificate: %r" % r)


@S.case("bad URLs and headers are refused with nil, err")
def test_bad_input(ctx):
    for url, want in [("http://127.0.0.1/", "scheme"), ("ws://", "URL"),
                      ("ws://u:p@127.0.0.1:1/", "user"), ("ws://127.0.0.1:1/#x", "fragment")]:
        r = probe(ctx, "connect", {"url": url})
        eq(r.get("ok"), False, url)
        check(want in r.get("err", ""), "%s: %r" % (url, r.get("err")))
    r = probe(ctx, "connect", {"url": State.srv.url(),
                               "opts": {"headers": {"X-Evil": "a\r\nInjected: 1"}}})
    check(not r.get("ok") and "control character" in r.get("err", ""), "header injection: %r" % r)
    r = probe(ctx, "connect", {"url": State.srv.url(), "opts": {"headers": {"Upgrade": "x"}}})
    check(not r.get("ok") and "set by the handshake" in r.get("err", ""), "reserved header: %r" % r)


@S.case("misuse raises: a second receiver, a close code an endpoint may not send")
def test_two_receivers(ctx):
    r = probe(ctx, "two_receivers", {"url": State.other.url()})
    eq(r.get("raised"), True, "raised")
    check("already receiving" in r.get("err", ""), r.get("err"))
    eq(r.get("accepted_bad_codes") or [], [], "close codes an endpoint may not send raise")


# --------------------------------------------------------------------------
# faults
# --------------------------------------------------------------------------

@S.case("a refused port: nil and a clear error, at once")
def test_refused(ctx):
    port = H.free_port()
    r = probe(ctx, "connect", {"url": "ws://127.0.0.1:%d/" % port, "opts": {"timeout": 20000}})
    eq(r.get("ok"), False, "refused")
    check("connection refused" in r.get("err", ""), "err: %r" % r.get("err"))
    check(r.get("ms", 1e9) < 10000, "it did not wait for the timeout (%r ms)" % r.get("ms"))


@S.case("a server that accepts TCP but never answers the upgrade: nil, 'timeout'")
def test_silent(ctx):
    hold = threading.Event()
    peer = Peer(lambda s, p: (p.read_request(s), hold.wait(20)))
    try:
        r = probe(ctx, "connect", {"url": peer.url(), "opts": {"timeout": 300}})
        eq(r.get("ok"), False, "no connection")
        eq(r.get("err"), "timeout", "err")
        check(r.get("ms", 0) >= 290, "waited the timeout (%r ms)" % r.get("ms"))
        check(peer.request_line.startswith("GET / HTTP/1.1"), peer.request_line)
        eq(peer.headers.get("sec-websocket-version"), "13", "version header")
        eq(len(peer.headers.get("sec-websocket-key", "")), 24, "a 16-byte key in base64")
    finally:
        hold.set()
        peer.close()


@S.case("a wrong Sec-WebSocket-Accept is refused with a clear error")
def test_bad_accept(ctx):
    peer = Peer(lambda s, p: (p.accept(s, accept=H.accept_for("AAAAAAAAAAAAAAAAAAAAAA==")),
                              time.sleep(1)))
    try:
        r = probe(ctx, "connect", {"url": peer.url()})
        eq(r.get("ok"), False, "refused")
        check("Sec-WebSocket-Accept" in r.get("err", ""), "err: %r" % r.get("err"))
    finally:
        peer.close()


@S.case("a 200 instead of 101 is refused naming the status")
def test_not_101(ctx):
    def fn(s, p):
        p.read_request(s)
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        time.sleep(1)
    peer = Peer(fn)
    try:
        r = probe(ctx, "connect", {"url": peer.url()})
        check(not r.get("ok") and "200 instead of 101" in r.get("err", ""), "err: %r" % r)
    finally:
        peer.close()


def fragment_then(close_frame):
    def fn(s, p):
        rest = p.accept(s)
        s.sendall(frame(H.OP_TEXT, b"part one, ", fin=False) +
                  frame(H.OP_CONT, b"part two", fin=False))
        if close_frame:
            s.sendall(frame(H.OP_CLOSE, H.close_payload(4002, "gone mid-message")))
            f, rest = p.read_frame(s, rest)  # the client's answer
        s.shutdown(socket.SHUT_RDWR)
        s.close()
    return fn


@S.case("a fragmented message cut by a close frame: receive gives nil, 'closed' with the code")
def test_close_mid_message(ctx):
    peer = Peer(fragment_then(True))
    try:
        r = probe(ctx, "drain", {"url": peer.url()})
        eq(r.get("ok"), True, "connected: %r" % r)
        eq(r.get("got") or [], [], "no partial message delivered")  # cjson: {} for []
        eq(r.get("err"), "closed", "receive's error")
        eq(r.get("close_code"), 4002, "the peer's code")
        eq(r.get("close_reason"), "gone mid-message", "the peer's reason")
        eq(r.get("open"), False, "is_open()")
        check(peer.done.wait(5), "the peer finished")
        eq(peer.errors, [], "peer errors")
        fin, op, masked, payload = peer.frames[-1]
        eq(op, H.OP_CLOSE, "the client answered with a close")
        check(masked, "the client's close frame is masked")
        eq(struct.unpack("!H", payload[:2])[0], 4002, "echoing the code")
    finally:
        peer.close()


@S.case("a fragmented message cut by the TCP connection ending: nil, 'closed', code 1006")
def test_eof_mid_message(ctx):
    peer = Peer(fragment_then(False))
    try:
        r = probe(ctx, "drain", {"url": peer.url()})
        eq(r.get("got") or [], [], "no partial message")
        eq(r.get("err"), "closed", "receive's error")
        eq(r.get("close_code"), 1006, "abnormal closure")
    finally:
        peer.close()


@S.case("a message over max_message_size closes the connection with 1009")
def test_too_big(ctx):
    def fn(s, p):
        rest = p.accept(s)
        s.sendall(frame(H.OP_TEXT, b"small") + frame(H.OP_TEXT, b"x" * 5000))
        f, rest = p.read_frame(s, rest)
        s.sendall(frame(H.OP_CLOSE, f[3][:2]))  # answer the close
        time.sleep(0.2)
        s.close()
    peer = Peer(fn)
    try:
        r = probe(ctx, "drain", {"url": peer.url(), "opts": {"max_message_size": 1000}})
        eq(r.get("got"), ["small"], "the message under the limit came")
        eq(r.get("err"), "closed", "then closed")
        eq(r.get("close_code"), 1009, "close code")
        check(peer.done.wait(5), "the peer finished")
        fin, op, masked, payload = peer.frames[0]
        eq((op, masked), (H.OP_CLOSE, True), "the client sent a masked close")
        eq(struct.unpack("!H", payload[:2])[0], 1009, "with 1009")
    finally:
        peer.close()


@S.case("binary messages both ways; pings are answered; every client frame is masked")
def test_ping_and_masking(ctx):
    def fn(s, p):
        rest = p.accept(s)
        f, rest = p.read_frame(s, rest)          # the client's message
        s.sendall(frame(H.OP_PING, b"are you there") + frame(H.OP_BINARY, f[3]))
        f, rest = p.read_frame(s, rest)          # the pong
        s.sendall(frame(H.OP_CLOSE, H.close_payload(1000)))
        f, rest = p.read_frame(s, rest)          # the close answer
        s.close()
    peer = Peer(fn)
    try:
        r = probe(ctx, "drain", {"url": peer.url(), "send": "hello peer", "binary": True})
        eq(r.get("got"), ["hello peer"], "the echo came back")
        eq(r.get("kinds"), ["binary"], "as a binary message")
        eq(r.get("close_code"), 1000, "closed normally")
        check(peer.done.wait(5), "the peer finished")
        eq(peer.errors, [], "peer errors")
        eq([(f[1], f[2]) for f in peer.frames],
           [(H.OP_BINARY, True), (H.OP_PONG, True), (H.OP_CLOSE, True)], "frames, all masked")
        eq(peer.frames[1][3], b"are you there", "the pong carries the ping's payload")
    finally:
        peer.close()


@S.case("past max_queue the client stops reading (TCP backpressure); nothing is lost", timeout=90)
def test_backpressure(ctx):
    count, size = 200, 64 * 1024
    sent_all = threading.Event()
    go = os.path.join(ctx.tmpdir(), "go")

    def fn(s, p):
        p.accept(s)
        pad = b"y" * (size - 16)
        s.sendall(b"".join(frame(H.OP_TEXT, b"%d:" % (i + 1) + pad) for i in range(count)))
        sent_all.set()
        f, rest = p.read_frame(s)  # the close
        s.sendall(frame(H.OP_CLOSE, f[3][:2]))
        time.sleep(0.2)
        s.close()
    peer = Peer(fn)
    try:
        result = {}

        def run():
            result["r"] = probe(ctx, "backpressure", {"url": peer.url(), "max_queue": 4,
                                                      "go_file": go, "count": count})
        t = threading.Thread(target=run, daemon=True)
        t.start()
        # 12.5 MiB against a few MiB of socket buffers: the peer cannot
        # finish while the client does not read, whatever the speed.
        check(not sent_all.wait(3.0), "the client kept reading with nobody receiving")
        H.write_file(go, "go")
        check(sent_all.wait(60), "the peer finished sending once the client received")
        t.join(60)
        r = result.get("r") or {}
        eq(r.get("in_order"), True, "every message, in order: %r" % r)
        check(r.get("max_queued", 0) <= 4 + 8, "the queue stayed near max_queue (%r)"
              % r.get("max_queued"))
    finally:
        peer.close()


@S.case("send to a peer that reads nothing fails with 'output buffer full', not memory growth")
def test_output_bound(ctx):
    hold = threading.Event()
    peer = Peer(lambda s, p: (p.accept(s), hold.wait(20)))
    try:
        r = probe(ctx, "flood", {"url": peer.url(), "size": 1 << 20, "max": 200})
        eq(r.get("err"), "output buffer full", "send's error: %r" % r)
        check(16 <= r.get("sent", 0) < 200, "about 16 MiB were queued (%r)" % r.get("sent"))
        eq(r.get("after"), [False, "closed"], "send after abort")
    finally:
        hold.set()
        peer.close()


@S.case("a connection nobody references is closed by the collector")
def test_gc(ctx):
    H.poll(lambda: State.other.fresh_health()["connections"] == 0,
           what="earlier cases' connections to be gone")
    r = probe(ctx, "drop", {"url": State.other.url()})
    eq(r.get("opened"), True, "it was open")
    H.poll(lambda: State.other.fresh_health()["connections"] == 0,
           what="the other server to see the dropped connection gone")


@S.case("a reload keeps the connections (and tasks) of the old code")
def test_reload(ctx):
    start = len(State.srv.log())
    reloads = State.srv.fresh_health()["reloads"]
    r = probe(ctx, "hold_loop", {"url": State.other.url(), "ms": 300})
    eq(r.get("ok"), True, "connected")
    State.srv.send_signal(signal.SIGHUP)
    H.poll(lambda: State.srv.health()["reloads"] > reloads, what="the reload")
    State.srv.wait_log(r'hold_loop got \{.*"id":"late"', start=start)
    State.srv.wait_log(r"hold_loop ended: closed", start=start)
    # and the new code connects as well
    r = probe(ctx, "connect", {"url": State.other.url()})
    eq(r.get("ok"), True, "connect after the reload")


# --------------------------------------------------------------------------
# the server's stop
# --------------------------------------------------------------------------

@S.case("a server that stops with client connections open (and a task receiving) exits cleanly")
def test_stop(ctx):
    app = ctx.copy_app(ctx.fixture("wsclient"))
    srv = ctx.start("stopping", app)
    before = State.other.fresh_health()["connections"]
    r = probe(ctx, "hold", {"url": State.other.url()}, srv=srv)
    eq(r.get("ok"), True, "connected")
    r = probe(ctx, "hold", {"url": State.other.url()}, srv=srv)
    H.poll(lambda: State.other.health()["connections"] >= before + 2,
           what="the held connections on the other server")
    # and one still connecting: a peer that never answers the upgrade
    hold = threading.Event()
    peer = Peer(lambda s, p: (p.read_request(s), hold.wait(20)))
    c = ctx.track(H.JsonClient(srv))
    c.send({"type": "probe", "action": "connect", "id": "pending",
            "data": {"url": peer.url(), "opts": {"timeout": 20000}}})
    H.poll(lambda: getattr(peer, "request_line", None), what="the pending upgrade request")
    status = srv.stop()
    hold.set()
    peer.close()
    eq(status, 0, "exit status")
    check(not H.SANITIZER_RE.search(srv.log()), "sanitizer report: %s" % srv.log()[-2000:])
    H.poll(lambda: State.other.fresh_health()["connections"] <= before,
           what="the other server to see the connections gone")


if __name__ == "__main__":
    H.main(S)
