-- The wire protocol of the ServerCore WebSocket protocol handler (guide
-- 002, "Message Protocol"): one JSON envelope per frame,
--
--   {id, type: 'request'|'response'|'event'|'error', action, payload?,
--    metadata: {timestamp, version: '1.0.0'}}
--
-- decode(): a request {type:'request', id, action, payload?} is routed to
-- the action of controllers/request.lua with `payload` as its data and
-- `id` as the id its response (or error) carries back. Any other valid
-- type ('response', 'event', 'error') is ignored, as the guide's
-- handleMessage ignores it (app.lua's on_message drops it). What is not
-- an envelope gets sendError's message, carrying the request's id when it
-- had a usable one (README.md, "Choices").
--
-- encode() writes the envelopes of lib/envelope.lua with their keys in the
-- guide's order; event(), reply() and error() build every message the
-- runtime sends: a response, sendError's error, handleBroadcast's event
-- (also for what a backend publishes through the server API).

local json = require "moonwire.json"
local envelope = require "lib.envelope"
local utf8 = require "lib.utf8"
local actions = require "controllers.request"

local type = type
local sub = string.sub


local _M = {}


local INVALID_MESSAGE = "INVALID_MESSAGE"
local TYPES = envelope.TYPES

-- What decode returns for a message the guide's handler ignores.
local IGNORED = { type = "request", action = "_ignored", ignored = true }


local function invalid(text, id)
    return nil, INVALID_MESSAGE, text, id
end


-- An action of controllers/request.lua: a function under a name that does
-- not start with `_` (the router's own rule).
local function is_action(name)
    return type(actions[name]) == "function" and sub(name, 1, 1) ~= "_"
end


-- Text and binary frames alike: the guide's handler parses
-- data.toString() whatever the frame was. Binary frames must be UTF-8.
function _M.decode(payload, is_binary)
    if is_binary and not utf8.valid(payload) then
        return invalid("Invalid message: not UTF-8 text")
    end
    local msg, kind = json.decode(payload, "payload")
    if msg == nil then
        return invalid("Invalid message: malformed JSON")
    end
    if kind ~= "object" then
        return invalid("Invalid message: must be a JSON object")
    end
    local id = msg.id
    if type(id) ~= "string" or id == "" then
        id = nil
    end
    local t = msg.type
    if type(t) ~= "string" or not TYPES[t] then
        return invalid("Invalid message: type must be 'request', 'response', 'event' or 'error'",
                       id)
    end
    if t ~= "request" then
        return IGNORED
    end
    if id == nil then
        return invalid("Invalid message: id must be a non-empty string")
    end
    local action = msg.action
    if type(action) ~= "string" or action == "" then
        return invalid("Invalid message: action must be a non-empty string", id)
    end
    if not is_action(action) then
        if #action > 64 then
            return nil, "NOT_FOUND", "Unknown action", id
        end
        return nil, "NOT_FOUND", "Unknown action: " .. action, id
    end
    -- payload may be any JSON value, or absent; what the action does not
    -- read is never decoded.
    return { type = "request", action = action, id = id, data = json.field(msg, "payload") }
end


-- Returns payload, false, or nil, err.
function _M.encode(value)
    local text, err = envelope.write(value)
    if not text then
        return nil, err
    end
    return text, false
end


-- The response to a request: its id and action; the action's return
-- value as the payload (none when it returned nothing).
function _M.reply(msg, value)
    return envelope.response(msg.id, msg.action, value)
end


-- Every error the runtime sends, in sendError's shape. An internal error
-- says no more than the guide's default message.
function _M.error(id, code, message)
    if code == "INTERNAL_ERROR" and message == "internal error" then
        message = nil
    end
    return envelope.error(id, code, message)
end


-- Every event: handleBroadcast's {id, type:'event', action: topic,
-- payload: data}. The server API's default event (type "system", data
-- {from, user, data}) is a backend's publish: the room is the topic and
-- the backend's data the payload. A backend that names its own `type` and
-- `action` sets the action itself (the type is always 'event').
function _M.event(type_, action, data, room)
    if type_ ~= "system" then
        return envelope.event(action, data)
    end
    if type(data) == "table" and data.from == json.null and data.user == json.null
       and data.data ~= nil then
        data = json.field(data, "data")
    end
    return envelope.event(room or action, data)
end


return _M
