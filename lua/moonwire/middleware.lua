-- moonwire.middleware: before / after / error hooks around a handler, the
-- same objects for bus subscribers and for controllers (PXL's subscriber
-- middleware, docs/lua-api.md "Middleware").
--
-- A middleware is { name =, on_before =, on_after =, on_error = }. A chain
-- runs like an onion: every on_before in list order, the handler, then,
-- in reverse order, on_after(ctx, result) or on_error(ctx, err) for each
-- middleware whose on_before let it through. on_before returning false
-- ends the run there: the handler and everything after it are skipped,
-- and no on_after or on_error runs. on_error returning true suppresses
-- the error: the middleware outside it then see on_after(ctx, nil), as if
-- the handler had returned nothing. An error raised by a hook itself
-- takes the place of whatever was in flight, for the middleware outside it.
--
-- Chains are checked when they are declared (check), so that run() costs,
-- for an empty chain, one test and a tail call.

local errors = require "moonwire.errors"

local type = type
local tostring = tostring
local rawget = rawget
local error = error
local pcall = pcall
local pairs = pairs
local find = string.find
local format = string.format


local _M = require("moonwire.version").module()

local HOOKS = { on_before = true, on_after = true, on_error = true }

-- PXL's names, which a port from TypeScript may bring along.
local RENAMED = { onBefore = "on_before", onAfter = "on_after", onError = "on_error" }


-- Checks one middleware object; raises "<where>: ..." on misuse. Keys
-- other than name and the hooks are the middleware's own (its settings),
-- except the PXL spellings and unknown on_* names, which are typos.
local function check_one(mw, where)
    if type(mw) ~= "table" then
        error(where .. ": a middleware must be a table { name =, on_before =, on_after =, "
              .. "on_error = }, got " .. type(mw), 0)
    end
    local name = mw.name
    if type(name) ~= "string" or name == "" then
        error(where .. ": a middleware needs a name (a non-empty string), got "
              .. (name == nil and "none" or type(name)), 0)
    end
    where = where .. " ('" .. name .. "')"
    local hooks = 0
    for key, value in pairs(mw) do
        if HOOKS[key] then
            if type(value) ~= "function" then
                error(where .. ": " .. key .. " must be a function, got " .. type(value), 0)
            end
            hooks = hooks + 1
        elseif RENAMED[key] then
            error(where .. ": " .. key .. " is spelled " .. RENAMED[key] .. " here", 0)
        elseif type(key) == "string" and find(key, "^on_") then
            error(where .. ": unknown hook " .. key .. " (on_before, on_after, on_error)", 0)
        end
    end
    if hooks == 0 then
        error(where .. ": no hook (on_before, on_after or on_error)", 0)
    end
end


-- Makes a middleware object, checked. Raises on misuse, at the caller.
function _M.new(mw)
    local ok, err = pcall(check_one, mw, "middleware")
    if not ok then
        error(err, 2)
    end
    return mw
end


-- Checks a list of middleware (nil: none) and returns it as a new plain
-- list, or nil when it is empty (run() then calls the handler directly).
-- Raises "<what>[i] ('name'): ..." (what defaults to "middleware")
-- without a position: the caller knows which file declared it.
function _M.check(list, what)
    what = what or "middleware"
    if list == nil then
        return nil
    end
    if type(list) ~= "table" then
        error(what .. " must be a list of middleware, got " .. type(list), 0)
    end
    if list.name ~= nil or list.on_before ~= nil or list.on_after ~= nil
       or list.on_error ~= nil then
        error(what .. " must be a list of middleware: wrap the one middleware in { }", 0)
    end
    local n = #list
    for key in pairs(list) do
        if type(key) ~= "number" or key < 1 or key > n or key % 1 ~= 0 then
            error(what .. " must be a list (keys 1..n), found key " .. tostring(key), 0)
        end
    end
    if n == 0 then
        return nil
    end
    local out = {}
    for i = 1, n do
        check_one(list[i], what .. "[" .. i .. "]")
        out[i] = list[i]
    end
    return out
end


