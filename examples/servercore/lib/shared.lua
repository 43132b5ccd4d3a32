-- The running app, for the modules that do not receive it (controllers,
-- routes, lib/*): app.lua sets it in on_start and again in on_reload,
-- because a reload loads this module afresh.

local _M = { app = nil }


function _M.set(app)
    _M.app = app
end


-- The app's settings (config.lua's `app` table), or {} before on_start.
function _M.config()
    return _M.app and _M.app.config or {}
end


-- The app's state (app.state), or a throwaway table before on_start.
function _M.state()
    return _M.app and _M.app.state or {}
end


return _M
