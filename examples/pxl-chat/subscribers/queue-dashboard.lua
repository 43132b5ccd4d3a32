-- The guide's queueDashboard subscriber ("Subscriber Matching and
-- Ordering"): job.completed and job.error events, which a backend emits
-- through the server API (POST /api/emit {"channel":"job.completed",
-- "message":{...}}), go to the live dashboard's room as PXL's
-- {"type":"queue","action":"done"|"errored","data":EVENT}. Dashboards join
-- the room with system.joinRoom (config.lua: app.queue_room, default
-- "queue:dashboard").

local pxl = require "lib.pxl"
local shared = require "lib.shared"

local ACTIONS = { ["job.completed"] = "done", ["job.error"] = "errored" }


return {
    name = "queueDashboard",
    description = "Forward queue updates to the live dashboard",
    channels = { "job.completed", "job.error" },
    priority = 20,
    handle = function(ctx)
        local room = shared.setting("queue_room")
        return ctx.server.room(room):broadcast(
            pxl.message("queue", ACTIONS[ctx.channel], ctx.message))
    end,
}
