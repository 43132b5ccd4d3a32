-- spec/support/applog.lua: what an app loaded by moonwire.testing logged,
-- as one text for assert.matches.

local _M = {}


-- The messages app logged at level (every level when nil), one a line.
function _M.text(app, level)
    local out = {}
    for _, entry in ipairs(app:logs(level)) do
        out[#out + 1] = entry.message
    end
    return table.concat(out, "\n")
end


return _M
