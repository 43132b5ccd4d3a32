-- Tells a room's members who came and went: on the server's client.joined
-- and client.left events, every other member of the room gets
-- {"type":"room","action":"memberJoined"|"memberLeft","data":{"roomName":R,
-- "username":U,"count":N}}, U being the name the client joined with
-- (system.joinRoom's username). This stands in for PXL's
-- {"type":"system","action":"clientList"} broadcast, which sends the whole
-- client list to every client on every change (README.md).

local pxl = require "lib.pxl"

local STATUS_KEYS = { "roomName", "username", "count" }
local ACTIONS = { ["client.joined"] = "memberJoined", ["client.left"] = "memberLeft" }


return {
    name = "roomStatus",
    description = "Tell a room's members who joined and who left",
    channels = { "client.joined", "client.left" },
    handle = function(ctx)
        local event, client = ctx.message, ctx.client
        local joined = client and client.data.rooms and client.data.rooms[event.room]
        local username = joined and joined.username or pxl.nullish(event.user, "Anonymous")
        return ctx.server.room(event.room):broadcast(
            pxl.message("room", ACTIONS[ctx.channel], pxl.ordered(STATUS_KEYS, {
                roomName = event.room, username = username, count = event.count,
            })), { exclude = event.client_id })
    end,
}
