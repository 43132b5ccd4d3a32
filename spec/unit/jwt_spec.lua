-- Specs for moonwire.jwt: verify (every algorithm, every claim check, the
-- refusals), sign, decode and load_key.
--
-- The crypto is real: outside the server, moonwire.jwt takes the C
-- primitives from the real core (build/lua/moonwire/core.so) or the
-- module moonwire.core.jwt (build/lua/moonwire/core/jwt.so; CTest puts both
-- on LUA_CPATH). RS256 and ES256 tokens are signed at test
-- time by the openssl command-line tool with keys it generates now.

require "moonwire.core"  -- the real core (moonwire/core.so), as in every unit spec
local openssl = require "support.openssl"
local jwt = require "moonwire.jwt"

local NOW = 1700000000

-- RFC 7515 appendix A.1: the HMAC key (the JWK "k", base64url-decoded)
-- and the example token, with exp = 1300819380.
local A1_KEY = "\3\35\53\75\43\15\165\188\131\126\6\101\119\123\166\143\90\179\40\230\240\84"
    .. "\201\40\169\15\132\178\210\80\46\191\211\251\90\146\210\6\71\239\150\138\180\195\119"
    .. "\98\61\34\61\46\33\114\5\46\79\8\192\205\154\245\103\208\128\163"
local A1_TOKEN = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
    .. ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxl"
    .. "LmNvbS9pc19yb290Ijp0cnVlfQ"
    .. ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"

local SECRET = "0123456789abcdef0123456789abcdef"


