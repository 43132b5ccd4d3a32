-- Specs for subscribers/bench.lua: the events of scripts/bench's emit1 row
-- (POST /api/emit on "bench.fanout") reach the room as a hub publish does.

local testing = require "moonwire.testing"


describe("hub's bench.fanout subscriber", function()
    local app

    before_each(function()
        app = assert(testing.load_app("."))
    end)

    it("is the app's only subscriber, on exactly one channel", function()
        local subs = app:subscribers()
        assert.equal(1, #subs)
        assert.equal("bench-fanout", subs[1].name)
        assert.same("bench.fanout", subs[1].selector)
    end)

    it("broadcasts an event to its room as the hub's publish message", function()
        local a, b, outside = app:connect(), app:connect(), app:connect()
        a:send('{"type":"subscribe","room":"bench"}')
        b:send('{"type":"subscribe","room":"bench"}')
        outside:send('{"type":"subscribe","room":"other"}')
        assert.equal(1, app:emit("bench.fanout", { room = "bench", data = "mwb:1" }))
        for _, ws in ipairs({ a, b }) do
            assert.same({ type = "message", room = "bench", data = "mwb:1" }, ws:last())
        end
        assert.same({ type = "subscribed", room = "other" }, outside:last())
    end)

    it("takes no other channel, and logs an event without a room", function()
        assert.equal(0, app:emit("bench.other", { room = "bench", data = "x" }))
        assert.equal(1, app:emit("bench.fanout", { data = "x" }))
        local errors = app:logs("error")
        assert.equal(1, #errors)
        assert.matches("message.room must be a non%-empty string", errors[1].message)
    end)
end)
