-- moonwire.router: maps a message's (type, action) to a controller function.
-- A controller is a table; each function under a public name is an action,
-- while other values and names starting with "_" stay private to it. The
-- table is read once, in add(), so a router is an immutable snapshot that
-- a reload replaces as a whole.

local setmetatable = setmetatable
local pairs = pairs
local type = type
local tostring = tostring
local error = error
local find = string.find
local sort = table.sort
local getinfo = debug.getinfo
local middleware = require "moonwire.middleware"
local schema = require "moonwire.schema"
local run = middleware.run


local _M = require("moonwire.version").module()

local mt = { __index = _M }

local NAME = "^[%a][%w_%-]*$"


-- Names in NOT_FOUND messages come from the client: echo at most 64 bytes.
local function shorten(name)
    name = tostring(name)
    if #name > 64 then
        return name:sub(1, 64) .. "..."
    end
    return name
end


function _M.is_valid_name(name)
    return type(name) == "string" and find(name, NAME) ~= nil
end


function _M.new()
    return setmetatable({ _routes = {}, _builtin = {}, _throttles = {}, _labels = {} }, mt)
end


local function positive_integer(v)
    return type(v) == "number" and v >= 1 and v == math.floor(v) and v < 2 ^ 53
end


-- A controller's _throttle table: { action = { window_ms =, max_messages =,
-- silent = } } (docs/lua-api.md, "Per-route throttles"). Returns a checked
-- copy; misuse raises naming the field.
local function check_throttle(type_, throttle, actions)
    if type(throttle) ~= "table" then
        error("controller '" .. type_ .. "': _throttle must be a table, got " .. type(throttle), 3)
    end
    local out = {}
    for action, spec in pairs(throttle) do
        local where = "controller '" .. type_ .. "': _throttle." .. tostring(action)
        if not actions[action] then
            error(where .. ": no such action", 3)
        end
        if type(spec) ~= "table" or not positive_integer(spec.window_ms)
           or not positive_integer(spec.max_messages) then
            error(where .. " must be { window_ms = N, max_messages = N } (positive integers)", 3)
        end
        if spec.silent ~= nil and type(spec.silent) ~= "boolean" then
            error(where .. ".silent must be a boolean", 3)
        end
        out[action] = { window_ms = spec.window_ms, max_messages = spec.max_messages,
                        silent = spec.silent == true, route = type_ .. "." .. action }
    end
    return out
end


-- A controller's _schema table: { action = schema or description }.
-- Returns action -> compiled schema; misuse raises naming the action.
local function check_schemas(type_, schemas, actions)
    if type(schemas) ~= "table" or schema.is_schema(schemas) then
        error("controller '" .. type_ .. "': _schema must be a table { action = schema }, got "
              .. type(schemas), 3)
    end
    local out = {}
    for action, spec in pairs(schemas) do
        local where = "controller '" .. type_ .. "': _schema." .. tostring(action)
        if not actions[action] then
            error(where .. ": no such action", 3)
        end
        local ok, s = pcall(schema.new, spec)
        if not ok then
            error(where .. ": " .. tostring(s), 3)
        end
        out[action] = s
    end
    return out
end


-- The error a message whose data fails its route's schema is answered with.
local function invalid(message)
    return { code = "INVALID_MESSAGE", message = message }
end


-- fn wrapped in its middleware chain (a checked list, or nil) and its
-- schema (or nil), made once per action when the controller is added.
-- Middleware see ctx = { client, data, message, route, type, action }; the
-- schema is checked innermost, right before the action, so that a
-- middleware (require_auth) answers first and on_error sees a failed
-- validation as the action's nil, err.
local function wrap(type_, name, fn, chain, s)
    if not chain then
        return function(client, data, msg)
            local ok, err = s:check(data, "data")
            if not ok then
                return nil, invalid(err)
            end
            return fn(client, data, msg)
        end
    end
    local function handler(ctx)
        if s then
            local ok, err = s:check(ctx.data, "data")
            if not ok then
                return nil, invalid(err)
            end
        end
        return fn(ctx.client, ctx.data, ctx.message)
    end
    local route = type_ .. "." .. name
    return function(client, data, msg)
        return run(chain, { client = client, data = data, message = msg, route = route,
                            type = type_, action = name }, handler)
    end
