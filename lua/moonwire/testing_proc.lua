-- moonwire.testing_proc: a server process for specs, the part
-- moonwire.testing_redis and moonwire.testing_nats share: a free loopback
-- port, a command run in the background until it answers, a kill that
-- waits until it no longer does, and a guard that closes it if a spec
-- forgot to.

local io_popen = io.popen
local os_execute = os.execute
local tostring = tostring
local tonumber = tonumber
local getmetatable = getmetatable
local newproxy = newproxy


local _M = require("moonwire.version").module()


-- Runs a shell command; its output (stderr too), or nil.
function _M.run(cmd)
    local p = io_popen(cmd .. " 2>&1")
    if not p then
        return nil
    end
    local out = p:read("*a")
    p:close()
    return out
end


local run = _M.run


local function sleep_ms(ms)
    os_execute("sleep " .. ms / 1000)
end


-- A free loopback port, or nil.
function _M.free_port()
    local out = run("python3 -c 'import socket; s = socket.socket(); "
                    .. "s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1]); s.close()'")
    return tonumber(out)
end


-- Kills pid (SIGKILL: as a crash, connections drop at once) and waits,
-- up to 10 s, until answers() is false.
function _M.kill(pid, answers)
    os_execute("kill -9 " .. pid .. " 2>/dev/null")
    for _ = 1, 500 do
        if not answers() then
            break
        end
        sleep_ms(20)
    end
end


-- Runs cmd (the server `name` on port) in the background until answers()
-- is true, within 10 s. A few tries: a port just released may still be
-- taken for a moment. Returns its pid, or nil, err.
function _M.spawn(name, port, cmd, answers)
    for _ = 1, 5 do
        local out = run(cmd .. " >/dev/null 2>&1 & echo $!")
        local pid = tonumber(out)
        if not pid then
            return nil, "cannot run " .. name .. ": " .. tostring(out)
        end
        for _ = 1, 100 do
            if answers() then
                return pid
            end
            sleep_ms(20)
        end
        _M.kill(pid, answers)
    end
    return nil, name .. " on port " .. port .. " did not answer"
end


-- Closes server (server:close()) when it is collected: set on it, a spec
-- that forgot to close it leaves no process behind.
function _M.guard(server)
    local guard = newproxy(true)
    getmetatable(guard).__gc = function()
        server:close()
    end
    server._guard = guard
end


return _M
