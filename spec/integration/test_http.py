#!/usr/bin/python3
"""HTTP routes of an app (APP/routes.lua) served by the real binary.

fixtures/http is copied to a temp dir and served with reload on; raw
sockets speak HTTP/1.1 (and 1.0) to it: routes with params and queries,
JSON bodies (and a malformed one: 400), 404, 405 with Allow, 413 for a
body over http_max_body (announced, or chunked), 408 for a slow head or
body, keep-alive (two requests on one connection, pipelined ones, HTTP/1.0
with keep-alive, the idle timeout), HEAD, a handler that raises (500, the
log names routes.lua:LINE, the server keeps serving), /health extended,
then replaced, then the built-in one again through reloads of routes.lua,
and a broken routes.lua that leaves the old routes serving.
"""

import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

S = H.Suite("moonwire HTTP routes")
RELOAD_DEADLINE = 10.0


class State:
    srv = None
    app = None


@S.setup
def start(ctx):
    State.app = ctx.copy_app(ctx.fixture("http"))
    State.srv = ctx.start("http", State.app)


class Conn:
    """One HTTP connection: requests written as given, answers read one at a
    time (bytes past an answer are kept for the next)."""

    def __init__(self, srv):
        self.sock = H.connect(srv.connect_host, srv.port)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode("latin-1"))

    def request(self, method, path, headers=(), body=b"", version="HTTP/1.1"):
        if isinstance(body, str):
            body = body.encode("utf-8")
        hs = [("Host", "it")] + list(headers)
        if body and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in hs):
            hs.append(("Content-Length", str(len(body))))
        req = "%s %s %s\r\n" % (method, path, version)
        req += "".join("%s: %s\r\n" % kv for kv in hs) + "\r\n"
        self.send(req.encode("latin-1") + body)

    def response(self, head_only=False):
        """(status, headers, body) of the next answer."""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise H.Failure("connection closed before an answer; got %r" % self.buf[:200])
            self.buf += chunk
        head, rest = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        m = re.match(r"HTTP/1\.1 (\d{3}) ", lines[0])
        check(m is not None, "status line %r" % lines[0])
        headers = [tuple(x.strip() for x in ln.split(":", 1)) for ln in lines[1:]]
        n = 0 if head_only else int(H.header(headers, "Content-Length") or 0)
        while len(rest) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise H.Failure("connection closed inside a body")
            rest += chunk
        self.buf = rest[n:]
        return int(m.group(1)), headers, rest[:n]

    def closed_within(self, seconds):
        closed, got = H.is_closed_within(self.sock, seconds)
        self.buf += got
        return closed

    def close(self):
        self.sock.close()


def conn(ctx):
    return ctx.track(Conn(State.srv))


def call(ctx, method, path, headers=(), body=b""):
    c = conn(ctx)
    c.request(method, path, list(headers) + [("Connection", "close")], body)
    return c.response(head_only=(method == "HEAD"))


def as_json(headers, body):
    eq(H.header(headers, "Content-Type"), "application/json", "Content-Type")
    return json.loads(body.decode("utf-8"))


@S.case("routes: params, the decoded query and headers reach the handler")
def test_params_query_headers(ctx):
    status, headers, body = call(ctx, "GET", "/items/a%20b?x=1&y=two+words&y=3",
                                 [("User-Agent", "it-client/1")])
    eq(status, 200, "status")
    eq(as_json(headers, body), {"id": "a b", "q": {"x": "1", "y": ["two words", "3"]},
                                "agent": "it-client/1"}, "handler's view of the request")


@S.case("JSON route: the body decoded, 201 with the handler's headers; malformed: 400")
def test_json_route(ctx):
    status, headers, body = call(ctx, "POST", "/items", [("Content-Type", "application/json")],
                                 json.dumps({"name": "lamp", "tags": ["a", "b"], "n": 2}))
    eq(status, 201, "status")
    doc = as_json(headers, body)
    eq(doc["item"], {"name": "lamp", "tags": ["a", "b"], "n": 2}, "decoded body")
    eq(H.header(headers, "Location"), "/items/%d" % doc["created"], "Location")
    status, headers, body = call(ctx, "POST", "/items", [], '{"name": "lamp",, }')
    eq(status, 400, "status of malformed JSON")
    err = as_json(headers, body)["error"]
    eq(err["code"], "BAD_REQUEST", "code")
    check(re.match(r"malformed JSON: .* at character \d+$", err["message"]),
          "the message names the problem: %r" % err["message"])


