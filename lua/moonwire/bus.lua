-- moonwire.bus: the event bus (docs/subscribers.md). moonwire.emit(channel,
-- message) hands an event to every subscriber whose selector matches it,
-- each in a task of its own, highest priority first (ties: load order).
-- Subscribers are the files of APP/subscribers/, checked here and loaded
-- with the app (moonwire.app); a bus is an index built once per load and
-- replaced as a whole on reload, so emit never sorts, and an event nobody
-- subscribes to costs one table lookup.
--
-- Three guards keep a bad subscriber from hurting the rest: a handler that
-- takes longer than its timeout is given up (core.task_drop), events
-- emitted from inside handlers may nest only bus_max_depth deep, and at
-- most bus_max_pending handlers run at once. Errors are logged with the
-- subscriber's name and never reach the emitter.

local core = require "moonwire.core"
local errors = require "moonwire.errors"
local rooms = require "moonwire.rooms"

local setmetatable = setmetatable
local type = type
local pairs = pairs
local ipairs = ipairs
local tostring = tostring
local error = error
local pcall = pcall
local xpcall = xpcall
local running = coroutine.running
local find = string.find
local sub = string.sub
local gsub = string.gsub
local concat = table.concat
local sort = table.sort
local floor = math.floor
local capture = errors.capture


local _M = require("moonwire.version").module()

local bus = {}
local mt = { __index = bus }

-- Channels are names, not payloads: long enough for any naming scheme.
local MAX_CHANNEL = 256

-- Alternatives one glob may expand to ({a,b}{c,d} is four).
local MAX_ALTERNATIVES = 64

local SELECTORS = { "channel", "channels", "match" }

local KNOWN = {
    name = true, description = true, channel = true, channels = true, match = true,
    priority = true, middleware = true, handle = true, timeout = true,
}


-- moonwire.log's loggers (core.log; fmt formatted only when given
-- arguments), as the app's code logs.
local loggers = require("moonwire").log

local function log(level, fmt, ...)
    return loggers[level](fmt, ...)
end


-- Globs --------------------------------------------------------------------
-- `*` matches any run of characters but ".", `**` any run at all, `?` one
-- character but ".", `{a,b}` either alternative (not nested), `\x` the
-- character x. A glob without any of these is an exact channel name.

