-- moonwire.sched: waiting, from Lua. Every entry into app code runs in a
-- task, a coroutine the C core resumes (src/lua/sched.c); the primitives
-- that wait (core.sleep, Redis calls) park it and the core resumes it with
-- their results. This module is the one way app code waits: sleep, the
-- timers, spawn, and `wait` for primitives that park.
--
-- While a task waits, other clients' messages run. The runtime keeps the
-- state of the dispatch in progress (what message_failed needs, the
-- current rooms manager), so `wait` lets it save that state before
-- parking and put it back after: set_switch registers the two functions
-- that save it (as up to six values, kept on the waiting task's stack) and
-- restore it. No closure or table per wait: this is the path of every
-- Redis call, and LuaJIT compiles it only without them.

local core = require "moonwire.core"

local type = type
local error = error
local tostring = tostring
local setmetatable = setmetatable
local find = string.find


local _M = require("moonwire.version").module()

local save, restore -- set by the runtime: save() -> a..f; restore(a..f)


function _M.set_switch(save_fn, restore_fn)
    save, restore = save_fn, restore_fn
end


-- Runs fn(...), a primitive that may park the running task, with the
-- runtime's dispatch state saved around it. Returns what fn returns (its
-- first three values: the primitives return res, err and a flag).
function _M.wait(fn, ...)
    if not save then
        return fn(...)
    end
    local a, b, c, d, e, f = save()
    local r1, r2, r3 = fn(...)
    restore(a, b, c, d, e, f)
    return r1, r2, r3
end


-- A primitive's failure, nil, err[, raise], is raised at the app's call
-- (`level` as error's: 1 is the function calling raise_misuse) when it is
-- the app's mistake: one the primitive flags (raise: a bad argument, a
-- command the shared Redis connection refuses), or misuse that only shows
-- when waiting or subscribing (outside a task, inside a coroutine the app
-- made), as for sleep. The rest ("timeout", "not serving") is returned.
-- For the modules whose primitives park: moonwire.redis, moonwire.websocket.
function _M.raise_misuse(err, level, raise)
    if raise or (type(err) == "string" and find(err, "^cannot ")) then
        error(err, level + 1)
    end
end

local raise_misuse = _M.raise_misuse


-- An optional timeout argument or option (`what`: "argument #1", "option
-- 'timeout'") of fname, for the same modules: nil, or 0 to 86400000 ms.
function _M.check_ms(ms, what, fname, level)
    if ms ~= nil and (type(ms) ~= "number" or ms ~= ms or ms < 0 or ms > 86400000) then
        error("bad " .. what .. " to '" .. fname .. "' (milliseconds from 0 to 86400000 "
              .. "expected, got " .. tostring(ms) .. ")", level + 1)
    end
end


local function check_ms(ms, fname, n)
    if type(ms) ~= "number" or ms ~= ms or ms < 0 or ms > 86400000 then
        error("bad argument #" .. n .. " to '" .. fname
              .. "' (milliseconds from 0 to 86400000 expected)", 3)
    end
end


-- Parks the running task for ms milliseconds; true after.
function _M.sleep(ms)
    check_ms(ms, "sleep", 1)
    if not save then
        local ok, err = core.sleep(ms)
        raise_misuse(err, 2)
        return ok, err
    end
    local a, b, c, d, e, f = save()
    local ok, err = core.sleep(ms)
    restore(a, b, c, d, e, f)
    raise_misuse(err, 2)
    return ok, err
end


-- Runs fn(...) in a task of its own, after the current dispatch.
function _M.spawn(fn, ...)
    if type(fn) ~= "function" then
        error("bad argument #1 to 'spawn' (function expected, got " .. type(fn) .. ")", 2)
    end
    return core.spawn(fn, ...)
end


local Timer = {}
Timer.__index = Timer


-- Stops the timer; a run in flight finishes. true when it was still
-- pending, false when it had already fired (after) or been cancelled.
function Timer:cancel()
    if self._done then
        return false
    end
    self._done = true
    return core.timer_cancel(self.id) == true
end


local function start(fname, ms, fn, every)
    check_ms(ms, fname, 1)
    if every and ms < 1 then
        error("bad argument #1 to '" .. fname .. "' (an interval of at least 1 ms expected)", 3)
    end
    if type(fn) ~= "function" then
        error("bad argument #2 to '" .. fname .. "' (function expected, got " .. type(fn) .. ")", 3)
    end
    local id, err = core.timer(ms, fn, every)
    if not id then
        return nil, err
    end
    return setmetatable({ id = id, every = every }, Timer)
end


-- fn() in a task of its own once, ms from now.
function _M.after(ms, fn)
    return start("after", ms, fn, false)
end


-- fn() in a task of its own every ms (a run that still waits when the
-- next is due makes that one skip).
function _M.every(ms, fn)
    return start("every", ms, fn, true)
end


-- Every timer started by app code (a reload replaces the code that
-- started them).
function _M.cancel_timers()
    core.timers_cancel()
end


return _M
