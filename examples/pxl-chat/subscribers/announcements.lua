-- Announcements from a backend (POST /api/emit {"channel":"announcement",
-- "message":{"message":TEXT}}) go to every connected client as the guide's
-- {"type":"notification","action":"alert","data":{"message":TEXT}}, except
-- to clients whose metadata turns notifications off
-- (user.updatePreferences {"notifications":false}): the guide's
-- broadcastToAllClients with a predicate on client data.

local json = require "moonwire.json"
local pxl = require "lib.pxl"

local type = type
local error = error

local ALERT_KEYS = { "message" }


-- Whether a client wants notifications: yes unless its preferences say
-- notifications: false.
local function wants(client)
    local prefs = client.data.preferences
    return not (type(prefs) == "table" and prefs.notifications == false)
end


return {
    name = "announcements",
    description = "Broadcast a backend's announcements to clients that want notifications",
    channel = "announcement",
    handle = function(ctx)
        local text = type(ctx.message) == "table" and ctx.message.message
        if type(text) ~= "string" or text == "" then
            error("announcement without a message", 0)
        end
        return ctx.server.broadcast(pxl.message("notification", "alert", pxl.ordered(
            ALERT_KEYS, { message = json.field(ctx.message, "message") })), { filter = wants })
    end,
}
