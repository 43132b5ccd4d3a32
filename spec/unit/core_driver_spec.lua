-- Specs for the test driver of moonwire/core.so (src/lua/test_driver.c):
-- a real server on its own loop and virtual clock, clients on socketpairs.
-- The handlers here are plain functions, not the runtime, so what is
-- checked is the driver and the C core alone.

local core = require "moonwire.core"


describe("core.test_server", function()
    local srv, events

    local function handlers(extra)
        local h = {
            upgrade = function(id, info)
                events[#events + 1] = { "upgrade", id, info }
                if info.query == "deny" then
                    return false, 403, "go away"
                end
            end,
            open = function(id)
                events[#events + 1] = { "open", id }
            end,
            message = function(id, payload, binary)
                events[#events + 1] = { "message", id, payload, binary }
                core.send(id, "echo:" .. payload, binary)
            end,
            disconnect = function(id, code, reason)
                events[#events + 1] = { "disconnect", id, code, reason }
            end,
        }
        for k, v in pairs(extra or {}) do
            h[k] = v
        end
        return h
    end

    local function start(config, extra)
        srv = assert(core.test_server({ config = config, handlers = handlers(extra),
                                        clock = 1000000, app_dir = "/nonexistent" }))
        return srv
    end

    before_each(function()
        events = {}
    end)

    after_each(function()
        if srv then
            srv:close()
            srv = nil
        end
    end)

    it("upgrades a client with a real HTTP request and tells the app", function()
        start()
        local c = srv:connect({ path = "/", query = "a=1", headers = { ["X-Team"] = "red" },
                                remote_addr = "10.1.2.3", remote_port = 5555 })
        assert.equal("open", c:state())
        assert.equal(101, (c:status()))
        assert.equal(1, c:id())
        local up = events[1]
        assert.same({ "upgrade", 1 }, { up[1], up[2] })
        assert.same({ "10.1.2.3", 5555, "/", "a=1", "red" },
                    { up[3].remote_addr, up[3].remote_port, up[3].path, up[3].query,
                      up[3].headers["x-team"] })
        assert.same({ "open", 1 }, events[2])
    end)

    it("carries a refusal as the HTTP status and body", function()
        start()
        local c = srv:connect({ query = "deny" })
        assert.equal("refused", c:state())
        local status, body = c:status()
        assert.equal(403, status)
        assert.matches("go away", body)
        assert.is_nil(c:id())
        assert.equal(404, (srv:connect({ path = "/elsewhere" }):status()))
    end)

    it("delivers masked frames to the app and the server's frames back", function()
        start()
        local c = srv:connect()
        assert.is_true(c:send("h\195\169llo"))
        assert.is_true(c:send("\0\255", true))
        srv:run()
        assert.same({ "message", 1, "h\195\169llo", false }, events[3])
        assert.same({ "message", 1, "\0\255", true }, events[4])
        local frames = c:frames()
        assert.same({ "text", "echo:h\195\169llo" }, { frames[1].type, frames[1].payload })
        assert.same({ "binary", "echo:\0\255", true },
                    { frames[2].type, frames[2].payload, frames[2].binary })
        assert.equal(1, #c:frames(2))
    end)

    it("closes with the server's code when the client breaks the protocol", function()
        start()
        local c = srv:connect()
        c:send("\255 not utf-8")
        srv:run()
        local close = c:frames()[1]
        assert.same({ "close", 1007 }, { close.type, close.code })
        assert.equal("closed", c:state())
        assert.is_false(c:closed_first())
        assert.equal("disconnect", events[#events][1])
        assert.equal(3, #events)   -- upgrade, open, disconnect: no message
    end)

    it("runs the closing handshake the client starts", function()
        start()
        local c = srv:connect()
        c:close(4000, "bye")
        srv:run()
        assert.same({ "disconnect", 1, 4000, "bye" }, events[3])
        local close = c:frames()[1]
        assert.same({ "close", 4000 }, { close.type, close.code })
        assert.is_true(c:closed_first())
        assert.equal("closed", c:state())
    end)

    it("notices a dropped peer", function()
        start()
        local c = srv:connect()
        c:drop()
        srv:run()
        assert.same({ "disconnect", 1, 1006 }, { events[3][1], events[3][2], events[3][3] })
    end)

    it("answers a ping frame with a pong", function()
        start()
        local c = srv:connect()
        c:send_frame(9, "are you there")
        srv:run()
        assert.same({ "pong", "are you there" }, { c:frames()[1].type, c:frames()[1].payload })
    end)

    it("moves a virtual clock: pings after ping_interval, drops a silent client", function()
        start({ ping_interval = 30000, pong_timeout = 10000 })
        local quiet = srv:connect({ auto_pong = false })
        local polite = srv:connect()
        assert.equal(1000000, srv:now())
        srv:advance(29000)
        assert.same({}, quiet:frames())
        srv:advance(1000)
        assert.equal(1030000, srv:now())
        assert.equal("ping", quiet:frames()[1].type)
        assert.equal("ping", polite:frames()[1].type)
        srv:advance(9000)
        assert.equal("open", quiet:state())
        srv:advance(1000)
        assert.equal("closed", quiet:state())
        assert.equal("open", polite:state())
        local logs = srv:logs()
        assert.matches("no pong within 10000 ms", logs[#logs].message, 1, true)
        assert.same({}, srv:logs())
    end)

    it("applies backpressure for real when a client stops reading", function()
        start({ max_buffered_bytes = 65536, slow_consumer_policy = "drop" })
        local slow, fast = srv:connect(), srv:connect()
        core.join(slow:id(), "r")
        core.join(fast:id(), "r")
        slow:pause_reading()
        local chunk = ("x"):rep(16384)
        local dropped = 0
        for _ = 1, 200 do
            local _, d = core.broadcast("r", chunk, false)
            dropped = dropped + d
            srv:run()
            if dropped > 0 then
                break
            end
        end
        assert.is_true(dropped > 0)
        assert.is_true(core.client_stats(slow:id()).dropped > 0)
        assert.equal(0, core.client_stats(fast:id()).dropped)
        slow:resume_reading()
        srv:run()
        assert.equal(#fast:frames() - dropped, #slow:frames())
    end)

    it("builds its config from the descriptors, config.lua and overrides", function()
        start({ max_rooms_per_client = 3, rate_limit = { window_ms = 500 } })
        local cfg = srv:config()
        assert.equal(3, cfg.max_rooms_per_client)
        assert.equal(500, cfg.rate_limit_window_ms)
        assert.equal("drop", cfg.slow_consumer_policy)   -- a default, from C
        local bad, err = core.test_server({ config = { nope = 1 }, handlers = handlers() })
        assert.is_nil(bad)
        assert.matches("nope: unknown key", err, 1, true)
    end)

    it("serves the /health JSON", function()
        start()
        srv:connect()
        assert.matches('"connections":1', srv:health(), 1, true)
    end)
end)