-- The outer list then the inner one, either possibly nil (checked lists).
function _M.concat(outer, inner)
    if not outer then
        return inner
    end
    if not inner then
        return outer
    end
    local out = {}
    for i = 1, #outer do
        out[i] = outer[i]
    end
    for i = 1, #inner do
        out[#out + 1] = inner[i]
    end
    return out
end


-- Runs handler(ctx) inside chain (a checked list or nil). Returns what the
-- handler returned; or nil when an on_before skipped it (ctx.skipped is
-- then that middleware's name) or an on_error suppressed its error; or
-- nil, err when it returned nil, err and no on_error suppressed that.
-- Raises, again, an error that was raised and not suppressed.
function _M.run(chain, ctx, handler)
    if chain == nil then
        return handler(ctx)
    end
    local n = #chain
    local entered, failed, raised, err = 0, false, false, nil
    local ok, res, res_err
    for i = 1, n do
        local before = chain[i].on_before
        if before then
            ok, res = pcall(before, ctx)
            if not ok then
                failed, raised, err = true, true, res
                break
            end
            if res == false then
                ctx.skipped = chain[i].name
                return nil
            end
        end
        entered = i
    end
    res = nil
    if not failed then
        ok, res, res_err = pcall(handler, ctx)
        if not ok then
            failed, raised, err, res = true, true, res, nil
        elseif res == nil and res_err ~= nil then
            failed, raised, err = true, false, res_err
        end
    end
    for i = entered, 1, -1 do
        local mw = chain[i]
        if failed then
            local on_error = mw.on_error
            if on_error then
                local hok, suppress = pcall(on_error, ctx, err)
                if not hok then
                    raised, err = true, suppress
                elseif suppress == true then
                    failed, err = false, nil
                end
            end
        else
            local on_after = mw.on_after
            if on_after then
                local hok, herr = pcall(on_after, ctx, res)
                if not hok then
                    failed, raised, err, res = true, true, herr, nil
                end
            end
        end
    end
    if failed then
        if raised then
            error(err, 0)
        end
        return nil, err
    end
    return res
end


-- Built-ins ---------------------------------------------------------------

local function core()
    return require "moonwire.core"
end


-- What a context is about, for log lines: a controller's route, or a
-- subscriber's name and channel.
local function about(ctx)
    if ctx.route ~= nil then
        return tostring(ctx.route)
    end
    if ctx.subscriber ~= nil then
        return "subscriber " .. tostring(ctx.subscriber) .. " on " .. tostring(ctx.channel)
    end
    return "channel " .. tostring(ctx.channel)
end

_M.about = about


-- An error as a log line shows it: a raised string keeps the file:line
-- Lua gave it; a moonwire.fail failure or an error table ({ code =,
-- message = }, as actions return) reads CODE: message. Nothing invents a
-- location for an error returned as nil, err: it has none.
local function err_text(err)
    if type(err) == "table" then
        local code, message = rawget(err, "code"), rawget(err, "message")
        if code ~= nil then
            return tostring(code) .. ": " .. tostring(message)
        end
        if message ~= nil then
            return tostring(message)
        end
    end
    return tostring(err)
end

_M.error_text = err_text


-- logging(name): a debug line before and after the handler, a warning
-- with the error (file:line) when it fails. Suppresses nothing.
function _M.logging(name)
    name = name or "logging"
    if type(name) ~= "string" then
        error("bad argument #1 to 'logging' (string expected, got " .. type(name) .. ")", 2)
    end
    return {
        name = name,
        on_before = function(ctx)
            core().log("debug", name .. ": " .. about(ctx))
        end,
        on_after = function(ctx, result)
            core().log("debug", name .. ": " .. about(ctx) .. " done (" .. type(result) .. ")")
        end,
        on_error = function(ctx, err)
            core().log("warn", name .. ": " .. about(ctx) .. " failed: " .. err_text(err))
        end,
    }
end


-- timing(name): how long the handler (and the middleware after this one)
-- took, in moonwire_message_duration_seconds under route `name`; without
-- a name, "bus:<subscriber>" for a subscriber and "<type.action>:handler"
-- for a controller (whose whole message the core already times under
-- "type.action"). Skipped runs are not recorded.
function _M.timing(name)
    if name ~= nil and (type(name) ~= "string" or name == "") then
        error("bad argument #1 to 'timing' (non-empty string expected, got " .. type(name) .. ")",
              2)
    end
    local started = {} -- a key of the context no one else uses
    local routes = {}  -- route name -> core.route number
    local function observe(ctx)
        local start = ctx[started]
        if not start then
            return
        end
        ctx[started] = nil
        local route = name
        if not route then
            if ctx.route ~= nil then
                route = tostring(ctx.route) .. ":handler"
            elseif ctx.subscriber ~= nil then
                route = "bus:" .. tostring(ctx.subscriber)
            else
                route = "bus:" .. tostring(ctx.channel)
            end
        end
        local c = core()
        local id = routes[route]
        if not id then
            id = c.route(route)
            routes[route] = id
        end
        c.observe(id, start)
    end
    return {
        name = name or "timing",
        on_before = function(ctx)
            ctx[started] = core().clock()
        end,
        on_after = observe,
        on_error = function(ctx)
            observe(ctx)
        end,
    }
end


-- A limiter (core.keylimit) from { max =, window = ms, key =, max_keys = }
-- or (max, window); what moonwire.handlers.with_rate_limit uses too.
-- Returns take(ctx) -> true | nil, retry_ms, and the options.
function _M.limiter(opts, window, fname, level)
    level = (level or 1) + 1
    if type(opts) == "number" then
        opts = { max = opts, window = window }
    end
    if type(opts) ~= "table" then
        error("bad argument #1 to '" .. fname .. "' ({ max =, window = } expected, got "
              .. type(opts) .. ")", level)
    end
    local max, win, key, max_keys = opts.max, opts.window, opts.key, opts.max_keys or 10000
    local function positive(v)
        return type(v) == "number" and v >= 1 and v % 1 == 0
    end
    if not positive(max) then
        error(fname .. ": max must be a positive integer, got " .. tostring(max), level)
    end
    if not positive(win) or win > 86400000 then
        error(fname .. ": window must be 1..86400000 ms, got " .. tostring(win), level)
    end
    if not positive(max_keys) or max_keys > 1000000 then
        error(fname .. ": max_keys must be 1..1000000, got " .. tostring(max_keys), level)
    end
    if key ~= nil and type(key) ~= "function" then
        error(fname .. ": key must be a function(ctx), got " .. type(key), level)
    end
    local cells = core().keylimit(win, max, max_keys)
    local function take(ctx)
        local k = ""
        if key then
            k = key(ctx)
            if k == nil then
                k = ""
            end
        end
        local ok, _, retry = cells:take(k)
        if ok then
            return true
        end
        return nil, retry
    end
    return take, opts, cells
end


-- rate_limit{ max =, window = ms, key = function(ctx) } (or (max,
-- window), as PXL's rateLimitMiddleware): at most max runs per window per
-- key (nil key: one limit for all), counted in C. Past it, a controller's
-- message is answered RATE_LIMIT_EXCEEDED and a subscriber's handler
-- skipped (opts.on_limit(ctx, retry_ms) is called first, when given).
function _M.rate_limit(opts, window)
    local take, o, cells = _M.limiter(opts, window, "rate_limit", 2)
    local on_limit = o.on_limit
    if on_limit ~= nil and type(on_limit) ~= "function" then
        error("rate_limit: on_limit must be a function(ctx, retry_ms), got " .. type(on_limit), 2)
    end
    return {
        name = o.name or "rate_limit",
        limiter = cells,
        on_before = function(ctx)
            local ok, retry = take(ctx)
            if ok then
                return true
            end
            if on_limit then
                on_limit(ctx, retry)
            end
            if ctx.route ~= nil then
                error(errors.failure("RATE_LIMIT_EXCEEDED",
                                     format("rate limit exceeded: retry in %d ms", retry)), 0)
            end
            return false
        end,
    }
end


-- require_auth(): only for an authenticated client (client:set_user by
-- the auth flow: client._authenticated). A controller's message from
-- anyone else is answered AUTHENTICATION_FAILED; a subscriber's handler
-- is skipped when the event has no client or an unauthenticated one.
function _M.require_auth()
    return {
        name = "require_auth",
        on_before = function(ctx)
            local client = ctx.client
            if type(client) == "table" and client._authenticated then
                return true
            end
            if ctx.route ~= nil then
                error(errors.failure("AUTHENTICATION_FAILED", "authentication required"), 0)
            end
            return false
        end,
    }
end


return _M
