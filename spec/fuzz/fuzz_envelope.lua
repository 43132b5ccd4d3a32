-- spec/fuzz/fuzz_envelope.lua - the Lua half of fuzz_envelope.c: decode the
-- same payload with lua-cjson, configured as lua/moonwire/protocol.lua
-- configures its own instance, and compare with what the envelope scanner
-- (src/envelope.c) said. Any error raised here is a finding.
--
-- Called as check(payload, status, fields): status 0 (an object), 1 (JSON
-- but not an object) or 2 (rejected); fields is a list of { name, raw,
-- kind, str } for the envelope keys (kind 0: absent; str: the decoded
-- string of a string value). Returns true when cjson accepted a payload
-- that the scanner rejected: fuzz_envelope.c then checks that it is one of
-- the documented differences.

local cjson = require "cjson.safe"

local type = type
local pairs = pairs
local error = error
local byte = string.byte
local find = string.find
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


return function(payload, status, fields)
    local v = json.decode(payload)
    if v == nil then
        check(status == 2, "the scanner accepts what cjson rejects")
        return false
    end
    if status == 2 then
        return true
    end
    local first = find(payload, "[^ \t\r\n]")
    local object = type(v) == "table" and byte(payload, first) == 123
    check((status == 0) == object, "the scanner and cjson disagree on object or not")
    if status ~= 0 then
        return false
    end
    for i = 1, #fields do
        local f = fields[i]
        local want = v[f.name]
        if f.kind == 0 then
            check(want == nil, f.name .. " is absent for the scanner, not for cjson")
        else
            check(want ~= nil, f.name .. " is absent for cjson, not for the scanner")
            -- the span is a JSON text of its own that decodes to the same value
            local got = json.decode(f.raw)
            check(got ~= nil and same(got, want),
                  f.name .. ": the span " .. f.raw .. " is not cjson's value")
            check(kind_of(want, f.raw) == f.kind, f.name .. ": kind " .. tostring(f.kind))
            if f.kind == STRING then
                check(f.str == want, f.name .. ": mw_envelope_string differs from cjson")
            end
        end
    end
    return false
end
