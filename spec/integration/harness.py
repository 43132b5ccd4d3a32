"""Shared harness for moonwire's black-box integration suites.

Every suite script is run as

    /usr/bin/python3 spec/integration/test_X.py --binary BUILD/moonwire --root REPO

and ends with a line ``N passed, N failed`` (exit status 1 when anything
failed).  This module provides:

* ``Suite``      -- a tiny test runner: every case runs under its own deadline
                    (SIGALRM), failures never stop the suite.  A case is a
                    function named ``test_<what it checks>`` under
                    ``@S.case("sentence")``; ``-k`` selects by either.
* ``Server``     -- starts ``moonwire serve`` on a kernel-chosen port, waits for
                    the ``listening on ws://HOST:PORT/`` log line, captures
                    stderr to a file, stops it with SIGTERM then SIGKILL.
* ``RawClient``  -- a socket-level WebSocket client that can build any frame
                    (fin, rsv, opcode, mask, length encoding) and read frames,
                    close codes and EOF.
* small helpers for HTTP requests (``/health``), temporary app copies and
                    polling with a deadline (no bare sleeps for synchronisation).
"""

import argparse
import asyncio
import atexit
import base64
import functools
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures")
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SOCK_TIMEOUT = 5.0

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA

LISTEN_RE = re.compile(r"listening on wss?://\S+:(\d+)/")
# A supervisor (workers = N) names how many workers it starts; the server
# is up once each logged its listener (each loads the app and watches its
# files on its own: a test that edits a file before a worker is up would
# find that worker on the files it loaded, without a reload to report).
SUPERVISOR_RE = re.compile(r"supervisor \(pid \d+\): (\d+) workers")
WORKER_LISTEN_RE = re.compile(r"(?:\[worker |\"worker\":)(\d+)\]?[ ,].*listening on wss?://")
SANITIZER_RE = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error: |"
                          r"WARNING: ThreadSanitizer|SUMMARY: UndefinedBehaviorSanitizer")


# --------------------------------------------------------------------------
# assertions and the runner
# --------------------------------------------------------------------------

class Failure(AssertionError):
    pass


class Skip(Exception):
    """Raised by a case that cannot run yet: it is reported as skipped,
    with the reason (name the missing feature), and fails nothing."""


def check(cond, msg="check failed"):
    if not cond:
        raise Failure(msg)


def eq(got, want, what="value"):
    if got != want:
        g, w = short(got), short(want)
        raise Failure("%s: got %s, want %s" % (what, g, w))


def short(v, n=200):
    r = repr(v)
    return r if len(r) <= n else r[:n] + "...(%d chars)" % len(r)


