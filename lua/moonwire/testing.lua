-- moonwire.testing: runs an app under plain busted on the real C core.
-- load_app() starts a server from moonwire/core.so (core.test_server: its
-- own loop, a virtual clock, the app's config from the C descriptors)
-- running moonwire.runtime in the busted state; connect() opens a real
-- WebSocket client on a socketpair. Rooms, fan-out, backpressure, rate
-- limits, UTF-8 and close codes are the server's own code: nothing of the
-- core is re-implemented here. App specs use only this module and the facade.

local core = require "moonwire.core"
local cjson = require "cjson.safe"

local setmetatable = setmetatable
local type = type
local ipairs = ipairs
local pairs = pairs
local tostring = tostring
local assert = assert
local collectgarbage = collectgarbage
local concat = table.concat
local sort = table.sort
local gsub = string.gsub
local format = string.format
local byte = string.byte


local _M = require("moonwire.version").module()

_M.null = cjson.null


-- A harness holds a loop and sockets until it is collected. Specs make one
-- per test, and a collection may not come before the process runs out of
-- files: every so many harnesses, one is forced.
local COLLECT_EVERY = 16
local made = 0


local function decode(frame)
    if frame.binary then
        return frame.payload
    end
    local value = cjson.decode(frame.payload)
    if value == nil then
        return frame.payload
    end
    return value
end


local conn = {}
-- id and client are set at connect; a client whose upgrade the app
-- decided later (an authenticate hook that waited) has them looked up
-- when read, once it is open.
local conn_mt = { __index = function(self, key)
    if key == "id" then
        return self._c:id()
    elseif key == "client" then
        local id = self._c:id()
        return id and self._runtime:client(id)
    end
    return conn[key]
end }


-- Every frame the server sent to this client, once the loop is idle: the
-- data frames as { payload =, binary = }, or with opts.control every frame
-- as the driver reports it ({ type = "text"|"binary"|"ping"|"pong"|"close",
-- payload =, binary = }; a close frame has code and reason instead).
function conn.frames(self, opts)
    self._server:run()
    local list = {}
    for _, frame in ipairs(self._c:frames()) do
        if opts and opts.control then
            list[#list + 1] = frame
        elseif frame.type == "text" or frame.type == "binary" then
            list[#list + 1] = { payload = frame.payload, binary = frame.binary }
        end
    end
    return list
end


-- Every message sent to this client, JSON text decoded (other frames raw).
function conn.sent(self)
    local list = {}
    for i, frame in ipairs(self:frames()) do
        list[i] = decode(frame)
    end
    return list
end


function conn.last(self)
    local frames = self:frames()
    local frame = frames[#frames]
    return frame and decode(frame) or nil
end


-- Sends a raw message as a masked frame and runs the loop until idle;
-- returns what was sent to this client meanwhile (decoded like sent()),
-- or {}, "closed" when the connection is gone.
function conn.send(self, payload, is_binary)
    local before = #self:frames()
    local ok, err = self._c:send(payload, is_binary == true)
    if not ok then
        return {}, err
    end
    local list = {}
    local frames = self:frames()
    for i = before + 1, #frames do
        list[#list + 1] = decode(frames[i])
    end
    return list
end


-- Sends { type, action, data } without an id; returns what was sent back.
function conn.message(self, type_, action, data)
    local payload = assert(cjson.encode({ type = type_, action = action, data = data }))
    return self:send(payload, false)
end


-- Sends { type, action, data, id } with a fresh id and returns the reply
-- or error envelope carrying that id, or nil, "no reply".
function conn.request(self, type_, action, data)
    self._last_request = self._last_request + 1
    local id = "req-" .. self._last_request
    local payload = assert(cjson.encode({ type = type_, action = action, data = data, id = id }))
    for _, msg in ipairs(self:send(payload, false)) do
        if type(msg) == "table" and msg.id == id then
            return msg
        end
    end
    return nil, "no reply"
end


-- The decoded message carrying `id` (a reply or an error envelope), waited
-- for in real time up to `ms` (default 5000) as app:wait does: for
-- handlers that wait on real I/O (Redis, NATS, a WebSocket client), whose
-- replies conn:request cannot see at once. Returns it, or nil, "no reply".
function conn.wait_reply(self, id, ms)
    local found
    self._server:wait(function()
        for _, msg in ipairs(self:sent()) do
            if type(msg) == "table" and msg.id == id then
                found = msg
                return true
            end
        end
        return false
    end, ms or 5000)
    if not found then
        return nil, "no reply"
    end
    return found
end


-- Events sent to this client (decoded messages without an `id`, so not
-- replies), optionally only those of one `type` (and `action`).
function conn.events(self, type_, action)
    local list = {}
    for _, msg in ipairs(self:sent()) do
        if type(msg) == "table" and msg.id == nil and (type_ == nil or msg.type == type_)
           and (action == nil or msg.action == action)
        then
            list[#list + 1] = msg
        end
    end
    return list
end


-- The client ends the connection with a close frame (default 1000) and
-- the closing handshake runs: on_disconnect, then the memberships go.
function conn.close(self, code, reason)
    self._c:close(code or 1000, reason or "")
    self._server:run()
end


-- The client vanishes without a close frame (the server sees 1006).
function conn.drop(self)
    self._c:drop()
    self._server:run()
end


-- { code =, reason = } when the server closed this client: its close
-- frame, or 1006 when it dropped the connection without one. nil while
-- open, or when the client closed first.
function conn.closed(self)
    self._server:run()
    if self._c:closed_first() then
        return nil
    end
    for _, frame in ipairs(self._c:frames()) do
        if frame.type == "close" then
            return { code = frame.code, reason = frame.reason }
        end
    end
    if self._c:state() == "closed" then
        return { code = 1006, reason = "" }
    end
    return nil
end


-- The client stops reading: the server's writes fill the socket buffers,
-- then its output queue, where max_buffered_bytes applies.
function conn.pause(self)
    self._c:pause_reading()
end


function conn.resume(self)
    self._c:resume_reading()
    self._server:run()
end


local harness = {}
local harness_mt = { __index = harness }


-- Loads the app in `dir` (default ".") on a fresh server: the server's
-- defaults, the app's config.lua, then opts.config key by key (checked by
-- the same C code). opts.clock: where the virtual clock starts (ms since
-- the epoch; default now). Runs on_start unless opts.start == false.
-- Returns a harness or nil, err.
function _M.load_app(dir, opts)
    dir = dir or "."
    opts = opts or {}
    if type(core.test_server) ~= "function" then
        return nil, "moonwire.testing needs moonwire/core.so (the real core); run `moonwire test`"
    end
    made = made + 1
    if made % COLLECT_EVERY == 0 then
        collectgarbage()
    end

    local rt = require("moonwire.runtime").new()
    local server, err
    local handlers = rt:handlers()
    local reload = handlers.reload
    -- The server reloads with its configuration read again; the `app`
    -- table of config.lua lives in Lua, and the driver holds the new one.
    handlers.reload = function(config)
        if config then
            config.app = server:config().app
        end
        return reload(config)
    end
    server, err = core.test_server({
        app_dir = dir,
        config = opts.config,
        clock = opts.clock,
        handlers = handlers,
    })
    if not server then
        return nil, err
    end
    local config = server:config()
    local ok
    ok, err = rt:init({ app_dir = dir, config = config, mode = "test" })
    if not ok then
        server:close()
        return nil, err
    end
    if opts.start ~= false then
        server:start()
    end
    server:run()
    return setmetatable({ runtime = rt, server = server, dir = dir, config = config,
                          _logs = {} }, harness_mt)
end


-- Connects a client with a real upgrade request: info.path, info.query,
-- info.headers, info.remote_addr, info.remote_port (what the app sees),
-- info.auto_pong = false for a client that does not answer pings. A
-- refused upgrade leaves conn.id nil, conn.status the HTTP status and
-- conn.reason the response body.
function harness.connect(self, info)
    local c = self.server:connect(info or {})
    local status, body = c:status()
    local id = c:id()
    return setmetatable({
        id = id,
        client = id and self.runtime:client(id),   -- the server-side client object
        status = status,
        reason = status ~= 101 and body and body:gsub("\n$", "") or nil,
        _c = c,
        _server = self.server,
        _runtime = self.runtime,
        _last_request = 0,
    }, conn_mt)
end


local response = {}
local response_mt = { __index = response }


-- Reads the answer again (after harness:run() or :advance(), for a
-- handler that waited): status (nil while there is none), headers (lower-
-- case names), body, and json (the body decoded, when it is JSON).
function response.update(self)
    local status, body = self._c:status()
    if not status or status == 0 then
        self.status, self.headers, self.body, self.json = nil, {}, nil, nil
        return self
    end
    self.status, self.body, self.headers = status, body, self._c:headers()
    local ctype = self.headers["content-type"]
    self.json = nil
    if ctype and ctype:find("application/json", 1, true) then
        self.json = cjson.decode(body)
    end
    return self
end


local function escape(s)
    return (gsub(tostring(s), "[^%w%-%._~]", function(c)
        return format("%%%02X", byte(c))
    end))
end


-- A query table as a string, keys sorted: { a = 1, b = "x y" } -> a=1&b=x%20y.
local function encode_query(q)
    if type(q) ~= "table" then
        return q
    end
    local keys = {}
    for k in pairs(q) do
        keys[#keys + 1] = k
    end
    sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do
        parts[#parts + 1] = escape(k) .. "=" .. escape(q[k])
    end
    return concat(parts, "&")
end


-- A plain HTTP request on a new connection, parsed and routed by the real
-- core (an app's routes.lua, /health, the server API), answered once the
-- loop is idle. opts: query (a string, or a table encoded), headers, body
-- (a string, or a table sent as JSON with its Content-Type), raw (the
-- whole request as bytes, sent as it is). Returns the response: status,
-- headers, body, json; status is nil while the app has not answered (a
-- handler that waits: advance the clock, then response:update()).
function harness.request(self, method, path, opts)
    opts = opts or {}
    local headers, body = {}, opts.body
    for k, v in pairs(opts.headers or {}) do
        headers[k] = v
    end
    if type(body) == "table" then
        body = assert(cjson.encode(body))
        local has_type = false
        for k in pairs(headers) do
            has_type = has_type or k:lower() == "content-type"
        end
        if not has_type then
            headers["Content-Type"] = "application/json"
        end
    end
    local c = self.server:request({
        method = method, path = path, query = encode_query(opts.query), headers = headers,
        body = body, raw = opts.raw,
    })
    return setmetatable({ _c = c }, response_mt):update()
end


-- Runs the loop until nothing moves (specs that call the facade directly,
-- moonwire.room(...):broadcast(...), then look at what clients got).
function harness.run(self)
    self.server:run()
end


-- Moves the virtual clock forward: every deadline, heartbeat and
-- throttle window of the core sees the time pass, and the loop runs.
function harness.advance(self, ms)
    self.server:advance(ms)
end


-- The virtual clock, in ms since the epoch (what moonwire.now() returns).
function harness.now(self)
    return self.server:now()
end


-- The /health document of this server, decoded.
function harness.health(self)
    return cjson.decode(self.server:health())
end


-- The /metrics text of this server (Prometheus text format).
function harness.metrics(self)
    return self.server:metrics()
end


-- Reloads as the server does on SIGHUP or a file change: config.lua is
-- read again (live options apply), then the app's code; true, or nil, err
-- with the old code and configuration kept.
function harness.reload(self)
    return self.server:reload()
end


function harness.routes(self)
    return self.runtime:routes()
end


-- The app's subscribers in run order ({ name, selector, priority, file,
-- line, description }), as `moonwire check` lists them.
function harness.subscribers(self)
    return self.runtime:subscribers()
end


-- Emits an event on the app's bus, as moonwire.emit or POST /api/emit
-- would, then runs the loop (the handlers run): the number of handlers
-- started, or nil, err.
function harness.emit(self, channel, message)
    local n, err = self.runtime:emit(channel, message)
    self.server:run()
    return n, err
end


-- Log lines so far ({ level =, message = }), from the core and core.log,
-- optionally only those of one level.
function harness.logs(self, level)
    local logs = self._logs
    for _, entry in ipairs(self.server:logs()) do
        logs[#logs + 1] = entry
    end
    local list = {}
    for _, entry in ipairs(logs) do
        if level == nil or entry.level == level then
            list[#list + 1] = entry
        end
    end
    return list
end


-- Drops every client and frees the server now (otherwise: when collected).
function harness.close(self)
    self.server:close()
end


-- Turns the loop in real time until fn() returns true (true) or ms real
-- milliseconds have passed (false; default 5000): for I/O outside the
-- server, such as a real Redis. The virtual clock does not move.
function harness.wait(self, fn, ms)
    if type(fn) ~= "function" then
        error("bad argument #1 to 'wait' (function expected, got " .. type(fn) .. ")", 2)
    end
    return self.server:wait(fn, ms or 5000)
end


-- A real redis-server for the spec (moonwire.testing_redis): on a free
-- port, killed and restarted at will. Returns it or nil, err.
function _M.redis_server(opts)
    return require("moonwire.testing_redis").start(opts)
end


-- A real nats-server for the spec (moonwire.testing_nats): on a free
-- port, killed and restarted at will. Returns it or nil, err.
function _M.nats_server(opts)
    return require("moonwire.testing_nats").start(opts)
end


return _M
