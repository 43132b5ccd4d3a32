-- moonwire.schema: a small language for the shape of messages, whose
-- errors name the field that is wrong ("data.items[2].price: expected
-- number, got string"). Used by controllers (_schema, answered
-- INVALID_MESSAGE) and by moonwire.handlers.with_validation.
--
-- A schema is compiled once, when it is made: the description is checked
-- (a typo in an option raises there, naming where it is) and turned into a
-- tree of closures, one per node, so checking a value walks no description
-- and, when the value is valid, builds no string and no table. A failing
-- check builds its path from the failing leaf up, once.

local json = require "moonwire.json"

local setmetatable = setmetatable
local getmetatable = getmetatable
local type = type
local tostring = tostring
local error = error
local pcall = pcall
local pairs = pairs
local ipairs = ipairs
local next = json.next -- decodes a lazy table (moonwire.json) before walking it
local floor = math.floor
local huge = math.huge
local find = string.find
local sub = string.sub
local format = string.format
local concat = table.concat
local sort = table.sort


local _M = require("moonwire.version").module()

local schema_mt = {}
schema_mt.__index = schema_mt

local NULL = json.null

-- The options each type takes, beside the ones every type takes.
local COMMON = { type = true, optional = true, enum = true, check = true }
local OPTIONS = {
    string = { min_len = true, max_len = true, pattern = true },
    number = { min = true, max = true },
    integer = { min = true, max = true },
    boolean = {},
    table = {},
    object = { fields = true, unknown = true },
    array = { items = true, min_items = true, max_items = true },
    any = {},
}
local TYPE_NAMES = "string, number, integer, boolean, table, object, array or any"


-- What a value is, in the words of the error messages.
local function kind(v)
    if v == NULL then
        return "null"
    end
    return type(v)
end


-- A value as an error message shows it: strings quoted, long ones cut.
local function show(v)
    if type(v) == "string" then
        if #v > 32 then
            v = sub(v, 1, 32) .. "..."
        end
        return format("%q", v)
    end
    return tostring(v)
end


-- The path step of a key: ".name" for an identifier, else ["key"].
local function step(key)
    if type(key) == "string" and find(key, "^[%a_][%w_]*$") then
        return "." .. key
    end
    return "[" .. show(key) .. "]"
end


local function fail(where, fmt, ...)
    error("schema" .. where .. ": " .. format(fmt, ...), 0)
end


local function check_count(where, name, v)
    if v ~= nil and (type(v) ~= "number" or v < 0 or v ~= floor(v)) then
        fail(where, "%s must be a non-negative integer, got %s", name, show(v))
    end
end


local function check_bound(where, name, v)
    if v ~= nil and (type(v) ~= "number" or v ~= v) then
        fail(where, "%s must be a number, got %s", name, show(v))
    end
end


local compile


-- Checkers return true, or nil, the path below the node (built on the way
-- up) and the message.

-- The Lua type of the types that are only a Lua type (an object is any
-- table: its fields are checked by object_checks).
local LUA_TYPE = {
    string = "string", number = "number", boolean = "boolean", table = "table", object = "table",
}

