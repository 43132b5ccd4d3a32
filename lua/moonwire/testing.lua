-- moonwire.testing: runs an app under plain busted, without the server.
-- Requiring it installs an in-memory moonwire.core (unless one is loaded)
-- that records what the runtime sends and closes per client id, and
-- load_app() drives the real runtime (decode, hooks, router, replies, errors,
-- reload) through that core. App specs use only this module and the facade.

local cjson = require "cjson.safe"

local setmetatable = setmetatable
local type = type
local pairs = pairs
local ipairs = ipairs
local tostring = tostring
local error = error
local assert = assert
local xpcall = xpcall
local loadfile = loadfile
local io_open = io.open
local io_popen = io.popen
local traceback = debug.traceback
local os_time = os.time
local byte = string.byte
local sub = string.sub
local gsub = string.gsub
local sort = table.sort
local remove = table.remove
local package_loaded = package.loaded


local _M = require("moonwire.version").module()

_M.null = cjson.null

local LOG_LEVELS = { debug = true, info = true, warn = true, error = true }


-- True when `s` is well-formed UTF-8 (no overlongs, surrogates or code
-- points past U+10FFFF), as the C core requires of text frames.
local function valid_utf8(s)
    local i, n = 1, #s
    while i <= n do
        local c = byte(s, i)
        if c < 0x80 then
            i = i + 1
        else
            local len
            local lo, hi = 0x80, 0xBF
            if c >= 0xC2 and c <= 0xDF then
                len = 2
            elseif c >= 0xE0 and c <= 0xEF then
                len = 3
                if c == 0xE0 then lo = 0xA0 elseif c == 0xED then hi = 0x9F end
            elseif c >= 0xF0 and c <= 0xF4 then
                len = 4
                if c == 0xF0 then lo = 0x90 elseif c == 0xF4 then hi = 0x8F end
            else
                return false
            end
            if i + len - 1 > n then
                return false
            end
            local c2 = byte(s, i + 1)
            if c2 < lo or c2 > hi then
                return false
            end
            for j = i + 2, i + len - 1 do
                local cj = byte(s, j)
                if cj < 0x80 or cj > 0xBF then
                    return false
                end
            end
            i = i + len
        end
    end
    return true
end

_M.valid_utf8 = valid_utf8


local function shell_quote(s)
    return "'" .. gsub(s, "'", "'\\''") .. "'"
end


local function valid_close_code(code)
    return type(code) == "number" and code % 1 == 0
           and ((code >= 1000 and code <= 1003) or (code >= 1007 and code <= 1014)
                or (code >= 3000 and code <= 4999))
end


-- The rooms limits of the server config, with the server's defaults.
local CORE_DEFAULTS = {
    max_connections_per_room = 0,
    max_rooms_per_client = 100,
    client_can_join_multiple_rooms = true,
    max_buffered_bytes = 4194304,
    slow_consumer_policy = "drop",
    event_cache_max_size = 128,
}


local function remove_value(list, value)
    for i = 1, #list do
        if list[i] == value then
            remove(list, i)
            return true
        end
    end
    return false
end