end


-- The app-wide middleware (app.lua's `middleware`, a checked list or nil):
-- around every action of the controllers added after, outside each
-- controller's own.
function _M.set_middleware(self, chain)
    self._middleware = chain
end


-- "type.action (controllers/x.lua:12)": what the server's watchdog reports
-- for an action it could not interrupt. Built once here, never per message.
local function label(type_, name, fn)
    local info = getinfo(fn, "S")
    if info.what == "C" or info.linedefined < 0 then  -- C and LuaJIT built-ins: no source
        return type_ .. "." .. name
    end
    return type_ .. "." .. name .. " (" .. info.short_src .. ":" .. info.linedefined .. ")"
end


-- Validates the controller and registers its actions under `type_`.
-- Misuse (a bad name, a duplicate type, a non-table controller) raises.
-- A `builtin` controller (the runtime's own, e.g. "system") is routed like
-- any other but left out of routes(), which lists the app's.
function _M.add(self, type_, controller, builtin)
    if type(type_) ~= "string" or not find(type_, NAME) then
        error("invalid controller type " .. tostring(type_)
              .. " (a letter followed by letters, digits, '_' or '-')", 2)
    end
    if type(controller) ~= "table" then
        error("controller '" .. type_ .. "' must be a table, got " .. type(controller), 2)
    end
    if self._routes[type_] then
        error("controller '" .. type_ .. "' is already registered", 2)
    end

    local actions, labels = {}, {}
    for name, fn in pairs(controller) do
        if type(fn) == "function" and type(name) == "string" and not find(name, "^_") then
            if not find(name, NAME) then
                error("invalid action name '" .. name .. "' in controller '" .. type_
                      .. "' (a letter followed by letters, digits, '_' or '-')", 2)
            end
            actions[name] = fn
            labels[name] = label(type_, name, fn)
        end
    end
    if controller._throttle ~= nil then
        self._throttles[type_] = check_throttle(type_, controller._throttle, actions)
    end
    local chain = self._middleware
    if controller._middleware ~= nil then
        local ok, own = pcall(middleware.check, controller._middleware, "_middleware")
        if not ok then
            error("controller '" .. type_ .. "': " .. tostring(own), 2)
        end
        chain = middleware.concat(chain, own)
    end
    local schemas = controller._schema ~= nil and check_schemas(type_, controller._schema, actions)
    if chain or schemas then
        for name, fn in pairs(actions) do
            local s = schemas and schemas[name]
            if chain or s then
                actions[name] = wrap(type_, name, fn, chain, s)
            end
        end
    end
    self._routes[type_] = actions
    self._labels[type_] = labels
    self._builtin[type_] = builtin == true or nil
    return true
end


-- The throttle of a route ({ window_ms, max_messages, silent, route }) or nil.
function _M.throttle(self, type_, action)
    local t = self._throttles[type_]
    return t and t[action]
end


function _M.has(self, type_)
    return self._routes[type_] ~= nil
end


-- Returns the action function and its label ("chat.send
-- (controllers/chat.lua:12)"), or nil, "NOT_FOUND", message.
function _M.find(self, type_, action)
    local actions = self._routes[type_]
    if not actions then
        return nil, "NOT_FOUND", "unknown type '" .. shorten(type_) .. "'"
    end
    local fn = actions[action]
    if not fn then
        return nil, "NOT_FOUND", "unknown action '" .. shorten(action)
                                 .. "' for type '" .. type_ .. "'"
    end
    return fn, self._labels[type_][action]
end


-- Every route as "type.action", sorted.
function _M.routes(self)
    local list = {}
    for type_, actions in pairs(self._routes) do
        if not self._builtin[type_] then
            for action in pairs(actions) do
                list[#list + 1] = type_ .. "." .. action
            end
        end
    end
    sort(list)
    return list
end


return _M
