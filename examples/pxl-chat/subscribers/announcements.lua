-- Announcements from a backend (POST /api/emit {"channel":"announcement",
-- "message":{"message":TEXT}}) go to every connected client as the guide's
-- {"type":"notification","action":"alert","data":{"message":TEXT}}, except
-- to clients whose metadata turns notifications off
-- (user.updatePreferences {"notifications":false}): the guide's
-- broadcastToAllClients with a predicate on client data.
--
-- At most 10 announcements a minute (the guide's rateLimitMiddleware(10,
-- 60000)); one without a message is refused naming the field. The logging
-- middleware logs both.

local json = require "moonwire.json"
local handlers = require "moonwire.handlers"
local mw = require "moonwire.middleware"
local pxl = require "lib.pxl"

local type = type

local ALERT_KEYS = { "message" }

local ANNOUNCEMENT = {
    type = "object",
    fields = { message = { type = "string", min_len = 1, max_len = 2000 } },
}


-- Whether a client wants notifications: yes unless its preferences say
-- notifications: false.
local function wants(client)
    local prefs = client.data.preferences
    return not (type(prefs) == "table" and prefs.notifications == false)
end


local function announce(ctx)
    return ctx.server.broadcast(pxl.message("notification", "alert", pxl.ordered(
        ALERT_KEYS, { message = json.field(ctx.message, "message") })), { filter = wants })
end


return {
    name = "announcements",
    description = "Broadcast a backend's announcements to clients that want notifications",
    channel = "announcement",
    middleware = { mw.logging("announcements") },
    handle = handlers.compose({
        handlers.with_validation(ANNOUNCEMENT),
        handlers.with_rate_limit({ max = 10, window = 60000 }),
    }, announce),
}
