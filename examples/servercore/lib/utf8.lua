-- UTF-8 validation (RFC 3629: no overlong forms, no surrogates, nothing past
-- U+10FFFF), for binary frames: the guide's handler reads every frame as
-- text (data.toString()), so a binary frame holding JSON is a message like
-- a text frame; the core checks text frames itself, binary ones are
-- checked here before their strings can reach a text frame going out.

local byte = string.byte
local find = string.find


local _M = {}


-- true when s is valid UTF-8.
function _M.valid(s)
    local i, n = 1, #s
    while i <= n do
        -- Runs of ASCII at once.
        local _, e = find(s, "^[%z\1-\127]+", i)
        if e then
            i = e + 1
            if i > n then
                return true
            end
        end
        local c = byte(s, i)
        local len, min
        if c >= 0xC2 and c <= 0xDF then
            len, min = 2, 0x80
        elseif c >= 0xE0 and c <= 0xEF then
            len, min = 3, 0x800
        elseif c >= 0xF0 and c <= 0xF4 then
            len, min = 4, 0x10000
        else
            return false
        end
        if i + len - 1 > n then
            return false
        end
        local cp = c % (2 ^ (7 - len))
        for k = 1, len - 1 do
            local cc = byte(s, i + k)
            if cc < 0x80 or cc > 0xBF then
                return false
            end
            cp = cp * 64 + (cc - 0x80)
        end
        if cp < min or cp > 0x10FFFF or (cp >= 0xD800 and cp <= 0xDFFF) then
            return false
        end
        i = i + len
    end
    return true
end


return _M
