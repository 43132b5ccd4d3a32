-- moonwire.errors: the two kinds of error a Lua handler can raise, and the one
-- place that turns a raised value into something loggable. A recoverable
-- failure (moonwire.fail) carries a client-facing code and message; anything
-- else is a bug, which is reported as "file:line: message" plus a traceback
-- and never shown to the client.

local setmetatable = setmetatable
local getmetatable = getmetatable
local rawget = rawget
local pcall = pcall
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


-- Location of the innermost Lua frame of co, a task that raised (its stack
-- is kept: Lua does not unwind a coroutine that failed). nil when that
-- frame has no current line: LuaJIT keeps none for the frame where the VM
-- itself raised ("not enough memory"), and blaming its caller would
-- mislead.
local function locate_in(co)
    local level = 0
    while true do
        local info = getinfo(co, level, "Sl")
        if not info then
            return nil
        end
        if info.what ~= "C" then
            if info.currentline and info.currentline > 0 then
                return info.short_src .. ":" .. info.currentline
            end
            return nil
        end
        level = level + 1
    end
end


-- What capture makes of err, for an error that ended the task co (the
-- C core resumes tasks without a message handler; the traceback is read
-- from the failed coroutine afterwards).
function _M.capture_thread(co, err)
    if getmetatable(err) == fail_mt then
        return err
    end
    local msg
    if type(err) == "string" then
        msg = err
    elseif type(err) == "table" and type(rawget(err, "message")) == "string" then
        msg = err.message
    else
        -- tostring runs the value's __tostring, which may itself raise.
        local ok, text = pcall(tostring, err)
        msg = "(error object is a " .. type(err) .. " value"
              .. (ok and type(text) == "string" and ": " .. text or "") .. ")"
    end
    local unlocated
    if not has_location(msg) then
        local where = locate_in(co)
        if where then
            msg = where .. ": " .. msg
        else
            unlocated = true
        end
    end
    return { message = msg, traceback = traceback(co, msg, 0), unlocated = unlocated }
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
