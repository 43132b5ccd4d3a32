-- moonwire.handlers: utilities that wrap a subscriber's handle(ctx) (PXL's
-- subscriber utilities, docs/lua-api.md "moonwire.handlers"). Each one,
-- given its options, returns a wrapper, function(handler) -> handler; given
-- the handler as well (its last argument), it returns the wrapped handler
-- at once:
--
--     handle = handlers.with_retry({ attempts = 3, delay = 100 }, handle)
--     handle = handlers.compose({
--         handlers.with_error_handler(report),
--         handlers.with_retry{ attempts = 3, delay = 100 },
--     }, handle)
--
-- A handler fails when it raises or returns nil plus an error (the Lua
-- convention); the utilities treat both alike and pass a failure on the
-- way it came. Options are checked when the wrapper is made, so a typo
-- raises when the subscriber file loads, not at the first event.

local middleware = require "moonwire.middleware"
local schema = require "moonwire.schema"

local type = type
local tostring = tostring
local error = error
local pcall = pcall
local ipairs = ipairs
local find = string.find
local gmatch = string.gmatch
local format = string.format


local _M = require("moonwire.version").module()


local function core()
    return require "moonwire.core"
end


local function log(level, msg)
    core().log(level, msg)
end


-- Who a context belongs to, for log lines.
local about = middleware.about


local err_text = middleware.error_text


