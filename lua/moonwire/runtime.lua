-- moonwire.runtime: the only Lua module the C core calls (docs/boundary.md).
-- It owns the connected clients and the current app, dispatches every message
-- (decode -> throttle -> on_message -> router -> controller) and turns whatever the app
-- does into replies, error envelopes and log lines. Nothing raised by app code
-- gets past it into C, and no internal detail reaches a client. Clients live
-- here, not in the app, so a reload keeps every connection and its data.

local core = require "moonwire.core"
local fast = require("moonwire.core_ffi").of(core)
local app_loader = require "moonwire.app"
local auth = require "moonwire.auth"
local client_new = require("moonwire.client").new
local errors = require "moonwire.errors"
local protocol = require "moonwire.protocol"
local rooms = require "moonwire.rooms"
local http = require "moonwire.http"
local server_api = require "moonwire.api"
local sched = require "moonwire.sched"
local bus_new = require("moonwire.bus").new

local setmetatable = setmetatable
local type = type
local ipairs = ipairs
local tostring = tostring
local error = error
local pcall = pcall
local xpcall = xpcall
local format = string.format
local find = string.find
local capture = errors.capture
local capture_thread = errors.capture_thread
local is_failure = errors.is_failure

local INVALID_MESSAGE = protocol.INVALID_MESSAGE
local INTERNAL_ERROR = protocol.INTERNAL_ERROR
local AUTHENTICATION_FAILED = protocol.AUTHENTICATION_FAILED
local codes = protocol.codes


local _M = require("moonwire.version").module()

local runtime = {}
local mt = { __index = runtime }

local MODES = { serve = true, check = true, test = true }

-- The instance behind the module-level functions that C calls.
local default

-- The instance whose code runs now: each entry sets it. A task that waits
-- (moonwire.sched) lets other dispatches run meanwhile, so the state of
-- its own dispatch is saved before it parks and put back after.
local active

sched.set_switch(function()
    local rt = active
    if not rt then
        return nil
    end
    return rt, rt._stage, rt._client, rt._msg, rt._label, rt._refuse_id
end, function(rt, stage, client, msg, label, rid)
    if not rt then
        return
    end
    active = rt
    rt._stage, rt._client, rt._msg, rt._label, rt._refuse_id = stage, client, msg, label, rid
    rooms.set_current(rt._rooms)
    local label_id = label and rt._label_ids[label]
    if label_id then
        fast.running(label_id)
    end
end)

-- What a dispatch was running when it raised (runtime.message_failed):
-- the runtime's own code, the protocol's decode, the on_message hook, the
-- action, the protocol's reply, or the answer to a refused message.
local IN_RUNTIME, IN_DECODE, IN_HOOK, IN_ACTION, IN_REPLY, IN_REFUSE =
    "runtime", "decode", "on_message", "action", "reply", "refuse"

-- The route of auth messages, which the runtime answers before routing.
local AUTH_LABEL = "system.auth"


-- moonwire.log's loggers (core.log; fmt formatted only when given
-- arguments), as the app's code logs.
local loggers = require("moonwire").log

local function log(level, fmt, ...)
    return loggers[level](fmt, ...)
end


-- A handler's `nil, err` as (code, message): a string is a message unless it
-- is itself an error code; a table carries { code =, message = }.
local function error_of(err)
    if type(err) == "table" then
        local code = err.code
        if type(code) ~= "string" or code == "" then
            code = INVALID_MESSAGE
        end
        local message = err.message
        if message == nil then
            message = protocol.default_message(code)
        end
        return code, tostring(message)
    end
    err = tostring(err)
    if codes[err] then
        return err, protocol.default_message(err)
    end
    return INVALID_MESSAGE, err
end


local function route_name(msg)
    if type(msg) ~= "table" then
        return "message"
    end
    return tostring(msg.type) .. "." .. tostring(msg.action)
end


