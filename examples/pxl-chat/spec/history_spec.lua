-- Specs for the chat history: subscribers/chat-history.lua keeps what
-- chat.send broadcasts in a real redis-server (started on a free port for
-- the spec), chat.history reads it back; and both without Redis.

local testing = require "moonwire.testing"
local cjson = require "cjson"

local CLOCK = 1700000000000
local ISO = "2023-11-14T22:13:20.000Z"


describe("chat history", function()
    local srv, app

    local function connect()
        local ws = app:connect({ path = "/ws" })
        assert.equal(101, ws.status)
        return ws
    end

    local function say(ws, text)
        ws:send(cjson.encode({ type = "chat", action = "send",
                               data = { username = "ann", text = text } }))
    end

    -- chat.history's answer, once Redis replied.
    local function history(ws)
        ws:send('{"type":"chat","action":"history"}')
        local answer
        assert.is_true(app:wait(function()
            for _, m in ipairs(ws:sent()) do
                if m.action == "history" then
                    answer = m.response
                end
            end
            return answer ~= nil
        end))
        return answer
    end

    local function stored()
        return tonumber(srv:cli("LLEN", "pxl-chat:history"))
    end

    setup(function()
        srv = assert(testing.redis_server())
    end)

    teardown(function()
        srv:close()
    end)

    before_each(function()
        srv:cli("DEL", "pxl-chat:history")
        app = assert(testing.load_app(".", { clock = CLOCK, config = {
            redis_url = srv.url, app = { redis_url = srv.url, history_size = 3 } } }))
    end)

    it("keeps the last messages, and chat.history gives them oldest first", function()
        local a = connect()
        for i = 1, 4 do
            say(a, "m" .. i)
            assert.is_true(app:wait(function() return stored() == math.min(i, 3) end))
        end
        local answer = history(connect())
        assert.is_true(answer.success)
        assert.same({
            { username = "ann", message = "m2", timestamp = ISO },
            { username = "ann", message = "m3", timestamp = ISO },
            { username = "ann", message = "m4", timestamp = ISO },
        }, answer.messages)
    end)

    it("answers an empty history with []", function()
        local ws = connect()
        assert.same({ success = true, messages = {} }, history(ws))
        local frames = ws:frames()
        assert.equal('{"type":"chat","action":"history","response":{"success":true,'
                     .. '"messages":[]}}', frames[#frames].payload)
    end)

    it("keeps nothing and answers unavailable without Redis", function()
        app = assert(testing.load_app(".", { clock = CLOCK }))
        local a = connect()
        say(a, "lost")
        assert.same({ success = false, error = "History is not available" },
                    a:send('{"type":"chat","action":"history"}')[1].response)
        assert.equal(0, stored())
    end)

    it("answers unavailable while Redis is down, and logs why", function()
        local a = connect()
        srv:stop()
        assert.same({ success = false, error = "History is not available" }, history(a))
        local lines = app:logs("warn")
        assert.matches("chat.history: ", lines[#lines].message, 1, true)
        assert.truthy(srv:start())
    end)
end)
