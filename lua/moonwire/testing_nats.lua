-- moonwire.testing_nats: a real nats-server for specs
-- (moonwire.testing.nats_server; docs/lua-api.md, "Testing with NATS").
--
-- Starts `nats-server` (Debian: nats-server) on a free loopback port.
-- Specs stop it (SIGKILL, as a crash) and start it again on the same port
-- to see how the app behaves while NATS is away.

local io_popen = io.popen
local os_execute = os.execute
local type = type
local error = error
local tostring = tostring
local tonumber = tonumber
local setmetatable = setmetatable
local getmetatable = getmetatable
local newproxy = newproxy


local _M = require("moonwire.version").module()


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
    for _ = 1, 5 do -- a port just released may still be taken for a moment
        local out = run("nats-server -a 127.0.0.1 -p " .. self.port
                        .. " >/dev/null 2>&1 & echo $!")
        self.pid = tonumber(out)
        if not self.pid then
            return nil, "cannot run nats-server: " .. tostring(out)
        end
        for _ = 1, 100 do
            if answers(self.port) then
                return true
            end
            sleep_ms(20)
        end
        self:stop()
    end
    return nil, "nats-server on port " .. self.port .. " did not answer"
end


-- Kills the server (SIGKILL: connections drop at once) and waits until
-- it no longer answers.
function server.stop(self)
    if not self.pid then
        return
    end
    os_execute("kill -9 " .. self.pid .. " 2>/dev/null")
    self.pid = nil
    for _ = 1, 500 do
        if not answers(self.port) then
            break
        end
        sleep_ms(20)
    end
end


server.close = server.stop


local function free_port()
    local out = run("python3 -c 'import socket; s = socket.socket(); "
                    .. "s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1]); s.close()'")
    return tonumber(out)
end


-- Starts a nats-server. Returns it ({ url =, port = } and start, stop,
-- close), or nil, err.
function _M.start(opts)
    if opts ~= nil and type(opts) ~= "table" then
        error("bad argument #1 to 'nats_server' (table expected, got " .. type(opts) .. ")", 2)
    end
    local port = free_port()
    if not port then
        return nil, "cannot pick a port for nats-server"
    end
    local self = setmetatable({ port = port, url = "nats://127.0.0.1:" .. port }, server_mt)
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
