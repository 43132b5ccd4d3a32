-- The client messages of BaseWebSocketHandler (the guide's "Message
-- Protocol"), routed here by protocol.lua: subscribe and unsubscribe (the
-- guide's example handler), ping and pong (the base class). Each action
-- sends its own answer; an error returned (`nil, text`) goes out as the
-- guide's {"type":"error","message":text,"timestamp":...}.

local moonwire = require "moonwire"
local message = require "lib.message"

local type = type


local _M = {}


local function channel_of(data)
    local channel = data.channel
    if type(channel) ~= "string" or channel == "" then
        return nil
    end
    return channel
end


-- {"type":"subscribe","channel":C} -> {"type":"subscribed","channel":C,...}.
-- The channel is a room; subscribing twice answers the same.
function _M.subscribe(client, data)
    local channel = channel_of(data)
    if not channel then
        return nil, "Channel is required"
    end
    local count, _, why = client:join(channel)
    if not count then
        -- A name over 256 bytes, or past max_rooms_per_client.
        return nil, "Cannot subscribe: " .. why
    end
    client:send(message.new("subscribed", { channel = channel }))
end


-- {"type":"unsubscribe","channel":C} -> {"type":"unsubscribed",...}, also
-- for a channel the client was not subscribed to (as the package does).
function _M.unsubscribe(client, data)
    local channel = channel_of(data)
    if not channel then
        return nil, "Channel is required"
    end
    if #channel <= 256 then
        client:leave(channel)
    end
    client:send(message.new("unsubscribed", { channel = channel }))
end


-- The client's ping: answered with a pong; like a pong, it shows the
-- client is alive.
function _M.ping(client)
    client.data.pong_at = moonwire.now()
    client:send(message.new("pong"))
end


-- The answer to the server's ping (app.lua): nothing is sent back.
function _M.pong(client)
    client.data.pong_at = moonwire.now()
end


-- A message of another type: logged, not answered (handleCustomMessage).
function _M.unknown(client, data)
    local t = data.type
    moonwire.log.warn("client %d: unknown message type %s", client.id,
                      type(t) == "string" and t or "(none)")
end


return _M
