-- moonwire: the public facade that applications require. It wraps the strict
-- primitives of moonwire.core (registered by the C server, or by
-- moonwire.testing in specs) into the documented API; apps never touch
-- moonwire.core directly, so the primitives can change without breaking them.

local errors = require "moonwire.errors"

local package_loaded = package.loaded
local error = error
local type = type
local select = select
local tostring = tostring
local find = string.find
local format = string.format


local _M = { _VERSION = "0.1.0" }


-- Looked up at call time: an app spec may require "moonwire" before
-- moonwire.testing has installed its in-memory core.
local function core()
    local c = package_loaded["moonwire.core"]
    if not c then
        error("moonwire.core is not loaded (run inside the moonwire server, "
              .. "or require \"moonwire.testing\" first)", 3)
    end
    return c
end


-- Raises a recoverable error: the runtime catches it and sends the client an
-- error envelope { code = code, message = message }. Nothing is logged.
function _M.fail(code, message)
    if type(code) ~= "string" or not find(code, "^[A-Z][A-Z0-9_]*$") then
        error("bad argument #1 to 'fail' (error code like \"INVALID_MESSAGE\" expected, got "
              .. tostring(code) .. ")", 2)
    end
    if message == nil then
        message = code:lower():gsub("_", " ")
    elseif type(message) ~= "string" then
        error("bad argument #2 to 'fail' (string expected, got " .. type(message) .. ")", 2)
    end
    error(errors.failure(code, message), 2)
end


-- Milliseconds since the epoch, from the server's clock.
function _M.now()
    return core().now()
end


local function logger(level)
    return function(fmt, ...)
        if type(fmt) ~= "string" then
            error("bad argument #1 to '" .. level .. "' (string expected, got "
                  .. type(fmt) .. ")", 2)
        end
        local msg = fmt
        if select("#", ...) > 0 then
            msg = format(fmt, ...)
        end
        core().log(level, msg)
    end
end


_M.log = {
    debug = logger("debug"),
    info = logger("info"),
    warn = logger("warn"),
    error = logger("error"),
}


return _M
