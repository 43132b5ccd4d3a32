-- Specs for the greet controller, run through the real runtime dispatch.

local testing = require "moonwire.testing"


describe("greet", function()
    local app, ws

    before_each(function()
        app = assert(testing.load_app("."))
        ws = app:connect()
    end)

    it("lists its routes", function()
        assert.same({ "greet.hello", "greet.shout" }, app:routes())
    end)

    it("welcomes a client with its id", function()
        local welcome = ws:sent()[1]
        assert.equal("system", welcome.type)
        assert.equal("connected", welcome.action)
        assert.equal(ws.id, welcome.data.client_id)
        assert.is_number(welcome.ts)
    end)

    it("says hello by name and counts per client", function()
        local reply = ws:request("greet", "hello", { name = "Ada" })
        assert.same({ type = "greet", action = "hello", id = "req-1",
                      data = { message = "Hello, Ada!", count = 1 } }, reply)
        assert.equal(2, ws:request("greet", "hello", { name = "Bob" }).data.count)
        assert.equal(1, app:connect():request("greet", "hello", { name = "Cy" }).data.count)
    end)

    it("rejects a bad name with INVALID_MESSAGE", function()
        for _, name in ipairs({ 42, "", ("x"):rep(65) }) do
            local reply = ws:request("greet", "hello", { name = name })
            assert.equal("error", reply.type)
            assert.equal("INVALID_MESSAGE", reply.error.code)
            assert.matches("name must be", reply.error.message)
        end
        assert.equal("INVALID_MESSAGE", ws:request("greet", "hello").error.code)
    end)

    it("shouts back as an event, then acknowledges", function()
        local out = ws:send('{"type":"greet","action":"shout","data":{"name":"Ada"},"id":7}')
        assert.equal(2, #out)
        assert.same({ message = "HELLO, ADA!" }, out[1].data)
        assert.equal("shouted", out[1].action)
        assert.same({ type = "greet", action = "shout", id = 7, data = { sent = true } }, out[2])
        assert.equal("INVALID_MESSAGE", ws:request("greet", "shout", {}).error.code)
    end)

    it("does not expose private helpers as actions", function()
        assert.equal("NOT_FOUND", ws:request("greet", "_check_name", { name = "x" }).error.code)
    end)

    it("logs connects and disconnects", function()
        ws:request("greet", "hello", { name = "Ada" })
        ws:close(1000, "bye")
        local lines = {}
        for _, entry in ipairs(app:logs("info")) do
            lines[#lines + 1] = entry.message
        end
        assert.matches("client " .. ws.id .. " connected", table.concat(lines, "\n"), 1, true)
        assert.matches("client " .. ws.id .. " left (close 1000 bye), greeted 1 times",
                       table.concat(lines, "\n"), 1, true)
    end)
end)
