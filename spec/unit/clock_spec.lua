-- Specs for what the core does with time, on its virtual clock: a spec
-- moves the clock (app:advance) and the core's own throttles, rate limit,
-- heartbeats and idle deadlines react, without a single sleep.

local tmpdir = require "support.tmpdir"
local testing = require "moonwire.testing"


describe("the core's clock", function()
    local dir, app

    local function load(config)
        app = assert(testing.load_app(dir, { config = config, clock = 1000000 }))
        return app
    end

    before_each(function()
        dir = tmpdir.new()
        tmpdir.write(dir, "controllers/chat.lua", [[
            local M = {}
            M._throttle = {
                say = { window_ms = 1000, max_messages = 2 },
                typing = { window_ms = 1000, max_messages = 1, silent = true },
            }
            function M.say(client, data) return { said = data.text } end
            function M.typing(client) return { typing = true } end
            return M
        ]])
        tmpdir.write(dir, "app.lua", [[
            local moonwire = require "moonwire"
            return { on_disconnect = function(client, code, reason)
                moonwire.log.info("gone " .. client.id .. " " .. code .. " " .. reason)
            end }
        ]])
    end)

    after_each(function()
        tmpdir.remove(dir)
    end)

    describe("a per-route throttle window", function()
        it("refuses past max_messages and admits again as the window moves", function()
            load({ welcome = false })
            local ws = app:connect()
            local function say(text)
                return ws:request("chat", "say", { text = text })
            end
            assert.same({ said = "1" }, say("1").data)
            assert.same({ said = "2" }, say("2").data)
            assert.same({ code = "RATE_LIMIT_EXCEEDED",
                          message = "too many 'chat.say' messages: slow down" }, say("3").error)
            -- 2 per 1000 ms: one more every 500 ms.
            app:advance(499)
            assert.equal("RATE_LIMIT_EXCEEDED", say("4").error.code)
            app:advance(1)
            assert.same({ said = "5" }, say("5").data)
            assert.equal("RATE_LIMIT_EXCEEDED", say("6").error.code)
            -- per client: another one has its own window
            assert.same({ said = "7" }, app:connect():request("chat", "say", { text = "7" }).data)
        end)

        it("drops a silent route's extra messages without a word", function()
            load({ welcome = false })
            local ws = app:connect()
            assert.same({ typing = true }, ws:request("chat", "typing").data)
            assert.same({}, ws:send('{"type":"chat","action":"typing","id":"t2"}'))
            app:advance(1000)
            assert.same({ typing = true }, ws:request("chat", "typing").data)
        end)
    end)

    describe("the server-wide rate limit", function()
        it("answers RATE_LIMIT_EXCEEDED from C, then lets the window refill", function()
            load({ welcome = false, rate_limit = { window_ms = 1000, max_messages = 2 } })
            local ws = app:connect()
            assert.equal("1", ws:request("chat", "say", { text = "1" }).data.said)
            assert.is_true(ws:request("chat", "typing").data.typing)
            local out = ws:send('{"type":"chat","action":"say","id":"x","data":{"text":"3"}}')
            assert.equal(1, #out)
            assert.same({ "error", "RATE_LIMIT_EXCEEDED" }, { out[1].type, out[1].error.code })
            app:advance(500)
            assert.equal("4", ws:request("chat", "say", { text = "4" }).data.said)
        end)
    end)

    describe("heartbeats", function()
        it("pings after ping_interval and drops a client that does not answer", function()
            load({ welcome = false, ping_interval = 30000, pong_timeout = 10000 })
            local polite = app:connect()
            local silent = app:connect({ auto_pong = false })
            app:advance(29900)
            assert.same({}, silent:frames({ control = true }))
            app:advance(100)
            assert.equal("ping", silent:frames({ control = true })[1].type)
            local frames = polite:frames({ control = true })
            assert.equal("ping", frames[1].type)
            app:advance(9900)
            assert.is_nil(silent:closed())
            app:advance(100)
            assert.same({ code = 1006, reason = "" }, silent:closed())
            assert.is_nil(polite:closed())
            local logs = app:logs("info")
            assert.equal("gone " .. silent.id .. " 1006 ", logs[#logs].message)
            -- the polite client answered every ping: still there a minute on
            app:advance(60000)
            assert.is_nil(polite:closed())
        end)

        it("sends the app protocol's ping event too with app_ping", function()
            load({ welcome = false, ping_interval = 1000, pong_timeout = 1000, app_ping = true })
            local ws = app:connect()
            app:advance(999)
            assert.same({}, ws:events("system", "ping"))
            app:advance(1)
            -- stamped when it is sent, not when the app was loaded
            assert.same({ { type = "system", action = "ping", data = {}, ts = 1001000 } },
                        ws:events("system", "ping"))
            app:advance(1000)
            assert.equal(1002000, ws:events("system", "ping")[2].ts)
        end)
    end)

    describe("inactive clients", function()
        it("closes a client that sends nothing for inactive_time with 1000", function()
            load({ welcome = false, inactive_time = 5000, inactive_check_interval = 100 })
            local ws = app:connect()
            app:advance(4000)
            ws:request("chat", "say", { text = "still here" })
            app:advance(4000)
            assert.is_nil(ws:closed())
            app:advance(1100)
            assert.same({ code = 1000, reason = "inactive" }, ws:closed())
        end)
    end)
end)
