-- Specs for moonwire.redis on the real core against a real redis-server
-- (moonwire.testing.redis_server): calls from handlers that wait, replies
-- mapped to Lua, pipelines, timeouts, shared connections, fail-fast while
-- Redis is down and the reconnect, pub/sub (patterns, resubscription,
-- reload). Replies come over real sockets, so specs turn the loop in real
-- time (app:wait) until what they expect has happened, with a deadline.

local applog = require "support.applog"
local tmpdir = require "support.tmpdir"
local testing = require "moonwire.testing"
local redis = require "moonwire.redis"
local cjson = require "cjson"


describe("moonwire.redis", function()
    local srv, dir, app

    local function logs(level)
        return applog.text(app, level)
    end

    local function load(extra)
        app = assert(testing.load_app(dir, { config = { welcome = false } }))
        if extra then
            extra(app)
        end
        return app
    end

    -- Sends a request and waits (real time) for its reply.
    local seq = 0
    local function ask(ws, action, data, ms)
        seq = seq + 1
        local id = "r" .. seq
        ws:send(cjson.encode({ type = "kv", action = action, data = data or {}, id = id }))
        local found = assert(ws:wait_reply(id, ms), "no reply to " .. action)
        return found.data, found.error
    end

    local function wait_log(pattern, ms)
        return app:wait(function()
            return logs():find(pattern) ~= nil
        end, ms or 5000)
    end

    setup(function()
        srv = assert(testing.redis_server())
    end)

    teardown(function()
        if srv then
            srv:close()
        end
    end)

    before_each(function()
        assert(srv:start())
        srv:cli("FLUSHALL")
        dir = tmpdir.new()
        tmpdir.write(dir, "controllers/kv.lua", ([[
            local moonwire = require "moonwire"
            local redis = require "moonwire.redis"
            local red = assert(moonwire.redis.connect("URL"))
            local M = {}
            local function pack(...) return { n = select("#", ...), ... } end
            function M.call(client, data)
                local res = pack(red:call(unpack(data.args)))
                return { value = res[1] == redis.null and "null" or res[1], err = res[2] }
            end
            function M.sugar(client, data)
                assert(red:set("s", "v"))
                assert(red:hset("h", "f", "1"))
                local v, e = red:get("s")
                local h = red:hgetall("h")
                local n = red:incr("counter")
                return { get = v, hgetall = h, incr = n, err = e }
            end
            function M.binary(client, data)
                local value = "a\0b\r\n\255"
                assert(red:set("bin", value))
                return { same = red:get("bin") == value, len = #red:get("bin") }
            end
            function M.mget(client, data)
                red:set("one", "1")
                local list = red:mget("one", "missing", "one")
                return { first = list[1], null = list[2] == redis.null, n = #list }
            end
            function M.pipeline(client, data)
                red:set("str", "x")
                local res, err = red:pipeline(function(p)
                    p:incr("pc")
                    p:get("missing")
                    p:incr("str")
                    p:call("SET", "pk", 42)
                    p:get("pk")
                end)
                if not res then return { err = err } end
                return { n = res.n, a = res[1], null = res[2] == redis.null, bad = res[3],
                         why = res.errors and res.errors[3], set = res[4], get = res[5] }
            end
            function M.timeout(client, data)
                local v, err = red:call({ timeout = data.ms }, "GET", "k")
                return { value = v, err = err }
            end
            function M.twice(client, data)
                local other = assert(redis.connect({ url = "URL", timeout = 1000 }))
                assert(other:set("shared", "yes"))
                return { v = red:get("shared") }
            end
            function M.connected(client, data)
                local up, why = red:connected()
                return { up = up, why = why }
            end
            function M.misuse(client, data)
                local ok, err = pcall(red.select, red, 2)
                local ok2, err2 = pcall(function()
                local v = red:call("GET", {})
                return v
            end)
                local ok3, err3 = pcall(red.subscribe, red, "", function() end)
                return { select = not ok and err, arg = not ok2 and err2, sub = not ok3 and err3 }
            end
            function M.watch_disconnect(client, data)
                local v, err = red:call({ timeout = 2000 }, "GET", "k")
                local _, send_err = client:send({ type = "late" })
                moonwire.log.info("after wait: " .. tostring(v) .. " " .. tostring(err)
                                  .. " send=" .. tostring(send_err))
                return true
            end
            return M
        ]]):gsub("URL", srv.url))
        tmpdir.write(dir, "app.lua", [[
            local moonwire = require "moonwire"
            local M = {}
            function M.on_disconnect(client, code)
                moonwire.log.info("on_disconnect " .. client.id)
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

    describe("calls", function()
        it("maps replies to Lua: status, string, nil, integer, list, error", function()
            load()
            local ws = app:connect()
            assert.same({ value = "OK" }, ask(ws, "call", { args = { "SET", "k", "v" } }))
            assert.same({ value = "v" }, ask(ws, "call", { args = { "GET", "k" } }))
            assert.same({}, ask(ws, "call", { args = { "GET", "nothing" } }))
            assert.same({ value = 1 }, ask(ws, "call", { args = { "INCR", "n" } }))
            assert.same({ value = 2 }, ask(ws, "call", { args = { "INCRBY", "n", 1 } }))
            assert.same({ value = 2 }, ask(ws, "call", { args = { "RPUSH", "l", "a", "b" } }))
            assert.same({ value = { "a", "b" } },
                        ask(ws, "call", { args = { "LRANGE", "l", 0, -1 } }))
            local res = ask(ws, "call", { args = { "INCR", "k" } })
            assert.is_nil(res.value)
            assert.matches("^ERR ", res.err)
        end)

        it("has a method for every command, binary-safe", function()
            load()
            local ws = app:connect()
            local res = ask(ws, "sugar")
            assert.same({ get = "v", hgetall = { "f", "1" }, incr = 1 }, res)
            assert.same({ same = true, len = 6 }, ask(ws, "binary"))
            assert.same({ first = "1", null = true, n = 3 }, ask(ws, "mget"))
        end)

        it("pipelines commands and waits once for their replies", function()
            load()
            local ws = app:connect()
            local res = ask(ws, "pipeline")
            assert.equal(5, res.n)
            assert.equal(1, res.a)
            assert.is_true(res.null)
            assert.is_false(res.bad)
            assert.matches("^ERR ", res.why)
            assert.equal("OK", res.set)
            assert.equal("42", res.get)
        end)

        it("times a call out by its own timeout, and the late reply is dropped", function()
            load()
            local ws = app:connect()
            assert.same({ value = "OK" }, ask(ws, "call", { args = { "SET", "k", "v" } }))
            srv:cli("CLIENT", "PAUSE", "600", "ALL")
            assert.same({ err = "timeout" }, ask(ws, "timeout", { ms = 50 }))
            -- the connection serves again once Redis does
            assert.same({ value = "v" }, ask(ws, "timeout", { ms = 5000 }))
        end)

        it("shares one connection between connects of the same URL", function()
            load()
            local ws = app:connect()
            assert.same({ v = "yes" }, ask(ws, "twice"))
            local clients = srv:cli("CLIENT", "LIST")
            local n = select(2, clients:gsub("\n", "")) + 1
            assert.equal(2, n) -- the app's one connection and redis-cli
        end)

        it("raises on misuse: a command for the shared connection, a bad argument", function()
            load()
            local ws = app:connect()
            local res = ask(ws, "misuse")
            assert.matches("SELECT.*shared", res.select)
            assert.matches("controllers/kv%.lua:%d+: redis GET: argument 2 is a table", res.arg)
            assert.matches("channel name expected", res.sub)
        end)

        it("refuses to wait outside a task", function()
            load() -- a server runs; this spec's own code is no task of it
            local red = assert(redis.connect(srv.url))
            assert.has_error(function()
                red:get("k")
            end, "cannot wait here (only in a handler, hook, timer or spawned task)")
        end)

        it("answers not serving without a server", function()
            local red = assert(redis.connect(srv.url))
            assert.same({ nil, "not serving" }, { red:get("k") })
        end)

        it("opens a client made before the server ran at its first call", function()
            -- connect outside a server (a module's top level under
            -- `moonwire check`, or here): no connection yet, options unset
            local red = assert(redis.connect(srv.url))
            assert.is_nil(red.password)
            assert.is_nil(red.db)
            assert.is_nil(red.connect_timeout)
            assert.is_function(red.incr)
            package.loaded["lazy_red"] = red
            tmpdir.write(dir, "controllers/lazy.lua", [[
                local red = require "lazy_red"
                return { incr = function() return { n = red:incr("lazy") } end }
            ]])
            load()
            local ws = app:connect()
            ws:send(cjson.encode({ type = "lazy", action = "incr", id = "l1" }))
            assert(app:wait(function()
                return ws:last() ~= nil
            end))
            package.loaded["lazy_red"] = nil
            assert.same({ n = 1 }, ws:last().data)
            assert.equal("1", srv:cli("GET", "lazy"))
        end)

        it("returns nil, err for a bad URL", function()
            local red, err = redis.connect("http://nowhere")
            assert.is_nil(red)
            assert.matches("redis url http://nowhere", err)
        end)
    end)

    describe("while Redis is down", function()
        it("fails fast with nil, err and serves again once it is back", function()
            load()
            local ws = app:connect()
            assert.same({ value = "PONG" }, ask(ws, "call", { args = { "PING" } }))
            srv:stop()
            assert(app:wait(function()
                return ask(ws, "connected").up == false
            end))
            assert.same({ err = "not connected" }, ask(ws, "call", { args = { "PING" } }, 200))
            assert.matches("connection lost", logs("warn"))
            assert(srv:start())
            assert(app:wait(function()
                return ask(ws, "connected").up == true
            end, 10000))
            assert.same({ value = "PONG" }, ask(ws, "call", { args = { "PING" } }))
            assert.matches("connected again", logs("info"))
        end)

        it("lets a handler whose client left finish; on_disconnect runs after it", function()
            load()
            local ws = app:connect()
            srv:cli("CLIENT", "PAUSE", "300", "ALL")
            ws:send(cjson.encode({ type = "kv", action = "watch_disconnect", id = 1 }))
            ws:drop()
            assert(wait_log("on_disconnect"))
            local text = logs("info")
            local after = text:find("after wait: nil nil send=closed", 1, true)
            assert.truthy(after)
            assert.truthy(after < text:find("on_disconnect", 1, true))
        end)
    end)

    describe("pub/sub", function()
        before_each(function()
            tmpdir.write(dir, "app.lua", ([[
                local moonwire = require "moonwire"
                local M = {}
                function M.on_start(app)
                    local red = assert(moonwire.redis.connect("URL"))
                    app.state.news = assert(red:subscribe("news", function(message, channel,
                                                                          pattern)
                        -- each message in a task of its own: it may wait (after a
                        -- restart the command connection may come back later
                        -- than this one: then n is nil, "not connected")
                        local n, err = red:incr("seen")
                        moonwire.log.info("VERSION news " .. channel .. " " .. message .. " "
                                          .. tostring(pattern) .. " seen=" .. tostring(n or err))
                    end))
                    app.state.logs = assert(red:psubscribe("log.*", function(message, channel,
                                                                             pattern)
                        moonwire.log.info("VERSION pattern " .. channel .. " " .. message .. " "
                                          .. pattern)
                    end))
                end
                return M
            ]]):gsub("URL", srv.url))
        end)

        local function active()
            local state = app.runtime:app().state
            return state.news ~= nil and state.news:active() and state.logs:active()
        end

        -- What the app logged and what Redis says, for a failure's message.
        local function explain()
            return "app log:\n" .. logs() .. "\nNUMSUB " .. srv:cli("PUBSUB", "NUMSUB", "news")
                   .. "\nNUMPAT " .. srv:cli("PUBSUB", "NUMPAT") .. "\nclients:\n"
                   .. srv:cli("CLIENT", "LIST")
        end

        local function subscribed()
            return app:wait(function()
                return srv:cli("PUBSUB", "NUMSUB", "news") == "news\n1"
                       and srv:cli("PUBSUB", "NUMPAT") == "1"
            end)
        end

        it("runs fn for each message, for channels and patterns", function()
            load()
            assert(subscribed())
            srv:cli("PUBLISH", "news", "hello")
            srv:cli("PUBLISH", "log.app", "line")
            assert(wait_log("VERSION news news hello nil seen=1"))
            assert(wait_log("VERSION pattern log.app line log%.%*"))
            srv:cli("PUBLISH", "news", "again")
            assert(wait_log("news news again nil seen=2"))
        end)

        it("subscribes again after Redis comes back", function()
            load()
            assert(subscribed())
            srv:stop()
            assert(srv:start())
            if not subscribed() then
                error("not subscribed again:\n" .. explain())
            end
            srv:cli("PUBLISH", "news", "back")
            assert(wait_log("news news back"))
        end)

        it("drops the old code's subscriptions on reload; on_start subscribes again", function()
            load()
            assert(subscribed())
            local src = assert(io.open(dir .. "/app.lua")):read("*a")
            tmpdir.write(dir, "app.lua", (src:gsub("VERSION", "NEW")))
            assert(app:reload())
            app:run()
            assert(subscribed()) -- one subscription, not two
            srv:cli("PUBLISH", "news", "x")
            assert(wait_log("NEW news news x"))
            app:wait(function() return false end, 100)
            assert.is_nil(logs():find("VERSION news news x", 1, true))
        end)

        it("refuses to subscribe outside a task", function()
            load()
            local red = assert(redis.connect(srv.url))
            assert.has_error(function()
                red:subscribe("x", function() end)
            end)
        end)

        it("says when Redis has confirmed a subscription, and ends one", function()
            load()
            assert(app:wait(active))
            local news = app.runtime:app().state.news
            assert.is_true(news:unsubscribe())
            assert.is_false(news:unsubscribe())
            assert.is_false(news:active())
            assert(app:wait(function()
                return srv:cli("PUBSUB", "NUMSUB", "news") == "news\n0"
            end))
        end)
    end)
end)
