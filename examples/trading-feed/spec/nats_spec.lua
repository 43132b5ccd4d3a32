-- Specs for the NATS feed (lib/nats_feed.lua) with a real nats-server
-- (moonwire.testing.nats_server): a message on orders.* reaches the
-- subscribers of channel orders as published, portfolio.* goes to
-- portfolio, a duplicate eventId is dropped, and the app serves while NATS
-- is down and picks the feed up again when it is back.

local testing = require "moonwire.testing"
local jwt = require "moonwire.jwt"
local cjson = require "cjson"

local SECRET = "trading-feed-test-secret-of-32-bytes!"


-- Publishes on the NATS server at `port` with its text protocol (a Python
-- one-liner: the spec process has no sockets), waiting for the PONG that
-- says the PUB was processed.
local function publish(port, subject, payload)
    local script = table.concat({
        "import socket,sys",
        "s=socket.create_connection(('127.0.0.1'," .. port .. "),5)",
        "f=s.makefile('rb'); f.readline()",
        "d=sys.argv[2].encode()",
        "s.sendall(b'CONNECT {\"verbose\":false}\\r\\nPUB '+sys.argv[1].encode()"
            .. "+b' '+str(len(d)).encode()+b'\\r\\n'+d+b'\\r\\nPING\\r\\n')",
        "assert f.readline()==b'PONG\\r\\n'",
    }, "\n")
    local quote = function(s)
        return "'" .. s:gsub("'", "'\\''") .. "'"
    end
    assert(os.execute("python3 -c " .. quote(script) .. " " .. quote(subject) .. " "
                      .. quote(payload)) == 0)
end


describe("the NATS feed", function()
    local srv, app

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
        app = assert(testing.load_app(".", { config = { jwt_secret = SECRET, app = {
            ping_interval = 0,
            pong_timeout = 5000,
            nats_url = srv.url,
            nats_subscriptions = {
                { subject = "orders.*", channel = "orders" },
                { subject = "portfolio.*", channel = "portfolio" },
            },
            bus_subscriptions = {},
        } } }))
    end)

    after_each(function()
        app:close()
    end)

    local function login(sub, channel)
        local ws = app:connect({ path = "/ws" })
        ws:send(cjson.encode({ type = "auth",
                               token = assert(jwt.sign({ sub = sub }, { secret = SECRET })) }))
        ws:send(cjson.encode({ type = "subscribe", channel = channel }))
        return ws
    end

    -- The payloads of the frames a client got after its first n.
    local function after(ws, n)
        local out = {}
        local frames = ws:frames()
        for i = n + 1, #frames do
            out[#out + 1] = frames[i].payload
        end
        return out
    end

    -- Publishes until the client gets something (the subscriptions are
    -- made once the connection is up), then returns what it got.
    local function until_delivered(ws, subject, payload)
        local n = #ws:frames()
        for _ = 1, 50 do
            publish(srv.port, subject, payload)
            if app:wait(function() return #ws:frames() > n end, 300) then
                return true
            end
        end
        return false
    end

    local function warm_up(ws)
        assert(until_delivered(ws, "orders.warmup", '{"warmup":true}'))
        app:wait(function() return false end, 200)
    end

    it("broadcasts orders.* to channel orders, portfolio.* to portfolio, as published", function()
        local a, b, c = login("a", "orders"), login("b", "orders"), login("c", "portfolio")
        warm_up(a)
        local na, nb, nc = #a:frames(), #b:frames(), #c:frames()
        publish(srv.port, "orders.created", '{"orderId":"123", "symbol":"BTCUSDT"}')
        publish(srv.port, "portfolio.updated", '{"value":1}')
        publish(srv.port, "trades.created", '{"tradeId":"1"}')
        publish(srv.port, "orders.created", 'not json')
        assert(app:wait(function() return #a:frames() > na and #c:frames() > nc end))
        app:wait(function() return false end, 200)
        assert.same({ '{"orderId":"123", "symbol":"BTCUSDT"}' }, after(a, na))
        assert.same({ '{"orderId":"123", "symbol":"BTCUSDT"}' }, after(b, nb))
        assert.same({ '{"value":1}' }, after(c, nc))
    end)

    it("drops a duplicate eventId", function()
        local a = login("a", "orders")
        warm_up(a)
        local n = #a:frames()
        publish(srv.port, "orders.created", '{"eventId":"e-1","orderId":"1"}')
        publish(srv.port, "orders.updated", '{"eventId":"e-1","orderId":"1"}')
        publish(srv.port, "orders.created", '{"eventId":"e-2","orderId":"2"}')
        assert(app:wait(function() return #a:frames() >= n + 2 end))
        app:wait(function() return false end, 200)
        assert.same({ '{"eventId":"e-1","orderId":"1"}', '{"eventId":"e-2","orderId":"2"}' },
                    after(a, n))
    end)

    it("serves while NATS is down, and the feed resumes when it is back", function()
        local a = login("a", "orders")
        warm_up(a)
        srv:stop()
        -- Clients are served meanwhile.
        local fresh = login("b", "orders")
        assert.equal("subscribed", fresh:last().type)
        assert.equal("pong", a:send(cjson.encode({ type = "ping" }))[1].type)
        assert(srv:start())
        local n = #fresh:frames()
        assert(until_delivered(fresh, "orders.created", '{"orderId":"after"}'))
        assert.equal('{"orderId":"after"}', after(fresh, n)[1])
    end)
end)
