#!/usr/bin/python3
"""moonwire.nats in the real binary, against a real nats-server.

The test starts nats-server on a free port and an app whose on_start
subscribes to `orders.*` and `audit.>` (broadcasting what arrives to every
WebSocket client) and answers requests on `svc.upper`; a handler publishes
and makes requests. A backend (a minimal NATS client in Python, speaking the
text protocol) publishes, subscribes, and answers one service. Covered:
wildcards, request/reply both ways with a timeout and no responders,
/metrics (moonwire_nats_*). Then nats-server is killed during traffic:
WebSocket clients keep being served, publish answers "not connected" and
is counted, the outage is logged once; restarted on the same port, the
connection and the subscriptions come back. Last, SIGTERM with the NATS
connection open exits cleanly (no sanitizer report under ASan).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

S = H.Suite("moonwire nats")

CTRL = """local moonwire = require "moonwire"
local nc = assert(moonwire.nats.connect({ url = "URL", name = "itest" }))

local M = {}

function M.publish(client, data)
    local ok, err = nc:publish(data.subject, data.text)
    if not ok then
        moonwire.fail("NATS", err)
    end
    return { ok = true }
end

function M.request(client, data)
    local msg, err = nc:request(data.subject, data.text, data.ms)
    if not msg then
        moonwire.fail("NATS", err)
    end
    return { data = msg.data }
end

function M.ping(client, data)
    return { pong = true }
end

return M
"""

APP = """local moonwire = require "moonwire"
local M = {}

function M.on_start(app)
    local nc = assert(moonwire.nats.connect({ url = "URL", name = "itest" }))
    assert(nc:subscribe("orders.*", function(msg)
        -- every worker has this subscription: each sends to its own clients
        moonwire.broadcast({ type = "order", data = { subject = msg.subject, text = msg.data } },
                           { local_only = true })
    end))
    assert(nc:subscribe("audit.>", function(msg)
        moonwire.broadcast({ type = "any", data = { subject = msg.subject } }, { local_only = true })
    end))
    assert(nc:subscribe("svc.upper", function(msg)
        msg:respond(msg.data:upper())
    end))
end

return M
"""

CONFIG = """return { welcome = false }
"""


class Nats:
    def __init__(self):
        self.port = H.free_port()
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["nats-server", "-a", "127.0.0.1", "-p", str(self.port)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        H.poll(self.answers, timeout=10, what="nats-server answers")

    def answers(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                return s.recv(4) == b"INFO"
        except OSError:
            return False

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


class Backend:
    """A minimal NATS client: PUB, SUB, answers PING; a thread reads."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.lock = threading.Lock()
        self.msgs = []
        self.responders = {}
        self.buf = b""
        self._line()  # INFO
        self._send(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,'
                   b'"no_responders":true}\r\nPING\r\n')
        eq(self._line(), b"PONG", "the backend connected")
        self.sock.settimeout(None)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _send(self, b):
        with self.lock:
            self.sock.sendall(b)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _read(self):
        try:
            while True:
                line = self._line()
                if line == b"PING":
                    self._send(b"PONG\r\n")
                elif line.startswith(b"MSG "):
                    parts = line.split()
                    subject, sid, n = parts[1].decode(), parts[2].decode(), int(parts[-1])
                    reply = parts[3].decode() if len(parts) == 5 else None
                    while len(self.buf) < n + 2:
                        self._fill()
                    data, self.buf = self.buf[:n], self.buf[n + 2:]
                    fn = self.responders.get(sid)
                    if fn and reply:
                        self.publish(reply, fn(data))
                    with self.lock:
                        self.msgs.append((subject, data))
        except (EOFError, OSError):
            pass

    def publish(self, subject, data):
        self._send(b"PUB %s %d\r\n%s\r\n" % (subject.encode(), len(data), data))

    def subscribe(self, subject, sid, fn=None):
        if fn:
            self.responders[sid] = fn
        self._send(b"SUB %s %s\r\nPING\r\n" % (subject.encode(), sid.encode()))

    def received(self):
        with self.lock:
            return list(self.msgs)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def scrape(srv):
    status, _, body = H.http_request(srv.connect_host, srv.port, "GET", "/metrics")
    eq(status, 200, "/metrics status")
    samples = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            samples[key] = float(value)
    return samples


def metric(srv, family):
    return scrape(srv).get('moonwire_nats_%s{name="itest"}' % family)


@S.case("wildcards, request/reply, /metrics; nats-server killed during traffic and back; "
        "clean shutdown", timeout=150)
