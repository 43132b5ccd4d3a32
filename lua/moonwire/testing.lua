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
local package_loaded = package.loaded


local _M = { _VERSION = "0.1.0" }

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
            local len, lo, hi = 0, 0x80, 0xBF
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


-- A fresh in-memory core with the primitives of docs/boundary.md. It keeps
-- `sent[id]` ({ payload =, binary = } frames), `closed[id]` ({ code =,
-- reason = }) and `logs` ({ level =, message = }); `clock`, when set, is what
-- now() returns.
function _M.new_core()
    local c = { version = "0.1.0-test", _fake = true, sent = {}, closed = {}, logs = {} }
    local last_id = 0

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
        local frames = c.sent[id]
        if not frames then
            frames = {}
            c.sent[id] = frames
        end
        frames[#frames + 1] = { payload = payload, binary = is_binary == true }
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

    function c.reset()
        c.sent, c.closed, c.logs, c.clock = {}, {}, {}, nil
    end

    return c
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


-- Ends the connection as if the peer had gone (runs on_disconnect).
function conn.close(self, code, reason)
    self._runtime:disconnect(self.id, code or 1000, reason or "")
end


-- { code =, reason = } when the server closed this client, else nil.
function conn.closed(self)
    return self._core.closed[self.id]
end


local harness = {}
local harness_mt = { __index = harness }


-- The server's defaults for the keys the runtime reads (`moonwire --help`).
local CONFIG_DEFAULTS = { welcome = true }


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
