-- Specs for moonwire.client: sending through the current protocol. The
-- client object under test is made here, with a host of the spec's own,
-- for a real connection of a server on the real core: what it sends is
-- what that connection's peer receives.

local tmpdir = require "support.tmpdir"
local testing = require "moonwire.testing"
local client = require "moonwire.client"
local protocol = require "moonwire.protocol"
local cjson = require "cjson"


describe("moonwire.client", function()
    local dir, app, ws, host, c

    before_each(function()
        dir = tmpdir.new()
        app = assert(testing.load_app(dir, { config = { welcome = false }, clock = 42 }))
        ws = app:connect()
        host = { app = { protocol = protocol } }
        c = client.new(ws.id, {
            remote_addr = "10.0.0.1", remote_port = 5000, path = "/ws", query = "a=1",
            headers = { ["user-agent"] = "spec" }, subprotocol = "chat",
        }, host)
    end)

    after_each(function()
        tmpdir.remove(dir)
    end)

    it("exposes id, address and request", function()
        assert.equal(ws.id, c.id)
        assert.equal("10.0.0.1", c.remote_addr)
        assert.same({ path = "/ws", query = "a=1", headers = { ["user-agent"] = "spec" },
                      subprotocol = "chat" }, c.request)
        assert.same({}, c.data)
    end)

    it("encodes tables with the protocol", function()
        assert.is_true(c:send({ a = 1 }))
        assert.same({ { payload = '{"a":1}', binary = false } }, ws:frames())
    end)

    it("sends strings raw, as text or binary", function()
        assert.is_true(c:send("raw"))
        assert.is_true(c:send("\255\0", { binary = true }))
        assert.same({ { payload = "raw", binary = false }, { payload = "\255\0", binary = true } },
                    ws:frames())
    end)

    it("passes core failures through", function()
        local ok, err = c:send("\255")
        assert.is_nil(ok)
        assert.equal("invalid utf-8", err)
        ws:close()
        ok, err = c:send("x")
        assert.is_nil(ok)
        assert.equal("closed", err)
    end)

    it("returns nil, err when encoding fails, even if encode raises", function()
        local ok, err = c:send({ f = print })
        assert.is_nil(ok)
        assert.matches("^encode failed: ", err)
        host.app = { protocol = { encode = function() error("boom") end } }
        ok, err = c:send({})
        assert.is_nil(ok)
        assert.matches("^encode failed: .*boom", err)
    end)

    it("looks the protocol up at call time", function()
        host.app = { protocol = {
            encode = function(v) return "v=" .. v.x, true end,
            event = function(t, a) return { x = t .. "." .. a } end,
        } }
        assert.is_true(c:send({ x = "1" }))
        assert.is_true(c:emit("chat", "joined", {}))
        assert.same({ { payload = "v=1", binary = true },
                      { payload = "v=chat.joined", binary = true } }, ws:frames())
    end)

    it("emits protocol events, stamped by the server's clock", function()
        assert.is_true(c:emit("chat", "message", { text = "hi" }))
        assert.same({ type = "chat", action = "message", data = { text = "hi" }, ts = 42 },
                    cjson.decode(ws:frames()[1].payload))
    end)

    it("closes through the core and then reports closed", function()
        assert.is_true(c:close(4000, "bye"))
        assert.same({ code = 4000, reason = "bye" }, ws:closed())
        local ok, err = c:close()
        assert.is_nil(ok)
        assert.equal("closed", err)
    end)

    it("refuses to send once disconnected", function()
        c._closed = true
        local ok, err = c:send("x")
        assert.is_nil(ok)
        assert.equal("closed", err)
        assert.same({}, ws:frames())
    end)

    it("raises on misuse", function()
        assert.error_matches(function() c:send(42) end, "table or string expected")
        assert.error_matches(function() c:close(1005) end, "close code")
        assert.error_matches(function() c:close(1000, ("x"):rep(124)) end, "at most 123 bytes")
        assert.error_matches(function() c:emit("chat") end, "type and action")
        assert.error_matches(function() client.new("1", {}, host) end, "number expected")
        assert.error_matches(function() c:join("r") end, "no rooms manager")
    end)

    it("has public metadata and a user that works without a rooms manager", function()
        assert.same({}, c.public)
        assert.is_true(c:set_user("u1"))
        assert.equal("u1", c.user)
        c.user = nil
        assert.is_nil(c.user)
        c.other = 1                 -- other fields are plain
        assert.equal(1, rawget(c, "other"))
    end)

    it("gives its user as events carry it: the id, or JSON null when unbound", function()
        assert.equal(cjson.null, c:user_or_null())
        c:set_user(42)
        assert.equal(42, c:user_or_null())
        c.user = "ann"
        assert.equal("ann", c:user_or_null())
        assert.equal('{"user":"ann"}', cjson.encode({ user = c:user_or_null() }))
        c:set_user(nil)
        assert.equal('{"user":null}', cjson.encode({ user = c:user_or_null() }))
    end)
end)
