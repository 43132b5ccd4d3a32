#!/usr/bin/python3
"""Authentication and authorization against the real server (issue 4).

fixtures/auth/app has an authenticate hook that understands made-up tokens
("user:<name>[:<ms until expiry>]") and an authorize hook; the JWT cases use
tokens signed here (HS* with hmac, RS256/ES256 with python3-cryptography)
against jwt_* settings. Clients are raw sockets speaking the default
protocol.
"""

import base64
import hashlib
import hmac
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

S = H.Suite("moonwire auth")


def start(ctx, app=None, **env):
    e = {"MOONWIRE_" + k.upper(): str(v) for k, v in env.items()}
    return ctx.start(None, app or ctx.fixture("auth/app"), env=e)


class C:
    """A default-protocol client; `welcome` is read when the upgrade succeeds."""

    def __init__(self, ctx, srv, path="/", expect=101, welcome=True, **kw):
        self.raw = ctx.track(H.RawClient(srv.connect_host, srv.port))
        self.status, self.headers = self.raw.handshake(path=path, expect=expect, **kw)
        self.n = 0
        self.events = []
        if self.status == 101 and welcome:
            w = self.recv()
            eq((w.get("type"), w.get("action")), ("system", "connected"), "welcome")

    def recv(self):
        op, data = self.raw.recv_message(allow_pong=True)
        return json.loads(data.decode("utf-8"))

    def req(self, type_, action, data=None):
        self.n += 1
        rid = "r%d" % self.n
        m = {"type": type_, "action": action, "id": rid}
        if data is not None:
            m["data"] = data
        self.raw.send_text(json.dumps(m))
        while True:
            r = self.recv()
            if r.get("id") == rid:
                return r
            self.events.append(r)

    def auth(self, token):
        self.raw.send_text(json.dumps({"type": "auth", "token": token}))
        return self.recv()

    def closed_by_server(self, code, reason=None):
        while True:
            f = self.raw.recv_frame()
            if f.opcode == H.OP_CLOSE:
                break
            check(f.opcode in (H.OP_TEXT, H.OP_PING), "frame before close: %r" % f)
        eq(f.close_code(), code, "close code")
        if reason is not None:
            eq(f.payload[2:], reason, "close reason")
        self.raw.send_close(code)
        self.raw.expect_eof()


def refused(ctx, srv, path="/", **kw):
    c = C(ctx, srv, path=path, expect=None, **kw)
    eq(c.status, 401, "status")
    return c


# --------------------------------------------------------------------------
# the authenticate hook
# --------------------------------------------------------------------------

@S.case("upgrade: ?token= and Authorization: Bearer authenticate; client.user is set")
def test_upgrade_token_and_bearer_set_user(ctx):
    srv = start(ctx)
    a = C(ctx, srv, path="/?token=user:alice")
    eq(a.req("t", "whoami")["data"], {"user": "alice", "via": "upgrade"}, "from the query")
    b = C(ctx, srv, extra=[("Authorization", "Bearer user:bob")])
    eq(b.req("t", "whoami")["data"], {"user": "bob", "via": "upgrade"}, "from the header")
    anon = C(ctx, srv)
    eq(anon.req("t", "whoami")["data"], {}, "no credential, not required: anonymous")


@S.case("upgrade: a refused credential is 401 with WWW-Authenticate; the hook raising too")
def test_upgrade_refused_credential_is_401(ctx):
    srv = start(ctx)
    c = refused(ctx, srv, path="/?token=nonsense")
    check(H.header(c.headers, "WWW-Authenticate"), "WWW-Authenticate")
    refused(ctx, srv, path="/?token=raise")
    refused(ctx, srv, path="/?token=fail")
    check("authenticate blew up" in srv.log(), "the hook's error is logged")
    eq(srv.fresh_health()["connections"], 0, "no client was created")
    C(ctx, srv, path="/?token=user:ok").req("t", "whoami")  # still serving


@S.case("auth_at_upgrade: no credential is 401")
def test_auth_at_upgrade_without_credential_is_401(ctx):
    srv = start(ctx, auth_at_upgrade="true")
    refused(ctx, srv)
    C(ctx, srv, path="/?token=user:carol")


@S.case("require_auth: auth message within auth_timeout; others refused until then")
def test_require_auth_refuses_until_auth_message(ctx):
    srv = start(ctx, require_auth="true", auth_timeout=3000)
    c = C(ctx, srv)
    r = c.req("t", "whoami")
    eq(r["error"]["code"], "AUTHENTICATION_FAILED", "unauthenticated message refused")
    ev = c.auth("user:dave")
    eq((ev.get("type"), ev.get("action")), ("system", "authenticated"), "event")
    eq(ev["data"]["user_id"], "dave", "user id")
    eq(c.req("t", "whoami")["data"], {"user": "dave", "via": "message"}, "now served")
    time.sleep(3.3)  # past auth_timeout: an authenticated client stays
    c.req("t", "whoami")


