-- Specs for routes.lua: GET /health over a real HTTP connection to the
-- real core, in the guide's shape, from the hub's real state (clients
-- connected and refused, rooms in C).

local testing = require "moonwire.testing"


describe("GET /health", function()
    local app

    local function connect()
        return app:connect({ path = "/ws" })
    end

    local function subscribe(ws, room)
        ws:send('{"type":"subscribe","room":"' .. room .. '"}')
    end

    local function health()
        local res = app:request("GET", "/health")
        assert.equal(200, res.status)
        return res.json
    end

    before_each(function()
        app = assert(testing.load_app(".", { config = { app = { max_connections = 3 } } }))
    end)

    it("answers 200 JSON with the guide's fields in its order, and nothing else", function()
        local res = app:request("GET", "/health")
        assert.equal(200, res.status)
        assert.equal('{"status":"healthy","clients":0,"rooms":0}', res.body)
        local ctype
        for k, v in pairs(res.headers) do
            if k:lower() == "content-type" then ctype = v end
        end
        assert.equal("application/json", ctype)
    end)

    it("counts admitted clients and rooms with members", function()
        local a, b = connect(), connect()
        subscribe(a, "chat")
        subscribe(b, "chat")
        subscribe(b, "news")
        assert.same({ status = "healthy", clients = 2, rooms = 2 }, health())
        b:close()
        assert.same({ status = "healthy", clients = 1, rooms = 1 }, health())
        a:send('{"type":"unsubscribe","room":"chat"}')
        assert.same({ status = "healthy", clients = 1, rooms = 0 }, health())
    end)

    it("does not count a client refused past max_connections", function()
        connect()
        connect()
        connect()
        assert.equal(1008, connect():closed().code)
        assert.equal(3, health().clients)
    end)

    it("counts every worker's clients, here and in max_connections", function()
        -- another worker's count, as that worker keeps it (lib/hub.lua)
        local dict = assert(require("moonwire").shared.dict("hub"))
        dict:set("clients:w2", 2)
        connect()
        assert.equal(3, health().clients)
        assert.equal(1008, connect():closed().code)
        dict:set("clients:w2", 1)
        local ws = connect()
        assert.is_nil(ws:closed())
        assert.equal(3, health().clients)
    end)

    it("is the app's, not moonwire's document", function()
        assert.is_nil(health().connections)
        assert.equal(404, app:request("GET", "/healthz").status)
    end)
end)
