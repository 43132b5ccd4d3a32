-- spec/fuzz/fuzz_protocol.lua - the Lua half of fuzz_protocol.c: decode one
-- payload with moonwire.protocol and check what came back. Any error raised
-- here (by decode itself, or by a broken invariant) is a finding.
--
-- `feature(n)` (from C) tells libFuzzer about the shape of what decode
-- returned (kinds of id, lengths, magnitudes of numbers), since libFuzzer
-- sees no coverage inside cjson: inputs that decode to a new shape are kept
-- and mutated further.

local feature = ...

local protocol = require "moonwire.protocol"
local json = require "moonwire.json"
local cjson = require "cjson.safe"

local type = type
local tostring = tostring
local error = error
local pairs = pairs
local format = string.format
local floor = math.floor
local log10 = math.log10
local abs = math.abs
local min = math.min
local huge = math.huge


local function check(ok, what)
    if not ok then
        error("invariant: " .. what, 2)
    end
end


-- A small number (0..127) for the shape of one decoded value.
local function shape(v)
    local t = type(v)
    if v == nil then
        return 0
    elseif t == "string" then
        return 1 + min(#v, 15)
    elseif t == "boolean" then
        return 17
    elseif t == "table" then
        local n = 0
        for _ in pairs(v) do
            n = n + 1
        end
        return 18 + min(n, 7)
    elseif t ~= "number" then
        return 26
    elseif v ~= v then
        return 27
    elseif v == huge or v == -huge then
        return 28
    end
    -- digits kept by %.17g and the decimal exponent, in coarse steps
    local digits = #format("%.17g", abs(v))
    local exp = v == 0 and 0 or floor(log10(abs(v)))
    return 29 + min(digits, 24) + (exp < 0 and 25 or 50) + min(floor(abs(exp) / 16), 24)
end


-- The same value, as lua-cjson and moonwire.json (fully decoded) give it:
-- one decoder checked against the other.
local function same(a, b, depth)
    if type(a) ~= "table" or type(b) ~= "table" then
        return a == b or (a ~= a and b ~= b)
    end
    if depth > 70 then
        return false
    end
    for k, v in pairs(a) do
        if not same(v, rawget(b, k), depth + 1) then
            return false
        end
    end
    for k in pairs(b) do
        if rawget(a, k) == nil then
            return false
        end
    end
    return true
end


local function is_id(id)
    local t = type(id)
    return id == nil or t == "string" or t == "number"
end


return function(payload)
    local msg, code, message, id = protocol.decode(payload, false)
    local answers
    if msg ~= nil then
        check(type(msg) == "table", "decode returned a " .. type(msg))
        check(type(msg.type) == "string" and msg.type ~= "", "msg.type")
        check(type(msg.action) == "string" and msg.action ~= "", "msg.action")
        check(type(msg.data) == "table", "msg.data")
        check(is_id(msg.id), "msg.id")
        -- Untouched, data is written as the client's text; fully decoded, it
        -- is what lua-cjson decodes (a message with no data has {} instead).
        local data = msg.data
        local text = json.encode(data)
        local sent = cjson.decode(payload)
        if sent and sent.data ~= nil and sent.data ~= cjson.null then
            check(same(cjson.decode(text), sent.data, 0), "data does not encode as sent")
            check(same(json.load(data), sent.data, 0), "data decodes otherwise than cjson")
            check(json.encode(data) == text, "data read and unchanged is not written as sent")
        end
        feature(shape(msg.id))
        feature(128 + shape(msg.data))
        feature(256 + shape(msg.type))
        answers = { protocol.reply(msg, nil), protocol.error(msg.id, "NOT_FOUND") }
    else
        check(type(code) == "string" and protocol.codes[code] == code, "code")
        check(type(message) == "string", "message")
        check(is_id(id), "id")
        feature(384 + shape(id))
        answers = { protocol.error(id, code, message) }
    end

    -- Every request can be answered, with its own id (how a client matches
    -- the answer to its request).
    local out = {}
    for i = 1, #answers do
        local s, err = protocol.encode(answers[i])
        check(type(s) == "string", "cannot encode the answer: " .. tostring(err))
        local back = cjson.decode(s)
        check(type(back) == "table" and back.id == answers[i].id,
              "the answer carries another id: " .. s)
        out[i] = s
    end

    local m, c = protocol.decode(payload, true)
    check(m == nil and c == "INVALID_MESSAGE", "a binary frame was not refused")
    return out[1], out[2]
end
