-- Specs for GET /health (routes.lua): getHealth() of guide 002, in its
-- shape and key order, from the real state of the core (connections,
-- rooms) and the subscriptions of every connection.

local testing = require "moonwire.testing"
local h = require "spec.helpers"


describe("GET /health", function()
    local app, topics

    local function health()
        local res = app:request("GET", "/health")
        assert.equal(200, res.status)
        return res.json
    end

    local function doc(connections, rooms, subscriptions)
        return { healthy = true, connections = connections, rooms = rooms,
                 details = { subscriptions = subscriptions } }
    end

    before_each(function()
        app = assert(testing.load_app("."))
        topics = require "lib.topics"
    end)

    after_each(function()
        app:close()
    end)

    it("answers 200 JSON in the guide's shape and key order, and nothing else", function()
        local res = app:request("GET", "/health")
        assert.equal(200, res.status)
        assert.equal('{"healthy":true,"connections":0,"rooms":0,"details":{"subscriptions":0}}',
                     res.body)
        assert.equal("application/json", res.headers["content-type"])
    end)

    it("counts connections, rooms (topics with subscribers) and subscriptions", function()
        local a, b, c = h.connect(app), h.connect(app), h.connect(app)
        assert.same(doc(3, 0, 0), health())
        topics.subscribe(a.client, "tasks.update")
        topics.subscribe(b.client, "tasks.update")
        topics.subscribe(b.client, "logs")
        assert.same(doc(3, 2, 3), health())
        -- subscribing twice is one subscription (a Set)
        topics.subscribe(b.client, "logs")
        assert.same(doc(3, 2, 3), health())
        topics.unsubscribe(a.client, "tasks.update")
        assert.same(doc(3, 2, 2), health())
        b:close()
        assert.same(doc(2, 0, 0), health())
        c:drop()
        assert.same(doc(1, 0, 0), health())
    end)

    it("keeps counting subscriptions across a reload", function()
        local a = h.connect(app)
        topics.subscribe(a.client, "tasks.update")
        assert.is_true(app:reload())
        assert.same(doc(1, 1, 1), health())
    end)

    it("answers HEAD with the head alone", function()
        local res = app:request("HEAD", "/health")
        assert.equal(200, res.status)
        assert.equal("", res.body)
    end)
end)
