-- moonwire.errors: the two kinds of error a Lua handler can raise, and the one
-- place that turns a raised value into something loggable. A recoverable
-- failure (moonwire.fail) carries a client-facing code and message; anything
-- else is a bug, which is reported as "file:line: message" plus a traceback
-- and never shown to the client.

local setmetatable = setmetatable
local getmetatable = getmetatable
local type = type
local tostring = tostring
local find = string.find
local getinfo = debug.getinfo
local traceback = debug.traceback


local _M = require("moonwire.version").module()


local fail_mt = {
    __tostring = function(self)
        return self.code .. ": " .. self.message
    end,
}


-- Raised by moonwire.fail(); kept distinct from plain tables so that an app
-- raising an arbitrary table still counts as an internal error.
function _M.failure(code, message)
    return setmetatable({ code = code, message = message }, fail_mt)
end


function _M.is_failure(value)
    return getmetatable(value) == fail_mt
end


local function has_location(msg)
    return find(msg, "^[^\n]-:%d+: ") ~= nil
end


-- Location of the innermost Lua frame at or above `level`, as "src:line".
-- C frames (error, assert, require) are skipped so that error("x", 0) or a
-- raised table is still blamed on the Lua code that raised it.
local function locate(level)
    while true do
        local info = getinfo(level + 1, "Sl")
        if not info then
            return nil
        end
        if info.what ~= "C" and info.currentline and info.currentline > 0 then
            return info.short_src .. ":" .. info.currentline
        end
        level = level + 1
    end
end


-- Message text of any raised value, always prefixed with "file:line: ".
-- `level` is the stack level of the frame that raised, as seen by the caller.
function _M.message(err, level)
    local msg
    if type(err) == "string" then
        msg = err
    elseif type(err) == "table" and type(err.message) == "string" then
        msg = err.message
    else
        msg = "(error object is a " .. type(err) .. " value: " .. tostring(err) .. ")"
    end
    if has_location(msg) then
        return msg
    end
    local where = locate((level or 1) + 1)
    if where then
        return where .. ": " .. msg
    end
    return msg
end


-- xpcall handler: failures pass through untouched; anything else becomes
-- { message = "file:line: ...", traceback = "..." }.
function _M.capture(err)
    if getmetatable(err) == fail_mt then
        return err
    end
    -- Level 2 is the function that raised (or the C function error/assert).
    local msg = _M.message(err, 2)
    return { message = msg, traceback = traceback(msg, 2) }
end


return _M
