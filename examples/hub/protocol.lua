-- The hub wire protocol: flat JSON objects, no envelope, no ids.
--
--   {"type":"echo","data":D}             -> {"type":"echo","data":D}
--   {"type":"subscribe","room":R}        -> {"type":"subscribed","room":R}
--   {"type":"publish","room":R,"data":D} -> every member of R gets
--                                           {"type":"message","room":R,"data":D}
--
-- decode() routes {"type":T,...} to the action T of controllers/hub.lua with
-- the whole object as `data`; encode() is moonwire.protocol's, which writes
-- any table as plain JSON, so controllers send hub messages as they are.
-- Data is relayed as the client sent it, empty arrays included: decode()
-- marks each `[]` with moonwire.protocol.empty_array, which encode() writes
-- as `[]` again (Debian's lua-cjson decodes `[]` and `{}` to the same empty
-- table). Errors use the default envelope:
-- {"type":"error","error":{"code":...,"message":...}}.

local cjson = require "cjson.safe"
local protocol = require "moonwire.protocol"

local type = type
local pairs = pairs
local byte = string.byte
local find = string.find
local match = string.match
local sub = string.sub
local concat = table.concat


local _M = {}


-- A private cjson instance with the same limits as moonwire.protocol.
local json = cjson.new()
json.decode_invalid_numbers(false)
json.decode_max_depth(64)

local EMPTY_ARRAY = protocol.empty_array
local EMPTY_ARRAY_JSON = json.encode(EMPTY_ARRAY)


-- Replaces each empty JSON array outside strings with the marker's JSON.
-- Only called on text with a "[" in it (pattern searches and the loop
-- below are not JIT-compiled; the plain find that guards them is).
local function mark_empty_arrays(text)
    local out, n, done, i = {}, 0, 1, 1
    while true do
        i = find(text, '["[]', i)
        if not i then
            break
        end
        if byte(text, i) == 34 then -- '"': skip the string, escapes included
            i = i + 1
            while true do
                local q = find(text, '["\\]', i)
                if not q then
                    return text -- unterminated: json.decode refuses it
                end
                i = q + (byte(text, q) == 92 and 2 or 1)
                if byte(text, q) == 34 then
                    break
                end
            end
        else
            local after = match(text, "^%[[ \t\r\n]*%]()", i)
            if after then
                out[n + 1], out[n + 2] = sub(text, done, i - 1), EMPTY_ARRAY_JSON
                n, done = n + 2, after
                i = after
            else
                i = i + 1
            end
        end
    end
    if n == 0 then
        return text
    end
    out[n + 1] = sub(text, done)
    return concat(out)
end


function _M.decode(payload, is_binary)
    if is_binary then
        return nil, "INVALID_MESSAGE", "binary frames are not supported: send JSON text"
    end
    local marked = find(payload, "[", 1, true) and mark_empty_arrays(payload)
    local msg, err = json.decode(marked or payload)
    if type(msg) ~= "table" then
        return nil, "INVALID_MESSAGE", msg == nil and "malformed JSON: " .. (err or "empty message")
                                       or "a message must be a JSON object"
    end
    if marked and marked ~= payload then
        -- Only data is relayed: anywhere else an empty array is the empty
        -- table it always was (so "room":[] is still no room name).
        for key, value in pairs(msg) do
            if value == EMPTY_ARRAY and key ~= "data" then
                msg[key] = {}
            end
        end
    end
    local t = msg.type
    if type(t) ~= "string" then
        return nil, "INVALID_MESSAGE", "field 'type' must be a string"
    end
    -- No id: the hub protocol has no request/reply envelope, controllers
    -- send their answers themselves.
    return { type = "hub", action = t, data = msg }
end


_M.encode = protocol.encode


return _M
