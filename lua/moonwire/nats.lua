-- moonwire.nats: NATS from app code (docs/lua-api.md, "NATS").
--
--     local nats = require "moonwire.nats"   -- or moonwire.nats
--     local nc = assert(nats.connect("nats://127.0.0.1:4222"))
--     nc:subscribe("orders.*", function(msg) ... msg.subject, msg.data ... end)
--     nc:publish("orders.new", { id = 1 })    -- a table goes as JSON
--     local reply, err = nc:request("prices.get", "EURUSD", 500)
--
-- The client is C (src/nats.c: cnats with its socket on the server's loop,
-- its threads marshalled into the loop); this module is the Lua
-- face of its primitives (src/lua/nats_lua.c). A request parks the running
-- task (moonwire.sched), so it works where moonwire.sleep does. Each
-- message a subscription gets runs its function in a task of its own.
-- Connections are shared: every connect with the same URL and options uses
-- one connection. publish and request fail at once with nil, "not
-- connected" while NATS is down; the connection comes back by itself, and
-- subscriptions with it.

local core = require "moonwire.core"
local sched = require "moonwire.sched"
local json = require "moonwire.json"

local type = type
local error = error
local tostring = tostring
local setmetatable = setmetatable
local find = string.find


local _M = require("moonwire.version").module()


local function check_ms(ms, what, fname, level)
    if ms ~= nil and (type(ms) ~= "number" or ms ~= ms or ms < 0 or ms > 86400000) then
        error("bad " .. what .. " to '" .. fname .. "' (milliseconds from 0 to 86400000 "
              .. "expected, got " .. tostring(ms) .. ")", level + 1)
    end
end


local function check_subject(subject, fname, n)
    if type(subject) ~= "string" or subject == "" then
        error("bad argument #" .. n .. " to '" .. fname .. "' (subject string expected, got "
              .. type(subject) .. ")", 3)
    end
end


-- data as bytes: a string as is, a table as JSON, nil as "".
local function payload(data, fname)
    local t = type(data)
    if t == "string" then
        return data
    elseif t == "table" then
        local s, err = json.encode(data)
        if not s then
            error("bad argument #2 to '" .. fname .. "' (" .. tostring(err) .. ")", 3)
        end
        return s
    elseif data == nil then
        return ""
    elseif t == "number" or t == "boolean" then
        return tostring(data)
    end
    error("bad argument #2 to '" .. fname .. "' (string or table expected, got " .. t .. ")", 3)
end


local Conn = {}
local Conn_mt = { __index = Conn }
local Msg = {}
local Msg_mt = { __index = Msg }
local Sub = {}
local Sub_mt = { __index = Sub }

-- The Lua objects of open connections by id: connect(url) twice gives the
-- same object, as it gives the same connection.
local by_id = {}


-- The connection's id, opening it now if connect could not (no server yet:
-- `moonwire check`, or a module loaded before the server started).
local function handle(self)
    local id = self._id
    if id then
        return id
    end
    if self._closed then
        return nil, "closed"
    end
    local err
    id, err = core.nats_open(self.url, self.name, self.user, self.password, self.token,
                             self.timeout)
    if not id then
        return nil, err
    end
    self._id = id
    return id
end


-- While the connection's first attempt is under way (just after connect),
-- a task waits for it to end rather than fail with "not connected"; code
-- that cannot wait goes on (and may get "not connected").
local function settle(id)
    local status, why = core.nats_status(id)
    if status == false and why == "connecting" then
        sched.wait(core.nats_ready, id)
    end
end


-- nc:publish(subject, data[, reply]) -> true | nil, err ("not connected",
-- "invalid subject", "closed", "not serving").
function Conn:publish(subject, data, reply)
    check_subject(subject, "publish", 1)
    local bytes = payload(data, "publish")
    if reply ~= nil and type(reply) ~= "string" then
        error("bad argument #3 to 'publish' (string expected, got " .. type(reply) .. ")", 2)
    end
    local id, err = handle(self)
    if not id then
        return nil, err
    end
    settle(id)
    local ok
    ok, err = core.nats_publish(id, subject, bytes, reply)
    return ok, err
end


local function new_msg(nc, subject, data, reply)
    return setmetatable({ subject = subject, data = data, reply = reply, _nc = nc }, Msg_mt)
end


-- msg:respond(data) -> true | nil, err: publishes data on msg.reply.
function Msg:respond(data)
    if not self.reply then
        return nil, "no reply subject"
    end
    local ok, err = self._nc:publish(self.reply, data)
    return ok, err
end


