-- The hub wire protocol: flat JSON objects, no envelope, no ids.
--
--   {"type":"echo","data":D}             -> {"type":"echo","data":D}
--   {"type":"incr","data":D}             -> {"type":"incr","data":D,"n":N}
--                                           (N: Redis INCR of hub:incr)
--   {"type":"subscribe","room":R}        -> {"type":"subscribed","room":R}
--   {"type":"publish","room":R,"data":D} -> every member of R gets
--                                           {"type":"message","room":R,"data":D}
--
-- decode() routes {"type":T,...} to the action T of controllers/hub.lua with
-- the whole object as `data`; encode() is moonwire.protocol's, which writes
-- any table as plain JSON, so controllers send hub messages as they are.
-- Data is relayed byte for byte as the client sent it: moonwire.json decodes
-- D only if a controller reads it and writes its original text while it is
-- unchanged. Errors use the default envelope:
-- {"type":"error","error":{"code":...,"message":...}}.

local json = require "moonwire.json"
local protocol = require "moonwire.protocol"

local type = type


local _M = {}


function _M.decode(payload, is_binary)
    if is_binary then
        return nil, "INVALID_MESSAGE", "binary frames are not supported: send JSON text"
    end
    -- "data": a string or number sent as `data` is forwarded as its text.
    local msg, kind = json.decode(payload, "data")
    if msg == nil then
        return nil, "INVALID_MESSAGE", kind
    end
    if kind ~= "object" then
        return nil, "INVALID_MESSAGE", "a message must be a JSON object"
    end
    local t = msg.type
    if type(t) ~= "string" then
        return nil, "INVALID_MESSAGE", "field 'type' must be a string"
    end
    -- No id: the hub protocol has no request/reply envelope, controllers
    -- send their answers themselves.
    return { type = "hub", action = t, data = msg }
end


_M.encode = protocol.encode


return _M
