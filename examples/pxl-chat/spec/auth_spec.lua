-- Specs for app.lua's authentication (the guide's "Authentication Flow")
-- and config.lua's inactive-client settings, on the real core through
-- moonwire.testing, with tokens signed by moonwire.jwt.

local testing = require "moonwire.testing"
local jwt = require "moonwire.jwt"

local CLOCK = 1700000000000
local SECRET = "test-secret-key-of-32-bytes-or-more!"
-- The setting holds the key as PXL's JWK `k`: base64url.
local SETTING = jwt.b64url_encode(SECRET)


describe("authentication", function()
    local app

    local function token(claims, secret)
        return assert(jwt.sign(claims, { secret = secret or SECRET }))
    end

    local function connect(query)
        return app:connect({ path = "/ws", query = query })
    end

    before_each(function()
        app = assert(testing.load_app(".", { clock = CLOCK,
                                             config = { app = { jwt_secret_key = SETTING } } }))
    end)

    it("lets a client without a token in, unauthenticated", function()
        local ws = connect()
        assert.equal(101, ws.status)
        assert.is_nil(ws.client.user)
        assert.is_nil(ws.client.auth)
        assert.same({}, ws:sent())
        assert.equal(101, connect("token=").status)
    end)

    it("takes the user id from sub, and says so first thing", function()
        local ws = connect("token=" .. token({ sub = "42", email = "a@example.com" }))
        assert.equal(101, ws.status)
        assert.equal(42, ws.client.user)
        assert.equal(42, ws.client.auth.userId)
        assert.equal("a@example.com", ws.client.auth.payload.email)
        assert.same({ { type = "auth", action = "authenticated",
                        data = { userId = 42, message = "Authentication successful" } } },
                    ws:sent())
        assert.equal('{"type":"auth","action":"authenticated","data":{"userId":42,'
                     .. '"message":"Authentication successful"}}', ws:frames()[1].payload)
    end)

    it("reads sub as parseInt does", function()
        for sub, id in pairs({ ["7"] = 7, [" 12abc"] = 12, ["-3"] = -3 }) do
            assert.equal(id, connect("token=" .. token({ sub = sub })).client.user)
        end
        assert.equal(9, connect("token=" .. token({ sub = 9.75 })).client.user)
    end)

    it("refuses an invalid token with 401", function()
        local cases = {
            ["not-a-jwt"] = "JWT verification failed: malformed token",
            [token({ sub = "1" }, "another-secret")] = "JWT verification failed: invalid signature",
            [token({ sub = "1", exp = os.time() - 60 })] = "JWT verification failed: token expired",
            [token({ sub = "abc" })] = "JWT verification failed: Invalid user ID in token",
            [token({ name = "no sub" })] = "JWT verification failed: Invalid user ID in token",
        }
        for t, reason in pairs(cases) do
            local ws = connect("token=" .. t)
            assert.equal(401, ws.status)
            assert.is_nil(ws.id)
            assert.equal(reason, ws.reason)
        end
    end)

    it("refuses any token when no secret key is configured", function()
        app = assert(testing.load_app(".", { clock = CLOCK,
                                             config = { app = { jwt_secret_key = "" } } }))
        assert.equal(401, connect("token=" .. token({ sub = "1" })).status)
        assert.equal(101, connect().status)
    end)

    it("takes the secret key as PXL's JWK k (base64url), and says when it is not", function()
        -- signed with the setting's text itself, not its decoding: refused
        assert.equal(401, connect("token=" .. token({ sub = "1" }, SETTING)).status)
        app:close()
        app = assert(testing.load_app(".", { clock = CLOCK,
                                             config = { app = { jwt_secret_key = "change-me" } } }))
        local ws = connect("token=" .. token({ sub = "1" }, "change-me"))
        assert.equal(401, ws.status)
        assert.equal("JWT verification failed: JWT secret key is not base64url", ws.reason)
    end)

    it("reads the token from the query string only", function()
        local ws = app:connect({ path = "/ws", headers = {
            authorization = "Bearer " .. token({ sub = "5" }) } })
        assert.equal(101, ws.status)
        assert.is_nil(ws.client.user)
    end)

    it("keeps a connection whose token expires (PXL checks at the upgrade only)", function()
        -- On a clock that starts now, as jwt.verify's does.
        app = assert(testing.load_app(".", { config = { app = { jwt_secret_key = SETTING } } }))
        local ws = connect("token=" .. token({ sub = "1", exp = os.time() + 10 }))
        assert.equal(101, ws.status)
        app:advance(20000)
        assert.is_nil(ws:closed())
    end)
end)


describe("inactive clients", function()
    it("are checked as the guide's config says: 5 minutes, every minute", function()
        local app = assert(testing.load_app(".", { clock = CLOCK }))
        assert.equal(300000, app.config.inactive_time)
        assert.equal(60000, app.config.inactive_check_interval)
    end)

    it("are closed after inactiveTime without a message; others stay", function()
        local app = assert(testing.load_app(".", { clock = CLOCK, config = {
            inactive_time = 3000, inactive_check_interval = 1000 } }))
        local idle = app:connect({ path = "/ws" })
        local busy = app:connect({ path = "/ws" })
        for _ = 1, 5 do
            app:advance(1000)
            busy:send('{"type":"chat","action":"typing"}')
        end
        assert.same({ code = 1000, reason = "inactive" }, idle:closed())
        assert.is_nil(busy:closed())
        app:advance(5000)
        assert.same({ code = 1000, reason = "inactive" }, busy:closed())
    end)

    it("are kept when the check is off", function()
        local app = assert(testing.load_app(".", { clock = CLOCK,
                                                   config = { inactive_time = 0 } }))
        local idle = app:connect({ path = "/ws" })
        app:advance(10000)
        assert.is_nil(idle:closed())
    end)
end)