-- Flips one character in the middle of part `which` (1, 2 or 3).
local function tamper(token, which)
    local parts = {}
    for part in (token .. "."):gmatch("([^.]*)%.") do
        parts[#parts + 1] = part
    end
    local p = parts[which]
    local i = math.floor(#p / 2)
    local c = p:sub(i, i) == "A" and "B" or "A"
    parts[which] = p:sub(1, i - 1) .. c .. p:sub(i + 1)
    return table.concat(parts, ".")
end


local function with(base, extra)
    local t = {}
    for k, v in pairs(base) do t[k] = v end
    for k, v in pairs(extra or {}) do t[k] = v end
    return t
end


describe("moonwire.jwt", function()
    local keys, rsa, rsa_other, ec, ec_other

    lazy_setup(function()
        keys = openssl.new()
        rsa, rsa_other = keys:rsa(2048), keys:rsa(2048)
        ec, ec_other = keys:ec("P-256"), keys:ec("P-256")
    end)

    lazy_teardown(function()
        keys:remove()
    end)

    -- One signer and verify-options per algorithm, so the claim checks
    -- below run under each of them.
    local algorithms = {
        HS256 = {
            sign = function(claims) return assert(jwt.sign(claims, { secret = SECRET })) end,
            opts = function() return { secret = SECRET } end,
        },
        HS384 = {
            sign = function(claims)
                return assert(jwt.sign(claims, { secret = SECRET, algorithm = "HS384" }))
            end,
            opts = function() return { secret = SECRET } end,
        },
        HS512 = {
            sign = function(claims)
                return assert(jwt.sign(claims, { secret = SECRET, algorithm = "HS512" }))
            end,
            opts = function() return { secret = SECRET } end,
        },
        RS256 = {
            sign = function(claims) return keys:token(rsa, "RS256", claims) end,
            opts = function() return { public_key = rsa.public } end,
        },
        ES256 = {
            sign = function(claims) return keys:token(ec, "ES256", claims) end,
            opts = function() return { public_key = ec.public } end,
        },
    }

    it("is require('moonwire').jwt", function()
        assert.equal(jwt, require("moonwire").jwt)
        assert.same({ "ES256", "HS256", "HS384", "HS512", "RS256" }, jwt.algorithms())
        assert.equal(8192, jwt.max_token_size())
    end)

    it("verifies the RFC 7515 A.1 example", function()
        local claims = assert(jwt.verify(A1_TOKEN, { secret = A1_KEY, now = 1300819300 }))
        assert.same({ iss = "joe", exp = 1300819380, ["http://example.com/is_root"] = true },
                    claims)
        assert.same({ nil, "token expired" }, { jwt.verify(A1_TOKEN, { secret = A1_KEY }) })
    end)

    for _, alg in ipairs({ "HS256", "HS384", "HS512", "RS256", "ES256" }) do
        describe(alg, function()
            local a = algorithms[alg]

            local function verify(claims, extra)
                return jwt.verify(a.sign(claims), with(a.opts(), with({ now = NOW }, extra)))
            end

            it("verifies a valid token and returns its claims", function()
                local token = a.sign({ sub = "alice", exp = NOW + 60, nbf = NOW - 60,
                                       iss = "auth", aud = "chat", scope = { "read" } })
                assert.equal(alg, jwt.decode(token).header.alg)
                local claims, err = jwt.verify(token, with(a.opts(), {
                    now = NOW, issuer = "auth", audience = "chat" }))
                assert.is_nil(err)
                assert.same({ sub = "alice", exp = NOW + 60, nbf = NOW - 60, iss = "auth",
                              aud = "chat", scope = { "read" } }, claims)
            end)

            it("refuses an expired token, at exp itself too", function()
                assert.same({ nil, "token expired" }, { verify({ exp = NOW - 1 }) })
                assert.same({ nil, "token expired" }, { verify({ exp = NOW }) })
            end)

            it("refuses a token that is not yet valid", function()
                assert.same({ nil, "token not yet valid" }, { verify({ nbf = NOW + 1 }) })
                assert.truthy(verify({ nbf = NOW }))
            end)

            it("accepts within the leeway, and only within it", function()
                assert.truthy(verify({ exp = NOW - 30 }, { leeway = 31 }))
                assert.truthy(verify({ nbf = NOW + 30 }, { leeway = 30 }))
                assert.same({ nil, "token expired" },
                            { verify({ exp = NOW - 30 }, { leeway = 30 }) })
                assert.same({ nil, "token not yet valid" },
                            { verify({ nbf = NOW + 31 }, { leeway = 30 }) })
            end)

            it("refuses a wrong audience", function()
                assert.same({ nil, "invalid audience" },
                            { verify({ aud = "other" }, { audience = "chat" }) })
            end)

            it("refuses a wrong issuer", function()
                assert.same({ nil, "invalid issuer" },
                            { verify({ iss = "evil" }, { issuer = "auth" }) })
            end)

            it("refuses a tampered header, payload or signature", function()
                local token = a.sign({ sub = "alice" })
                for part = 1, 3 do
                    local claims, err = jwt.verify(tamper(token, part), a.opts())
                    assert.is_nil(claims)
                    assert.is_true(err == "invalid signature" or err == "malformed token", err)
                end
            end)
        end)
    end

    describe("keys", function()
        it("refuse a token signed by another key", function()
            local token = keys:token(rsa_other, "RS256", { sub = "x" })
            assert.same({ nil, "invalid signature" },
                        { jwt.verify(token, { public_key = rsa.public }) })
            token = keys:token(ec_other, "ES256", { sub = "x" })
            assert.same({ nil, "invalid signature" },
                        { jwt.verify(token, { public_key = ec.public }) })
            token = jwt.sign({ sub = "x" }, { secret = "other" })
            assert.same({ nil, "invalid signature" }, { jwt.verify(token, { secret = SECRET }) })
        end)

        it("may be PKCS#1 RSA PEMs, certificates, or keys from load_key", function()
            local rs = keys:token(rsa, "RS256", { sub = "r" })
            local es = keys:token(ec, "ES256", { sub = "e" })
            assert.equal("r", jwt.verify(rs, { public_key = rsa.pkcs1 }).sub)
            assert.equal("r", jwt.verify(rs, { public_key = rsa.cert }).sub)
            assert.equal("e", jwt.verify(es, { public_key = ec.cert }).sub)
            local key = assert(jwt.load_key(rsa.public))
            assert.equal("moonwire.jwt.key (rsa)", tostring(key))
            assert.equal("r", jwt.verify(rs, { public_key = key }).sub)
            assert.equal("moonwire.jwt.key (ec)", tostring(jwt.load_key(ec.public)))
        end)

        it("are parsed once per PEM", function()
            assert.equal(jwt.load_key(rsa.public), jwt.load_key(rsa.public))
            assert.not_equal(jwt.load_key(rsa.public), jwt.load_key(rsa_other.public))
        end)

        it("refuse RSA under 2048 bits, other curves, private keys and junk", function()
            local weak, p384 = keys:rsa(1024), keys:ec("P-384")
            assert.same({ nil, "key too small" }, { jwt.load_key(weak.public) })
            assert.same({ nil, "key too small" }, { jwt.load_key(weak.pkcs1) })
            assert.same({ nil, "unsupported key" }, { jwt.load_key(p384.public) })
            local f = assert(io.open(rsa.private, "rb"))
            local private = f:read("*a")
            f:close()
            assert.same({ nil, "unsupported key" }, { jwt.load_key(private) })
            assert.same({ nil, "unsupported key" }, { jwt.load_key("hello") })
            -- Given to verify, a bad key is the app's mistake: it raises.
            assert.error_matches(function() jwt.verify("a.b.c", { public_key = weak.public }) end,
                                 "opts.public_key: key too small")
        end)
    end)

    describe("algorithms", function()
        it("refuse HS256 signed with the RSA public key PEM (alg confusion)", function()
            local forged = jwt.sign({ sub = "admin" }, { secret = rsa.public })
            assert.same({ nil, "algorithm not allowed" },
                        { jwt.verify(forged, { public_key = rsa.public }) })
            -- Listing HS256 does not help: the key decides what can verify.
            assert.same({ nil, "algorithm not allowed" },
                        { jwt.verify(forged, { public_key = rsa.public,
                                               algorithms = { "HS256", "RS256" } }) })
            assert.error_matches(function()
                jwt.verify(forged, { public_key = rsa.public, algorithms = { "HS256" } })
            end, "no algorithm for a rsa key")
        end)

        it("refuse an algorithm that is not in opts.algorithms", function()
            local token = jwt.sign({ sub = "x" }, { secret = SECRET, algorithm = "HS512" })
            assert.same({ nil, "algorithm not allowed" },
                        { jwt.verify(token, { secret = SECRET, algorithms = { "HS256" } }) })
            assert.equal("x", jwt.verify(token, { secret = SECRET, algorithms = "HS512" }).sub)
        end)

        it("refuse a token whose alg does not fit the key type", function()
            local es = keys:token(ec, "ES256", { sub = "x" })
            local rs = keys:token(rsa, "RS256", { sub = "x" })
            assert.same({ nil, "algorithm not allowed" },
                        { jwt.verify(es, { public_key = rsa.public }) })
            assert.same({ nil, "algorithm not allowed" },
                        { jwt.verify(rs, { public_key = ec.public }) })
            assert.same({ nil, "algorithm not allowed" }, { jwt.verify(rs, { secret = SECRET }) })
            -- An RS256 signature relabelled as ES256 for an EC key.
            local lie = keys:token(rsa, "RS256", { sub = "x" }, { alg = "ES256" })
            assert.same({ nil, "invalid signature" },
                        { jwt.verify(lie, { public_key = ec.public }) })
        end)

        it("refuse none, unknown and missing algorithms", function()
            local b64 = function(s) return keys:b64url(s) end
            local claims = b64('{"sub":"x"}')
            local none = b64('{"alg":"none"}') .. "." .. claims .. "."
            assert.same({ nil, "unsupported algorithm" }, { jwt.verify(none, { secret = SECRET }) })
            local none_sig = none .. b64("sig")
            assert.same({ nil, "unsupported algorithm" },
                        { jwt.verify(none_sig, { secret = SECRET }) })
            for _, header in ipairs({ '{"alg":"PS256"}', '{"alg":"hs256"}', '{"typ":"JWT"}',
                                      '{"alg":1}' }) do
                local token = b64(header) .. "." .. claims .. "." .. b64("sig")
                assert.same({ nil, "unsupported algorithm" },
                            { jwt.verify(token, { secret = SECRET }) })
            end
        end)

        it("refuse critical header extensions", function()
            local token = jwt.sign({ sub = "x" },
                                   { secret = SECRET, header = { crit = { "exp" } } })
            assert.same({ nil, "unsupported header" }, { jwt.verify(token, { secret = SECRET }) })
        end)
    end)

    describe("claims", function()
        local function verify(claims, extra)
            return jwt.verify(jwt.sign(claims, { secret = SECRET }),
                              with({ secret = SECRET, now = NOW }, extra))
        end

        it("accepts any of several issuers, and requires iss when asked", function()
            assert.truthy(verify({ iss = "b" }, { issuer = { "a", "b" } }))
            assert.same({ nil, "invalid issuer" },
                        { verify({ iss = "c" }, { issuer = { "a", "b" } }) })
            assert.same({ nil, "invalid issuer" }, { verify({}, { issuer = "a" }) })
            assert.same({ nil, "invalid issuer" }, { verify({ iss = { "a" } }, { issuer = "a" }) })
            assert.truthy(verify({ iss = "whoever" }))
        end)

        it("matches audience strings and arrays against one or several", function()
            assert.truthy(verify({ aud = "chat" }, { audience = "chat" }))
            assert.truthy(verify({ aud = { "feed", "chat" } }, { audience = "chat" }))
            assert.truthy(verify({ aud = { "feed" } }, { audience = { "chat", "feed" } }))
            assert.truthy(verify({ aud = "feed" }, { audience = { "chat", "feed" } }))
            assert.same({ nil, "invalid audience" },
                        { verify({ aud = { "x", "y" } }, { audience = { "chat", "feed" } }) })
            assert.same({ nil, "invalid audience" }, { verify({}, { audience = "chat" }) })
            assert.same({ nil, "invalid audience" }, { verify({ aud = 7 }, { audience = "chat" }) })
            assert.truthy(verify({ aud = "anything" }))
        end)

        it("refuses exp and nbf that are not numbers", function()
            assert.same({ nil, "invalid exp claim" }, { verify({ exp = "soon" }) })
            assert.same({ nil, "invalid nbf claim" }, { verify({ nbf = true }) })
        end)

        it("has no expiry without exp, unless required", function()
            assert.truthy(verify({ sub = "x" }))
            assert.same({ nil, "missing claim" },
                        { verify({ sub = "x" }, { required = { "exp" } }) })
            assert.truthy(verify({ sub = "x", exp = NOW + 1 }, { required = { "exp", "sub" } }))
        end)

        it("uses the clock when opts.now is absent", function()
            assert.truthy(jwt.verify(jwt.sign({ exp = os.time() + 60 }, { secret = SECRET }),
                                     { secret = SECRET }))
            assert.same({ nil, "token expired" },
                        { jwt.verify(jwt.sign({ exp = os.time() - 60 }, { secret = SECRET }),
                                     { secret = SECRET }) })
        end)
    end)

    describe("malformed tokens", function()
        local prims = require "moonwire.core.jwt"

        it("are refused with a short error", function()
            local opts = { secret = SECRET }
            assert.same({ nil, "missing token" }, { jwt.verify(nil, opts) })
            assert.same({ nil, "malformed token" }, { jwt.verify(42, opts) })
            for _, token in ipairs({ "", "abc", "a.b", "a.b.c.d", "a.b.c.d.e", ".eyJ9.x",
                                     "eyJhbGciOiJIUzI1NiJ9..x", "eyJhbGciOiJIUzI1NiJ9.e30.a+b",
                                     "eyJhbGciOiJIUzI1NiJ9=.e30.x" }) do
                assert.same({ nil, "malformed token" }, { jwt.verify(token, opts) }, token)
            end
        end)

        it("include headers and payloads that are not JSON objects", function()
            local function signed(header, payload)
                return assert(prims.jwt_sign(header, payload, SECRET, "HS256"))
            end
            local opts = { secret = SECRET }
            assert.same({ nil, "malformed token" }, { jwt.verify(signed("nope", "{}"), opts) })
            assert.same({ nil, "malformed token" },
                        { jwt.verify(signed('["HS256"]', "{}"), opts) })
            assert.same({ nil, "malformed token" },
                        { jwt.verify(signed('{"alg":"HS256"}', "[1]"), opts) })
            assert.same({ nil, "malformed token" },
                        { jwt.verify(signed('{"alg":"HS256"}', '{"a":'), opts) })
            assert.same({ nil, "malformed token" },
                        { jwt.verify(signed('{"alg":"HS256"}', '{"a":NaN}'), opts) })
        end)

        it("are refused over 8 KiB, before any crypto", function()
            local big = jwt.sign({ pad = ("x"):rep(6000) }, { secret = SECRET })
            assert.truthy(jwt.verify(big, { secret = SECRET }))
            assert.same({ nil, "token too large" },
                        { jwt.sign({ pad = ("x"):rep(6200) }, { secret = SECRET }) })
            assert.same({ nil, "token too large" },
                        { jwt.verify(("A"):rep(8193), { secret = SECRET }) })
            assert.same({ nil, "token too large" },
                        { jwt.verify(big .. ("A"):rep(8192), { secret = SECRET }) })
        end)
    end)

    describe("options", function()
        it("raise on misuse", function()
            local t = A1_TOKEN
            assert.error_matches(function() jwt.verify(t) end, "bad argument #2 to 'verify'")
            assert.error_matches(function() jwt.verify(t, {}) end,
                                 "opts.secret or opts.public_key expected")
            assert.error_matches(function() jwt.verify(t, { secret = "a", public_key = rsa.public })
            end, "exclusive")
            assert.error_matches(function() jwt.verify(t, { secret = "" }) end, "non%-empty")
            assert.error_matches(function() jwt.verify(t, { public_key = {} }) end, "PEM string")
            assert.error_matches(function() jwt.verify(t, { public_key = io.stdout }) end,
                                 "PEM string")
            assert.error_matches(function() jwt.verify(t, { secret = "a", algorithms = { "none" } })
            end, "unsupported algorithm none")
            assert.error_matches(function() jwt.verify(t, { secret = "a", leeway = -1 }) end,
                                 "leeway")
            assert.error_matches(function() jwt.verify(t, { secret = "a", now = "x" }) end, "now")
            assert.error_matches(function() jwt.verify(t, { secret = "a", issuer = 1 }) end,
                                 "issuer")
            assert.error_matches(function() jwt.verify(t, { secret = "a", audience = {} }) end,
                                 "audience")
            assert.error_matches(function() jwt.verify(t, { secret = "a", required = "exp" }) end,
                                 "required")
        end)
    end)

    describe("sign", function()
        it("adds header fields but never lets them change alg", function()
            local token = jwt.sign({ sub = "x" }, { secret = SECRET,
                                                    header = { kid = "k1", alg = "none" } })
            local decoded = jwt.decode(token)
            assert.same({ alg = "HS256", typ = "JWT", kid = "k1" }, decoded.header)
            assert.same({ sub = "x" }, decoded.claims)
        end)

        it("signs with HMAC only", function()
            assert.error_matches(function()
                jwt.sign({}, { secret = SECRET, algorithm = "RS256" })
            end, "HS256, HS384 or HS512")
            assert.error_matches(function() jwt.sign({}, { public_key = rsa.public }) end,
                                 "HMAC only")
            assert.error_matches(function() jwt.sign("x", { secret = SECRET }) end,
                                 "bad argument #1 to 'sign'")
            assert.error_matches(function() jwt.sign({ 1, 2 }, { secret = SECRET }) end,
                                 "string keys")
        end)

        it("returns nil, err for claims JSON cannot hold", function()
            local token, err = jwt.sign({ f = function() end }, { secret = SECRET })
            assert.is_nil(token)
            assert.matches("^encode failed", err)
        end)

        it("produces tokens other implementations accept", function()
            -- The HMAC is recomputed by `openssl dgst -hmac` over the same input.
            local token = jwt.sign({ sub = "x" }, { secret = SECRET })
            local input, sig = token:match("^(.*)%.([^.]*)$")
            local path = os.tmpname()
            local f = assert(io.open(path, "wb"))
            f:write(input)
            f:close()
            local p = assert(io.popen("openssl dgst -sha256 -hmac '" .. SECRET .. "' -binary "
                                      .. path))
            local mac = p:read("*a")
            p:close()
            os.remove(path)
            assert.equal(keys:b64url(mac), sig)
        end)
    end)

    describe("decode", function()
        it("reads header and claims without verifying", function()
            local token = jwt.sign({ sub = "x" }, { secret = "not the one we have" })
            local decoded = assert(jwt.decode(token))
            assert.equal("HS256", decoded.header.alg)
            assert.equal("x", decoded.claims.sub)
            assert.same({ nil, "malformed token" }, { jwt.decode("a.b") })
            assert.same({ nil, "missing token" }, { jwt.decode(nil) })
        end)
    end)

    describe("b64url", function()
        it("round-trips bytes as unpadded base64url (RFC 7515 section 2)", function()
            assert.equal("aGVsbG8_Pg", jwt.b64url_encode("hello?>"))
            assert.equal("hello?>", jwt.b64url_decode("aGVsbG8_Pg"))
            local bytes = {}
            for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
            local all = table.concat(bytes)
            assert.equal(all, jwt.b64url_decode(jwt.b64url_encode(all)))
            assert.equal("", jwt.b64url_decode(""))
        end)

        it("refuses padding, the other alphabet and non-canonical endings", function()
            for _, bad in ipairs({ "aGk=", "a+b/", "aGk ", "aGl", "a" }) do
                local out, err = jwt.b64url_decode(bad)
                assert.is_nil(out, bad)
                assert.equal("malformed token", err)
            end
        end)

        it("raises on a non-string", function()
            assert.has_error(function() jwt.b64url_decode(1) end,
                             "bad argument #1 to 'b64url_decode' (string expected, got number)")
        end)
    end)

    describe("primitives", function()
        it("come from moonwire.core when the server provides them", function()
            local real = require "moonwire.core.jwt"
            local calls = 0
            local core = {}
            for k, v in pairs(real) do core[k] = v end
            core.jwt_verify = function(...)
                calls = calls + 1
                return real.jwt_verify(...)
            end
            local saved_core = package.loaded["moonwire.core"]
            local saved_jwt = package.loaded["moonwire.jwt"]
            package.loaded["moonwire.core"], package.loaded["moonwire.jwt"] = core, nil
            local ok, err = pcall(function()
                local fresh = require "moonwire.jwt"
                assert.truthy(fresh.verify(jwt.sign({}, { secret = SECRET }), { secret = SECRET }))
            end)
            package.loaded["moonwire.core"], package.loaded["moonwire.jwt"] = saved_core, saved_jwt
            assert(ok, err)
            assert.equal(1, calls)
        end)
    end)
end)
