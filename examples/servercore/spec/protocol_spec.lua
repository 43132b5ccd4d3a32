-- Specs for protocol.lua and the requests that need no Redis: the
-- envelope of guide 002 ("Message Protocol") in both directions, request/
-- response matching by id, sendError's message for every malformed or
-- unknown message, the types the guide's handler ignores, binary frames,
-- and the rate limit's error; on the real core through moonwire.testing.

local testing = require "moonwire.testing"
local h = require "spec.helpers"


describe("servercore protocol", function()
    local app, ws

    before_each(function()
        app = assert(testing.load_app(".", { clock = h.CLOCK }))
        ws = h.connect(app)
    end)

    after_each(function()
        app:close()
    end)

    it("routes the requests of controllers/request.lua, /health and /broadcast", function()
        assert.same({ "request.ping", "request.subscribe", "request.subscriptions",
                      "request.unsubscribe", "request.whoami", "GET /health",
                      "POST /broadcast" }, app:routes())
    end)

    it("sends nothing on connect (no moonwire welcome)", function()
        assert.same({}, ws:frames())
    end)

    describe("request/response", function()
        it("answers a request with a response carrying its id and action", function()
            local out = ws:send('{"id":"r1","type":"request","action":"ping"}')
            assert.same({ {
                id = "r1", type = "response", action = "ping", payload = { pong = true },
                metadata = { timestamp = h.CLOCK, version = "1.0.0" },
            } }, out)
        end)

        it("writes the response's keys in the guide's order", function()
            ws:send('{"id":"r1","type":"request","action":"ping"}')
            assert.equal('{"id":"r1","type":"response","action":"ping","payload":{"pong":true},'
                         .. '"metadata":{"timestamp":' .. h.CLOCK .. ',"version":"1.0.0"}}',
                         h.last_text(ws))
        end)

        it("matches each response to its request by id, in order", function()
            local out = ws:send('{"id":"a","type":"request","action":"ping"}')
            out[2] = ws:send('{"id":"b","type":"request","action":"subscriptions"}')[1]
            assert.equal("a", out[1].id)
            assert.equal("ping", out[1].action)
            assert.equal("b", out[2].id)
            assert.equal("subscriptions", out[2].action)
        end)

        it("carries the time the answer is sent (Date.now())", function()
            app:advance(1234)
            local out = h.request(ws, "ping")
            assert.equal(h.CLOCK + 1234, out.metadata.timestamp)
        end)

        it("ignores the request's own metadata and unknown fields", function()
            local out = ws:send('{"id":"r","type":"request","action":"ping","extra":1,'
                                .. '"metadata":{"timestamp":1,"version":"9.9.9"}}')
            assert.same({ timestamp = h.CLOCK, version = "1.0.0" }, out[1].metadata)
        end)

        it("keeps ids as sent, including escapes and non-ASCII", function()
            local out = ws:send('{"id":"\\u00e9t\\u00e9 \\"1\\"","type":"request","action":"ping"}')
            assert.equal('\195\169t\195\169 "1"', out[1].id)
        end)

        it("answers subscriptions and whoami for a connection without a token", function()
            assert.same({ topics = {} }, h.request(ws, "subscriptions").payload)
            assert.matches('"payload":{"topics":%[%]}', h.last_text(ws))
            assert.same({ authenticated = false, user = testing.null, roles = {} },
                        h.request(ws, "whoami").payload)
            assert.matches('"roles":%[%]', h.last_text(ws))
        end)

        it("answers unsubscribe from a topic the connection is not subscribed to", function()
            local out = h.request(ws, "unsubscribe", { topic = "tasks.update" })
            assert.same({ topic = "tasks.update", subscribed = false }, out.payload)
        end)
    end)

    describe("sendError", function()
        it("answers malformed JSON with a fresh id, action 'error', INVALID_MESSAGE", function()
            local out = ws:send('{"id":"r1","type":"request",')
            assert.equal(1, #out)
            local e = out[1]
            assert.matches(h.UUID, e.id)
            assert.same({ type = "error", action = "error",
                          payload = { code = "INVALID_MESSAGE",
                                      message = "Invalid message: malformed JSON" },
                          metadata = { timestamp = h.CLOCK, version = "1.0.0" }, id = e.id }, e)
        end)

        it("writes the error's keys in the guide's order, without details", function()
            ws:send("nope")
            assert.matches('^{"id":"[%x-]+","type":"error","action":"error","payload":'
                           .. '{"code":"INVALID_MESSAGE","message":"Invalid message: '
                           .. 'malformed JSON"},"metadata":{"timestamp":' .. h.CLOCK
                           .. ',"version":"1.0.0"}}$', h.last_text(ws))
        end)

        it("gives every error without a request id an id of its own", function()
            local a = ws:send("[]")[1]
            local b = ws:send("[]")[1]
            assert.matches(h.UUID, a.id)
            assert.matches(h.UUID, b.id)
            assert.not_equal(a.id, b.id)
        end)

        it("refuses what is not an object", function()
            for _, text in ipairs({ "[]", '"x"', "1", "null", "true" }) do
                assert.same({ code = "INVALID_MESSAGE",
                              message = "Invalid message: must be a JSON object" },
                            ws:send(text)[1].payload, text)
            end
        end)

        it("refuses an unknown or missing type, with the request's id when it has one",
           function()
            local e = ws:send('{"id":"r7","type":"command","action":"ping"}')[1]
            assert.equal("r7", e.id)
            assert.same({ code = "INVALID_MESSAGE", message = "Invalid message: type must be "
                          .. "'request', 'response', 'event' or 'error'" }, e.payload)
            e = ws:send('{"id":"r8","action":"ping"}')[1]
            assert.equal("r8", e.id)
            e = ws:send('{"id":5,"type":5}')[1]
            assert.matches(h.UUID, e.id)
        end)

        it("refuses a request without a string id", function()
            for _, text in ipairs({ '{"type":"request","action":"ping"}',
                                    '{"id":"","type":"request","action":"ping"}',
                                    '{"id":7,"type":"request","action":"ping"}',
                                    '{"id":null,"type":"request","action":"ping"}' }) do
                local e = ws:send(text)[1]
                assert.matches(h.UUID, e.id)
                assert.same({ code = "INVALID_MESSAGE",
                              message = "Invalid message: id must be a non-empty string" },
                            e.payload, text)
            end
        end)

        it("refuses a request without an action", function()
            for _, text in ipairs({ '{"id":"r","type":"request"}',
                                    '{"id":"r","type":"request","action":""}',
                                    '{"id":"r","type":"request","action":["ping"]}' }) do
                assert.same({ { id = "r", type = "error", action = "error",
                                payload = { code = "INVALID_MESSAGE", message =
                                            "Invalid message: action must be a non-empty string" },
                                metadata = { timestamp = h.CLOCK, version = "1.0.0" } } },
                            ws:send(text), text)
            end
        end)

        it("answers an unknown action NOT_FOUND, naming it", function()
            assert.same({ code = "NOT_FOUND", message = "Unknown action: launch" },
                        h.request(ws, "launch").payload)
            assert.same({ code = "NOT_FOUND", message = "Unknown action: _ignored" },
                        h.request(ws, "_ignored").payload)
            assert.same({ code = "NOT_FOUND", message = "Unknown action" },
                        h.request(ws, string.rep("x", 65)).payload)
            assert.equal("error", h.request(ws, "toString").type)
        end)

        it("refuses a subscribe or unsubscribe without a topic", function()
            local why = "Invalid payload: topic must be a non-empty string of at most 256 bytes"
            for _, payload in ipairs({ testing.null, {}, { topic = "" }, { topic = 5 },
                                       { topic = string.rep("t", 257) }, "tasks" }) do
                for _, action in ipairs({ "subscribe", "unsubscribe" }) do
                    local e = h.request(ws, action, payload)
                    assert.equal("error", e.type)
                    assert.same({ code = "INVALID_MESSAGE", message = why }, e.payload)
                end
            end
        end)

        it("keeps internal details to the log: an error raised in an action", function()
            local store = package.loaded["lib.store"]
            local real = store.can_subscribe
            store.can_subscribe = function()
                error("secret internals")
            end
            local e = h.request(ws, "subscribe", { topic = "tasks.update" })
            store.can_subscribe = real
            assert.same({ code = "INTERNAL_ERROR", message = "An error occurred" }, e.payload)
            assert.matches("^req%-%d+$", e.id)
            assert.not_matches("secret", h.last_text(ws))
            local logged = false
            for _, line in ipairs(app:logs("error")) do
                logged = logged or line.message:find("secret internals", 1, true) ~= nil
            end
            assert.is_true(logged)
            -- the connection goes on
            assert.equal("response", h.request(ws, "ping").type)
        end)
    end)

    describe("other message types", function()
        it("ignores response, event and error messages, as the guide's handler does",
           function()
            for _, text in ipairs({ '{"id":"x","type":"response","action":"ping"}',
                                    '{"type":"event","action":"tasks.update","payload":{}}',
                                    '{"type":"error","action":"error"}',
                                    '{"id":"y","type":"event"}' }) do
                assert.same({}, ws:send(text), text)
            end
            assert.equal("response", h.request(ws, "ping").type)
            assert.is_nil(ws:closed())
        end)
    end)

    describe("binary frames", function()
        it("are read as the same JSON text", function()
            local out = ws:send('{"id":"b1","type":"request","action":"ping"}', true)
            assert.equal("b1", out[1].id)
            assert.equal("response", out[1].type)
            assert.is_false(ws:frames()[1].binary)
        end)

        it("must be UTF-8", function()
            local e = ws:send('{"id":"b\255","type":"request","action":"ping"}', true)[1]
            assert.matches(h.UUID, e.id)
            assert.same({ code = "INVALID_MESSAGE", message = "Invalid message: not UTF-8 text" },
                        e.payload)
            for _, bad in ipairs({ "\192\128", "\237\160\128", "\244\144\128\128", "\226\130" }) do
                e = ws:send('{"id":"' .. bad .. '","type":"request","action":"ping"}', true)[1]
                assert.equal("Invalid message: not UTF-8 text", e.payload.message)
            end
            local ok = ws:send('{"id":"\226\130\172\240\159\152\128","type":"request",'
                               .. '"action":"ping"}', true)[1]
            assert.equal("\226\130\172\240\159\152\128", ok.id)
        end)
    end)

    describe("limits", function()
        it("answers past the rate limit with RATE_LIMIT_EXCEEDED at the time it is sent",
           function()
            app = assert(testing.load_app(".", { clock = h.CLOCK,
                                                 config = { rate_limit = { max_messages = 2 } } }))
            ws = h.connect(app)
            h.request(ws, "ping")
            h.request(ws, "ping")
            local e = ws:send('{"id":"r3","type":"request","action":"ping"}')[1]
            assert.equal("error", e.type)
            assert.equal("error", e.action)
            assert.matches(h.UUID, e.id)
            assert.equal("RATE_LIMIT_EXCEEDED", e.payload.code)
            assert.equal(h.CLOCK, e.metadata.timestamp)
            assert.equal("1.0.0", e.metadata.version)
            -- encoded once per load, the error still carries the time it is sent
            app:advance(20)
            e = ws:send('{"id":"r4","type":"request","action":"ping"}')[1]
            assert.equal("RATE_LIMIT_EXCEEDED", e.payload.code)
            assert.equal(h.CLOCK + 20, e.metadata.timestamp)
        end)

        it("closes a connection whose message is over max_message_size with 1009", function()
            app = assert(testing.load_app(".", { config = { max_message_size = 64 } }))
            ws = h.connect(app)
            ws:send('{"id":"r","type":"request","action":"ping","payload":"'
                    .. string.rep("x", 100) .. '"}')
            assert.equal(1009, ws:closed().code)
        end)
    end)
end)
