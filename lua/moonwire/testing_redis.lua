-- moonwire.testing_redis: a real redis-server for specs
-- (moonwire.testing.redis_server; docs/lua-api.md, "Testing with Redis").
--
-- Starts `redis-server` (Debian: redis-server) on a free loopback port and
-- a unix socket in a temporary directory, without persistence, and talks
-- to it from outside with `redis-cli` (what a backend would do: publish,
-- read a key). Specs stop it, kill it and start it again to see how the
-- app behaves while Redis is away.

local proc = require("moonwire.testing_proc")
local run = proc.run
local os_execute = os.execute
local type = type
local error = error
local tostring = tostring
local concat = table.concat
local gsub = string.gsub
local select = select
local setmetatable = setmetatable


local _M = require("moonwire.version").module()


local function quote(s)
    return "'" .. gsub(tostring(s), "'", "'\\''") .. "'"
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
    local err
    self.pid, err = proc.spawn("redis-server", self.port, concat(args, " "),
                               function() return answers(self, true) end)
    return self.pid ~= nil or nil, err
end


-- Kills the server (SIGKILL: as a crash, connections drop at once) and
-- waits until it no longer answers.
function server.stop(self)
    if not self.pid then
        return
    end
    proc.kill(self.pid, function() return answers(self) or answers(self, true) end)
    self.pid = nil
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


-- Starts a redis-server: opts.password sets requirepass. Returns the
-- server ({ url =, unix_url =, port =, socket = } and the methods above),
-- or nil, err.
function _M.start(opts)
    opts = opts or {}
    if type(opts) ~= "table" then
        error("bad argument #1 to 'redis_server' (table expected, got " .. type(opts) .. ")", 2)
    end
    local port = proc.free_port()
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
    proc.guard(self)
    local ok, err = self:start()
    if not ok then
        self:close()
        return nil, err
    end
    return self
end


return _M
