-- Specs for moonwire.nats on the real core against a real nats-server
-- (moonwire.testing.nats_server): publish and subscribe with wildcards,
-- queue groups, request/reply with its errors, shared connections,
-- fail-fast while NATS is down and the reconnect with the subscriptions,
-- reload. Messages come over real sockets (and through cnats's threads),
-- so specs turn the loop in real time (app:wait) until what they expect
-- has happened, with a deadline.

local tmpdir = require "support.tmpdir"
local testing = require "moonwire.testing"
local nats = require "moonwire.nats"
local cjson = require "cjson"


describe("moonwire.nats", function()
    local srv, dir, app

    local function logs(level)
        local out = {}
        for _, entry in ipairs(app:logs(level)) do
            out[#out + 1] = entry.message
        end
        return table.concat(out, "\n")
    end

    local function load()
        app = assert(testing.load_app(dir, { config = { welcome = false } }))
        app:run()
        return app
    end

    -- Sends a request and waits (real time) for its reply.
    local seq = 0
    local function ask(ws, action, data, ms)
        seq = seq + 1
        local id = "r" .. seq
        ws:send(cjson.encode({ type = "nq", action = action, data = data or {}, id = id }))
        local found = assert(ws:wait_reply(id, ms), "no reply to " .. action)
        return found.data, found.error
    end

    local function wait_log(pattern, ms)
        return app:wait(function()
            return logs():find(pattern) ~= nil
        end, ms or 5000)
    end

    local function count(pattern)
        local n = 0
        for _ in logs():gmatch(pattern) do
            n = n + 1
        end
        return n
    end

    setup(function()
        srv = assert(testing.nats_server())
    end)

    teardown(function()
        if srv then
            srv:close()
        end
    end)

    before_each(function()
        assert(srv:start())
        dir = tmpdir.new()
        tmpdir.write(dir, "controllers/nq.lua", ([[
            local moonwire = require "moonwire"
            local nc = assert(moonwire.nats.connect("URL"))
            local M = {}
            function M.publish(client, data)
                local ok, err = nc:publish(data.subject, data.json and data.payload or data.text)
                return { ok = ok, err = err }
            end
            function M.request(client, data)
                local msg, err = nc:request(data.subject, data.text, data.ms)
                return { data = msg and msg.data, subject = msg and msg.subject, err = err }
            end
            function M.connected(client, data)
                local up, why = nc:connected()
                return { up = up, why = why }
            end
            function M.close(client, data)
                local own = assert(moonwire.nats.connect({ url = "URL", name = "own" }))
                moonwire.spawn(function() -- runs once the handler waits
                    own:close()
                end)
                local msg, err = own:request("svc.slow", "x", 5000) -- pending at the close
                local ok, perr = own:publish("orders.after", "x")
                local up, why = own:connected()
                local again = assert(moonwire.nats.connect({ url = "URL", name = "own" }))
                return { msg = msg, err = err, ok = ok, perr = perr, up = up, why = why,
                         new = again ~= own, again = again:publish("orders.again", "y") }
            end
            function M.same(client, data)
                local other = assert(moonwire.nats.connect({ url = "URL" }))
                return { same = other == nc }
            end
            return M
        ]]):gsub("URL", srv.url))
        tmpdir.write(dir, "app.lua", ([[
            local moonwire = require "moonwire"
            local M = {}
            function M.on_start(app)
                local nc = assert(moonwire.nats.connect("URL"))
                app.state.orders = assert(nc:subscribe("orders.*", function(msg)
                    moonwire.log.info("VERSION orders " .. msg.subject .. " " .. msg.data)
                end))
                app.state.all = assert(nc:subscribe("all.>", function(msg)
                    moonwire.log.info("VERSION all " .. msg.subject .. " " .. msg.data)
                end))
                assert(nc:subscribe("svc.echo", function(msg)
                    assert(msg:respond(msg.data:upper()))
                end))
                assert(nc:subscribe("svc.slow", function(msg)
                    moonwire.sleep(1000) -- each message in a task of its own: it may wait
                    msg:respond("late")
                end))
                for i = 1, 2 do
                    assert(nc:subscribe("work", function(msg)
                        moonwire.log.info("worker " .. i .. " " .. msg.data)
                    end, { queue = "q" }))
                end
            end
            return M
        ]]):gsub("URL", srv.url))
    end)

    after_each(function()
        if app then
            app:close()
            app = nil
        end
        tmpdir.remove(dir)
    end)

    -- The subscriptions are made once connected: a request to the echo
    -- service answers once they are.
    local function ready(ws)
        assert(app:wait(function()
            return ask(ws, "request", { subject = "svc.echo", text = "x", ms = 500 }).data == "X"
        end, 10000), "the subscriptions never came:\n" .. logs())
    end

    describe("publish and subscribe", function()
        it("runs fn for each message on subjects with * and > wildcards", function()
            load()
            local ws = app:connect()
            ready(ws)
            assert.same({ ok = true }, ask(ws, "publish", { subject = "orders.new", text = "o1" }))
            assert.same({ ok = true }, ask(ws, "publish", { subject = "all.a.b", text = "deep" }))
            assert.same({ ok = true }, ask(ws, "publish", { subject = "orders.x.y", text = "no" }))
            assert(wait_log("VERSION orders orders.new o1"))
            assert(wait_log("VERSION all all.a.b deep"))
            assert.same({ ok = true }, ask(ws, "publish", { subject = "orders.end", text = "o2" }))
            assert(wait_log("VERSION orders orders.end o2"))
            assert.is_nil(logs():find("orders.x.y", 1, true)) -- * is one token
        end)

        it("sends a table as JSON", function()
            load()
            local ws = app:connect()
            ready(ws)
            ask(ws, "publish", { subject = "orders.json", json = true, payload = { id = 7 } })
            assert(wait_log('VERSION orders orders.json {"id":7}'))
        end)

        it("gives each message of a queue group to one member", function()
            load()
            local ws = app:connect()
            ready(ws)
            for i = 1, 4 do
                ask(ws, "publish", { subject = "work", text = "job" .. i })
            end
            assert(app:wait(function()
                return count("worker %d job") == 4
            end))
            app:wait(function() return false end, 100)
            assert.equal(4, count("worker %d job"))
        end)

        it("refuses a bad subject and a subscription outside a task", function()
            load()
            local ws = app:connect()
            ready(ws)
            local res = ask(ws, "publish", { subject = "bad subject", text = "x" })
            assert.same({ err = "invalid subject" }, res)
            res = ask(ws, "publish", { subject = "orders.*", text = "x" })
            assert.same({ err = "invalid subject" }, res)
            local nc = assert(nats.connect(srv.url))
            assert.has_error(function()
                nc:subscribe("x", function() end)
            end)
        end)

        it("shares one connection per URL", function()
            load()
            local ws = app:connect()
            assert.same({ same = true }, ask(ws, "same"))
        end)
    end)

    describe("request", function()
        it("returns the reply, or nil and timeout or no responders", function()
            load()
            local ws = app:connect()
            ready(ws)
            local res = ask(ws, "request", { subject = "svc.echo", text = "hello", ms = 2000 })
            assert.equal("HELLO", res.data)
            assert.matches("^_INBOX%.", res.subject)
            assert.same({ err = "timeout" },
                        ask(ws, "request", { subject = "svc.slow", text = "x", ms = 100 }))
            assert.same({ err = "no responders" },
                        ask(ws, "request", { subject = "nobody.home", text = "x", ms = 2000 }))
        end)
    end)

    describe("close", function()
        it("ends pending requests with closed; a later connect opens a new one", function()
            load()
            local ws = app:connect()
            ready(ws)
            local got = ask(ws, "close")
            assert.same({ err = "closed", perr = "closed", up = false, why = "closed", new = true,
                          again = true }, got)
            assert(wait_log("VERSION orders orders.again y"))
        end)
    end)

    describe("while NATS is down", function()
        it("fails fast, logs once, reconnects and restores subscriptions", function()
            load()
            local ws = app:connect()
            ready(ws)
            srv:stop()
            assert(app:wait(function()
                return ask(ws, "connected").up == false
            end, 10000))
            for _ = 1, 3 do
                assert.same({ err = "not connected" },
                            ask(ws, "publish", { subject = "orders.lost", text = "x" }))
            end
            assert.same({ err = "not connected" },
                        ask(ws, "request", { subject = "svc.echo", text = "x" }))
            assert.equal(1, count("connection lost"))
            assert.equal(1, count("publishing fails while NATS is down"))
            assert(srv:start())
            assert(app:wait(function()
                return ask(ws, "connected").up == true
            end, 15000), "never reconnected:\n" .. logs())
            assert(wait_log("reconnected"))
            assert.same({ ok = true }, ask(ws, "publish", { subject = "orders.back", text = "b" }))
            assert(wait_log("VERSION orders orders.back b"))
            assert.same("X", ask(ws, "request", { subject = "svc.echo", text = "x" }).data)
        end)
    end)

    describe("reload", function()
        it("drops the old code's subscriptions; on_start subscribes again", function()
            load()
            local ws = app:connect()
            ready(ws)
            local src = assert(io.open(dir .. "/app.lua")):read("*a")
            tmpdir.write(dir, "app.lua", (src:gsub("VERSION", "NEW")))
            assert(app:reload())
            app:run()
            ws = app:connect()
            ready(ws)
            ask(ws, "publish", { subject = "orders.r", text = "x" })
            assert(wait_log("NEW orders orders.r x"))
            app:wait(function() return false end, 100)
            assert.is_nil(logs():find("VERSION orders orders.r", 1, true))
        end)
    end)
end)
