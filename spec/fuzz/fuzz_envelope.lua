-- spec/fuzz/fuzz_envelope.lua - the Lua half of fuzz_envelope.c: decode the
-- same payload with lua-cjson, configured as lua/moonwire/protocol.lua
-- configures its own instance, and compare with what the scanner's member
-- visitor (src/envelope.c, mw_envelope_members) said. Any error raised here
-- is a finding.
--
-- Called as check(payload, accepted, top, members): accepted is whether
-- the scanner accepted the payload, top the kind of the whole text (an
-- mw_json_kind_t), members the list of what was visited, in order, as
-- { kraw, key, raw, kind, str }: the raw key and its decoded string
-- (objects only), the raw value, its kind, and for a string value its
-- decoded string (mw_envelope_string). Returns true when cjson accepted a
-- payload that the scanner rejected: fuzz_envelope.c then checks that it
-- is one of the documented differences.

local cjson = require "cjson.safe"

local type = type
local pairs = pairs
local error = error
local byte = string.byte
local find = string.find
local sub = string.sub
local tostring = tostring

local json = cjson.new()
json.decode_invalid_numbers(false)
json.decode_max_depth(64)
local null = json.null

-- mw_json_kind_t
local STRING, NUMBER, OBJECT, ARRAY, TRUE, FALSE, NULL = 1, 2, 3, 4, 5, 6, 7


local function check(ok, what)
    if not ok then
        error("invariant: " .. what, 2)
    end
end


local function same(a, b)
    if type(a) ~= type(b) then
        return false
    end
    if type(a) ~= "table" then
        return a == b
    end
    for k, v in pairs(a) do
        if not same(v, b[k]) then
            return false
        end
    end
    for k in pairs(b) do
        if a[k] == nil then
            return false
        end
    end
    return true
end


local function kind_of(v, raw)
    local t = type(v)
    if t == "string" then
        return STRING
    elseif t == "number" then
        return NUMBER
    elseif t == "boolean" then
        return v and TRUE or FALSE
    elseif v == null then
        return NULL
    elseif t == "table" then
        -- cjson decodes [] and {} alike: the text tells them apart
        return byte(raw, 1) == 123 and OBJECT or ARRAY
    end
    error("cjson returned a " .. t)
end


-- One member's value, decoded by cjson on its own: it must be a value of
-- the kind the scanner reported, and for a string the scanner's decoding.
local function member_value(m)
    local v = json.decode(m.raw)
    check(v ~= nil, "the span " .. m.raw .. " alone is refused by cjson")
    check(kind_of(v, m.raw) == m.kind, "the span " .. m.raw .. ": kind " .. tostring(m.kind))
    if m.kind == STRING then
        check(m.str == v, "mw_envelope_string differs from cjson for " .. m.raw)
    end
    return v
end


return function(payload, accepted, top, members)
    local v = json.decode(payload)
    if v == nil then
        check(not accepted, "the scanner accepts what cjson rejects")
        return false
    end
    if not accepted then
        return true
    end
    local first = find(payload, "[^ \t\r\n]")
    check(kind_of(v, sub(payload, first, first)) == top,
          "the scanner and cjson disagree on the kind")
    -- the top level rebuilt from the members, each decoded alone
    local level
    if top == OBJECT then
        level = {}
        for i = 1, #members do
            local m = members[i]
            -- the key is a JSON string that cjson decodes as the scanner did
            check(m.key ~= nil and json.decode(m.kraw) == m.key,
                  "mw_envelope_string differs from cjson for the key " .. tostring(m.kraw))
            level[m.key] = member_value(m) -- the last duplicate wins
        end
    elseif top == ARRAY then
        level = {}
        for i = 1, #members do
            check(members[i].key == nil, "an array element has a key")
            level[i] = member_value(members[i])
        end
    else
        check(#members == 0, "a scalar has members")
        level = v
    end
    check(same(level, v), "the members are not cjson's top level")
    return false
end
