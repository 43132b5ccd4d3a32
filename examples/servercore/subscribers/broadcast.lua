-- POST /broadcast with a role filter, on the workers (and nodes) that did
-- not take the request: the worker that did delivered to its own
-- subscribers and emitted the event here (lib/topics.lua); each other
-- worker delivers it to its subscribers with the roles, so that together
-- they reach every matching subscriber once.

local moonwire = require "moonwire"
local topics = require "lib.topics"

local tostring = tostring


return {
    name = "filtered-broadcast",
    description = "a filtered broadcast to this worker's matching subscribers",
    channel = topics.CHANNEL,
    handle = function(ctx)
        local delivered, err = topics.receive(ctx.message)
        if not delivered then
            moonwire.log.error("filtered broadcast not delivered here: %s", tostring(err))
        end
        return delivered
    end,
}