-- A fresh in-memory core with the primitives of docs/boundary.md. It keeps
-- `sent[id]` ({ payload =, binary = } frames), `closed[id]` ({ code =,
-- reason = }) and `logs` ({ level =, message = }); `clock`, when set, is what
-- now() returns. Rooms: `buffered[id]` (bytes a spec pretends are queued, for
-- backpressure), `dropped[id]` and `dropped_total` (broadcasts skipped).
function _M.new_core()
    local c = { _fake = true, sent = {}, closed = {}, logs = {},
                buffered = {}, dropped = {}, dropped_total = 0,
                room_name_max = 256, close_reason_max = 123, max_throttles = 64 }
    local last_id = 0
    local config = {}
    local open = {}          -- id -> true while connected
    local rooms = {}         -- room -> array of member ids, in join order
    local client_rooms = {}  -- id -> array of room names, in join order
    local dedupe = {}        -- id -> { ids = array, seen = set } when opted in

    for key, value in pairs(CORE_DEFAULTS) do
        config[key] = value
    end

    -- record keeps what the server would have written to a client.
    local function record(id, payload, is_binary)
        local frames = c.sent[id]
        if not frames then
            frames = {}
            c.sent[id] = frames
        end
        frames[#frames + 1] = { payload = payload, binary = is_binary == true }
    end

    function c.send(id, payload, is_binary)
        if type(id) ~= "number" then
            error("bad argument #1 to 'send' (number expected, got " .. type(id) .. ")", 2)
        end
        if type(payload) ~= "string" then
            error("bad argument #2 to 'send' (string expected, got " .. type(payload) .. ")", 2)
        end
        if c.closed[id] then
            return nil, "closed"
        end
        if not is_binary and not valid_utf8(payload) then
            return nil, "invalid utf-8"
        end
        record(id, payload, is_binary)
        return true
    end

    function c.close(id, code, reason)
        if not valid_close_code(code) then
            error("bad argument #2 to 'close' (invalid close code " .. tostring(code) .. ")", 2)
        end
        if type(reason) ~= "string" or #reason > 123 then
            error("bad argument #3 to 'close' (string of at most 123 bytes expected)", 2)
        end
        if c.closed[id] then
            return nil, "closed"
        end
        c.closed[id] = { code = code, reason = reason }
        return true
    end

    function c.log(level, message)
        if not LOG_LEVELS[level] then
            error("bad argument #1 to 'log' (invalid level " .. tostring(level) .. ")", 2)
        end
        c.logs[#c.logs + 1] = { level = level, message = tostring(message) }
    end

    function c.now()
        return c.clock or os_time() * 1000
    end

    function c.scandir(path)
        if type(path) ~= "string" then
            error("bad argument #1 to 'scandir' (string expected, got " .. type(path) .. ")", 2)
        end
        -- "//" cannot be a file name, so it safely marks "the directory exists".
        local q = shell_quote(path)
        local p = io_popen("test -d " .. q .. " && echo // && ls -1pA -- " .. q .. " 2>/dev/null")
        if not p then
            return nil, path .. ": cannot list"
        end
        local out = p:read("*a")
        p:close()
        if sub(out, 1, 3) ~= "//\n" then
            return nil, path .. ": no such directory"
        end
        local entries = {}
        for line in out:sub(4):gmatch("[^\n]+") do
            if sub(line, -1) == "/" then
                entries[#entries + 1] = { name = sub(line, 1, -2), type = "dir" }
            else
                entries[#entries + 1] = { name = line, type = "file" }
            end
        end
        sort(entries, function(a, b) return a.name < b.name end)
        return entries
    end

    -- Client ids for harness connections, unique per core.
    function c.next_id()
        last_id = last_id + 1
        return last_id
    end

    -- The server config's rooms limits (load_app passes its config).
    function c.configure(cfg)
        for key, value in pairs(CORE_DEFAULTS) do
            local v = cfg and cfg[key]
            if v == nil then
                v = value
            end
            config[key] = v
        end
    end

    -- What the server does around runtime.connect / runtime.disconnect.
    function c.open(id)
        open[id] = true
        client_rooms[id] = {}
    end

    function c.gone(id)
        if not open[id] then
            return
        end
        for _, name in ipairs(client_rooms[id]) do
            local members = rooms[name]
            remove_value(members, id)
            if #members == 0 then
                rooms[name] = nil
            end
        end
        open[id], client_rooms[id], dedupe[id], c.buffered[id] = nil, nil, nil, nil
    end

    function c.is_open(id)
        return open[id] == true and not c.closed[id]
    end

    -- Misuse raises like the C primitives do (luaL_argerror): the error
    -- points at the caller of the primitive (level 4: check_arg <- check_* <-
    -- primitive <- caller). `want` is a type name; "string?" allows nil.
    local function check_arg(v, want, n, fname)
        local t = type(v)
        if t == want or (want == "string?" and (t == "string" or v == nil)) then
            return
        end
        local expected = want == "string?" and "string or nil" or want
        error("bad argument #" .. n .. " to '" .. fname .. "' (" .. expected
              .. " expected, got " .. t .. ")", 4)
    end

    local function check_id(id, n, fname)
        check_arg(id, "number", n, fname)
    end

    local function check_room(room, n, fname)
        if type(room) ~= "string" or room == "" or #room > 256 then
            error("bad argument #" .. n .. " to '" .. fname .. "' (room name of 1 to 256 bytes "
                  .. "expected)", 3)
        end
    end

    local function check_payload(payload, n, fname)
        check_arg(payload, "string", n, fname)
    end

    local function check_event_id(event_id, n, fname)
        check_arg(event_id, "string?", n, fname)
    end

    local function member(id, room)
        for _, name in ipairs(client_rooms[id] or {}) do
            if name == room then
                return true
            end
        end
        return false
    end

    local function detach(id, room)
        remove_value(client_rooms[id], room)
        local members = rooms[room]
        remove_value(members, id)
        if #members == 0 then
            rooms[room] = nil
        end
    end

    function c.join(id, room)
        check_id(id, 1, "join")
        check_room(room, 2, "join")
        if not c.is_open(id) then
            return nil, "closed"
        end
        local mine = client_rooms[id]
        if member(id, room) then
            return #rooms[room]
        end
        local max = config.max_connections_per_room
        if max > 0 and rooms[room] and #rooms[room] >= max then
            return nil, "room full"
        end
        local moved
        if config.client_can_join_multiple_rooms == false then
            while #mine > 0 do
                moved = moved or mine[1]
                detach(id, mine[1])
            end
        else
            max = config.max_rooms_per_client
            if max > 0 and #mine >= max then
                return nil, "too many rooms"
            end
        end
        local members = rooms[room]
        if not members then
            members = {}
            rooms[room] = members
        end
        members[#members + 1] = id
        mine[#mine + 1] = room
        return #members, moved
    end

    function c.leave(id, room)
        check_id(id, 1, "leave")
        check_room(room, 2, "leave")
        if not open[id] then
            return nil, "closed"
        end
        if not member(id, room) then
            return nil, "not joined"
        end
        detach(id, room)
        return rooms[room] and #rooms[room] or 0
    end

    function c.rooms(id)
        check_id(id, 1, "rooms")
        if not open[id] then
            return nil, "closed"
        end
        local list = {}
        for i, name in ipairs(client_rooms[id]) do
            list[i] = name
        end
        return list
    end

    function c.members(room)
        check_room(room, 1, "members")
        local list = {}
        for i, id in ipairs(rooms[room] or {}) do
            list[i] = id
        end
        return list
    end

    function c.count(room)
        check_room(room, 1, "count")
        return rooms[room] and #rooms[room] or 0
    end

    function c.room_count()
        local n = 0
        for _ in pairs(rooms) do
            n = n + 1
        end
        return n
    end

    -- Queues `payload` to `id` as a fan-out does: "delivered", "dropped"
    -- (backpressure) or nil (closed, or a duplicate event id suppressed).
    local function deliver(id, payload, is_binary, event_id)
        if not c.is_open(id) then
            return nil
        end
        -- As in C: backpressure first, then the client's ring of the last
        -- event_cache_max_size delivered event ids (oldest forgotten first).
        if (c.buffered[id] or 0) > config.max_buffered_bytes then
            c.dropped[id] = (c.dropped[id] or 0) + 1
            c.dropped_total = c.dropped_total + 1
            if config.slow_consumer_policy == "close" then
                c.closed[id] = { code = 1013, reason = "slow consumer" }
            end
            return "dropped"
        end
        local d = dedupe[id]
        if event_id and d and d.seen[event_id] then
            return nil
        end
        record(id, payload, is_binary)
        if event_id and d then
            d.seen[event_id] = true
            d.ids[#d.ids + 1] = event_id
            local max = config.event_cache_max_size
            while #d.ids > max do
                d.seen[remove(d.ids, 1)] = nil
            end
        end
        return "delivered"
    end

    local function fan_out(ids, payload, is_binary, exclude, event_id)
        if not is_binary and not valid_utf8(payload) then
            return nil, "invalid utf-8"
        end
        local delivered, dropped = 0, 0
        for _, id in ipairs(ids) do
            if id ~= exclude then
                local res = deliver(id, payload, is_binary, event_id)
                if res == "delivered" then
                    delivered = delivered + 1
                elseif res == "dropped" then
                    dropped = dropped + 1
                end
            end
        end
        return delivered, dropped
    end

    function c.broadcast(room, payload, is_binary, exclude, event_id)
        check_room(room, 1, "broadcast")
        check_payload(payload, 2, "broadcast")
        check_event_id(event_id, 5, "broadcast")
        return fan_out(c.members(room), payload, is_binary, exclude, event_id)
    end

    function c.send_many(ids, payload, is_binary, event_id)
        if type(ids) ~= "table" then
            error("bad argument #1 to 'send_many' (table expected, got " .. type(ids) .. ")", 2)
        end
        check_payload(payload, 2, "send_many")
        check_event_id(event_id, 4, "send_many")
        return fan_out(ids, payload, is_binary, nil, event_id)
    end

    function c.broadcast_all(payload, is_binary, exclude, event_id)
        check_payload(payload, 1, "broadcast_all")
        check_event_id(event_id, 4, "broadcast_all")
        local ids = {}
        for id in pairs(open) do
            ids[#ids + 1] = id
        end
        sort(ids)
        return fan_out(ids, payload, is_binary, exclude, event_id)
    end

    function c.dedupe(id, enabled)
        check_id(id, 1, "dedupe")
        if not c.is_open(id) then
            return nil, "closed"
        end
        if enabled then
            dedupe[id] = dedupe[id] or { ids = {}, seen = {} }
        else
            dedupe[id] = nil
        end
        return true
    end

    function c.client_stats(id)
        check_id(id, 1, "client_stats")
        if not open[id] then
            return nil, "closed"
        end
        return { buffered = c.buffered[id] or 0, dropped = c.dropped[id] or 0 }
    end

    -- Replies the real core sends without Lua (rate_limited): recorded by
    -- name as { payload =, binary = } so specs can check what was set.
    c.replies = {}
    function c.set_reply(name, payload, binary)
        if name ~= "rate_limited" and name ~= "ping" then
            error("bad argument #1 to 'set_reply' (invalid option '" .. tostring(name) .. "')", 2)
        end
        if type(payload) ~= "string" then
            error("bad argument #2 to 'set_reply' (string expected)", 2)
        end
        c.replies[name] = { payload = payload, binary = binary == true }
        return true
    end

    -- core.set_expiry: recorded per client as { ms =, code =, reason = }
    -- (nil when cancelled); the fake core has no clock to fire it.
    c.expiry = {}
    function c.set_expiry(id, ms, code, reason)
        check_id(id, 1, "set_expiry")
        if c.closed[id] then
            return nil, "closed"
        end
        if ms == nil then
            c.expiry[id] = nil
        else
            c.expiry[id] = { ms = ms, code = code, reason = reason or "" }
        end
        return true
    end

    -- core.throttle: the same GCRA cell as the C core, on c.clock.
    c.throttles = {}
    function c.throttle(id, slot, window_ms, max)
        check_id(id, 1, "throttle")
        if c.closed[id] then
            return nil, "closed"
        end
        local cells = c.throttles[id] or {}
        c.throttles[id] = cells
        local now = c.now() * 1000
        local interval = window_ms * 1000 / max
        local t = math.max(cells[slot] or 0, now)
        if t - now > window_ms * 1000 - interval then
            return nil, "rate limited"
        end
        cells[slot] = t + interval
        return true
    end

    -- The server's watchdog keeps labels by number; here c.labels does, and
    -- c.running_label is the label of the last action dispatched.
    c.labels = {}
    function c.label(text)
        if type(text) ~= "string" then
            error("bad argument #1 to 'label' (string expected, got " .. type(text) .. ")", 2)
        end
        for id, known in ipairs(c.labels) do
            if known == text then
                return id
            end
        end
        c.labels[#c.labels + 1] = text
        return #c.labels
    end

    function c.running(id)
        c.running_label = c.labels[id]
    end

    function c.reset()
        c.throttles = {}
        c.expiry = {}
        c.running_label = nil
        c.sent, c.closed, c.logs, c.clock = {}, {}, {}, nil
        c.buffered, c.dropped, c.dropped_total = {}, {}, 0
        open, rooms, client_rooms, dedupe = {}, {}, {}, {}
    end

    return setmetatable(c, require("moonwire.version").core_mt) -- version: the compiled one
end


if not package_loaded["moonwire.core"] then
    package_loaded["moonwire.core"] = _M.new_core()
end

-- The in-memory core in use, or nil when a real one was already loaded.
_M.core = package_loaded["moonwire.core"]._fake and package_loaded["moonwire.core"] or nil


local function decode_frame(frame)
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
local conn_mt = { __index = conn }


-- Every frame sent to this client, raw: { payload =, binary = }.
function conn.frames(self)
    local list = {}
    for i, frame in ipairs(self._core.sent[self.id] or {}) do
        list[i] = { payload = frame.payload, binary = frame.binary }
    end
    return list
end


-- Every message sent to this client, JSON text decoded (other frames raw).
function conn.sent(self)
    local list = {}
    for i, frame in ipairs(self._core.sent[self.id] or {}) do
        list[i] = decode_frame(frame)
    end
    return list
end


function conn.last(self)
    local frames = self._core.sent[self.id]
    local frame = frames and frames[#frames]
    return frame and decode_frame(frame) or nil
end


-- Delivers a raw message as the server would; returns what was sent to
-- this client meanwhile (decoded like sent()).
function conn.send(self, payload, is_binary)
    local before = #(self._core.sent[self.id] or {})
    self._runtime:message(self.id, payload, is_binary == true)
    local list = {}
    local frames = self._core.sent[self.id] or {}
    for i = before + 1, #frames do
        list[#list + 1] = decode_frame(frames[i])
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


-- Ends the connection as if the peer had gone (runs on_disconnect, then
-- drops its memberships, in the server's order).
function conn.close(self, code, reason)
    self._runtime:disconnect(self.id, code or 1000, reason or "")
    self._core.gone(self.id)
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


-- { code =, reason = } when the server closed this client, else nil.
function conn.closed(self)
    return self._core.closed[self.id]
end


local harness = {}
local harness_mt = { __index = harness }


-- The server's defaults for the keys the runtime reads (`moonwire --help`).
local CONFIG_DEFAULTS = {
    welcome = true,
    system_controller = true,
    allow_client_broadcast = false,
    dedupe = false,
}


local function load_config(dir)
    local path = dir .. "/config.lua"
    local f = io_open(path, "rb")
    if not f then
        return {}
    end
    f:close()
    local chunk, err = loadfile(path)
    if not chunk then
        return nil, err
    end
    local ok, config = xpcall(chunk, traceback)
    if not ok then
        return nil, config
    end
    if type(config) ~= "table" then
        return nil, path .. ": config.lua must return a table"
    end
    return config
end


-- Loads the app in `dir` (default ".") with its config.lua, overridden key by
-- key by opts.config and completed with the server's defaults, and runs
-- on_start unless opts.start == false.
-- Returns a harness or nil, err.
function _M.load_app(dir, opts)
    dir = dir or "."
    opts = opts or {}
    local core = _M.core
    if not core then
        return nil, "moonwire.testing needs its in-memory core, but a real moonwire.core is loaded"
    end

    local config, err = load_config(dir)
    if not config then
        return nil, err
    end
    for key, value in pairs(opts.config or {}) do
        config[key] = value
    end
    for key, value in pairs(CONFIG_DEFAULTS) do
        if config[key] == nil then
            config[key] = value
        end
    end
    if config.app == nil then
        config.app = {}
    end

    -- Required here, not at the top, so that specs which only need the
    -- in-memory core (spec/support/fake_core.lua) load nothing else.
    core.configure(config)
    local rt = require("moonwire.runtime").new()
    local ok
    ok, err = rt:init({ app_dir = dir, config = config, mode = "test" })
    if not ok then
        return nil, err
    end
    if opts.start ~= false then
        rt:start()
    end
    return setmetatable({ runtime = rt, core = core, dir = dir, config = config }, harness_mt)
end


-- Connects a fake client; `info` overrides the defaults of docs/boundary.md.
function harness.connect(self, info)
    local full = {
        remote_addr = "127.0.0.1",
        remote_port = 40000,
        path = "/",
        query = "",
        headers = {},
    }
    for key, value in pairs(info or {}) do
        full[key] = value
    end
    local id = self.core.next_id()
    self.core.open(id)
    self.runtime:connect(id, full)
    return setmetatable({
        id = id,
        client = self.runtime:client(id),   -- the server-side client object
        _runtime = self.runtime,
        _core = self.core,
        _last_request = 0,
    }, conn_mt)
end


function harness.reload(self)
    return self.runtime:reload()
end


function harness.routes(self)
    return self.runtime:routes()
end


-- Log lines recorded so far, optionally only those of one level.
function harness.logs(self, level)
    local list = {}
    for _, entry in ipairs(self.core.logs) do
        if level == nil or entry.level == level then
            list[#list + 1] = entry
        end
    end
    return list
end


return _M
