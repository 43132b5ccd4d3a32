-- Specs for the PXL wire protocol (protocol.lua, lib/pxl.lua) and the
-- controllers' answers, on the real core through moonwire.testing: every
-- routed message is answered {type, action, response}, errors are
-- sendMessageError's {type:'error', action:'message', data:{error}}, and
-- what PXL routes nowhere gets no answer.

local testing = require "moonwire.testing"
local h = require "spec.helpers"

local CLOCK = h.CLOCK
local ISO = h.ISO


describe("pxl-chat protocol", function()
    local app

    local function err(text)
        return { type = "error", action = "message", data = { error = text } }
    end

    before_each(function()
        app = assert(testing.load_app(".", { clock = CLOCK }))
    end)

    it("routes the guide's controller actions and PXL's system controller", function()
        assert.same({ "chat.history", "chat.send", "chat.typing", "system.joinRoom",
                      "system.leaveRoom",
                      "user.updatePreferences" }, app:routes())
    end)

    it("serves /ws, sends no welcome message", function()
        assert.equal(404, app:connect({ path = "/" }).status)
        local ws = h.connect(app)
        assert.equal(101, ws.status)
        assert.same({}, ws:sent())
        assert.matches("^%x+$", ws.client.data.client_id)
        assert.equal(32, #ws.client.data.client_id)
    end)

    it("answers every routed message with {type, action, response}, keys in PXL's order",
       function()
        local ws = h.connect(app)
        local out = ws:send('{"type":"chat","action":"typing","data":{"username":"ann"}}')
        assert.same({ { type = "chat", action = "typing", response = { success = true } } }, out)
        assert.equal('{"type":"chat","action":"typing","response":{"success":true}}',
                     h.last_text(ws))
    end)

    it("answers a message without data as one with an empty object", function()
        local ws = h.connect(app)
        local out = ws:send('{"type":"system","action":"joinRoom"}')
        assert.same({ success = false, error = "Room name is required",
                      clientId = ws.client.data.client_id }, out[1].response)
    end)

    it("sends parseServerMessage's errors as sendMessageError's message", function()
        local ws = h.connect(app)
        assert.same({ err("Failed to parse JSON") }, ws:send("{nope"))
        assert.equal('{"type":"error","action":"message","data":{"error":"Failed to parse JSON"}}',
                     h.last_text(ws))
        assert.same({ err("Invalid WebSocket message") }, ws:send("null"))
        assert.same({ err("Invalid WebSocket message") }, ws:send("0"))
        assert.same({ err("Missing WebSocket message type") }, ws:send("[1]"))
        assert.same({ err("Missing WebSocket message type") }, ws:send('{"action":"send"}'))
        assert.same({ err("Missing WebSocket message type") },
                    ws:send('{"type":"","action":"send"}'))
        assert.same({ err("Missing WebSocket message action") }, ws:send('{"type":"chat"}'))
        assert.same({ err("Missing WebSocket message action") },
                    ws:send('{"type":"chat","action":0}'))
        assert.is_nil(ws:closed())
    end)

    it("reads binary frames as JSON text, as ws's toString() does", function()
        local ws = h.connect(app)
        local out = ws:send('{"type":"chat","action":"typing"}', true)
        assert.same({ success = true }, out[1].response)
    end)

    it("answers nothing to a route no controller has", function()
        local ws = h.connect(app)
        assert.same({}, ws:send('{"type":"chat","action":"nope"}'))
        assert.same({}, ws:send('{"type":"nope","action":"send"}'))
        assert.same({}, ws:send('{"type":5,"action":"send"}'))
        assert.same({}, ws:send('{"type":"chat","action":{"x":1}}'))
        -- moonwire's own system actions and auth message are not PXL's.
        assert.same({}, ws:send('{"type":"system","action":"join","data":{"room":"a"}}'))
        assert.same({}, ws:send('{"type":"system","action":"auth","data":{"token":"x"}}'))
        assert.same({}, ws.client:rooms())
        assert.same({ success = true },
                    ws:send('{"type":"chat","action":"typing"}')[1].response)
    end)

    it("sends the runtime's own errors in the same shape (the rate limit)", function()
        app = assert(testing.load_app(".", { clock = CLOCK,
                                             config = { rate_limit = { max_messages = 1 } } }))
        local ws = h.connect(app)
        assert.same({ success = true },
                    ws:send('{"type":"chat","action":"typing"}')[1].response)
        assert.same({ err("rate limit exceeded: slow down") },
                    ws:send('{"type":"chat","action":"typing"}'))
    end)

    it("writes timestamps as toISOString() does", function()
        local pxl = require "lib.pxl"
        assert.equal(ISO, pxl.iso(CLOCK))
        assert.equal("2023-11-14T22:13:20.007Z", pxl.iso(CLOCK + 7))
        assert.equal("1970-01-01T00:00:00.000Z", pxl.iso(0))
    end)
end)