-- A fresh, independent runtime (moonwire.testing runs one per app harness).
function _M.new()
    -- host is shared with every client: host.app is the current app and
    -- host.rooms this runtime's rooms manager (both survive reloads).
    -- throttle_slots: route -> C slot of its per-client rate cell; kept
    -- across reloads so a reload does not reset or mix up the limits.
    local host = { app = nil, rooms = nil, throttle_slots = {}, throttle_next = 0 }
    local clients = {}
    host.rooms = rooms.new(clients, host, {})
    return setmetatable({
        _host = host,
        _clients = clients,
        _rooms = host.rooms,
        _config = nil,
        _dir = nil,
        _mode = nil,
        _label_ids = {},
        -- The dispatch in progress, for message_failed: its stage, client,
        -- decoded message, action label, and the id a refused message is
        -- answered with (false: none). Kept until the next message.
        _stage = IN_RUNTIME,
        _client = false,
        _msg = false,
        _label = false,
        _refuse_id = false,
    }, mt)
end


function runtime.init(self, opts)
    if type(opts) ~= "table" or type(opts.app_dir) ~= "string" then
        error("bad argument #1 to 'init' (table with app_dir expected)", 2)
    end
    local config = opts.config or {}
    if type(config) ~= "table" then
        error("bad argument #1 to 'init' (config must be a table)", 2)
    end
    local mode = opts.mode or "serve"
    if not MODES[mode] then
        error("bad argument #1 to 'init' (mode must be serve, check or test)", 2)
    end

    local jwt_opts, jerr = auth.jwt_options(config)
    if jwt_opts == nil then
        return nil, jerr
    end
    local app, err = app_loader.load(opts.app_dir, { config = config })
    if not app then
        return nil, err
    end
    self._dir, self._config, self._mode = opts.app_dir, config, mode
    self._jwt = jwt_opts
    self._host.app = app
    self._rooms:configure(config)
    self._host.bus = bus_new(app.subscribers, config, self._rooms)
    rooms.set_current(self._rooms)
    app:activate()
    http.claim_health(app.http_routes)
    self:_set_replies()
    log("debug", "loaded app %s (%d routes)", opts.app_dir, #app:routes())
    return true
end


function runtime.app(self)
    local app = self._host.app
    if not app then
        error("moonwire runtime used before init()", 3)
    end
    return app
end


function runtime.routes(self)
    return self:app():routes()
end


-- The app's subscribers in run order (moonwire.bus list()).
function runtime.subscribers(self)
    return self._host.bus:list()
end


-- moonwire.emit on this runtime's bus, from outside a dispatch (specs).
function runtime.emit(self, channel, message)
    active = self
    rooms.set_current(self._rooms)
    return self._host.bus:emit(channel, message)
end


function runtime.client(self, id)
    return self._clients[id]
end


function runtime.rooms(self)
    return self._rooms
end


-- Calls a hook, if the app defines it, in protected mode. Returns true plus
-- the hook's results, or false plus the captured error (already logged
-- unless it is a moonwire.fail failure, which the caller decides about).
function runtime._hook(self, name, ...)
    local hook = self:app().hooks[name]
    if not hook then
        return true
    end
    local ok, res, err = xpcall(hook, capture, ...)
    if ok then
        return true, res, err
    end
    if not is_failure(res) then
        log("error", "hook %s failed: %s", name, res.traceback)
    end
    return false, res
end


-- Every error envelope the runtime sends goes through here: counted by
-- code for /metrics (moonwire_errors_total; C bounds the distinct codes).
function runtime._send_error(self, client, id, code, message)
    core.count_error(tostring(code))
    local bus = self._host.bus
    if bus:has("client.error") then
        local msg = self._client == client and self._msg or nil
        bus:emit("client.error", { client_id = client.id, user = client.user, code = code,
                                   message = message,
                                   route = msg and route_name(msg) or nil }, client)
    end
    local ok, env = pcall(self:app().protocol.error, id, code, message)
    if not ok then
        log("error", "protocol.error failed: %s", errors.message(env))
        return
    end
    local sent, err = client:send(env)
    if not sent and err ~= "closed" then
        log("error", "could not send %s error to client %s: %s", code, client.id, err)
    end
end


