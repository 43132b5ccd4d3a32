-- moonwire: the public facade that applications require. It wraps the strict
-- primitives of moonwire.core (registered by the C server, or loaded as
-- moonwire/core.so in specs) into the documented API; apps never touch
-- moonwire.core directly, so the primitives can change without breaking them.

local errors = require "moonwire.errors"
local version = require "moonwire.version"

local package_loaded = package.loaded
local error = error
local type = type
local ipairs = ipairs
local select = select
local tostring = tostring
local find = string.find
local format = string.format


local _M = {}


-- Looked up at call time, and required on first use: inside the server it
-- is preloaded; under busted it is the real core built as a Lua C module
-- (moonwire/core.so, on LUA_CPATH under `moonwire test`).
local function core()
    local c = package_loaded["moonwire.core"]
    if not c then
        local ok, mod = pcall(require, "moonwire.core")
        if not ok then
            error("moonwire.core is not loaded (run inside the moonwire server, or under "
                  .. "`moonwire test`, which puts moonwire/core.so on LUA_CPATH)", 3)
        end
        c = mod
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


-- Milliseconds since the epoch, from the server's clock: core.now through
-- LuaJIT's FFI (moonwire.core_ffi), for the core loaded now.
local now_core, now_fn

function _M.now()
    local c = package_loaded["moonwire.core"]
    if c == nil or c ~= now_core then
        c = core()
        now_core, now_fn = c, require("moonwire.core_ffi").of(c).now
    end
    return now_fn()
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


-- The rooms manager of the runtime that is dispatching (moonwire.rooms).
-- Required lazily: it needs moonwire.core, which an app spec may install
-- after requiring this module.
local function rooms()
    core()
    local m = (package_loaded["moonwire.rooms"] or require("moonwire.rooms")).current()
    if not m then
        error("moonwire rooms API used before the runtime was initialised", 3)
    end
    return m
end


local function check_msg(msg, fname)
    local t = type(msg)
    if t ~= "table" and t ~= "string" then
        error("bad argument #1 to '" .. fname .. "' (table or string expected, got " .. t .. ")", 3)
    end
end


local function check_opts(opts, fname, n)
    if opts ~= nil and type(opts) ~= "table" then
        error("bad argument #" .. (n or 2) .. " to '" .. fname .. "' (table expected, got "
              .. type(opts) .. ")", 3)
    end
end


-- A handle on room `name` (it need not exist yet). Raises on an invalid name.
function _M.room(name)
    return rooms():room(name, 2)
end


-- Every client, or those opts.filter(client) accepts, except opts.exclude.
-- Encoded once. Returns delivered, dropped or nil, err.
function _M.broadcast(msg, opts)
    check_msg(msg, "broadcast")
    check_opts(opts, "broadcast")
    return rooms():broadcast_all(msg, opts)
end


-- One client by id. Returns true or nil, err ("closed" for an unknown id).
function _M.send(id, msg, opts)
    if type(id) ~= "number" then
        error("bad argument #1 to 'send' (client id expected, got " .. type(id) .. ")", 2)
    end
    local t = type(msg)
    if t ~= "table" and t ~= "string" then
        error("bad argument #2 to 'send' (table or string expected, got " .. t .. ")", 2)
    end
    check_opts(opts, "send", 3)
    local client = rooms():client(id)
    if not client then
        return nil, "closed"
    end
    return client:send(msg, opts)
end


-- Every connection bound to `user` (client:set_user). Encoded once.
-- Returns delivered, dropped (0, 0 for an unknown user) or nil, err.
function _M.send_user(user, msg, opts)
    local t = type(user)
    if t ~= "string" and t ~= "number" then
        error("bad argument #1 to 'send_user' (string or number expected, got " .. t .. ")", 2)
    end
    t = type(msg)
    if t ~= "table" and t ~= "string" then
        error("bad argument #2 to 'send_user' (table or string expected, got " .. t .. ")", 2)
    end
    check_opts(opts, "send_user", 3)
    return rooms():send_user(user, msg, opts)
end


-- Publishes an event on the app's event bus (moonwire.bus,
-- docs/subscribers.md): every matching subscriber's handler gets it in a
-- task of its own. Returns the number of handlers started, or nil, err.
function _M.emit(channel, message)
    if type(channel) ~= "string" or channel == "" then
        error("bad argument #1 to 'emit' (non-empty string expected, got "
              .. (channel == "" and "\"\"" or type(channel)) .. ")", 2)
    end
    core()
    -- package.loaded first: a call to require (a C function) costs an emit
    -- that nobody takes most of its instructions (docs/performance.md).
    local bus = package_loaded["moonwire.bus"] or require("moonwire.bus")
    return bus.current():emit(channel, message)
