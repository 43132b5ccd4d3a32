-- moonwire.http: HTTP routes (an app's APP/routes.lua, and the server API's
-- built-in ones, moonwire.api) for runtime.http (docs/boundary.md).
--
-- A request goes through three steps, each a function here: find (the
-- route, and the request table its handler gets; a request no route takes
-- is answered there: 404, 405, 400), run (the handler, a plain protected
-- call: what the coroutine scheduler wraps so that a handler may wait) and
-- answer (the handler's status, headers and body, sent through
-- core.http_respond). The answer never travels back through runtime.http's
-- return value: it may be given after the handler waited.
--
-- Routes are a table of "METHOD /path" keys, each path segment a literal
-- or a `:name` parameter, and handlers (functions, or { handler =, json =
-- true } for a route whose body must be JSON). A literal segment wins over
-- a parameter at the same place; HEAD takes the GET route when it has none.

local core = require "moonwire.core"
local json = require "moonwire.json"
local errors = require "moonwire.errors"

local type = type
local pairs = pairs
local ipairs = ipairs
local select = select
local tostring = tostring
local tonumber = tonumber
local xpcall = xpcall
local pcall = pcall
local setmetatable = setmetatable
local format = string.format
local find = string.find
local sub = string.sub
local gsub = string.gsub
local char = string.char
local lower = string.lower
local gmatch = string.gmatch
local concat = table.concat
local sort = table.sort
local capture = errors.capture
local is_failure = errors.is_failure


local _M = require("moonwire.version").module()

local routes = {}
local routes_mt = { __index = routes }

local METHODS = {
    GET = true, HEAD = true, POST = true, PUT = true, PATCH = true, DELETE = true,
    OPTIONS = true,
}

-- The HTTP status a moonwire.fail code is answered with.
local FAIL_STATUS = {
    INVALID_MESSAGE = 400,
    INVALID_ROOM = 400,
    AUTHENTICATION_FAILED = 401,
    AUTHORIZATION_FAILED = 403,
    NOT_FOUND = 404,
    ROOM_FULL = 409,
    RATE_LIMIT_EXCEEDED = 429,
    SERVER_FULL = 503,
    INTERNAL_ERROR = 500,
}

local JSON_TYPE = "application/json"
local TEXT_TYPE = "text/plain; charset=utf-8"


local function log(level, fmt, ...)
    core.log(level, format(fmt, ...))
end


local function unhex(h)
    return char(tonumber(h, 16))
end


-- Percent-decoding (and "+" as a space in a query): malformed escapes
-- stay as they are.
local function unescape(s, plus)
    if plus then
        s = gsub(s, "%+", " ")
    end
    return (gsub(s, "%%(%x%x)", unhex))
end

_M.unescape = unescape


