-- The hub protocol's decoding (examples/hub/protocol.lua): {"type":T,...}
-- is the action T of controllers/bench.lua, the whole object its data;
-- `data` is kept as the client's text.
local json = require "moonwire.json"
local protocol = require "moonwire.protocol"


local _M = {}


function _M.decode(payload, is_binary)
    if is_binary then
        return nil, "INVALID_MESSAGE", "binary frames are not supported"
    end
    local msg, kind = json.decode(payload, "data")
    if msg == nil then
        return nil, "INVALID_MESSAGE", kind
    end
    if kind ~= "object" or type(msg.type) ~= "string" then
        return nil, "INVALID_MESSAGE", "a message must be an object with a string 'type'"
    end
    return { type = "bench", action = msg.type, data = msg }
end


_M.encode = protocol.encode


return _M
