-- Specs for the @aladdin/websocket protocol of this app, on the real core
-- through moonwire.testing (virtual clock): the connected message, the
-- auth message and its timeout, subscribe/unsubscribe, the JSON ping/pong
-- heartbeat, the rate-limit error, feed events from the bus to a
-- channel's subscribers, and the event cache.

local testing = require "moonwire.testing"
local jwt = require "moonwire.jwt"
local cjson = require "cjson"

local CLOCK = 1700000000000
local SECRET = "trading-feed-test-secret-of-32-bytes!"

-- config.lua's `app` table; the heartbeat specs set it to 1 s / 300 ms
-- (the specs run on a virtual clock: nothing sleeps).
local APP = {
    ping_interval = 30000,
    pong_timeout = 5000,
    nats_url = "",
    nats_subscriptions = {},
    bus_subscriptions = {
        { match = "orders.*", channel = "orders" },
        { match = "portfolio.*", channel = "portfolio" },
    },
}


local HEARTBEAT = { ping_interval = 1000, pong_timeout = 300 }


local function load(config, app_settings)
    local settings = {}
    for k, v in pairs(APP) do
        settings[k] = v
    end
    for k, v in pairs(app_settings or {}) do
        settings[k] = v
    end
    local c = { jwt_secret = SECRET, app = settings }
    for k, v in pairs(config or {}) do
        c[k] = v
    end
    return assert(testing.load_app(".", { clock = CLOCK, config = c }))
end


local function token(sub)
    return assert(jwt.sign({ sub = sub }, { secret = SECRET }))
end


local function send(ws, t)
    return ws:send(cjson.encode(t))
end


-- A connected, authenticated client (its messages so far dropped).
local function login(app, sub)
    local ws = app:connect({ path = "/ws" })
    send(ws, { type = "auth", token = token(sub or "user-123") })
    return ws
end


