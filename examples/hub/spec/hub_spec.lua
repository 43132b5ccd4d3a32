-- Specs for the hub example: echo, subscribe and publish in the hub protocol
-- (the one every peer of scripts/bench speaks).

local testing = require "moonwire.testing"


describe("hub", function()
    local app, ws

    before_each(function()
        app = assert(testing.load_app("."))
        ws = app:connect()
    end)

    it("has one route per hub message type", function()
        assert.same({ "hub.echo", "hub.incr", "hub.publish", "hub.subscribe" }, app:routes())
    end)

    it("sends no welcome", function()
        assert.same({}, ws:frames())
    end)

    it("echoes data after decoding and re-encoding it", function()
        local out = ws:send('{"type":"echo","data":{"text":"h\195\169llo","n":[1,2,3],"ok":true}}')
        assert.same({ { type = "echo",
                        data = { text = "h\195\169llo", n = { 1, 2, 3 }, ok = true } } }, out)
        out = ws:send('{"type":"echo","data":"xxxxxxxx"}')
        assert.same({ { type = "echo", data = "xxxxxxxx" } }, out)
    end)

    it("echoes null data as null", function()
        assert.same({ { type = "echo", data = testing.null } },
                    ws:send('{"type":"echo","data":null}'))
    end)

    -- The last frame sent to `conn`, as the text the client receives.
    local function last_text(conn)
        local frames = conn:frames()
        return frames[#frames].payload
    end

    it("relays empty arrays and objects byte for byte", function()
        ws:send('{"type":"echo","data":[]}')
        assert.matches('"data":[]', last_text(ws), 1, true)
        ws:send('{"type":"echo","data":{"a":[ ],"b":[[],[1]],"e":{},"s":"x\\"[]"}}')
        local text = last_text(ws)
        assert.matches('"data":{"a":[ ],"b":[[],[1]],"e":{},"s":"x\\"[]"}', text, 1, true)
        assert.equal('x"[]', ws:last().data.s) -- inside a string, [] is text
        local other = app:connect()
        other:send('{"type":"subscribe","room":"r1"}')
        ws:send('{"type":"publish","room":"r1","data":[]}')
        assert.matches('"data":[]', last_text(other), 1, true)
    end)

    it("relays string and number data as sent, short or long", function()
        local other = app:connect()
        other:send('{"type":"subscribe","room":"r2"}')
        for _, data in ipairs({ '"plain"', '"a\\/b \\u00e9"', '12345678901234567', '-0',
                                '1E+2', '"' .. ("z"):rep(300) .. '"',
                                '"' .. ("\\u00e9"):rep(100) .. '"' }) do
            ws:send('{"type":"echo","data":' .. data .. '}')
            assert.matches('"data":' .. data, last_text(ws), 1, true)
            ws:send('{"type":"publish","room":"r2","data":' .. data .. '}')
            assert.matches('"data":' .. data, last_text(other), 1, true)
        end
    end)

    it("takes an empty array outside data for what it is", function()
        assert.equal("INVALID_ROOM", ws:send('{"type":"subscribe","room":[]}')[1].error.code)
        assert.equal("INVALID_MESSAGE", ws:send('{"type":[]}')[1].error.code)
        assert.equal("INVALID_MESSAGE", ws:send("[]")[1].error.code)
    end)

    it("answers subscribe with subscribed", function()
        assert.same({ { type = "subscribed", room = "r1" } },
                    ws:send('{"type":"subscribe","room":"r1"}'))
        assert.same({ "r1" }, ws.client:rooms())
    end)

    it("delivers a publish to every member of the room, and nobody else", function()
        local other = app:connect()
        local outsider = app:connect()
        local publisher = app:connect()
        ws:send('{"type":"subscribe","room":"r1"}')
        other:send('{"type":"subscribe","room":"r1"}')
        outsider:send('{"type":"subscribe","room":"r2"}')

        assert.same({}, publisher:send('{"type":"publish","room":"r1","data":{"seq":1}}'))
        local expected = { type = "message", room = "r1", data = { seq = 1 } }
        assert.same(expected, ws:last())
        assert.same(expected, other:last())
        assert.same({ type = "subscribed", room = "r2" }, outsider:last())
        assert.equal(0, #publisher:sent())
    end)

    it("delivers to the publisher too when it is a member", function()
        ws:send('{"type":"subscribe","room":"r1"}')
        local out = ws:send('{"type":"publish","room":"r1","data":"x"}')
        assert.same({ { type = "message", room = "r1", data = "x" } }, out)
    end)

    it("publishes to an empty room without error", function()
        assert.same({}, ws:send('{"type":"publish","room":"nobody","data":1}'))
    end)

    it("stops delivering to a member that left", function()
        local other = app:connect()
        other:send('{"type":"subscribe","room":"r1"}')
        local before = #other:frames()
        other:close()
        assert.same({}, ws:send('{"type":"publish","room":"r1","data":1}'))
        assert.equal(before, #other:frames())
    end)

    it("rejects bad rooms with INVALID_ROOM", function()
        for _, text in ipairs({
            '{"type":"subscribe"}',
            '{"type":"subscribe","room":""}',
            '{"type":"subscribe","room":7}',
            '{"type":"subscribe","room":"' .. ("x"):rep(257) .. '"}',
            '{"type":"publish","data":1}',
        }) do
            local out = ws:send(text)
            assert.equal("error", out[1].type)
            assert.equal("INVALID_ROOM", out[1].error.code)
        end
    end)

    it("answers malformed JSON, non-objects and unknown types with errors", function()
        local out = ws:send("not json {")
        assert.equal("INVALID_MESSAGE", out[1].error.code)
        assert.matches("malformed JSON", out[1].error.message, 1, true)
        assert.equal("INVALID_MESSAGE", ws:send("[1,2]")[1].error.code)
        assert.equal("INVALID_MESSAGE", ws:send('"just a string"')[1].error.code)
        assert.equal("INVALID_MESSAGE", ws:send('{"data":1}')[1].error.code)
        assert.equal("NOT_FOUND", ws:send('{"type":"nope"}')[1].error.code)
        assert.equal("INVALID_MESSAGE", ws:send("binary", true)[1].error.code)
    end)
end)
