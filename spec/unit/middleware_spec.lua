-- Specs for moonwire.middleware: the runner's order (befores in list order,
-- afters and errors in reverse), skipping, suppressing, failures returned
-- as nil, err, errors raised by middleware themselves, the checks made
-- when a chain is declared, and the built-ins (logging, timing into
-- /metrics, rate_limit on the C limiter, require_auth) on the real core.

local applog = require "support.applog"
local tmpdir = require "support.tmpdir"
local testing = require "moonwire.testing"
local middleware = require "moonwire.middleware"
local errors = require "moonwire.errors"


-- A middleware that records each of its hooks in `trace`.
local function recorder(name, trace, opts)
    opts = opts or {}
    return {
        name = name,
        on_before = function(ctx)
            trace[#trace + 1] = name .. ".before"
            if opts.before then
                return opts.before(ctx)
            end
        end,
        on_after = function(ctx, result)
            trace[#trace + 1] = name .. ".after(" .. tostring(result) .. ")"
            if opts.after then
                return opts.after(ctx, result)
            end
        end,
        on_error = function(ctx, err)
            trace[#trace + 1] = name .. ".error(" .. tostring(err):gsub("^.-:%d+: ", "") .. ")"
            if opts.error then
                return opts.error(ctx, err)
            end
        end,
    }
end


describe("moonwire.middleware", function()
    describe("run", function()
        local trace

        before_each(function()
            trace = {}
        end)

        local function handler(result, err)
            return function(ctx)
                trace[#trace + 1] = "handler"
                return result, err
            end
        end

        it("calls the handler alone for no chain", function()
            local ctx = {}
            local a, b = middleware.run(nil, ctx, function(c)
                assert.equal(ctx, c)
                return 1, 2
            end)
            assert.same({ 1, 2 }, { a, b })
        end)

        it("runs befores in order and afters in reverse, around the handler", function()
            local chain = middleware.check({ recorder("a", trace), recorder("b", trace) })
            assert.equal("ok", middleware.run(chain, {}, handler("ok")))
            assert.same({ "a.before", "b.before", "handler", "b.after(ok)", "a.after(ok)" }, trace)
        end)

        it("skips the handler, the later befores and every after when a before says false",
           function()
            local chain = middleware.check({
                recorder("a", trace),
                recorder("b", trace, { before = function() return false end }),
                recorder("c", trace),
            })
            local ctx = {}
            assert.is_nil(middleware.run(chain, ctx, handler("ok")))
            assert.same({ "a.before", "b.before" }, trace)
            assert.equal("b", ctx.skipped)
        end)

        it("lets anything but false through, nil included", function()
            local chain = middleware.check({
                recorder("a", trace, { before = function() return nil end }),
                recorder("b", trace, { before = function() return 0 end }),
            })
            assert.equal("ok", middleware.run(chain, {}, handler("ok")))
        end)

        it("passes a raised error to every on_error, inside out, and raises it again", function()
            local chain = middleware.check({ recorder("a", trace), recorder("b", trace) })
            local ok, err = pcall(middleware.run, chain, {}, function() error("boom") end)
            assert.is_false(ok)
            assert.matches("middleware_spec.lua:%d+: boom$", err)
            assert.same({ "a.before", "b.before", "b.error(boom)", "a.error(boom)" }, trace)
        end)

        it("keeps a moonwire.fail failure as it is", function()
            local failure = errors.failure("NOT_ALLOWED", "no")
            local seen
            local chain = middleware.check({
                { name = "x", on_error = function(_, e) seen = e end },
            })
            local ok, err = pcall(middleware.run, chain, {}, function() error(failure) end)
            assert.is_false(ok)
            assert.equal(failure, err)
            assert.equal(failure, seen)
        end)

        it("treats nil, err as a failure and returns it as it came", function()
            local chain = middleware.check({ recorder("a", trace) })
            local res, err = middleware.run(chain, {}, handler(nil, "bad input"))
            assert.is_nil(res)
            assert.equal("bad input", err)
            assert.same({ "a.before", "handler", "a.error(bad input)" }, trace)
        end)

        it("suppresses an error when an on_error returns true; the outer ones see success",
           function()
            local chain = middleware.check({
                recorder("outer", trace),
                recorder("inner", trace, { error = function() return true end }),
            })
            local res, err = middleware.run(chain, {}, function() error("boom") end)
            assert.is_nil(res)
            assert.is_nil(err)
            assert.same({ "outer.before", "inner.before", "inner.error(boom)", "outer.after(nil)" },
                        trace)
        end)

        it("suppresses nothing for a truthy value other than true", function()
            local chain = middleware.check({ { name = "x", on_error = function() return 1 end } })
            assert.has_error(function()
                middleware.run(chain, {}, function() error("kept", 0) end)
            end, "kept")
        end)

        it("makes an error raised by a hook the error of the middleware outside it", function()
            local chain = middleware.check({
                recorder("a", trace),
                recorder("b", trace, { after = function() error("after failed", 0) end }),
                recorder("c", trace),
            })
            local ok, err = pcall(middleware.run, chain, {}, handler("ok"))
            assert.is_false(ok)
            assert.equal("after failed", err)
            assert.same({ "a.before", "b.before", "c.before", "handler", "c.after(ok)",
                          "b.after(ok)", "a.error(after failed)" }, trace)
        end)

        it("does not run the handler when a before raises; only the middleware before it see it",
           function()
            local chain = middleware.check({
                recorder("a", trace),
                recorder("b", trace, { before = function() error("no entry", 0) end }),
                recorder("c", trace),
            })
            local ok, err = pcall(middleware.run, chain, {}, handler("ok"))
            assert.is_false(ok)
            assert.equal("no entry", err)
            assert.same({ "a.before", "b.before", "a.error(no entry)" }, trace)
        end)

        it("replaces the error in flight with one raised by an on_error", function()
            local chain = middleware.check({
                recorder("a", trace),
                recorder("b", trace, { error = function() error("worse", 0) end }),
            })
            local ok, err = pcall(middleware.run, chain, {}, function() error("bad", 0) end)
            assert.is_false(ok)
            assert.equal("worse", err)
            assert.same({ "a.before", "b.before", "b.error(bad)", "a.error(worse)" }, trace)
        end)

        it("runs a handler that waits, in a task", function()
            local dir = tmpdir.new()
            local app = assert(testing.load_app(dir, { config = { welcome = false } }))
            local moonwire = require "moonwire"
            local chain = middleware.check({ recorder("a", trace) })
            moonwire.spawn(function()
                middleware.run(chain, {}, function()
                    moonwire.sleep(30)
                    return "late"
                end)
            end)
            app:run()
            assert.same({ "a.before" }, trace)
            app:advance(30)
            assert.same({ "a.before", "a.after(late)" }, trace)
            app:close()
            tmpdir.remove(dir)
        end)
    end)

    describe("check", function()
        local function refused(list, what)
            local ok, err = pcall(middleware.check, list, what)
            assert.is_false(ok)
            return err
        end

        it("returns nil for no middleware and a copy otherwise", function()
            assert.is_nil(middleware.check(nil))
            assert.is_nil(middleware.check({}))
            local mw = { name = "x", on_before = function() end }
            local list = { mw }
            local chain = middleware.check(list)
            assert.are_not.equal(list, chain)
            assert.equal(mw, chain[1])
        end)

        it("names the middleware that is wrong and what is wrong with it", function()
            assert.equal("middleware[2]: a middleware needs a name (a non-empty string), got none",
                         refused({ middleware.logging("x"), { on_before = print } }))
            assert.equal("middleware[1] ('auth'): on_before must be a function, got string",
                         refused({ { name = "auth", on_before = "yes" } }))
            assert.equal("middleware[1] ('auth'): onBefore is spelled on_before here",
                         refused({ { name = "auth", onBefore = print } }))
            assert.equal("middleware[1] ('auth'): unknown hook on_begin (on_before, on_after, "
                         .. "on_error)", refused({ { name = "auth", on_begin = print } }))
            assert.equal("middleware[1] ('auth'): no hook (on_before, on_after or on_error)",
                         refused({ { name = "auth" } }))
            assert.equal("_middleware[1]: a middleware must be a table { name =, on_before =, "
                         .. "on_after =, on_error = }, got string",
                         refused({ "logging" }, "_middleware"))
            assert.equal("middleware must be a list of middleware: wrap the one middleware in { }",
                         refused(middleware.logging("x")))
            assert.equal("middleware must be a list of middleware, got function", refused(print))
            assert.equal("middleware must be a list (keys 1..n), found key x",
                         refused({ middleware.logging("a"), x = middleware.logging("b") }))
        end)

        it("keeps a middleware's own settings", function()
            assert.is_table(middleware.check({ { name = "x", limit = 3, on_after = print } }))
            assert.is_table(middleware.new({ name = "x", on_error = print }))
            assert.has_error(function() middleware.new({ name = "x" }) end)
        end)
    end)

    describe("built-ins", function()
        local dir, app

        before_each(function()
            dir = tmpdir.new()
            app = assert(testing.load_app(dir, { config = { welcome = false, log_level = "debug" },
                                                 clock = 1000000 }))
        end)

        after_each(function()
            app:close()
            tmpdir.remove(dir)
        end)

        local function logs(level)
            return applog.text(app, level)
        end

        -- moonwire_message_duration_seconds's count and sum of a route.
        local function timed(route)
            local text = app:metrics()
            local q = ('{route="' .. route .. '"}'):gsub("%p", "%%%0")
            return tonumber(text:match("moonwire_message_duration_seconds_count" .. q .. " (%S+)")),
                   tonumber(text:match("moonwire_message_duration_seconds_sum" .. q .. " (%S+)"))
        end

        it("logging logs the start, the end and the error with its file:line", function()
            local chain = middleware.check({ middleware.logging("feed") })
            middleware.run(chain, { subscriber = "ticker", channel = "prices" }, function() end)
            assert.has_error(function()
                middleware.run(chain, { route = "chat.send" }, function() error("broken") end)
            end)
            assert.matches("feed: subscriber ticker on prices\n"
                           .. "feed: subscriber ticker on prices done (nil)\nfeed: chat.send",
                           logs("debug"), 1, true)
            assert.matches("feed: chat.send failed: .*middleware_spec.lua:%d+: broken",
                           logs("warn"))
            -- an error returned has no location to show, and gets none
            middleware.run(chain, { route = "chat.get" }, function()
                return nil, { code = "NOT_FOUND", message = "gone" }
            end)
            middleware.run(chain, { route = "chat.put" }, function() return nil, "full" end)
            assert.matches("feed: chat.get failed: NOT_FOUND: gone\nfeed: chat.put failed: full$",
                           logs("warn"))
        end)

        it("timing records a subscriber's run under bus:<name>, waits included", function()
            local moonwire = require "moonwire"
            local chain = middleware.check({ middleware.timing() })
            for _, ms in ipairs({ 50, 20 }) do
                moonwire.spawn(function()
                    middleware.run(chain, { subscriber = "notify", channel = "x" }, function()
                        moonwire.sleep(ms)
                    end)
                end)
            end
            app:run()
            assert.is_nil(timed("bus:notify"))
            app:advance(50)
            local count, sum = timed("bus:notify")
            assert.equal(2, count)
            assert.near(0.07, sum, 1e-9)
        end)

        it("timing records failed runs, not skipped ones, and takes a route name", function()
            local skip = { name = "skip", on_before = function(ctx) return not ctx.skip end }
            local chain = middleware.check({ middleware.timing("jobs"), skip })
            middleware.run(chain, { subscriber = "a" }, function() end)
            pcall(middleware.run, chain, { subscriber = "a" }, function() error("x") end)
            middleware.run(chain, { subscriber = "a", skip = true }, function() end)
            assert.equal(2, (timed("jobs")))
            assert.is_nil(timed("bus:a"))
            -- a controller's: beside the core's own series for the route
            chain = middleware.check({ middleware.timing() })
            middleware.run(chain, { route = "chat.send" }, function() end)
            assert.equal(1, (timed("chat.send:handler")))
        end)

        it("rate_limit skips a subscriber past the limit and answers a controller", function()
            local limited = {}
            local mw = middleware.rate_limit({ max = 2, window = 1000,
                key = function(ctx) return ctx.message.user end,
                on_limit = function(ctx, retry) limited[#limited + 1] = retry end })
            local chain = middleware.check({ mw })
            local runs = 0
            local function h() runs = runs + 1 end
            for _ = 1, 3 do
                middleware.run(chain, { channel = "c", message = { user = "ann" } }, h)
            end
            middleware.run(chain, { channel = "c", message = { user = "bob" } }, h)
            assert.equal(3, runs)
            assert.same({ 500 }, limited)
            app:advance(500)
            middleware.run(chain, { channel = "c", message = { user = "ann" } }, h)
            assert.equal(4, runs)
            assert.equal(2, mw.limiter:size())

            -- PXL's positional form; a controller's context gets an error
            chain = middleware.check({ middleware.rate_limit(1, 60000) })
            middleware.run(chain, { route = "chat.send" }, h)
            local ok, err = pcall(middleware.run, chain, { route = "chat.send" }, h)
            assert.is_false(ok)
            assert.is_true(errors.is_failure(err))
            assert.equal("RATE_LIMIT_EXCEEDED", err.code)
            assert.equal("rate limit exceeded: retry in 60000 ms", err.message)
        end)

        it("rate_limit refuses bad options where it is declared", function()
            assert.has_error(function() middleware.rate_limit({ max = 0, window = 10 }) end,
                             "rate_limit: max must be a positive integer, got 0")
            assert.has_error(function() middleware.rate_limit({ max = 1 }) end,
                             "rate_limit: window must be 1..86400000 ms, got nil")
            assert.has_error(function() middleware.rate_limit({ max = 1, window = 1, key = 1 }) end,
                             "rate_limit: key must be a function(ctx), got number")
        end)

        it("require_auth lets only authenticated clients through", function()
            local chain = middleware.check({ middleware.require_auth() })
            local runs = 0
            local function h() runs = runs + 1 end
            middleware.run(chain, { channel = "c" }, h)
            middleware.run(chain, { channel = "c", client = {} }, h)
            assert.equal(0, runs)
            middleware.run(chain, { channel = "c", client = { _authenticated = true } }, h)
            assert.equal(1, runs)
            local ok, err = pcall(middleware.run, chain, { route = "a.b", client = {} }, h)
            assert.is_false(ok)
            assert.equal("AUTHENTICATION_FAILED", err.code)
        end)
    end)
end)