describe("trading-feed", function()
    local app

    after_each(function()
        if app then
            app:close()
            app = nil
        end
    end)

    describe("connection and authentication", function()
        it("greets a client with connected and a UUID clientId, keys in order", function()
            app = load()
            local ws = app:connect({ path = "/ws" })
            local first = ws:frames()[1].payload
            assert.matches('^{"type":"connected","clientId":"%x+%-%x+%-4%x+%-%x+%-%x+",'
                           .. '"timestamp":' .. CLOCK .. '}$', first)
            assert.equal(ws.client.data.client_id, ws:sent()[1].clientId)
            assert.is_nil(ws:closed())
        end)

        it("authenticates with a JWT auth message: userId is sub", function()
            app = load()
            local ws = app:connect({ path = "/ws" })
            local got = send(ws, { type = "auth", token = token("user-123") })
            assert.same({ '{"type":"authenticated","userId":"user-123","timestamp":'
                          .. CLOCK .. '}' }, { ws:frames()[2].payload })
            assert.equal(1, #got)
            assert.equal("user-123", ws.client.user)
            -- Authenticated: the auth timeout no longer applies.
            app:advance(6000)
            assert.is_nil(ws:closed())
        end)

        it("refuses a bad token: Invalid token, then close 1008", function()
            app = load()
            local other = assert(jwt.sign({ sub = "x" },
                                          { secret = "other-secret-of-32-bytes-at-least!!" }))
            for _, bad in ipairs({ "not-a-jwt", other }) do
                local ws = app:connect({ path = "/ws" })
                local got = send(ws, { type = "auth", token = bad })
                assert.same({ type = "error", message = "Invalid token", timestamp = CLOCK },
                            got[1])
                assert.equal(1008, ws:closed().code)
            end
            local ws = app:connect({ path = "/ws" })
            assert.equal("Invalid token", send(ws, { type = "auth" })[1].message)
            assert.equal(1008, ws:closed().code)
        end)

        it("closes a client that does not authenticate within authTimeout", function()
            app = load({ auth_timeout = 2000 })
            local ws = app:connect({ path = "/ws" })
            app:advance(1500)
            assert.is_nil(ws:closed())
            app:advance(1000)
            assert.equal(1008, ws:closed().code)
            assert.equal("authentication timeout", ws:closed().reason)
        end)

        it("answers any other message before auth with Authentication required", function()
            app = load()
            local ws = app:connect({ path = "/ws" })
            local got = send(ws, { type = "subscribe", channel = "orders" })
            assert.same({ { type = "error", message = "Authentication required",
                            timestamp = CLOCK } }, got)
            assert.is_false(ws.client:in_room("orders"))
        end)

        it("also takes a token at the upgrade (moonwire's default strategy)", function()
            app = load()
            local ws = app:connect({ path = "/ws", query = "token=" .. token("user-9") })
            assert.equal(101, ws.status)
            assert.equal("user-9", ws.client.user)
            assert.equal("subscribed", send(ws, { type = "subscribe", channel = "orders" })[1].type)
            assert.equal(401, app:connect({ path = "/ws", query = "token=bad" }).status)
        end)

        it("lets clients in without auth when requireAuth is off", function()
            app = load({ require_auth = false })
            local ws = app:connect({ path = "/ws" })
            local got = send(ws, { type = "subscribe", channel = "orders" })
            assert.equal("subscribed", got[1].type)
            app:advance(6000)
            assert.is_nil(ws:closed())
        end)
    end)

    describe("messages", function()
        it("answers invalid JSON with Invalid message format and stays open", function()
            app = load()
            local ws = login(app)
            assert.same({ { type = "error", message = "Invalid message format",
                            timestamp = CLOCK } }, ws:send("{nope"))
            assert.is_nil(ws:closed())
        end)

        it("does not answer unknown types", function()
            app = load()
            local ws = login(app)
            assert.same({}, send(ws, { type = "custom", data = 1 }))
            assert.same({}, ws:send("42"))
            assert.is_nil(ws:closed())
        end)

        it("subscribes and unsubscribes, with the guide's answers", function()
            app = load()
            local ws = login(app)
            local n = #ws:frames()
            send(ws, { type = "subscribe", channel = "orders" })
            assert.equal('{"type":"subscribed","channel":"orders","timestamp":' .. CLOCK .. '}',
                         ws:frames()[n + 1].payload)
            assert.is_true(ws.client:in_room("orders"))
            send(ws, { type = "unsubscribe", channel = "orders" })
            assert.equal('{"type":"unsubscribed","channel":"orders","timestamp":' .. CLOCK .. '}',
                         ws:frames()[n + 2].payload)
            assert.is_false(ws.client:in_room("orders"))
            -- Not subscribed: answered the same.
            assert.equal("unsubscribed", send(ws, { type = "unsubscribe", channel = "x" })[1].type)
        end)

        it("requires a channel", function()
            app = load()
            local ws = login(app)
            for _, m in ipairs({ { type = "subscribe" }, { type = "subscribe", channel = "" },
                                 { type = "unsubscribe", channel = 5 } }) do
                assert.same({ { type = "error", message = "Channel is required",
                                timestamp = CLOCK } }, send(ws, m))
            end
            assert.equal("Cannot subscribe: room name must be at most 256 bytes",
                         send(ws, { type = "subscribe", channel = ("x"):rep(257) })[1].message)
        end)

        it("answers a client's ping with a pong", function()
            app = load()
            local ws = login(app)
            local got = send(ws, { type = "ping", timestamp = 1 })
            assert.same({ { type = "pong", timestamp = CLOCK } }, got)
        end)
    end)

    describe("rate limit", function()
        it("answers past maxMessages per window with Rate limit exceeded, stays open", function()
            app = load({ rate_limit = { window_ms = 1000, max_messages = 3, max_violations = 0 } })
            local ws = login(app)       -- the auth message is the first of 3
            send(ws, { type = "ping" })
            send(ws, { type = "ping" })
            local got = send(ws, { type = "ping" })
            assert.same({ { type = "error", message = "Rate limit exceeded", timestamp = CLOCK } },
                        got)
            for _ = 1, 20 do
                assert.equal("Rate limit exceeded", send(ws, { type = "ping" })[1].message)
            end
            assert.is_nil(ws:closed())
            app:advance(1000)
            assert.equal("pong", send(ws, { type = "ping" })[1].type)
        end)
    end)

    describe("ping/pong heartbeat", function()
        it("pings every pingInterval and keeps a client that answers", function()
            app = load(nil, HEARTBEAT)
            local ws = login(app)
            app:advance(1000)
            for round = 1, 3 do
                local last = ws:last()
                assert.same({ type = "ping", timestamp = CLOCK + round * 1000 }, last)
                assert.equal('{"type":"ping","timestamp":' .. (CLOCK + round * 1000) .. '}',
                             ws:frames()[#ws:frames()].payload)
                send(ws, { type = "pong", timestamp = last.timestamp })
                app:advance(400)    -- past pongTimeout
                assert.is_nil(ws:closed())
                app:advance(600)    -- the next ping
            end
        end)

        it("closes a client that does not answer within pongTimeout with 1001", function()
            app = load(nil, HEARTBEAT)
            local ws = login(app)
            app:advance(1000)
            assert.equal("ping", ws:last().type)
            app:advance(200)
            assert.is_nil(ws:closed())
            app:advance(200)
            assert.same({ code = 1001, reason = "Ping timeout" }, ws:closed())
        end)
    end)

    describe("feed events", function()
        it("go from the bus (orders.*) to the subscribers of channel orders, as sent", function()
            app = load()
            local a, b, c = login(app, "a"), login(app, "b"), login(app, "c")
            send(a, { type = "subscribe", channel = "orders" })
            send(b, { type = "subscribe", channel = "orders" })
            send(c, { type = "subscribe", channel = "portfolio" })
            local na, nc = #a:frames(), #c:frames()
            assert.equal(1, app:emit("orders.created", { orderId = "123", symbol = "BTCUSDT" }))
            local got = cjson.decode(a:frames()[na + 1].payload)
            assert.same({ orderId = "123", symbol = "BTCUSDT" }, got)
            assert.same(a:frames()[na + 1].payload, b:frames()[#b:frames()].payload)
            assert.equal(nc, #c:frames())
            assert.equal(0, app:emit("trades.created", { id = 1 }))
        end)

        it("drop a duplicate event (same eventId or id) for a client that got it", function()
            app = load()
            local a = login(app, "a")
            send(a, { type = "subscribe", channel = "orders" })
            local n = #a:frames()
            app:emit("orders.created", { eventId = "e-1", orderId = "1" })
            app:emit("orders.updated", { eventId = "e-1", orderId = "1" })
            app:emit("orders.created", { id = 7, orderId = "2" })
            app:emit("orders.created", { id = 7, orderId = "2" })
            app:emit("orders.created", { orderId = "3" })
            app:emit("orders.created", { orderId = "3" })
            local ids = {}
            for i = n + 1, #a:frames() do
                ids[#ids + 1] = cjson.decode(a:frames()[i].payload).orderId
            end
            assert.same({ "1", "2", "3", "3" }, ids)
            -- A client that subscribes later gets an event it has not seen.
            local b = login(app, "b")
            send(b, { type = "subscribe", channel = "orders" })
            local nb = #b:frames()
            app:emit("orders.created", { eventId = "e-1", orderId = "1" })
            assert.equal(nb + 1, #b:frames())
            assert.equal(#ids + n, #a:frames())
        end)

        it("delivers duplicates when the cache is off", function()
            app = load({ dedupe = false })
            local a = login(app, "a")
            send(a, { type = "subscribe", channel = "orders" })
            local n = #a:frames()
            app:emit("orders.created", { eventId = "e-1" })
            app:emit("orders.created", { eventId = "e-1" })
            assert.equal(n + 2, #a:frames())
        end)
    end)

    it("keeps clients and their heartbeat across a reload", function()
        app = load(nil, HEARTBEAT)
        local ws = login(app)
        assert.is_true(app:reload())
        app:advance(1000)
        assert.equal("ping", ws:last().type)
        send(ws, { type = "pong" })
        app:advance(400)
        assert.is_nil(ws:closed())
        app:advance(1000)
        app:advance(400)
        assert.same({ code = 1001, reason = "Ping timeout" }, ws:closed())
    end)
end)
