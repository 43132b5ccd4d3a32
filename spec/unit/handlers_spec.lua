-- Specs for moonwire.handlers, the subscriber utilities, on the real core:
-- each wrapper alone and composed, retries that wait on the virtual clock
-- and pass the last error on, rate limits counted by the C limiter,
-- validation by schema and by function, and the matchers.

local applog = require "support.applog"
local tmpdir = require "support.tmpdir"
local testing = require "moonwire.testing"
local handlers = require "moonwire.handlers"
local middleware = require "moonwire.middleware"
local schema = require "moonwire.schema"


describe("moonwire.handlers", function()
    local dir, app, moonwire

    before_each(function()
        dir = tmpdir.new()
        app = assert(testing.load_app(dir, { config = { welcome = false, log_level = "debug" },
                                             clock = 1000000 }))
        moonwire = require "moonwire"
    end)

    after_each(function()
        app:close()
        tmpdir.remove(dir)
    end)

    local function logs(level)
        return applog.text(app, level)
    end

    local function ctx_of(message)
        return { channel = "events", subscriber = "test", message = message }
    end

    it("is reachable from the facade", function()
        assert.equal(handlers, moonwire.handlers)
        assert.equal(schema, moonwire.schema)
        assert.equal(middleware, moonwire.middleware)
    end)

    describe("each utility", function()
        it("returns a wrapper, or the wrapped handler when given one", function()
            local function h(ctx) return ctx.message.n * 2 end
            local wrap = handlers.with_filter(function() return true end)
            assert.is_function(wrap)
            assert.equal(4, wrap(h)(ctx_of({ n = 2 })))
            assert.equal(6, handlers.with_filter(function() return true end, h)(ctx_of({ n = 3 })))
        end)

        it("refuses a handler that is not a function, naming the utility", function()
            assert.has_error(function() handlers.with_filter(print, "nope") end,
                "bad argument #2 to 'with_filter' (handler function expected, got string)")
            assert.has_error(function() handlers.with_logging("x")(42) end,
                "bad argument #1 to the wrapper of 'with_logging' (handler function expected, "
                .. "got number)")
        end)
    end)

    describe("with_validation", function()
        local order = schema.new({ type = "object", fields = {
            items = { type = "array", items = { type = "object", fields = {
                price = "number" } } },
        } })

        it("runs the handler only for a message the schema accepts", function()
            local runs = 0
            local h = handlers.with_validation(order, function() runs = runs + 1; return "done" end)
            assert.equal("done", h(ctx_of({ items = { { price = 1 } } })))
            local res, err = h(ctx_of({ items = { { price = 1 }, { price = "2" } } }))
            assert.is_nil(res)
            assert.equal("message.items[2].price: expected number, got string", err)
            assert.equal(1, runs)
        end)

        it("compiles a description when the wrapper is made, and refuses a bad one", function()
            local h = handlers.with_validation({ type = "string" }, function() return 1 end)
            assert.equal(1, h(ctx_of("x")))
            assert.has_error(function() handlers.with_validation({ type = "strin" }) end)
        end)

        it("takes a function that raises or returns false or nil, err as PXL's do", function()
            local h = handlers.with_validation(function(message)
                if not message.type then error("Missing type", 0) end
                if message.type == "bad" then return false end
                if message.type == "worse" then return nil, "worse is invalid" end
                -- returning nothing: valid
            end, function() return "ran" end)
            assert.equal("ran", h(ctx_of({ type = "ok" })))
            assert.same({ nil, "Missing type" }, { h(ctx_of({})) })
            assert.same({ nil, "invalid message" }, { h(ctx_of({ type = "bad" })) })
            assert.same({ nil, "worse is invalid" }, { h(ctx_of({ type = "worse" })) })
        end)

        it("hands a failed validation to on_error of the middleware around it", function()
            local seen
            local chain = middleware.check({ { name = "report",
                on_error = function(_, err) seen = err end } })
            local h = handlers.with_validation(order, function() end)
            local res, err = middleware.run(chain, ctx_of({ items = { { price = false } } }), h)
            assert.is_nil(res)
            assert.equal("message.items[1].price: expected number, got boolean", err)
            assert.equal(err, seen)
        end)
    end)

    describe("with_filter", function()
        it("runs the handler only when the predicate says so", function()
            local h = handlers.with_filter(function(ctx)
                return ctx.message.authenticated == true
            end, function() return "ran" end)
            assert.equal("ran", h(ctx_of({ authenticated = true })))
            assert.is_nil(h(ctx_of({ authenticated = "yes" })))
        end)

        it("takes the matchers", function()
            local h = handlers.with_filter(handlers.match_property("kind", "vip"),
                                           function() return "ran" end)
            assert.equal("ran", h(ctx_of({ kind = "vip" })))
            assert.is_nil(h(ctx_of({ kind = "basic" })))
        end)
    end)

    describe("with_retry", function()
        -- Runs h(ctx) in a task, recording what came out of it.
        local function spawn(h, ctx)
            local out = {}
            moonwire.spawn(function()
                local ok, res, err = pcall(h, ctx)
                out.done, out.ok, out.res, out.err = true, ok, res, err
            end)
            app:run()
            return out
        end

        it("retries after delay, then delay * backoff, waiting on the clock", function()
            local times = {}
            local h = handlers.with_retry({ attempts = 4, delay = 100, backoff = 2 }, function()
                times[#times + 1] = moonwire.now() - 1000000
                if #times < 4 then
                    error("flaky")
                end
                return "finally"
            end)
            local out = spawn(h, ctx_of({}))
            assert.same({ 0 }, times)
            app:advance(99)
            assert.same({ 0 }, times)
            app:advance(1)
            assert.same({ 0, 100 }, times)
            app:advance(200)
            assert.same({ 0, 100, 300 }, times)
            assert.is_nil(out.done)
            app:advance(400)
            assert.same({ 0, 100, 300, 700 }, times)
            assert.same({ true, true, "finally" }, { out.done, out.ok, out.res })
            assert.matches("subscriber test on events: attempt 1 of 4 failed, retrying in 100 ms: "
                           .. ".*handlers_spec.lua:%d+: flaky", logs("warn"))
            assert.matches("attempt 3 of 4 failed, retrying in 400 ms", logs("warn"), 1, true)
        end)

        it("never waits longer than max_delay", function()
            local times = {}
            local h = handlers.with_retry({ attempts = 4, delay = 100, backoff = 10,
                                            max_delay = 250 }, function()
                times[#times + 1] = moonwire.now() - 1000000
                return nil, "down"
            end)
            spawn(h, ctx_of({}))
            app:advance(1000)
            assert.same({ 0, 100, 350, 600 }, times)
        end)

        it("raises the last error again once the attempts are spent, for on_error", function()
            local n, seen = 0, nil
            local chain = middleware.check({ { name = "catch",
                on_error = function(_, err) seen = err end } })
            local h = handlers.with_retry({ attempts = 3, delay = 10 }, function()
                n = n + 1
                error("attempt " .. n .. " failed", 0)
            end)
            local out = {}
            moonwire.spawn(function()
                out.ok, out.err = pcall(middleware.run, chain, ctx_of({}), h)
            end)
            app:advance(100)
            assert.equal(3, n)
            assert.is_false(out.ok)
            assert.equal("attempt 3 failed", out.err)
            assert.equal("attempt 3 failed", seen)
        end)

        it("returns the last nil, err once the attempts are spent, to the error handler",
           function()
            local got
            local n = 0
            local h = handlers.compose({
                handlers.with_error_handler(function(err, ctx) got = { err, ctx.channel } end),
                handlers.with_retry{ attempts = 2, delay = 5 },
            }, function()
                n = n + 1
                return nil, "no " .. n
            end)
            local out = spawn(h, ctx_of({}))
            app:advance(5)
            assert.equal(2, n)
            assert.same({ "no 2", "events" }, got)
            assert.same({ true, true }, { out.done, out.ok })
            assert.is_nil(out.res)
        end)

        it("stops early when retry_on says no", function()
            local n = 0
            local h = handlers.with_retry({ attempts = 5, delay = 10,
                retry_on = function(err, ctx, attempt)
                    return err ~= "fatal" and attempt < 5
                end }, function()
                n = n + 1
                return nil, n == 2 and "fatal" or "transient"
            end)
            local out = spawn(h, ctx_of({}))
            app:advance(100)
            assert.equal(2, n)
            assert.same({ true, nil, "fatal" }, { out.ok, out.res, out.err })
        end)

        it("lets other work run while it waits", function()
            local h = handlers.with_retry({ attempts = 2, delay = 1000 }, function()
                error("x")
            end)
            spawn(h, ctx_of({}))
            local ws = app:connect()
            ws:send('{"type":"system","action":"ping","id":"p"}')
            assert.equal("p", ws:sent()[1].id)
        end)

        it("refuses bad options when made", function()
            assert.has_error(function() handlers.with_retry({ attempts = 0 }) end,
                             "with_retry: attempts must be an integer from 1 to 100, got 0")
            assert.has_error(function() handlers.with_retry({ delay = -1 }) end,
                             "with_retry: delay must be a number of ms from 0 to 86400000, got -1")
            assert.has_error(function() handlers.with_retry({ backoff = 0.5 }) end,
                             "with_retry: backoff must be a number from 1 to 100, got 0.5")
            assert.has_error(function() handlers.with_retry({ retry_on = true }) end,
                             "with_retry: retry_on must be a function(err, ctx, attempt), got "
                             .. "boolean")
        end)
    end)

    describe("with_rate_limit", function()
        it("counts runs per key in the C limiter and calls on_limit past it", function()
            local limited, runs = {}, {}
            local h = handlers.with_rate_limit({
                max = 3, window = 60000,
                key = function(ctx) return ctx.message.user end,
                on_limit = function(ctx, retry)
                    limited[#limited + 1] = ctx.message.user .. " " .. retry
                end,
            }, function(ctx) runs[#runs + 1] = ctx.message.user; return true end)
            for _ = 1, 4 do
                h(ctx_of({ user = "ann" }))
            end
            h(ctx_of({ user = 42 }))
            assert.same({ "ann", "ann", "ann", 42 }, runs)
            assert.same({ "ann 20000" }, limited)
            assert.is_nil(h(ctx_of({ user = "ann" })))
            app:advance(20000)
            assert.is_true(h(ctx_of({ user = "ann" })))
        end)

        it("shares one limit among all when there is no key", function()
            local n = 0
            local h = handlers.with_rate_limit({ max = 2, window = 1000 }, function() n = n + 1 end)
            for i = 1, 5 do
                h(ctx_of({ user = i }))
            end
            assert.equal(2, n)
        end)

        it("refuses a key that is neither a string nor a number, or too long", function()
            local h = handlers.with_rate_limit({ max = 1, window = 10,
                key = function(ctx) return ctx.message.key end }, function() end)
            assert.has_error(function() h(ctx_of({ key = {} })) end)
            local ok, err = pcall(h, ctx_of({ key = string.rep("k", 1025) }))
            assert.is_false(ok)
            assert.matches("key longer than 1024 bytes", err, 1, true)
            assert.has_no_error(function() h(ctx_of({ key = string.rep("k", 1024) })) end)
        end)

        it("bounds its table to max_keys, forgetting the least recently used key", function()
            local h = handlers.with_rate_limit({ max = 1, window = 60000, max_keys = 2,
                key = function(ctx) return ctx.message.user end }, function() return true end)
            assert.is_true(h(ctx_of({ user = "a" })))
            assert.is_true(h(ctx_of({ user = "b" })))
            assert.is_nil(h(ctx_of({ user = "a" })))
            assert.is_true(h(ctx_of({ user = "c" }))) -- b is forgotten
            assert.is_nil(h(ctx_of({ user = "a" })))
            assert.is_true(h(ctx_of({ user = "b" }))) -- starts over
        end)

        it("refuses bad options when made", function()
            assert.has_error(function() handlers.with_rate_limit({ max = 1, window = 1,
                                                                   max_keys = 0 }) end,
                             "with_rate_limit: max_keys must be 1..1000000, got 0")
            assert.has_error(function() handlers.with_rate_limit({ max = 1, window = 1,
                                                                   on_limit = 1 }) end,
                "with_rate_limit: on_limit must be a function(ctx, retry_ms), got number")
            assert.has_error(function() handlers.with_rate_limit(5) end,
                             "with_rate_limit: window must be 1..86400000 ms, got nil")
        end)
    end)

    describe("with_error_handler", function()
        it("hands a raised error or nil, err to the handler and stops it there", function()
            local got = {}
            local function report(err, ctx) got[#got + 1] = tostring(err) .. " @" .. ctx.channel end
            local raises = handlers.with_error_handler(report, function() error("boom", 0) end)
            local returns = handlers.with_error_handler(report, function() return nil, "nope" end)
            local fine = handlers.with_error_handler(report, function() return 7 end)
            assert.is_nil(raises(ctx_of({})))
            assert.is_nil(returns(ctx_of({})))
            assert.equal(7, fine(ctx_of({})))
            assert.same({ "boom @events", "nope @events" }, got)
        end)
    end)

    describe("with_logging", function()
        it("logs start, end and failure with file:line, and passes the failure on", function()
            local ok = handlers.with_logging("broadcast", function() return 1 end)
            local bad = handlers.with_logging("broadcast", function() error("boom") end)
            assert.equal(1, ok(ctx_of({})))
            assert.has_error(function() bad(ctx_of({})) end)
            assert.matches("broadcast: subscriber test on events done in 0.000 ms",
                           logs("debug"), 1, true)
            assert.matches("broadcast: subscriber test on events failed after 0.000 ms: "
                           .. ".*handlers_spec.lua:%d+: boom", logs("warn"))
        end)
    end)

    describe("compose", function()
        it("applies the wrappers outermost first", function()
            local trace = {}
            local function tag(name)
                return function(h)
                    return function(ctx)
                        trace[#trace + 1] = name
                        return h(ctx)
                    end
                end
            end
            local h = handlers.compose({ tag("a"), tag("b"), tag("c") })(function()
                trace[#trace + 1] = "h"
                return "r"
            end)
            assert.equal("r", h({}))
            assert.same({ "a", "b", "c", "h" }, trace)
            assert.equal(print, handlers.compose({}, print))
        end)

        it("refuses something that is not a wrapper", function()
            assert.has_error(function() handlers.compose({ handlers.with_logging("x"), "y" }) end,
                "compose: item 2 is a string, not a wrapper (a function(handler) -> handler)")
            assert.has_error(function()
                handlers.compose({ function() return 1 end }, print)
            end)
        end)
    end)

    describe("sequence", function()
        it("runs the handlers in order and returns the last one's result", function()
            local trace = {}
            local h = handlers.sequence({
                handlers.with_logging("validate", function() trace[#trace + 1] = 1 end),
                function() trace[#trace + 1] = 2 end,
                function() trace[#trace + 1] = 3; return "last" end,
            })
            assert.equal("last", h({}))
            assert.same({ 1, 2, 3 }, trace)
        end)

        it("stops at the first failure and passes it on", function()
            local trace = {}
            local h = handlers.sequence({
                function() trace[#trace + 1] = 1; return nil, "invalid" end,
                function() trace[#trace + 1] = 2 end,
            })
            assert.same({ nil, "invalid" }, { h({}) })
            assert.same({ 1 }, trace)
            h = handlers.sequence({ function() error("x", 0) end, function() trace[3] = 3 end })
            assert.has_error(function() h({}) end, "x")
            assert.is_nil(trace[3])
        end)
    end)

    describe("matchers", function()
        it("match_property compares a property, on a dotted path too", function()
            local m = handlers.match_property("type", "analytics")
            assert.is_true(m(ctx_of({ type = "analytics" })))
            assert.is_false(m(ctx_of({ type = "other" })))
            assert.is_false(m(ctx_of("not a table")))
            local deep = handlers.match_property("user.id", 123)
            assert.is_true(deep(ctx_of({ user = { id = 123 } })))
            assert.is_false(deep(ctx_of({ user = 5 })))
            assert.is_false(deep(ctx_of({})))
        end)

        it("match_property_predicate tests a property that is there", function()
            local m = handlers.match_property_predicate("priority", function(v) return v > 5 end)
            assert.is_true(m(ctx_of({ priority = 9 })))
            assert.is_false(m(ctx_of({ priority = 1 })))
            assert.is_false(m(ctx_of({})))
        end)

        it("refuses bad paths and predicates", function()
            assert.has_error(function() handlers.match_property("a..b", 1) end,
                             "bad argument #1 to 'match_property' (bad property path 'a..b')")
            assert.has_error(function() handlers.match_property(nil, 1) end)
            assert.has_error(function() handlers.match_property_predicate("a", 1) end,
                "bad argument #2 to 'match_property_predicate' (function expected, got number)")
        end)
    end)

    describe("with middleware, as a subscriber would use them", function()
        it("the retries' last error reaches on_error and the error handler sees nothing more",
           function()
            local seen = {}
            local chain = middleware.check({
                { name = "audit",
                  on_error = function(_, err) seen[#seen + 1] = err; return true end },
            })
            local h = handlers.compose({
                handlers.with_validation({ type = "object", fields = { id = "integer" } }),
                handlers.with_retry{ attempts = 2, delay = 50 },
            }, function(ctx) error("store down for " .. ctx.message.id, 0) end)
            local out = {}
            moonwire.spawn(function()
                out.ok, out.res, out.err = pcall(middleware.run, chain, ctx_of({ id = 7 }), h)
            end)
            app:advance(50)
            assert.same({ true }, { out.ok, out.res, out.err })
            assert.same({ "store down for 7" }, seen)
            -- invalid input is not retried
            moonwire.spawn(function()
                middleware.run(chain, ctx_of({ id = "x" }), h)
            end)
            app:run()
            assert.same({ "store down for 7", "message.id: expected integer, got string" }, seen)
        end)
    end)
end)
