-- The emit row of scripts/bench (moonwire-bench emit): an event posted to
-- the server API (POST /api/emit, only with api_key set) on channel
-- "bench.fanout" is broadcast to its room as the hub's publish would,
-- {"type":"message","room":R,"data":D}, so the same subscribers count it.
--
-- An exact channel: the bus looks it up only for events on that channel,
-- and the server's own events (client.connected, client.joined...) stay
-- unbuilt, as in a hub without subscribers; the hub protocol and every
-- other row are unchanged.

local type = type


return {
    name = "bench-fanout",
    description = "bench.fanout events to their room (scripts/bench, row emit1)",
    channel = "bench.fanout",
    handle = function(ctx)
        local msg = ctx.message
        local room = type(msg) == "table" and msg.room
        if type(room) ~= "string" or room == "" then
            error("bench.fanout: message.room must be a non-empty string")
        end
        local delivered, err = ctx.server.room(room):broadcast({ type = "message", room = room,
                                                                 data = msg.data })
        if not delivered then
            error("bench.fanout: " .. tostring(err))
        end
    end,
}
