-- Feed events emitted on the event bus (a backend's POST /api/emit
-- {"channel":"orders.created","message":{...}}, or moonwire.emit): a
-- channel name matching one of config.lua's app.bus_subscriptions globs is
-- broadcast to the subscribers of its WebSocket channel, as a NATS message
-- on the same subject would be (lib/nats_feed.lua).

local bus = require "moonwire.bus"
local feed = require "lib.feed"
local shared = require "lib.shared"

local type = type


-- { {match = compiled glob, channel = C}, ... }, compiled once per config.
local compiled, compiled_for

local function channel_for(name)
    local list = shared.setting("bus_subscriptions")
    if type(list) ~= "table" then
        return nil
    end
    if compiled_for ~= list then
        compiled, compiled_for = {}, list
        for i = 1, #list do
            compiled[i] = { match = assert(bus.glob(list[i].match)), channel = list[i].channel }
        end
    end
    for i = 1, #compiled do
        local m = compiled[i].match
        if (type(m) == "string" and m == name) or (type(m) == "function" and m(name)) then
            return compiled[i].channel
        end
    end
    return nil
end


return {
    name = "feed",
    description = "Broadcast feed events (orders.*, portfolio.*) to their channel's subscribers",
    match = function(ctx)
        return channel_for(ctx.channel) ~= nil
    end,
    handle = function(ctx)
        return feed.publish(channel_for(ctx.channel), ctx.message)
    end,
}
