-- Tells a room's members who came and went: on the server's client.joined
-- and client.left events, every other member of the room gets
-- {"type":"room","action":"memberJoined"|"memberLeft","data":{"roomName":R,
-- "username":U,"count":N}}, U being the name the client joined with
-- (system.joinRoom's username). This stands in for PXL's
-- {"type":"system","action":"clientList"} broadcast, which sends the whole
-- client list to every client on every change (README.md).
--
-- Across nodes (docs/scaling.md) every node runs this handler, but only the
-- node of the client that came or went knows the name it joined as (in its
-- client.data): that node tells the room's members on every node (the
-- room broadcast of app code crosses nodes), the others do nothing, so
-- each member hears it once. N counts the members on every node.

local moonwire = require "moonwire"
local pxl = require "lib.pxl"
local shared = require "lib.shared"

local STATUS_KEYS = { "roomName", "username", "count" }
local ACTIONS = { ["client.joined"] = "memberJoined", ["client.left"] = "memberLeft" }


return {
    name = "roomStatus",
    description = "Tell a room's members who joined and who left",
    channels = { "client.joined", "client.left" },
    handle = function(ctx)
        local event, client = ctx.message, ctx.client
        if not shared.ours(event) then
            return true
        end
        local joined = client and client.data.rooms and client.data.rooms[event.room]
        local username = joined and joined.username or pxl.nullish(event.user, "Anonymous")
        return moonwire.room(event.room):broadcast(
            pxl.message("room", ACTIONS[ctx.channel], pxl.ordered(STATUS_KEYS, {
                roomName = event.room, username = username,
                count = shared.room_count(event.room, event.count),
            })), { exclude = event.client_id })
    end,
}
