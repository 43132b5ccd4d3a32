-- PXL's automatic events (the guide's "Multi-Worker Coordination":
-- ClientConnected, ClientDisconnected, ClientJoinedRoom, ClientLeftRoom),
-- which moonwire's server emits as client.connected, client.disconnected,
-- client.joined and client.left, go to the members of the activity room
-- (config.lua: app.activity_room, default "clients:activity") as
-- {"type":"activity","action":"clientConnected"|"clientDisconnected"|
-- "clientJoinedRoom"|"clientLeftRoom","data":EVENT}, EVENT being the
-- server's event without the client's address ({node, client_id, user},
-- and room and count, or code and reason).
--
-- Across nodes (docs/scaling.md) every node runs this handler for every
-- node's events and sends to its own members of the room (ctx.server is
-- the node's): each member hears of each event once. The event's
-- client_id is the node's own number for the client; `node` names it.

local pxl = require "lib.pxl"
local shared = require "lib.shared"

local ipairs = ipairs

local ACTIONS = {
    ["client.connected"] = "clientConnected",
    ["client.disconnected"] = "clientDisconnected",
    ["client.joined"] = "clientJoinedRoom",
    ["client.left"] = "clientLeftRoom",
}

-- What of the event is passed on (not the client's address).
local DATA_KEYS = { "node", "client_id", "user", "room", "count", "code", "reason" }


return {
    name = "clientActivity",
    description = "Tell the activity room about clients connecting, leaving and moving",
    channels = { "client.connected", "client.disconnected", "client.joined", "client.left" },
    handle = function(ctx)
        local event, data = ctx.message, {}
        for _, key in ipairs(DATA_KEYS) do
            data[key] = event[key]
        end
        return ctx.server.room(shared.setting("activity_room")):broadcast(
            pxl.message("activity", ACTIONS[ctx.channel], pxl.ordered(DATA_KEYS, data)))
    end,
}
