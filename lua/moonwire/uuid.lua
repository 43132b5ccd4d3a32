-- moonwire.uuid: random (version 4) UUIDs, for ids an app hands out
-- (client ids, event ids). The bytes come from the kernel's /dev/urandom,
-- read 4 KiB at a time (256 ids per read), so an id costs a read on the
-- event loop only once in 256 times.

local bit = require "bit"

local band = bit.band
local bor = bit.bor
local byte = string.byte
local format = string.format
local open = io.open
local error = error


local _M = require("moonwire.version").module()


local CHUNK = 16 * 256

local pool, pos = "", 1


local function refill()
    local f, err = open("/dev/urandom", "rb")
    if not f then
        error("uuid: cannot open /dev/urandom: " .. err)
    end
    local bytes = f:read(CHUNK)
    f:close()
    if not bytes or #bytes ~= CHUNK then
        error("uuid: short read from /dev/urandom")
    end
    pool, pos = bytes, 1
end


-- "8c1f3c1e-9f0a-4d6e-b1f2-0a3b4c5d6e7f": 122 random bits, the version
-- nibble 4 and the RFC 4122 variant bits 10.
function _M.v4()
    if pos + 15 > #pool then
        refill()
    end
    local b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15, b16 =
        byte(pool, pos, pos + 15)
    pos = pos + 16
    b7 = bor(band(b7, 0x0f), 0x40)
    b9 = bor(band(b9, 0x3f), 0x80)
    return format("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                  b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15, b16)
end


return _M
