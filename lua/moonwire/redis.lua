-- moonwire.redis: Redis from app code (docs/lua-api.md, "Redis").
--
--     local redis = require "moonwire.redis"   -- or moonwire.redis
--     local red = assert(redis.connect("redis://127.0.0.1:6379/0"))
--     local n, err = red:incr("visits")        -- the handler waits, the server does not
--
-- The client is C (src/redis.c: hiredis on the server's loop); this module
-- is the Lua face of its primitives (src/lua/redis_lua.c). A call parks
-- the running task until the reply (moonwire.sched), so it works where
-- moonwire.sleep does: handlers, hooks, timers, spawned tasks, on_start.
-- Connections are shared: every connect with the same URL, password, db
-- and connect timeout uses one connection, on which all calls pipeline.
-- Calls fail at once with nil, "not connected" while Redis is down; the
-- connection comes back by itself.

local core = require "moonwire.core"
local sched = require "moonwire.sched"

local type = type
local error = error
local setmetatable = setmetatable
local rawget = rawget
local tostring = tostring
local find = string.find
local upper = string.upper


local _M = require("moonwire.version").module()

-- A nil inside a list reply (MGET of a missing key, a pipeline's nil
-- reply): the NULL light userdata, equal to cjson.null.
_M.null = core.redis_null


local check_ms = sched.check_ms
local raise_misuse = sched.raise_misuse


local Redis = {}
local Redis_mt = {}


-- The handle's id, opening it now if connect could not (no server yet:
-- `moonwire check`, or a module loaded before the server started).
local function handle(self)
    local id = self._id
    if id then
        return id
    end
    -- rawget: an option left unset must not find the command sugar below
    -- (red.password would be the method PASSWORD).
    local err
    id, err = core.redis_open(self.url, rawget(self, "password"), rawget(self, "db"),
                              rawget(self, "connect_timeout"))
    if not id then
        return nil, err
    end
    self._id = id
    return id
end


-- The primitives return nil, message, true for a mistake in the call
-- (a bad argument, a command the shared connection refuses): raised at
-- the app's line.
local function call(self, timeout, ...)
    local id, err = handle(self)
    if not id then
        return nil, err
    end
    local res, raise
    res, err, raise = sched.wait(core.redis_call, id, timeout, ...)
    if res == nil then
        raise_misuse(err, 3, raise)
    end
    return res, err
end


-- red:call(cmd, ...) or red:call({ timeout = ms }, cmd, ...): the reply
-- (nil for a nil reply, a number, a string, a table for a list), or nil
-- and "ERR ..." for a Redis error, or nil and "timeout", "not connected",
-- "connection lost", "closed", "not serving".
function Redis:call(cmd, ...)
    if type(cmd) == "table" then
        local timeout = cmd.timeout
        check_ms(timeout, "option 'timeout'", "call", 2)
        if type((...)) ~= "string" then
            error("bad argument #2 to 'call' (command name expected, got " .. type((...)) .. ")", 2)
        end
        local res, err = call(self, timeout or self.timeout, ...)
        return res, err
    end
    if type(cmd) ~= "string" then
        error("bad argument #1 to 'call' (command name expected, got " .. type(cmd) .. ")", 2)
    end
    -- Not tail calls: raise_misuse counts the frames to the app's.
    local res, err = call(self, self.timeout, cmd, ...)
    return res, err
end


