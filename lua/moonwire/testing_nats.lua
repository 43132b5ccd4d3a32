-- moonwire.testing_nats: a real nats-server for specs
-- (moonwire.testing.nats_server; docs/lua-api.md, "Testing with NATS").
--
-- Starts `nats-server` (Debian: nats-server) on a free loopback port.
-- Specs stop it (SIGKILL, as a crash) and start it again on the same port
-- to see how the app behaves while NATS is away.

local proc = require("moonwire.testing_proc")
local run = proc.run
local type = type
local error = error
local setmetatable = setmetatable


local _M = require("moonwire.version").module()


-- Whether a NATS server answers on port (its INFO line on connect).
local function answers(port)
    local script = "import socket\ntry:\n s=socket.create_connection((\"127.0.0.1\"," .. port
                   .. "),1); s.settimeout(1); print(s.recv(5).decode())\n"
                   .. "except Exception: print(\"no\")"
    local out = run("python3 -c '" .. script .. "'")
    return out ~= nil and out:find("INFO", 1, true) ~= nil
end


local server = {}
local server_mt = { __index = server }


-- Starts (again) the server on the same port. true, or nil, err when it
-- does not answer within 10 s.
function server.start(self)
    if self.pid then
        return true
    end
    local err
    self.pid, err = proc.spawn("nats-server", self.port,
                               "nats-server -a 127.0.0.1 -p " .. self.port,
                               function() return answers(self.port) end)
    return self.pid ~= nil or nil, err
end


-- Kills the server (SIGKILL: connections drop at once) and waits until
-- it no longer answers.
function server.stop(self)
    if not self.pid then
        return
    end
    proc.kill(self.pid, function() return answers(self.port) end)
    self.pid = nil
end


server.close = server.stop


-- Starts a nats-server. Returns it ({ url =, port = } and start, stop,
-- close), or nil, err.
function _M.start(opts)
    if opts ~= nil and type(opts) ~= "table" then
        error("bad argument #1 to 'nats_server' (table expected, got " .. type(opts) .. ")", 2)
    end
    local port = proc.free_port()
    if not port then
        return nil, "cannot pick a port for nats-server"
    end
    local self = setmetatable({ port = port, url = "nats://127.0.0.1:" .. port }, server_mt)
    proc.guard(self)
    local ok, err = self:start()
    if not ok then
        self:close()
        return nil, err
    end
    return self
end


return _M
