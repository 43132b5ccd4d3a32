-- moonwire.auth: who a client is, and what it may do (docs/security.md).
--
-- Policy, in Lua; the primitives are C: signatures (moonwire.jwt), closing
-- a connection at a deadline (core.set_expiry), refusing the upgrade (the
-- C core turns runtime.upgrade's refusal into an HTTP answer).
--
--   authenticate: the app's authenticate(request) hook when it has one, else
--     the default strategy: a JWT (jwt_* settings) from ?token= or an
--     Authorization: Bearer header at the upgrade, or from an auth message.
--   identity: the user id is the token's `sub` (or the hook's user.id); the
--     client object carries it as client.user and the whole user table
--     (claims) as client.auth.
--   expiry: a token's `exp` closes the connection with 1008 "token expired"
--     unless a new auth message refreshes it first.
--   authorize: the app's authorize(client, action, resource) hook, asked for
--     joins/subscriptions, publishes and broadcasts, and by controllers
--     through client:authorize; no hook means allowed.

local core = require "moonwire.core"
local errors = require "moonwire.errors"

local type = type
local tostring = tostring
local tonumber = tonumber
local xpcall = xpcall
local floor = math.floor
local gsub = string.gsub
local match = string.match
local char = string.char
local lower = string.lower
local gmatch = string.gmatch
local capture = errors.capture
local is_failure = errors.is_failure


local _M = require("moonwire.version").module()

local AUTHENTICATION_FAILED = "AUTHENTICATION_FAILED"
local AUTHORIZATION_FAILED = "AUTHORIZATION_FAILED"
_M.AUTHENTICATION_FAILED = AUTHENTICATION_FAILED
_M.AUTHORIZATION_FAILED = AUTHORIZATION_FAILED


local function unescape(s)
    s = gsub(s, "%+", " ")
    return (gsub(s, "%%(%x%x)", function(h) return char(tonumber(h, 16)) end))
end


-- The bearer token of an upgrade request: ?token=... (percent-decoded) or
-- "Authorization: Bearer ...". nil when there is none.
function _M.token_from_request(info)
    local query = info.query
    if type(query) == "string" and query ~= "" then
        for pair in gmatch(query, "[^&]+") do
            local k, v = match(pair, "^([^=]*)=(.*)$")
            if k and unescape(k) == "token" and v ~= "" then
                return unescape(v)
            end
        end
    end
    local headers = info.headers
    local h = type(headers) == "table" and headers["authorization"] or nil
    if type(h) == "string" then
        local scheme, token = match(h, "^%s*(%S+)%s+(%S+)%s*$")
        if scheme and lower(scheme) == "bearer" then
            return token
        end
    end
    return nil
end


-- The verifier for this config: nil when no JWT key is configured, or a
-- table of moonwire.jwt options. The public key file is read here, once (a
-- reload reads it again). Returns opts or nil, err naming the setting.
function _M.jwt_options(config)
    local secret = config.jwt_secret
    local key_file = config.jwt_public_key
    local has_secret = type(secret) == "string" and secret ~= ""
    local has_key = type(key_file) == "string" and key_file ~= ""
    if not has_secret and not has_key then
        return false
    end
    local opts = {
        leeway = config.jwt_leeway or 0,
        issuer = config.jwt_issuer ~= "" and config.jwt_issuer or nil,
        audience = config.jwt_audience ~= "" and config.jwt_audience or nil,
    }
    local algs = config.jwt_algorithms
    if type(algs) == "table" and #algs > 0 then
        opts.algorithms = algs
    end
    if has_secret then
        opts.secret = secret
    end
    if has_key then
        local f, err = io.open(key_file, "rb")
        if not f then
            return nil, "jwt_public_key: cannot read " .. tostring(err)
        end
        local pem = f:read("*a")
        f:close()
        opts.public_key = pem
        local jwt = require "moonwire.jwt"
        local ok, kerr = jwt.load_key(pem)
        if not ok then
            return nil, "jwt_public_key: " .. key_file .. ": " .. tostring(kerr)
        end
    end
    return opts
end


-- A user table from what a hook returned: a table with `id` (or `sub`), or
-- a plain id. nil for anything else.
local function user_of(res)
    local t = type(res)
    if t == "string" or t == "number" then
        return { id = res }
    end
    if t == "table" then
        local id = res.id
        if id == nil then
            id = res.sub
        end
        if (type(id) == "string" and id ~= "") or type(id) == "number" then
            if res.id == nil then
                res.id = id
            end
            return res
        end
    end
    return nil
end


-- Authenticates one request ({ via = "upgrade"|"message", token =,
-- headers =, query =, path =, remote_addr = ... }) with the app's hook or
-- the JWT verifier. Returns:
--   user           a user table ({ id =, ... claims })
--   false          no credential, nothing refused
--   nil, message   refused (the message is safe to show the client)
function _M.authenticate(app, jwt_opts, request)
    local hook = app.hooks.authenticate
    if hook then
        local ok, res, err = xpcall(hook, capture, request)
        if not ok then
            if is_failure(res) then
                return nil, tostring(res.message)
            end
            core.log("error", "hook authenticate failed: " .. tostring(res.traceback))
            return nil, "authentication failed"
        end
        if res == nil or res == false then
            if err ~= nil then
                if type(err) == "table" then
                    return nil, tostring(err.message or err.code)
                end
                return nil, tostring(err)
            end
            return false
        end
        local user = user_of(res)
        if not user then
            core.log("error", "hook authenticate returned a " .. type(res)
                     .. " without an id; refusing the client")
            return nil, "authentication failed"
        end
        return user
    end
    if not jwt_opts or request.token == nil then
        return false
    end
    local jwt = require "moonwire.jwt"
    local claims, err = jwt.verify(request.token, jwt_opts)
    if not claims then
        return nil, err
    end
    local user = user_of(claims)
    if not user then
        return nil, "token has no subject"
    end
    return user
end


-- Milliseconds until a user table's `exp` (seconds since the epoch), or nil.
function _M.ms_until_expiry(user)
    local exp = type(user) == "table" and user.exp or nil
    if type(exp) ~= "number" then
        return nil
    end
    local ms = floor(exp * 1000 - core.now())
    return ms > 0 and ms or 0
end


-- Asks the app's authorize hook. Returns true, or nil and an error table
-- { code = AUTHORIZATION_FAILED, message = ... }.
function _M.authorize(app, client, action, resource)
    local hook = app and app.hooks.authorize
    if not hook then
        return true
    end
    local ok, res, err = xpcall(hook, capture, client, action, resource)
    if not ok then
        if not is_failure(res) then
            core.log("error", "hook authorize failed: " .. tostring(res.traceback))
        end
        return nil, { code = AUTHORIZATION_FAILED, message = "not allowed" }
    end
    if res then
        return true
    end
    local message = "not allowed"
    if type(err) == "string" then
        message = err
    elseif type(err) == "table" and err.message then
        message = tostring(err.message)
    end
    return nil, { code = AUTHORIZATION_FAILED, message = message }
end


return _M