-- A raised value: moonwire.fail becomes that error envelope; anything else
-- is logged with its traceback, reported to on_error, and the client only
-- learns "internal error". `label` names the action and where it is defined.
function runtime._raised(self, client, msg, captured, where, label)
    local id = type(msg) == "table" and msg.id or nil
    if is_failure(captured) then
        return self:_send_error(client, id, captured.code, captured.message)
    end
    if type(captured) ~= "table" then
        -- LuaJIT runs no message handler for "not enough memory" (nor when
        -- the handler itself failed): the stack is already unwound, so the
        -- action's own position is all there is to report.
        local text = tostring(captured)
        captured = { message = text, traceback = text .. " (no traceback: the stack was unwound)" }
        where = label or where
    elseif captured.unlocated then
        -- No line to blame (the VM raised where it keeps none): the
        -- action's label says which function, and where it is defined.
        where = label or where
    end
    log("error", "%s failed: %s", where, captured.traceback)
    self:_send_error(client, id, INTERNAL_ERROR, "internal error")
    local ok, res = self:_hook("on_error", client, captured.message, msg)
    if not ok and is_failure(res) then
        log("error", "hook on_error raised moonwire.fail: %s", tostring(res))
    end
end


-- Replies the C core sends without calling Lua (docs/boundary.md), encoded
-- by the current app's protocol: set at init and again after each reload,
-- since a reload may replace the protocol.
-- An event the core sends later must carry the time it is sent, not the
-- time of this load: a numeric `ts` is encoded as TS_MARK, and C writes
-- the time over the marker's digits at each send.
local TS_MARK = 1234567890123
local TS_MARK_TEXT = "1234567890123"

function runtime._set_replies(self)
    local proto = self:app().protocol
    -- build(...) makes the message table; set_reply gets it encoded.
    local function set(name, what, build, ...)
        local ok, value, binary = pcall(build, ...)
        local stamped = ok and type(value) == "table" and type(value.ts) == "number"
        if stamped then
            value.ts = TS_MARK
        end
        if ok then
            ok, value, binary = pcall(proto.encode, value)
            if ok and type(value) ~= "string" then
                ok, value = false, binary
            end
        end
        local at, last
        if ok and stamped then
            at, last = find(value, TS_MARK_TEXT, 1, true)
            if not at or find(value, TS_MARK_TEXT, last + 1, true) then
                log("warn", "%s: cannot locate its time stamp; it carries the load time",
                    what)
                at = nil
            end
        end
        if ok then
            if at then
                core.set_reply(name, value, binary == true, at - 1, last - at + 1)
            else
                core.set_reply(name, value, binary == true)
            end
        else
            log("error", "cannot encode %s: %s", what, tostring(value))
        end
    end
    set("rate_limited", "the rate limit reply", proto.error, nil, protocol.RATE_LIMIT_EXCEEDED,
        "rate limit exceeded: slow down")
    set("ping", "the ping event", proto.event, "system", "ping", {})
end


function runtime.start(self)
    local app = self:app()
    active = self
    rooms.set_current(self._rooms)
    local config = self._config
    if config.cluster and self._mode == "serve" and not self._rooms._cluster then
        -- Nodes through Redis (docs/scaling.md): off, nothing of it loads.
        local cl, err = require("moonwire.cluster").start(self._rooms, config)
        if cl then
            self._rooms._cluster = cl
            require("moonwire.bus").set_cluster(cl)
        else
            log("error", "cluster: cannot start: %s", tostring(err))
        end
    elseif not config.cluster and self._mode == "serve" and not self._rooms._cluster then
        -- A worker of a supervisor (workers > 1): the same cluster over its
        -- hub; a process of its own has no hub ("not a worker").
        local cl, err = require("moonwire.cluster").start_hub(self._rooms, config)
        if cl then
            self._rooms._cluster = cl
            require("moonwire.bus").set_cluster(cl)
        elseif err ~= "not a worker" then
            log("error", "workers: cannot join the hub: %s", tostring(err))
        end
    end
    local ok, res = self:_hook("on_start", app)
    if not ok and is_failure(res) then
        log("error", "hook on_start raised moonwire.fail: %s", tostring(res))
    end