@S.case("unknown path: 404; known path, wrong method: 405 with Allow")
def test_404_405(ctx):
    status, headers, body = call(ctx, "GET", "/nowhere")
    eq(status, 404, "status")
    eq(as_json(headers, body)["error"]["code"], "NOT_FOUND", "code")
    status, headers, body = call(ctx, "DELETE", "/items/3")
    eq(status, 405, "status")
    eq(H.header(headers, "Allow"), "GET, HEAD", "Allow")
    eq(as_json(headers, body)["error"]["code"], "METHOD_NOT_ALLOWED", "code")


@S.case("HEAD: the GET answer's head, Content-Length included, and no body")
def test_head(ctx):
    c = conn(ctx)
    c.request("HEAD", "/items/7")
    status, headers, _ = c.response(head_only=True)
    eq(status, 200, "status")
    check(int(H.header(headers, "Content-Length")) > 0, "Content-Length of the GET body")
    c.request("GET", "/items/8", [("Connection", "close")])
    status, _, body = c.response()
    eq(json.loads(body)["id"], "8", "the next answer follows the head at once")


@S.case("body over http_max_body: 413 at once from Content-Length, or as chunks come")
def test_413(ctx):
    c = conn(ctx)
    c.send("PUT /echo HTTP/1.1\r\nHost: it\r\nContent-Length: 4097\r\n\r\n")
    status, headers, body = c.response()
    eq(status, 413, "status before any body byte was sent")
    eq(H.header(headers, "Connection"), "close", "Connection")
    check(c.closed_within(5), "the connection is closed after the 413")
    c = conn(ctx)
    c.send("PUT /echo HTTP/1.1\r\nHost: it\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(5):
        c.send("400\r\n" + "x" * 1024 + "\r\n")
    status, _, _ = c.response()
    eq(status, 413, "status of a chunked body past the limit")
    status, _, body = call(ctx, "PUT", "/echo", [], "y" * 4096)
    eq((status, len(body)), (200, 4096), "a body at the limit")


@S.case("chunked body: decoded for the handler")
def test_chunked(ctx):
    c = conn(ctx)
    c.send("PUT /echo HTTP/1.1\r\nHost: it\r\nTransfer-Encoding: chunked\r\n"
           "Connection: close\r\n\r\n5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n")
    status, headers, body = c.response()
    eq((status, body), (200, b"hello, world"), "answer")
    eq(H.header(headers, "Content-Type"), "application/octet-stream", "the handler's type")


@S.case("keep-alive: two requests on one connection, then two pipelined in one write")
def test_keep_alive(ctx):
    c = conn(ctx)
    c.request("GET", "/items/1")
    status, headers, body = c.response()
    eq(status, 200, "first status")
    eq(H.header(headers, "Connection"), "keep-alive", "Connection")
    c.request("POST", "/items", [], '{"second": true}')
    status, _, body = c.response()
    eq(status, 201, "second status, same connection")
    eq(json.loads(body)["item"], {"second": True}, "second answer")
    c.send("GET /items/p1 HTTP/1.1\r\nHost: it\r\n\r\nGET /items/p2 HTTP/1.1\r\nHost: it\r\n\r\n")
    eq(json.loads(c.response()[2])["id"], "p1", "first pipelined answer")
    eq(json.loads(c.response()[2])["id"], "p2", "second pipelined answer, in order")
    check(not c.closed_within(0.2), "the connection stays open")


@S.case("keep-alive: HTTP/1.0 with Connection: keep-alive stays open, plain HTTP/1.0 closes")
def test_http10(ctx):
    c = conn(ctx)
    c.request("GET", "/items/1", [("Connection", "keep-alive")], version="HTTP/1.0")
    status, headers, _ = c.response()
    eq(H.header(headers, "Connection"), "keep-alive", "Connection")
    c.request("GET", "/items/2", [("Connection", "keep-alive")], version="HTTP/1.0")
    eq(c.response()[0], 200, "second request on the HTTP/1.0 connection")
    c = conn(ctx)
    c.request("GET", "/items/3", version="HTTP/1.0")
    status, headers, _ = c.response()
    eq(H.header(headers, "Connection"), "close", "Connection")
    check(c.closed_within(5), "closed after the answer")


@S.case("keep-alive: an idle connection is closed after http_keepalive_timeout, no answer")
def test_keepalive_timeout(ctx):
    c = conn(ctx)
    c.request("GET", "/items/1")
    eq(c.response()[0], 200, "status")
    check(not c.closed_within(0.2), "open right after the answer")
    check(c.closed_within(10), "closed once idle for http_keepalive_timeout (1.5 s)")
    eq(c.buf, b"", "nothing was sent before the close")


@S.case("slow client: a head or a body not complete within handshake_timeout gets 408")
def test_408(ctx):
    for partial in ("GET /items/1 HTTP/1.1\r\nHost: it\r\n",
                    "PUT /echo HTTP/1.1\r\nHost: it\r\nContent-Length: 10\r\n\r\nabc"):
        c = conn(ctx)
        c.send(partial)
        status, headers, body = c.response()
        eq(status, 408, "status for %r" % partial[:20])
        check(c.closed_within(5), "closed after the 408")
    # The second request of a kept-alive connection has its own deadline.
    c = conn(ctx)
    c.request("GET", "/items/1")
    eq(c.response()[0], 200, "first request")
    c.send("GET /items/2 HTTP/1.1\r\n")
    eq(c.response()[0], 408, "a slow second request")


@S.case("a handler that raises: 500 with a JSON body, logged with routes.lua:LINE; still serving")
def test_handler_error(ctx):
    start = len(State.srv.log())
    status, headers, body = call(ctx, "GET", "/boom")
    eq(status, 500, "status")
    eq(as_json(headers, body), {"error": {"code": "INTERNAL_ERROR", "message": "internal error"}},
       "body (no detail leaks)")
    with open(os.path.join(State.app, "routes.lua")) as f:
        line = next(i for i, l in enumerate(f, 1) if "boom from a route" in l)
    want = "GET /boom failed: %s:%d: boom from a route" % (
        os.path.join(State.app, "routes.lua"), line)
    # the log writes the traceback's newlines as \n
    State.srv.wait_log(re.escape(want) + r"\\nstack traceback:", start=start)
    eq(call(ctx, "GET", "/items/after")[0], 200, "the server still serves")
    check(State.srv.alive(), "the server is alive")


def wait_reloads(n):
    return H.poll(lambda: (lambda h: h if h["reloads"] >= n else None)(State.srv.health()),
                  timeout=RELOAD_DEADLINE, what="%d reloads" % n)


@S.case("/health: extended by the app's route, replaced after a reload, built-in again", timeout=60)
def test_health_extended_replaced(ctx):
    status, headers, body = call(ctx, "GET", "/health")
    doc = as_json(headers, body)
    eq(doc["status"], "healthy", "the server's own fields")
    eq(doc["app"]["name"], "http-fixture", "the app's member")
    check("lua" in doc and "connections" in doc, "the whole document: %r" % doc)
    eq(doc["restart_required"], [], "an empty array stays an array")
    status, headers, _ = call(ctx, "HEAD", "/health")
    eq(status, 200, "HEAD /health")
    reloads = doc["reloads"]

    routes = os.path.join(State.app, "routes.lua")
    with open(routes) as f:
        original = f.read()
    H.write_file(routes, 'return { ["GET /health"] = function() '
                         'return 200, { ok = true, service = "mine" } end }\n')
    H.poll(lambda: json.loads(call(ctx, "GET", "/health")[2]) == {"ok": True, "service": "mine"},
           timeout=RELOAD_DEADLINE, what="the app's own /health")
    eq(call(ctx, "GET", "/items/1")[0], 404, "routes the new routes.lua dropped")

    H.write_file(routes, "return {}\n")
    H.poll(lambda: json.loads(call(ctx, "GET", "/health")[2]).get("status") == "healthy",
           timeout=RELOAD_DEADLINE, what="the built-in /health again")
    H.write_file(routes, original)
    H.poll(lambda: call(ctx, "GET", "/items/1")[0] == 200, timeout=RELOAD_DEADLINE,
           what="the fixture's routes again")
    check(wait_reloads(reloads + 3)["last_reload_error"] is None, "no reload failed")


@S.case("a broken routes.lua fails the reload, names routes.lua:LINE; the old routes serve",
        timeout=40)
def test_broken_routes(ctx):
    routes = os.path.join(State.app, "routes.lua")
    with open(routes) as f:
        original = f.read()
    H.write_file(routes, "return {\n  ['GET /x'] = function() end,\n  ['BREW /pot'] = 1,\n}\n")
    err = H.poll(lambda: State.srv.health().get("last_reload_error"), timeout=RELOAD_DEADLINE,
                 what="last_reload_error")
    check("routes.lua:3: route 'BREW /pot': unknown method BREW" in err, "error: %r" % err)
    eq(call(ctx, "GET", "/items/9")[0], 200, "the old routes still serve")
    H.write_file(routes, original.replace('"/items/" .. created', '"/things/" .. created'))
    H.poll(lambda: State.srv.health().get("last_reload_error") is None, timeout=RELOAD_DEADLINE,
           what="the fixed routes.lua to load")
    status, headers, _ = call(ctx, "POST", "/items", [], "{}")
    check(H.header(headers, "Location").startswith("/things/"), "the new code answers")


if __name__ == "__main__":
    H.main(S)
