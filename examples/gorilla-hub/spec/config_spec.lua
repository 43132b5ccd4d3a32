-- Specs for config.lua: the guide's WEBSOCKET_* environment variables and
-- defaults, mapped onto moonwire's options. config.lua is run as the
-- server runs it, with os.getenv answering from a table for the time of
-- the call.

local testing = require "moonwire.testing"


describe("config.lua", function()
    local getenv = os.getenv

    local function load(env)
        os.getenv = function(name) return env[name] end -- luacheck: ignore 122
        local ok, result = pcall(dofile, "config.lua")
        os.getenv = getenv -- luacheck: ignore 122
        if not ok then
            return nil, result
        end
        return result
    end

    it("has the guide's defaults", function()
        local c = assert(load({}))
        assert.same({
            host = "0.0.0.0", port = 8081, path = "/ws", handshake_timeout = 30000,
            max_message_size = 512000, ping_interval = 54000, pong_timeout = 6000,
            max_connections_per_room = 0, max_rooms_per_client = 0, welcome = false,
            system_controller = false, app = { max_connections = 0 },
            shared_dicts = { "hub:64k" },
        }, c)
    end)

    it("reads every WEBSOCKET_* variable of the guide that has a counterpart", function()
        local c = assert(load({
            WEBSOCKET_HOST = "127.0.0.1", WEBSOCKET_PORT = "9000", WEBSOCKET_TIMEOUT = "5s",
            WEBSOCKET_MAX_MESSAGE_SIZE = "65536", WEBSOCKET_PING_INTERVAL = "30s",
            WEBSOCKET_PONG_WAIT = "35s", WEBSOCKET_WRITE_WAIT = "10s",
            WEBSOCKET_LIMITS_MAX_CONNECTIONS = "50000",
            WEBSOCKET_LIMITS_MAX_CONNECTIONS_PER_ROOM = "5000",
        }))
        assert.equal("127.0.0.1", c.host)
        assert.equal(9000, c.port)
        assert.equal(5000, c.handshake_timeout)
        assert.equal(65536, c.max_message_size)
        assert.equal(30000, c.ping_interval)
        assert.equal(5000, c.pong_timeout)
        assert.equal(5000, c.max_connections_per_room)
        assert.equal(50000, c.app.max_connections)
    end)

    it("treats an empty variable as unset", function()
        assert.equal(8081, assert(load({ WEBSOCKET_PORT = "" })).port)
    end)

    it("parses Go durations", function()
        for text, ms in pairs({ ["1m30s"] = 90000, ["1.5m"] = 90000, ["500ms"] = 500,
                                ["2h"] = 7200000, ["1h0m1s"] = 3601000, ["+40s"] = 40000,
                                ["1500000us"] = 1500, ["1500000\194\181s"] = 1500,
                                ["2000000000ns"] = 2000, ["0.5s"] = 500 }) do
            assert.equal(ms, assert(load({ WEBSOCKET_PING_INTERVAL = "1s",
                                           WEBSOCKET_TIMEOUT = text })).handshake_timeout)
        end
        assert.equal(0, assert(load({ WEBSOCKET_TIMEOUT = "0" })).handshake_timeout)
    end)

    it("refuses malformed values, naming the variable", function()
        for name, value in pairs({ WEBSOCKET_PORT = "80a", WEBSOCKET_MAX_MESSAGE_SIZE = "-1",
                                   WEBSOCKET_LIMITS_MAX_CONNECTIONS = "1.5",
                                   WEBSOCKET_PING_INTERVAL = "54", WEBSOCKET_TIMEOUT = "30 s",
                                   WEBSOCKET_PONG_WAIT = "-60s" }) do
            local c, err = load({ [name] = value })
            assert.is_nil(c)
            assert.matches("^" .. name .. ": ", err)
        end
        for _, text in ipairs({ "s", "1x", "1.s5", ".", "1s2", "" }) do
            local _, err = load({ WEBSOCKET_TIMEOUT = text ~= "" and text or "." })
            assert.matches("^WEBSOCKET_TIMEOUT: must be a Go duration", err)
        end
    end)

    it("refuses a pong wait that is not longer than the ping interval", function()
        local _, err = load({ WEBSOCKET_PING_INTERVAL = "60s", WEBSOCKET_PONG_WAIT = "60s" })
        assert.equal("WEBSOCKET_PONG_WAIT: must be longer than WEBSOCKET_PING_INTERVAL", err)
    end)

    it("is a configuration the server accepts", function()
        local app = assert(testing.load_app("."))
        assert.equal("/ws", app.config.path)
        assert.equal(54000, app.config.ping_interval)
        assert.equal(6000, app.config.pong_timeout)
        assert.equal(0, app.config.max_rooms_per_client)
    end)
end)
