-- The hub's hooks: only to open the Redis connection of the incr message
-- (lib/counter.lua) from app.redis_url. Nothing runs per message here.

local counter = require "lib.counter"


local _M = {}


function _M.on_start(app)
    counter.open(app.config.redis_url)
end


-- A reload loads lib/counter.lua afresh: open it again (the same shared
-- connection).
function _M.on_reload(_, app)
    counter.open(app.config.redis_url)
end


return _M
