-- moonwire.jwt: JSON Web Token verification (RFC 7519, compact JWS) and
-- HMAC signing. The crypto and base64url are C (src/jwt.c, reached through
-- moonwire.core.jwt_*); JSON and the claim checks are here, with lua-cjson.
--
-- The algorithm a token may use is decided by the caller's key and
-- opts.algorithms, never by the token: a token's "alg" is only checked
-- against that list, so an HS256 token cannot be verified with an RSA
-- public key used as an HMAC secret (alg confusion).
--
-- Inside the server the primitives are part of moonwire.core. Under plain
-- busted + LuaJIT (runtime specs, `moonwire test`) there is no server core,
-- so the same C code is loaded as the Lua C module moonwire.core.jwt
-- (moonwire/core/jwt.so, found on LUA_CPATH): specs exercise the real
-- crypto, not a fake.

local cjson = require "cjson.safe"

local package_loaded = package.loaded
local require = require
local pcall = pcall
local type = type
local error = error
local ipairs = ipairs
local pairs = pairs
local tostring = tostring
local find = string.find
local sort = table.sort
local os_time = os.time


local _M = require("moonwire.version").module()


-- A private cjson instance, strict like the protocol's: a token's JSON
-- comes from clients.
local json = cjson.new()
json.decode_invalid_numbers(false)
json.decode_max_depth(64)
json.encode_max_depth(64)


-- The algorithm -> key type table is the whole list of what is supported.
local KEY_TYPE = { HS256 = "hmac", HS384 = "hmac", HS512 = "hmac", RS256 = "rsa", ES256 = "ec" }

-- What a key allows when opts.algorithms is absent.
local DEFAULT_ALGORITHMS = {
    hmac = { HS256 = true, HS384 = true, HS512 = true },
    rsa = { RS256 = true },
    ec = { ES256 = true },
}

-- Parsed public keys by PEM text, so a PEM given in opts is parsed once,
-- not per token. Keys come from the app, not from clients; the bound only
-- keeps a key-rotating app from growing the cache forever.
local KEY_CACHE_MAX = 32
local key_cache, key_cache_n = {}, 0

local primitives_table


-- The C primitives: the server's moonwire.core when it has them, else the
-- standalone module. Raises when neither is there, which is a set-up error.
local function primitives()
    if primitives_table then
        return primitives_table
    end
    local core = package_loaded["moonwire.core"]
    if type(core) == "table" and core.jwt_verify then
        primitives_table = core
        return core
    end
    local ok, mod = pcall(require, "moonwire.core.jwt")
    if not ok then
        error("moonwire.jwt needs its C primitives: run it inside the moonwire server or "
              .. "`moonwire test`, or put the build's lua/ folder on LUA_CPATH (" .. tostring(mod)
              .. ")", 3)
    end
    primitives_table = mod
    return mod
end


-- Raises "bad argument #2 to 'verify' (msg)" at the caller of the public
-- function: `level` is 3 from the function itself, 4 (default) from a helper.
local function bad_option(fname, msg, level)
    error("bad argument #2 to '" .. fname .. "' (" .. msg .. ")", level or 4)
end


-- Parses a public key PEM (SPKI "PUBLIC KEY", PKCS#1 "RSA PUBLIC KEY" or a
-- "CERTIFICATE"), or returns the cached key for that text.
-- Returns the key or nil, "unsupported key" | "key too small".
function _M.load_key(pem)
    if type(pem) ~= "string" then
        error("bad argument #1 to 'load_key' (string expected, got " .. type(pem) .. ")", 2)
    end
    local key = key_cache[pem]
    if key then
        return key
    end
    local err
    key, err = primitives().jwt_key(pem)
    if not key then
        return nil, err
    end
    if key_cache_n >= KEY_CACHE_MAX then
        key_cache, key_cache_n = {}, 0
    end
    key_cache[pem] = key
    key_cache_n = key_cache_n + 1
    return key
end


-- The key of opts (a secret string or a parsed public key) and its type.
local function resolve_key(opts, fname)
    local secret, public_key = opts.secret, opts.public_key
    if secret ~= nil and public_key ~= nil then
        bad_option(fname, "opts.secret and opts.public_key are exclusive")
    end
    if secret ~= nil then
        if type(secret) ~= "string" or secret == "" then
            bad_option(fname, "opts.secret must be a non-empty string")
        end
        return secret, "hmac"
    end
    local t = type(public_key)
    if t == "string" then
        local key, err = _M.load_key(public_key)
        if not key then
            bad_option(fname, "opts.public_key: " .. err)
        end
        return key, primitives().jwt_key_type(key)
    elseif t == "userdata" then
        local ok, key_type = pcall(primitives().jwt_key_type, public_key)
        if not ok then
            bad_option(fname, "opts.public_key must be a PEM string or a key from load_key")
        end
        return public_key, key_type
    elseif t == "nil" then
        bad_option(fname, "opts.secret or opts.public_key expected")
    end
    bad_option(fname, "opts.public_key must be a PEM string or a key from load_key")
