-- spec/support/openssl.lua: RSA and EC keys, and RS256 / ES256 tokens,
-- made at test time with the `openssl` command-line tool, so no private key
-- is ever checked in and the tokens are signed by an implementation that is
-- not the one under test. Everything lives in one temporary folder:
--
--   local keys = openssl.new()            -- in lazy_setup
--   local rsa = keys:rsa(2048)            -- { private =, public =, pkcs1 =, cert = }
--   local tok = keys:token(rsa, "RS256", { sub = "alice" })
--   keys:remove()                         -- in lazy_teardown

local cjson = require "cjson"
local tmpdir = require "support.tmpdir"

local assert = assert
local type = type
local pairs = pairs
local setmetatable = setmetatable
local char = string.char
local rep = string.rep
local gsub = string.gsub
local io_open = io.open
local io_popen = io.popen
local tonumber = tonumber


local _M = {}
local mt = { __index = _M }


local function quote(s)
    return "'" .. gsub(s, "'", "'\\''") .. "'"
end


-- Runs a shell command and returns its standard output; fails the spec
-- (with the command) when it exits non-zero.
local function run(cmd)
    local p = assert(io_popen(cmd .. " 2>/dev/null; echo \"rc=$?\""))
    local out = p:read("*a")
    p:close()
    local body, rc = out:match("^(.*)rc=(%d+)\n$")
    assert(rc == "0", "command failed: " .. cmd)
    return body
end


local function read(path)
    local f = assert(io_open(path, "rb"))
    local s = f:read("*a")
    f:close()
    return s
end


local function write(path, s)
    local f = assert(io_open(path, "wb"))
    f:write(s)
    f:close()
end


function _M.new()
    assert(run("command -v openssl") ~= "", "these specs need the openssl command-line tool")
    return setmetatable({ dir = tmpdir.new(), n = 0 }, mt)
end


function _M.remove(self)
    tmpdir.remove(self.dir)
end


function _M._path(self, ext)
    self.n = self.n + 1
    return self.dir .. "/f" .. self.n .. "." .. ext
end


-- The public half of a private key file in its PEM forms: SPKI, and for
-- RSA also PKCS#1, plus a self-signed certificate.
local function public_forms(self, key, rsa)
    local pub, cert = self:_path("pem"), self:_path("pem")
    run("openssl pkey -in " .. quote(key) .. " -pubout -out " .. quote(pub))
    run("openssl req -new -x509 -key " .. quote(key) .. " -subj /CN=moonwire-test -days 1 -out "
        .. quote(cert))
    local forms = { private = key, public = read(pub), cert = read(cert) }
    if rsa then
        local pkcs1 = self:_path("pem")
        run("openssl rsa -in " .. quote(key) .. " -RSAPublicKey_out -out " .. quote(pkcs1))
        forms.pkcs1 = read(pkcs1)
    end
    return forms
end


-- A fresh RSA key pair of `bits` bits.
function _M.rsa(self, bits)
    local key = self:_path("pem")
    run("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:" .. (bits or 2048)
        .. " -out " .. quote(key))
    return public_forms(self, key, true)
end


-- A fresh EC key pair on `curve` (default P-256).
function _M.ec(self, curve)
    local key = self:_path("pem")
    run("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:" .. (curve or "P-256")
        .. " -out " .. quote(key))
    return public_forms(self, key, false)
end


-- base64url (unpadded) of a byte string, through `openssl base64`.
function _M.b64url(self, bytes)
    local path = self:_path("bin")
    write(path, bytes)
    local b64 = gsub(run("openssl base64 -A -in " .. quote(path)), "%s", "")
    return (gsub(gsub(b64, "=", ""), "[+/]", { ["+"] = "-", ["/"] = "_" }))
end


-- The JWS form of an ECDSA signature: OpenSSL writes DER, JWS wants the
-- two 32-byte integers r || s (RFC 7518 3.4). `openssl asn1parse` reads
-- the DER for us.
local function der_to_raw(self, der_path)
    local raw = {}
    local parsed = run("openssl asn1parse -inform DER -in " .. quote(der_path))
    for hex in parsed:gmatch("INTEGER%s*:(%x+)") do
        hex = gsub(hex, "^0+", "")
        hex = rep("0", 64 - #hex) .. hex
        raw[#raw + 1] = gsub(hex, "%x%x", function(h) return char(tonumber(h, 16)) end)
    end
    assert(#raw == 2, "unexpected ECDSA signature")
    return raw[1] .. raw[2]
end


-- A token signed with `key` (from rsa() or ec()) under alg "RS256" or
-- "ES256". `header` overrides or adds header fields (header.alg may lie).
-- Claims and header may also be given as raw JSON strings.
function _M.token(self, key, alg, claims, header)
    local h = header
    if type(h) ~= "string" then
        h = { alg = alg, typ = "JWT" }
        for k, v in pairs(header or {}) do
            h[k] = v
        end
        h = cjson.encode(h)
    end
    local p = type(claims) == "string" and claims or cjson.encode(claims)
    local input = self:b64url(h) .. "." .. self:b64url(p)
    local in_path, sig_path = self:_path("txt"), self:_path("sig")
    write(in_path, input)
    run("openssl dgst -sha256 -sign " .. quote(key.private) .. " -out " .. quote(sig_path) .. " "
        .. quote(in_path))
    local sig = alg == "ES256" and der_to_raw(self, sig_path) or read(sig_path)
    return input .. "." .. self:b64url(sig)
end


return _M
