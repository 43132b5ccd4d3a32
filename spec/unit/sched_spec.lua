-- Specs for Lua that waits (moonwire.sleep, moonwire.timer, moonwire.spawn)
-- on the real core and its virtual clock: every entry into app code runs
-- in a task that may park; a client's messages run one at a time, in
-- order; the rest of the server carries on meanwhile.

local applog = require "support.applog"
local tmpdir = require "support.tmpdir"
local testing = require "moonwire.testing"


describe("tasks", function()
    local dir, app

    local function load(config)
        app = assert(testing.load_app(dir, { config = config or { welcome = false },
                                             clock = 1000000 }))
        return app
    end

    local function logs(level)
        return applog.text(app, level)
    end

    before_each(function()
        dir = tmpdir.new()
        tmpdir.write(dir, "controllers/work.lua", [[
            local moonwire = require "moonwire"
            local M = {}
            function M.nap(client, data)
                local started = moonwire.now()
                assert(moonwire.sleep(data.ms))
                return { slept = moonwire.now() - started, n = data.n }
            end
            function M.quick(client, data) return { n = data and data.n } end
            function M.nap_then_fail(client, data)
                moonwire.sleep(10)
                local t = nil
                return t.field
            end
            function M.nap_then_refuse(client, data)
                moonwire.sleep(10)
                moonwire.fail("NOT_ALLOWED", "not after a nap")
            end
            function M.yield(client) coroutine.yield("sneaky") end
            function M.own_coroutine(client)
                local co = coroutine.wrap(function()
                    local ok = moonwire.sleep(5)
                    return ok
                end)
                local res = co()
                return res
            end
            function M.pcall_nap(client, data)
                local ok, res = pcall(function() moonwire.sleep(5); return "inside" end)
                return { ok = ok, res = res }
            end
            function M.send_late(client, data)
                moonwire.sleep(data.ms)
                local ok, err = client:send({ type = "late" })
                moonwire.log.info("late send: " .. tostring(ok) .. " " .. tostring(err))
                return true
            end
            function M.join(client, data)
                client:join(data.room)
                return true
            end
            function M.spawn(client, data)
                moonwire.spawn(function(a, b)
                    moonwire.log.info("spawned " .. a .. " " .. b)
                    moonwire.sleep(20)
                    client:send({ type = "spawned", data = { a = a, b = b } })
                end, "x", 2)
                moonwire.log.info("spawner returns")
                return true
            end
            return M
        ]])
        tmpdir.write(dir, "app.lua", [[
            local moonwire = require "moonwire"
            local M = {}
            function M.on_disconnect(client, code)
                moonwire.log.info("on_disconnect " .. client.id .. " rooms=" .. #client:rooms())
            end
            return M
        ]])
    end)

    after_each(function()
        if app then
            app:close()
            app = nil
        end
        tmpdir.remove(dir)
    end)

    describe("moonwire.sleep in a handler", function()
        it("answers once the time has passed on the server's clock", function()
            load()
            local ws = app:connect()
            local got = ws:send('{"type":"work","action":"nap","id":"a","data":{"ms":100}}')
            assert.same({}, got)
            app:advance(99)
            assert.equal(0, #ws:frames())
            app:advance(1)
            local replies = ws:sent()
            assert.equal(1, #replies)
            assert.equal("a", replies[1].id)
            assert.same(100, replies[1].data.slept)
        end)

        it("does not delay other clients", function()
            load()
            local a, b = app:connect(), app:connect()
            a:send('{"type":"work","action":"nap","id":1,"data":{"ms":1000}}')
            assert.same({ n = 7 }, b:request("work", "quick", { n = 7 }).data)
            assert.same({ n = 8 }, b:request("work", "quick", { n = 8 }).data)
            assert.equal(0, #a:frames())
            app:advance(1000)
            assert.equal(1, #a:frames())
        end)

        it("keeps one client's messages in arrival order while it waits", function()
            load()
            local ws = app:connect()
            ws:send('{"type":"work","action":"nap","id":1,"data":{"ms":50,"n":1}}')
            ws:send('{"type":"work","action":"quick","id":2,"data":{"n":2}}')
            ws:send('{"type":"work","action":"nap","id":3,"data":{"ms":10,"n":3}}')
            ws:send('{"type":"work","action":"quick","id":4,"data":{"n":4}}')
            assert.equal(0, #ws:frames())
            app:advance(50)
            -- 1 done; 2 ran at once after it; 3 sleeps from here
            local ids = {}
            for _, m in ipairs(ws:sent()) do ids[#ids + 1] = m.id end
            assert.same({ 1, 2 }, ids)
            app:advance(10)
            ids = {}
            for _, m in ipairs(ws:sent()) do ids[#ids + 1] = m.id end
            assert.same({ 1, 2, 3, 4 }, ids)
        end)

        it("lets a handler wait inside its own pcall", function()
            load()
            local ws = app:connect()
            ws:send('{"type":"work","action":"pcall_nap","id":1}')
            app:advance(5)
            assert.same({ ok = true, res = "inside" }, ws:sent()[1].data)
        end)

        it("answers an error raised after a wait, naming file:line", function()
            load()
            local ws = app:connect()
            ws:send('{"type":"work","action":"nap_then_fail","id":"f"}')
            app:advance(10)
            local out = ws:sent()
            assert.same({ code = "INTERNAL_ERROR", message = "internal error" }, out[1].error)
            assert.equal("f", out[1].id)
            assert.matches("work%.nap_then_fail failed: .*controllers/work%.lua:%d+: attempt to "
                           .. "index local 't'", logs("error"))
        end)

        it("answers moonwire.fail after a wait with its envelope", function()
            load()
            local ws = app:connect()
            ws:send('{"type":"work","action":"nap_then_refuse","id":"r"}')
            -- another client's message runs meanwhile: the dispatch state
            -- of the waiting one must survive it
            app:connect():request("work", "quick", {})
            app:advance(10)
            assert.same({ code = "NOT_ALLOWED", message = "not after a nap" }, ws:sent()[1].error)
        end)

        it("refuses a bare coroutine.yield with a clear error, not a hang", function()
            load()
            local ws = app:connect()
            local out = ws:send('{"type":"work","action":"yield","id":"y"}')
            assert.same({ code = "INTERNAL_ERROR", message = "internal error" }, out[1].error)
            assert.matches("coroutine%.yield reached the handler's own coroutine", logs("error"))
            -- the client is served again
            assert.same({ n = 1 }, ws:request("work", "quick", { n = 1 }).data)
        end)

        it("refuses to wait inside a coroutine the app created", function()
            load()
            local ws = app:connect()
            local out = ws:send('{"type":"work","action":"own_coroutine","id":"o"}')
            assert.equal("INTERNAL_ERROR", out[1].error.code)
            assert.matches("work%.lua:%d+: cannot wait inside a coroutine the app created",
                           logs("error"))
        end)

        it("rejects a bad delay", function()
            load()
            tmpdir.write(dir, "controllers/bad.lua", [[
                local moonwire = require "moonwire"
                return { neg = function() moonwire.sleep(-1) end }
            ]])
            assert(app:reload())
            local ws = app:connect()
            ws:send('{"type":"bad","action":"neg","id":1}')
            assert.matches("bad%.lua:2: bad argument #1 to 'sleep'", logs("error"))
        end)
    end)

    describe("a client that disconnects while its handler waits", function()
        it("finishes the handler, whose sends fail, then runs on_disconnect in its rooms",
           function()
            load()
            local ws = app:connect()
            ws:request("work", "join", { room = "r1" })
            ws:send('{"type":"work","action":"send_late","id":1,"data":{"ms":30}}')
            ws:send('{"type":"work","action":"quick","id":2}')
            ws:close(1000, "bye")
            assert.equal("", logs("info"):match("on_disconnect") and "early" or "")
            app:advance(30)
            local text = logs("info")
            local late = text:find("late send: nil closed", 1, true)
            local gone = text:find("on_disconnect " .. ws.id .. " rooms=1", 1, true)
            assert.truthy(late)
            assert.truthy(gone)
            assert.is_true(late < gone)
            -- and the client is gone from the core afterwards
            assert.equal(0, app:health().connections)
            assert.equal(0, app:health().rooms)
        end)
    end)

    describe("moonwire.spawn", function()
        it("runs the function with its arguments after the dispatch, and it may wait", function()
            load()
            local ws = app:connect()
            assert.is_true(ws:request("work", "spawn", {}).data)
            local text = logs("info")
            assert.is_true(text:find("spawner returns", 1, true)
                           < text:find("spawned x 2", 1, true))
            assert.same({}, ws:events("spawned"))
            app:advance(20)
            assert.same({ a = "x", b = 2 }, ws:events("spawned")[1].data)
        end)
    end)

    describe("moonwire.timer", function()
        before_each(function()
            tmpdir.write(dir, "app.lua", [[
                local moonwire = require "moonwire"
                local M = {}
                function M.on_start(app)
                    local n = 0
                    moonwire.timer.every(100, function()
                        n = n + 1
                        moonwire.log.info("tick " .. n)
                        if n == 2 then error("tick two broke") end
                    end)
                    local once = moonwire.timer.after(250, function()
                        moonwire.log.info("once")
                    end)
                    local never = moonwire.timer.after(150, function()
                        moonwire.log.info("never")
                    end)
                    assert(never:cancel() == true)
                    assert(never:cancel() == false)
                    moonwire.timer.every(100, function()
                        moonwire.log.info("slow start")
                        moonwire.sleep(250)
                        moonwire.log.info("slow end")
                    end)
                end
                return M
            ]])
        end)

        it("fires after and every on the virtual clock; an error does not stop it", function()
            load()
            app:advance(99)
            assert.is_nil(logs("info"):find("tick", 1, true))
            app:advance(1)
            assert.truthy(logs("info"):find("tick 1", 1, true))
            app:advance(100)
            assert.matches("lua error in timer: .*app%.lua:%d+: tick two broke", logs("error"))
            app:advance(100)
            local text = logs("info")
            assert.truthy(text:find("tick 3", 1, true))
            assert.truthy(text:find("once", 1, true))
            assert.is_nil(text:find("never", 1, true))
        end)

        it("skips a run while the previous one still waits", function()
            load()
            app:advance(400)
            local _, starts = logs("info"):gsub("slow start", "")
            local _, ends = logs("info"):gsub("slow end", "")
            -- started at 100, ends at 350; 200 and 300 skipped; 400 starts again
            assert.equal(2, starts)
            assert.equal(1, ends)
        end)

        it("cancels the old code's timers on reload, and on_start runs for the new code",
           function()
            load()
            app:advance(100)
            tmpdir.write(dir, "app.lua", [[
                local moonwire = require "moonwire"
                return { on_start = function()
                    moonwire.log.info("new code started")
                    moonwire.timer.every(100, function() moonwire.log.info("new tick") end)
                end }
            ]])
            assert(app:reload())
            assert.truthy(logs("info"):find("new code started", 1, true))
            app:advance(300)
            local text = logs("info")
            assert.is_nil(text:find("tick 2", 1, true))
            assert.is_nil(text:find("once", 1, true))
            local _, n = text:gsub("new tick", "")
            assert.equal(3, n)
        end)
    end)

    describe("a reload while handlers wait", function()
        it("lets them finish on the code they started with; new messages run the new code",
           function()
            load()
            local ws = app:connect()
            ws:send('{"type":"work","action":"nap","id":"old","data":{"ms":50,"n":"old"}}')
            tmpdir.write(dir, "controllers/work.lua", [[
                local M = {}
                function M.nap(client, data) return { n = "new code" } end
                return M
            ]])
            assert(app:reload())
            local other = app:connect()
            assert.same({ n = "new code" }, other:request("work", "nap", { ms = 50 }).data)
            app:advance(50)
            local reply = ws:sent()[1]
            assert.equal("old", reply.id)
            assert.same({ slept = 50, n = "old" }, reply.data)
        end)
    end)
    describe("an authenticate hook that waits", function()
        before_each(function()
            tmpdir.write(dir, "app.lua", [[
                local moonwire = require "moonwire"
                local M = {}
                function M.authenticate(req)
                    moonwire.sleep(50)
                    if req.token == "good" then
                        return { id = "u1" }
                    end
                    if req.token == "boom" then
                        error("auth backend broke")
                    end
                    return nil, "bad token"
                end
                function M.on_connect(client)
                    moonwire.log.info("on_connect " .. tostring(client.user))
                end
                function M.on_disconnect(client)
                    moonwire.log.info("on_disconnect " .. tostring(client.user))
                end
                return M
            ]])
        end)

        it("holds the upgrade until it decides, then accepts", function()
            load({ welcome = false, auth_at_upgrade = true })
            local other = app:connect({ query = "token=good" })
            assert.equal("connecting", other._c:state())
            -- the rest of the server is not held up meanwhile
            app:advance(49)
            assert.equal("connecting", other._c:state())
            assert.is_nil(other.id)
            app:advance(1)
            assert.equal("open", other._c:state())
            assert.equal(101, (other._c:status()))
            assert.is_number(other.id)
            assert.equal("u1", other.client.user)
            assert.truthy(logs("info"):find("on_connect u1", 1, true))
            assert.same({ n = 5 }, other:request("work", "quick", { n = 5 }).data)
        end)

        it("refuses with the hook's answer after the wait", function()
            load({ welcome = false, auth_at_upgrade = true })
            local ws = app:connect({ query = "token=nope" })
            app:advance(50)
            local status, body = ws._c:status()
            assert.equal(401, status)
            assert.matches("bad token", body)
            assert.is_nil(logs("info"):find("on_connect", 1, true))
        end)

        it("refuses when the hook raises after the wait, logging file:line", function()
            load({ welcome = false, auth_at_upgrade = true })
            local ws = app:connect({ query = "token=boom" })
            app:advance(50)
            assert.equal(401, (ws._c:status()))
            assert.matches("app%.lua:%d+: auth backend broke", logs("error"))
        end)

        it("forgets a client that leaves before the decision", function()
            load({ welcome = false, auth_at_upgrade = true })
            local ws = app:connect({ query = "token=good" })
            ws:drop()
            app:advance(50)
            assert.is_nil(logs("info"):find("on_connect", 1, true))
            assert.is_nil(logs("info"):find("on_disconnect", 1, true))
            assert.equal(0, app:health().connections)
            assert.is_nil(next(app.runtime._clients))
        end)
    end)
    describe("an HTTP route handler that waits", function()
        it("answers once it has waited, and a raise after the wait is a 500", function()
            tmpdir.write(dir, "routes.lua", [[
                local moonwire = require "moonwire"
                return {
                    ["GET /slow"] = function(req)
                        moonwire.sleep(40)
                        return 200, { waited = 40 }
                    end,
                    ["GET /broken"] = function(req)
                        moonwire.sleep(10)
                        error("route broke after waiting")
                    end,
                }
            ]])
            load()
            local res = app:request("GET", "/slow")
            assert.is_nil(res.status)
            app:advance(40)
            res:update()
            assert.equal(200, res.status)
            assert.same({ waited = 40 }, res.json)
            local bad = app:request("GET", "/broken")
            app:advance(10)
            bad:update()
            assert.equal(500, bad.status)
            assert.matches("routes%.lua:%d+: route broke after waiting", logs("error"))
        end)
    end)
end)
