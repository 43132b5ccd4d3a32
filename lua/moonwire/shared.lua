-- moonwire.shared: shared dicts, memory every worker of the server sees
-- (OpenResty's ngx.shared.DICT; docs/lua-api.md "Shared dicts").
--
--     -- config.lua: shared_dicts = { "cache:10m" }
--     local cache = moonwire.shared.dict("cache")
--     cache:set("greeting", "hello", 60000)   -- expires in a minute
--     cache:incr("hits", 1, 0)                 -- a counter across workers
--
-- The dicts are declared in config.lua and mapped once at start-up, before
-- any worker runs; a worker reaches them only through these handles, never
-- through Lua globals (each worker has its own Lua state). The methods are
-- C (src/lua/shdict_lua.c) and take the dict's lock for each call.

local _M = require("moonwire.version").module()

-- The longest key, in bytes.
_M.key_max = 1024

-- dict(name) -> the dict declared as "name:size" in shared_dicts | nil,
-- "no such dict". Handles are cheap; the same name gives the same dict.
function _M.dict(name)
    if type(name) ~= "string" then
        error("moonwire.shared.dict: name must be a string", 2)
    end
    local core = require "moonwire.core"
    if type(core.shdict) ~= "function" then
        return nil, "no such dict"   -- an in-memory core without shared dicts
    end
    return core.shdict(name)
end

return _M
