-- moonwire.client: the object controllers and hooks receive for one
-- connection. It owns the connection's public fields and its per-client
-- `data` table; the runtime owns the client itself, so both survive a hot
-- reload. The wire protocol is looked up through the runtime's current app on
-- every call, so a reload that replaces APP/protocol.lua applies at once.

local core = require "moonwire.core"
local fast = require("moonwire.core_ffi").of(core)
local auth = require "moonwire.auth"
local builtin_encode = require("moonwire.protocol").encode
local null = require("cjson.safe").null

local setmetatable = setmetatable
local getmetatable = getmetatable
local rawget = rawget
local rawset = rawset
local type = type
local tonumber = tonumber
local ipairs = ipairs
local error = error
local pcall = pcall
local tostring = tostring


local _M = require("moonwire.version").module()

-- `client.user` is stored as `_user` so that every assignment, including
-- `client.user = x`, goes through set_user and keeps the runtime's
-- user -> connections index right. `client.data` and `client.public` are
-- created on first use: most clients of a large room never touch them, and
-- two empty tables per idle connection are a measurable share of its memory.
-- One metatable per runtime (host): it answers `client._host` itself, so the
-- shared host is not a field of every client and an idle client's table
-- stays in the smallest hash size class (id, remote_addr, remote_port,
-- request).
local function newindex(self, key, value)
    if key == "user" then
        return _M.set_user(self, value)
    end
    rawset(self, key, value)
end


local function metatable_for(host)
    local mt = host._client_mt
    if mt then
        return mt
    end
    mt = {
        host = host, -- for the methods below: no __index call per lookup
        __index = function(self, key)
            local method = rawget(_M, key) -- not _M._VERSION's lookup
            if method ~= nil then
                return method
            end
            if key == "_host" then
                return host
            end
            if key == "user" then
                return rawget(self, "_user")
            end
            if key == "data" or key == "public" then
                local t = {}
                rawset(self, key, t)
                return t
            end
            return nil
        end,
        __newindex = newindex,
    }
    host._client_mt = mt
    return mt
end


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
        -- _closed is set when the client is gone; absent (nil) until then,
        -- which keeps an idle client's table one size class smaller.
    }, metatable_for(host))
end


-- The current protocol: through the metatable's `host`, which reads as a
-- plain field where self._host would call the __index function.
local function protocol(self)
    return getmetatable(self).host.app.protocol
end


-- Sends a table (through the current protocol's encode) or a raw string
-- (a text frame, or binary with opts.binary). Returns true or nil, err:
-- "closed", "invalid utf-8" (from the core), or "encode failed: ...".
-- Only an app protocol's encode runs under pcall (it may raise, and the
-- caller must get "encode failed: ..."); the built-in one returns nil, err
-- and is called directly, which keeps this method compilable by LuaJIT
-- into the caller's trace (docs/performance.md).
function _M.send(self, msg, opts)
    if rawget(self, "_closed") then
        return nil, "closed"
    end
    local payload, is_binary
    local t = type(msg)
    if t == "table" then
        local encode = protocol(self).encode
        local res, bin
        if encode == builtin_encode then
            res, bin = encode(msg)
        else
            local ok
            ok, res, bin = pcall(encode, msg)
            if not ok then
                return nil, "encode failed: " .. tostring(res)
            end
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
    return fast.send(self.id, payload, is_binary)
end


-- Sends an event { type, action, data, ts } built by the current protocol.
function _M.emit(self, type_, action, data)
    if type(type_) ~= "string" or type(action) ~= "string" then
        error("bad arguments to 'emit' (type and action strings expected)", 2)
    end
    return self:send(protocol(self).event(type_, action, data))
end


-- Starts the closing handshake. Returns true or nil, "closed".
function _M.close(self, code, reason)
    code = code or 1000
    reason = reason or ""
    if self._closed then
        return nil, "closed"
    end
    -- The rule on codes and reasons is C's (ws.h); a misuse is reported at
    -- the caller, numbered as this method's arguments.
    local ok, res, err = pcall(core.close, self.id, code, reason)
    if not ok then
        local msg = tostring(res):gsub("^.-bad argument #(%d)", function(n)
            return "bad argument #" .. (tonumber(n) - 1)
        end)
        error(msg, 2)
    end
    return res, err
end


local function rooms(self)
    local m = self._host.rooms
    if not m then
        error("this client has no rooms manager (create clients through the runtime)", 3)
    end
    return m
end


-- Joins a room. Returns the room's member count, or nil, code, message:
-- INVALID_ROOM (bad name, "too many rooms"), ROOM_FULL, CLOSED.
function _M.join(self, room)
    return rooms(self):join(self, room)
end


-- Leaves a room. Returns the count left in it, or nil, code, message:
-- INVALID_ROOM ("not joined", bad name), CLOSED.
function _M.leave(self, room)
    return rooms(self):leave(self, room)
end


-- The client's rooms, in join order ({} once it is gone).
function _M.rooms(self)
    return core.rooms(self.id) or {}
end


function _M.in_room(self, room)
    if type(room) ~= "string" then
        return false
    end
    for _, name in ipairs(core.rooms(self.id) or {}) do
        if name == room then
            return true
        end
    end
    return false
end


-- Binds the connection to a user id (string or number), or unbinds it (nil).
function _M.set_user(self, user)
    local t = type(user)
    if t ~= "nil" and t ~= "string" and t ~= "number" then
        error("bad argument #1 to 'set_user' (string, number or nil expected, got " .. t .. ")", 2)
    end
    if t == "string" and user == "" then
        error("bad argument #1 to 'set_user' (empty user id)", 2)
    end
    local m = self._host.rooms
    if m and not self._closed then
        m:bind_user(self, user)
    end
    rawset(self, "_user", user)
    -- with workers, the hub's record of this client (once runtime.open
    -- made it) carries its user
    local cl = m and m._cluster
    if cl and not self._closed and rawget(self, "_hub_up") then
        cl:client_up(self)
    end
    return true
end


-- Asks the app's authorize hook whether this client may do `action` on
-- `resource`: the one policy check the system controller also makes before
-- join, publish and broadcast (moonwire.auth.authorize). Returns true, or
-- nil and { code = "AUTHORIZATION_FAILED", message = ... }, which an action
-- can return as it is.
function _M.authorize(self, action, resource)
    if type(action) ~= "string" or action == "" then
        error("bad argument #1 to 'authorize' (non-empty string expected, got "
              .. (action == "" and "empty string" or type(action)) .. ")", 2)
    end
    return auth.authorize(self._host.app, self, action, resource)
end


-- The user as events carry it: the id, or JSON null when unbound (so the
-- key is on the wire either way).
function _M.user_or_null(self)
    local user = rawget(self, "_user")
    if user == nil then
        return null
    end
    return user
end


-- Opts this client in (default) or out of duplicate suppression.
function _M.dedupe(self, enabled)
    if enabled == nil then
        enabled = true
    elseif type(enabled) ~= "boolean" then
        error("bad argument #1 to 'dedupe' (boolean expected, got " .. type(enabled) .. ")", 2)
    end
    return core.dedupe(self.id, enabled)
end


-- { buffered = bytes, dropped = n } or nil, "closed".
function _M.stats(self)
    return core.client_stats(self.id)
end


return _M
