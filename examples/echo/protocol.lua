-- The echo wire protocol: no envelope at all. decode() wraps each raw
-- message, text or binary, as an "echo.echo" message; encode() unwraps a
-- { payload =, binary = } frame back into the exact bytes. Anything else the
-- runtime sends (error envelopes) is encoded as JSON by the default protocol.

local json = require "moonwire.protocol"

local type = type


local _M = {}


function _M.decode(payload, is_binary)
    return {
        type = "echo",
        action = "echo",
        data = { payload = payload, binary = is_binary == true },
    }
end


function _M.encode(value)
    if type(value) == "table" and type(value.payload) == "string" then
        return value.payload, value.binary == true
    end
    return json.encode(value)
end


return _M
