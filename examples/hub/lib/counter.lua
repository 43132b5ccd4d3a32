-- The Redis connection behind the hub's incr message. app.lua opens it once
-- (on_start, and on_reload since a reload loads this module afresh; the
-- connection itself is shared by URL, so it stays the same one) from
-- app.redis_url; every client's incr uses it, pipelined on that connection.

local moonwire = require "moonwire"

local type = type


local NO_URL = "no Redis configured (app.redis_url in config.lua, or HUB_REDIS_URL)"

local _M = {
    red = nil, -- the moonwire.redis client, once opened
    why = NO_URL,
}


-- Opens the connection to url (it connects in the background); a missing
-- URL leaves incr answering UNAVAILABLE with _M.why.
function _M.open(url)
    _M.red, _M.why = nil, NO_URL
    if type(url) ~= "string" or url == "" then
        return
    end
    local red, err = moonwire.redis.connect(url)
    if not red then
        _M.why = "redis: " .. err
        moonwire.log.error("hub: cannot use app.redis_url: %s", err)
        return
    end
    _M.red = red
end


return _M
