#!/usr/bin/python3
"""moonwire.jwt inside the real server (issue 4, JWT verification).

Fixture app: fixtures/jwt (controllers/auth.lua verifies tokens with
moonwire.jwt). Inside the server the C primitives come from moonwire.core,
not from the standalone module the busted specs load, so this suite is what
covers src/lua/api.c's registration. Tokens are made by independent code:
HS256 with Python's hmac, RS256 and ES256 with keys the openssl command-line
tool generates for this run (nothing private is checked in).
"""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

S = H.Suite("moonwire jwt")

SECRET = "integration-secret"
AUDIENCE = "moonwire-it"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(obj):
    return b64url(json.dumps(obj, separators=(",", ":")).encode("utf-8"))


def hs256(claims, secret=SECRET, header=None):
    h = {"alg": "HS256", "typ": "JWT"}
    h.update(header or {})
    signing = b64url_json(h) + "." + b64url_json(claims)
    mac = hmac.new(secret.encode("utf-8"), signing.encode("ascii"), hashlib.sha256).digest()
    return signing + "." + b64url(mac)


def openssl(*args):
    subprocess.run(("openssl",) + args, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def der_to_raw(der):
    """An ECDSA-Sig-Value (SEQUENCE of INTEGER r, s) to JWS r || s."""
    check(der[0] == 0x30, "DER sequence")
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = b""
    for _ in range(2):
        check(der[i] == 0x02, "DER integer")
        n = der[i + 1]
        out += der[i + 2:i + 2 + n].lstrip(b"\0").rjust(32, b"\0")
        i += 2 + n
    return out


class Keys:
    """An RSA and an EC key pair made now, in a temporary folder."""

    def __init__(self, ctx):
        self.dir = ctx.tmpdir("moonwire-jwt-")
        self.rsa = os.path.join(self.dir, "rsa.pem")
        self.ec = os.path.join(self.dir, "ec.pem")
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                "-out", self.rsa)
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-out", self.ec)
        self.rsa_pub = self.rsa + ".pub"
        self.ec_pub = self.ec + ".pub"
        openssl("pkey", "-in", self.rsa, "-pubout", "-out", self.rsa_pub)
        openssl("pkey", "-in", self.ec, "-pubout", "-out", self.ec_pub)

    def token(self, alg, claims, key=None):
        key = key or (self.rsa if alg == "RS256" else self.ec)
        signing = b64url_json({"alg": alg, "typ": "JWT"}) + "." + b64url_json(claims)
        inp = os.path.join(self.dir, "input")
        sig = os.path.join(self.dir, "sig")
        with open(inp, "wb") as f:
            f.write(signing.encode("ascii"))
        openssl("dgst", "-sha256", "-sign", key, "-out", sig, inp)
        with open(sig, "rb") as f:
            raw = f.read()
        if alg == "ES256":
            raw = der_to_raw(raw)
        return signing + "." + b64url(raw)


class WS:
    def __init__(self, ctx, srv):
        self.raw = ctx.track(srv.client())
        self.n = 0

    def req(self, action, data):
        self.n += 1
        rid = "r%d" % self.n
        self.raw.send_text(json.dumps({"type": "auth", "action": action, "data": data, "id": rid}))
        while True:
            op, payload = self.raw.recv_message(allow_pong=True)
            m = json.loads(payload.decode("utf-8"))
            if m.get("id") == rid:
                return m

    def ok(self, action, data):
        r = self.req(action, data)
        check(r.get("type") != "error", "auth.%s failed: %r" % (action, r))
        return r["data"]

    def refused(self, action, data):
        r = self.req(action, data)
        eq(r.get("type"), "error", "auth.%s should fail (%r)" % (action, r))
        eq(r["error"]["code"], "AUTHENTICATION_FAILED", "error code")
        return r["error"]["message"]


STATE = {}


def setup(ctx):
    keys = STATE["keys"] = Keys(ctx)
    other = os.path.join(keys.dir, "other.pem")
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", other)
    STATE["other_rsa"] = other


