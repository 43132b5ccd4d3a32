-- The hub's message types (guide 004, "Client → Server Messages"), one
-- action each; protocol.lua routes {"type":T,...} here as hub.T with the
-- whole object as `msg`. Each answers as the gorilla service's handlers
-- do: errors with the guide's words, publish and broadcast to everyone but
-- the sender, no acknowledgement for either.

local moonwire = require "moonwire"
local hub = require "lib.hub"


local _M = {}


-- {"type":"subscribe","room":R} -> {"type":"subscribed","room":R,
-- "data":{"room":R,"client_count":N},"timestamp":T}. Subscribing again
-- answers the same, with the room's current count.
function _M.subscribe(client, msg)
    local room = msg.room
    if room == nil or room == "" then
        return nil, hub.ERR_EMPTY_ROOM
    end
    local count, code, message = client:join(room)
    if not count then
        if code == "ROOM_FULL" then
            return nil, hub.ERR_ROOM_FULL
        elseif code == "CLOSED" then
            return
        end
        -- A name over moonwire's 256 bytes (README.md, "Differences").
        return nil, message
    end
    client:send(hub.subscribed(room, count))
end


-- {"type":"unsubscribe","room":R} -> {"type":"unsubscribed","room":R,
-- "data":{"room":R},"timestamp":T}
function _M.unsubscribe(client, msg)
    local room = msg.room
    if room == nil or room == "" then
        return nil, hub.ERR_EMPTY_ROOM
    end
    if not client:in_room(room) then
        return nil, hub.ERR_NOT_SUBSCRIBED
    end
    if client:leave(room) then
        client:send(hub.unsubscribed(room))
    end
end


-- {"type":"publish","room":R,"data":D}: the room's other members get
-- {"type":"message","room":R,"data":D,"client_id":SENDER,"timestamp":T},
-- encoded once and framed once for all of them.
function _M.publish(client, msg)
    local room = msg.room
    if room == nil or room == "" then
        return nil, hub.ERR_EMPTY_ROOM
    end
    if not client:in_room(room) then
        return nil, hub.ERR_NOT_SUBSCRIBED
    end
    moonwire.room(room):broadcast(hub.message(room, msg.data, client.data.client_id),
                                  { exclude = client })
end


-- {"type":"broadcast","data":D}: every other client gets the message
-- without "room".
function _M.broadcast(client, msg)
    moonwire.broadcast(hub.message(nil, msg.data, client.data.client_id), { exclude = client })
end


-- {"type":"ping"} -> {"type":"pong","timestamp":T}
function _M.ping(client)
    client:send(hub.pong())
end


return _M
