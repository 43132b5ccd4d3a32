-- moonwire.json: JSON values that keep the client's bytes.
--
-- A payload passes through the server unchanged (docs/protocol.md, "Data
-- is forwarded as sent"): what Lua does not read is never decoded, and what
-- it forwards without changing it is written back as the original text, so
-- 17-digit integers, 1e400, -0, 1E+2, key order, duplicate keys, escapes
-- and empty arrays all arrive as they were sent.
--
-- decode() decodes one level (moonwire.core.json_level, src/lua/json_lua.c):
-- an object inside of more than 256 bytes is an empty table with the LAZY
-- metatable, whose text is kept in raw_of; the first read or write of one
-- of its fields (or pairs / next on it) decodes its own level into the same
-- table, which is from then on an ordinary table. Arrays (so `#` works: Lua
-- 5.1 tables have no __len) and small objects are decoded at once, their
-- large objects again lazy. Values are lua-cjson's
-- (strtod numbers, cjson.null), so Lua reads what it read before.
--
-- encode() writes with lua-cjson, except that a table from decode() whose
-- value still equals its text (an untouched lazy one, or one read and left
-- as it was: compared level by level with a fresh decode) is spliced in as
-- that text, and so is the last decoded message's scalar `data` (in a field
-- named `data`) when lua-cjson would write it differently (escapes, '/',
-- numbers), and a json.literal. A scalar taken out of a decoded table keeps
-- its text through json.field(t, key).

local core = require "moonwire.core"
local cjson = require "cjson.safe"

local type = type
local rawget = rawget
local rawset = rawset
local getmetatable = getmetatable
local setmetatable = setmetatable
local tostring = tostring
local next = next -- the built-in one (lazy_next is installed in _G below)
local json_level = core.json_level
local gsub = string.gsub
local find = string.find
local sub = string.sub
local format = string.format
local byte = string.byte
local concat = table.concat
local sort = table.sort
local error = error


local _M = require("moonwire.version").module()


-- The metatable of an object not decoded yet.
local LAZY = {}

-- The metatable of json.literal's values: opaque, written as their text.
local LITERAL = {
    __index = function()
        error("a json.literal value has no fields: decode json.raw(value) to read it", 2)
    end,
    __newindex = function()
        error("a json.literal value cannot be changed", 2)
    end,
}

-- table -> its JSON text, for every table decode() made (weak keys: the
-- text goes with the table).
local raw_of = setmetatable({}, { __mode = "k" })

-- The same for the fresh decodes unchanged() compares against.
local scratch = setmetatable({}, { __mode = "k" })

-- A private cjson instance: the settings moonwire.protocol documents.
local enc = cjson.new()
enc.encode_max_depth(64)
-- 14 significant digits: the most Debian's lua-cjson 2.1.0 writes.
enc.encode_number_precision(14)

_M.null = cjson.null


-- Decodes the lazy table t's own level into t.
local function materialize(t)
    setmetatable(t, nil)
    -- Cannot fail: the text was validated with the message it came in.
    json_level(raw_of[t], LAZY, raw_of, t)
end

LAZY.__index = function(t, key)
    materialize(t)
    return rawget(t, key)
end

LAZY.__newindex = function(t, key, value)
    materialize(t)
    rawset(t, key, value)
end


-- pairs, next, ipairs and setmetatable know lazy tables (Lua 5.1 has no
-- __pairs; ipairs reads without metamethods; an app's metatable would
-- replace LAZY): installed in _G when this module loads, before any app
-- code, which is why `for k, v in pairs(msg.data)` sees the members.
-- rawget and rawequal do not decode (docs/lua-api.md).
local function lazy_next(t, key)
    if key == nil and getmetatable(t) == LAZY then
        materialize(t)
    end
    return next(t, key)
end

-- f (of one or two arguments), decoding its first argument first when it
-- is a lazy table.
local function decoding(f)
    return function(t, b)
        if getmetatable(t) == LAZY then
            materialize(t)
        end
        return f(t, b)
    end
end

local lazy_pairs = decoding(pairs)
local lazy_ipairs = decoding(ipairs)
local lazy_setmetatable = decoding(setmetatable)

_G.next = lazy_next
_G.pairs = lazy_pairs
_G.ipairs = lazy_ipairs
_G.setmetatable = lazy_setmetatable
_M.next = lazy_next
_M.pairs = lazy_pairs
_M.ipairs = lazy_ipairs


-- The last message's scalar `data` (decode's `key`) and its text, when
-- lua-cjson would write that value differently.
local scalar_key, scalar_value, scalar_raw

