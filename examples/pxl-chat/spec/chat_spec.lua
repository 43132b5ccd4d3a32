-- Specs for controllers/chat.lua and controllers/user.lua: the guide's
-- ChatController (chat.send, chat.typing) and UserController
-- (user.updatePreferences), on the real core through moonwire.testing.

local testing = require "moonwire.testing"
local h = require "spec.helpers"

local CLOCK = h.CLOCK
local ISO = h.ISO


describe("chat", function()
    local app

    before_each(function()
        app = assert(testing.load_app(".", { clock = CLOCK }))
    end)

    describe("send", function()
        it("acknowledges to the sender, then broadcasts the message to everyone", function()
            local a, b = h.connect(app), h.connect(app)
            local out = a:send('{"type":"chat","action":"send",'
                               .. '"data":{"username":"Alice","text":"Hello everyone!"}}')
            local message = { type = "chat", action = "message",
                              data = { username = "Alice", message = "Hello everyone!",
                                       timestamp = ISO } }
            assert.same({ { type = "chat", action = "send",
                            response = { success = true, messageId = CLOCK } },
                          message }, out)
            assert.same({ message }, b:sent())
        end)

        it("writes both with PXL's key order", function()
            local a = h.connect(app)
            a:send('{"type":"chat","action":"send","data":{"username":"Al","text":"hi"}}')
            local frames = a:frames()
            assert.equal('{"type":"chat","action":"send","response":{"success":true,'
                         .. '"messageId":' .. CLOCK .. '}}', frames[1].payload)
            assert.equal('{"type":"chat","action":"message","data":{"username":"Al",'
                         .. '"message":"hi","timestamp":"' .. ISO .. '"}}', frames[2].payload)
        end)

        it("falls back to Anonymous and an empty message, as `||` does", function()
            local a = h.connect(app)
            for _, data in ipairs({ "{}", '{"username":"","text":null}',
                                    '{"username":0,"text":false}' }) do
                local out = a:send('{"type":"chat","action":"send","data":' .. data .. '}')
                assert.same({ username = "Anonymous", message = "", timestamp = ISO },
                            out[2].data)
            end
        end)

        it("forwards the text as the client wrote it", function()
            local a = h.connect(app)
            a:send('{"type":"chat","action":"send","data":{"text":"a\\/b \\u00e9"}}')
            assert.matches('"message":"a\\/b \\u00e9"', h.last_text(a), 1, true)
        end)

        it("gives each acknowledgement Date.now() as its messageId", function()
            local a = h.connect(app)
            app:advance(1500)
            local ack = a:send('{"type":"chat","action":"send","data":{"text":"x"}}')[1]
            assert.equal(app:now(), ack.response.messageId)
        end)
    end)

    describe("typing", function()
        it("tells every other client, not the sender", function()
            local a, b, c = h.connect(app), h.connect(app), h.connect(app)
            local out = a:send('{"type":"chat","action":"typing","data":{"username":"Alice"}}')
            assert.same({ { type = "chat", action = "typing", response = { success = true } } },
                        out)
            local typing = { type = "chat", action = "userTyping", data = { username = "Alice" } }
            assert.same({ typing }, b:sent())
            assert.same({ typing }, c:sent())
            assert.equal('{"type":"chat","action":"userTyping","data":{"username":"Alice"}}',
                         h.last_text(b))
        end)

        it("names an anonymous typist Anonymous", function()
            local a, b = h.connect(app), h.connect(app)
            a:send('{"type":"chat","action":"typing"}')
            assert.same({ username = "Anonymous" }, b:sent()[1].data)
        end)
    end)

    describe("user.updatePreferences", function()
        it("stores the client's preferences as its metadata", function()
            local a = h.connect(app)
            local out = a:send('{"type":"user","action":"updatePreferences",'
                               .. '"data":{"theme":"dark","notifications":true}}')
            assert.same({ { type = "user", action = "updatePreferences",
                            response = { success = true } } }, out)
            assert.equal("dark", a.client.data.preferences.theme)
            assert.is_true(a.client.data.preferences.notifications)
        end)

        it("keeps them across a reload", function()
            local a = h.connect(app)
            a:send('{"type":"user","action":"updatePreferences","data":{"theme":"light"}}')
            assert.is_true(app:reload())
            assert.equal("light", a.client.data.preferences.theme)
            assert.same({ success = true },
                        a:send('{"type":"chat","action":"typing"}')[1].response)
        end)
    end)
end)