def server(ctx, key="rsa"):
    """The fixture app verifying RS256 (key="rsa") or ES256 (key="ec") tokens."""
    if key not in ctx.servers:
        keys = STATE["keys"]
        pub = keys.rsa_pub if key == "rsa" else keys.ec_pub
        ctx.start(key, ctx.fixture("jwt"), env={"JWT_SECRET": SECRET, "JWT_PUBLIC_KEY_FILE": pub})
    return ctx.servers[key]


def claims(**extra):
    c = {"sub": "alice", "aud": AUDIENCE, "exp": int(time.time()) + 300}
    c.update(extra)
    return c


S.setup(setup)


@S.case("the server's moonwire.core provides the primitives")
def test_core_provides_jwt_primitives(ctx):
    ws = WS(ctx, server(ctx))
    eq(ws.ok("source", {}), {"standalone": False}, "primitives")


@S.case("HS256 from another implementation verifies; forged and expired do not")
def test_hs256_foreign_token_verifies(ctx):
    ws = WS(ctx, server(ctx))
    eq(ws.ok("secret", {"token": hs256(claims())}), {"sub": "alice"}, "claims")
    eq(ws.refused("secret", {"token": hs256(claims(), secret="guess")}), "invalid signature",
       "forged")
    eq(ws.refused("secret", {"token": hs256(claims(exp=int(time.time()) - 60))}),
       "token expired", "expired")
    eq(ws.ok("secret", {"token": hs256(claims(exp=int(time.time()) - 60)), "leeway": 120}),
       {"sub": "alice"}, "within the leeway")
    eq(ws.refused("secret", {"token": hs256(claims(aud="elsewhere"))}), "invalid audience",
       "audience")
    eq(ws.refused("secret", {"token": hs256(claims(), header={"alg": "none"})}),
       "unsupported algorithm", "alg none")
    eq(ws.refused("secret", {"token": "not.a.token"}), "malformed token", "malformed")
    eq(ws.refused("secret", {"token": "A" * 9000}), "token too large", "oversize")


@S.case("HS256 issued by the server verifies with Python's hmac")
def test_hs256_server_token_verifies_with_hmac(ctx):
    ws = WS(ctx, server(ctx))
    token = ws.ok("issue", {"claims": {"sub": "bob"}})["token"]
    signing, sig = token.rsplit(".", 1)
    mac = hmac.new(SECRET.encode(), signing.encode(), hashlib.sha256).digest()
    eq(sig, b64url(mac), "signature")
    header = json.loads(base64.urlsafe_b64decode(signing.split(".")[0] + "=="))
    eq(header["alg"], "HS256", "alg")


@S.case("RS256 signed by openssl verifies; another key and alg confusion do not")
def test_rs256_openssl_token_verifies(ctx):
    keys = STATE["keys"]
    ws = WS(ctx, server(ctx, "rsa"))
    eq(ws.ok("public", {"token": keys.token("RS256", claims())}), {"sub": "alice"}, "claims")
    eq(ws.refused("public", {"token": keys.token("RS256", claims(), key=STATE["other_rsa"])}),
       "invalid signature", "other key")
    eq(ws.refused("public", {"token": keys.token("RS256", claims(exp=int(time.time()) - 60))}),
       "token expired", "expired")
    with open(keys.rsa_pub) as f:
        pem = f.read()
    eq(ws.refused("public", {"token": hs256(claims(), secret=pem)}), "algorithm not allowed",
       "HS256 with the public key as secret")
    eq(ws.refused("public", {"token": keys.token("ES256", claims())}), "algorithm not allowed",
       "ES256 token for an RSA key")


@S.case("ES256 signed by openssl verifies; a tampered payload does not")
def test_es256_openssl_token_verifies(ctx):
    keys = STATE["keys"]
    ws = WS(ctx, server(ctx, "ec"))
    token = keys.token("ES256", claims())
    eq(ws.ok("public", {"token": token}), {"sub": "alice"}, "claims")
    h, _, s = token.split(".")
    forged = h + "." + b64url_json(claims(sub="mallory")) + "." + s
    eq(ws.refused("public", {"token": forged}), "invalid signature", "tampered")


if __name__ == "__main__":
    sys.exit(S.main())