-- scalar_raw is true for a long string with nothing to escape: its text is
-- the value in quotes, made only when asked for (it is not spliced as a
-- copy, see splice()).
local function scalar_text()
    if scalar_raw == true then
        scalar_raw = '"' .. scalar_value .. '"'
    end
    return scalar_raw
end


-- Decodes one JSON text: a value, and its kind ("object", "array",
-- "string", "number", "boolean", "null"); or nil, "malformed JSON: ...".
-- `key` (for a message): remember that member's scalar value and text, so
-- that forwarding it in the same dispatch writes the client's bytes.
function _M.decode(text, key)
    local value, kind, raw = json_level(text, LAZY, raw_of, nil, key)
    if value == nil then
        return nil, kind
    end
    if key then
        if raw then
            scalar_key, scalar_value, scalar_raw = key, value[key], raw
        else
            scalar_key, scalar_value, scalar_raw = nil, nil, nil
        end
    elseif kind == "object" or kind == "array" then
        raw_of[value] = text
    end
    return value, kind
end


-- Whether the decoded table t still holds what its text says: the same
-- keys, equal scalars (-0 is not 0), tables with the same text that are
-- themselves unchanged.
local function unchanged(t, raw)
    local fresh = json_level(raw, LAZY, scratch)
    local n = 0
    for k, v in next, fresh do
        n = n + 1
        local w = rawget(t, k)
        if type(v) == "table" then
            if type(w) ~= "table" then
                return false
            end
            local wraw = raw_of[w]
            if wraw ~= scratch[v] then
                return false
            end
            if getmetatable(w) ~= LAZY and not unchanged(w, wraw) then
                return false
            end
        elseif w ~= v or (v == 0 and 1 / v ~= 1 / w) then
            return false
        end
    end
    for _ in next, t do
        n = n - 1
    end
    return n == 0
end


-- The text of a value from decode() that still holds it, or nil.
function _M.raw(value)
    if type(value) ~= "table" then
        if value == scalar_value and scalar_raw ~= nil then
            return scalar_text()
        end
        return nil
    end
    local raw = raw_of[value]
    if raw == nil then
        return nil
    end
    local mt = getmetatable(value)
    if mt == LAZY or mt == LITERAL or unchanged(value, raw) then
        return raw
    end
    return nil
end


-- A value that encode() writes as `text`, a JSON text (checked here): to
-- forward JSON kept as text (from Redis, a file) without decoding it.
-- Returns the value, or nil, "malformed JSON: ...".
function _M.literal(text)
    if type(text) ~= "string" then
        error("bad argument #1 to 'literal' (string expected, got " .. type(text) .. ")", 2)
    end
    local ok, err = json_level(text, LAZY, scratch)
    if ok == nil then
        return nil, err
    end
    local value = setmetatable({}, LITERAL)
    raw_of[value] = text
    return value
end


-- t[key], for forwarding: when t came from decode() and t[key] is a string
-- or number that lua-cjson would write differently from the client's text
-- (a 17-digit integer, 1E+2, an escape), a json.literal of that text if the
-- value is still the one sent; otherwise t[key] itself (a table from
-- decode() keeps its text by itself).
function _M.field(t, key)
    local value = t[key]
    local tv = type(value)
    if tv ~= "string" and tv ~= "number" then
        return value
    end
    local raw = raw_of[t]
    if raw == nil then
        if key == scalar_key and value == scalar_value and scalar_raw ~= nil
           and (tv == "string" or 1 / value == 1 / scalar_value) then
            local lit = setmetatable({}, LITERAL)
            raw_of[lit] = scalar_text()
            return lit
        end
        return value
    end
    local fresh, _, text = json_level(raw, LAZY, scratch, nil, key)
    local sent = fresh and fresh[key]
    if text and sent == value and (tv == "string" or 1 / sent == 1 / value) then
        local lit = setmetatable({}, LITERAL)
        raw_of[lit] = text
        return lit
    end
    return value
end


-- Splicing: a value that must be written as its text is swapped, for the
-- time of the cjson call, for a placeholder string no client can guess
-- (a per-process nonce), which the output then has in place of the text.
local function nonce()
    local f = io.open("/dev/urandom", "rb")
    local bytes = f and f:read(8)
    if f then
        f:close()
    end
    if not bytes or #bytes < 8 then
        bytes = tostring({}) .. tostring(os.time()) .. tostring(os.clock())
    end
    return (gsub(bytes, ".", function(c)
        return format("%02x", byte(c))
    end))
