-- The hub's shared pieces: the guide's messages (built here, written by
-- protocol.lua with their keys in the guide's order), its error texts, and
-- the count of registered clients behind max_connections and /health.
--
-- The running app is set by app.lua in on_start and on_reload (controllers
-- and hooks other than those receive no app). The count is the whole
-- server's: each worker (config `workers`) keeps its own registered
-- clients in the shared dict "hub" (config.lua) under "clients:<worker>",
-- and the count is the sum. A Lua variable would be one worker's, and a
-- single shared counter would keep the clients of a worker that was
-- killed: a worker's key is zeroed when its process starts.

local moonwire = require "moonwire"
local json = require "moonwire.json"

local floor = math.floor
local sub = string.sub


local _M = {}


-- The guide's error messages, word for word ("Error Messages" table).
_M.ERR_INVALID_JSON = "invalid JSON format"
_M.ERR_UNKNOWN_TYPE = "unknown message type"
_M.ERR_EMPTY_ROOM = "room name is required"
_M.ERR_NOT_SUBSCRIBED = "not subscribed to this room"
_M.ERR_ROOM_FULL = "room is at maximum capacity"
_M.ERR_SERVER_FULL = "server is at maximum capacity"
-- Not in the guide's table, but the gorilla service's own wording for
-- them (internal/websocket/errors.go).
_M.ERR_INTERNAL = "internal server error"
_M.ERR_RATE_LIMIT = "rate limit exceeded"


-- Key order of each kind of table protocol.encode writes
-- (moonwire.json.encode_ordered): Go's encoding/json writes struct fields
-- in declaration order, which is the order the guide shows.
local MESSAGE_KEYS = { "type", "room", "data", "client_id", "error", "timestamp" }
local CONNECTED_KEYS = { "client_id", "message" }
local SUBSCRIBED_KEYS = { "room", "client_count" }
local ROOM_KEYS = { "room" }


local function ordered(t, keys)
    return json.ordered(keys, t)
end


-- Milliseconds since the epoch, a JSON integer (Go's UnixMilli).
function _M.now()
    return floor(moonwire.now())
end


local function message(t)
    t.timestamp = _M.now()
    return ordered(t, MESSAGE_KEYS)
end


-- {"type":"connected","data":{"client_id":ID,"message":"Connected to WebSocket server"},
--  "timestamp":T}
function _M.connected(client_id)
    return message({ type = "connected",
                     data = ordered({ client_id = client_id,
                                      message = "Connected to WebSocket server" },
                                    CONNECTED_KEYS) })
end


-- {"type":"subscribed","room":R,"data":{"room":R,"client_count":N},"timestamp":T}
function _M.subscribed(room, count)
    return message({ type = "subscribed", room = room,
                     data = ordered({ room = room, client_count = count }, SUBSCRIBED_KEYS) })
end


-- {"type":"unsubscribed","room":R,"data":{"room":R},"timestamp":T}
function _M.unsubscribed(room)
    return message({ type = "unsubscribed", room = room,
                     data = ordered({ room = room }, ROOM_KEYS) })
end


-- {"type":"message","room":R,"data":D,"client_id":SENDER,"timestamp":T};
-- without "room" for a broadcast. `data` is what the client sent (written
-- as its bytes), or null when it sent none, as the gorilla service does.
function _M.message(room, data, client_id)
    if data == nil then
        data = json.null
    end
    return message({ type = "message", room = room, data = data, client_id = client_id })
end


-- {"type":"error","error":TEXT,"timestamp":T}
function _M.error(text)
    return message({ type = "error", error = text })
end


-- {"type":"pong","timestamp":T}
function _M.pong()
    return message({ type = "pong" })
end


-- The running app (app.lua sets it); a stand-in until then, so that the
-- hub works in a harness loaded without on_start.
local current = { config = {} }

local PREFIX = "clients:"


local function dict()
    return assert(moonwire.shared.dict("hub"))
end


-- This worker's key: moonwire.node() is "w<N>" with workers, nil with one.
local function own_key()
    return PREFIX .. (moonwire.node() or "w1")
end


-- Called by on_start and on_reload. A process's first start zeroes its
-- worker's count (a worker started after one was killed inherits the
-- dead one's key, not its clients); a reload keeps it (on_reload carries
-- app.state.counting over).
function _M.set_app(app, old_state)
    current = app
    if old_state and old_state.counting then
        app.state.counting = true
    elseif not app.state.counting then
        dict():set(own_key(), 0)
        app.state.counting = true
    end
end


-- Registered clients on every worker.
function _M.client_count()
    local d, total = dict(), 0
    local keys = d:get_keys(0)
    for i = 1, #keys do
        local key = keys[i]
        if sub(key, 1, #PREFIX) == PREFIX then
            total = total + (d:get(key) or 0)
        end
    end
    return total
end


-- Admits a client unless limits.max_connections clients are registered
-- (0: no limit). Returns true when it was admitted. The place is taken
-- first, then the sum checked: two workers racing for the last place may
-- both refuse, never both admit.
function _M.register(client)
    local d, key = dict(), own_key()
    d:incr(key, 1, 0)
    local max = current.config.max_connections or 0
    if max > 0 and _M.client_count() > max then
        d:incr(key, -1, 0)
        return false
    end
    client.data.registered = true
    return true
end


-- Forgets a registered client (a refused one was never counted).
function _M.unregister(client)
    if client.data.registered then
        client.data.registered = nil
        dict():incr(own_key(), -1, 0)
    end
end


return _M
