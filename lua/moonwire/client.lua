-- moonwire.client: the object controllers and hooks receive for one
-- connection. It owns the connection's public fields and its per-client
-- `data` table; the runtime owns the client itself, so both survive a hot
-- reload. The wire protocol is looked up through the runtime's current app on
-- every call, so a reload that replaces APP/protocol.lua applies at once.

local core = require "moonwire.core"

local setmetatable = setmetatable
local type = type
local error = error
local pcall = pcall
local tostring = tostring
local floor = math.floor


local _M = { _VERSION = "0.1.0" }

local mt = { __index = _M }


-- `host` is the runtime's shared state; host.app is the current app.
function _M.new(id, info, host)
    if type(id) ~= "number" then
        error("bad argument #1 to 'new' (number expected, got " .. type(id) .. ")", 2)
    end
    if type(host) ~= "table" then
        error("bad argument #3 to 'new' (table expected, got " .. type(host) .. ")", 2)
    end
    info = info or {}
    return setmetatable({
        id = id,
        remote_addr = info.remote_addr,
        remote_port = info.remote_port,
        request = {
            path = info.path or "/",
            query = info.query or "",
            headers = info.headers or {},
            subprotocol = info.subprotocol,
        },
        data = {},
        _host = host,
        _closed = false,
    }, mt)
end


local function protocol(self)
    return self._host.app.protocol
end


-- Sends a table (through the current protocol's encode) or a raw string
-- (a text frame, or binary with opts.binary). Returns true or nil, err:
-- "closed", "invalid utf-8" (from the core), or "encode failed: ...".
function _M.send(self, msg, opts)
    if self._closed then
        return nil, "closed"
    end
    local payload, is_binary
    local t = type(msg)
    if t == "table" then
        local ok, res, bin = pcall(protocol(self).encode, msg)
        if not ok then
            return nil, "encode failed: " .. tostring(res)
        end
        if type(res) ~= "string" then
            return nil, "encode failed: " .. tostring(bin)
        end
        payload, is_binary = res, bin == true
    elseif t == "string" then
        payload, is_binary = msg, opts ~= nil and opts.binary == true
    else
        error("bad argument #1 to 'send' (table or string expected, got " .. t .. ")", 2)
    end
    return core.send(self.id, payload, is_binary)
end


-- Sends an event { type, action, data, ts } built by the current protocol.
function _M.emit(self, type_, action, data)
    if type(type_) ~= "string" or type(action) ~= "string" then
        error("bad arguments to 'emit' (type and action strings expected)", 2)
    end
    return self:send(protocol(self).event(type_, action, data))
end


local function valid_close_code(code)
    if type(code) ~= "number" or code ~= floor(code) then
        return false
    end
    return (code >= 1000 and code <= 1003) or (code >= 1007 and code <= 1014)
           or (code >= 3000 and code <= 4999)
end


-- Starts the closing handshake. Returns true or nil, "closed".
function _M.close(self, code, reason)
    code = code or 1000
    reason = reason or ""
    if not valid_close_code(code) then
        error("bad argument #1 to 'close' (invalid close code " .. tostring(code) .. ")", 2)
    end
    if type(reason) ~= "string" or #reason > 123 then
        error("bad argument #2 to 'close' (string of at most 123 bytes expected)", 2)
    end
    if self._closed then
        return nil, "closed"
    end
    return core.close(self.id, code, reason)
end


return _M
