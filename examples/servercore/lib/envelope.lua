-- The message envelope of guide 002 ("Message Protocol", IWebSocketMessage):
--
--   {id, type: 'request'|'response'|'event'|'error', action, payload?,
--    metadata: {timestamp, version: '1.0.0'}}
--
-- Builders for the three kinds the server sends (responses, events,
-- errors), and write(), which puts their keys in the order the guide's
-- object literals have them (JSON.stringify keeps that order): id, type,
-- action, payload, metadata; an error's payload code, message. A payload
-- that is nil is left out, as JSON.stringify leaves out `undefined`.
--
-- A message keeps its time in `ts` until it is written as
-- metadata.timestamp: `ts` is the field the runtime stamps afresh at each
-- send in the messages the core sends by itself (the rate-limit error,
-- encoded once per load), so those carry the time they are sent too.

local moonwire = require "moonwire"
local json = require "moonwire.json"
local uuid = require "moonwire.uuid"

local type = type
local floor = math.floor
local format = string.format
local concat = table.concat
local setmetatable = setmetatable


local _M = {}


_M.VERSION = "1.0.0"

-- The four message types of the guide's MessageType.
_M.TYPES = { request = true, response = true, event = true, error = true }


-- Tables built here, with the key order write() gives them (weak keys:
-- the mark goes with the table).
local ORDER = setmetatable({}, { __mode = "k" })

local MESSAGE_KEYS = { "id", "type", "action", "payload" }
local ERROR_KEYS = { "code", "message", "details" }


-- generateId() of the guide: a random UUID.
_M.generate_id = uuid.v4


-- Date.now(): milliseconds since the epoch, an integer.
function _M.now()
    return floor(moonwire.now())
end


local function message(id, type_, action, payload)
    local m = { id = id, type = type_, action = action, payload = payload, ts = _M.now() }
    ORDER[m] = MESSAGE_KEYS
    return m
end


-- handleMessage's answer to a request: its id and action, `payload` what
-- the action returned.
function _M.response(id, action, payload)
    return message(id, "response", action, payload)
end


-- handleBroadcast's event: a fresh id, the topic as the action.
function _M.event(topic, payload)
    return message(_M.generate_id(), "event", topic, payload)
end


-- sendError's message: the request's id or a fresh one, action 'error',
-- payload {code, message}. `details` is sent only when the error exposes
-- it (error.expose in the guide); no error of this app does.
function _M.error(id, code, text, details)
    if type(id) ~= "string" or id == "" then
        id = _M.generate_id()
    end
    local payload = {
        code = code or "INTERNAL_ERROR",
        message = text or "An error occurred",
        details = details,
    }
    ORDER[payload] = ERROR_KEYS
    return message(id, "error", "error", payload)
end


-- Whether t was built here (and is written by write()).
function _M.is_message(t)
    return ORDER[t] == MESSAGE_KEYS
end


local write_value

local function write_ordered(t, keys)
    local parts, n = {}, 0
    for i = 1, #keys do
        local key = keys[i]
        local v = t[key]
        if v ~= nil then
            local text, err = write_value(v)
            if not text then
                return nil, err
            end
            n = n + 1
            parts[n] = '"' .. key .. '":' .. text
        end
    end
    return n, parts
end


write_value = function(v)
    local keys = type(v) == "table" and ORDER[v]
    if not keys then
        -- moonwire.json: a payload a client or a backend sent is written
        -- as its bytes while unchanged.
        return json.encode(v)
    end
    local n, parts = write_ordered(v, keys)
    if not n then
        return nil, parts
    end
    if keys == MESSAGE_KEYS then
        n = n + 1
        parts[n] = format('"metadata":{"timestamp":%.0f,"version":"%s"}', v.ts, _M.VERSION)
    end
    return "{" .. concat(parts, ",") .. "}"
end


-- The JSON text of a message built here (or of any JSON value), or nil,
-- err.
_M.write = write_value


return _M
