-- Specs for routes.lua: the guide's GET /health document, from the hub's
-- real state (clients connected and refused on the real core, rooms in C).

local testing = require "moonwire.testing"


describe("GET /health", function()
    local app, health

    local function connect()
        return app:connect({ path = "/ws" })
    end

    local function subscribe(ws, room)
        ws:send('{"type":"subscribe","room":"' .. room .. '"}')
    end

    before_each(function()
        app = assert(testing.load_app(".", { config = { app = { max_connections = 3 } } }))
        health = require("routes")["GET /health"]
    end)

    it("answers 200 with the guide's fields, and nothing else", function()
        local status, body = health({ method = "GET", path = "/health" })
        assert.equal(200, status)
        assert.same({ status = "healthy", clients = 0, rooms = 0 }, body)
    end)

    it("counts registered clients and rooms with members", function()
        local a, b = connect(), connect()
        subscribe(a, "chat")
        subscribe(b, "chat")
        subscribe(b, "news")
        assert.same({ status = "healthy", clients = 2, rooms = 2 }, select(2, health({})))
        b:close()
        assert.same({ status = "healthy", clients = 1, rooms = 1 }, select(2, health({})))
        a:send('{"type":"unsubscribe","room":"chat"}')
        assert.same({ status = "healthy", clients = 1, rooms = 0 }, select(2, health({})))
    end)

    it("does not count a client refused past max_connections", function()
        connect()
        connect()
        connect()
        local late = connect()
        assert.equal(1008, late:closed().code)
        assert.equal(3, select(2, health({})).clients)
    end)
end)