end


-- The set of algorithms a token may use: opts.algorithms (a name or a
-- list), narrowed to those the key can verify, or the key's defaults.
local function allowed_algorithms(opts, key_type)
    local list = opts.algorithms
    if list == nil then
        return DEFAULT_ALGORITHMS[key_type]
    end
    if type(list) == "string" then
        list = { list }
    elseif type(list) ~= "table" then
        bad_option("verify", "opts.algorithms must be a list of algorithm names")
    end
    local set, any = {}, false
    for _, alg in ipairs(list) do
        if not KEY_TYPE[alg] then
            bad_option("verify", "opts.algorithms: unsupported algorithm " .. tostring(alg))
        end
        if KEY_TYPE[alg] == key_type then
            set[alg] = true
            any = true
        end
    end
    if not any then
        bad_option("verify", "opts.algorithms has no algorithm for a " .. key_type .. " key")
    end
    return set
end


local function check_accepted(value, name)
    if value == nil or type(value) == "string" then
        return
    end
    if type(value) == "table" and #value > 0 then
        for _, v in ipairs(value) do
            if type(v) ~= "string" then
                bad_option("verify", "opts." .. name .. " must be a string or a list of strings")
            end
        end
        return
    end
    bad_option("verify", "opts." .. name .. " must be a string or a list of strings")
end


-- True when `value` is `accepted` (a string) or one of its items.
local function one_of(value, accepted)
    if type(accepted) == "string" then
        return value == accepted
    end
    for _, a in ipairs(accepted) do
        if value == a then
            return true
        end
    end
    return false
end


local function audience_ok(aud, accepted)
    if type(aud) == "string" then
        return one_of(aud, accepted)
    end
    if type(aud) == "table" then
        for _, a in ipairs(aud) do
            if type(a) == "string" and one_of(a, accepted) then
                return true
            end
        end
    end
    return false
end


-- The registered claims the options ask about (RFC 7519 section 4.1).
local function check_claims(claims, opts, now, leeway)
    local required = opts.required
    if required ~= nil then
        for _, name in ipairs(required) do
            if claims[name] == nil then
                return nil, "missing claim"
            end
        end
    end
    local exp = claims.exp
    if exp ~= nil then
        if type(exp) ~= "number" then
            return nil, "invalid exp claim"
        end
        if now - leeway >= exp then
            return nil, "token expired"
        end
    end
    local nbf = claims.nbf
    if nbf ~= nil then
        if type(nbf) ~= "number" then
            return nil, "invalid nbf claim"
        end
        if now + leeway < nbf then
            return nil, "token not yet valid"
        end
    end
    if opts.issuer ~= nil then
        local iss = claims.iss
        if type(iss) ~= "string" or not one_of(iss, opts.issuer) then
            return nil, "invalid issuer"
        end
    end
    if opts.audience ~= nil and not audience_ok(claims.aud, opts.audience) then
        return nil, "invalid audience"
    end
    return claims
end


-- Verifies `token` (a compact JWS string) with opts.secret or
-- opts.public_key and checks its claims. Returns the claims table or
-- nil, err. Misuse of opts raises; every problem with the token is a
-- `nil, err` with a short, stable string (docs/lua-api.md, JWT).
function _M.verify(token, opts)
    if type(opts) ~= "table" then
        error("bad argument #2 to 'verify' (table expected, got " .. type(opts) .. ")", 2)
    end
    local key, key_type = resolve_key(opts, "verify")
    local allowed = allowed_algorithms(opts, key_type)
    local now = opts.now
    if now == nil then
        now = os_time()
    elseif type(now) ~= "number" then
        bad_option("verify", "opts.now must be a number of seconds", 3)
    end
    local leeway = opts.leeway or 0
    if type(leeway) ~= "number" or leeway < 0 then
        bad_option("verify", "opts.leeway must be a non-negative number of seconds", 3)
    end
    check_accepted(opts.issuer, "issuer")
    check_accepted(opts.audience, "audience")
    if opts.required ~= nil and type(opts.required) ~= "table" then
        bad_option("verify", "opts.required must be a list of claim names", 3)
    end

    if token == nil then
        return nil, "missing token"
    elseif type(token) ~= "string" then
        return nil, "malformed token"
    end
    local p = primitives()
    local header_json, err = p.jwt_decode(token)
    if not header_json then
        return nil, err
    end
    local header = json.decode(header_json)
    if type(header) ~= "table" or not find(header_json, "^%s*{") then
        return nil, "malformed token"
    end
    local alg = header.alg
    if type(alg) ~= "string" or not KEY_TYPE[alg] then
        return nil, "unsupported algorithm"
    end
    if not allowed[alg] then
        return nil, "algorithm not allowed"
    end
    -- RFC 7515 4.1.11: extensions we do not understand must be refused.
    if header.crit ~= nil then
        return nil, "unsupported header"
    end
    local ok, payload_json = p.jwt_verify(token, key, alg)
    if not ok then
        return nil, payload_json
    end
    local claims = json.decode(payload_json)
    if type(claims) ~= "table" or not find(payload_json, "^%s*{") then
        return nil, "malformed token"
    end
    return check_claims(claims, opts, now, leeway)
