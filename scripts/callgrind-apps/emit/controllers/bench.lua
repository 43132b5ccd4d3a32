-- Two echoes that differ in one call: `emit` first publishes the message
-- on channel "nobody", which no subscriber takes. Run back to back under
-- scripts/callgrind-echo, their difference per message is what such an
-- emit costs.
local moonwire = require "moonwire"
local bus = require "moonwire.bus"


local _M = {}


-- {"type":"echo","data":D} -> {"type":"echo","data":D} (examples/hub's echo)
function _M.echo(client, msg)
    client:send({ type = "echo", data = msg.data })
end


-- {"type":"emit","data":D}: moonwire.emit("nobody", msg), then the same echo.
function _M.emit(client, msg)
    moonwire.emit("nobody", msg)
    client:send({ type = "echo", data = msg.data })
end



-- {"type":"emit_bus","data":D}: the same emit without moonwire.emit's
-- wrapper (init.lua: its checks and its require per call), straight on the
-- current bus; the difference to `emit` is what the wrapper costs.
function _M.emit_bus(client, msg)
    bus.current():emit("nobody", msg)
    client:send({ type = "echo", data = msg.data })
end


return _M
