-- Specs for moonwire.protocol: the default JSON wire protocol.

local tmpdir = require "support.tmpdir"
local testing = require "moonwire.testing"
local protocol = require "moonwire.protocol"
local cjson = require "cjson"


describe("moonwire.protocol", function()
    local dir

    before_each(function()
        dir = tmpdir.new()
    end)

    after_each(function()
        tmpdir.remove(dir)
    end)

    describe("decode", function()
        it("decodes a full message", function()
            local msg = protocol.decode(
                '{"type":"chat","action":"send","data":{"text":"hi"},"id":"r1"}')
            assert.same({ type = "chat", action = "send", data = { text = "hi" }, id = "r1" }, msg)
        end)

        it("accepts numeric ids and defaults data to an empty table", function()
            local msg = protocol.decode('  {"type":"a","action":"b","id":7}')
            assert.equal(7, msg.id)
            assert.same({}, msg.data)
            assert.same({}, protocol.decode('{"type":"a","action":"b","data":null}').data)
        end)

        local function rejects(payload, pattern, id)
            local msg, code, message, rid = protocol.decode(payload)
            assert.is_nil(msg)
            assert.equal("INVALID_MESSAGE", code)
            assert.matches(pattern, message)
            assert.equal(id, rid)
        end

        it("rejects malformed JSON clearly", function()
            rejects('{"type":"a",', "^malformed JSON")
            rejects("", "^malformed JSON")
            rejects("NaN", "^malformed JSON")
        end)

        it("rejects JSON that is not an object", function()
            rejects("[]", "must be a JSON object")
            rejects('[{"type":"a","action":"b"}]', "must be a JSON object")
            rejects('"str"', "must be a JSON object")
            rejects("42", "must be a JSON object")
        end)

        it("names the field at fault, and keeps a usable id", function()
            rejects('{"action":"b","id":"x"}', "field 'type'", "x")
            rejects('{"type":"","action":"b"}', "field 'type'")
            rejects('{"type":"a","id":3}', "field 'action'", 3)
            rejects('{"type":"a","action":5}', "field 'action'")
            rejects('{"type":"a","action":"b","id":{}}', "field 'id'")
            rejects('{"type":"a","action":"b","id":true}', "field 'id'")
            rejects('{"type":"a","action":"b","id":null}', "field 'id'")
            rejects('{"type":"a","action":"b","data":"x","id":"q"}', "field 'data'", "q")
        end)

        -- Found by spec/fuzz/fuzz_protocol (spec/fuzz/regressions/protocol/):
        -- the answer must carry the id back unchanged, and cjson writes 14
        -- significant digits and no infinities.
        it("refuses numeric ids an answer could not carry back unchanged", function()
            rejects('{"type":"a","action":"b","id":1e999}', "at most 14 significant digits")
            rejects('{"type":"a","action":"b","id":-1e400}', "field 'id'")
            rejects('{"type":"a","id":1e999}', "field 'id'") -- not echoed in any error
            rejects('{"type":"a","action":"b","id":9007199254740993}', "field 'id'")
            rejects('{"type":"a","action":"b","id":0.1234567890123456}', "field 'id'")
            for _, id in ipairs({ "12345678901234", "-0.5", "1e300", "0", "7" }) do
                local msg = assert(protocol.decode('{"type":"a","action":"b","id":' .. id .. "}"))
                local reply = cjson.decode((protocol.encode(protocol.reply(msg))))
                local err = cjson.decode((protocol.encode(protocol.error(msg.id, "NOT_FOUND"))))
                assert.equal(tonumber(id), reply.id)
                assert.equal(tonumber(id), err.id)
            end
        end)

        it("rejects binary frames", function()
            local msg, code, message = protocol.decode('{"type":"a","action":"b"}', true)
            assert.is_nil(msg)
            assert.equal("INVALID_MESSAGE", code)
            assert.matches("binary frames are not supported", message)
        end)
    end)

    describe("encode", function()
        it("returns JSON text and is_binary = false", function()
            local payload, is_binary = protocol.encode({ a = 1 })
            assert.equal('{"a":1}', payload)
            assert.is_false(is_binary)
        end)

        it("encodes protocol.array of an empty list as []", function()
            assert.equal('{"a":[]}', protocol.encode({ a = protocol.array({}) }))
            assert.equal('{"a":[1]}', protocol.encode({ a = protocol.array({ 1 }) }))
            assert.equal('[[],[]]', protocol.encode({ protocol.empty_array, protocol.empty_array }))
            assert.equal('{"a":{}}', protocol.encode({ a = {} }))
        end)

        it("returns nil, err for values JSON cannot hold", function()
            local payload, err = protocol.encode({ f = print })
            assert.is_nil(payload)
            assert.matches("function", err)
        end)
    end)

    describe("constructors", function()
        it("event adds ts from the core clock and encodes empty data as an object", function()
            -- The clock is the server's: a spec's virtual one here.
            assert(testing.load_app(dir, { clock = 1700000000123 }))
            local ev = protocol.event("chat", "message", nil, "lobby")
            assert.same({ type = "chat", action = "message", data = {}, room = "lobby",
                          ts = 1700000000123 }, ev)
            assert.matches('"data":{}', (protocol.encode(ev)), 1, true)
        end)

        it("reply echoes type, action and id; nil data is null, {} is an object", function()
            local msg = { type = "a", action = "b", id = "r9", data = {} }
            local decoded = cjson.decode((protocol.encode(protocol.reply(msg, nil))))
            assert.same({ type = "a", action = "b", id = "r9", data = cjson.null }, decoded)
            assert.matches('"data":{}', (protocol.encode(protocol.reply(msg, {}))), 1, true)
        end)

        it("error builds the envelope, with a default message", function()
            assert.same({ type = "error", id = 1,
                          error = { code = "ROOM_FULL", message = "the room is full" } },
                        protocol.error(1, "ROOM_FULL", "the room is full"))
            local env = protocol.error(nil, "RATE_LIMIT_EXCEEDED")
            assert.is_nil(env.id)
            assert.equal("rate limit exceeded", env.error.message)
        end)
    end)

    it("exports every error code as a constant", function()
        for _, code in ipairs({ "AUTHENTICATION_FAILED", "AUTHORIZATION_FAILED",
                                "RATE_LIMIT_EXCEEDED", "INVALID_MESSAGE", "INVALID_ROOM",
                                "ROOM_FULL", "SERVER_FULL", "NOT_FOUND", "INTERNAL_ERROR" }) do
            assert.equal(code, protocol[code])
            assert.equal(code, protocol.codes[code])
        end
    end)
end)