end


-- Decodes a token WITHOUT verifying it: { header =, claims = } or nil, err.
-- For choosing a key by the header's "kid" before verify(); never trust
-- what it returns.
function _M.decode(token)
    if type(token) ~= "string" then
        return nil, token == nil and "missing token" or "malformed token"
    end
    local header_json, payload_json = primitives().jwt_decode(token)
    if not header_json then
        return nil, payload_json
    end
    local header, claims = json.decode(header_json), json.decode(payload_json)
    if type(header) ~= "table" or type(claims) ~= "table" then
        return nil, "malformed token"
    end
    return { header = header, claims = claims }
end


-- Signs `claims` with opts.secret (HS256 unless opts.algorithm says HS384
-- or HS512). opts.header adds header fields (e.g. kid); alg is always ours.
-- Returns the token or nil, err ("token too large", "encode failed: ...").
function _M.sign(claims, opts)
    if type(claims) ~= "table" then
        error("bad argument #1 to 'sign' (table expected, got " .. type(claims) .. ")", 2)
    end
    if type(opts) ~= "table" then
        error("bad argument #2 to 'sign' (table expected, got " .. type(opts) .. ")", 2)
    end
    if opts.public_key ~= nil then
        bad_option("sign", "sign supports HMAC only: use opts.secret", 3)
    end
    local secret = resolve_key(opts, "sign")
    local alg = opts.algorithm or "HS256"
    if KEY_TYPE[alg] ~= "hmac" then
        bad_option("sign", "opts.algorithm must be HS256, HS384 or HS512", 3)
    end
    local header = { typ = "JWT" }
    if opts.header ~= nil then
        if type(opts.header) ~= "table" then
            bad_option("sign", "opts.header must be a table", 3)
        end
        for k, v in pairs(opts.header) do
            header[k] = v
        end
    end
    header.alg = alg
    local header_json, err = json.encode(header)
    if not header_json then
        return nil, "encode failed: " .. err
    end
    -- Claims from a client message may hold tables moonwire.json has not
    -- decoded yet (loaded whenever such tables exist): decode them all.
    local lazy = package.loaded["moonwire.json"]
    if lazy then
        lazy.load(claims)
    end
    local payload_json
    payload_json, err = json.encode(claims)
    if not payload_json then
        return nil, "encode failed: " .. err
    end
    if not find(payload_json, "^{") then
        error("bad argument #1 to 'sign' (claims must be a table with string keys)", 2)
    end
    return primitives().jwt_sign(header_json, payload_json, secret, alg)
end


-- The largest token verify() accepts and sign() produces, in bytes.
-- Unpadded base64url (RFC 7515, section 2), as JWS parts and JWK "k"
-- members carry bytes: decode(s) -> bytes, or nil, "malformed token"
-- (padding, "+", "/", whitespace and non-canonical endings refused).
function _M.b64url_decode(s)
    if type(s) ~= "string" then
        error("bad argument #1 to 'b64url_decode' (string expected, got " .. type(s) .. ")", 2)
    end
    if #s > primitives().jwt_max_token then
        return nil, "too long"
    end
    return primitives().jwt_b64url_decode(s)
end


function _M.b64url_encode(s)
    if type(s) ~= "string" then
        error("bad argument #1 to 'b64url_encode' (string expected, got " .. type(s) .. ")", 2)
    end
    if #s > primitives().jwt_max_token then
        error("bad argument #1 to 'b64url_encode' (at most jwt.max_token_size() bytes)", 2)
    end
    return primitives().jwt_b64url_encode(s)
end


function _M.max_token_size()
    return primitives().jwt_max_token
end


-- The supported algorithm names, sorted.
function _M.algorithms()
    local list = {}
    for alg in pairs(KEY_TYPE) do
        list[#list + 1] = alg
    end
    sort(list)
    return list
end

return _M