-- The query string as a table: a=1&b=x%20y -> { a = "1", b = "x y" }; a
-- key given more than once gets an array of its values, in order; a key
-- without "=" is true.
function _M.decode_query(qs)
    local t = {}
    if type(qs) ~= "string" then
        return t
    end
    for pair in gmatch(qs, "[^&]+") do
        local eq = find(pair, "=", 1, true)
        local k, v
        if eq then
            k, v = unescape(sub(pair, 1, eq - 1), true), unescape(sub(pair, eq + 1), true)
        else
            k, v = unescape(pair, true), true
        end
        if k ~= "" then
            local old = t[k]
            if old == nil then
                t[k] = v
            elseif type(old) == "table" then
                old[#old + 1] = v
            else
                t[k] = { old, v }
            end
        end
    end
    return t
end


-- A path's segments: "/a/b/" -> { "a", "b" } (a trailing slash does not
-- count), "/" -> {}.
local function segments(path)
    local list = {}
    for seg in gmatch(path, "[^/]+") do
        list[#list + 1] = seg
    end
    return list
end


-- Compiles routes: spec maps "METHOD /path" to a handler or { handler =,
-- json = }. opts.reserved: a path prefix no route may use ("/api/", which
-- belongs to the server API). Returns the routes, or nil, message, culprit
-- (the handler function or value at fault) and the route's key, for the
-- caller's file:line.
function _M.compile(spec, opts)
    local list = {}
    local self = setmetatable({ list = list, by_name = {} }, routes_mt)
    if spec == nil then
        return self
    end
    local reserved = opts and opts.reserved
    local names = {}
    for key in pairs(spec) do
        if type(key) ~= "string" then
            return nil, "route keys must be strings like \"GET /path\", got " .. type(key)
        end
        names[#names + 1] = key
    end
    sort(names)
    -- An error about one route: nil, message, what is at fault (its
    -- handler or value, for the caller's file:line) and the route's key.
    local function bad(key, message, culprit)
        return nil, "route '" .. key .. "': " .. message, culprit, key
    end
    for _, key in ipairs(names) do
        local value = spec[key]
        local method, path = key:match("^(%S+)%s+(%S+)$")
        if not method then
            return bad(key, "must be \"METHOD /path\"", value)
        end
        if not METHODS[method] then
            return bad(key, "unknown method " .. method
                            .. " (GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS)", value)
        end
        if sub(path, 1, 1) ~= "/" then
            return bad(key, "the path must start with /", value)
        end
        if reserved and sub(path .. "/", 1, #reserved) == reserved then
            return bad(key, reserved .. " is reserved for the server API", value)
        end
        local handler, want_json = value, false
        if type(value) == "table" then
            handler, want_json = value.handler, value.json == true
            for k in pairs(value) do
                if k ~= "handler" and k ~= "json" then
                    return bad(key, "unknown field '" .. tostring(k) .. "' (handler, json)",
                               value.handler)
                end
            end
        end
        if type(handler) ~= "function" then
            return bad(key, "the handler must be a function, got " .. type(handler), value)
        end
        local segs, score, params = segments(path), {}, {}
        for i, seg in ipairs(segs) do
            if sub(seg, 1, 1) == ":" then
                local name = sub(seg, 2)
                if not find(name, "^[%a_][%w_]*$") then
                    return bad(key, "bad parameter name ':" .. name .. "'", handler)
                end
                if params[name] then
                    return bad(key, "parameter :" .. name .. " twice", handler)
                end
                params[name] = true
                segs[i] = { param = name }
                score[i] = "0"
            else
                segs[i] = unescape(seg)
                score[i] = "1"
            end
        end
        local shape = method .. " " .. gsub(path, ":[%w_]+", ":")
        if self.by_name[shape] then
            return bad(key, "the same as route '" .. self.by_name[shape] .. "'", handler)
        end
        self.by_name[shape] = key
        list[#list + 1] = {
            name = key, method = method, path = path, segs = segs, score = concat(score),
            handler = handler, json = want_json,
        }
    end
    return self
end


-- Whether the route's pattern matches these (decoded) segments; the
-- parameters are filled in when it does.
local function match_segs(route, segs, params)
    local pattern = route.segs
    if #pattern ~= #segs then
        return false
    end
    for i, seg in ipairs(pattern) do
        if type(seg) == "table" then
            params[seg.param] = segs[i]
        elseif seg ~= segs[i] then
            return false
        end
    end
    return true
end


-- The route for method and path: route, params; or nil, 404; or nil, 405,
-- "GET, HEAD" (the methods the path takes).
function routes.match(self, method, path)
    local segs = segments(path)
    for i = 1, #segs do
        segs[i] = unescape(segs[i])
    end
    local best, best_params, allowed
    local head_get, head_get_params
    for _, route in ipairs(self.list) do
        local params = {}
        if match_segs(route, segs, params) then
            if route.method == method then
                if not best or route.score > best.score then
                    best, best_params = route, params
                end
            elseif method == "HEAD" and route.method == "GET" then
                if not head_get or route.score > head_get.score then
                    head_get, head_get_params = route, params
                end
            end
            allowed = allowed or {}
            allowed[route.method] = true
            if route.method == "GET" then
                allowed.HEAD = true
            end
        end
    end
    if best then
        return best, best_params
    end
    if head_get then
        return head_get, head_get_params
    end
    if not allowed then
        return nil, 404
    end
    local list = {}
    for m in pairs(allowed) do
        list[#list + 1] = m
    end
    sort(list)
    return nil, 405, concat(list, ", ")
end


-- "GET /health" and the like, sorted.
function routes.names(self)
    local list = {}
    for i, route in ipairs(self.list) do
        list[i] = route.name
    end
    return list
end


-- Whether a route takes GET /path (the app's own /health).
function routes.has(self, method, path)
    local route = self:match(method, path)
    return route ~= nil and route.method == method
end


-- The JSON error body every error answer of the runtime has.
local function error_body(code, message)
    return json.encode({ error = { code = code, message = message } })
end

_M.error_body = error_body


-- Sends an answer; a raise (a header the core refuses) becomes a 500.
-- Returns true, or nil, "closed" when the client is gone.
local function respond(request_id, status, headers, body, what)
    local ok, sent, err = pcall(core.http_respond, request_id, status, headers, body)
    if ok then
        if not sent and err ~= "closed" then
            log("error", "%s: answer not sent: %s", what, tostring(err))
        end
        return sent, err
    end
    log("error", "%s: answer refused: %s", what, errors.message(sent))
    return core.http_respond(request_id, 500, { ["Content-Type"] = JSON_TYPE },
                             error_body("INTERNAL_ERROR", "internal error"))
end


-- An error answer of the runtime: status, a JSON body naming the problem.
function _M.fail(request_id, status, code, message, extra)
    local headers = { ["Content-Type"] = JSON_TYPE }
    if extra then
        for k, v in pairs(extra) do
            headers[k] = v
        end
    end
    return respond(request_id, status, headers, error_body(code, message), "http error")
end


-- Step 1. The route that takes the request, and the table its handler
-- gets; or nil, once the request was answered (404, 405, a JSON route
-- whose body does not parse: 400). app_routes are the app's routes,
-- api_routes the server API's: only a request that came through the
-- API's door (info.api: the key checked in C) reaches those.
function _M.find(request_id, info, app_routes, api_routes)
    local method, path = info.method, info.path
    local set = info.api and api_routes or app_routes
    if not set or (not info.api and (path == "/api" or sub(path, 1, 5) == "/api/")) then
        _M.fail(request_id, 404, "NOT_FOUND", "not found")
        return nil
    end
    local route, params, allow = set:match(method, path)
    if not route then
        if params == 405 then
            _M.fail(request_id, 405, "METHOD_NOT_ALLOWED", "method not allowed",
                    { Allow = allow })
        else
            _M.fail(request_id, 404, "NOT_FOUND", "not found")
        end
        return nil
    end
    local req = {
        id = request_id,
        method = method,
        path = path,
        route = route.name,
        params = params,
        query = _M.decode_query(info.query),
        query_string = info.query or "",
        headers = info.headers or {},
        body = info.body or "",
        remote_addr = info.remote_addr,
        remote_port = info.remote_port,
        http_version = info.http_version,
    }
    if route.json then
        local value, err = json.decode(req.body, "data")
        if value == nil and err then
            _M.fail(request_id, 400, "BAD_REQUEST", err)
            return nil
        end
        req.json = value
    end
    return route, req
end


local function results(ok, ...)
    if not ok then
        return false, (...)
    end
    local status, a, b = ...
    if select("#", ...) >= 3 then
        return true, status, a, b
    end
    return true, status, nil, a
end


-- Step 2. Runs the handler: true, status, headers, body (a handler returns
-- `status, body` or `status, headers, body`), or false and what
-- errors.capture made of its raise. A plain call (no coroutine here).
function _M.run(route, req)
    return results(xpcall(route.handler, capture, req))
end


-- Step 3. Answers with what run() returned: a string body as text, a table
-- as JSON; a moonwire.fail as its status and code; anything else the
-- handler did wrong as 500 (logged with file:line and traceback).
-- Returns true, or nil, "closed" when the client left meanwhile.
function _M.answer(request_id, route, req, ok, status, headers, body)
    local what = route.name
    if not ok then
        local captured = status
        if is_failure(captured) then
            return _M.fail(request_id, FAIL_STATUS[captured.code] or 400, captured.code,
                           captured.message)
        end
        local trace = type(captured) == "table" and captured.traceback or tostring(captured)
        log("error", "%s failed: %s", what, trace)
        return _M.fail(request_id, 500, "INTERNAL_ERROR", "internal error")
    end
    if type(status) ~= "number" or status < 200 or status > 599 or status % 1 ~= 0 then
        log("error", "%s failed: the handler returned %s instead of a status (200..599)",
            what, tostring(status))
        return _M.fail(request_id, 500, "INTERNAL_ERROR", "internal error")
    end
    if headers ~= nil and type(headers) ~= "table" then
        log("error", "%s failed: the handler returned %s headers instead of a table",
            what, type(headers))
        return _M.fail(request_id, 500, "INTERNAL_ERROR", "internal error")
    end
    local ctype
    if headers then
        for k in pairs(headers) do
            if type(k) == "string" and lower(k) == "content-type" then
                ctype = k
            end
        end
    end
    local t = type(body)
    if t == "table" then
        local text, err = json.encode(body)
        if not text then
            log("error", "%s failed: the body cannot be encoded as JSON: %s", what, tostring(err))
            return _M.fail(request_id, 500, "INTERNAL_ERROR", "internal error")
        end
        body = text
        if not ctype then
            headers = headers or {}
            headers["Content-Type"] = JSON_TYPE
        end
    elseif t == "string" or t == "nil" then
        if not ctype then
            headers = headers or {}
            headers["Content-Type"] = TEXT_TYPE
        end
    else
        log("error", "%s failed: the handler returned a %s body (string or table)", what, t)
        return _M.fail(request_id, 500, "INTERNAL_ERROR", "internal error")
    end
    return respond(request_id, status, headers, body, what)
end


-- The route names of a set as "METHOD /path", for `moonwire check`.
function _M.names(set)
    return set and set:names() or {}
end


-- Tells the core whether the app serves GET /health itself (then GET and
-- HEAD /health reach runtime.http instead of the built-in document).
function _M.claim_health(app_routes)
    core.set_health_route(app_routes ~= nil and app_routes:has("GET", "/health"))
end


return _M
