-- The guide's queueDashboard subscriber ("Subscriber Matching and
-- Ordering"): job.completed and job.error events, which a backend emits
-- through the server API (POST /api/emit {"channel":"job.completed",
-- "message":{...}}), go to the live dashboard's room as PXL's
-- {"type":"queue","action":"done"|"errored","data":EVENT}. Dashboards join
-- the room with system.joinRoom (config.lua: app.queue_room, default
-- "queue:dashboard"). An event without a jobId is refused, naming the
-- field, and logged by the logging middleware.

local handlers = require "moonwire.handlers"
local mw = require "moonwire.middleware"
local pxl = require "lib.pxl"
local shared = require "lib.shared"

local ACTIONS = { ["job.completed"] = "done", ["job.error"] = "errored" }

-- A job event: an object with a jobId (any JSON value), anything else
-- passed on as the backend wrote it.
local JOB = { type = "object", fields = { jobId = "any" } }


local function forward(ctx)
    return ctx.server.room(shared.setting("queue_room")):broadcast(
        pxl.message("queue", ACTIONS[ctx.channel], ctx.message))
end


return {
    name = "queueDashboard",
    description = "Forward queue updates to the live dashboard",
    channels = { "job.completed", "job.error" },
    priority = 20,
    middleware = { mw.logging("queueDashboard") },
    handle = handlers.with_validation(JOB, forward),
}