@S.case("require_auth: timeout closes 1008 'authentication timeout'")
def test_require_auth_timeout_closes_1008(ctx):
    srv = start(ctx, require_auth="true", auth_timeout=400)
    c = C(ctx, srv)
    c.closed_by_server(1008, b"authentication timeout")
    # authenticated at the upgrade: no timeout
    ok = C(ctx, srv, path="/?token=user:erin")
    time.sleep(0.6)
    ok.req("t", "whoami")


@S.case("auth message: an invalid token is AUTHENTICATION_FAILED, then close 1008")
def test_auth_message_invalid_token_closes_1008(ctx):
    srv = start(ctx, require_auth="true")
    c = C(ctx, srv)
    r = c.auth("nonsense")
    eq(r["error"]["code"], "AUTHENTICATION_FAILED", "code")
    eq(r["error"]["message"], "unknown token", "the hook's message")
    c.closed_by_server(1008, b"authentication failed")


@S.case("token expiry closes 1008 unless refreshed; refresh must keep the user")
def test_token_expiry_closes_unless_refreshed(ctx):
    srv = start(ctx)
    c = C(ctx, srv, path="/?token=user:frank:700")
    time.sleep(0.4)
    eq(c.auth("user:frank:1500")["action"], "authenticated", "refreshed")
    time.sleep(0.6)  # past the first expiry
    eq(c.req("t", "whoami")["data"]["user"], "frank", "still open after refresh")
    c.closed_by_server(1008, b"token expired")
    d = C(ctx, srv, path="/?token=user:gina")
    r = d.auth("user:mallory")
    eq(r["error"]["code"], "AUTHENTICATION_FAILED", "another user's token")
    d.closed_by_server(1008)


@S.case("authorize: a refused join or publish is AUTHORIZATION_FAILED")
def test_authorize_refuses_join_and_publish(ctx):
    srv = start(ctx)
    c = C(ctx, srv, path="/?token=user:henry")
    r = c.req("system", "join", {"room": "private-1"})
    eq(r["error"]["code"], "AUTHORIZATION_FAILED", "join refused")
    eq(r["error"]["message"], "private rooms are for admin", "hook message")
    admin = C(ctx, srv, path="/?token=user:admin")
    eq(admin.req("system", "join", {"room": "private-1"})["data"]["count"], 1, "admin joins")
    c.req("system", "join", {"room": "readonly"})
    r = c.req("system", "publish", {"room": "readonly", "data": "x"})
    eq(r["error"]["code"], "AUTHORIZATION_FAILED", "publish refused")
    eq(r["error"]["message"], "read-only room", "message")


@S.case("client:authorize from a controller answers as the system controller does")
def test_client_authorize_matches_system_controller(ctx):
    srv = start(ctx)
    c = C(ctx, srv, path="/?token=user:henry")
    admin = C(ctx, srv, path="/?token=user:admin")
    for who, action, room, refused in ((c, "join", "private-1", True),
                                       (c, "join", "lobby", False),
                                       (admin, "join", "private-1", False),
                                       (c, "publish", "readonly", True)):
        mine = who.req("t", "may", {"action": action, "resource": room})
        if action == "join":
            system = who.req("system", "join", {"room": room})
        else:
            who.req("system", "join", {"room": room})
            system = who.req("system", "publish", {"room": room, "data": "x"})
        eq("error" in system, refused, "%s %s: the system controller's answer" % (action, room))
        if refused:
            eq(mine.get("error"), system["error"], "%s %s: the same refusal" % (action, room))
        else:
            eq(mine.get("data"), {"allowed": True}, "%s %s: allowed" % (action, room))
    r = c.req("t", "may", {"action": "join", "resource": "private-9"})
    eq(r["error"], {"code": "AUTHORIZATION_FAILED", "message": "private rooms are for admin"},
       "the hook's message")


@S.case("max_connections_per_user: the connection past the cap is closed 1008")
def test_max_connections_per_user_closes_1008(ctx):
    srv = start(ctx, max_connections_per_user=2)
    C(ctx, srv, path="/?token=user:ivy")
    C(ctx, srv, path="/?token=user:ivy")
    third = C(ctx, srv, path="/?token=user:ivy", welcome=False)
    third.closed_by_server(1008, b"too many connections for this user")
    C(ctx, srv, path="/?token=user:jack").req("t", "whoami")  # others are fine


# --------------------------------------------------------------------------
# JWT (default strategy)
# --------------------------------------------------------------------------

