-- Specs for moonwire.testing: the app harness on the real core.

local tmpdir = require "support.tmpdir"
local testing = require "moonwire.testing"
local moonwire = require "moonwire"


describe("moonwire.testing", function()
    local dir

    before_each(function()
        dir = tmpdir.new()
        tmpdir.write(dir, "config.lua", "return { welcome = true, app = { n = 2 } }")
        tmpdir.write(dir, "controllers/math.lua", [[
            local moonwire = require "moonwire"
            return {
                double = function(client, data, msg) return data.x * 2 end,
                shout = function(client, data)
                    moonwire.log.warn("shouting %s", data.text)
                    moonwire.room("r"):broadcast({ text = data.text })
                end,
            }
        ]])
    end)

    after_each(function()
        tmpdir.remove(dir)
    end)

    describe("load_app", function()
        it("reads config.lua, lets opts.config override it, and drives the runtime", function()
            local app = assert(testing.load_app(dir))
            assert.same({ "math.double", "math.shout" }, app:routes())
            local ws = app:connect()
            assert.equal("connected", ws:sent()[1].action)
            local reply = ws:request("math", "double", { x = 21 })
            assert.same({ type = "math", action = "double", id = "req-1", data = 42 }, reply)
            assert.equal("req-2", ws:request("math", "nope").id)
            assert.same({ n = 2 }, app.config.app)

            local quiet = assert(testing.load_app(dir, { config = { welcome = false } }))
            assert.same({}, quiet:connect():sent())
        end)

        it("takes every default from the server's descriptors", function()
            os.remove(dir .. "/config.lua")
            local app = assert(testing.load_app(dir))
            assert.same({}, app.config.app)
            assert.equal(4194304, app.config.max_buffered_bytes)
            assert.equal("/", app.config.path)
            assert.equal("connected", app:connect():sent()[1].action)
        end)

        it("returns nil, err for a broken app or config", function()
            local app, err = testing.load_app(dir, { config = { max_rooms_per_client = -1 } })
            assert.is_nil(app)
            assert.matches("max_rooms_per_client", err, 1, true)
            app, err = testing.load_app(dir, { config = { no_such_key = 1 } })
            assert.is_nil(app)
            assert.matches("no_such_key: unknown key", err, 1, true)
            tmpdir.write(dir, "controllers/math.lua", "return 1")
            app, err = testing.load_app(dir)
            assert.is_nil(app)
            assert.matches("controllers/math.lua:1: controller must return a table", err, 1, true)
            tmpdir.write(dir, "config.lua", "return 1")
            app, err = testing.load_app(dir)
            assert.is_nil(app)
            assert.matches("config.lua: must return a table", err, 1, true)
        end)
    end)

    describe("connections", function()
        local app

        before_each(function()
            app = assert(testing.load_app(dir, { config = { welcome = false } }))
        end)

        it("gives each connection the server's id and the server-side client", function()
            local a, b = app:connect({ query = "x=1", headers = { ["X-Team"] = "red" } }),
                         app:connect({ remote_addr = "10.0.0.7" })
            assert.are_not.equal(a.id, b.id)
            assert.equal(101, a.status)
            assert.same({ "/", "x=1", "red" },
                        { a.client.request.path, a.client.request.query,
                          a.client.request.headers["x-team"] })
            assert.equal("10.0.0.7", b.client.remote_addr)
        end)

        it("refuses an upgrade the server refuses, with its status", function()
            local ws = app:connect({ path = "/elsewhere" })
            assert.is_nil(ws.id)
            assert.is_nil(ws.client)
            assert.equal(404, ws.status)
        end)

        it("closes with a real closing handshake", function()
            local a = app:connect()
            a:close(1001, "away")
            assert.is_nil(app.runtime:client(a.id))
            assert.is_nil(a:closed())   -- the client closed first
            assert.same({}, a:send("late"))
        end)

        it("reports the server's close, with the code the core chose", function()
            local a = app:connect()
            a:send("\255", false)   -- not UTF-8: the core closes with 1007
            assert.same({ code = 1007, reason = "" }, a:closed())
            assert.is_nil(app.runtime:client(a.id))
        end)

        it("waits in real time for the reply carrying an id, or says there is none", function()
            local ws = app:connect()
            ws:send('{"type":"math","action":"double","data":{"x":4},"id":"d1"}')
            local msg = assert(ws:wait_reply("d1"))
            assert.equal(8, msg.data)
            assert.same({ nil, "no reply" }, { ws:wait_reply("never", 50) })
        end)

        it("shows frames with control frames on request", function()
            local a = app:connect()
            a:close(4000, "bye")
            local frames = a:frames({ control = true })
            assert.same({ "close", 4000, "bye" }, { frames[1].type, frames[1].code,
                                                     frames[1].reason })
            assert.same({}, a:frames())
        end)

        it("runs the loop for what the facade sends outside a dispatch", function()
            local a = app:connect()
            a.client:join("r")
            moonwire.room("r"):broadcast({ n = 1 })
            app:run()
            assert.same({ { n = 1 } }, a:sent())
        end)

        it("collects the log lines of the core and of the app", function()
            local a = app:connect()
            a.client:join("r")
            a:request("math", "shout", { text = "hey" })
            assert.equal("shouting hey", app:logs("warn")[1].message)
            local debug = app:logs("debug")
            assert.matches("client " .. a.id .. " connected", debug[#debug].message, 1, true)
            assert.equal(#app:logs("warn"), 1)
        end)

        it("reloads the app and keeps its clients", function()
            local a = app:connect()
            tmpdir.write(dir, "controllers/math.lua",
                         "return { double = function(c, d) return d.x * 3 end }")
            assert.is_true(app:reload())
            assert.equal(30, a:request("math", "double", { x = 10 }).data)
        end)

        it("reloads as the server does: config.lua again, live options at once", function()
            local a = app:connect()
            tmpdir.write(dir, "config.lua", [[
                return { welcome = false, port = 9999, app = { n = 3 },
                         rate_limit = { max_messages = 1, window_ms = 60000 } }
            ]])
            assert.is_true(app:reload())
            -- rate_limit is live: the second message is over it
            assert.equal(42, a:request("math", "double", { x = 21 }).data)
            assert.equal("RATE_LIMIT_EXCEEDED", a:send('{"type":"math","action":"double"}')[1]
                                                    .error.code)
            -- port needs a restart: warned about, listed in /health
            assert.same({ "port" }, app:health().restart_required)
            assert.matches("config: port changed; it needs a restart", app:logs("warn")[1].message,
                           1, true)
            assert.equal(3, app.runtime._config.app.n)
            assert.equal(1, app:health().reloads)
        end)

        it("keeps everything when config.lua breaks on reload", function()
            tmpdir.write(dir, "config.lua", "return { welcome = 'yes' }")
            local ok, err = app:reload()
            assert.is_nil(ok)
            assert.matches("welcome: must be a boolean", err, 1, true)
            assert.matches("welcome: must be a boolean", app:health().last_reload_error, 1, true)
        end)

        it("serves /health", function()
            app:connect()
            assert.equal(1, app:health().connections)
        end)
    end)
end)