-- nc:subscribe(subject, fn[, { queue = name }]) -> sub | nil, err: fn(msg)
-- runs in a task of its own for every message on subject (wildcards: *
-- one token, > the rest). It holds across reconnects, until
-- sub:unsubscribe() or a reload (which drops the old code's).
function Conn:subscribe(subject, fn, opts)
    check_subject(subject, "subscribe", 1)
    if type(fn) ~= "function" then
        error("bad argument #2 to 'subscribe' (function expected, got " .. type(fn) .. ")", 2)
    end
    local queue
    if opts ~= nil then
        if type(opts) ~= "table" then
            error("bad argument #3 to 'subscribe' (table expected, got " .. type(opts) .. ")", 2)
        end
        queue = opts.queue
        if queue ~= nil and (type(queue) ~= "string" or queue == "") then
            error("bad option 'queue' to 'subscribe' (string expected)", 2)
        end
    end
    local id, err = handle(self)
    if not id then
        return nil, err
    end
    local sid
    sid, err = core.nats_subscribe(id, subject, queue, function(subj, data, reply)
        fn(new_msg(self, subj, data, reply))
    end)
    if not sid then
        if type(err) == "string" and find(err, "^cannot ") then
            error(err, 2)
        end
        return nil, err
    end
    return setmetatable({ _id = sid, subject = subject, queue = queue }, Sub_mt)
end


-- sub:unsubscribe() -> true | nil, "closed": no message runs fn after it.
function Sub:unsubscribe()
    local ok, err = core.nats_unsubscribe(self._id)
    return ok, err
end


-- nc:request(subject, data, timeout_ms) -> msg | nil, err ("timeout", "no
-- responders", "not connected", "closed"). The task waits for the first
-- reply; timeout_ms defaults to the connect timeout (2000).
function Conn:request(subject, data, timeout)
    check_subject(subject, "request", 1)
    local bytes = payload(data, "request")
    check_ms(timeout, "argument #3", "request", 2)
    local id, err = handle(self)
    if not id then
        return nil, err
    end
    settle(id)
    local subj, rdata, reply = sched.wait(core.nats_request, id, subject, bytes, timeout or 0)
    if subj == nil then
        if type(rdata) == "string" and find(rdata, "^cannot ") then
            error(rdata, 2)
        end
        return nil, rdata
    end
    return new_msg(self, subj, rdata, reply)
end


-- nc:connected() -> whether the connection is up now (and why not).
function Conn:connected()
    local id = self._id
    if not id then
        return false, self._closed and "closed" or "not serving"
    end
    local up, err = core.nats_status(id)
    if up == nil then
        return false, err
    end
    return up, err ~= "" and err or nil
end


-- nc:close(): the connection goes, for every user of it (connect opens a
-- new one); pending requests return nil, "closed".
function Conn:close()
    local id = self._id
    self._closed = true
    if id then
        by_id[id] = nil
        self._id = nil
        core.nats_close(id)
    end
    return true
end


-- connect(url | { url =, name =, user =, password =, token =, timeout = ms })
-- -> nc | nil, err (a bad URL). A server that is down is not an error: the
-- connection comes when it is up (nc:connected() tells).
function _M.connect(opts)
    if type(opts) == "string" then
        opts = { url = opts }
    elseif type(opts) ~= "table" then
        error("bad argument #1 to 'connect' (url or table expected, got " .. type(opts) .. ")", 2)
    end
    if type(opts.url) ~= "string" then
        error("bad argument #1 to 'connect' (url string expected, got " .. type(opts.url) .. ")",
              2)
    end
    for _, k in ipairs({ "name", "user", "password", "token" }) do
        if opts[k] ~= nil and type(opts[k]) ~= "string" then
            error("bad option '" .. k .. "' to 'connect' (string expected, got "
                  .. type(opts[k]) .. ")", 2)
        end
    end
    check_ms(opts.timeout, "option 'timeout'", "connect", 2)
    local nc = setmetatable({
        url = opts.url, name = opts.name, user = opts.user, password = opts.password,
        token = opts.token, timeout = opts.timeout,
    }, Conn_mt)
    local id, err = core.nats_open(nc.url, nc.name, nc.user, nc.password, nc.token, nc.timeout)
    if id then
        if by_id[id] then
            return by_id[id]
        end
        nc._id = id
        by_id[id] = nc
    elseif err ~= "not serving" then
        return nil, err
    end
    return nc
end


-- Drops every subscription of the running app (runtime.reload: the old
-- code's functions must not run any more).
function _M.unsubscribe_all()
    core.nats_unsubscribe_all()
end


return _M
