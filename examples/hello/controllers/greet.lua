-- Controller for type "greet": greet.hello and greet.shout.

local moonwire = require "moonwire"

local type = type
local upper = string.upper


local _M = {}

local MAX_NAME = 64


-- Private helper: names starting with "_" are not actions.
function _M._check_name(name)
    if type(name) ~= "string" or #name == 0 or #name > MAX_NAME then
        return nil, { code = "INVALID_MESSAGE",
                      message = "name must be a string of 1 to " .. MAX_NAME .. " bytes" }
    end
    return name
end


-- {"type":"greet","action":"hello","data":{"name":"Ada"},"id":"1"}
-- replies {"data":{"message":"Hello, Ada!"}}.
function _M.hello(client, data)
    local name, err = _M._check_name(data.name)
    if not name then
        return nil, err
    end
    client.data.greeted = (client.data.greeted or 0) + 1
    return { message = "Hello, " .. name .. "!", count = client.data.greeted }
end


-- Sends the greeting back as an event, in capitals; replies { sent = true }.
function _M.shout(client, data)
    local name = _M._check_name(data.name)
    if not name then
        moonwire.fail("INVALID_MESSAGE", "name must be a non-empty string")
    end
    client:emit("greet", "shouted", { message = upper("Hello, " .. name .. "!") })
    return { sent = true }
end


return _M
