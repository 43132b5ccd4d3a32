-- The server's messages in the package's shape, { type =, ts = now, ... }:
-- protocol.lua writes them with its key order, `ts` as `timestamp`.

local moonwire = require "moonwire"


local _M = {}


function _M.new(t, fields)
    local m = fields or {}
    m.type = t
    m.ts = moonwire.now()
    return m
end


return _M
