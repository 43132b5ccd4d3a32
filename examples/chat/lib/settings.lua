-- The app's settings (config.lua's `app` table), for the controllers: they
-- only receive (client, data, msg). app.lua sets them in on_start and
-- on_reload; the defaults apply until then (and in specs that skip on_start).

local _M = {
    max_text = 2000,
    max_name = 32,
    typing_interval = 1000,
}


function _M.set(config)
    for key, value in pairs(config or {}) do
        if _M[key] ~= nil and type(value) == type(_M[key]) then
            _M[key] = value
        end
    end
end


return _M