end


-- The request an authenticate hook sees: the upgrade's or the client's,
-- with the token to check.
local function auth_request(via, info, token)
    return {
        via = via,
        token = token,
        headers = info.headers,
        query = info.query,
        path = info.path,
        remote_addr = info.remote_addr,
        remote_port = info.remote_port,
    }
end


-- Binds an authenticated user to the client: client.user (the id),
-- client.auth (the user table), the token's expiry, max_connections_per_user.
-- Returns true, or false when the client is being closed.
function runtime._bind_user(self, client, user)
    client:set_user(user.id)
    rawset(client, "auth", user)
    rawset(client, "_authenticated", true)
    local ms = auth.ms_until_expiry(user)
    if ms then
        core.set_expiry(client.id, ms, 1008, "token expired")
    else
        core.set_expiry(client.id)
    end
    local max = self._config.max_connections_per_user
    -- workers = N: the whole server's count (shared memory, shlimits.h);
    -- one process: its own clients of that user
    local n = core.claim_user and core.claim_user(client.id, tostring(user.id))
    if max and max > 0 and (n or #self._rooms:user_ids(user.id)) > max then
        log("info", "client %s: user %s has more than %d connections; closing it",
            tostring(client.id), tostring(user.id), max)
        client:close(1008, "too many connections for this user")
        return false
    end
    local bus = self._host.bus
    if bus:has("client.authenticated") then
        bus:emit("client.authenticated", { client_id = client.id, user = user.id }, client)
    end
    return true
end


-- A valid upgrade request, before the 101 is written: authentication at
-- the upgrade. A refusal (false, status, message) is answered with that
-- HTTP status by the C core, and the client never exists. Accepted, the
-- client is created here and greeted by open(), which C calls next.
function runtime.upgrade(self, id, info)
    local app = self:app()
    active = self
    rooms.set_current(self._rooms)
    if self._clients[id] then
        log("warn", "client %s connected twice; replacing it", tostring(id))
    end
    local config = self._config
    local user, why = false, nil
    if app.hooks.authenticate or self._jwt then -- otherwise no garbage per connect
        user, why = auth.authenticate(app, self._jwt,
                                      auth_request("upgrade", info, auth.token_from_request(info)))
    end
    if user == nil then
        return false, 401, why
    end
    if not user and config.auth_at_upgrade then
        return false, 401, "authentication required"
    end
    local client = client_new(id, info, self._host)
    self._clients[id] = client
    if user then
        rawset(client, "_upgrade_user", user)
    end
    return true
end


-- The client is connected: bind the user authenticated at the upgrade,
-- start the authentication timeout, greet it, run on_connect.
function runtime.open(self, id)
    local client = self._clients[id]
    if not client then
        return
    end
    rawset(client, "_opened", true)
    local app = self:app()
    local config = self._config
    active = self
    rooms.set_current(self._rooms)
    local user = rawget(client, "_upgrade_user")
    if user then
        rawset(client, "_upgrade_user", nil)
        if not self:_bind_user(client, user) then
            return
        end
    elseif config.require_auth then
        core.set_expiry(id, config.auth_timeout, 1008, "authentication timeout")
    end
    -- with workers the others know it, with the user bound just above
    -- (cluster.worker_gone); set_user sends any later change
    local cl = self._rooms._cluster
    if cl then
        cl:client_up(client)
        rawset(client, "_hub_up", true)
    end

    if self._config.dedupe then
        core.dedupe(id, true)
    end

    if self._config.welcome then
        local ok, event = pcall(app.protocol.event, "system", "connected", { client_id = id })
        if not ok then
            log("error", "protocol.event failed: %s", errors.message(event))
        else
            local sent, err = client:send(event)
            if not sent and err ~= "closed" then
                log("error", "could not send welcome to client %s: %s", tostring(id), err)
            end
        end
    end

    -- on_connect may refuse the client with moonwire.fail: it gets the error
    -- envelope, then a 1008 (policy violation) close.
    local ok, res = self:_hook("on_connect", client)
    if not ok and is_failure(res) then
        self:_send_error(client, nil, res.code, res.message)
        client:close(1008, res.code)
        return
    end
    local bus = self._host.bus
    if bus:has("client.connected") then
        bus:emit("client.connected", { client_id = id, user = client.user,
                                       remote_addr = client.remote_addr }, client)
    end
end


-- upgrade and open at once, as the core calls them for an accepted client.
function runtime.connect(self, id, info)
    local ok, status, message = self:upgrade(id, info)
    if not ok then
        return ok, status, message
    end
    self:open(id)
end


-- The server refuses messages while the Lua heap stays at its limit (see
-- docs/security.md): the client gets INTERNAL_ERROR, with the request's id
-- when the message can still be decoded, and no app code beyond the decoder
-- runs. The server logs the condition once, not per message.
-- Such a dispatch runs with the headroom script.c gives past the limit;
-- should the answer still raise, message_failed answers once more.
function runtime._refuse(self, client, payload, is_binary)
    local ok, msg, _, _, rid = pcall(self:app().protocol.decode, payload, is_binary)
    local id
    if ok then
        id = type(msg) == "table" and msg.id or rid
    end
    self._refuse_id = id or false
    self:_send_error(client, id, INTERNAL_ERROR, "internal error")
    -- Answered: an error after this point must not make message_failed
    -- answer a second time.
    self._refuse_id = nil
end


-- The per-message dispatch. It runs under ONE protection level, C's
-- lua_pcall with runtime.capture as the message handler (src/lua/script.c),
-- instead of a pcall around each step: LuaJIT cannot compile a trace that
-- returns through a pcall frame it did not start above ("NYI: return to
-- lower frame"), so nested protected calls kept most of this path
-- interpreted (docs/performance.md). What failed is told apart by
-- self._stage, recorded before each step that runs app-supplied code, and
-- runtime.message_failed answers and logs it as each step always has.
-- Protected calls left on this path, each around an app-supplied function
-- whose failure must not end the dispatch: client:send's pcall around an
-- app protocol's encode (the built-in encode returns nil, err and runs
-- unprotected), _send_error's around protocol.error (error replies only).
function runtime.message(self, id, payload, is_binary, refuse)
    active = self
    self._stage = IN_RUNTIME
    local client = self._clients[id]
    if not client then
        log("warn", "message for unknown client %s dropped", tostring(id))
        return
    end
    -- No label until the router names one: a wait before that (in
    -- on_message) must not put back the previous message's route.
    self._client, self._msg, self._label = client, false, false
    if refuse then
        self._stage, self._refuse_id = IN_REFUSE, false
        return self:_refuse(client, payload, is_binary)
    end
    local app = self:app()
    local proto = app.protocol
    rooms.set_current(self._rooms)

    self._stage = IN_DECODE
    local msg, code, message, rid = proto.decode(payload, is_binary)
    self._stage = IN_RUNTIME
    if msg == nil then
        return self:_send_error(client, rid, code or INVALID_MESSAGE, message or "invalid message")
    end
    if type(msg) ~= "table" then
        log("error", "protocol.decode returned a %s instead of a table", type(msg))
        return self:_send_error(client, nil, INTERNAL_ERROR, "internal error")
    end
    self._msg = msg

    -- A per-route throttle is the first thing checked once the envelope
    -- names the route: a throttled message runs no hook and no controller.
    local throttle = app.router:throttle(msg.type, msg.action)
    if throttle and not self:_throttle_ok(client, msg, throttle) then
        return
    end

    if msg.type == "system" and msg.action == "auth" then
        self:_running(AUTH_LABEL)
        return self:_auth_message(client, msg)
    end
    if self._config.require_auth and not client._authenticated then
        return self:_send_error(client, msg.id, AUTHENTICATION_FAILED, "authenticate first")
    end

    local res, err
    local on_message = app.hooks.on_message
    if on_message then
        self._stage = IN_HOOK
        res, err = on_message(client, msg)
        self._stage = IN_RUNTIME
        if res == false then
            return
        end
        if res == nil and err ~= nil then
            return self:_send_error(client, msg.id, error_of(err))
        end
    end

    local fn, label
    fn, label, message = app.router:find(msg.type, msg.action)
    if not fn then
        return self:_send_error(client, msg.id, label, message)
    end

    -- For the watchdog: the one thing it can report about an action stuck
    -- in JIT-compiled code, which it cannot interrupt. C copies each label
    -- once (core.label); a message only stores its number.
    local label_id = self._label_ids[label]
    if not label_id then
        label_id = core.label(label)
        self._label_ids[label] = label_id
    end
    fast.running(label_id)

    self._stage, self._label = IN_ACTION, label
    local value
    value, err = fn(client, msg.data, msg)
    self._stage = IN_RUNTIME
    if value == nil and err ~= nil then
        return self:_send_error(client, msg.id, error_of(err))
    end
    if msg.id == nil then
        return
    end

    self._stage = IN_REPLY
    local reply = proto.reply(msg, value)
    self._stage = IN_RUNTIME
    local ok
    ok, err = client:send(reply)
    if not ok and err ~= "closed" then
        log("error", "%s: reply not sent: %s", route_name(msg), err)
        self:_send_error(client, msg.id, INTERNAL_ERROR, "internal error")
    end
end


-- The text of a captured error: capture's table, a moonwire.fail failure,
-- or the bare string LuaJIT passes on without running the handler ("not
-- enough memory", "error in error handling").
local function captured_message(captured)
    if type(captured) == "table" and not is_failure(captured)
       and type(captured.message) == "string" then
        return captured.message
    end
    return errors.message(captured)
end


local function captured_traceback(captured)
    if type(captured) == "table" and type(captured.traceback) == "string" then
        return captured.traceback
    end
    return tostring(captured)
end


-- C calls this when runtime.message raised, with the error and the task
-- (coroutine) it ended, in the same dispatch: the stage message() recorded
-- says whose failure it was, and each gets the answer and log line it had
-- when every step ran under its own pcall. A failed task's stack is kept,
-- so the traceback is read from it (errors.capture_thread).
function runtime.message_failed(self, err, co)
    local captured = err
    if type(co) == "thread" then
        captured = capture_thread(co, err)
    end
    active = self
    local stage, client, msg = self._stage, self._client, self._msg
    self._stage = IN_RUNTIME
    if stage == IN_DECODE then
        return self:_raised(client, nil, captured, "protocol.decode")
    end
    if stage == IN_ACTION then
        return self:_raised(client, msg, captured, route_name(msg), self._label)
    end
    if stage == IN_HOOK then
        if is_failure(captured) then
            return self:_send_error(client, msg.id, captured.code, captured.message)
        end
        log("error", "hook on_message failed: %s", captured_traceback(captured))
        return self:_send_error(client, msg.id, INTERNAL_ERROR, "internal error")
    end
    if stage == IN_REPLY then
        log("error", "%s: reply not sent: %s", route_name(msg), captured_message(captured))
        return self:_send_error(client, msg.id, INTERNAL_ERROR, "internal error")
    end
    if stage == IN_REFUSE then
        if self._refuse_id == nil then -- already answered
            return
        end
        return self:_send_error(client, self._refuse_id or nil, INTERNAL_ERROR, "internal error")
    end
    -- The runtime's own code: logged as C logs any call that raised.
    log("error", "lua error in message: %s", captured_traceback(captured))
end


-- Tells the core that the message runs `label`, for a route the runtime
-- answers itself (runtime.message does the same inline for the routes the
-- router finds).
function runtime._running(self, label)
    local label_id = self._label_ids[label]
    if not label_id then
        label_id = core.label(label)
        self._label_ids[label] = label_id
    end
    fast.running(label_id)
end


-- An auth message ({"type":"auth","token":T}, or system.auth): the first
-- one authenticates, a later one refreshes the credentials (same user
-- only). Success: the `authenticated` event; failure: AUTHENTICATION_FAILED
-- and close 1008.
function runtime._auth_message(self, client, msg)
    local data = msg.data
    local token = type(data) == "table" and data.token or nil
    local user, why
    if type(token) ~= "string" or token == "" then
        user, why = nil, "token must be a non-empty string"
    else
        local r = client.request
        user, why = auth.authenticate(self:app(), self._jwt, auth_request("message", {
            headers = r.headers, query = r.query, path = r.path,
            remote_addr = client.remote_addr, remote_port = client.remote_port,
        }, token))
        if user == false then
            user, why = nil, "no authentication is configured"
        end
    end
    if user and client._authenticated and client.user ~= user.id then
        user, why = nil, "the token is for another user"
    end
    if not user then
        self:_send_error(client, msg.id, AUTHENTICATION_FAILED, why or "authentication failed")
        client:close(1008, "authentication failed")
        return
    end
    if not self:_bind_user(client, user) then
        return
    end
    local proto = self:app().protocol
    local ok, event = pcall(proto.event, "system", "authenticated", { user_id = user.id })
    if ok then
        ok, event = client:send(event)
    end
    if not ok and event ~= "closed" then
        log("error", "could not send authenticated to client %s: %s", tostring(client.id),
            tostring(event))
    end
end


-- A controller's _throttle for this route: counted in C per client. Past
-- it the message is dropped, with RATE_LIMIT_EXCEEDED unless silent.
function runtime._throttle_ok(self, client, msg, throttle)
    local host = self._host
    local slot = host.throttle_slots[throttle.route]
    if not slot then
        slot = host.throttle_next
        if slot >= core.max_throttles then
            log("error", "more than %d throttled routes: %s is not throttled",
                core.max_throttles, throttle.route)
            return true
        end
        host.throttle_slots[throttle.route] = slot
        host.throttle_next = slot + 1
    end
    local ok, err = core.throttle(client.id, slot, throttle.window_ms, throttle.max_messages)
    if ok or err ~= "rate limited" then
        return true
    end
    if not throttle.silent then
        self:_send_error(client, msg.id, protocol.RATE_LIMIT_EXCEEDED,
                         "too many '" .. throttle.route .. "' messages: slow down")
    end
    return false
end


function runtime.disconnect(self, id, code, reason)
    local client = self._clients[id]
    if not client then
        return
    end
    self._clients[id] = nil
    client._closed = true
    if not rawget(client, "_opened") then
        -- Accepted at the upgrade, gone before it opened (the decision
        -- waited): it never connected as far as the app knows.
        return
    end
    active = self
    rooms.set_current(self._rooms)
    local ok, res = self:_hook("on_disconnect", client, code, reason)
    if not ok and is_failure(res) then
        log("error", "hook on_disconnect raised moonwire.fail: %s", tostring(res))
    end
    -- C removes the memberships right after this returns; presence `left`
    -- events go out now, while core.rooms(id) still knows them.
    local user = client.user
    ok, res = pcall(self._rooms.disconnect, self._rooms, client)
    if not ok then
        log("error", "presence on disconnect failed: %s", errors.message(res))
    end
    local bus = self._host.bus
    if bus:has("client.disconnected") then
        bus:emit("client.disconnected", { client_id = id, user = user, code = code,
                                          reason = reason }, client)
    end
    local cl = self._rooms._cluster
    if cl and rawget(client, "_hub_up") then
        cl:client_down(client)
    end
end


-- Loads the app folder afresh and swaps it in only when it loaded cleanly;
-- the new app's on_reload(old_state, app) runs after the swap. `config`,
-- when given, is the server's configuration now (live options applied);
-- it takes effect with the new code. The caller logs the outcome (one
-- line per reload).
function runtime.reload(self, config)
    local old_bus = self._host.bus
    local ok, err = self:_reload(config)
    local bus = ok and self._host.bus or old_bus
    if bus:has("server.reload") then
        bus:emit("server.reload", { ok = ok == true, error = err })
    end
    return ok, err
end


function runtime._reload(self, config)
    local old = self:app()
    config = config or self._config
    local jwt_opts, jerr = auth.jwt_options(config)
    if jwt_opts == nil then
        return nil, jerr
    end
    local new, err = app_loader.load(self._dir, { config = config, previous = old })
    if not new then
        return nil, err
    end
    self._config = config
    self._rooms:configure(config)
    self._jwt = jwt_opts
    -- The old code's timers go with it: the new code's on_start (which the
    -- server runs next, in a task) starts its own.
    sched.cancel_timers()
    -- And so do its Redis subscriptions (moonwire.redis, when loaded).
    local redis = package.loaded["moonwire.redis"]
    if redis then
        redis.unsubscribe_all()
    end
    local nats = package.loaded["moonwire.nats"]
    if nats then
        nats.unsubscribe_all()
    end
    require("moonwire.bus").timers_cancelled()
    if self._rooms._cluster then
        self._rooms._cluster:arm() -- its heartbeat went with the timers
    end
    self._host.app = new
    self._host.bus = bus_new(new.subscribers, config, self._rooms)
    rooms.set_current(self._rooms)
    new:activate()
    http.claim_health(new.http_routes)
    self:_set_replies()
    local ok, res = self:_hook("on_reload", old.state, new)
    if not ok and is_failure(res) then
        log("error", "hook on_reload raised moonwire.fail: %s", tostring(res))
    end
    return true
end


-- A plain HTTP request (docs/boundary.md): find its route (the server
-- API's when it came through the API's door, else the app's routes.lua),
-- run the handler, answer through core.http_respond. The answer is never
-- this function's return value: the handler may wait first.
function runtime.http(self, request_id, info)
    local app = self:app()
    active = self
    rooms.set_current(self._rooms)
    local route, req = http.find(request_id, info, app.http_routes, server_api.routes)
    if not route then
        return -- answered: 404, 405 or 400
    end
    return http.answer(request_id, route, req, http.run(route, req))
end


-- The functions the core calls for each event, bound to this instance
-- (what moonwire.core's test server attaches to; docs/boundary.md).
function runtime.handlers(self)
    return {
        upgrade = function(id, info) return self:upgrade(id, info) end,
        open = function(id) return self:open(id) end,
        message = function(id, payload, is_binary, refuse)
            return self:message(id, payload, is_binary, refuse)
        end,
        message_failed = function(err, co) return self:message_failed(err, co) end,
        disconnect = function(id, code, reason) return self:disconnect(id, code, reason) end,
        reload = function(config) return self:reload(config) end,
        start = function() return self:start() end,
        http = function(request_id, info) return self:http(request_id, info) end,
    }
end


-- The module-level API of docs/boundary.md, backed by one default instance
-- that only a successful init() replaces.
function _M.init(opts)
    local rt = _M.new()
    local ok, err = rt:init(opts)
    if not ok then
        return nil, err
    end
    default = rt
    return true
end


local function instance()
    if not default then
        error("moonwire runtime used before init()", 3)
    end
    return default
end


function _M.routes()
    return instance():routes()
end


-- `moonwire check`'s subscriber lines: name, selector, priority, where.
function _M.subscriber_lines()
    local out = {}
    for i, s in ipairs(instance():subscribers()) do
        out[i] = format("%s  [%s]  priority %s  %s:%d%s", s.name, s.selector,
                        tostring(s.priority), s.file or "?", s.line or 1,
                        s.description and ("  -- " .. s.description) or "")
    end
    return out
end


function _M.start()
    return instance():start()
end


function _M.upgrade(id, info)
    return instance():upgrade(id, info)
end


function _M.open(id)
    return instance():open(id)
end


function _M.connect(id, info)
    return instance():connect(id, info)
end


function _M.message(id, payload, is_binary, refuse)
    return instance():message(id, payload, is_binary, refuse)
end


-- What C calls when a message's task raised (docs/boundary.md).
function _M.message_failed(err, co)
    return instance():message_failed(err, co)
end


function _M.disconnect(id, code, reason)
    return instance():disconnect(id, code, reason)
end


function _M.reload(config)
    return instance():reload(config)
end


function _M.http(request_id, info)
    return instance():http(request_id, info)
end


return _M
