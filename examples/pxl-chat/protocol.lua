-- The wire protocol of the PXL framework's WebSocket server (the PXL guide,
-- shared/seeds/001, "Message Protocol"; where the guide is silent,
-- @scpxl/nodejs-framework's websocket-server.ts and utils.ts):
--
--   client -> server   {"type":T,"action":A,"data":D}     (no id)
--   a routed message   -> the controller's return value R comes back as
--                         {"type":T,"action":A,"response":R}, always (PXL
--                         answers every message it routed; an action that
--                         returns nothing gets {"type":T,"action":A})
--   an unknown route   -> nothing (PXL logs "Route handler not found")
--   a bad message      -> {"type":"error","action":"message","data":{"error":TEXT}}
--
-- decode() gives every message an id so that the runtime always sends the
-- reply (moonwire replies only to messages that carry one); reply() leaves
-- it out again. A type.action no controller has is marked `ignored`, and
-- app.lua's on_message drops it without an answer. Text and binary frames
-- alike are read as JSON text, as ws's message.toString() does.

local json = require "moonwire.json"
local pxl = require "lib.pxl"
local shared = require "lib.shared"

local type = type


local _M = {}


-- What decode() puts in msg.id: any non-nil value asks the runtime for the
-- reply; none of it reaches the wire.
local REPLY = true


-- parseServerMessage's error texts, word for word.
local ERR_PARSE = "Failed to parse JSON"
local ERR_INVALID = "Invalid WebSocket message"
local ERR_TYPE = "Missing WebSocket message type"
local ERR_ACTION = "Missing WebSocket message action"


local function invalid(text)
    return nil, "INVALID_MESSAGE", text
end


function _M.decode(payload)
    local msg, kind = json.decode(payload, "data")
    if msg == nil then
        return invalid(ERR_PARSE)
    end
    -- `if (!parsedMessage)`: null, false, 0 and "" parse but are refused.
    if kind ~= "object" then
        if pxl.js_or(msg, nil) == nil then
            return invalid(ERR_INVALID)
        end
        -- A truthy non-object (a number, an array, "x") has no type.
        return invalid(ERR_TYPE)
    end
    local t, a = msg.type, msg.action
    if pxl.js_or(t, nil) == nil then
        return invalid(ERR_TYPE)
    end
    if pxl.js_or(a, nil) == nil then
        return invalid(ERR_ACTION)
    end
    local data = msg.data
    if data == nil or data == json.null or type(data) ~= "table" then
        -- Controllers read fields of `data` (data?.text): a missing, null
        -- or scalar data reads as an empty object.
        data = {}
    end
    -- A type or action that is not a string names no route of PXL's
    -- ("type:action" keys); such messages, and unknown routes, are ignored.
    local routed = type(t) == "string" and type(a) == "string" and shared.has_route(t, a)
    return { type = routed and t or "pxl", action = routed and a or "ignored", data = data,
             id = REPLY, ignored = not routed or nil }
end


-- Returns payload, false, or nil, err. Tables lib/pxl.lua built keep
-- PXL's key order; anything else (a subscriber's own table, data a client
-- or a backend sent) is written by moonwire.json, client bytes kept.
function _M.encode(value)
    local payload, err = json.encode_ordered(value)
    if not payload then
        return nil, err
    end
    return payload, false
end


-- {type, action, response}: the controller's return value, as
-- handleClientMessage sends it.
function _M.reply(msg, value)
    return pxl.reply(msg.type, msg.action, value)
end


-- Every error the runtime sends (a message that is not PXL's, an action
-- that raised, the rate limit) as sendMessageError's message. Internal
-- errors keep moonwire's "internal error": PXL would send the exception's
-- own text, which can leak internals.
function _M.error(_, _, message)
    return pxl.error(message)
end


-- Events the runtime builds itself (presence, the app_ping ping):
-- {type, action, data}, without moonwire's `room` and `ts`.
function _M.event(type_, action, data)
    return pxl.message(type_, action, data == nil and {} or data)
end


return _M
