#!/usr/bin/python3
"""wss:// served by moonwire itself (tls_cert, tls_key, tls_port,
tls_min_version): real clients (python3-websockets and raw TLS sockets from
Python's ssl module) against the real binary running examples/echo.

Certificates are made at setup with the `openssl` command line: an ECDSA
P-256 one ("A") and an RSA 2048 one ("B"), both self-signed for 127.0.0.1,
and the clients trust exactly those two. Every case starts its own server
on kernel-chosen ports with log_level = debug, so refused handshakes show
up in its log with the peer address and OpenSSL's reason."""

import asyncio
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import warnings

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import OP_BINARY, OP_CLOSE, OP_TEXT, build_frame, check, close_payload, eq  # noqa: E402

S = H.Suite("moonwire TLS (wss://)")
WSS_RE = r"listening on wss://\S+:(\d+)/"
SHUTDOWN_MS = 3000


class Certs:
    dir = None


def openssl(*args):
    p = subprocess.run(["openssl"] + list(args), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if p.returncode != 0:
        raise H.Failure("openssl %s failed: %s" % (" ".join(args), p.stderr.decode()[-500:]))
    return p.stdout


def make_cert(d, name, newkey):
    key, cert = os.path.join(d, name + ".key"), os.path.join(d, name + ".crt")
    openssl("req", "-x509", "-newkey", newkey[0], *newkey[1:], "-nodes",
            "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=moonwire-test-" + name,
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost")
    return cert, key


def fingerprint_of(pem_path):
    der = ssl.PEM_cert_to_DER_cert(open(pem_path).read())
    return hashlib.sha256(der).hexdigest()


@S.setup
def make_certs(ctx):
    d = ctx.tmpdir("moonwire-tls-")
    Certs.dir = d
    Certs.a_cert, Certs.a_key = make_cert(d, "a", ["ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
    Certs.b_cert, Certs.b_key = make_cert(d, "b", ["rsa:2048"])
    Certs.bundle = os.path.join(d, "trusted.pem")
    with open(Certs.bundle, "w") as f:
        f.write(open(Certs.a_cert).read() + open(Certs.b_cert).read())
    Certs.a_fp, Certs.b_fp = fingerprint_of(Certs.a_cert), fingerprint_of(Certs.b_cert)


def client_ctx(min_version=None, max_version=None):
    c = ssl.create_default_context(cafile=Certs.bundle)
    if min_version:
        c.minimum_version = min_version
    if max_version:
        c.maximum_version = max_version
    return c


def start(ctx, cert=None, key=None, tls_port=None, env=None, app=None):
    e = {"MOONWIRE_TLS_CERT": cert or Certs.a_cert, "MOONWIRE_TLS_KEY": key or Certs.a_key,
         "MOONWIRE_LOG_LEVEL": "debug", "MOONWIRE_SHUTDOWN_TIMEOUT": str(SHUTDOWN_MS)}
    if tls_port is not None:
        e["MOONWIRE_TLS_PORT"] = str(tls_port)
    e.update(env or {})
    srv = ctx.start("srv-%d" % len(ctx.servers), app or ctx.example("echo"), env=e)
    m = srv.wait_log(WSS_RE, timeout=5)
    srv.wss_port = int(m.group(1))
    srv.health_over_tls = lambda: json.loads(https_health(srv)[1])
    return srv


def wss_url(srv, path="/"):
    return "wss://127.0.0.1:%d%s" % (srv.wss_port, path)


class TlsClient(H.RawClient):
    """The harness's raw WebSocket client over a TLS socket. With strict=True a
    TCP close without close_notify raises instead of reading as EOF."""

    def __init__(self, port, sslctx=None, strict=False, timeout=H.SOCK_TIMEOUT):
        super().__init__("127.0.0.1", port, timeout)
        self.sock = (sslctx or client_ctx()).wrap_socket(
            self.sock, server_hostname="127.0.0.1", suppress_ragged_eofs=not strict)

    def fingerprint(self):
        return hashlib.sha256(self.sock.getpeercert(binary_form=True)).hexdigest()


def tls_client(ctx, srv, **kw):
    c = ctx.track(TlsClient(srv.wss_port, **kw))
    c.handshake()
    return c


def run(coro, timeout=30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def https_health(srv):
    s = client_ctx().wrap_socket(H.connect("127.0.0.1", srv.wss_port), server_hostname="127.0.0.1")
    try:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, _, headers, rest = H.read_http_head(s)
        body = H.read_body(s, headers, rest)
        return status, body
    finally:
        s.close()


def client_hello_bytes():
    """A real ClientHello, as the first flight a client would send."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_ctx().wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def assert_dropped(sock, timeout=5.0):
    closed, got = H.is_closed_within(sock, timeout)
    check(closed, "the server did not close the connection within %.1fs" % timeout)
    check(b"HTTP/1.1 101" not in got, "got an upgrade on a broken TLS connection: %r" % got[:80])
    return got


def still_serves(srv, text="still-alive"):
    c = TlsClient(srv.wss_port)
    try:
        c.handshake()
        c.roundtrip(text)
    finally:
        c.close()


# --------------------------------------------------------------------------
# serving
# --------------------------------------------------------------------------

@S.case("wss on port: python websockets echoes text and binary; /health says tls")
def test_wss_echo_and_health(ctx):
    srv = start(ctx)
    eq(srv.wss_port, srv.port, "with tls_port unset, port itself is wss://")
    check("listening on ws://" not in srv.log(), "a plain listener was opened as well")

    async def go():
        async with websockets.connect(wss_url(srv), ssl=client_ctx(), open_timeout=5,
                                      close_timeout=2, ping_interval=None) as ws:
            for msg in ("hello", "héllo ✓", b"\x00\x01\xfe\xff", "x" * 70000):
                await ws.send(msg)
                eq(await asyncio.wait_for(ws.recv(), 5), msg, "echo of %s" % H.short(msg, 40))
            tls = ws.transport.get_extra_info("ssl_object")
            check(tls.version() in ("TLSv1.2", "TLSv1.3"), "version %s" % tls.version())
    run(go())
    status, body = https_health(srv)
    eq(status, 200, "/health over TLS")
    h = json.loads(body)
    eq(h.get("tls"), True, "/health tls field")


@S.case("1 MiB messages round-trip over TLS, pipelined, with a client that reads late", timeout=60)
def test_tls_1mib_messages(ctx):
    srv = start(ctx)

    async def go():
        async with websockets.connect(wss_url(srv), ssl=client_ctx(), open_timeout=5,
                                      close_timeout=2, ping_interval=None,
                                      max_size=2 << 20) as ws:
            msgs = [os.urandom(1 << 20), ("é" * (1 << 19)), os.urandom(300000),
                    os.urandom(1 << 20)]
            for m in msgs:
                await ws.send(m)
            # the server now holds more than the TLS flush budget for a client
            # that has not read anything yet
            await asyncio.sleep(0.3)
            for m in msgs:
                got = await asyncio.wait_for(ws.recv(), 15)
                check(got == m, "a large echo differs (%d vs %d)" % (len(got), len(m)))
    run(go(), 45)

    # A raw client that writes 6 MiB of frames before reading anything: the
    # replies outgrow the socket buffers, so they leave through uv_write
    # a budget of records at a time, and must arrive whole and in order.
    # (6 MiB stays under the read-pause watermark, so the server keeps
    # reading and this single-threaded client cannot deadlock.)
    c = tls_client(ctx, srv)
    msgs = [os.urandom(1 << 20) for _ in range(6)]
    c.send(b"".join(build_frame(OP_BINARY, m) for m in msgs))
    time.sleep(0.3)
    for i, m in enumerate(msgs):
        c.expect_echo(OP_BINARY, m, "echo %d of 6 MiB" % i)
    c.roundtrip("after-bulk")


@S.case("20 concurrent wss clients, 50 pipelined messages each, all echoed in order")
def test_tls_20_concurrent_clients(ctx):
    srv = start(ctx)

    async def one(i):
        async with websockets.connect(wss_url(srv), ssl=client_ctx(), open_timeout=10,
                                      close_timeout=2, ping_interval=None) as ws:
            sent = ["c%d-m%d-%s" % (i, k, "y" * (k * 37)) for k in range(50)]
            for m in sent:
                await ws.send(m)
            for m in sent:
                eq(await asyncio.wait_for(ws.recv(), 10), m, "echo order for client %d" % i)

    async def go():
        await asyncio.gather(*(one(i) for i in range(20)))
    run(go())


@S.case("tls_port: wss:// there, ws:// still on port, /health on both")
def test_tls_port_beside_plain_port(ctx):
    srv = start(ctx, tls_port=H.free_port())
    check(srv.wss_port != srv.port, "the TLS port is the plain port")
    check(srv.wait_log(r"listening on ws://\S+:%d/" % srv.port), "no ws:// listener log line")
    plain = ctx.track(srv.client())
    plain.roundtrip("plain-ws")
    secure = tls_client(ctx, srv)
    secure.roundtrip("over-tls")
    eq(srv.health().get("tls"), True, "/health on the plain port")
    eq(https_health(srv)[0], 200, "/health on the TLS port")
    # a TLS client on the plain port gets no TLS handshake
    s = H.connect("127.0.0.1", srv.port)
    try:
        try:
            client_ctx().wrap_socket(s, server_hostname="127.0.0.1")
            raise H.Failure("a TLS handshake succeeded on the plain port")
        except (ssl.SSLError, ConnectionResetError, socket.timeout, OSError):
            pass
    finally:
        s.close()
    plain.roundtrip("plain-after")


@S.case("without TLS, /health says tls false")
def test_health_tls_false_without_tls(ctx):
    srv = ctx.start("plain", ctx.example("echo"))
    eq(srv.health().get("tls"), False, "/health tls field")


@S.case("client-initiated close: 1000 echoed, then close_notify before the FIN")
def test_tls_close_then_close_notify(ctx):
    srv = start(ctx)
    c = tls_client(ctx, srv, strict=True)
    c.roundtrip()
    c.send_close(1000, "bye")
    c.expect_close(1000)  # strict: a FIN without close_notify would raise here


# --------------------------------------------------------------------------
# refused clients
# --------------------------------------------------------------------------

@S.case("plain HTTP and ws:// clients on the TLS port are dropped; others keep working")
def test_tls_port_drops_plain_clients(ctx):
    srv = start(ctx)
    keep = tls_client(ctx, srv)
    for attempt in range(3):
        s = H.connect("127.0.0.1", srv.wss_port)
        try:
            req, _ = H.build_request()
            s.sendall(req)
            assert_dropped(s)
        finally:
            s.close()
    status = H.run_cli("/usr/bin/curl", ["-s", "-m", "5", "http://127.0.0.1:%d/health" % srv.wss_port])[0] \
        if os.path.exists("/usr/bin/curl") else None
    check(status in (None, 52, 56), "curl over plain HTTP got status %r" % status)
    srv.wait_log(r"TLS handshake failed from 127\.0\.0\.1:\d+: http request")
    keep.roundtrip("after-plain-clients")
    still_serves(srv)
    check(srv.alive(), "server died")


@S.case("a client offering only TLS 1.1 is refused with a protocol_version alert")
def test_tls_1_1_refused(ctx):
    srv = start(ctx)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.check_hostname = False
        old.verify_mode = ssl.CERT_NONE
        try:
            old.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 allows TLS 1.1 only at level 0
            old.minimum_version = ssl.TLSVersion.TLSv1_1
            old.maximum_version = ssl.TLSVersion.TLSv1_1
        except (ValueError, ssl.SSLError):
            old = None
    if old is not None:
        s = H.connect("127.0.0.1", srv.wss_port)
        try:
            try:
                t = old.wrap_socket(s)
                raise H.Failure("a TLS 1.1 handshake succeeded (%s)" % t.version())
            except ssl.SSLError as e:
                check("PROTOCOL_VERSION" in str(e).upper() or "UNSUPPORTED" in str(e).upper(),
                      "unexpected handshake error %s" % e)
        finally:
            s.close()
    else:
        p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % srv.wss_port,
                            "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=15)
        check(p.returncode != 0, "openssl s_client -tls1_1 connected")
    srv.wait_log(r"TLS handshake failed from 127\.0\.0\.1:\d+: unsupported protocol")
    # TLS 1.2 is still accepted by default
    c = ctx.track(TlsClient(srv.wss_port, client_ctx(max_version=ssl.TLSVersion.TLSv1_2)))
    eq(c.sock.version(), "TLSv1.2", "negotiated version")
    c.handshake()
    c.roundtrip("tls12")


@S.case("tls_min_version = 1.3 refuses a TLS 1.2 client and accepts TLS 1.3")
def test_tls_min_version_1_3(ctx):
    srv = start(ctx, env={"MOONWIRE_TLS_MIN_VERSION": "1.3"})
    s = H.connect("127.0.0.1", srv.wss_port)
    try:
        try:
            client_ctx(max_version=ssl.TLSVersion.TLSv1_2).wrap_socket(s, server_hostname="127.0.0.1")
            raise H.Failure("a TLS 1.2 handshake succeeded with tls_min_version = 1.3")
        except ssl.SSLError:
            pass
    finally:
        s.close()
    c = tls_client(ctx, srv)
    eq(c.sock.version(), "TLSv1.3", "negotiated version")
    c.roundtrip()


@S.case("garbage and truncated ClientHellos close only their own connection")
def test_tls_garbage_hellos_isolated(ctx):
    srv = start(ctx, env={"MOONWIRE_HANDSHAKE_TIMEOUT": "1500"})
    keep = tls_client(ctx, srv)
    hello = client_hello_bytes()
    check(len(hello) > 100 and hello[0] == 0x16, "not a ClientHello: %r" % hello[:10])

    # random bytes
    s = H.connect("127.0.0.1", srv.wss_port)
    s.sendall(os.urandom(2048))
    assert_dropped(s)
    s.close()
    # a handshake record header, then garbage where the ClientHello should be
    s = H.connect("127.0.0.1", srv.wss_port)
    s.sendall(hello[:5] + os.urandom(len(hello) - 5))
    assert_dropped(s)
    s.close()
    # a ClientHello cut short, then the client half-closes: dropped at once
    s = H.connect("127.0.0.1", srv.wss_port)
    s.sendall(hello[: len(hello) // 2])
    s.shutdown(socket.SHUT_WR)
    assert_dropped(s, 3.0)
    s.close()
    # a ClientHello cut short and left hanging: handshake_timeout ends it
    s = H.connect("127.0.0.1", srv.wss_port)
    s.sendall(hello[: len(hello) // 2])
    t0 = time.monotonic()
    assert_dropped(s, 5.0)
    check(time.monotonic() - t0 >= 1.0, "closed before handshake_timeout")
    s.close()
    # nothing at all
    s = H.connect("127.0.0.1", srv.wss_port)
    assert_dropped(s, 5.0)
    s.close()

    keep.roundtrip("after-garbage")
    still_serves(srv)
    check(srv.alive(), "server died")


class MemoryTls:
    """A TLS client over ssl.MemoryBIO, so a test can touch the records."""

    def __init__(self, port):
        self.sock = H.connect("127.0.0.1", port)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = client_ctx().wrap_bio(self.inc, self.out, server_hostname="127.0.0.1")
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.flush()
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise H.Failure("closed during the handshake")
                self.inc.write(chunk)
        self.flush()

    def flush(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def records(self, plaintext):
        self.obj.write(plaintext)
        return self.out.read()

    def read_some(self):
        while True:
            try:
                return self.obj.read(65536)
            except ssl.SSLWantReadError:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise H.Closed("EOF")
                self.inc.write(chunk)

    def close(self):
        self.sock.close()


@S.case("a corrupted record on an open WebSocket closes only that connection")
def test_tls_corrupted_record_isolated(ctx):
    srv = start(ctx)
    keep = tls_client(ctx, srv)
    m = ctx.track(MemoryTls(srv.wss_port))
    req, _ = H.build_request()
    m.sock.sendall(m.records(req))
    check(m.read_some().startswith(b"HTTP/1.1 101"), "no upgrade")
    H.poll(lambda: srv.health_over_tls()["connections"] == 2, timeout=5, what="2 clients")
    rec = bytearray(m.records(build_frame(OP_TEXT, b"hello")))
    rec[-1] ^= 0x55  # the authentication tag no longer matches
    m.sock.sendall(bytes(rec))
    assert_dropped(m.sock)
    m.close()  # the server lingers until our FIN (or close_timeout)
    srv.wait_log(r"TLS error from 127\.0\.0\.1:\d+: ")
    H.poll(lambda: srv.health_over_tls()["connections"] == 1, timeout=5,
           what="the broken client to be gone")
    keep.roundtrip("unaffected")


# --------------------------------------------------------------------------
# certificate reload
# --------------------------------------------------------------------------

def install(dst_cert, dst_key, src_cert, src_key):
    """Replace the served files atomically (what a renewal tool does)."""
    for src, dst in ((src_cert, dst_cert), (src_key, dst_key)):
        tmp = dst + ".new"
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)


@S.case("SIGHUP with a new certificate: new connections see it, open ones keep theirs")
def test_sighup_new_certificate(ctx):
    d = ctx.tmpdir("moonwire-tls-live-")
    cert, key = os.path.join(d, "live.crt"), os.path.join(d, "live.key")
    install(cert, key, Certs.a_cert, Certs.a_key)
    srv = start(ctx, cert=cert, key=key)
    old = tls_client(ctx, srv)
    eq(old.fingerprint(), Certs.a_fp, "certificate before the reload")

    install(cert, key, Certs.b_cert, Certs.b_key)
    mark = len(srv.log())
    srv.send_signal(signal.SIGHUP)
    # the outcome line (info: with workers, the supervisor's once every
    # worker reported; a worker's own line is debug and says one worker)
    srv.wait_log(r"info  reloaded the TLS certificate from " + cert.replace(".", r"\."), start=mark)

    new = tls_client(ctx, srv)
    eq(new.fingerprint(), Certs.b_fp, "certificate after the reload")
    new.roundtrip("new-cert")
    old.roundtrip("old-connection")

    async def ws_fp():
        async with websockets.connect(wss_url(srv), ssl=client_ctx(), open_timeout=5,
                                      close_timeout=2, ping_interval=None) as ws:
            der = ws.transport.get_extra_info("ssl_object").getpeercert(True)
            await ws.send("x")
            await asyncio.wait_for(ws.recv(), 5)
            return hashlib.sha256(der).hexdigest()
    eq(run(ws_fp()), Certs.b_fp, "certificate seen by python websockets")


@S.case("SIGHUP with a broken certificate or a mismatched key keeps the old one and logs why")
def test_sighup_broken_certificate_kept_old(ctx):
    d = ctx.tmpdir("moonwire-tls-live-")
    cert, key = os.path.join(d, "live.crt"), os.path.join(d, "live.key")
    install(cert, key, Certs.a_cert, Certs.a_key)
    srv = start(ctx, cert=cert, key=key)
    open_before = tls_client(ctx, srv)

    # a truncated certificate file
    pem = open(Certs.b_cert).read()
    with open(cert, "w") as f:
        f.write(pem[: len(pem) // 2])
    mark = len(srv.log())
    srv.send_signal(signal.SIGHUP)
    m = srv.wait_log(r"error TLS reload failed, the previous certificate keeps serving: "
                     r"tls_cert: " + cert.replace(".", r"\.") + r"[^\n]*", start=mark)
    check("not a PEM certificate chain" in m.group(0), "log line: %s" % m.group(0))
    c = tls_client(ctx, srv)
    eq(c.fingerprint(), Certs.a_fp, "certificate after a failed reload")
    c.roundtrip()

    # a good certificate with the key of another one
    shutil.copyfile(Certs.b_cert, cert)
    mark = len(srv.log())
    srv.send_signal(signal.SIGHUP)
    m = srv.wait_log(r"error TLS reload failed[^\n]*tls_key: " + key.replace(".", r"\.") +
                     r" does not match the certificate in " + cert.replace(".", r"\."), start=mark)
    c2 = tls_client(ctx, srv)
    eq(c2.fingerprint(), Certs.a_fp, "certificate after a mismatched reload")

    # a missing key file
    os.unlink(key)
    mark = len(srv.log())
    srv.send_signal(signal.SIGHUP)
    srv.wait_log(r"error TLS reload failed[^\n]*tls_key: cannot read " + key.replace(".", r"\."),
                 start=mark)
    eq(tls_client(ctx, srv).fingerprint(), Certs.a_fp, "certificate after a missing key")

    # fixed: the next SIGHUP takes the new pair
    shutil.copyfile(Certs.b_key, key)
    mark = len(srv.log())
    srv.send_signal(signal.SIGHUP)
    srv.wait_log(r"info  reloaded the TLS certificate", start=mark)
    eq(tls_client(ctx, srv).fingerprint(), Certs.b_fp, "certificate after the fix")
    open_before.roundtrip("first-connection")
    check(srv.alive(), "server died")


@S.case("workers = 2: SIGHUP rereads the certificate in every worker, one line per outcome")
def test_sighup_certificate_workers(ctx):
    d = ctx.tmpdir("moonwire-tls-live-")
    cert, key = os.path.join(d, "live.crt"), os.path.join(d, "live.key")
    install(cert, key, Certs.a_cert, Certs.a_key)
    srv = start(ctx, cert=cert, key=key, env={"MOONWIRE_WORKERS": "2"})
    srv.wait_log(r"\[worker 2\] listening on")
    srv.wait_log(r"\[worker 1\] listening on")

    with open(cert, "w") as f:
        f.write("not a certificate\n")
    mark = len(srv.log())
    srv.send_signal(signal.SIGHUP)
    srv.wait_log(r"reloaded the app on workers 1-2 \(SIGHUP\)", start=mark)
    lines = [l for l in srv.log()[mark:].splitlines() if "TLS" in l and " debug " not in l]
    eq(len(lines), 1, "one TLS line for both workers: %r" % lines)
    check(re.search(r"error TLS reload failed, the previous certificate keeps serving: "
                    r"tls_cert: \S*live\.crt.* \(workers 1-2\)$", lines[0]),
          "the supervisor's line names both workers: %r" % lines[0])

    install(cert, key, Certs.b_cert, Certs.b_key)
    mark = len(srv.log())
    srv.send_signal(signal.SIGHUP)
    srv.wait_log(r"reloaded the TLS certificate from " + re.escape(cert) +
                 r" \(workers 1-2\)", start=mark)
    lines = [l for l in srv.log()[mark:].splitlines() if "TLS" in l and " debug " not in l]
    eq(len(lines), 1, "one TLS line for both workers: %r" % lines)
    # every worker has the new one by then, whichever accepts
    for i in range(6):
        eq(tls_client(ctx, srv).fingerprint(), Certs.b_fp, "certificate of client %d" % i)


# --------------------------------------------------------------------------
# configuration errors
# --------------------------------------------------------------------------

def serve_fails(ctx, env, app=None):
    status, out, err = H.run_cli(ctx.binary, ["serve", app or ctx.example("echo"),
                                              "--host", "127.0.0.1", "--port", "0"],
                                 env=dict(env, MOONWIRE_RELOAD="false"), timeout=20)
    return status, err


@S.case("bad TLS configuration exits 2 naming the key (and the file)")
def test_bad_tls_config_exits_2(ctx):
    missing = os.path.join(Certs.dir, "missing.pem")
    cases = [
        ({"MOONWIRE_TLS_CERT": Certs.a_cert}, ["tls_key", "must be set when tls_cert is"]),
        ({"MOONWIRE_TLS_KEY": Certs.a_key}, ["tls_cert", "must be set when tls_key is"]),
        ({"MOONWIRE_TLS_PORT": "8443"}, ["tls_port", "needs tls_cert and tls_key"]),
        ({"MOONWIRE_TLS_CERT": missing, "MOONWIRE_TLS_KEY": Certs.a_key},
         ["tls_cert: cannot read " + missing, "No such file"]),
        ({"MOONWIRE_TLS_CERT": Certs.a_cert, "MOONWIRE_TLS_KEY": missing},
         ["tls_key: cannot read " + missing]),
        ({"MOONWIRE_TLS_CERT": Certs.dir, "MOONWIRE_TLS_KEY": Certs.a_key},
         ["tls_cert: " + Certs.dir]),
        ({"MOONWIRE_TLS_CERT": Certs.a_key, "MOONWIRE_TLS_KEY": Certs.a_key},
         ["tls_cert: " + Certs.a_key, "not a PEM certificate chain"]),
        ({"MOONWIRE_TLS_CERT": Certs.a_cert, "MOONWIRE_TLS_KEY": Certs.b_key},
         ["tls_key: " + Certs.b_key + " does not match the certificate in " + Certs.a_cert]),
        ({"MOONWIRE_TLS_CERT": Certs.a_cert, "MOONWIRE_TLS_KEY": Certs.a_key,
          "MOONWIRE_TLS_MIN_VERSION": "1.1"}, ["MOONWIRE_TLS_MIN_VERSION", "tls_min_version"]),
        ({"MOONWIRE_TLS_CERT": Certs.a_cert, "MOONWIRE_TLS_KEY": Certs.a_key,
          "MOONWIRE_TLS_PORT": "70000"}, ["tls_port", "between -1 and 65535"]),
    ]
    if os.geteuid() != 0:  # root reads any file: only then can a mode refuse it
        locked = os.path.join(Certs.dir, "locked.key")
        shutil.copyfile(Certs.a_key, locked)
        os.chmod(locked, 0)
        cases.append(({"MOONWIRE_TLS_CERT": Certs.a_cert, "MOONWIRE_TLS_KEY": locked},
                      ["tls_key: cannot read " + locked, "Permission denied"]))
    for env, wants in cases:
        status, err = serve_fails(ctx, env)
        eq(status, 2, "exit status for %r (stderr %r)" % (env, err[-300:]))
        for w in wants:
            check(w in err, "stderr for %r lacks %r: %r" % (env, w, err[-400:]))
        check("moonwire: invalid configuration: " in err, "not a configuration error: %r" % err)
        check("listening on" not in err, "it listened anyway: %r" % err[-300:])


@S.case("moonwire check loads the TLS files: shows wss://, refuses a mismatched key")
def test_check_loads_tls_files(ctx):
    env = {"MOONWIRE_TLS_CERT": Certs.a_cert, "MOONWIRE_TLS_KEY": Certs.a_key}
    rc, out, err = H.run_cli(ctx.binary, ["check", ctx.example("echo")], env=env)
    eq(rc, 0, "exit status (stderr %r)" % err)
    check("wss:// on port 8080, certificate " + Certs.a_cert in out, "check output %r" % out)
    rc, out, err = H.run_cli(ctx.binary, ["check", ctx.example("echo")],
                             env=dict(env, MOONWIRE_TLS_PORT="8443"))
    eq(rc, 0, "exit status (stderr %r)" % err)
    check("wss:// on port 8443 (ws:// on port 8080)" in out, "check output %r" % out)
    rc, out, err = H.run_cli(ctx.binary, ["check", ctx.example("echo")],
                             env=dict(env, MOONWIRE_TLS_KEY=Certs.b_key))
    eq(rc, 2, "exit status with a mismatched key")
    check("tls_key: " + Certs.b_key + " does not match" in err, "stderr %r" % err)


@S.case("config.lua with only tls_cert exits 2 naming the key")
def test_tls_cert_without_key_exits_2(ctx):
    app = ctx.copy_app(ctx.example("echo"))
    H.write_file(os.path.join(app, "config.lua"),
                 'return { path = "*", welcome = false, tls_cert = %r }\n' % Certs.a_cert)
    status, err = serve_fails(ctx, {}, app)
    eq(status, 2, "exit status (stderr %r)" % err[-300:])
    check("tls_key: must be set when tls_cert is" in err, "stderr %r" % err[-300:])
    H.write_file(os.path.join(app, "config.lua"),
                 'return { path = "*", tls_cert = %r, tls_key = %r, tls_port = "x" }\n'
                 % (Certs.a_cert, Certs.a_key))
    status, err = serve_fails(ctx, {}, app)
    eq(status, 2, "exit status (stderr %r)" % err[-300:])
    check("tls_port: must be an integer" in err, "stderr %r" % err[-300:])


# --------------------------------------------------------------------------
# graceful shutdown
# --------------------------------------------------------------------------

@S.case("SIGTERM: TLS clients get 1001 close frames, then close_notify; exit 0 without "
        "waiting for shutdown_timeout", timeout=40)
def test_sigterm_tls_clients_1001(ctx):
    # shutdown_timeout 60 s: exiting within `limit` (a bound no machine is
    # slow enough to reach) shows the server did not wait for it
    patient_ms = 60000
    srv = start(ctx, tls_port=H.free_port(), env={"MOONWIRE_SHUTDOWN_TIMEOUT": str(patient_ms)})
    raw = [tls_client(ctx, srv, strict=True) for _ in range(3)]
    for i, c in enumerate(raw):
        c.roundtrip("r%d" % i)
    plain = ctx.track(srv.client())
    plain.roundtrip()
    t0 = time.monotonic()
    limit = 15.0
    srv.send_signal(signal.SIGTERM)
    for i, c in enumerate(raw + [plain]):
        while True:
            f = c.recv_frame()
            if f.opcode == OP_CLOSE:
                eq(f.close_code(), 1001, "close code for client %d" % i)
                break
            check(f.opcode in (OP_TEXT, OP_BINARY), "unexpected frame %r" % f)
        c.send(build_frame(OP_CLOSE, close_payload(1001)))
        c.expect_eof(limit)  # strict TLS clients raise on a FIN without close_notify
        c.close()
    rc = srv.wait_exit(limit)
    dt = time.monotonic() - t0
    check(rc is not None, "still running %.1fs after SIGTERM although every client had closed "
                          "(shutdown_timeout %d s)" % (dt, patient_ms // 1000))
    eq(rc, 0, "exit status")


@S.case("SIGTERM: python websockets clients over wss see 1001", timeout=40)
def test_sigterm_wss_clients_1001(ctx):
    srv = start(ctx)

    async def go():
        wss = []
        for _ in range(3):
            ws = await websockets.connect(wss_url(srv), ssl=client_ctx(), open_timeout=5,
                                          close_timeout=2, ping_interval=None)
            await ws.send("hi")
            await asyncio.wait_for(ws.recv(), 5)
            wss.append(ws)
        srv.send_signal(signal.SIGTERM)
        for ws in wss:
            await asyncio.wait_for(ws.wait_closed(), SHUTDOWN_MS / 1000.0 + 10)
            eq(ws.close_code, 1001, "close code seen by the websockets client")
    run(go(), 30)
    rc = srv.wait_exit(SHUTDOWN_MS / 1000.0 + 10)
    eq(rc, 0, "exit status")


if __name__ == "__main__":
    H.main(S)
