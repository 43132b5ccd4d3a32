-- Specs for the event bus (moonwire.bus, docs/subscribers.md) on the real
-- core and its virtual clock: subscribers loaded from APP/subscribers/,
-- selected by channel, channels or match, run in tasks by priority; the
-- server's own events; bad files; the guards against slow handlers,
-- loops and floods.

local applog = require "support.applog"
local tmpdir = require "support.tmpdir"
local testing = require "moonwire.testing"
local bus = require "moonwire.bus"


describe("moonwire.bus", function()
    local dir, app

    local function load(config)
        local err
        app, err = testing.load_app(dir, { config = config or { welcome = false },
                                           clock = 1000000 })
        return app, err
    end

    local function logs(level)
        return applog.text(app, level)
    end

    -- What the subscribers recorded, in order (they log "got <what>").
    local function got()
        local out = {}
        for _, entry in ipairs(app:logs("info")) do
            local what = entry.message:match("^got (.*)$")
            if what then
                out[#out + 1] = what
            end
        end
        return out
    end

    local function subscriber(name, src)
        tmpdir.write(dir, "subscribers/" .. name .. ".lua", src)
    end

    before_each(function()
        dir = tmpdir.new()
        tmpdir.write(dir, "controllers/act.lua", [[
            local moonwire = require "moonwire"
            return {
                emit = function(client, data)
                    return { n = moonwire.emit(data.channel, data.message) }
                end,
                join = function(client, data) return { count = client:join(data.room) } end,
                leave = function(client, data) return { count = client:leave(data.room) } end,
            }
        ]])
    end)

    after_each(function()
        if app then
            app:close()
            app = nil
        end
        tmpdir.remove(dir)
    end)

    describe("globs", function()
        it("compiles a name without wildcards to itself", function()
            assert.equal("job.done", bus.glob("job.done"))
        end)

        it("matches * within a segment, ** across, ? one character", function()
            local one = assert(bus.glob("job.*"))
            assert.is_true(one("job.done"))
            assert.is_false(one("job.done.late"))
            assert.is_false(one("jobs.done"))
            local any = assert(bus.glob("job.**"))
            assert.is_true(any("job.done.late"))
            local q = assert(bus.glob("room.?"))
            assert.is_true(q("room.a"))
            assert.is_false(q("room.ab"))
        end)

        it("takes alternatives in braces and escapes", function()
            local alt = assert(bus.glob("job.{done,error}"))
            assert.is_true(alt("job.done"))
            assert.is_true(alt("job.error"))
            assert.is_false(alt("job.queued"))
            local esc = assert(bus.glob("a\\*b*"))
            assert.is_true(esc("a*bc"))
            assert.is_false(esc("axbc"))
        end)

        it("treats pattern characters of Lua as plain", function()
            local g = assert(bus.glob("a%b.(c)*"))
            assert.is_true(g("a%b.(c)d"))
            assert.is_false(g("aXb.(c)d"))
        end)

        it("refuses invalid patterns with the reason", function()
            assert.matches("is never closed", select(2, bus.glob("job.{done")))
            assert.matches("closes nothing", select(2, bus.glob("job.done}")))
            assert.matches("cannot nest", select(2, bus.glob("{a,{b,c}}")))
            assert.matches("%*%*%*", select(2, bus.glob("a.***")))
            assert.matches("empty pattern", select(2, bus.glob("")))
            assert.matches("escapes nothing", select(2, bus.glob("a\\")))
        end)
    end)

    describe("subscribers", function()
        it("runs the subscribers of a channel, highest priority first, ties in load order",
           function()
            subscriber("a_low", [[
                local moonwire = require "moonwire"
                return { channel = "news", priority = 1,
                         handle = function(ctx) moonwire.log.info("got low " .. ctx.message.n) end }
            ]])
            subscriber("b_high", [[
                local moonwire = require "moonwire"
                return { channel = "news", priority = 10,
                         handle = function(ctx)
                             moonwire.log.info("got high " .. ctx.message.n)
                         end }
            ]])
            subscriber("c_tie", [[
                local moonwire = require "moonwire"
                return { channels = { "news", "other" }, priority = 1,
                         handle = function(ctx) moonwire.log.info("got tie " .. ctx.channel) end }
            ]])
            assert(load())
            assert.equal(3, app:emit("news", { n = 1 }))
            assert.same({ "high 1", "low 1", "tie news" }, got())
            assert.equal(1, app:emit("other", {}))
            assert.equal(0, app:emit("nobody", {}))
        end)

        it("selects by glob, by predicate, and by a list mixing them", function()
            subscriber("glob", [[
                local moonwire = require "moonwire"
                return { match = "job.*", handle = function(ctx)
                    moonwire.log.info("got glob " .. ctx.channel) end }
            ]])
            subscriber("pred", [[
                local moonwire = require "moonwire"
                return { match = function(ctx) return ctx.message.vip == true end,
                         handle = function(ctx) moonwire.log.info("got pred " .. ctx.channel) end }
            ]])
            subscriber("mixed", [[
                local moonwire = require "moonwire"
                return { match = { "analytics.**", function(ctx) return ctx.channel == "x" end },
                         priority = 5,
                         handle = function(ctx) moonwire.log.info("got mixed " .. ctx.channel) end }
            ]])
            assert(load())
            app:emit("job.done", { vip = false })
            app:emit("job.done.late", { vip = true })
            app:emit("analytics.page.view", {})
            app:emit("x", {})
            assert.same({ "glob job.done", "pred job.done.late", "mixed analytics.page.view",
                          "mixed x" }, got())
        end)

        it("gives a handler one context: channel, message, its name and the server API",
           function()
            subscriber("relay", [[
                return { name = "relay", channel = "relay", handle = function(ctx)
                    local n = ctx.server.room(ctx.message.room):broadcast(
                        { type = "relayed", data = { from = ctx.subscriber } })
                    ctx.server.send(ctx.message.to, { type = "direct", data = { n = n } })
                    assert(ctx.redis == nil)
                end }
            ]])
            assert(load())
            local a, b = app:connect(), app:connect()
            a:request("act", "join", { room = "r" })
            b:request("act", "join", { room = "r" })
            app:emit("relay", { room = "r", to = b.id })
            assert.same({ from = "relay" }, a:events("relayed")[1].data)
            assert.equal(1, #b:events("relayed"))
            assert.same({ n = 2 }, b:events("direct")[1].data)
        end)

        it("lets the server API join, leave and disconnect clients by id", function()
            subscriber("mover", [[
                return { channel = "move", handle = function(ctx)
                    local m = ctx.message
                    if m.op == "join" then ctx.server.join(m.id, m.room)
                    elseif m.op == "leave" then ctx.server.leave(m.id, m.room)
                    else ctx.server.disconnect(m.id, 4000, "bye") end
                end }
            ]])
            assert(load())
            local a = app:connect()
            app:emit("move", { op = "join", id = a.id, room = "lobby" })
            assert.same({ "lobby" }, a.client:rooms())
            app:emit("move", { op = "leave", id = a.id, room = "lobby" })
            assert.same({}, a.client:rooms())
            app:emit("move", { op = "close", id = a.id })
            assert.equal(4000, a:closed().code)
        end)

        it("lets a handler wait; other events run meanwhile", function()
            subscriber("slow", [[
                local moonwire = require "moonwire"
                return { channel = "slow", handle = function(ctx)
                    moonwire.sleep(100)
                    moonwire.log.info("got slow " .. ctx.message.n)
                end }
            ]])
            subscriber("fast", [[
                local moonwire = require "moonwire"
                return { channel = "fast", handle = function(ctx)
                    moonwire.log.info("got fast " .. ctx.message.n)
                end }
            ]])
            assert(load())
            app:emit("slow", { n = 1 })
            app:emit("fast", { n = 2 })
            assert.same({ "fast 2" }, got())
            app:advance(100)
            assert.same({ "fast 2", "slow 1" }, got())
        end)

        it("logs a handler's error with its name and file:line; the others still run",
           function()
            subscriber("a_broken", [[
                return { name = "broken", channel = "e", priority = 9, handle = function(ctx)
                    local t = nil
                    return t.x
                end }
            ]])
            subscriber("b_fine", [[
                local moonwire = require "moonwire"
                return { channel = "e", handle = function() moonwire.log.info("got fine") end }
            ]])
            assert(load())
            assert.equal(2, app:emit("e", {}))
            assert.same({ "fine" }, got())
            assert.matches("subscriber 'broken' %(.*subscribers/a_broken%.lua:%d+%) failed on "
                           .. "'e': .*a_broken%.lua:3: attempt to index local 't'", logs("error"))
            assert.equal(1, bus.stats().failed >= 1 and 1 or 0)
        end)

        it("counts in /metrics: events, handlers, errors, running", function()
            subscriber("broken", [[
                return { channel = "e", handle = function() error("no") end }
            ]])
            assert(load())
            local function sample(name)
                return tonumber(app:metrics():match("\nmoonwire_" .. name .. " (%d+)"))
            end
            local events, errors = sample("bus_events_total"), sample("bus_handler_errors_total")
            assert.is_number(events)
            app:emit("e", {})
            app:emit("nobody", {})
            assert.equal(events + 1, sample("bus_events_total"))
            assert.equal(errors + 1, sample("bus_handler_errors_total"))
            assert.equal(0, sample("bus_handlers_running"))
            assert.matches("# TYPE moonwire_bus_handlers_running gauge", app:metrics())
        end)

        it("logs a failing match predicate and treats it as no match", function()
            subscriber("badpred", [[
                return { name = "badpred", match = function(ctx) return ctx.message.x.y end,
                         handle = function() end }
            ]])
            assert(load())
            assert.equal(0, app:emit("any", {}))
            assert.matches("subscriber 'badpred' .*match predicate failed on 'any'",
                           logs("error"))
        end)

        it("lists its subscribers for moonwire check", function()
            subscriber("one", [[
                return { name = "first", description = "d", match = { "a.*", "b" }, priority = 3,
                         handle = function() end }
            ]])
            subscriber("two", [[ return { channel = "c", handle = function() end } ]])
            assert(load())
            local list = app:subscribers()
            assert.equal(2, #list)
            assert.equal("first", list[1].name)
            assert.equal("a.*, b", list[1].selector)
            assert.equal(3, list[1].priority)
            assert.equal("d", list[1].description)
            assert.matches("subscribers/one%.lua$", list[1].file)
            assert.equal("two", list[2].name)
        end)
    end)

    describe("middleware and utilities on subscribers", function()
        it("skips the handler when on_before returns false; on_after sees the result",
           function()
            subscriber("gated", [[
                local moonwire = require "moonwire"
                local gate = { name = "gate", on_before = function(ctx)
                    return ctx.message.ok == true
                end, on_after = function(ctx, res) moonwire.log.info("got after " .. res) end }
                return { channel = "g", middleware = { gate }, handle = function(ctx)
                    moonwire.log.info("got ran")
                    return "done"
                end }
            ]])
            assert(load())
            app:emit("g", { ok = false })
            app:emit("g", { ok = true })
            assert.same({ "ran", "after done" }, got())
        end)

        it("suppresses an error when on_error returns true, and logs it otherwise", function()
            subscriber("a_quiet", [[
                local moonwire = require "moonwire"
                return { name = "quiet", channel = "x", middleware = { { name = "hush",
                    on_error = function(ctx, err)
                        moonwire.log.info("got error " .. tostring(err):match("boom"))
                        return true
                    end } }, handle = function() error("boom") end }
            ]])
            subscriber("b_loud", [[
                return { name = "loud", channel = "x", middleware = { { name = "peek",
                    on_error = function() return false end } },
                    handle = function() return nil, "refused by loud" end }
            ]])
            assert(load())
            app:emit("x", {})
            assert.same({ "error boom" }, got())
            local errs = logs("error")
            assert.is_nil(errs:find("'quiet'"))
            assert.matches("subscriber 'loud' .* failed on 'x': refused by loud", errs)
        end)

        it("retries with real waits, then hands the last error to on_error", function()
            subscriber("flaky", [[
                local moonwire = require "moonwire"
                local handlers = moonwire.handlers
                local tries = 0
                return { name = "flaky", channel = "f",
                    middleware = { { name = "report", on_error = function(ctx, err)
                        moonwire.log.info("got gave up: " .. tostring(err):match("try %d"))
                        return true
                    end } },
                    handle = handlers.with_retry({ attempts = 3, delay = 100, backoff = 2 },
                        function(ctx)
                            tries = tries + 1
                            moonwire.log.info("got try " .. tries .. " at " .. moonwire.now())
                            error("try " .. tries)
                        end) }
            ]])
            assert(load())
            local t0 = app:now()
            app:emit("f", {})
            assert.same({ "try 1 at " .. t0 }, got())
            app:advance(100)
            assert.same({ "try 1 at " .. t0, "try 2 at " .. (t0 + 100) }, got())
            app:advance(200)
            assert.same({ "try 1 at " .. t0, "try 2 at " .. (t0 + 100),
                          "try 3 at " .. (t0 + 300), "gave up: try 3" }, got())
        end)

        it("validates events with a schema, naming the nested path", function()
            subscriber("orders", [[
                local moonwire = require "moonwire"
                local order = moonwire.schema.new({ type = "object", fields = {
                    items = { type = "array", items = { type = "object",
                        fields = { price = { type = "number", min = 0 } } } } } })
                return { name = "orders", channel = "order",
                    handle = moonwire.handlers.with_validation(order, function(ctx)
                        moonwire.log.info("got order of " .. #ctx.message.items)
                    end) }
            ]])
            assert(load())
            app:emit("order", { items = { { price = 1 }, { price = 2 } } })
            app:emit("order", { items = { { price = 1 }, { price = "2" } } })
            assert.same({ "order of 2" }, got())
            assert.matches("subscriber 'orders' .*failed on 'order'.*items%[2%]%.price: expected "
                           .. "number, got string", logs("error"))
        end)

        it("limits a handler's rate with the C limiter", function()
            subscriber("limited", [[
                local moonwire = require "moonwire"
                return { channel = "r",
                    handle = moonwire.handlers.with_rate_limit({ max = 2, window = 1000 },
                        function(ctx) moonwire.log.info("got " .. ctx.message.n) end) }
            ]])
            assert(load())
            for n = 1, 4 do
                app:emit("r", { n = n })
            end
            assert.same({ "1", "2" }, got())
            app:advance(1000)
            app:emit("r", { n = 5 })
            assert.same({ "1", "2", "5" }, got())
        end)

        it("refuses a subscriber with bad middleware, naming its line", function()
            subscriber("bad", [[
                return {
                    channel = "a",
                    middleware = { { name = "m", on_befor = function() end } },
                    handle = function() end,
                }
            ]])
            local ok, err = load()
            assert.is_nil(ok)
            assert.matches("subscribers/bad%.lua:3: middleware%[1%]", err)
        end)
    end)

    describe("ctx.redis", function()
        local srv

        setup(function()
            srv = assert(testing.redis_server())
            assert(srv:start())
        end)

        teardown(function()
            if srv then
                srv:close()
            end
        end)

        it("is the connection to redis_url, shared, waited on in the handler", function()
            subscriber("count", [[
                local moonwire = require "moonwire"
                return { channel = "hit", handle = function(ctx)
                    local n = assert(ctx.redis:incr("bus:hits"))
                    assert(ctx.redis == ctx.redis)
                    moonwire.log.info("got " .. n)
                end }
            ]])
            assert(load({ welcome = false, redis_url = srv.url }))
            app:emit("hit", {})
            assert(app:wait(function() return #got() == 1 end))
            app:emit("hit", {})
            assert(app:wait(function() return #got() == 2 end))
            assert.same({ "1", "2" }, got())
        end)
    end)

    describe("bad subscriber files", function()
        local function refused(src)
            subscriber("bad", src)
            local ok, err = load()
            assert.is_nil(ok)
            return err
        end

        it("refuses a file that does not return a table", function()
            assert.matches("subscribers/bad%.lua:1: a subscriber must be a table, got string",
                           refused([[return "nope"]]))
        end)

        it("refuses a subscriber without a selector, or with two", function()
            assert.matches("bad%.lua:1: a subscriber needs one of channel, channels or match",
                           refused([[return { handle = function() end }]]))
            assert.matches("not both channel and match",
                           refused([[return { channel = "a", match = "b",
                                              handle = function() end }]]))
        end)

        it("refuses an invalid pattern, naming it", function()
            assert.matches("match%[2%]: invalid pattern 'job%.{a,b': '{' at character 5 is never "
                           .. "closed", refused([[return { match = { "x", "job.{a,b" },
                                                        handle = function() end }]]))
        end)

        it("refuses a missing handler, unknown fields and bad values", function()
            assert.matches("handle must be a function, got nil",
                           refused([[return { channel = "a" }]]))
            assert.matches("unknown field 'chanel'",
                           refused([[return { chanel = "a", handle = function() end }]]))
            assert.matches("priority must be a finite number",
                           refused([[return { channel = "a", priority = "x",
                                              handle = function() end }]]))
            assert.matches("timeout must be whole milliseconds",
                           refused([[return { channel = "a", timeout = -1,
                                              handle = function() end }]]))
        end)

        it("refuses two subscribers with one name", function()
            subscriber("a", [[return { name = "same", channel = "a", handle = function() end }]])
            assert.matches("subscriber name 'same' is already used by .*a%.lua",
                           refused([[return { name = "same", channel = "b",
                                              handle = function() end }]]))
        end)

        it("keeps the old subscribers when a reload finds a broken file", function()
            subscriber("keep", [[
                local moonwire = require "moonwire"
                return { channel = "k", handle = function() moonwire.log.info("got old") end }
            ]])
            assert(load())
            subscriber("keep", [[ return { channel = "k" } ]])
            local ok, err = app:reload()
            assert.is_nil(ok)
            assert.matches("keep%.lua:1: handle must be a function", err)
            app:emit("k", {})
            assert.same({ "old" }, got())
            assert.matches("keep%.lua", app:health().last_reload_error)
        end)

        it("swaps in new subscribers on a clean reload and emits server.reload", function()
            subscriber("keep", [[
                local moonwire = require "moonwire"
                return { channel = "k", handle = function() moonwire.log.info("got old") end }
            ]])
            assert(load())
            subscriber("keep", [[
                local moonwire = require "moonwire"
                return { channel = "k", handle = function() moonwire.log.info("got new") end }
            ]])
            subscriber("watch", [[
                local moonwire = require "moonwire"
                return { channel = "server.reload", handle = function(ctx)
                    moonwire.log.info("got reload " .. tostring(ctx.message.ok)) end }
            ]])
            assert(app:reload())
            app:run()
            app:emit("k", {})
            assert.same({ "reload true", "new" }, got())
        end)
    end)

    describe("the server's events", function()
        before_each(function()
            subscriber("all", [[
                local moonwire = require "moonwire"
                local json = require "cjson"
                return { match = { "client.*" }, handle = function(ctx)
                    local m = ctx.message
                    local keys = {}
                    for k, v in pairs(m) do keys[#keys + 1] = k .. "=" .. tostring(v) end
                    table.sort(keys)
                    moonwire.log.info("got " .. ctx.channel .. " " .. table.concat(keys, ",")
                                      .. (ctx.client and " client" or ""))
                end }
            ]])
        end)

        it("tells connected, joined, left and disconnected with their payloads", function()
            assert(load())
            local a = app:connect({ remote_addr = "10.0.0.9" })
            a:request("act", "join", { room = "r" })
            a:request("act", "join", { room = "r" }) -- already in: no second event
            a:request("act", "join", { room = "s" })
            a:request("act", "leave", { room = "s" })
            a:close(1000, "done")
            app:run()
            local id = a.id
            assert.same({
                "client.connected client_id=" .. id .. ",remote_addr=10.0.0.9 client",
                "client.joined client_id=" .. id .. ",count=1,room=r client",
                "client.joined client_id=" .. id .. ",count=1,room=s client",
                "client.left client_id=" .. id .. ",count=0,room=s client",
                "client.left client_id=" .. id .. ",count=0,room=r client",
                "client.disconnected client_id=" .. id .. ",code=1000,reason=done client",
            }, got())
        end)

        it("tells authenticated and error events", function()
            tmpdir.write(dir, "app.lua", [[
                return { authenticate = function(req)
                    if req.token == nil then return false end
                    if req.token == "good" then return { id = "u1" } end
                    return nil, "bad token"
                end }
            ]])
            assert(load())
            local a = app:connect()
            a:send('{"type":"auth","token":"good"}')
            a:send('{"type":"nope","action":"x","id":1}')
            app:run()
            local list = got()
            assert.equal("client.connected client_id=" .. a.id .. ",remote_addr=127.0.0.1 client",
                         list[1])
            assert.equal("client.authenticated client_id=" .. a.id .. ",user=u1 client", list[2])
            assert.equal("client.error client_id=" .. a.id .. ",code=NOT_FOUND,message=unknown "
                         .. "type 'nope',route=nope.x,user=u1 client", list[3])
        end)
    end)

    describe("guards", function()
        it("gives up a handler that waits past its timeout, and logs it", function()
            subscriber("stuck", [[
                local moonwire = require "moonwire"
                return { name = "stuck", channel = "s", timeout = 500, handle = function()
                    moonwire.sleep(10000)
                    moonwire.log.info("got woke")
                end }
            ]])
            subscriber("fine", [[
                local moonwire = require "moonwire"
                return { channel = "s", handle = function()
                    moonwire.sleep(1000)
                    moonwire.log.info("got fine")
                end }
            ]])
            assert(load())
            local before = bus.stats().timed_out
            app:emit("s", {})
            app:advance(400)
            assert.equal("", logs("error"))
            app:advance(200)
            assert.matches("subscriber 'stuck' %(.*stuck%.lua:%d+%) timed out on 's' after 500 ms",
                           logs("error"))
            assert.equal(before + 1, bus.stats().timed_out)
            app:advance(10000)
            assert.same({ "fine" }, got()) -- the given-up one never resumes
            assert.equal(0, bus.stats().running)
        end)

        it("applies subscriber_timeout to subscribers without their own", function()
            subscriber("stuck", [[
                local moonwire = require "moonwire"
                return { name = "stuck", channel = "s",
                         handle = function() moonwire.sleep(5000) end }
            ]])
            assert(load({ welcome = false, subscriber_timeout = 1000 }))
            app:emit("s", {})
            app:advance(1200)
            assert.matches("timed out on 's' after 1000 ms", logs("error"))
        end)

        it("stops subscribers that emit to each other in a loop at bus_max_depth", function()
            subscriber("ping", [[
                local moonwire = require "moonwire"
                return { channel = "ping", handle = function(ctx)
                    moonwire.log.info("got ping " .. ctx.message.n)
                    local n, err = moonwire.emit("pong", { n = ctx.message.n + 1 })
                    if not n then moonwire.log.info("got refused " .. err) end
                end }
            ]])
            subscriber("pong", [[
                local moonwire = require "moonwire"
                return { channel = "pong", handle = function(ctx)
                    ctx.server.emit("ping", { n = ctx.message.n + 1 })
                end }
            ]])
            assert(load({ welcome = false, bus_max_depth = 3 }))
            local refused = bus.stats().refused
            app:emit("ping", { n = 1 })
            assert.same({ "ping 1", "ping 3", "refused emit depth exceeded" }, got())
            assert.equal(refused + 1, bus.stats().refused)
            assert.matches("emit on 'pong' refused: events nested 3 deep", logs("error"))
        end)

        it("drops events past bus_max_pending, logged once", function()
            subscriber("slow", [[
                local moonwire = require "moonwire"
                return { channel = "slow", handle = function() moonwire.sleep(100) end }
            ]])
            assert(load({ welcome = false, bus_max_pending = 3 }))
            for _ = 1, 3 do
                assert.equal(1, app:emit("slow", {}))
            end
            local n, err = app:emit("slow", {})
            assert.is_nil(n)
            assert.equal("bus full", err)
            app:emit("slow", {})
            local _, count = logs("error"):gsub("dropped", "")
            assert.equal(1, count)
            app:advance(100)
            assert.equal(1, app:emit("slow", {}))
        end)

        it("costs an emit nobody subscribes to nothing but a lookup", function()
            assert(load())
            local ws = app:connect()
            assert.same({ n = 0 }, ws:request("act", "emit", { channel = "x", message = {} }).data)
        end)

        it("refuses a bad channel at the caller", function()
            assert(load())
            local ws = app:connect()
            local out = ws:request("act", "emit", { channel = "" })
            assert.equal("INTERNAL_ERROR", out.error.code)
            assert.matches("act%.lua:%d+: bad argument #1 to 'emit'", logs("error"))
        end)
    end)
end)
