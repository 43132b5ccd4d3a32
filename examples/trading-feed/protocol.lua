-- The wire protocol of @aladdin/websocket's BaseWebSocketHandler (the
-- guide, shared/seeds/000, "Message Protocol"; where the guide is silent,
-- the package's base-handler source):
--
--   client -> server   {"type":"auth","token":T}
--                      {"type":"subscribe"|"unsubscribe","channel":C}
--                      {"type":"ping"|"pong","timestamp":MS}
--   server -> client   {"type":"connected","clientId":UUID,"timestamp":MS}
--                      {"type":"authenticated","userId":U,"timestamp":MS}
--                      {"type":"subscribed"|"unsubscribed","channel":C,"timestamp":MS}
--                      {"type":"ping"|"pong","timestamp":MS}
--                      {"type":"error","message":TEXT,"timestamp":MS}
--                      a channel's events: the bytes the feed published
--
-- Messages carry no request id and get no envelope: decode() routes each
-- type to an action of controllers/feed.lua (which sends its own answers),
-- `auth` to the runtime's auth message (system.auth: the core's JWT check
-- and auth timeout), and error() rewrites the runtime's errors into the
-- guide's {"type":"error","message":...}. Keys are written in the package's
-- order (its object literals); `timestamp` is the message's `ts`, so that
-- the replies the core sends by itself (the rate-limit error) carry the
-- time they are sent (runtime.lua's TS_MARK).

local json = require "moonwire.json"
local message = require "lib.message"
local moonwire = require "moonwire"

local concat = table.concat
local tostring = tostring
local type = type


local _M = {}


-- The package's error texts, word for word.
local ERR_FORMAT = "Invalid message format"
local ERR_AUTH_REQUIRED = "Authentication required"
local ERR_INVALID_TOKEN = "Invalid token"
local ERR_RATE = "Rate limit exceeded"


-- Which action each client message type runs; any other type (or a JSON
-- value without one) goes to feed.unknown, which logs it and answers
-- nothing (the package's handleCustomMessage).
local ROUTES = {
    subscribe = "subscribe",
    unsubscribe = "unsubscribe",
    ping = "ping",
    pong = "pong",
}


function _M.decode(payload)
    local msg, kind = json.decode(payload)
    if msg == nil then
        return nil, "INVALID_MESSAGE", ERR_FORMAT
    end
    if kind ~= "object" then
        -- JSON.parse accepted it; it has no type.
        return { type = "feed", action = "unknown", data = { type = json.null } }
    end
    local t = msg.type
    if t == "auth" then
        -- The runtime's auth message: the token is verified as a JWT
        -- (config.lua's jwt_secret). A missing token is refused as the
        -- package's handleAuth refuses one (Invalid token, close 1008).
        return { type = "system", action = "auth", data = { token = msg.token } }
    end
    local action = type(t) == "string" and ROUTES[t] or "unknown"
    return { type = "feed", action = action, data = msg }
end


-- Key order of the server's messages, by type (JSON.stringify writes the
-- package's object literals in their order); `timestamp` is written from
-- the table's `ts`.
local ORDER = {
    connected = { "clientId" },
    authenticated = { "userId" },
    subscribed = { "channel" },
    unsubscribed = { "channel" },
    ping = {},
    pong = {},
    error = { "message" },
}


function _M.encode(value)
    if type(value) == "table" then
        local keys = ORDER[value.type]
        if keys and value.ts ~= nil then
            local parts = { '{"type":' .. json.encode(value.type) }
            for i = 1, #keys do
                local v = value[keys[i]]
                if v ~= nil then
                    local text, err = json.encode(v)
                    if not text then
                        return nil, err
                    end
                    parts[#parts + 1] = '"' .. keys[i] .. '":' .. text
                end
            end
            local ts, err = json.encode(value.ts)
            if not ts then
                return nil, err
            end
            parts[#parts + 1] = '"timestamp":' .. ts
            return concat(parts, ",") .. "}", false
        end
    end
    local text, err = json.encode(value)
    if not text then
        return nil, err
    end
    return text, false
end


-- The events the runtime builds: `authenticated` (after an auth message)
-- and `ping` are the guide's; anything else keeps moonwire's envelope.
function _M.event(t, action, data, room)
    if t == "system" and action == "authenticated" then
        return message.new("authenticated", { userId = data.user_id })
    end
    if t == "system" and action == "ping" then
        return message.new("ping")
    end
    return { type = t, action = action, data = data or {}, room = room, ts = moonwire.now() }
end


-- Every error the runtime sends becomes the package's sendError message.
-- The runtime's codes map onto the package's texts: the rate limit, a
-- message before authentication, a refused token (whatever the JWT check
-- said: the reason goes to the log, the client gets the guide's "Invalid
-- token"); the app's own errors keep their message.
function _M.error(_, code, why)
    local text
    if code == "RATE_LIMIT_EXCEEDED" then
        text = ERR_RATE
    elseif code == "AUTHENTICATION_FAILED" then
        if why == "authenticate first" then
            text = ERR_AUTH_REQUIRED
        else
            moonwire.log.info("auth message refused: %s", tostring(why))
            text = ERR_INVALID_TOKEN
        end
    elseif code == "INTERNAL_ERROR" then
        text = "Internal error"
    else
        text = why or ERR_FORMAT
    end
    return message.new("error", { message = text })
end


return _M
