-- moonwire.websocket: a WebSocket client for app code (docs/lua-api.md,
-- "WebSocket client").
--
--     local websocket = require "moonwire.websocket"   -- or moonwire.websocket
--     local ws, err = websocket.connect("wss://feed.example.com/live", { timeout = 5000 })
--     ws:send({ type = "feed", action = "subscribe", data = { topic = "prices" } })
--     local msg, kind = ws:receive(1000)               -- the task waits, the server does not
--
-- The client is C (src/wsclient.c: libuv, OpenSSL, wslay in client mode);
-- this module is the Lua face of its primitives (src/lua/wsclient_lua.c).
-- connect, receive and close park the running task (moonwire.sched), so
-- they work where moonwire.sleep does: handlers, hooks, timers, spawned
-- tasks, on_start. With `controllers`, a task of its own receives and
-- routes {type, action, data} messages as the server routes its clients'.

local core = require "moonwire.core"
local sched = require "moonwire.sched"

local type = type
local error = error
local pairs = pairs
local ipairs = ipairs
local pcall = pcall
local tostring = tostring
local setmetatable = setmetatable
local concat = table.concat
local find = string.find


local _M = require("moonwire.version").module()


local function log(level, fmt, ...)
    return require("moonwire").log[level](fmt, ...)
end


local raise_misuse = sched.raise_misuse


local WebSocket = {}
WebSocket.__index = WebSocket


-- Refreshes the fields an app reads (state, close_code, close_reason,
-- protocol) from the C side.
local function sync(self)
    local state, code, reason, protocol = core.wsc_info(self._h)
    self.state = state
    if code then
        self.close_code, self.close_reason = code, reason
    end
    if protocol and protocol ~= "" then
        self.protocol = protocol
    end
    return state
end


-- ws:send(msg [, { binary = true }]): a string goes as one text message
-- (binary with the option), a table as its JSON (moonwire.json). true, or
-- nil and "closed" / "output buffer full" (16 MiB unsent) / "out of memory".
function WebSocket:send(msg, opts)
    local t = type(msg)
    if t == "table" then
        msg = require("moonwire.json").encode(msg)
    elseif t ~= "string" then
        error("bad argument #1 to 'send' (string or table expected, got " .. t .. ")", 2)
    end
    if opts ~= nil and type(opts) ~= "table" then
        error("bad argument #2 to 'send' (table expected, got " .. type(opts) .. ")", 2)
    end
    local ok, err = core.wsc_send(self._h, msg, opts and opts.binary or false)
    if not ok then
        sync(self)
    end
    return ok, err
end


-- ws:receive([timeout_ms]): the next message and its kind ("text" or
-- "binary"), oldest first; or nil, "timeout" (nothing within timeout_ms;
-- none or 0: wait as long as it takes), or nil, "closed" once the
-- connection is closed and nothing is left queued (ws.close_code and
-- ws.close_reason then say how it ended).
function WebSocket:receive(timeout)
    sched.check_ms(timeout, "argument #1", "receive", 2)
    local msg, kind, raise = sched.wait(core.wsc_receive, self._h, timeout or 0)
    if msg == nil then
        raise_misuse(kind, 2, raise)
        sync(self)
    end
    return msg, kind
end


-- ws:close([code [, reason]]): sends a close frame (1000 and "" by
-- default), drops what is still queued, and waits for the peer's close
-- (up to opts.close_timeout). Returns true, also when already closed.
function WebSocket:close(code, reason)
    if code ~= nil and type(code) ~= "number" then
        error("bad argument #1 to 'close' (close code expected, got " .. type(code) .. ")", 2)
    end
    if reason ~= nil and type(reason) ~= "string" then
        error("bad argument #2 to 'close' (string expected, got " .. type(reason) .. ")", 2)
    end
    local ok, err, raise = sched.wait(core.wsc_close, self._h, code, reason)
    if ok == nil and raise then
        error(err, 2)
    end
    sync(self)
    return true
end


-- ws:is_open(): true while messages can be sent (not closing or closed).
function WebSocket:is_open()
    return sync(self) == "open"
end


-- ws:queued(): how many received messages wait for receive().
function WebSocket:queued()
    local _, _, _, _, n = core.wsc_info(self._h)
    return n or 0
end


-- ws:abort(): drops the connection now, without a close handshake.
function WebSocket:abort()
    core.wsc_abort(self._h)
    sync(self)
end


-- The route of a {type, action, data} message: controllers[type][action].
local function route(ws, controllers, text)
    local msg, err = require("moonwire.json").decode(text)
    if type(msg) ~= "table" then
        log("warn", "websocket %s: a message that is not a JSON object was ignored (%s)",
            ws.url, tostring(err or "not an object"))
        return
    end
    local mtype, action = msg.type, msg.action
    local controller = type(mtype) == "string" and controllers[mtype]
    local handler = type(controller) == "table" and type(action) == "string"
                    and controller[action]
    if type(handler) ~= "function" then
        log("warn", "websocket %s: no controller action for type %s, action %s",
            ws.url, tostring(mtype), tostring(action))
        return
    end
    local ok, herr = pcall(handler, ws, msg.data, msg)
    if not ok then
        log("error", "websocket %s: %s.%s failed: %s", ws.url, mtype, action, tostring(herr))
    end