def test_nats(ctx):
    nats = Nats()
    nats.start()
    backend = None
    try:
        url = "nats://127.0.0.1:%d" % nats.port
        app = ctx.tmpdir("moonwire-nats-app-")
        H.write_file(os.path.join(app, "config.lua"), CONFIG)
        H.write_file(os.path.join(app, "app.lua"), APP.replace("URL", url))
        H.write_file(os.path.join(app, "controllers", "q.lua"), CTRL.replace("URL", url))
        # one process: the case counts the server's NATS connection and its
        # subscriptions (a connection per worker: test_trading_feed.py)
        srv = ctx.start("nats", app, env={"MOONWIRE_WORKERS": "1"})
        a = ctx.track(H.JsonClient(srv))
        b = ctx.track(H.JsonClient(srv))
        backend = Backend(nats.port)
        backend.subscribe("backend.echo", "1", lambda d: b"echo:" + d)
        backend.subscribe("backend.silent", "2")
        backend.subscribe("from.app.*", "3")

        # the app's subscriptions are up once its service answers
        H.poll(lambda: a.request("q", "request", {"subject": "svc.upper", "text": "x",
                                                  "ms": 500}).get("data") == {"data": "X"},
               timeout=15, what="the app's subscriptions")

        # a backend's publishes reach every client through orders.* and audit.>
        backend.publish("orders.new", b"o1")
        for c in (a, b):
            eq(c.recv(), {"type": "order", "data": {"subject": "orders.new", "text": "o1"}},
               "orders.* broadcast")
        backend.publish("orders.x.y", b"not for orders.*")
        backend.publish("audit.login.ok", b"{}")
        for c in (a, b):
            eq(c.recv(), {"type": "any", "data": {"subject": "audit.login.ok"}}, "audit.> broadcast")

        # the app publishes (a handler) and requests from the backend
        eq(a.request("q", "publish", {"subject": "from.app.1", "text": "hi"}).get("data"),
           {"ok": True}, "publish from a handler")
        H.poll(lambda: ("from.app.1", b"hi") in backend.received(), timeout=10,
               what="the backend got the app's publish")
        eq(a.request("q", "request", {"subject": "backend.echo", "text": "ping", "ms": 3000})
           .get("data"), {"data": "echo:ping"}, "request answered by the backend")
        eq(a.request("q", "request", {"subject": "backend.silent", "text": "?", "ms": 200})
           .get("error"), {"code": "NATS", "message": "timeout"}, "request timeout")
        eq(a.request("q", "request", {"subject": "nobody", "text": "?", "ms": 3000})
           .get("error"), {"code": "NATS", "message": "no responders"}, "no responders")

        eq(metric(srv, "up"), 1.0, "nats_up")
        eq(metric(srv, "outages_total"), 0.0, "no outage yet")
        check(metric(srv, "published_total") >= 4, "published counted")
        check(metric(srv, "received_total") >= 4, "received counted")

        # nats-server dies during traffic: clients keep being served
        backend.close()
        stop = threading.Event()
        def traffic():
            c = H.JsonClient(srv)
            n = 0
            while not stop.is_set():
                n += 1
                r = c.request("q", "ping", {})
                if r.get("data") != {"pong": True}:
                    raise H.Failure("ping %d: %r" % (n, r))
            c.close()
        errors = []
        def run():
            try:
                traffic()
            except Exception as e:  # noqa: BLE001
                errors.append(e)
        t = threading.Thread(target=run, daemon=True)
        t.start()
        nats.kill()
        H.poll(lambda: metric(srv, "up") == 0.0, timeout=10, what="nats_up 0")
        errors_before = metric(srv, "errors_total")
        for i in range(5):
            eq(a.request("q", "publish", {"subject": "orders.lost", "text": str(i)})
               .get("error"), {"code": "NATS", "message": "not connected"}, "publish while down")
        eq(metric(srv, "errors_total"), errors_before + 5, "failed publishes counted")
        check(srv.wait_log("connection lost", timeout=5), "the outage is logged")
        check(srv.wait_log("publishing fails while NATS is down", timeout=5),
              "failed publishes are logged")

        # back on the same port: the connection and the subscriptions return
        nats.start()
        H.poll(lambda: metric(srv, "up") == 1.0, timeout=20, what="nats_up 1 again")
        check(metric(srv, "reconnects_total") >= 1, "reconnect counted")
        eq(metric(srv, "outages_total"), 1.0, "the outage counted once")
        stop.set()
        t.join(timeout=20)
        eq(errors, [], "WebSocket traffic during the outage")
        log = srv.log()
        eq(log.count("connection lost"), 1, "the outage logged once")
        eq(log.count("publishing fails while NATS is down"), 1, "failures logged once")
        backend = Backend(nats.port)
        H.poll(lambda: a.request("q", "request", {"subject": "svc.upper", "text": "y",
                                                  "ms": 500}).get("data") == {"data": "Y"},
               timeout=15, what="the app's subscriptions again")
        backend.publish("orders.back", b"o2")
        for c in (a, b):
            eq(c.recv(), {"type": "order", "data": {"subject": "orders.back", "text": "o2"}},
               "orders.* after the restart")

        # SIGTERM with the NATS connection open
        ctx.close_clients()
        eq(srv.stop(signal.SIGTERM, timeout=15), 0, "exit status after SIGTERM")
        eq(ctx.sanitizer_reports(), [], "sanitizer reports")
    finally:
        if backend:
            backend.close()
        nats.kill()


if __name__ == "__main__":
    H.main(S)
