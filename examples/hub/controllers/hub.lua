-- Controller for the hub protocol (protocol.lua routes {"type":T} to hub.T).
-- `msg` is the whole decoded JSON object.

local moonwire = require "moonwire"

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
