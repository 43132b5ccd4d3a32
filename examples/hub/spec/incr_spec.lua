-- Specs for the hub's incr message (one Redis INCR before the reply: the
-- handler waits) against a real redis-server (moonwire.testing.redis_server).
-- Replies come over real sockets, so the specs turn the loop in real time
-- (app:wait) until what they expect has arrived, with a deadline.

local testing = require "moonwire.testing"


describe("hub incr", function()
    local srv, app

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
    end)

    after_each(function()
        if app then
            app:close()
            app = nil
        end
    end)

    local function load(url)
        app = assert(testing.load_app(".", { config = { app = { redis_url = url } } }))
        return app
    end

    -- Waits until ws has received n messages; returns them.
    local function replies(ws, n)
        assert(app:wait(function()
            return #ws:sent() >= n
        end), "expected " .. n .. " messages, got " .. #ws:sent())
        return ws:sent()
    end

    it("answers with the data as sent and the counter's new value", function()
        load(srv.url)
        local ws = app:connect()
        ws:send('{"type":"incr","data":"mwb:0000000001:00000000000000:xx"}')
        local out = replies(ws, 1)
        assert.same({ type = "incr", data = "mwb:0000000001:00000000000000:xx", n = 1 }, out[1])
        ws:send('{"type":"incr","data":{"a":[1,2],"s":"h\195\169"}}')
        out = replies(ws, 2)
        assert.same({ type = "incr", data = { a = { 1, 2 }, s = "h\195\169" }, n = 2 }, out[2])
        local frames = ws:frames()
        assert.matches('"data":{"a":[1,2],"s":"h\195\169"}', frames[2].payload, 1, true)
        assert.equal("2", srv:cli("GET", "hub:incr"))
    end)

    it("waits without holding up other clients; one client's replies in order", function()
        load(srv.url)
        local a, b = app:connect(), app:connect()
        for i = 1, 5 do
            a:send('{"type":"incr","data":' .. i .. '}')
            b:send('{"type":"incr","data":' .. (100 + i) .. '}')
        end
        local ra, rb = replies(a, 5), replies(b, 5)
        local seen = {}
        for i = 1, 5 do
            assert.equal(i, ra[i].data)
            assert.equal(100 + i, rb[i].data)
            assert.is_true(i == 1 or ra[i].n > ra[i - 1].n)
            seen[ra[i].n], seen[rb[i].n] = true, true
        end
        for n = 1, 10 do
            assert.is_true(seen[n], "no reply carried n = " .. n)
        end
        assert.equal("10", srv:cli("GET", "hub:incr"))
        -- every client on the one shared connection (the other is redis-cli)
        local list = srv:cli("CLIENT", "LIST")
        assert.equal(2, select(2, list:gsub("\n", "")) + 1)
    end)

    it("answers UNAVAILABLE at once while Redis is down, and serves again after", function()
        load(srv.url)
        local ws = app:connect()
        ws:send('{"type":"incr","data":1}')
        assert.equal(1, replies(ws, 1)[1].n)
        srv:stop()
        local last
        assert(app:wait(function()
            ws:send('{"type":"incr","data":2}')
            last = ws:last()
            return last.type == "error"
        end))
        assert.same({ code = "UNAVAILABLE", message = "redis: not connected" }, last.error)
        assert(srv:start())
        -- Retry until Redis is back. An incr sent while an earlier one waits
        -- for its reply queues behind it, so several may succeed: the first
        -- success is the one that counts from a fresh redis-server.
        local first
        assert(app:wait(function()
            for _, m in ipairs(ws:sent()) do
                if m.type == "incr" and m.data == 3 then
                    first = m
                    return true
                end
            end
            ws:send('{"type":"incr","data":3}')
            return false
        end, 10000))
        assert.same({ type = "incr", data = 3, n = 1 }, first)
    end)

    it("answers UNAVAILABLE without a Redis URL, and the rest still works", function()
        load(nil)
        local ws = app:connect()
        local out = ws:send('{"type":"incr","data":1}')
        assert.equal("UNAVAILABLE", out[1].error.code)
        assert.matches("no Redis configured", out[1].error.message, 1, true)
        assert.same({ { type = "echo", data = 1 } }, ws:send('{"type":"echo","data":1}'))
    end)
end)
