-- Specs for the gorilla-hub example: every message of guide 004 ("Message
-- Protocol"), every error of its "Error Messages" table, and its limits,
-- on the real core through moonwire.testing.

local testing = require "moonwire.testing"

local null = testing.null

-- The virtual clock: every timestamp is this until a spec moves it.
local CLOCK = 1700000000000
local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"


describe("gorilla-hub", function()
    local app

    -- A client on the guide's /ws, its `connected` message already read.
    local function connect()
        local ws = app:connect({ path = "/ws" })
        local hello = ws:sent()[1]
        assert.equal("connected", hello.type)
        ws.uuid = hello.data.client_id
        return ws
    end

    -- What one message (a Lua table, sent as JSON, or a raw string) got back.
    local function send(ws, msg)
        if type(msg) == "table" then
            msg = require("cjson").encode(msg)
        end
        return ws:send(msg)
    end

    local function subscribe(ws, room)
        local out = send(ws, { type = "subscribe", room = room })
        assert.equal("subscribed", out[1].type)
        return out[1]
    end

    local function err(text)
        return { { type = "error", error = text, timestamp = CLOCK } }
    end

    -- The text of the last frame sent to ws.
    local function last_text(ws)
        local frames = ws:frames()
        return frames[#frames].payload
    end

    before_each(function()
        app = assert(testing.load_app(".", { clock = CLOCK }))
    end)

    it("routes the guide's five message types, and GET /health", function()
        assert.same({ "hub.broadcast", "hub.ping", "hub.publish", "hub.subscribe",
                      "hub.unsubscribe", "GET /health" }, app:routes())
    end)

    describe("connected", function()
        it("is the first message, with a UUID client id and a millisecond timestamp",
           function()
            local ws = app:connect({ path = "/ws" })
            local sent = ws:sent()
            assert.equal(1, #sent)
            local id = sent[1].data.client_id
            assert.matches(UUID, id)
            assert.same({ type = "connected", timestamp = CLOCK,
                          data = { client_id = id, message = "Connected to WebSocket server" } },
                        sent[1])
            assert.equal(sent[1].data.client_id, ws.client.data.client_id)
        end)

        it("writes its keys in the guide's order", function()
            local ws = app:connect({ path = "/ws" })
            assert.matches('^{"type":"connected","data":{"client_id":"[%x-]+",'
                           .. '"message":"Connected to WebSocket server"},"timestamp":'
                           .. CLOCK .. '}$', last_text(ws))
        end)

        it("gives every client its own id", function()
            local seen = {}
            for _ = 1, 50 do
                local id = connect().uuid
                assert.is_nil(seen[id])
                seen[id] = true
            end
        end)

        it("is served on /ws only", function()
            assert.equal(404, app:connect({ path = "/" }).status)
            assert.equal(404, app:connect({ path = "/websocket" }).status)
            assert.equal(101, app:connect({ path = "/ws" }).status)
        end)
    end)

    describe("subscribe", function()
        it("answers subscribed with the room's client_count", function()
            local a, b = connect(), connect()
            assert.same({ { type = "subscribed", room = "chat", timestamp = CLOCK,
                            data = { room = "chat", client_count = 1 } } },
                        send(a, { type = "subscribe", room = "chat" }))
            assert.matches('^{"type":"subscribed","room":"chat","data":{"room":"chat",'
                           .. '"client_count":1},"timestamp":' .. CLOCK .. '}$', last_text(a))
            assert.equal(2, subscribe(b, "chat").data.client_count)
            assert.equal(1, subscribe(b, "other").data.client_count)
            assert.same({ "chat", "other" }, b.client:rooms())
        end)

        it("answers a second subscribe the same, without counting the client twice",
           function()
            local a, b = connect(), connect()
            subscribe(a, "chat")
            subscribe(b, "chat")
            assert.equal(2, subscribe(a, "chat").data.client_count)
        end)

        it("requires a room name", function()
            local ws = connect()
            for _, msg in ipairs({ '{"type":"subscribe"}', '{"type":"subscribe","room":""}',
                                   '{"type":"subscribe","room":null}' }) do
                assert.same(err("room name is required"), send(ws, msg))
            end
            assert.same({}, ws.client:rooms())
        end)

        it("refuses a room name over 256 bytes (moonwire's limit)", function()
            local ws = connect()
            assert.same(err("room name must be at most 256 bytes"),
                        send(ws, { type = "subscribe", room = ("r"):rep(257) }))
            assert.equal(1, subscribe(ws, ("r"):rep(256)).data.client_count)
        end)
    end)

    describe("unsubscribe", function()
        it("answers unsubscribed, and the client gets nothing from the room after",
           function()
            local a, b = connect(), connect()
            subscribe(a, "chat")
            subscribe(b, "chat")
            assert.same({ { type = "unsubscribed", room = "chat", timestamp = CLOCK,
                            data = { room = "chat" } } },
                        send(a, { type = "unsubscribe", room = "chat" }))
            assert.matches('^{"type":"unsubscribed","room":"chat","data":{"room":"chat"},'
                           .. '"timestamp":' .. CLOCK .. '}$', last_text(a))
            local before = #a:frames()
            send(b, { type = "publish", room = "chat", data = 1 })
            assert.equal(before, #a:frames())
            assert.equal(2, subscribe(a, "chat").data.client_count)
        end)

        it("refuses a room the client is not in", function()
            local ws = connect()
            assert.same(err("not subscribed to this room"),
                        send(ws, { type = "unsubscribe", room = "chat" }))
            subscribe(ws, "chat")
            send(ws, { type = "unsubscribe", room = "chat" })
            assert.same(err("not subscribed to this room"),
                        send(ws, { type = "unsubscribe", room = "chat" }))
        end)

        it("requires a room name", function()
            local ws = connect()
            assert.same(err("room name is required"), send(ws, '{"type":"unsubscribe"}'))
            assert.same(err("room name is required"),
                        send(ws, '{"type":"unsubscribe","room":""}'))
        end)
    end)

    describe("publish", function()
        it("reaches the room's other members with the sender's id, and nobody else",
           function()
            local a, b, c, outsider = connect(), connect(), connect(), connect()
            subscribe(a, "chat")
            subscribe(b, "chat")
            subscribe(c, "chat")
            subscribe(outsider, "news")
            local before = #outsider:frames()
            assert.same({}, send(a, '{"type":"publish","room":"chat","data":{"message":"Hello!"}}'))
            local expected = { type = "message", room = "chat", data = { message = "Hello!" },
                               client_id = a.uuid, timestamp = CLOCK }
            assert.same(expected, b:last())
            assert.same(expected, c:last())
            assert.equal(before, #outsider:frames())
            assert.matches('^{"type":"message","room":"chat","data":{"message":"Hello!"},'
                           .. '"client_id":"' .. a.uuid:gsub("%-", "%%-") .. '","timestamp":'
                           .. CLOCK .. '}$', last_text(b))
        end)

        it("forwards data byte for byte, whatever its type", function()
            local a, b = connect(), connect()
            subscribe(a, "chat")
            subscribe(b, "chat")
            for _, data in ipairs({ '{ "any" : "payload", "n": 12345678901234567 }', '[1, [], {}]',
                                    '"text"', '"a\\/b \\u00e9"', '1E+2', '-0', 'true',
                                    'null' }) do
                send(a, '{"type":"publish","room":"chat","data":' .. data .. '}')
                assert.matches(',"data":' .. data:gsub("%p", "%%%0") .. ',"client_id":',
                               last_text(b))
            end
        end)

        it("sends data null when the publisher sent none", function()
            local a, b = connect(), connect()
            subscribe(a, "chat")
            subscribe(b, "chat")
            send(a, { type = "publish", room = "chat" })
            assert.equal(null, b:last().data)
            assert.matches(',"data":null,', last_text(b), 1, true)
        end)

        it("requires the publisher to be subscribed", function()
            local a, b = connect(), connect()
            subscribe(b, "chat")
            local before = #b:frames()
            assert.same(err("not subscribed to this room"),
                        send(a, { type = "publish", room = "chat", data = 1 }))
            assert.equal(before, #b:frames())
        end)

        it("requires a room name", function()
            local ws = connect()
            assert.same(err("room name is required"), send(ws, '{"type":"publish","data":1}'))
            assert.same(err("room name is required"),
                        send(ws, '{"type":"publish","room":"","data":1}'))
        end)

        it("to a room of one reaches nobody", function()
            local ws = connect()
            subscribe(ws, "alone")
            assert.same({}, send(ws, { type = "publish", room = "alone", data = 1 }))
        end)
    end)

    describe("broadcast", function()
        it("reaches every other client, subscribed or not, without a room", function()
            local a, b, c = connect(), connect(), connect()
            subscribe(b, "chat")
            assert.same({}, send(a, '{"type":"broadcast","data":{"any":"payload"}}'))
            local expected = { type = "message", data = { any = "payload" },
                               client_id = a.uuid, timestamp = CLOCK }
            assert.same(expected, b:last())
            assert.same(expected, c:last())
            assert.matches('^{"type":"message","data":{"any":"payload"},"client_id":"[%x-]+",'
                           .. '"timestamp":' .. CLOCK .. '}$', last_text(c))
        end)

        it("sends data null when the sender sent none", function()
            local a, b = connect(), connect()
            send(a, { type = "broadcast" })
            assert.same({ type = "message", data = null, client_id = a.uuid,
                          timestamp = CLOCK }, b:last())
        end)
    end)

    describe("ping", function()
        it("answers pong with a timestamp", function()
            local ws = connect()
            assert.same({ { type = "pong", timestamp = CLOCK } }, send(ws, '{"type":"ping"}'))
            assert.equal('{"type":"pong","timestamp":' .. CLOCK .. '}', last_text(ws))
            app:advance(1500)
            assert.same({ { type = "pong", timestamp = CLOCK + 1500 } },
                        send(ws, '{"type":"ping"}'))
        end)

        it("ignores other fields", function()
            local ws = connect()
            assert.same({ { type = "pong", timestamp = CLOCK } },
                        send(ws, '{"type":"ping","room":"x","data":[1]}'))
        end)
    end)

    describe("errors", function()
        it("answers a message that is not a JSON object with invalid JSON format", function()
            local ws = connect()
            for _, text in ipairs({ "not json {", "", "[1,2]", '"just a string"', "42", "true",
                                    '{"type":"ping"', '{"type":5}', '{"type":["ping"]}',
                                    '{"type":"subscribe","room":7}',
                                    '{"type":"subscribe","room":{"name":"x"}}' }) do
                assert.same(err("invalid JSON format"), send(ws, text))
            end
            assert.matches('^{"type":"error","error":"invalid JSON format","timestamp":'
                           .. CLOCK .. '}$', last_text(ws))
        end)

        it("answers an unknown, missing or empty type with unknown message type", function()
            local ws = connect()
            for _, text in ipairs({ '{"type":"get_user"}', '{"type":"Ping"}', "{}",
                                    '{"room":"chat"}', '{"type":null}', '{"type":""}', "null",
                                    '{"type":"_throttle"}', '{"type":"subscribe-x"}' }) do
                assert.same(err("unknown message type"), send(ws, text))
            end
        end)

        it("keeps the connection open after an error", function()
            local ws = connect()
            send(ws, "garbage")
            send(ws, '{"type":"nope"}')
            assert.same({ { type = "pong", timestamp = CLOCK } }, send(ws, '{"type":"ping"}'))
            assert.is_nil(ws:closed())
        end)

        it("reads binary frames as JSON too, as gorilla's reader does", function()
            local ws = connect()
            assert.same({ { type = "pong", timestamp = CLOCK } },
                        ws:send('{"type":"ping"}', true))
            assert.same(err("invalid JSON format"), ws:send("\0\1\2", true))
        end)

        it("words every error the runtime answers with in the guide's shape", function()
            local protocol = require "protocol"
            assert.same({ type = "error", error = "internal server error", timestamp = CLOCK },
                        protocol.error(nil, "INTERNAL_ERROR", "internal error"))
            assert.same({ type = "error", error = "unknown message type", timestamp = CLOCK },
                        protocol.error(nil, "NOT_FOUND", "unknown action 'x' for type 'hub'"))
            assert.same({ type = "error", error = "room full", timestamp = CLOCK },
                        protocol.error(nil, "ROOM_FULL", "room full"))
            assert.same({ type = "error", error = "internal server error", timestamp = CLOCK },
                        protocol.error(nil, "INVALID_MESSAGE"))
        end)

        it("words the rate limit as the gorilla service does", function()
            app = assert(testing.load_app(".", { clock = CLOCK,
                config = { rate_limit = { window_ms = 1000, max_messages = 2 } } }))
            local ws = connect()
            send(ws, '{"type":"ping"}')
            send(ws, '{"type":"ping"}')
            assert.same(err("rate limit exceeded"), send(ws, '{"type":"ping"}'))
        end)
    end)

    describe("limits.max_connections_per_room", function()
        before_each(function()
            app = assert(testing.load_app(".", { clock = CLOCK,
                                                 config = { max_connections_per_room = 2 } }))
        end)

        it("refuses the member past the limit with room is at maximum capacity", function()
            local a, b, c = connect(), connect(), connect()
            subscribe(a, "chat")
            subscribe(b, "chat")
            assert.same(err("room is at maximum capacity"),
                        send(c, { type = "subscribe", room = "chat" }))
            assert.same({}, c.client:rooms())
            -- the room is full for newcomers only; other rooms are not
            assert.equal(2, subscribe(a, "chat").data.client_count)
            assert.equal(1, subscribe(c, "other").data.client_count)
        end)

        it("admits again once a member left or disconnected", function()
            local a, b, c = connect(), connect(), connect()
            subscribe(a, "chat")
            subscribe(b, "chat")
            send(a, { type = "unsubscribe", room = "chat" })
            assert.equal(2, subscribe(c, "chat").data.client_count)
            b:close()
            assert.equal(2, subscribe(a, "chat").data.client_count)
        end)
    end)

    describe("limits.max_connections", function()
        before_each(function()
            app = assert(testing.load_app(".", { clock = CLOCK,
                                                 config = { app = { max_connections = 2 } } }))
        end)

        it("accepts the client past the limit, tells it the server is full, and closes it",
           function()
            local a, b = connect(), connect()
            local late = app:connect({ path = "/ws" })
            assert.equal(101, late.status)
            assert.same(err("server is at maximum capacity"), late:sent())
            assert.same({ code = 1008, reason = "SERVER_FULL" }, late:closed())
            -- the others are untouched, and a broadcast does not reach it
            send(a, { type = "broadcast", data = 1 })
            assert.equal(1, b:last().data)
            assert.equal(1, #late:sent())
        end)

        it("admits a new client once one left, and never counts a refused one", function()
            local a = connect()
            connect()
            for _ = 1, 3 do
                assert.equal(1008, app:connect({ path = "/ws" }):closed().code)
            end
            a:close()
            local c = connect()
            assert.matches(UUID, c.uuid)
            assert.equal(1008, app:connect({ path = "/ws" }):closed().code)
        end)

        it("keeps its count across a reload", function()
            local a = connect()
            connect()
            assert.is_true(app:reload())
            assert.equal(1008, app:connect({ path = "/ws" }):closed().code)
            a:close()
            connect()
        end)
    end)

    describe("keepalive and size limits", function()
        it("pings a silent client after ping_interval (54 s) and drops it at pong_wait (60 s)",
           function()
            local polite = connect()
            local silent = app:connect({ path = "/ws", auto_pong = false })
            app:advance(53000)
            assert.same({}, (function()
                local pings = {}
                for _, f in ipairs(silent:frames({ control = true })) do
                    if f.type == "ping" then pings[#pings + 1] = f end
                end
                return pings
            end)())
            app:advance(1000)
            local types = {}
            for _, f in ipairs(silent:frames({ control = true })) do
                types[#types + 1] = f.type
            end
            assert.same({ "text", "ping" }, types)
            app:advance(6000)
            assert.same({ code = 1006, reason = "" }, silent:closed())
            assert.is_nil(polite:closed())
        end)

        it("closes a client whose message is over max_message_size with 1009", function()
            app = assert(testing.load_app(".", { clock = CLOCK,
                                                 config = { max_message_size = 64 } }))
            local ws = connect()
            send(ws, '{"type":"broadcast","data":"' .. ("x"):rep(100) .. '"}')
            assert.equal(1009, ws:closed().code)
        end)
    end)
end)