def poll(fn, timeout=10.0, interval=0.05, what="condition"):
    """Call fn() until it returns a truthy value; return it. Fail at the deadline."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # keep polling; report the last error at the end
            last_exc = e
        if time.monotonic() >= deadline:
            extra = (" (last error: %r)" % last_exc) if last_exc else ""
            raise Failure("timed out after %.1fs waiting for %s%s" % (timeout, what, extra))
        time.sleep(interval)


class CaseTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise CaseTimeout("case deadline exceeded")


class Suite:
    def __init__(self, name):
        self.name = name
        self.cases = []          # (name, fn, timeout)
        self.setups = []
        self.teardowns = []

    def case(self, name=None, timeout=30):
        def deco(fn):
            self.cases.append((name or fn.__name__, fn, timeout))
            return fn
        return deco

    def add(self, name, fn, timeout=30):
        self.cases.append((name, fn, timeout))

    def acase(self, name, timeout=30):
        """Register an async case (async def fn(ctx)); it runs in its own
        event loop under asyncio.wait_for(timeout - 2), so a stuck await
        fails with its traceback before the case's alarm fires."""
        def deco(fn):
            @functools.wraps(fn)
            def run(ctx):
                asyncio.run(asyncio.wait_for(fn(ctx), timeout - 2))
            self.add(name, run, timeout=timeout)
            return fn
        return deco

    def setup(self, fn):
        self.setups.append(fn)
        return fn

    def teardown(self, fn):
        self.teardowns.append(fn)
        return fn

    def main(self, argv=None):
        p = argparse.ArgumentParser(description=self.name)
        p.add_argument("--binary", required=True)
        p.add_argument("--root", required=True)
        p.add_argument("-k", dest="pattern", default=None,
                       help="only run cases whose name or function name contains this substring")
        p.add_argument("-v", dest="verbose", action="store_true")
        args = p.parse_args(argv)
        args.binary = os.path.abspath(args.binary)
        args.root = os.path.abspath(args.root)
        ctx = Context(args)
        signal.signal(signal.SIGALRM, _alarm)
        passed = failed = skipped = 0
        t_start = time.monotonic()
        print("== %s (%s)" % (self.name, args.binary), flush=True)
        try:
            for fn in self.setups:
                signal.alarm(60)
                try:
                    fn(ctx)
                finally:
                    signal.alarm(0)
        except BaseException as e:
            signal.alarm(0)
            print("SETUP FAILED: %s" % e, flush=True)
            traceback.print_exc()
            ctx.dump_logs()
            ctx.cleanup()
            print("0 passed, %d failed" % max(1, len(self.cases)), flush=True)
            return 1
        selected = [c for c in self.cases
                    if not args.pattern or args.pattern in c[0]
                    or args.pattern in getattr(c[1], "__name__", "")]
        for name, fn, timeout in selected:
            t0 = time.monotonic()
            signal.alarm(int(timeout))
            try:
                fn(ctx)
                signal.alarm(0)
                passed += 1
                print("ok   %-60s %.2fs" % (name, time.monotonic() - t0), flush=True)
            except Skip as e:
                signal.alarm(0)
                skipped += 1
                print("SKIP %-60s\n     %s" % (name, e), flush=True)
            except BaseException as e:
                signal.alarm(0)
                if isinstance(e, KeyboardInterrupt):
                    raise
                failed += 1
                print("FAIL %-60s %.2fs\n     %s: %s" % (
                    name, time.monotonic() - t0, type(e).__name__, e), flush=True)
                if args.verbose or not isinstance(e, (Failure, CaseTimeout)):
                    traceback.print_exc(limit=6)
            finally:
                ctx.close_clients()
        for fn in self.teardowns:
            signal.alarm(60)
            try:
                fn(ctx)
            except BaseException as e:
                print("teardown error: %s" % e, flush=True)
            finally:
                signal.alarm(0)
        # stop every server, then look for sanitizer reports (ASan/UBSan/LSan
        # builds print them on stderr, leaks only at exit)
        ctx.stop_servers()
        reports = ctx.sanitizer_reports()
        if reports:
            failed += 1
            print("FAIL %-60s\n     %s" % ("sanitizer reports in server stderr", "\n     ".join(reports)),
                  flush=True)
        if failed:
            ctx.dump_logs()
        ctx.cleanup()
        print("-- %s: %.1fs" % (self.name, time.monotonic() - t_start))
        print("%d passed, %d failed%s" % (passed, failed,
                                          ", %d skipped" % skipped if skipped else ""), flush=True)
        return 1 if failed else 0


class Context:
    """Per-suite state: arguments, servers, temp dirs, open clients."""

    def __init__(self, args):
        self.args = args
        self.binary = args.binary
        self.root = args.root
        self.servers = {}
        self._tmpdirs = []
        self._clients = []

    def tmpdir(self, prefix="moonwire-it-"):
        d = tempfile.mkdtemp(prefix=prefix)
        self._tmpdirs.append(d)
        return d

    def example(self, name):
        return os.path.join(self.root, "examples", name)

    def fixture(self, name):
        return os.path.join(FIXTURES, name)

    def copy_app(self, src):
        dst = os.path.join(self.tmpdir(), os.path.basename(src.rstrip("/")))
        shutil.copytree(src, dst)
        return dst

    def start(self, key, app, **kw):
        srv = Server(self.binary, app, workdir=self.tmpdir("moonwire-log-"), **kw)
        srv.start()
        if key:
            self.servers[key] = srv
        return srv

    def track(self, client):
        self._clients.append(client)
        return client

    def close_clients(self):
        for c in self._clients:
            try:
                c.close()
            except Exception:
                pass
        self._clients = []

    def dump_logs(self, limit=4000):
        for key, srv in self.servers.items():
            try:
                text = srv.log()
            except Exception:
                continue
            print("---- server %r stderr (last %d chars) ----" % (key, limit))
            print(text[-limit:])

    def stop_servers(self):
        self.close_clients()
        for srv in list(self.servers.values()):
            srv.stop()

    def sanitized(self):
        """True when the binary is built with AddressSanitizer, whose allocator
        keeps freed memory in quarantine: RSS bounds do not apply there (leaks
        are caught by LeakSanitizer instead)."""
        try:
            with open(self.binary, "rb") as f:
                return b"__asan_init" in f.read()
        except OSError:
            return False

    def sanitizer_reports(self):
        out = []
        for key, srv in self.servers.items():
            m = SANITIZER_RE.search(srv.log())
            if m:
                out.append("server %r: %s" % (key, srv.log()[m.start():m.start() + 300].replace("\n", " | ")))
        return out

    def cleanup(self):
        self.stop_servers()
        if not os.environ.get("MOONWIRE_KEEP_TMP"):
            for d in self._tmpdirs:
                shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------
