-- Controller for the hub protocol (protocol.lua routes {"type":T} to hub.T).
-- `msg` is the whole decoded JSON object.

local moonwire = require "moonwire"
local counter = require "lib.counter"

local type = type


local _M = {}


local function room_name(msg)
    local room = msg.room
    if type(room) ~= "string" or room == "" or #room > 256 then
        return nil, { code = "INVALID_ROOM", message = "room must be a string of 1 to 256 bytes" }
    end
    return room
end


-- {"type":"echo","data":D} -> {"type":"echo","data":D}: decoded by
-- protocol.decode, encoded again here.
function _M.echo(client, msg)
    client:send({ type = "echo", data = msg.data })
end


-- {"type":"incr","data":D} -> {"type":"incr","data":D,"n":N}: one Redis
-- INCR of the key hub:incr, N its new value. The handler waits for the
-- reply (its client's later messages wait behind it; other clients do
-- not). Redis unreachable or not configured: UNAVAILABLE.
local KEY = "hub:incr"

function _M.incr(client, msg)
    local red = counter.red
    if not red then
        return nil, { code = "UNAVAILABLE", message = counter.why }
    end
    local n, err = red:incr(KEY)
    if not n then
        return nil, { code = "UNAVAILABLE", message = "redis: " .. err }
    end
    client:send({ type = "incr", data = msg.data, n = n })
end


-- {"type":"subscribe","room":R} -> {"type":"subscribed","room":R}
function _M.subscribe(client, msg)
    local room, err = room_name(msg)
    if not room then
        return nil, err
    end
    local count, code, message = client:join(room)
    if not count then
        return nil, { code = code, message = message }
    end
    client:send({ type = "subscribed", room = room })
end


-- {"type":"publish","room":R,"data":D}: every member of R (the publisher
-- too, if it is one) gets {"type":"message","room":R,"data":D}, encoded once
-- here and framed once by the C core. No ack.
function _M.publish(client, msg)
    local room, err = room_name(msg)
    if not room then
        return nil, err
    end
    local delivered, berr = moonwire.room(room):broadcast({ type = "message", room = room,
                                                            data = msg.data })
    if not delivered then
        return nil, berr
    end
end


return _M
