-- Specs for the echo example: every frame comes back byte-identical.

local testing = require "moonwire.testing"


describe("echo", function()
    local app, ws

    before_each(function()
        app = assert(testing.load_app("."))
        ws = app:connect({ path = "/any/path" })
    end)

    it("sends no welcome", function()
        assert.same({}, ws:frames())
    end)

    it("echoes text unchanged, JSON or not", function()
        local texts = { "hello", "", '{"type":"x"}', "not json {", "h\195\169llo \226\130\172" }
        for _, text in ipairs(texts) do
            ws:send(text, false)
            assert.same({ payload = text, binary = false }, ws:frames()[#ws:frames()])
        end
        assert.equal(5, #ws:frames())
    end)

    it("echoes binary unchanged, including bytes that are not UTF-8", function()
        local bytes = "\0\1\2\255\254" .. ("\128"):rep(10)
        ws:send(bytes, true)
        assert.same({ { payload = bytes, binary = true } }, ws:frames())
    end)

    it("echoes a 1 MiB text message byte for byte", function()
        local chunk = "0123456789abcdef\195\169"
        local text = chunk:rep(math.floor(1024 * 1024 / #chunk))
        text = text .. ("z"):rep(1024 * 1024 - #text)
        assert.equal(1024 * 1024, #text)
        ws:send(text, false)
        local frame = ws:frames()[1]
        assert.is_false(frame.binary)
        assert.equal(#text, #frame.payload)
        assert.is_true(frame.payload == text)
    end)

    it("routes everything to echo.echo", function()
        assert.same({ "echo.echo" }, app:routes())
    end)
end)
