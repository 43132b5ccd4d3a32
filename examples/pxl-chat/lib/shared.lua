-- The running app, for the modules that do not receive it (controllers,
-- protocol.lua, lib/*): app.lua sets it in on_start and again in on_reload,
-- because a reload loads this module afresh. It also keeps the app's routes
-- ("type.action"), which protocol.lua looks up to tell PXL's routes from
-- messages PXL would ignore.

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


-- Whether a controller of the app answers type.action.
function _M.has_route(type_, action)
    return routes[type_ .. "." .. action] == true
end


return _M
