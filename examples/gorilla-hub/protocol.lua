-- The wire protocol of the gorilla/websocket hub (guide 004, "Message
-- Protocol"): flat JSON objects, no envelope, no ids.
--
--   {"type":"subscribe","room":R}            -> {"type":"subscribed",...}
--   {"type":"unsubscribe","room":R}          -> {"type":"unsubscribed",...}
--   {"type":"publish","room":R,"data":D}     -> the room's other members get
--                                               {"type":"message",...}
--   {"type":"broadcast","data":D}            -> every other client gets
--                                               {"type":"message",...}
--   {"type":"ping"}                          -> {"type":"pong","timestamp":T}
--
-- decode() routes {"type":T,...} to the action T of controllers/hub.lua
-- with the whole object as its message, checking the fields as the
-- service's Go decoder does (a `type` or `room` that is not a string is
-- "invalid JSON format"; an absent or null one is the empty string). An
-- unknown T reaches the router, whose NOT_FOUND error() words as
-- "unknown message type". Every error goes out as
-- {"type":"error","error":TEXT,"timestamp":T}.
--
-- encode() writes the hub's messages (lib/hub.lua) with their keys in the
-- guide's order; `data` is written as the client's bytes (moonwire.json).

local json = require "moonwire.json"
local hub = require "lib.hub"

local type = type


local _M = {}


local function invalid()
    return nil, "INVALID_MESSAGE", hub.ERR_INVALID_JSON
end


-- Text and binary frames alike: gorilla's ReadMessage hands both to the
-- same JSON decoder.
function _M.decode(payload)
    local msg, kind = json.decode(payload, "data")
    if msg == nil then
        return invalid()
    end
    if kind == "null" then
        -- Go decodes `null` into an empty message: type "".
        return { type = "hub", action = "", data = {} }
    end
    if kind ~= "object" then
        return invalid()
    end
    local t = msg.type
    if t == nil or t == json.null then
        t = ""
    elseif type(t) ~= "string" then
        return invalid()
    end
    local room = msg.room
    if room == json.null then
        msg.room = nil
    elseif room ~= nil and type(room) ~= "string" then
        return invalid()
    end
    -- `data` may be anything, and is forwarded as it was sent.
    msg.data = json.field(msg, "data")
    return { type = "hub", action = t, data = msg }
end


-- Returns payload, false, or nil, err.
function _M.encode(value)
    local payload, err = json.encode_ordered(value)
    if not payload then
        return nil, err
    end
    return payload, false
end


-- Every error the runtime answers with (a controller's `nil, text`, a
-- decode failure, an unknown type, an internal error, the rate limit) in
-- the guide's shape and words.
local WORDS = {
    NOT_FOUND = hub.ERR_UNKNOWN_TYPE,
    INTERNAL_ERROR = hub.ERR_INTERNAL,
    RATE_LIMIT_EXCEEDED = hub.ERR_RATE_LIMIT,
}

function _M.error(_, code, message)
    return hub.error(WORDS[code] or message or hub.ERR_INTERNAL)
end


return _M
