-- The running app, for the modules that do not receive it (controllers,
-- protocol.lua, lib/*): app.lua sets it in on_start and again in on_reload,
-- because a reload loads this module afresh. It also keeps the app's routes
-- ("type.action"), which protocol.lua looks up to tell PXL's routes from
-- messages PXL would ignore.


local moonwire = require "moonwire"

local type = type

local _M = { app = nil }

local routes = {}


function _M.set(app)
    _M.app = app
    routes = {}
    for _, route in ipairs(app:routes()) do
        routes[route] = true
    end
end


-- Defaults of the app's settings (config.lua's `app` table sets them; a
-- spec's config = { app = {...} } may give only some).
local DEFAULTS = {
    jwt_secret_key = "",
    redis_url = "",
    history_key = "pxl-chat:history",
    history_size = 50,
    queue_room = "queue:dashboard",
    activity_room = "clients:activity",
}


-- One of the app's settings (config.lua's `app` table), or its default.
function _M.setting(name)
    local config = _M.app and _M.app.config
    local value = config and config[name]
    if value == nil then
        return DEFAULTS[name]
    end
    return value
end


-- This node's id when the server runs as one node of several (config
-- `cluster = true`, docs/scaling.md), nil on its own: the `node` the
-- server's client.* events and chat.message carry, to tell this node's
-- events from the other nodes'.
function _M.node()
    return moonwire.node()
end


-- Whether an event came from this node (always, without a cluster).
function _M.ours(event)
    local node = type(event) == "table" and event.node or nil
    return node == nil or node == _M.node()
end


-- The number of members of `room` on every node (read from Redis: waits,
-- call it from a task), or `fallback` (this node's count) without a
-- cluster or while Redis does not answer.
function _M.room_count(room, fallback)
    if not moonwire.node() then
        return fallback
    end
    local list = moonwire.presence(room)
    return list and #list or fallback
end


-- Whether a controller of the app answers type.action.
function _M.has_route(type_, action)
    return routes[type_ .. "." .. action] == true
end


return _M