end


-- The connected client with this id, or nil.
function _M.client(id)
    return rooms():client(id)
end


-- The connected clients bound to `user`, in no particular order.
function _M.user_clients(user)
    local m = rooms()
    local list = {}
    for _, id in ipairs(m:user_ids(user)) do
        local client = m:client(id)
        if client then
            list[#list + 1] = client
        end
    end
    return list
end


-- This node's id when the server runs as one node of several (config
-- `cluster = true`, docs/scaling.md), else nil.
function _M.node()
    local cluster = package_loaded["moonwire.cluster"]
    local cl = cluster and cluster.current()
    return cl and cl.node or nil
end


-- The presence entries of room `name` on every node: with `cluster = true`
-- read from Redis (it waits: call it from a task), else this server's
-- room:presence() (with workers, every worker's, read locally). Returns
-- the list or nil, err.
function _M.presence(name)
    local cluster = package_loaded["moonwire.cluster"]
    local cl = cluster and cluster.current()
    if cl then
        return cl:presence(name)
    end
    return rooms():room(name, 2):presence()
end


-- The names of the rooms that exist, unsorted (a room exists while it has
-- members; with workers, members on any worker, from the hub's copy).
function _M.rooms()
    local names = core().room_names()
    local cluster = package_loaded["moonwire.cluster"]
    local cl = cluster and cluster.current()
    if cl and cl.remote then
        names = cl:room_names(names)
    end
    return names
end


-- Number of rooms that exist (a room exists while it has members; with
-- workers, members on any worker).
function _M.room_count()
    local cluster = package_loaded["moonwire.cluster"]
    local cl = cluster and cluster.current()
    if cl and cl.remote then
        return #cl:room_names(core().room_names())
    end
    return core().room_count()
end


-- The server's own /health document as a table (what GET /health answers
-- when the app does not serve it), to extend in an app's GET /health
-- route. Unchanged members keep their JSON text when sent (moonwire.json).
-- Returns the table, or nil, "not serving".
function _M.health()
    local text, err = core().health()
    if not text then
        return nil, err
    end
    return (require("moonwire.json").decode(text))
end


-- JSON Web Tokens: verify (and HS* sign), the same module as
-- require "moonwire.jwt", loaded on first use (an app without tokens does
-- not carry it). _VERSION is moonwire.core.version (moonwire.version).
setmetatable(_M, { __index = function(t, key)
    if key == "_VERSION" then
        return version.get()
    end
    if key == "jwt" then
        local jwt = require "moonwire.jwt"
        rawset(t, "jwt", jwt)
        return jwt
    end
    -- The event bus: stats(), glob(), and the server API handlers see.
    if key == "bus" then
        local bus = require "moonwire.bus"
        rawset(t, "bus", bus)
        return bus
    end
    -- NATS (moonwire.nats): connect.
    if key == "nats" then
        local nats = require "moonwire.nats"
        rawset(t, "nats", nats)
        return nats
    end
    -- Redis (moonwire.redis): connect, and the null of list replies.
    if key == "redis" then
        local redis = require "moonwire.redis"
        rawset(t, "redis", redis)
        return redis
    end
    -- Shared dicts (moonwire.shared): dict(name), memory every worker sees.
    if key == "shared" then
        local shared = require "moonwire.shared"
        rawset(t, "shared", shared)
        return shared
    end
    -- Subscriber utilities, message schemas, middleware (moonwire.handlers,
    -- moonwire.schema, moonwire.middleware).
    if key == "handlers" or key == "schema" or key == "middleware" then
        local mod = require("moonwire." .. key)
        rawset(t, key, mod)
        return mod
    end
    -- The WebSocket client (moonwire.websocket): connect.
    if key == "websocket" then
        local websocket = require "moonwire.websocket"
        rawset(t, "websocket", websocket)
        return websocket
    end
    -- Waiting (moonwire.sched): sleep, spawn, timer.after / timer.every.
    if key == "sleep" or key == "spawn" or key == "timer" then
        local sched = require "moonwire.sched"
        rawset(t, "sleep", sched.sleep)
        rawset(t, "spawn", sched.spawn)
        rawset(t, "timer", { after = sched.after, every = sched.every })
        return rawget(t, key)
    end
end })


_M.log = {
    debug = logger("debug"),
    info = logger("info"),
    warn = logger("warn"),
    error = logger("error"),
}


return _M
