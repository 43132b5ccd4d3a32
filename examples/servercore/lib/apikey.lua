-- `Authorization: apikey KEY`, the server API's scheme (docs/protocol.md,
-- "The server API"), for the app's own backend route (POST /broadcast):
-- the same header and the same key (app.api_key, which config.lua sets
-- from the variable that sets the server's api_key).
--
-- The comparison runs over every byte of what was presented, with no early
-- exit, and folds the length difference in: its time depends on the guess's
-- length only, not on how much of it is right.

local bit = require "bit"

local bxor = bit.bxor
local bor = bit.bor
local byte = string.byte
local find = string.find
local sub = string.sub
local type = type


local _M = {}


local function same(given, want)
    local n, m = #given, #want
    local diff = bxor(n, m)
    if m == 0 then
        return false
    end
    for i = 1, n do
        diff = bor(diff, bxor(byte(given, i), byte(want, (i - 1) % m + 1)))
    end
    return diff == 0
end


-- Whether the Authorization header's value carries `key`: the scheme in any
-- case, one or more spaces, then exactly the key. An empty key never
-- matches.
function _M.ok(key, authorization)
    if type(key) ~= "string" or key == "" or type(authorization) ~= "string" then
        return false
    end
    local _, e = find(authorization, "^[Aa][Pp][Ii][Kk][Ee][Yy] +")
    if not e then
        return false
    end
    return same(sub(authorization, e + 1), key)
end


return _M
