-- Lifecycle hooks of the servercore example: authenticateConnection (a
-- token from the query string or the headers, validated against Redis
-- with a timeout; a failed validation leaves the connection allowed but
-- unauthenticated), and handleMessage's rule that only requests are
-- handled (any other type is ignored).

local moonwire = require "moonwire"
local shared = require "lib.shared"
local store = require "lib.store"

local tostring = tostring


local _M = {}


-- on_start runs for each load of the code: at startup and after each
-- reload (after on_reload). The Redis connection opens here, in the
-- background.
function _M.on_start(app)
    shared.set(app)
    local ok, err = store.open()
    if not ok then
        moonwire.log.error("cannot use app.redis_url: %s", tostring(err))
    end
end


function _M.on_reload(_, app)
    shared.set(app)
end


-- authenticateConnection. request.token is the `token` of the query
-- string or the bearer token of the Authorization header. The upgrade
-- waits for the answer (at most app.redis_timeout, the guide's 5000 ms).
-- Returning nil without an error lets the connection in without a user:
-- an unknown token, or Redis down, is not a refusal.
function _M.authenticate(request)
    local token = request.token
    if token == nil or token == "" then
        return nil
    end
    local user, err = store.validate(token)
    if not user then
        if err then
            moonwire.log.warn("token validation failed, connection not authenticated: %s",
                              tostring(err))
        end
        return nil
    end
    return user
end


-- The roles the broadcast filter sees (lib/topics.lua), from the user the
-- token was validated as; refreshed by each permission check.
function _M.on_connect(client)
    client.data.roles = store.role_set(client.auth and client.auth.roles)
end


-- Messages of another type than 'request' reach no action and get no
-- answer (protocol.lua marks them).
function _M.on_message(_, msg)
    if msg.ignored then
        return false
    end
end


return _M
