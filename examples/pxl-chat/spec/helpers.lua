-- Shared helpers of the pxl-chat specs: the virtual clock, a client on
-- PXL's WebSocket path and the last frame it got.

local assert = require "luassert" -- busted's, which is not a global here

local _M = {}


-- The virtual clock, and the same instant as toISOString writes it.
_M.CLOCK = 1700000000000
_M.ISO = "2023-11-14T22:13:20.000Z"


-- A client of app on /ws, upgraded.
function _M.connect(app)
    local ws = app:connect({ path = "/ws" })
    assert.equal(101, ws.status)
    return ws
end


-- The text of the last frame sent to ws.
function _M.last_text(ws)
    local frames = ws:frames()
    return frames[#frames].payload
end


return _M
