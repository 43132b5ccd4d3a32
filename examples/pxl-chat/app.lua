-- Lifecycle hooks of the pxl-chat example: PXL's JWT authentication at the
-- upgrade (the guide's "Authentication Flow": ?token=, the `sub` claim as
-- the user id, 401 for an invalid token), the client id and the
-- auth.authenticated message PXL sends on connect, and PXL's silence for
-- messages no route takes.

local moonwire = require "moonwire"
local auth = require "moonwire.auth"
local pxl = require "lib.pxl"
local shared = require "lib.shared"

local match = string.match
local tonumber = tonumber
local tostring = tostring
local type = type


local _M = {}


function _M.on_start(app)
    shared.set(app)
end


function _M.on_reload(_, app)
    shared.set(app)
end


-- parseInt(String(sub), 10): the leading decimal integer of the claim's
-- text ("42", 42, " 42abc" and 42.9 give 42), or nil (NaN) when there is
-- none (a missing sub, "abc").
local function user_id_of(sub)
    if type(sub) ~= "string" and type(sub) ~= "number" then
        return nil
    end
    local digits = match(tostring(sub), "^%s*([+-]?%d+)")
    return digits and tonumber(digits) or nil
end


-- WebSocketAuthService.validateAuth: no `token` in the query string lets
-- the client in without a user; a token that does not verify with the
-- secret key (config.lua: JWT_SECRET_KEY, base64url as a JWK's `k`, as
-- PXL imports it), or whose `sub` is not a number,
-- refuses the upgrade with 401. Only the query string is read, as in PXL
-- (not an Authorization header).
function _M.authenticate(request)
    local token = auth.token_from_request({ query = request.query })
    if token == nil then
        return nil
    end
    local secret = shared.setting("jwt_secret_key")
    if type(secret) ~= "string" or secret == "" then
        moonwire.log.warn("WebSocket authentication failed: JWT secret key not configured")
        return nil, "JWT verification failed: JWT secret key not configured"
    end
    -- PXL imports jwtSecretKey as a JWK ({ kty = "oct", k = key }): the
    -- HMAC key is the base64url decoding of the setting.
    local key = moonwire.jwt.b64url_decode(secret)
    if not key or key == "" then
        moonwire.log.warn("WebSocket authentication failed: JWT secret key is not base64url "
                          .. "(PXL imports it as a JWK 'k')")
        return nil, "JWT verification failed: JWT secret key is not base64url"
    end
    local claims, err = moonwire.jwt.verify(token, { secret = key })
    if not claims then
        return nil, "JWT verification failed: " .. err
    end
    local user_id = user_id_of(claims.sub)
    if not user_id then
        return nil, "JWT verification failed: Invalid user ID in token"
    end
    -- client.user is the user id; client.auth is PXL's client.user,
    -- { userId, payload } (id is what moonwire binds the connection to).
    return { id = user_id, userId = user_id, payload = claims }
end


-- Every client gets PXL's client id (32 hex digits; moonwire's own
-- client.id is a number); an authenticated one is told so first thing.
function _M.on_connect(client)
    client.data.client_id = pxl.client_id()
    local user = client.auth
    if user then
        client:send(pxl.message("auth", "authenticated", pxl.ordered(
            { "userId", "message" },
            { userId = user.userId, message = "Authentication successful" })))
    end
end


-- A message PXL routes nowhere (protocol.lua marks it) gets no answer.
function _M.on_message(_, msg)
    if msg.ignored then
        return false
    end
end


return _M
