-- moonwire.protocol: the default wire protocol, JSON text frames.
-- Client -> server: { type, action, data?, id? }. Server -> client: events
-- { type, action, data, room?, ts }, replies { type, action, id, data } and
-- errors { type = "error", id?, error = { code, message } }. An app replaces
-- it with APP/protocol.lua; the runtime only relies on decode and encode and
-- takes event/reply/error from here when the app does not define them.

local json = require "moonwire.json"
local moonwire = require "moonwire"

local type = type
local pairs = pairs
local error = error
local tonumber = tonumber
local huge = math.huge
local format = string.format
local lower = string.lower
local gsub = string.gsub
local next = next


local _M = require("moonwire.version").module()


-- JSON goes through moonwire.json: `data` reaches Lua decoded one level at
-- a time and is forwarded as the client's bytes while unchanged. Numbers Lua
-- writes get 14 significant digits (the most Debian's lua-cjson 2.1.0
-- allows): decode refuses a numeric id that would not come back unchanged
-- in the reply.
local ID_FORMAT = "%.14g"

_M.null = json.null


-- Debian's lua-cjson 2.1.0 encodes every empty table as an object. This
-- value (a json.literal) is written as `[]`: `protocol.array(list)` returns
-- it for an empty list.
local EMPTY_ARRAY = json.empty_array

_M.empty_array = EMPTY_ARRAY


function _M.array(list)
    if next(list) == nil then
        return EMPTY_ARRAY
    end
    return list
end


local codes = {
    AUTHENTICATION_FAILED = "AUTHENTICATION_FAILED",
    AUTHORIZATION_FAILED = "AUTHORIZATION_FAILED",
    RATE_LIMIT_EXCEEDED = "RATE_LIMIT_EXCEEDED",
    INVALID_MESSAGE = "INVALID_MESSAGE",
    INVALID_ROOM = "INVALID_ROOM",
    ROOM_FULL = "ROOM_FULL",
    SERVER_FULL = "SERVER_FULL",
    NOT_FOUND = "NOT_FOUND",
    INTERNAL_ERROR = "INTERNAL_ERROR",
}

_M.codes = codes
for name, code in pairs(codes) do
    _M[name] = code
end


-- The message sent when an error has a code but no message of its own:
-- "ROOM_FULL" -> "room full".
function _M.default_message(code)
    return (gsub(lower(code), "_", " "))
end


local function bad(field, what, id)
    return nil, codes.INVALID_MESSAGE, "field '" .. field .. "' must be " .. what, id
end


-- Returns msg, or nil, code, message[, id]. The id is returned when the
-- message was JSON with a usable id, so that the error can still answer it.
function _M.decode(payload, is_binary)
    if is_binary then
        return nil, codes.INVALID_MESSAGE,
               "binary frames are not supported: send JSON in a text frame"
    end
    if type(payload) ~= "string" then
        error("bad argument #1 to 'decode' (string expected, got " .. type(payload) .. ")", 2)
    end

    local msg, kind = json.decode(payload, "data")
    if msg == nil then
        return nil, codes.INVALID_MESSAGE, kind
    end
    if kind ~= "object" then
        return nil, codes.INVALID_MESSAGE, "message must be a JSON object"
    end

    local id = msg.id -- absent (nil): no reply wanted
    if type(id) == "number" then
        -- Every answer carries the id back, so it must encode as itself:
        -- not an infinity (1e999 decodes to one, and cannot be encoded),
        -- nor more digits than the encoder writes.
        if id == huge or id == -huge or tonumber(format(ID_FORMAT, id)) ~= id then
            return bad("id", "a string or a number of at most 14 significant digits")
        end
    elseif id ~= nil and type(id) ~= "string" then
        return bad("id", "a string or a number")
    end

    if type(msg.type) ~= "string" or msg.type == "" then
        return bad("type", "a non-empty string", id)
    end
    -- {"type":"auth","token":T}: the authentication message (docs/security.md),
    -- routed as system.auth.
    if msg.type == "auth" and msg.action == nil then
        local token = msg.token
        if type(token) ~= "string" or token == "" then
            return bad("token", "a non-empty string", id)
        end
        return { type = "system", action = "auth", data = { token = token }, id = id }
    end
    if type(msg.action) ~= "string" or msg.action == "" then
        return bad("action", "a non-empty string", id)
    end

    local data = msg.data
    if data == nil or data == json.null then
        msg.data = {}
    elseif type(data) ~= "table" then
        return bad("data", "an object or an array", id)
    end

    return msg
end


-- Returns payload, is_binary, or nil, err when the value cannot be encoded
-- (functions, userdata, excessively sparse arrays, cycles).
function _M.encode(value)
    local payload, err = json.encode(value)
    if not payload then
        return nil, err
    end
    return payload, false
end


-- Empty tables encode as JSON objects ("{}"), which is what `data` needs.
function _M.event(type_, action, data, room)
    return {
        type = type_,
        action = action,
        data = data == nil and {} or data,
        room = room,
        ts = moonwire.now(),
    }
end


function _M.reply(msg, data)
    return {
        type = msg.type,
        action = msg.action,
        id = msg.id,
        data = data == nil and json.null or data,
    }
end


function _M.error(id, code, message)
    return {
        type = "error",
        id = id,
        error = {
            code = code,
            message = message or _M.default_message(code),
        },
    }
end


return _M