-- red:pipeline(function(p) p:incr("a") p:get("b") end): the commands go to
-- Redis back to back and the task waits once. Returns the list of replies
-- (results.n of them; a nil reply is redis.null, a Redis error is false
-- with its text in results.errors[i]), or nil, err when the pipeline
-- failed as a whole (down, timeout, connection lost). opts.timeout as for
-- call.
function Redis:pipeline(fn, opts)
    if type(fn) ~= "function" then
        error("bad argument #1 to 'pipeline' (function expected, got " .. type(fn) .. ")", 2)
    end
    if opts ~= nil and type(opts) ~= "table" then
        error("bad argument #2 to 'pipeline' (table expected, got " .. type(opts) .. ")", 2)
    end
    local timeout = opts and opts.timeout
    check_ms(timeout, "option 'timeout'", "pipeline", 2)
    local cmds = {}
    local p = setmetatable({
        call = function(_, ...)
            cmds[#cmds + 1] = { ... }
        end,
    }, { __index = function(t, key)
        if type(key) ~= "string" then
            return nil
        end
        local name = upper(key)
        local f = function(_, ...)
            cmds[#cmds + 1] = { name, ... }
        end
        t[key] = f
        return f
    end })
    fn(p)
    if #cmds == 0 then
        return { n = 0 }
    end
    local id, err = handle(self)
    if not id then
        return nil, err
    end
    local res, raise
    res, err, raise = sched.wait(core.redis_pipeline, id, timeout or self.timeout, cmds)
    if res == nil then
        raise_misuse(err, 2, raise)
    end
    return res, err
end


local Sub = {}
Sub.__index = Sub


-- Ends the subscription: fn is not called again. true when it was still
-- on, false when it had already ended.
function Sub:unsubscribe()
    if self._done then
        return false
    end
    self._done = true
    return core.redis_unsubscribe(self._id) == true
end


-- Whether Redis has confirmed the subscription (messages published from
-- then on arrive); false while Redis is down or before it answered.
function Sub:active()
    return not self._done and core.redis_sub_active(self._id)
end


local function subscribe(self, name, fn, pattern, fname)
    if type(name) ~= "string" or name == "" then
        error("bad argument #1 to '" .. fname .. "' (channel name expected, got "
              .. type(name) .. ")", 3)
    end
    if type(fn) ~= "function" then
        error("bad argument #2 to '" .. fname .. "' (function expected, got " .. type(fn) .. ")",
              3)
    end
    local id, err = handle(self)
    if not id then
        return nil, err
    end
    local sid
    sid, err = core.redis_subscribe(id, name, pattern, fn)
    if not sid then
        raise_misuse(err, 3)
        return nil, err
    end
    return setmetatable({ _id = sid, channel = name, pattern = pattern or nil }, Sub)
end


-- red:subscribe(channel, fn): fn(message, channel) runs in a task of its
-- own for every message, until sub:unsubscribe() or a reload (subscribe
-- in on_start, which runs again for the new code). Sent again after every
-- reconnect. Returns the subscription at once (sub:active() once Redis
-- confirmed it), or nil, err.
function Redis:subscribe(channel, fn)
    local sub, err = subscribe(self, channel, fn, false, "subscribe")
    return sub, err
end


-- red:psubscribe(pattern, fn): as subscribe, for every channel matching
-- the glob pattern; fn(message, channel, pattern).
function Redis:psubscribe(pattern, fn)
    local sub, err = subscribe(self, pattern, fn, true, "psubscribe")
    return sub, err
end


-- true when the connection is up; false and why it is down otherwise.
function Redis:connected()
    local id, err = handle(self)
    if not id then
        return false, err
    end
    local up
    up, err = core.redis_status(id)
    if up == nil then
        return false, err
    end
    if up then
        return true
    end
    return false, err ~= "" and err or "connecting"
end


-- Method sugar: red:get(k) is red:call("GET", k), red:hgetall(k) is
-- red:call("HGETALL", k), for any command name. A client's methods are
-- looked up in the table Redis (a plain __index, which LuaJIT compiles on
-- every call); a name it lacks is made once, by Redis's own __index, and
-- kept there.
Redis_mt.__index = Redis
local FIELDS = { url = true, password = true, db = true, timeout = true, connect_timeout = true }

setmetatable(Redis, { __index = function(_, key)
    -- a client's own options, when unset, read as nil (no such commands)
    if type(key) ~= "string" or FIELDS[key] or not find(key, "^%a[%w_]*$") then
        return nil
    end
    local name = upper(key)
    local m = function(self, ...)
        local res, err = call(self, self.timeout, name, ...)
        return res, err
    end
    Redis[key] = m
    return m
end })


-- redis.connect(url) or redis.connect({ url =, password =, db =,
-- timeout =, connect_timeout = }): a client on the shared connection of
-- that URL (redis://[[user]:password@]host[:port][/db] or
-- unix:/path[?db=N]). timeout: the default of its calls in ms (5000);
-- connect_timeout: for connecting and AUTH/SELECT (2000). Returns it, or
-- nil, err for a bad URL; connecting goes on in the background.
function _M.connect(opts)
    if type(opts) == "string" then
        opts = { url = opts }
    elseif type(opts) ~= "table" then
        error("bad argument #1 to 'connect' (url or table expected, got " .. type(opts) .. ")", 2)
    end
    local url, password, db = opts.url, opts.password, opts.db
    if type(url) ~= "string" then
        error("bad argument #1 to 'connect' (url string expected, got " .. type(url) .. ")", 2)
    end
    if password ~= nil and type(password) ~= "string" then
        error("bad option 'password' to 'connect' (string expected, got " .. type(password)
              .. ")", 2)
    end
    if db ~= nil and (type(db) ~= "number" or db < 0 or db % 1 ~= 0) then
        error("bad option 'db' to 'connect' (a whole number from 0 expected, got "
              .. tostring(db) .. ")", 2)
    end
    check_ms(opts.timeout, "option 'timeout'", "connect", 2)
    check_ms(opts.connect_timeout, "option 'connect_timeout'", "connect", 2)
    local ok, err = core.redis_check(url)
    if not ok then
        return nil, err
    end
    local red = setmetatable({
        url = url,
        password = password,
        db = db,
        timeout = opts.timeout or 0,
        connect_timeout = opts.connect_timeout,
    }, Redis_mt)
    local id
    id, err = core.redis_open(url, password, db, opts.connect_timeout)
    if id then
        red._id = id
    elseif err ~= "not serving" then
        return nil, err
    end
    return red
end


-- Every subscription of the app: the runtime calls this when a reload
-- replaces the code their functions belong to.
function _M.unsubscribe_all()
    core.redis_unsubscribe_all()
end


return _M
