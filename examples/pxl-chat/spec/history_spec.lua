-- Specs for the chat history: subscribers/chat-history.lua keeps what
-- chat.send broadcasts in a real redis-server (started on a free port for
-- the spec), chat.history reads it back; and both without Redis.

local testing = require "moonwire.testing"
local h = require "spec.helpers"
local cjson = require "cjson"

local CLOCK = h.CLOCK
local ISO = h.ISO


describe("chat history", function()
    local srv, app

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

    -- Turns the loop (Redis replies are real I/O) and moves the virtual
    -- clock (the retries' delays) until fn() is true.
    local function until_true(fn)
        for _ = 1, 100 do
            if app:wait(fn, 100) then
                return
            end
            app:advance(50)
        end
        assert.is_true(fn())
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
        local a = h.connect(app)
        for i = 1, 4 do
            say(a, "m" .. i)
            assert.is_true(app:wait(function() return stored() == math.min(i, 3) end))
        end
        local answer = history(h.connect(app))
        assert.is_true(answer.success)
        assert.same({
            { username = "ann", message = "m2", timestamp = ISO },
            { username = "ann", message = "m3", timestamp = ISO },
            { username = "ann", message = "m4", timestamp = ISO },
        }, answer.messages)
    end)

    it("answers an empty history with []", function()
        local ws = h.connect(app)
        assert.same({ success = true, messages = {} }, history(ws))
        local frames = ws:frames()
        assert.equal('{"type":"chat","action":"history","response":{"success":true,'
                     .. '"messages":[]}}', frames[#frames].payload)
    end)

    it("keeps nothing and answers unavailable without Redis", function()
        app = assert(testing.load_app(".", { clock = CLOCK }))
        local a = h.connect(app)
        say(a, "lost")
        assert.same({ success = false, error = "History is not available" },
                    a:send('{"type":"chat","action":"history"}')[1].response)
        assert.equal(0, stored())
    end)

    it("refuses a chat.message without a timestamp, naming the field", function()
        assert.equal(1, app:emit("chat.message", { username = "x", message = "y" }))
        assert.equal(0, stored())
        local lines = app:logs("warn")
        assert.matches("chatHistory: subscriber chatHistory on chat.message failed: "
                       .. "message.timestamp: required", lines[#lines].message, 1, true)
    end)

    it("leaves a message sent on another node to that node (one copy across nodes)",
       function()
        -- Across nodes every node's chatHistory gets each chat.message;
        -- chat.send names its node, and only that node keeps it.
        assert.equal(1, app:emit("chat.message", { username = "x", message = "there",
                                                   timestamp = ISO, node = "elsewhere" }))
        app:emit("chat.message", { username = "x", message = "here", timestamp = ISO })
        assert.is_true(app:wait(function() return stored() == 1 end))
        assert.same({ { username = "x", message = "here", timestamp = ISO } },
                    history(h.connect(app)).messages)
    end)

    it("retries a push Redis refuses, then logs the last error", function()
        -- A list key holding a string: every LPUSH fails with WRONGTYPE.
        srv:cli("SET", "pxl-chat:history", "not a list")
        app:emit("chat.message", { username = "x", message = "y", timestamp = ISO })
        local function failed()
            for _, line in ipairs(app:logs("warn")) do
                if line.message:find("chatHistory: subscriber chatHistory on chat.message "
                                     .. "failed: LPUSH: WRONGTYPE", 1, true) then
                    return true
                end
            end
            return false
        end
        -- Each retry waits (100 ms, then 200 ms) on the virtual clock,
        -- moved here until the last attempt failed.
        until_true(failed)
        local retries = 0
        for _, line in ipairs(app:logs("warn")) do
            if line.message:find("retry", 1, true) then
                retries = retries + 1
            end
        end
        assert.equal(2, retries)
    end)

    it("stores a message once Redis accepts it again within the retries", function()
        srv:cli("SET", "pxl-chat:history", "not a list")
        app:emit("chat.message", { username = "x", message = "late", timestamp = ISO })
        -- The first attempt failed (its retry warning is logged): make the
        -- key a list again before the retry.
        assert.is_true(app:wait(function()
            for _, line in ipairs(app:logs("warn")) do
                if line.message:find("retry", 1, true) then
                    return true
                end
            end
            return false
        end))
        srv:cli("DEL", "pxl-chat:history")
        until_true(function() return stored() == 1 end)
    end)

    it("answers unavailable while Redis is down, and logs why", function()
        local a = h.connect(app)
        srv:stop()
        assert.same({ success = false, error = "History is not available" }, history(a))
        local lines = app:logs("warn")
        assert.matches("chat.history: ", lines[#lines].message, 1, true)
        assert.truthy(srv:start())
    end)
end)