-- Expands the braces of a glob into its alternatives, or nil, err.
local function expand(glob)
    local out = { "" }
    local i, n = 1, #glob
    while i <= n do
        local c = sub(glob, i, i)
        if c == "\\" then
            if i == n then
                return nil, "a trailing '\\' escapes nothing"
            end
            for k = 1, #out do
                out[k] = out[k] .. sub(glob, i, i + 1)
            end
            i = i + 2
        elseif c == "{" then
            local close = find(glob, "}", i + 1, true)
            local inner = close and sub(glob, i + 1, close - 1)
            if not close then
                return nil, "'{' at character " .. i .. " is never closed"
            end
            if find(inner, "{", 1, true) then
                return nil, "braces cannot nest (character " .. i .. ")"
            end
            local alts = {}
            for alt in (inner .. ","):gmatch("([^,]*),") do
                alts[#alts + 1] = alt
            end
            local grown = {}
            for _, head in ipairs(out) do
                for _, alt in ipairs(alts) do
                    grown[#grown + 1] = head .. alt
                end
            end
            if #grown > MAX_ALTERNATIVES then
                return nil, "expands to more than " .. MAX_ALTERNATIVES .. " alternatives"
            end
            out = grown
            i = close + 1
        elseif c == "}" then
            return nil, "'}' at character " .. i .. " closes nothing"
        else
            for k = 1, #out do
                out[k] = out[k] .. c
            end
            i = i + 1
        end
    end
    return out
end


-- One brace-free alternative as an anchored Lua pattern.
local function to_pattern(alt)
    local parts = { "^" }
    local i, n = 1, #alt
    while i <= n do
        local c = sub(alt, i, i)
        if c == "\\" then
            parts[#parts + 1] = (gsub(sub(alt, i + 1, i + 1), "%W", "%%%0"))
            i = i + 2
        elseif c == "*" then
            if sub(alt, i + 1, i + 1) == "*" then
                if sub(alt, i + 2, i + 2) == "*" then
                    return nil, "'***' at character " .. i .. " (use '*' or '**')"
                end
                parts[#parts + 1] = ".*"
                i = i + 2
            else
                parts[#parts + 1] = "[^.]*"
                i = i + 1
            end
        elseif c == "?" then
            parts[#parts + 1] = "[^.]"
            i = i + 1
        else
            parts[#parts + 1] = (gsub(c, "%W", "%%%0"))
            i = i + 1
        end
    end
    parts[#parts + 1] = "$"
    return concat(parts)
end


-- Compiles a glob: a channel name (string) when it has no wildcard, else
-- a function(channel) -> boolean. nil, err for an invalid glob.
function _M.glob(glob)
    if type(glob) ~= "string" then
        return nil, "a pattern must be a string, got " .. type(glob)
    end
    if glob == "" then
        return nil, "empty pattern"
    end
    if #glob > MAX_CHANNEL then
        return nil, "pattern longer than " .. MAX_CHANNEL .. " bytes"
    end
    if not find(glob, "[*?{}\\]") then
        return glob
    end
    local alts, err = expand(glob)
    if not alts then
        return nil, "invalid pattern '" .. glob .. "': " .. err
    end
    local pats = {}
    for i, alt in ipairs(alts) do
        local pat, perr = to_pattern(alt)
        if not pat then
            return nil, "invalid pattern '" .. glob .. "': " .. perr
        end
        pats[i] = pat
    end
    if #pats == 1 then
        local pat = pats[1]
        return function(channel) return find(channel, pat) ~= nil end
    end
    return function(channel)
        for i = 1, #pats do
            if find(channel, pats[i]) then
                return true
            end
        end
        return false
    end
end


-- Subscribers --------------------------------------------------------------

local function check_channel(v, what)
    if type(v) ~= "string" or v == "" then
        return nil, what .. " must be a non-empty string, got " .. (v == "" and "\"\"" or type(v))
    end
    if #v > MAX_CHANNEL then
        return nil, what .. " is longer than " .. MAX_CHANNEL .. " bytes"
    end
    return true
end


-- The selector of a spec as (exact channels, matchers, text for listings).
-- A matcher is { glob = fn } or { pred = fn }.
local function selector(spec)
    local given = {}
    for _, key in ipairs(SELECTORS) do
        if spec[key] ~= nil then
            given[#given + 1] = key
        end
    end
    if #given == 0 then
        return nil, "a subscriber needs one of channel, channels or match"
    end
    if #given > 1 then
        return nil, "a subscriber takes one of channel, channels or match, not both "
                    .. given[1] .. " and " .. given[2]
    end
    local exact, matchers, text = {}, {}, {}
    if spec.channel ~= nil then
        local ok, err = check_channel(spec.channel, "channel")
        if not ok then
            return nil, err
        end
        exact[1], text[1] = spec.channel, spec.channel
    elseif spec.channels ~= nil then
        local list = spec.channels
        if type(list) ~= "table" or list[1] == nil then
            return nil, "channels must be a non-empty list of channel names"
        end
        for i, ch in ipairs(list) do
            local ok, err = check_channel(ch, "channels[" .. i .. "]")
            if not ok then
                return nil, err
            end
            exact[#exact + 1], text[#text + 1] = ch, ch
        end
    else
        local list = spec.match
        if type(list) ~= "table" then
            list = { list }
        elseif list[1] == nil then
            return nil, "match must be a pattern, a function or a non-empty list of them"
        end
        for i, m in ipairs(list) do
            local where = type(spec.match) == "table" and "match[" .. i .. "]" or "match"
            if type(m) == "function" then
                matchers[#matchers + 1] = { pred = m }
                text[#text + 1] = "<function>"
            elseif type(m) == "string" then
                local g, err = _M.glob(m)
                if not g then
                    return nil, where .. ": " .. err
                end
                if type(g) == "string" then
                    exact[#exact + 1] = g
                else
                    matchers[#matchers + 1] = { glob = g }
                end
                text[#text + 1] = m
            else
                return nil, where .. " must be a pattern (string) or a function, got " .. type(m)
            end
        end
    end
    return exact, matchers, concat(text, ", ")
end


-- Checks a subscriber file's table and returns its record, or nil, err
-- (err without the file's name; moonwire.app adds it). `defaults.name` is
-- the name used when the file gives none (its base name);
-- `defaults.check_middleware(list)` -> true, checked list | false, err
-- checks the middleware list (moonwire.app passes moonwire.middleware's).
function _M.subscriber(spec, defaults)
    defaults = defaults or {}
    if type(spec) ~= "table" then
        return nil, "a subscriber must be a table, got " .. type(spec)
    end
    for key in pairs(spec) do
        if type(key) ~= "string" or not KNOWN[key] then
            return nil, "unknown field '" .. tostring(key) .. "' (a subscriber has name, "
                        .. "description, channel | channels | match, priority, middleware, "
                        .. "timeout and handle)"
        end
    end
    local name = spec.name
    if name == nil then
        name = defaults.name
    end
    if type(name) ~= "string" or name == "" then
        return nil, "name must be a non-empty string"
    end
    if spec.description ~= nil and type(spec.description) ~= "string" then
        return nil, "description must be a string, got " .. type(spec.description)
    end
    if type(spec.handle) ~= "function" then
        return nil, "handle must be a function, got " .. type(spec.handle)
    end
    local priority = spec.priority
    if priority == nil then
        priority = 0
    elseif type(priority) ~= "number" or priority ~= priority or priority == 1 / 0
           or priority == -1 / 0 then
        return nil, "priority must be a finite number"
    end
    local timeout = spec.timeout
    if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0 or timeout > 86400000
                           or timeout ~= floor(timeout)) then
        return nil, "timeout must be whole milliseconds from 0 to 86400000"
    end
    local middleware = spec.middleware
    if middleware ~= nil and defaults.check_middleware then
        local ok, res = defaults.check_middleware(middleware)
        if not ok then
            return nil, tostring(res)
        end
        middleware = res -- the checked list; nil when empty
    elseif middleware ~= nil and (type(middleware) ~= "table" or middleware[1] == nil) then
        return nil, "middleware must be a non-empty list of middleware"
    end
    local exact, matchers, text = selector(spec)
    if not exact then
        return nil, matchers
    end
    return {
        name = name,
        description = spec.description,
        priority = priority,
        timeout = timeout,
        middleware = middleware,
        handle = spec.handle,
        exact = exact,
        matchers = matchers,
        selector = text,
        file = defaults.file,
        line = defaults.line,
        rank = 0, -- set by new(): the subscriber's place in run order
    }
end


-- A bus over a list of subscriber records (load order). opts: the server
-- config's bus options and the rooms manager handlers use.
function _M.new(subs, config, manager)
    config = config or {}
    subs = subs or {}
    local order = {}
    for i, s in ipairs(subs) do
        order[i] = s
        s._load = i
    end
    sort(order, function(a, b)
        if a.priority ~= b.priority then
            return a.priority > b.priority
        end
        return a._load < b._load
    end)
    local exact, wild = {}, {}
    for rank, s in ipairs(order) do
        s.rank = rank
        local seen = {}
        for _, ch in ipairs(s.exact) do
            if not seen[ch] then
                seen[ch] = true
                local list = exact[ch]
                if not list then
                    list = {}
                    exact[ch] = list
                end
                list[#list + 1] = s
            end
        end
        if s.matchers[1] then
            wild[#wild + 1] = s
        end
    end
    return setmetatable({
        _subs = order,
        _exact = exact,
        _wild = wild,
        _n_wild = #wild,
        _timeout = config.subscriber_timeout or 30000,
        _max_depth = config.bus_max_depth or 8,
        _max_pending = config.bus_max_pending or 10000,
        _redis_url = config.redis_url or "",
        _rooms = manager,
    }, mt)
end


-- Subscribers in run order, for `moonwire check` and specs:
-- { name, selector, priority, file, line, description }.
function bus.list(self)
    local out = {}
    for i, s in ipairs(self._subs) do
        out[i] = { name = s.name, selector = s.selector, priority = s.priority,
                   file = s.file, line = s.line, description = s.description }
    end
    return out
end


-- Whether an event on `channel` may reach a subscriber: the server asks
-- before building the payload of its own events.
function bus.has(self, channel)
    return self._exact[channel] ~= nil or self._n_wild > 0
end


-- Emission state shared by every bus (a reload replaces the bus while the
-- old one's handlers still run): per running handler, keyed by its
-- coroutine, its depth, subscriber, context and deadline.
local depth_of = setmetatable({}, { __mode = "k" })
local inflight_sub, inflight_ctx, inflight_at = {}, {}, {}
local pending = 0
local dropping = false
local sweeper, sweep_every = nil, nil
local last_depth_log = -1 / 0

local stats = {
    emitted = 0,   -- emit calls with at least one subscriber
    handled = 0,   -- handlers started
    failed = 0,    -- handlers that raised
    timed_out = 0, -- handlers given up past their timeout
    refused = 0,   -- emits refused: too deep
    dropped = 0,   -- emits dropped: bus_max_pending handlers running
}


local function now()
    return core.now()
end


local function where(s)
    if s.file then
        return s.file .. ":" .. (s.line or 1)
    end
    return "?"
end


-- The subscribers of `channel` in run order: the exact ones and the
-- matchers that accept it, merged by rank. pctx is what predicates see.
local function matching(self, channel, message, client)
    local exact = self._exact[channel]
    local found
    local pctx
    for _, s in ipairs(self._wild) do
        local hit = false
        for _, m in ipairs(s.matchers) do
            if m.glob then
                hit = m.glob(channel)
            else
                if not pctx then
                    pctx = { channel = channel, message = message, client = client }
                end
                local ok, res = pcall(m.pred, pctx)
                if not ok then
                    log("error", "subscriber '%s' (%s): match predicate failed on '%s': %s",
                        s.name, where(s), channel, errors.message(res))
                    res = false
                end
                hit = res and true or false
            end
            if hit then
                break
            end
        end
        if hit then
            found = found or {}
            found[#found + 1] = s
        end
    end
    if not found then
        return exact
    end
    if not exact then
        return found
    end
    -- Merge two rank-sorted lists; a subscriber in both appears once.
    local out, i, j = {}, 1, 1
    while i <= #exact or j <= #found do
        local a, b = exact[i], found[j]
        if b == nil or (a ~= nil and a.rank < b.rank) then
            out[#out + 1] = a
            i = i + 1
        elseif a == nil or b.rank < a.rank then
            out[#out + 1] = b
            j = j + 1
        else
            out[#out + 1] = a
            i, j = i + 1, j + 1
        end
    end
    return out
end


-- What a handler may do, in ctx.server: the server API, by client id.
local server = {}

local package_loaded = package.loaded

-- package.loaded first: a call to require (a C function) per server call
-- cost more than the lookup it makes (docs/performance.md).
local function facade()
    return package_loaded["moonwire"] or require "moonwire"
end

function server.send(id, msg, opts) return facade().send(id, msg, opts) end
function server.send_user(user, msg, opts) return facade().send_user(user, msg, opts) end
function server.broadcast(msg, opts) return facade().broadcast(msg, opts) end
function server.room(name) return facade().room(name) end
function server.client(id) return facade().client(id) end
function server.user_clients(user) return facade().user_clients(user) end
function server.emit(channel, message) return _M.emit(channel, message) end

-- The client `id` joins room `name`: its count, or nil, err ("closed"
-- for an unknown client).
function server.join(id, name)
    local client = facade().client(id)
    if not client then
        return nil, "closed"
    end
    local count, _, message = client:join(name)
    if not count then
        return nil, message
    end
    return count
end

function server.leave(id, name)
    local client = facade().client(id)
    if not client then
        return nil, "closed"
    end
    local count, _, message = client:leave(name)
    if not count then
        return nil, message
    end
    return count
end

-- Closes client `id` (code 1000 unless given): true, or nil, "closed".
function server.disconnect(id, code, reason)
    local client = facade().client(id)
    if not client then
        return nil, "closed"
    end
    client:close(code or 1000, reason)
    return true
end

_M.server = server

-- ctx.server in a cluster (docs/subscribers.md, "Across workers and
-- nodes"): every node runs the handler of a cluster-wide event, so what a
-- handler sends reaches this node's clients only; N nodes together reach
-- every member once.
local local_server = setmetatable({}, { __index = server })

function local_server.send_user(user, msg, opts)
    return rooms.current():send_user(user, msg, opts, true)
end

function local_server.broadcast(msg, opts)
    return rooms.current():broadcast_all(msg, opts, true)
end

function local_server.room(name)
    local r = facade().room(name)
    r._local = true
    return r
end

_M.local_server = local_server

-- moonwire.cluster when config cluster is on (runtime.start sets it).
local the_cluster

function _M.set_cluster(cl)
    the_cluster = cl
end


-- ctx.redis: the connection to the server's redis_url, made on first use.
local ctx_mt = {
    __index = function(ctx, key)
        if key ~= "redis" then
            return nil
        end
        local url = ctx._bus._redis_url
        if url == "" then
            return nil
        end
        local red, err = require("moonwire.redis").connect(url)
        if not red then
            log("error", "subscriber '%s': ctx.redis: %s", ctx.subscriber, tostring(err))
            return nil
        end
        rawset(ctx, "redis", red)
        return red
    end,
}


local run_chain -- moonwire.middleware.run, loaded with the first chain

local function invoke(s, ctx)
    local chain = s.middleware
    if chain then
        if not run_chain then
            run_chain = require("moonwire.middleware").run
        end
        return run_chain(chain, ctx, s.handle)
    end
    return s.handle(ctx)
end


local function forget(co)
    if inflight_at[co] then
        inflight_sub[co], inflight_ctx[co], inflight_at[co] = nil, nil, nil
    end
    depth_of[co] = nil
    pending = pending - 1
end


-- Gives up the handlers past their deadline (runs in a timer task, so
-- every handler is parked or not yet started).
local function sweep()
    local t = now()
    local left = false
    for co, at in pairs(inflight_at) do
        if at <= t then
            local s, ctx = inflight_sub[co], inflight_ctx[co]
            forget(co)
            core.task_drop(co)
            stats.timed_out = stats.timed_out + 1
            log("error", "subscriber '%s' (%s) timed out on '%s' after %d ms: given up",
                s.name, where(s), tostring(ctx.channel), ctx._timeout)
        else
            left = true
        end
    end
    if not left and sweeper then
        core.timer_cancel(sweeper)
        sweeper, sweep_every = nil, nil
    end
end


-- Starts the sweeper, often enough for a timeout of ms.
local function watch(ms)
    local every = floor(ms / 10)
    if every < 10 then
        every = 10
    elseif every > 1000 then
        every = 1000
    end
    if sweeper and sweep_every <= every then
        return
    end
    if sweeper then
        core.timer_cancel(sweeper)
    end
    local id = core.timer(every, sweep, true)
    sweeper, sweep_every = id, id and every or nil
end


-- A reload cancelled every app timer, the sweeper with them: start it
-- again for the handlers still running.
function _M.timers_cancelled()
    sweeper, sweep_every = nil, nil
    local shortest
    for co in pairs(inflight_at) do
        local ms = inflight_ctx[co]._timeout
        if not shortest or ms < shortest then
            shortest = ms
        end
    end
    if shortest then
        watch(shortest)
    end
end


-- The task of one handler: run it (through its middleware), log a raise.
local function run(self, s, ctx, depth)
    local co = running()
    depth_of[co] = depth
    local timeout = s.timeout or self._timeout
    if timeout > 0 then
        ctx._timeout = timeout
        inflight_sub[co], inflight_ctx[co], inflight_at[co] = s, ctx, now() + timeout
        watch(timeout)
    end
    if self._rooms then
        rooms.set_current(self._rooms)
    end
    local ok, res, err = xpcall(invoke, capture, s, ctx)
    forget(co)
    local text
    if not ok then
        text = type(res) == "table" and res.traceback or tostring(res)
    elseif res == nil and err ~= nil then
        -- nil, err returned (by the handler, or by middleware.run for an
        -- error no on_error suppressed): a failure too, without a traceback.
        text = type(err) == "table" and tostring(err.message or err.code) or tostring(err)
    end
    if text then
        stats.failed = stats.failed + 1
        log("error", "subscriber '%s' (%s) failed on '%s': %s", s.name, where(s),
            tostring(ctx.channel), text)
    end
end


local function check_emit_channel(channel, level)
    if type(channel) ~= "string" or channel == "" then
        error("bad argument #1 to 'emit' (non-empty string expected, got "
              .. (channel == "" and "\"\"" or type(channel)) .. ")", level + 1)
    end
    if #channel > MAX_CHANNEL then
        error("bad argument #1 to 'emit' (channel longer than " .. MAX_CHANNEL .. " bytes)",
              level + 1)
    end
end


-- Emits `message` on `channel`: every matching subscriber's handler gets
-- it in a task of its own, after the current dispatch. `client`, for the
-- server's events about a client, is ctx.client. Returns the number of
-- handlers started (0: nobody subscribes), or nil, "emit depth exceeded"
-- / "bus full".
function bus.emit(self, channel, message, client)
    check_emit_channel(channel, 2)
    local cl = the_cluster
    if cl then
        -- To the other nodes: what app code and the backend emit, and the
        -- server's client.* events; not what a handler emits (every node
        -- runs that handler) nor what came from another node.
        local ok = not cl.receiving
        if ok and sub(channel, 1, 7) ~= "client." then
            ok = not depth_of[running()]
        elseif ok and type(message) == "table" and message.node == nil then
            message.node = cl.node
        end
        if ok then
            cl:event(channel, message)
        end
    end
    if self._exact[channel] == nil and self._n_wild == 0 then
        return 0
    end
    local list = matching(self, channel, message, client)
    if list == nil or list[1] == nil then
        return 0
    end
    local depth = (depth_of[running()] or 0) + 1
    if depth > self._max_depth then
        stats.refused = stats.refused + 1
        local t = now()
        if t - last_depth_log >= 1000 then
            last_depth_log = t
            log("error", "emit on '%s' refused: events nested %d deep (bus_max_depth); "
                .. "subscribers emitting to each other in a loop?", channel, depth - 1)
        end
        return nil, "emit depth exceeded"
    end
    local n = #list
    if pending + n > self._max_pending then
        stats.dropped = stats.dropped + 1
        if not dropping then
            dropping = true
            log("error", "event on '%s' dropped: %d subscriber handlers are running "
                .. "(bus_max_pending); logged once until they drain", channel, pending)
        end
        return nil, "bus full"
    end
    dropping = false
    stats.emitted = stats.emitted + 1
    local started = 0
    for i = 1, n do
        local s = list[i]
        local ctx = setmetatable({
            channel = channel, message = message, subscriber = s.name, client = client,
            server = cl and local_server or server, _bus = self,
        }, ctx_mt)
        local ok, err = core.spawn(run, self, s, ctx, depth)
        if ok then
            started = started + 1
            pending = pending + 1
        else
            log("error", "subscriber '%s': cannot start its handler: %s", s.name, tostring(err))
        end
    end
    stats.handled = stats.handled + started
    return started
end


-- The bus of the runtime dispatching now (empty when the app has no
-- subscribers).
local EMPTY = _M.new({})

function _M.current()
    local m = rooms.current()
    local host = m and m._host
    return host and host.bus or EMPTY
end


-- moonwire.emit
function _M.emit(channel, message)
    check_emit_channel(channel, 2)
    return _M.current():emit(channel, message)
end


-- Counters since start: emitted, handled, failed, timed_out, refused,
-- dropped, and running (handlers now).
function _M.stats()
    local out = { running = pending }
    for k, v in pairs(stats) do
        out[k] = v
    end
    return out
end


return _M