end


-- The receive loop of a connection opened with `controllers`: one task,
-- so one message is handled at a time, in order (a handler that waits
-- holds the next ones back; past max_queue the server is pushed back on).
local function run_controllers(ws, controllers, on_close)
    while true do
        local msg, kind = ws:receive()
        if msg == nil then
            break
        end
        if kind == "text" then
            route(ws, controllers, msg)
        else
            log("warn", "websocket %s: a binary message was ignored (controllers route text)",
                ws.url)
        end
    end
    if on_close then
        local ok, err = pcall(on_close, ws, ws.close_code, ws.close_reason)
        if not ok then
            log("error", "websocket %s: on_close failed: %s", ws.url, tostring(err))
        end
    end
end


local function check_opts(opts)
    if opts == nil then
        return {}
    end
    if type(opts) ~= "table" then
        error("bad argument #2 to 'connect' (table expected, got " .. type(opts) .. ")", 3)
    end
    local function bad(name, what)
        error("bad option '" .. name .. "' to 'connect' (" .. what .. ", got "
              .. tostring(opts[name]) .. ")", 4)
    end
    for _, name in ipairs { "timeout", "close_timeout" } do
        local v = opts[name]
        if v ~= nil and (type(v) ~= "number" or v ~= v or v < 1 or v > 86400000) then
            bad(name, "milliseconds from 1 to 86400000 expected")
        end
    end
    for _, name in ipairs { "max_message_size", "max_queue", "max_queue_bytes" } do
        local v = opts[name]
        if v ~= nil and (type(v) ~= "number" or v < 1 or v > 1073741824 or v % 1 ~= 0) then
            bad(name, "a whole number from 1 to 1073741824 expected")
        end
    end
    local o = {
        timeout = opts.timeout,
        close_timeout = opts.close_timeout,
        max_message_size = opts.max_message_size,
        max_queue = opts.max_queue,
        max_queue_bytes = opts.max_queue_bytes,
    }
    local protocols = opts.protocols
    if type(protocols) == "string" then
        o.protocols = protocols
    elseif type(protocols) == "table" then
        for _, p in ipairs(protocols) do
            if type(p) ~= "string" or not find(p, "^[!#$%%&'*+%-.^_`|~%w]+$") then
                bad("protocols", "a list of subprotocol tokens expected")
            end
        end
        o.protocols = #protocols > 0 and concat(protocols, ", ") or nil
    elseif protocols ~= nil then
        bad("protocols", "a string or a list of strings expected")
    end
    if opts.headers ~= nil then
        if type(opts.headers) ~= "table" then
            bad("headers", "a table of name = value expected")
        end
        local headers = {}
        for k, v in pairs(opts.headers) do
            if type(k) ~= "string" or (type(v) ~= "string" and type(v) ~= "number") then
                bad("headers", "name = value strings expected")
            end
            headers[k] = tostring(v)
        end
        o.headers = headers
    end
    local tls = opts.tls
    if tls ~= nil then
        if type(tls) ~= "table" then
            bad("tls", "a table { verify = true|false, ca_file = path } expected")
        end
        if tls.verify ~= nil and type(tls.verify) ~= "boolean" then
            error("bad option 'tls.verify' to 'connect' (boolean expected)", 3)
        end
        if tls.ca_file ~= nil and type(tls.ca_file) ~= "string" then
            error("bad option 'tls.ca_file' to 'connect' (a file path expected)", 3)
        end
        o.tls_verify = tls.verify ~= false
        o.ca_file = tls.ca_file
    end
    local controllers = opts.controllers
    if controllers ~= nil then
        if type(controllers) ~= "table" then
            bad("controllers", "a table { type = { action = function } } expected")
        end
        for name, c in pairs(controllers) do
            if type(name) ~= "string" or type(c) ~= "table" then
                bad("controllers", "a table { type = { action = function } } expected")
            end
        end
    end
    if opts.on_close ~= nil and type(opts.on_close) ~= "function" then
        bad("on_close", "a function expected")
    end
    return o
end


-- websocket.connect(url [, opts]): opens a connection to a ws:// or wss://
-- URL and returns it once the server accepted the upgrade; or nil and
-- why ("timeout", "connect to HOST:PORT: connection refused", "handshake
-- refused: ...", "TLS: ...", "not serving"). The calling task waits.
-- opts (docs/lua-api.md): timeout, close_timeout, headers, protocols,
-- max_message_size, max_queue, max_queue_bytes, tls = { verify, ca_file },
-- controllers, on_close.
function _M.connect(url, opts)
    if type(url) ~= "string" then
        error("bad argument #1 to 'connect' (URL string expected, got " .. type(url) .. ")", 2)
    end
    local o = check_opts(opts)
    local h, err, raise = sched.wait(core.wsc_connect, url, o)
    if h == nil then
        raise_misuse(err, 2, raise)
        return nil, err
    end
    local ws = setmetatable({ url = url, _h = h }, WebSocket)
    sync(ws)
    if opts and opts.controllers then
        ws.controllers = opts.controllers
        local started, serr = sched.spawn(run_controllers, ws, opts.controllers, opts.on_close)
        if not started then
            core.wsc_abort(h)
            return nil, serr
        end
    end
    return ws
end


return _M