end

local NONCE = nonce()
local PLACEHOLDER = "\0mw." .. NONCE .. "."
local PLACEHOLDER_PATTERN = '"\\u0000mw%.' .. NONCE .. '%.(%d+)\\u0000"'

local sub_t, sub_k, sub_v, sub_raw = {}, {}, {}, {}
local nsubs = 0

-- placeholder[i], made once each
local placeholder = setmetatable({}, { __index = function(t, i)
    local p = PLACEHOLDER .. i .. "\0"
    t[i] = p
    return p
end })


local function swap(t, k, v, raw)
    nsubs = nsubs + 1
    sub_t[nsubs], sub_k[nsubs], sub_v[nsubs], sub_raw[nsubs] = t, k, v, raw
    rawset(t, k, placeholder[nsubs])
end


-- The message's scalar data's text, when v is that value under that key.
local function scalar_for(k, v)
    if scalar_raw ~= nil and k == scalar_key and v == scalar_value
       and (type(v) == "string" or 1 / v == 1 / scalar_value) then
        return scalar_raw
    end
    return nil
end


-- Walks over a tree of tables: encode's search for values to write as
-- their text, and load's for lazy tables. Both run on message paths (a
-- controller may call lua-cjson's encode for every message), and LuaJIT
-- aborts the trace of every caller, then blacklists them, at a loop inside
-- it ("inner loop in root trace"), and a function that calls itself counts
-- as one. So a walk reads the first members one by one, without a loop,
-- and is compiled once per level of nesting from one text (each load of it
-- is its own function to LuaJIT), the last level calling itself for what
-- is deeper (rare). Measured with scripts/jit-profile --mode v
-- (docs/performance.md, "Payloads kept raw"); dispatch_jit_spec checks it.
local SOURCE = debug.getinfo(1, "S").source -- "@.../moonwire/json.lua"

local WALK_HEAD = [[
local next, type, getmetatable, raw_of, LAZY, LITERAL, unchanged, swap, scalar_for,
      materialize, deeper = ...
]]

-- encode: swap what must be written as its text, look into the rest.
local FIND_RAW = [[
local function check(t, k, v, depth)
    if type(v) == "table" then
        local raw = raw_of[v]
        local mt = getmetatable(v)
        if raw ~= nil and (mt == LAZY or mt == LITERAL or unchanged(v, raw)) then
            swap(t, k, v, raw)
        elseif depth < 64 then
            deeper(v, depth + 1)
        end
    else
        local raw = scalar_for(k, v)
        if raw ~= nil then
            swap(t, k, v, raw)
        end
    end
end
]]

-- load: decode every lazy table.
local LOAD = [[
local function check(_, _, v, depth)
    if type(v) == "table" and depth < 64 then
        if getmetatable(v) == LAZY then
            materialize(v)
        end
        deeper(v, depth + 1)
    end
end
]]

-- The first six members one by one (next(t, nil) is the first), then a loop.
local WALK_STEP = [[
    k, v = next(t, k)
    if k == nil then return end
    check(t, k, v, depth)
]]

local WALK_BODY = "return function(t, depth)\n    local k, v\n" .. WALK_STEP:rep(6) .. [[
    for k2, v2 in next, t, k do
        check(t, k2, v2, depth)
    end
end
]]

-- A walker of four levels made from the check text.
local function walker(check_text, name)
    local text = WALK_HEAD .. check_text .. WALK_BODY
    local function level(deeper)
        -- Named after this file: the watchdog never interrupts the
        -- runtime's own chunks (src/lua/script.c, runtime_src).
        local chunk = assert(loadstring(text, SOURCE .. " (" .. name .. ")"))
        return chunk(next, type, getmetatable, raw_of, LAZY, LITERAL, unchanged, swap,
                     scalar_for, materialize, deeper)
    end
    local last
    last = level(function(t, depth)
        return last(t, depth)
    end)
    return level(level(level(last)))
end

local find_raw = walker(FIND_RAW, "find_raw")
local load_walk = walker(LOAD, "load")


-- Decodes every lazy table under value (a plain tree of tables, for code
-- that uses rawget or a library with its own `next`). Returns value.
function _M.load(value)
    if type(value) == "table" then
        if getmetatable(value) == LAZY then
            materialize(value)
        end
        load_walk(value, 1)
    end
    return value
end



-- The encoded placeholders, replaced by their texts: one plain find for
-- the usual single one, a pattern for more.
local by_number = {}