-- The wrapper `wrap` of utility fname, applied at once when the handler
-- was passed too (argument #n).
local function finish(wrap, handler, fname, n)
    if handler == nil then
        return wrap
    end
    if type(handler) ~= "function" then
        error("bad argument #" .. n .. " to '" .. fname .. "' (handler function expected, got "
              .. type(handler) .. ")", 3)
    end
    return wrap(handler)
end


-- A wrapper of utility fname: checks what it is given, then make(handler).
local function wrapper(fname, make)
    return function(handler)
        if type(handler) ~= "function" then
            error("bad argument #1 to the wrapper of '" .. fname .. "' (handler function "
                  .. "expected, got " .. type(handler) .. ")", 2)
        end
        return make(handler)
    end
end


-- Calls handler(ctx) protected: true, result or false, err, raised.
local function attempt(handler, ctx)
    local ok, res, err = pcall(handler, ctx)
    if not ok then
        return false, res, true
    end
    if res == nil and err ~= nil then
        return false, err, false
    end
    return true, res
end


-- Passes a failure on the way it came: raised again, or returned.
local function pass_on(err, raised)
    if raised then
        error(err, 0)
    end
    return nil, err
end


-- with_validation(schema_or_fn[, handler]): runs the handler only for a
-- valid ctx.message. A schema (moonwire.schema, or a description, compiled
-- now) names the wrong field ("message.items[2].price: expected number,
-- got string"); a function fn(message, ctx) says "invalid" by raising, by
-- returning false, or by returning nil, err (returning nothing, or
-- anything else, is "valid", as PXL's validators do). An invalid message
-- makes the wrapped handler return nil, err without running it.
function _M.with_validation(check, handler)
    local validate
    if type(check) == "function" then
        validate = function(ctx)
            local ok, res, err = pcall(check, ctx.message, ctx)
            if not ok then
                return nil, res
            end
            if res == false then
                return nil, err or "invalid message"
            end
            if res == nil and err ~= nil then
                return nil, err
            end
            return true
        end
    else
        if type(check) ~= "table" then
            error("bad argument #1 to 'with_validation' (schema or function expected, got "
                  .. type(check) .. ")", 2)
        end
        local ok, s = pcall(schema.new, check)
        if not ok then
            error("with_validation: " .. tostring(s), 2)
        end
        validate = function(ctx)
            return s:check(ctx.message, "message")
        end
    end
    return finish(wrapper("with_validation", function(h)
        return function(ctx)
            local ok, err = validate(ctx)
            if not ok then
                return nil, err
            end
            return h(ctx)
        end
    end), handler, "with_validation", 2)
end


-- with_filter(pred[, handler]): runs the handler only when pred(ctx) is
-- truthy; otherwise the wrapped handler returns nil.
function _M.with_filter(pred, handler)
    if type(pred) ~= "function" then
        error("bad argument #1 to 'with_filter' (function expected, got " .. type(pred) .. ")", 2)
    end
    return finish(wrapper("with_filter", function(h)
        return function(ctx)
            if not pred(ctx) then
                return nil
            end
            return h(ctx)
        end
    end), handler, "with_filter", 2)
end


local function check_ms(fname, key, v, min)
    if type(v) ~= "number" or v ~= v or v < min or v > 86400000 then
        error(fname .. ": " .. key .. " must be a number of ms from " .. min .. " to 86400000, got "
              .. tostring(v), 3)
    end
end


-- with_retry{ attempts =, delay =, backoff =, max_delay =, retry_on = }
-- [, handler]: runs the handler again when it fails, waiting (moonwire.sleep:
-- the task parks, the loop goes on) delay ms before the second attempt,
-- delay * backoff before the third, and so on, never more than max_delay.
-- attempts counts every run (default 3); retry_on(err, ctx, attempt)
-- returning false stops early. After the last attempt the last error is
-- passed on as it came (raised again, or returned as nil, err), so that
-- on_error and with_error_handler see it. Each retry logs a warning.
function _M.with_retry(opts, handler)
    if opts == nil then
        opts = {}
    end
    if type(opts) ~= "table" then
        error("bad argument #1 to 'with_retry' (table expected, got " .. type(opts) .. ")", 2)
    end
    local attempts = opts.attempts or 3
    local delay = opts.delay or 100
    local backoff = opts.backoff or 1
    local max_delay = opts.max_delay or 86400000
    local retry_on = opts.retry_on
    if type(attempts) ~= "number" or attempts < 1 or attempts > 100 or attempts % 1 ~= 0 then
        error("with_retry: attempts must be an integer from 1 to 100, got "
              .. tostring(attempts), 2)
    end
    check_ms("with_retry", "delay", delay, 0)
    check_ms("with_retry", "max_delay", max_delay, 0)
    if type(backoff) ~= "number" or backoff < 1 or backoff > 100 then
        error("with_retry: backoff must be a number from 1 to 100, got " .. tostring(backoff), 2)
    end
    if retry_on ~= nil and type(retry_on) ~= "function" then
        error("with_retry: retry_on must be a function(err, ctx, attempt), got "
              .. type(retry_on), 2)
    end
    local sleep = require("moonwire.sched").sleep
    return finish(wrapper("with_retry", function(h)
        return function(ctx)
            local wait = delay
            for n = 1, attempts do
                local ok, res, raised = attempt(h, ctx)
                if ok then
                    return res
                end
                if n == attempts or (retry_on and retry_on(res, ctx, n) == false) then
                    return pass_on(res, raised)
                end
                if wait > max_delay then
                    wait = max_delay
                end
                log("warn", format("%s: attempt %d of %d failed, retrying in %.0f ms: %s",
                                   about(ctx), n, attempts, wait, err_text(res)))
                sleep(wait)
                wait = wait * backoff
            end
        end
    end), handler, "with_retry", 2)
end


-- with_rate_limit{ max =, window = ms, key = function(ctx), on_limit =,
-- max_keys = }[, handler]: at most max runs per window for each key (nil
-- key: one limit for all), counted by the C limiter (core.keylimit,
-- bounded to max_keys keys, default 10000). Past it the handler does not
-- run: on_limit(ctx, retry_ms) is called, when given, and the wrapped
-- handler returns nil.
function _M.with_rate_limit(opts, handler)
    local take, o = middleware.limiter(opts, nil, "with_rate_limit", 2)
    local on_limit = o.on_limit
    if on_limit ~= nil and type(on_limit) ~= "function" then
        error("with_rate_limit: on_limit must be a function(ctx, retry_ms), got "
              .. type(on_limit), 2)
    end
    return finish(wrapper("with_rate_limit", function(h)
        return function(ctx)
            local ok, retry = take(ctx)
            if not ok then
                if on_limit then
                    on_limit(ctx, retry)
                end
                return nil
            end
            return h(ctx)
        end
    end), handler, "with_rate_limit", 2)
end


-- with_error_handler(fn[, handler]): a failure of the handler (raised or
-- nil, err) goes to fn(err, ctx) and stops there: the wrapped handler
-- then returns nil. An error fn raises itself is not caught.
function _M.with_error_handler(fn, handler)
    if type(fn) ~= "function" then
        error("bad argument #1 to 'with_error_handler' (function expected, got " .. type(fn)
              .. ")", 2)
    end
    return finish(wrapper("with_error_handler", function(h)
        return function(ctx)
            local ok, res = attempt(h, ctx)
            if ok then
                return res
            end
            fn(res, ctx)
            return nil
        end
    end), handler, "with_error_handler", 2)
end


-- with_logging(name[, handler]): a debug line when the handler starts and
-- when it is done (with how long it took), a warning with the error
-- (file:line) when it fails; the failure is passed on.
function _M.with_logging(name, handler)
    if type(name) ~= "string" then
        error("bad argument #1 to 'with_logging' (string expected, got " .. type(name) .. ")", 2)
    end
    return finish(wrapper("with_logging", function(h)
        return function(ctx)
            local c = core()
            local start = c.clock()
            c.log("debug", name .. ": " .. about(ctx))
            local ok, res, raised = attempt(h, ctx)
            local ms = (c.clock() - start) / 1e6
            if ok then
                c.log("debug", format("%s: %s done in %.3f ms", name, about(ctx), ms))
                return res
            end
            c.log("warn", format("%s: %s failed after %.3f ms: %s", name, about(ctx), ms,
                                 err_text(res)))
            return pass_on(res, raised)
        end
    end), handler, "with_logging", 2)
end


-- compose{ w1, w2, ... }[, handler]: one wrapper made of several, the
-- first outermost: compose{ a, b }(h) is a(b(h)).
function _M.compose(list, handler)
    if type(list) ~= "table" then
        error("bad argument #1 to 'compose' (list of wrappers expected, got " .. type(list) .. ")",
              2)
    end
    local ws, n = {}, #list
    for i = 1, n do
        if type(list[i]) ~= "function" then
            error("compose: item " .. i .. " is a " .. type(list[i]) .. ", not a wrapper (a "
                  .. "function(handler) -> handler)", 2)
        end
        ws[i] = list[i]
    end
    return finish(wrapper("compose", function(h)
        for i = n, 1, -1 do
            h = ws[i](h)
            if type(h) ~= "function" then
                error("compose: wrapper " .. i .. " returned a " .. type(h)
                      .. ", not a handler", 3)
            end
        end
        return h
    end), handler, "compose", 2)
end


-- sequence{ h1, h2, ... }: one handler that runs each in turn with the
-- same ctx (PXL's composeHandlers) and returns the last one's result. The
-- first that fails stops the sequence; its failure is passed on.
function _M.sequence(list)
    if type(list) ~= "table" then
        error("bad argument #1 to 'sequence' (list of handlers expected, got " .. type(list)
              .. ")", 2)
    end
    local hs = {}
    for i, h in ipairs(list) do
        if type(h) ~= "function" then
            error("sequence: item " .. i .. " is a " .. type(h) .. ", not a handler", 2)
        end
        hs[i] = h
    end
    local n = #hs
    return function(ctx)
        local res, err
        for i = 1, n do
            res, err = hs[i](ctx)
            if res == nil and err ~= nil then
                return nil, err
            end
        end
        return res
    end
end


-- A dotted key ("user.id") as its parts, once.
local function parts_of(key, fname)
    if type(key) ~= "string" or key == "" then
        error("bad argument #1 to '" .. fname .. "' (property name expected, got "
              .. type(key) .. ")", 3)
    end
    local parts = {}
    for part in gmatch(key, "[^.]+") do
        parts[#parts + 1] = part
    end
    if #parts == 0 or find(key, "^%.") or find(key, "%.$") or find(key, "%.%.") then
        error("bad argument #1 to '" .. fname .. "' (bad property path '" .. key .. "')", 3)
    end
    return parts
end


-- The value at parts in ctx.message, or nil.
local function lookup(message, parts, n)
    local v = message
    for i = 1, n do
        if type(v) ~= "table" then
            return nil
        end
        v = v[parts[i]]
    end
    return v
end


-- match_property(key, value): a predicate on ctx (a subscriber's `match`,
-- with_filter) true when ctx.message[key] == value. key may be a dotted
-- path ("user.id").
function _M.match_property(key, value)
    local parts = parts_of(key, "match_property")
    local n = #parts
    return function(ctx)
        return lookup(ctx.message, parts, n) == value
    end
end


-- match_property_predicate(key, pred): true when pred(ctx.message[key],
-- ctx) is truthy; never called for a missing property.
function _M.match_property_predicate(key, pred)
    local parts = parts_of(key, "match_property_predicate")
    if type(pred) ~= "function" then
        error("bad argument #2 to 'match_property_predicate' (function expected, got "
              .. type(pred) .. ")", 2)
    end
    local n = #parts
    return function(ctx)
        local v = lookup(ctx.message, parts, n)
        if v == nil then
            return false
        end
        return pred(v, ctx) and true or false
    end
end


return _M
