-- The PXL framework's client-facing messages (shared/seeds/001, the PXL
-- WebSocket guide), built here and written by protocol.lua with their keys
-- in the order PXL's JSON.stringify writes them (the order of the object
-- literals in @scpxl/nodejs-framework's source), plus the JavaScript
-- semantics its controllers rely on (`||`, `??`, toISOString, Date.now).
--
--   every message      {type, action, data}
--   a controller's     {type, action, response}   (response left out when
--   return value                                    the action returned none)
--   an error           {type:'error', action:'message', data:{error}}

local moonwire = require "moonwire"
local json = require "moonwire.json"
local uuid = require "moonwire.uuid"

local floor = math.floor
local format = string.format
local gsub = string.gsub
local date = os.date
local type = type

local null = json.null


local _M = {}


-- Marks t to be written by protocol.encode (moonwire.json.encode_ordered)
-- with the keys listed first, in that order, then any others. Returns t.
_M.ordered = json.ordered


local MESSAGE_KEYS = { "type", "action", "data" }
local REPLY_KEYS = { "type", "action", "response" }
local ERROR_DATA_KEYS = { "error" }


-- {type, action, data}: what sendClientMessage and the broadcasts send.
function _M.message(type_, action, data)
    return _M.ordered(MESSAGE_KEYS, { type = type_, action = action, data = data })
end


-- {type, action, response}: handleClientMessage's answer to a routed
-- message, whatever the controller returned (no `response` for undefined).
function _M.reply(type_, action, response)
    return _M.ordered(REPLY_KEYS, { type = type_, action = action, response = response })
end


-- {type:'error', action:'message', data:{error}}: sendMessageError.
function _M.error(text)
    return _M.message("error", "message", _M.ordered(ERROR_DATA_KEYS, { error = text }))
end


-- JavaScript's `a || b`: b when a is falsy (undefined, null, false, "", 0,
-- NaN).
function _M.js_or(a, b)
    if a == nil or a == null or a == false or a == "" or a == 0 or a ~= a then
        return b
    end
    return a
end


-- JavaScript's `a ?? b`: b when a is undefined or null.
function _M.nullish(a, b)
    if a == nil or a == null then
        return b
    end
    return a
end


-- Date.now(): integer milliseconds since the epoch.
function _M.now()
    return floor(moonwire.now())
end


-- new Date(ms).toISOString(): "2026-01-31T12:00:00.000Z".
function _M.iso(ms)
    ms = floor(ms or moonwire.now())
    return date("!%Y-%m-%dT%H:%M:%S", floor(ms / 1000)) .. format(".%03dZ", ms % 1000)
end


-- PXL's generateClientId(): a random UUID without its dashes, 32 hex digits.
function _M.client_id()
    return (gsub(uuid.v4(), "-", ""))
end


-- Whether a decoded JSON value is a non-empty string (a room name).
function _M.nonempty_string(v)
    return type(v) == "string" and v ~= ""
end


return _M
