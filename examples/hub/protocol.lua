-- The hub wire protocol: flat JSON objects, no envelope, no ids.
--
--   {"type":"echo","data":D}             -> {"type":"echo","data":D}
--   {"type":"subscribe","room":R}        -> {"type":"subscribed","room":R}
--   {"type":"publish","room":R,"data":D} -> every member of R gets
--                                           {"type":"message","room":R,"data":D}
--
-- decode() routes {"type":T,...} to the action T of controllers/hub.lua with
-- the whole object as `data`; encode() writes any table as plain JSON, so
-- controllers send hub messages as they are. Errors use the default
-- envelope: {"type":"error","error":{"code":...,"message":...}}.

local cjson = require "cjson.safe"

local type = type


local _M = {}


-- A private cjson instance with the same limits as moonwire.protocol.
local json = cjson.new()
json.decode_invalid_numbers(false)
json.decode_max_depth(64)
json.encode_max_depth(64)


function _M.decode(payload, is_binary)
    if is_binary then
        return nil, "INVALID_MESSAGE", "binary frames are not supported: send JSON text"
    end
    local msg, err = json.decode(payload)
    if type(msg) ~= "table" then
        return nil, "INVALID_MESSAGE", msg == nil and "malformed JSON: " .. (err or "empty message")
                                       or "a message must be a JSON object"
    end
    local t = msg.type
    if type(t) ~= "string" then
        return nil, "INVALID_MESSAGE", "field 'type' must be a string"
    end
    -- No id: the hub protocol has no request/reply envelope, controllers
    -- send their answers themselves.
    return { type = "hub", action = t, data = msg }
end


function _M.encode(value)
    local payload, err = json.encode(value)
    if not payload then
        return nil, err
    end
    return payload, false
end


return _M
