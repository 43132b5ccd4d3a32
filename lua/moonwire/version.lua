-- moonwire.version: where every runtime module's _VERSION comes from.
--
-- moonwire has one version, the CMake project version (CMakeLists.txt). The
-- C code is compiled with it as MW_VERSION: `moonwire --version` prints it,
-- the server publishes it to Lua as moonwire.core.version, and the compiled
-- modules specs load (moonwire/core.so, moonwire/core/jwt.so) carry it too.
--
-- A module's _VERSION is looked up when it is read, not when the module is
-- loaded: an app spec may require "moonwire" before anything has loaded
-- moonwire.core, and a spec that never reads a version loads no C module
-- for it.

local package_loaded = package.loaded
local setmetatable = setmetatable
local require = require
local pcall = pcall
local type = type


local _M = {}


-- The version compiled into the C module on LUA_CPATH, or nil without it.
function _M.compiled()
    local ok, mod = pcall(require, "moonwire.core.jwt")
    if ok and type(mod) == "table" then
        return mod.version
    end
    return nil
end


-- The version: moonwire.core's when a core is loaded, else the compiled
-- module's (nil when there is neither).
function _M.get()
    local core = package_loaded["moonwire.core"]
    if core then
        return core.version
    end
    return _M.compiled()
end


local module_mt = { __index = function(_, key)
    if key == "_VERSION" then
        return _M.get()
    end
end }


-- Gives a module table (a new one when `t` is nil) its _VERSION; returns it.
function _M.module(t)
    return setmetatable(t or {}, module_mt)
end


return _M