def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def jwt_token(claims, alg="HS256", secret=b"s3cret", key=None, header=None):
    h = {"alg": alg, "typ": "JWT"}
    h.update(header or {})
    signing = (b64url(json.dumps(h).encode()) + "." + b64url(json.dumps(claims).encode()))
    if alg.startswith("HS"):
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
        sig = hmac.new(secret, signing.encode(), digest).digest()
    elif alg == "RS256":
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        sig = key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
    elif alg == "ES256":
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, utils
        der = key.sign(signing.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = utils.decode_dss_signature(der)
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        sig = b""
    return signing + "." + b64url(sig)


def public_pem(ctx, key):
    from cryptography.hazmat.primitives import serialization
    path = os.path.join(ctx.tmpdir(), "key.pem")
    with open(path, "wb") as f:
        f.write(key.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


def jwt_cases(ctx, srv, alg, **kw):
    now = int(time.time())
    good = {"sub": "u1", "exp": now + 60, "iss": "moonwire-tests", "aud": "chat"}
    c = C(ctx, srv, path="/?token=" + jwt_token(good, alg, **kw))
    eq(c.req("t", "whoami")["data"]["user"], "u1", "%s: user from sub" % alg)
    bad = [
        ("missing", None),
        ("garbage", "not.a.token"),
        ("expired", dict(good, exp=now - 120)),
        ("not yet valid", dict(good, nbf=now + 120)),
        ("wrong audience", dict(good, aud="other")),
        ("wrong issuer", dict(good, iss="someone-else")),
    ]
    for what, claims in bad:
        if claims is None:
            refused(ctx, srv)
        elif isinstance(claims, str):
            refused(ctx, srv, path="/?token=" + claims)
        else:
            refused(ctx, srv, path="/?token=" + jwt_token(claims, alg, **kw))
    # a tampered payload
    t = jwt_token(good, alg, **kw).split(".")
    t[1] = b64url(json.dumps(dict(good, sub="admin")).encode())
    refused(ctx, srv, path="/?token=" + ".".join(t))


JWT_ENV = dict(auth_at_upgrade="true", jwt_issuer="moonwire-tests", jwt_audience="chat")


@S.case("JWT HS256/HS384/HS512 at the upgrade: valid, and 401 for each bad token")
def test_jwt_hmac_at_upgrade(ctx):
    srv = start(ctx, app=ctx.fixture("auth/jwt"), jwt_secret="s3cret", **JWT_ENV)
    for alg in ("HS256", "HS384", "HS512"):
        jwt_cases(ctx, srv, alg)
    refused(ctx, srv, path="/?token=" + jwt_token({"sub": "x"}, "HS256", secret=b"wrong"))
    refused(ctx, srv, path="/?token=" + jwt_token({"sub": "x"}, "none"))


@S.case("JWT RS256 and ES256 with a public key file")
def test_jwt_rs256_es256_public_key_file(ctx):
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    srv = start(ctx, app=ctx.fixture("auth/jwt"), jwt_public_key=public_pem(ctx, rsa_key), **JWT_ENV)
    jwt_cases(ctx, srv, "RS256", key=rsa_key)
    # alg confusion: HS256 signed with the public key's PEM as the secret
    with open(public_pem(ctx, rsa_key), "rb") as f:
        pem = f.read()
    refused(ctx, srv, path="/?token=" + jwt_token({"sub": "x"}, "HS256", secret=pem))
    ec_key = ec.generate_private_key(ec.SECP256R1())
    srv2 = start(ctx, app=ctx.fixture("auth/jwt"), jwt_public_key=public_pem(ctx, ec_key), **JWT_ENV)
    jwt_cases(ctx, srv2, "ES256", key=ec_key)


@S.case("JWT in an auth message, with leeway")
def test_jwt_auth_message_with_leeway(ctx):
    srv = start(ctx, app=ctx.fixture("auth/jwt"), jwt_secret="s3cret", require_auth="true",
                jwt_leeway=300)
    c = C(ctx, srv)
    slightly_expired = jwt_token({"sub": "u2", "exp": int(time.time()) - 60})
    eq(c.auth(slightly_expired)["action"], "authenticated", "within the leeway")
    d = C(ctx, srv)
    r = d.auth(jwt_token({"sub": "u3", "exp": int(time.time()) - 600}))
    eq(r["error"]["code"], "AUTHENTICATION_FAILED", "past the leeway")
    d.closed_by_server(1008)


@S.case("a bad jwt_public_key stops the server with its name")
def test_bad_jwt_public_key_stops_server(ctx):
    path = os.path.join(ctx.tmpdir(), "bad.pem")
    with open(path, "w") as f:
        f.write("not a key\n")
    status, _out, err = H.run_cli(ctx.binary, ["check", ctx.example("hello")],
                                  env={"MOONWIRE_JWT_PUBLIC_KEY": path})
    check(status != 0, "exit status %d" % status)
    check("jwt_public_key" in err, "names the key: %r" % err[-300:])


if __name__ == "__main__":
    sys.exit(S.main())