# the server process
# --------------------------------------------------------------------------

_ALL_PROCS = []


@atexit.register
def _kill_leftovers():
    for p in _ALL_PROCS:
        if p.poll() is None:
            try:
                p.kill()
                p.wait(timeout=5)
            except Exception:
                pass


class Server:
    def __init__(self, binary, app, host="127.0.0.1", port=0, env=None,
                 extra_args=(), workdir=None, ready_timeout=15.0, use_port_flag=True):
        self.binary = binary
        self.app = app
        self.host = host
        self.req_port = port
        self.env = dict(env or {})
        self.extra_args = list(extra_args)
        self.workdir = workdir or tempfile.mkdtemp(prefix="moonwire-log-")
        self.ready_timeout = ready_timeout
        self.use_port_flag = use_port_flag
        self.proc = None
        self.port = None
        self.stderr_path = os.path.join(self.workdir, "stderr.log")
        self.stdout_path = os.path.join(self.workdir, "stdout.log")
        self.returncode = None

    def argv(self):
        a = [self.binary, "serve", self.app]
        if self.host is not None:
            a += ["--host", self.host]
        if self.use_port_flag:
            a += ["--port", str(self.req_port)]
        return a + self.extra_args

    def start(self):
        env = dict(os.environ)
        # never let the caller's environment leak config into the server
        for k in list(env):
            if k.startswith("MOONWIRE_") and k != "MOONWIRE_LUA_DIR":
                del env[k]
        env.update(worker_env(self.env))
        env.update(self.env)
        self._err = open(self.stderr_path, "wb")
        self._out = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=self._err,
                                     env=env, cwd=self.workdir)
        _ALL_PROCS.append(self.proc)
        deadline = time.monotonic() + self.ready_timeout
        while True:
            log = self.log()
            m = LISTEN_RE.search(log)
            sup = SUPERVISOR_RE.search(log)
            if m and (not sup or len(set(WORKER_LISTEN_RE.findall(log))) >= int(sup.group(1))):
                self.port = int(m.group(1))
                return self
            if self.proc.poll() is not None:
                raise Failure("server exited with %s before listening; stderr:\n%s"
                              % (self.proc.returncode, self.log()[-3000:]))
            if time.monotonic() > deadline:
                self.stop(timeout=2)
                raise Failure("server did not log 'listening on' within %.0fs; stderr:\n%s"
                              % (self.ready_timeout, self.log()[-3000:]))
            time.sleep(0.02)

    def log(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stdout(self):
        try:
            with open(self.stdout_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern, timeout=10.0, start=0):
        rx = re.compile(pattern)
        return poll(lambda: rx.search(self.log()[start:]), timeout=timeout,
                    what="log line matching %r" % pattern)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        """Wait for exit; return the status or None at the deadline."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=signal.SIGTERM, timeout=8.0):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.returncode = self.proc.returncode
        for f in (getattr(self, "_err", None), getattr(self, "_out", None)):
            if f:
                try:
                    f.close()
                except Exception:
                    pass
        return self.returncode

    @property
    def connect_host(self):
        return self.host if self.host not in (None, "0.0.0.0") else "127.0.0.1"

    def url(self, path="/"):
        h = self.connect_host
        if ":" in h:
            h = "[%s]" % h
        return "ws://%s:%d%s" % (h, self.port, path)

    # convenience wrappers
    def client(self, path="/", **kw):
        c = RawClient(self.connect_host, self.port)
        c.handshake(path=path, **kw)
        return c

    def health(self):
        status, headers, body = http_request(self.connect_host, self.port, "GET", "/health")
        if status != 200:
            raise Failure("/health returned %s: %r" % (status, body[:200]))
        return json.loads(body.decode("utf-8"))

    def workers(self):
        """How many workers serve: /health's workers[] (one without)."""
        return len(self.health().get("workers") or [None])

    def fresh_health(self, timeout=10.0):
        """/health with every worker's numbers taken after this call
        began. With workers, /health merges each worker's last published
        numbers (every second, docs/operations.md): this waits until each
        running worker's age_ms says it published since. One worker:
        /health as it is."""
        start = time.monotonic()

        def fresh():
            asked = time.monotonic()
            h = self.health()
            since = (asked - start) * 1000.0
            for w in h.get("workers") or []:
                # pid 0: between an exit and the restart, nothing to wait
                # for; a worker that has not published since it started
                # is not up yet
                if w["pid"] and (not w["up"] or w["age_ms"] is None or w["age_ms"] > since):
                    return None
            return h
        return poll(fresh, timeout=timeout, what="every worker's numbers published anew")



def worker_env(env):
    """MW_TEST_WORKERS=N in the test's environment runs every server the
    tests start with workers = N (MOONWIRE_WORKERS), unless the test sets
    MOONWIRE_WORKERS itself: the whole suite against the supervisor and
    its workers. Unset: each app's own setting (default 1)."""
    n = os.environ.get("MW_TEST_WORKERS")
    if n and "MOONWIRE_WORKERS" not in env:
        return {"MOONWIRE_WORKERS": n}
    return {}

def run_cli(binary, args, env=None, timeout=20, cwd=None):
    """Run the binary to completion; return (status, stdout, stderr)."""
    e = dict(os.environ)
    for k in list(e):
        if k.startswith("MOONWIRE_") and k != "MOONWIRE_LUA_DIR":
            del e[k]
    if args and args[0] == "serve":
        e.update(worker_env(env or {}))
    e.update(env or {})
    p = subprocess.run([binary] + list(args), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=e, timeout=timeout, cwd=cwd)
    err = p.stderr.decode("utf-8", "replace")
    m = SANITIZER_RE.search(err)
    if m:
        raise Failure("sanitizer report from 'moonwire %s': %s" % (" ".join(args), err[m.start():m.start() + 400]))
    return (p.returncode, p.stdout.decode("utf-8", "replace"), err)


class RedisServer:
    """A redis-server of a test's own on a free port, without persistence: start,
    kill (SIGKILL) and start again on the same port; cli(...) runs redis-cli."""

    def __init__(self, ctx):
        self.dir = ctx.tmpdir("moonwire-redis-")
        self.port = free_port()
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--protected-mode", "no",
             "--loglevel", "warning"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        poll(lambda: self.cli("PING") == "PONG", timeout=10, what="redis-server answers")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def cli(self, *args):
        r = subprocess.run(["redis-cli", "-p", str(self.port)] + list(args),
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
        return r.stdout.decode().strip()


def free_port(host="127.0.0.1"):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.bind((host, 0))
    p = s.getsockname()[1]
    s.close()
    return p


# --------------------------------------------------------------------------
# HTTP helpers
# --------------------------------------------------------------------------

def connect(host, port, timeout=SOCK_TIMEOUT):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect((host, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_http_head(sock, buf=b"", limit=65536):
    """Read until CRLFCRLF. Returns (status, reason, headers(list of (k,v)), rest)."""
    while b"\r\n\r\n" not in buf:
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise Failure("connection closed before a complete HTTP response; got %r" % buf[:300])
        buf += chunk
        if len(buf) > limit:
            raise Failure("HTTP response head too large")
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3})(?: (.*))?$", lines[0])
    if not m:
        raise Failure("bad status line %r" % lines[0])
    headers = []
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers.append((k.strip(), v.strip()))
    return int(m.group(1)), m.group(2) or "", headers, rest


def header(headers, name):
    """First header value with this name (case-insensitive), or None."""
    for k, v in headers:
        if k.lower() == name.lower():
            return v
    return None


def header_all(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]


def read_body(sock, headers, rest, timeout=SOCK_TIMEOUT):
    cl = header(headers, "Content-Length")
    body = rest
    if cl is not None:
        n = int(cl)
        while len(body) < n:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return body[:n]
    te = header(headers, "Transfer-Encoding")
    if te and "chunked" in te.lower():
        data = body
        out = b""
        while True:
            while b"\r\n" not in data:
                c = sock.recv(65536)
                if not c:
                    return out
                data += c
            line, data = data.split(b"\r\n", 1)
            size = int(line.split(b";")[0], 16)
            while len(data) < size + 2:
                c = sock.recv(65536)
                if not c:
                    return out + data
                data += c
            out += data[:size]
            data = data[size + 2:]
            if size == 0:
                return out
    # read to EOF
    sock.settimeout(timeout)
    while True:
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, ConnectionResetError):
            break
        if not chunk:
            break
        body += chunk
    return body


def children(pid):
    """Pids of the live child processes of pid (the workers of a supervisor)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(entry))
    return sorted(out)


def http_request(host, port, method, path, headers=None, timeout=SOCK_TIMEOUT, body=None):
    """(status, headers, body) of one request; a dict or list body is sent as JSON."""
    s = connect(host, port, timeout)
    try:
        hs = [("Host", "%s:%d" % (host if ":" not in host else "[%s]" % host, port)),
              ("Connection", "close")] + list(headers or [])
        data = b""
        if body is not None:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
                hs.append(("Content-Type", "application/json"))
            data = body.encode("utf-8") if isinstance(body, str) else body
            hs.append(("Content-Length", str(len(data))))
        req = "%s %s HTTP/1.1\r\n" % (method, path)
        req += "".join("%s: %s\r\n" % kv for kv in hs) + "\r\n"
        s.sendall(req.encode("latin-1") + data)
        status, reason, hdrs, rest = read_http_head(s)
        body = b"" if method == "HEAD" else read_body(s, hdrs, rest)
        return status, hdrs, body
    finally:
        s.close()


def ws_key(raw16=None):
    return base64.b64encode(raw16 if raw16 is not None else os.urandom(16)).decode()


def accept_for(key):
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


DEFAULT = object()


def build_request(path="/", method="GET", version="HTTP/1.1", host=DEFAULT,
                  key=DEFAULT, extra=(), remove=(), override=None):
    """Build an upgrade request. `override` maps header name -> value (None drops it)."""
    hdrs = [
        ["Host", "127.0.0.1" if host is DEFAULT else host],
        ["Upgrade", "websocket"],
        ["Connection", "Upgrade"],
        ["Sec-WebSocket-Key", ws_key() if key is DEFAULT else key],
        ["Sec-WebSocket-Version", "13"],
    ]
    override = dict(override or {})
    out = []
    for k, v in hdrs:
        if k in remove or (k == "Host" and host is None) or (k == "Sec-WebSocket-Key" and key is None):
            continue
        if k in override:
            v = override.pop(k)
            if v is None:
                continue
        out.append((k, v))
    out += [(k, v) for k, v in override.items() if v is not None]
    out += list(extra)
    req = "%s %s %s\r\n" % (method, path, version)
    req += "".join("%s: %s\r\n" % (k, v) for k, v in out) + "\r\n"
    return req.encode("latin-1"), dict(out).get("Sec-WebSocket-Key")


# --------------------------------------------------------------------------
# frames
# --------------------------------------------------------------------------

def mask_bytes(payload, key):
    if not payload:
        return b""
    n = len(payload)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def build_frame(opcode, payload=b"", fin=True, rsv=0, mask=True, mask_key=None,
                length_enc=None, declared_len=None):
    """Build one frame.

    rsv: 3-bit value (4 = RSV1, 2 = RSV2, 1 = RSV3).
    length_enc: None (minimal), 7, 16 or 64 -- forces the length field width.
    declared_len: the length written in the header (defaults to len(payload)).
    """
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    n = len(payload) if declared_len is None else declared_len
    enc = length_enc
    if enc is None:
        enc = 7 if n < 126 else (16 if n < 65536 else 64)
    mbit = 0x80 if mask else 0
    if enc == 7:
        hdr = bytes([b0, mbit | n])
    elif enc == 16:
        hdr = bytes([b0, mbit | 126]) + struct.pack("!H", n)
    else:
        hdr = bytes([b0, mbit | 127]) + struct.pack("!Q", n)
    if mask:
        key = mask_key if mask_key is not None else os.urandom(4)
        return hdr + key + mask_bytes(payload, key)
    return hdr + payload


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    return struct.pack("!H", code) + reason


class Frame:
    __slots__ = ("fin", "rsv", "opcode", "masked", "payload")

    def __init__(self, fin, rsv, opcode, masked, payload):
        self.fin, self.rsv, self.opcode, self.masked, self.payload = fin, rsv, opcode, masked, payload

    def close_code(self):
        if len(self.payload) >= 2:
            return struct.unpack("!H", self.payload[:2])[0]
        return None

    def __repr__(self):
        return "Frame(fin=%d rsv=%d op=%#x len=%d %s)" % (
            self.fin, self.rsv, self.opcode, len(self.payload), short(self.payload[:40], 60))


class Closed(Exception):
    """The peer closed the TCP connection (EOF or reset)."""


class RawClient:
    def __init__(self, host, port, timeout=SOCK_TIMEOUT):
        self.host, self.port = host, port
        self.sock = connect(host, port, timeout)
        self.buf = b""
        self.response = None
        self.eof = False
        self.reset = False   # set when the server reset the connection (RST)

    # -- handshake --------------------------------------------------------
    def handshake(self, path="/", expect=101, **kw):
        req, key = build_request(path=path, **kw)
        self.sock.sendall(req)
        status, reason, headers, rest = read_http_head(self.sock)
        self.buf = rest
        self.response = (status, headers)
        if expect is not None and status != expect:
            raise Failure("handshake: status %d %s (want %d); headers %r"
                          % (status, reason, expect, headers))
        if status == 101:
            acc = header(headers, "Sec-WebSocket-Accept")
            if acc != accept_for(key):
                raise Failure("bad Sec-WebSocket-Accept %r for key %r" % (acc, key))
        return status, headers

    # -- raw io -----------------------------------------------------------
    def send(self, data):
        self.sock.sendall(data)

    def send_frame(self, opcode, payload=b"", **kw):
        self.sock.sendall(build_frame(opcode, payload, **kw))

    def send_text(self, s):
        self.send_frame(OP_TEXT, s.encode("utf-8") if isinstance(s, str) else s)

    def send_binary(self, b):
        self.send_frame(OP_BINARY, b)

    def send_close(self, code=None, reason=b""):
        self.send_frame(OP_CLOSE, close_payload(code, reason))

    def send_background(self, data):
        """Send in a thread, swallowing EPIPE/ECONNRESET (the server may close first)."""
        def run():
            try:
                self.sock.sendall(data)
            except OSError:
                pass
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def _fill(self, n):
        while len(self.buf) < n:
            try:
                chunk = self.sock.recv(max(65536, n - len(self.buf)))
            except ConnectionResetError:
                self.reset = True
                chunk = b""
            except socket.timeout:
                raise Failure("timed out reading from server (have %d of %d bytes)"
                              % (len(self.buf), n))
            if not chunk:
                self.eof = True
                raise Closed("connection closed by server (have %d of %d bytes)"
                             % (len(self.buf), n))
            self.buf += chunk

    def _take(self, n):
        self._fill(n)
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def recv_frame(self):
        b0, b1 = self._take(2)
        fin, rsv, op = b0 >> 7, (b0 >> 4) & 7, b0 & 0xF
        masked = b1 >> 7
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._take(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._take(8))[0]
        key = self._take(4) if masked else None
        payload = self._take(n)
        if masked:
            payload = mask_bytes(payload, key)
        return Frame(fin, rsv, op, masked, payload)

    def recv_message(self, allow_pong=False):
        """Next complete data message as (opcode, payload); fails on control frames
        (unless allow_pong: pongs are skipped)."""
        parts, first = [], None
        while True:
            f = self.recv_frame()
            if f.opcode == OP_PONG and allow_pong:
                continue
            if f.opcode >= 8:
                raise Failure("expected a data frame, got %r (close code %s)"
                              % (f, f.close_code() if f.opcode == OP_CLOSE else "-"))
            check(not f.masked, "server frame is masked")
            check(f.rsv == 0, "server frame has RSV bits %d" % f.rsv)
            if first is None:
                check(f.opcode in (OP_TEXT, OP_BINARY), "message starts with opcode %#x" % f.opcode)
                first = f.opcode
            else:
                check(f.opcode == OP_CONT, "expected continuation, got %#x" % f.opcode)
            parts.append(f.payload)
            if f.fin:
                return first, b"".join(parts)

    def expect_echo(self, opcode, payload, what="echo"):
        op, data = self.recv_message()
        eq(op, opcode, what + " opcode")
        if data != payload:
            raise Failure("%s payload differs: got %d bytes %s, want %d bytes %s" % (
                what, len(data), short(data[:60]), len(payload), short(payload[:60])))

    def roundtrip(self, text="ping-check"):
        """Echo round-trip (for echo apps)."""
        self.send_text(text)
        self.expect_echo(OP_TEXT, text.encode())

    def expect_close(self, codes, eof_timeout=5.0, allow_data=True):
        """Read frames until a close frame; check its code is in `codes` (None = empty
        payload) and that the server then closes TCP. Returns the close frame."""
        if not isinstance(codes, (list, tuple, set)):
            codes = [codes]
        while True:
            try:
                f = self.recv_frame()
            except Closed as e:
                raise Failure("TCP closed without a close frame (wanted %s): %s" % (list(codes), e))
            if f.opcode == OP_CLOSE:
                break
            if not allow_data or f.opcode not in (OP_TEXT, OP_BINARY, OP_CONT, OP_PONG):
                raise Failure("expected close %s, got %r" % (list(codes), f))
        code = f.close_code()
        check(len(f.payload) != 1, "server close frame with 1-byte payload")
        if code not in codes:
            raise Failure("close code %s (reason %r), want one of %s" % (
                code, f.payload[2:], list(codes)))
        if len(f.payload) > 2:
            try:
                f.payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                raise Failure("server close reason is not UTF-8: %r" % f.payload[2:])
        self.expect_eof(eof_timeout)
        return f

    def expect_eof(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            rem = deadline - time.monotonic()
            if rem <= 0:
                raise Failure("server did not close the TCP connection within %.1fs" % timeout)
            self.sock.settimeout(rem)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                self.reset = True
                chunk = b""
            except socket.timeout:
                continue
            finally:
                self.sock.settimeout(SOCK_TIMEOUT)
            if not chunk:
                self.eof = True
                return
            self.buf += chunk  # data after close: ignore (checked by callers if needed)

    def expect_silence(self, seconds=0.3):
        """Nothing arrives for `seconds` (no frame, no EOF)."""
        if self.buf:
            raise Failure("unexpected buffered data %r" % self.buf[:60])
        self.sock.settimeout(seconds)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return
        finally:
            self.sock.settimeout(SOCK_TIMEOUT)
        if not chunk:
            raise Failure("connection closed unexpectedly")
        raise Failure("unexpected data %r" % chunk[:60])

    def close(self):
        try:
            self.sock.close()
        except Exception:
            pass


def is_closed_within(sock, timeout):
    """True if the peer closes (EOF/reset) within timeout; False if still open."""
    deadline = time.monotonic() + timeout
    got = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            c = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return True, got
        if not c:
            return True, got
        got += c
    return False, got


def write_file(path, text):
    """Rewrite a file in place and make sure its mtime changes."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    old = None
    try:
        old = os.stat(path).st_mtime_ns
    except FileNotFoundError:
        pass
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    if old is not None and os.stat(path).st_mtime_ns == old:
        t = time.time() + 1
        os.utime(path, (t, t))


def main(suite):
    sys.exit(suite.main())


# --------------------------------------------------------------------------
# a small synchronous JSON client (default moonwire protocol) on RawClient
# --------------------------------------------------------------------------

class JsonClient:
    def __init__(self, srv, path="/", welcome=False, **kw):
        self.raw = RawClient(srv.connect_host, srv.port)
        self.raw.handshake(path=path, **kw)
        self.welcome = self.recv() if welcome else None
        self._n = 0

    def send(self, obj):
        self.raw.send_text(json.dumps(obj))

    def recv(self):
        op, data = self.raw.recv_message(allow_pong=True)
        if op != OP_TEXT:
            raise Failure("expected a text message, got opcode %#x" % op)
        return json.loads(data.decode("utf-8"))

    def request(self, type_, action, data=None, id_=None):
        if id_ is None:
            self._n += 1
            id_ = "q%d" % self._n
        msg = {"type": type_, "action": action, "id": id_}
        if data is not None:
            msg["data"] = data
        self.send(msg)
        while True:
            r = self.recv()
            if r.get("id") == id_:
                return r

    def close(self):
        self.raw.close()
