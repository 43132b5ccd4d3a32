-- The running app, for controllers and subscribers (they do not receive
-- it): app.lua sets it in on_start and on_reload.

local _M = {}

local current


function _M.set(app)
    current = app
end


function _M.app()
    return current
end


-- app.config[key] (config.lua's `app` table).
function _M.setting(key)
    return current and current.config[key]
end


return _M