local first_quoted -- placeholder[1] as cjson writes it

local function splice(text)
    if nsubs == 1 then
        first_quoted = first_quoted or enc.encode(placeholder[1])
        local i, j = find(text, first_quoted, 1, true)
        -- (a table met twice holds it twice: then the pattern below)
        if i and not find(text, first_quoted, j + 1, true) then
            local raw = sub_raw[1]
            if raw == true then -- a long plain string: quoted in the one copy
                return sub(text, 1, i - 1) .. '"' .. sub_v[1] .. '"' .. sub(text, j + 1)
            end
            return sub(text, 1, i - 1) .. raw .. sub(text, j + 1)
        end
    end
    for i = 1, nsubs do
        local raw = sub_raw[i]
        by_number[tostring(i)] = raw == true and '"' .. sub_v[i] .. '"' or raw
    end
    text = gsub(text, PLACEHOLDER_PATTERN, by_number)
    for i = 1, nsubs do
        by_number[tostring(i)] = nil
    end
    return text
end


-- Encodes value as JSON text, with the client's bytes wherever a value
-- from decode() is still what it was. Returns text or nil, err.
function _M.encode(value)
    if type(value) ~= "table" then
        if scalar_raw ~= nil and value == scalar_value then
            return scalar_text()
        end
        return enc.encode(value)
    end
    local raw = _M.raw(value)
    if raw ~= nil then
        return raw
    end
    find_raw(value, 1)
    if nsubs == 0 then
        return enc.encode(value)
    end
    local text, err = enc.encode(value)
    for i = nsubs, 1, -1 do
        rawset(sub_t[i], sub_k[i], sub_v[i])
    end
    if text then
        text = splice(text)
    end
    for i = nsubs, 1, -1 do
        sub_t[i], sub_k[i], sub_v[i], sub_raw[i] = nil, nil, nil, nil
    end
    nsubs = 0
    return text, err
end


-- lua-cjson's own encode (cjson, cjson.safe, and the instances their new()
-- makes after this) decodes the lazy tables in what it is given first, so
-- a library that writes JSON itself (moonwire.jwt, an app's) sees every
-- member; only moonwire.json.encode keeps the client's bytes.
local function see_lazy(mod)
    local encode, new = mod.encode, mod.new
    mod.encode = function(value)
        return encode(_M.load(value))
    end
    if new then
        mod.new = function()
            return see_lazy(new())
        end
    end
    return mod
end

see_lazy(require "cjson")
see_lazy(cjson)


-- Key order of the tables ordered() marks (weak keys: the mark goes with
-- the table). Both drop-in examples write their guides' key order with it.
local order_of = setmetatable({}, { __mode = "k" })


-- Marks table t to be written by encode_ordered with the keys listed in
-- `keys` first, in that order. Returns t.
function _M.ordered(keys, t)
    order_of[t] = keys
    return t
end


local encode_ordered

-- A marked table: its listed members in order, then its other string keys
-- (sorted, for stable output); absent ones are left out, as
-- JSON.stringify leaves out undefined and Go's omitempty.
local function encode_members(t, keys)
    local parts, n, seen = {}, 0, {}
    local function put(key, v)
        local text, err = encode_ordered(v)
        if not text then
            return nil, err
        end
        n = n + 1
        parts[n] = enc.encode(key) .. ":" .. text
        return true
    end
    for i = 1, #keys do
        local key = keys[i]
        seen[key] = true
        local v = t[key]
        if v ~= nil then
            local ok, err = put(key, v)
            if not ok then
                return nil, err
            end
        end
    end
    local rest = {}
    for key in lazy_next, t do
        if type(key) == "string" and not seen[key] then
            rest[#rest + 1] = key
        end
    end
    sort(rest)
    for i = 1, #rest do
        local ok, err = put(rest[i], t[rest[i]])
        if not ok then
            return nil, err
        end
    end
    return "{" .. concat(parts, ",") .. "}"
end


-- encode(), except that a table ordered() marked, and the marked ones
-- inside it, are written in their key order (an unmarked table is written
-- by encode(), whole). Returns text or nil, err.
encode_ordered = function(value)
    if type(value) == "table" then
        local keys = order_of[value]
        if keys then
            return encode_members(value, keys)
        end
    end
    return _M.encode(value)
end

_M.encode_ordered = encode_ordered


-- Written as `[]` (lua-cjson writes every empty table as `{}`).
_M.empty_array = _M.literal("[]")

_M.LAZY = LAZY

return _M
