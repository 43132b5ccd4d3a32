-- Specs for config.lua: the SERVERCORE_* variables and their defaults, read
-- as the server reads config.lua (a fresh environment per case).

describe("config.lua", function()
    local saved_getenv = os.getenv

    local function load_with(vars)
        os.getenv = function(name) return vars[name] end -- luacheck: ignore 122
        local ok, res = pcall(dofile, "config.lua")
        os.getenv = saved_getenv -- luacheck: ignore 122
        return ok, res
    end

    after_each(function()
        os.getenv = saved_getenv -- luacheck: ignore 122
    end)

    it("has the defaults README.md lists", function()
        local ok, c = load_with({})
        assert.is_true(ok)
        assert.equal(8080, c.port)
        assert.equal("/ws", c.path)
        assert.is_false(c.welcome)
        assert.is_false(c.system_controller)
        assert.equal(1048576, c.max_message_size)
        assert.equal(0, c.max_connections_per_user)
        assert.same({ window_ms = 1000, max_messages = 0 }, c.rate_limit)
        assert.equal(100, c.max_rooms_per_client)
        assert.equal("", c.api_key)
        assert.same({ api_key = "", redis_url = "redis://127.0.0.1:6379/0",
                      redis_prefix = "servercore:", redis_timeout = 5000 }, c.app)
    end)

    it("reads the SERVERCORE_* variables", function()
        local ok, c = load_with({
            SERVERCORE_PORT = "9000", SERVERCORE_WS_PATH = "/socket",
            SERVERCORE_MAX_CONNECTIONS_PER_USER = "3", SERVERCORE_RATE_LIMIT = "20",
            SERVERCORE_API_KEY = "k", SERVERCORE_REDIS_URL = "redis://redis:6379/2",
            SERVERCORE_REDIS_PREFIX = "app:", SERVERCORE_REDIS_TIMEOUT = "250",
            SERVERCORE_MAX_SUBSCRIPTIONS = "0", SERVERCORE_INACTIVE_TIME = "600000",
        })
        assert.is_true(ok)
        assert.equal(9000, c.port)
        assert.equal("/socket", c.path)
        assert.equal(3, c.max_connections_per_user)
        assert.equal(20, c.rate_limit.max_messages)
        assert.equal(0, c.max_rooms_per_client)
        assert.equal(600000, c.inactive_time)
        assert.equal("k", c.api_key)
        assert.same({ api_key = "k", redis_url = "redis://redis:6379/2", redis_prefix = "app:",
                      redis_timeout = 250 }, c.app)
    end)

    it("takes the api key from MOONWIRE_API_KEY first, for the server API and the app alike",
       function()
        local _, c = load_with({ MOONWIRE_API_KEY = "m", SERVERCORE_API_KEY = "s" })
        assert.equal("m", c.api_key)
        assert.equal("m", c.app.api_key)
    end)

    it("stops on a malformed number, naming the variable", function()
        local ok, err = load_with({ SERVERCORE_RATE_LIMIT = "lots" })
        assert.is_false(ok)
        assert.equal("SERVERCORE_RATE_LIMIT: must be an integer of at least 0 (got 'lots')", err)
        ok, err = load_with({ SERVERCORE_REDIS_TIMEOUT = "0" })
        assert.is_false(ok)
        assert.matches("SERVERCORE_REDIS_TIMEOUT: must be an integer of at least 1", err)
        ok = load_with({ SERVERCORE_PORT = "-1" })
        assert.is_false(ok)
    end)
end)
