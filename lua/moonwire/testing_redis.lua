-- moonwire.testing_redis: a real redis-server for specs
-- (moonwire.testing.redis_server; docs/lua-api.md, "Testing with Redis").
--
-- Starts `redis-server` (Debian: redis-server) on a free loopback port and
-- a unix socket in a temporary directory, without persistence, and talks
-- to it from outside with `redis-cli` (what a backend would do: publish,
-- read a key). Specs stop it, kill it and start it again to see how the
-- app behaves while Redis is away.

local io_popen = io.popen
local os_execute = os.execute
local type = type
local error = error
local tostring = tostring
local tonumber = tonumber
local concat = table.concat
local gsub = string.gsub
local select = select
local setmetatable = setmetatable
local getmetatable = getmetatable
local newproxy = newproxy


local _M = require("moonwire.version").module()


local function quote(s)
    return "'" .. gsub(tostring(s), "'", "'\\''") .. "'"
end


local function run(cmd)
    local p = io_popen(cmd .. " 2>&1")
    if not p then
        return nil
    end
    local out = p:read("*a")
    p:close()
    return out
end


local function sleep_ms(ms)
    os_execute("sleep " .. ms / 1000)
end


local server = {}
local server_mt = { __index = server }


-- Runs redis-cli against the server with these arguments; returns its
-- output without the final newline (a reply, or an "(error) ..." line).
function server.cli(self, ...)
    local args = { "redis-cli", "--no-auth-warning", "-s", quote(self.socket) }
    if self.password then
        args[#args + 1] = "-a " .. quote(self.password)
    end
    for i = 1, select("#", ...) do
        args[#args + 1] = quote((select(i, ...)))
    end
    local out = run(concat(args, " "))
    return out and (gsub(out, "\n$", ""))
end


local function answered(out)
    return out ~= nil and (out == "PONG" or out:find("NOAUTH", 1, true) ~= nil)
end


-- Whether the server answers on its socket, or (tcp) on its port.
local function answers(self, tcp)
    if not tcp then
        return answered(self:cli("PING"))
    end
    local out = run("redis-cli --no-auth-warning -h 127.0.0.1 -p " .. self.port .. " PING")
    return answered(out and (gsub(out, "\n$", "")))
end


-- Starts (again) the server, on the same port and socket. true, or nil,
-- err when it does not answer within 10 s.
function server.start(self)
    if self.pid then
        return true
    end
    local args = {
        "redis-server", "--port", self.port, "--bind", "127.0.0.1", "--save", "''",
        "--appendonly", "no", "--dir", quote(self.dir), "--unixsocket", quote(self.socket),
        "--unixsocketperm", "700", "--protected-mode", "no", "--loglevel", "warning",
    }
    if self.password then
        args[#args + 1] = "--requirepass " .. quote(self.password)
    end
    -- A few tries: a port just released may still be taken for a moment.
    for _ = 1, 5 do
        local out = run(concat(args, " ") .. " >/dev/null 2>&1 & echo $!")
        self.pid = tonumber(out)
        if not self.pid then
            return nil, "cannot run redis-server: " .. tostring(out)
        end
        for _ = 1, 100 do
            if answers(self, true) then
                return true
            end
            sleep_ms(20)
        end
        self:stop()
    end
    return nil, "redis-server on port " .. self.port .. " did not answer"
end


-- Kills the server (SIGKILL: as a crash, connections drop at once) and
-- waits until it no longer answers.
function server.stop(self)
    if not self.pid then
        return
    end
    os_execute("kill -9 " .. self.pid .. " 2>/dev/null")
    self.pid = nil
    for _ = 1, 500 do
        if not answers(self) and not answers(self, true) then
            break
        end
        sleep_ms(20)
    end
    os_execute("rm -f " .. quote(self.socket))
end


-- Stops the server and removes its directory.
function server.close(self)
    self:stop()
    if self.dir then
        os_execute("rm -rf " .. quote(self.dir))
        self.dir = nil
    end
end


local function free_port()
    local out = run("python3 -c 'import socket; s = socket.socket(); "
                    .. "s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1]); s.close()'")
    return tonumber(out)
end


-- Starts a redis-server: opts.password sets requirepass. Returns the
-- server ({ url =, unix_url =, port =, socket = } and the methods above),
-- or nil, err.
function _M.start(opts)
    opts = opts or {}
    if type(opts) ~= "table" then
        error("bad argument #1 to 'redis_server' (table expected, got " .. type(opts) .. ")", 2)
    end
    local port = free_port()
    local dir = run("mktemp -d /tmp/moonwire-redis-XXXXXX")
    dir = dir and gsub(dir, "\n$", "")
    if not port or not dir or dir == "" then
        return nil, "cannot pick a port or a directory for redis-server"
    end
    local self = setmetatable({
        port = port,
        dir = dir,
        socket = dir .. "/redis.sock",
        password = opts.password,
        url = "redis://127.0.0.1:" .. port,
    }, server_mt)
    self.unix_url = "unix:" .. self.socket
    -- Killed when collected, if a spec forgot to close it.
    local guard = newproxy(true)
    getmetatable(guard).__gc = function()
        self:close()
    end
    self._guard = guard
    local ok, err = self:start()
    if not ok then
        self:close()
        return nil, err
    end
    return self
end


return _M