local function type_checker(tname)
    local ltype = LUA_TYPE[tname]
    if ltype then
        return function(v)
            if type(v) ~= ltype then
                return nil, "", "expected " .. tname .. ", got " .. kind(v)
            end
            return true
        end
    elseif tname == "integer" then
        return function(v)
            if type(v) ~= "number" then
                return nil, "", "expected integer, got " .. kind(v)
            end
            if v ~= floor(v) or v == huge or v == -huge then
                return nil, "", "expected integer, got " .. tostring(v)
            end
            return true
        end
    elseif tname == "array" then
        -- An array has exactly the keys 1..#v (an empty table is both an
        -- empty array and an empty object, as JSON's [] and {} decode).
        return function(v)
            if type(v) ~= "table" then
                return nil, "", "expected array, got " .. kind(v)
            end
            local n, count = #v, 0
            for _ in next, v do
                count = count + 1
            end
            if count ~= n then
                return nil, "", "expected array, got object"
            end
            return true
        end
    end
    -- any: every value but a missing one (required-ness is the parent's).
    return function()
        return true
    end
end


-- Adds check `more` after `first`: both must pass.
local function chain(first, more)
    if not first then
        return more
    end
    return function(v)
        local ok, path, msg = first(v)
        if not ok then
            return nil, path, msg
        end
        return more(v)
    end
end


-- Adds the bounds on #v that options min_name and max_name of spec give
-- (a string's bytes, an array's items), counted in `unit`.
local function length_checks(spec, where, fn, min_name, max_name, unit)
    local min, max = spec[min_name], spec[max_name]
    check_count(where, min_name, min)
    check_count(where, max_name, max)
    if min and max and min > max then
        fail(where, "%s %d is greater than %s %d", min_name, min, max_name, max)
    end
    if not (min or max) then
        return fn
    end
    min, max = min or 0, max or huge
    return chain(fn, function(v)
        local n = #v
        if n < min then
            return nil, "", "expected at least " .. min .. " " .. unit .. ", got " .. n
        end
        if n > max then
            return nil, "", "expected at most " .. max .. " " .. unit .. ", got " .. n
        end
        return true
    end)
end


local function string_checks(spec, where, fn)
    local pattern = spec.pattern
    fn = length_checks(spec, where, fn, "min_len", "max_len", "bytes")
    if pattern ~= nil then
        if type(pattern) ~= "string" then
            fail(where, "pattern must be a string, got %s", type(pattern))
        end
        local ok, err = pcall(find, "", pattern)
        if not ok then
            fail(where, "invalid pattern %s: %s", show(pattern), tostring(err))
        end
        fn = chain(fn, function(v)
            if not find(v, pattern) then
                return nil, "", "does not match the pattern " .. pattern
            end
            return true
        end)
    end
    return fn
end


local function number_checks(spec, where, fn)
    local min, max = spec.min, spec.max
    check_bound(where, "min", min)
    check_bound(where, "max", max)
    if min and max and min > max then
        fail(where, "min %s is greater than max %s", tostring(min), tostring(max))
    end
    if min or max then
        min, max = min or -huge, max or huge
        fn = chain(fn, function(v)
            -- NaN compares false both ways: it is out of every range.
            if v < min or v ~= v then
                return nil, "", "expected a number >= " .. tostring(min) .. ", got " .. tostring(v)
            end
            if v > max then
                return nil, "", "expected a number <= " .. tostring(max) .. ", got " .. tostring(v)
            end
            return true
        end)
    end
    return fn
end


-- A field name as a where-path step (for errors about the schema itself).
local function field_where(where, name)
    return where .. ".fields" .. step(name)
end


local function object_checks(spec, where, fn)
    local fields, unknown = spec.fields, spec.unknown
    if unknown ~= nil and unknown ~= "allow" and unknown ~= "reject" then
        fail(where, "unknown must be \"allow\" or \"reject\", got %s", show(unknown))
    end
    if fields == nil then
        if unknown == "reject" then
            fields = {}
        else
            return fn
        end
    end
    if type(fields) ~= "table" or getmetatable(fields) == schema_mt then
        fail(where, "fields must be a table of field schemas, got %s", type(fields))
    end
    -- Sorted, so that the first missing or wrong field reported is always
    -- the same one.
    local names = {}
    for name in pairs(fields) do
        if type(name) ~= "string" then
            fail(where, "field names must be strings, got %s", show(name))
        end
        names[#names + 1] = name
    end
    sort(names)
    local n = #names
    local checks, optional, steps = {}, {}, {}
    for i, name in ipairs(names) do
        local c, opt = compile(fields[name], field_where(where, name))
        checks[i], optional[i], steps[i] = c, opt, step(name)
    end
    local known
    if unknown == "reject" then
        known = {}
        for _, name in ipairs(names) do
            known[name] = true
        end
    end
    return chain(fn, function(v)
        for i = 1, n do
            local fv = v[names[i]]
            if fv == nil or fv == NULL then
                if not optional[i] then
                    return nil, steps[i], "required"
                end
            else
                local ok, path, msg = checks[i](fv)
                if not ok then
                    return nil, steps[i] .. path, msg
                end
            end
        end
        if known then
            for key in next, v do
                if not known[key] then
                    return nil, step(key), "unknown field"
                end
            end
        end
        return true
    end)
end


local function array_checks(spec, where, fn)
    local items = spec.items
    fn = length_checks(spec, where, fn, "min_items", "max_items", "items")
    if items ~= nil then
        local item, nullable = compile(items, where .. ".items")
        fn = chain(fn, function(v)
            for i = 1, #v do
                local iv = v[i]
                if iv ~= NULL or not nullable then
                    local ok, path, msg = item(iv)
                    if not ok then
                        return nil, "[" .. i .. "]" .. path, msg
                    end
                end
            end
            return true
        end)
    end
    return fn
end


local function enum_check(spec, where, fn)
    local enum = spec.enum
    if type(enum) ~= "table" or enum[1] == nil then
        fail(where, "enum must be a non-empty list of values, got %s", type(enum))
    end
    local set, shown = {}, {}
    for i, value in ipairs(enum) do
        set[value] = true
        shown[i] = show(value)
    end
    local list = concat(shown, ", ")
    if #list > 200 then
        list = sub(list, 1, 200) .. "..."
    end
    return chain(fn, function(v)
        if not set[v] then
            return nil, "", "expected one of " .. list .. ", got " .. show(v)
        end
        return true
    end)
end


local function custom_check(check, where, fn)
    if type(check) ~= "function" then
        fail(where, "check must be a function, got %s", type(check))
    end
    return chain(fn, function(v)
        local ok, msg = check(v)
        if not ok then
            return nil, "", msg ~= nil and tostring(msg) or "is not valid"
        end
        return true
    end)
end


-- Compiles one node of a description: a type name ("string", "number?"
-- for an optional one), a table { type = ..., options }, or a schema made
-- by new(). Returns its checker and whether it is optional. Raises
-- "schema<where>: ..." on a bad description.
compile = function(spec, where)
    if getmetatable(spec) == schema_mt then
        return spec._check, spec.optional
    end
    local t = type(spec)
    if t == "string" then
        local name, q = spec:match("^(%a+)(%??)$")
        if not name or not OPTIONS[name] then
            fail(where, "unknown type %s (%s; \"?\" after it: optional)", show(spec), TYPE_NAMES)
        end
        return type_checker(name), q == "?"
    end
    if t ~= "table" then
        fail(where, "expected a type name or a table, got %s", t)
    end
    local tname = spec.type
    if tname == nil then
        fail(where, "type is missing (%s)", TYPE_NAMES)
    end
    if not OPTIONS[tname] then
        fail(where, "unknown type %s (%s)", show(tname), TYPE_NAMES)
    end
    local allowed = OPTIONS[tname]
    for key in pairs(spec) do
        if not COMMON[key] and not allowed[key] then
            local others = {}
            for k in pairs(allowed) do
                others[#others + 1] = k
            end
            sort(others)
            fail(where, "unknown option %s for type %s%s", show(key), tname,
                 #others > 0 and " (it takes " .. concat(others, ", ") .. ")" or "")
        end
    end
    if spec.optional ~= nil and type(spec.optional) ~= "boolean" then
        fail(where, "optional must be a boolean, got %s", type(spec.optional))
    end
    local fn = type_checker(tname)
    if tname == "string" then
        fn = string_checks(spec, where, fn)
    elseif tname == "number" or tname == "integer" then
        fn = number_checks(spec, where, fn)
    elseif tname == "object" then
        fn = object_checks(spec, where, fn)
    elseif tname == "array" then
        fn = array_checks(spec, where, fn)
    end
    if spec.enum ~= nil then
        fn = enum_check(spec, where, fn)
    end
    if spec.check ~= nil then
        fn = custom_check(spec.check, where, fn)
    end
    return fn, spec.optional == true
end


-- A schema from its description. Raises, naming where in the description
-- and what is wrong, on a bad one.
function _M.new(spec)
    local ok, fn, optional = pcall(compile, spec, "")
    if not ok then
        error(fn, 2)
    end
    return setmetatable({ _check = fn, optional = optional }, schema_mt)
end


function _M.is_schema(value)
    return getmetatable(value) == schema_mt
end


-- Checks value against s (a schema, or a description, compiled on each
-- call: make it once with new() instead). Returns true, or nil and
-- "<path><where>: <what>" (path defaults to "value").
function _M.check(s, value, path)
    if getmetatable(s) ~= schema_mt then
        s = _M.new(s)
    end
    path = path or "value"
    if value == nil or value == NULL then
        if s.optional then
            return true
        end
        return nil, path .. ": required"
    end
    local ok, where, msg = s._check(value)
    if ok then
        return true
    end
    return nil, path .. where .. ": " .. msg
end


-- s:check(value, path): the same as schema.check(s, value, path).
function schema_mt.check(self, value, path)
    return _M.check(self, value, path)
end


return _M
