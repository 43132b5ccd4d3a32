-- Specs for moonwire.auth and the runtime's authentication flow (upgrade,
-- auth message, refresh, expiry, authorize), on the real core: expiries
-- and timeouts are the core's deadlines, run by advancing its clock.
-- Real JWTs are signed with moonwire.jwt.sign (HS256: the real C code).

local tmpdir = require "support.tmpdir"
local testing = require "moonwire.testing"
local auth = require "moonwire.auth"
local cjson = require "cjson"


describe("moonwire.auth", function()
    describe("token_from_request", function()
        it("reads ?token=, percent-decoded, among other parameters", function()
            assert.equal("a b/c", auth.token_from_request({ query = "x=1&token=a%20b%2Fc&y=2" }))
            assert.equal("t", auth.token_from_request({ query = "token=t" }))
        end)

        it("reads Authorization: Bearer, any case of the scheme", function()
            assert.equal("abc", auth.token_from_request({ query = "",
                headers = { authorization = "bearer abc" } }))
            assert.is_nil(auth.token_from_request({ headers = { authorization = "Basic abc" } }))
        end)

        it("is nil without one, or with an empty token", function()
            assert.is_nil(auth.token_from_request({ query = "", headers = {} }))
            assert.is_nil(auth.token_from_request({ query = "token=" }))
        end)
    end)

    describe("authenticate with a hook", function()
        local function app(hook) return { hooks = { authenticate = hook } } end

        it("takes a table with id, a table with sub, or a plain id", function()
            assert.same({ id = "u", x = 1 },
                        auth.authenticate(app(function() return { id = "u", x = 1 } end), nil, {}))
            assert.equal("s",
                         auth.authenticate(app(function() return { sub = "s" } end), nil, {}).id)
            assert.same({ id = 7 }, auth.authenticate(app(function() return 7 end), nil, {}))
        end)

        it("no credential is false; nil, err is a refusal with the message", function()
            assert.is_false(auth.authenticate(app(function() return nil end), nil, {}))
            local user, err = auth.authenticate(app(function() return nil, "nope" end), nil, {})
            assert.is_nil(user)
            assert.equal("nope", err)
        end)

        it("a raise or a user without id refuses (never fails open), and is logged", function()
            local dir = tmpdir.new()
            local harness = assert(testing.load_app(dir))
            local before = #harness:logs("error")
            local user, err = auth.authenticate(app(function() error("boom") end), nil, {})
            assert.is_nil(user)
            assert.equal("authentication failed", err)
            assert.is_nil((auth.authenticate(app(function() return { name = "x" } end), nil, {})))
            assert.equal(before + 2, #harness:logs("error"))
            tmpdir.remove(dir)
        end)
    end)

    describe("authenticate with JWT options", function()
        local jwt = require "moonwire.jwt"
        local opts = { secret = "k" }

        it("verifies, and the user id is sub", function()
            local token = jwt.sign({ sub = "alice", exp = os.time() + 60 }, { secret = "k" })
            local user = auth.authenticate({ hooks = {} }, opts, { token = token })
            assert.equal("alice", user.id)
        end)

        it("refuses a bad token with jwt's reason; no token is no credential", function()
            local token = jwt.sign({ sub = "a", exp = os.time() - 60 }, { secret = "k" })
            assert.same({ nil, "token expired" },
                        { auth.authenticate({ hooks = {} }, opts, { token = token }) })
            assert.is_false(auth.authenticate({ hooks = {} }, opts, {}))
            assert.is_false(auth.authenticate({ hooks = {} }, false, { token = token }))
        end)

        it("builds options from the config, reading the key file once", function()
            assert.is_false(auth.jwt_options({ jwt_secret = "", jwt_public_key = "" }))
            local o = auth.jwt_options({ jwt_secret = "s", jwt_public_key = "", jwt_issuer = "i",
                                         jwt_audience = "", jwt_leeway = 5, jwt_algorithms = {} })
            assert.same({ secret = "s", issuer = "i", leeway = 5 }, o)
            local ok, err = auth.jwt_options({ jwt_public_key = "/nonexistent.pem" })
            assert.is_nil(ok)
            assert.matches("^jwt_public_key: ", err)
        end)
    end)

    describe("authorize", function()
        it("allows without a hook; a false answer is AUTHORIZATION_FAILED", function()
            assert.is_true(auth.authorize({ hooks = {} }, {}, "join", "r"))
            local app = { hooks = { authorize = function(_, action, room)
                return action == "join" and room == "ok", "only ok"
            end } }
            assert.is_true(auth.authorize(app, {}, "join", "ok"))
            local ok, err = auth.authorize(app, {}, "join", "no")
            assert.is_nil(ok)
            assert.same({ code = "AUTHORIZATION_FAILED", message = "only ok" }, err)
        end)

        it("a raising hook refuses", function()
            local hooks = { authorize = function() error("x") end }
            local ok = auth.authorize({ hooks = hooks }, {}, "join", "r")
            assert.is_nil(ok)
        end)
    end)

    it("ms_until_expiry counts from the core's clock", function()
        local dir = tmpdir.new()
        assert(testing.load_app(dir, { clock = 1000000 }))
        assert.equal(5000, auth.ms_until_expiry({ exp = 1005 }))
        assert.equal(0, auth.ms_until_expiry({ exp = 10 }))
        assert.is_nil(auth.ms_until_expiry({}))
        tmpdir.remove(dir)
    end)
end)


describe("runtime authentication", function()
    local dir, app

    local HOOK = [[
local M = {}
function M.authenticate(request)
    if request.token == nil then return nil end
    local name, exp = request.token:match("^([%w]+):?(%d*)$")
    if not name then return nil, "unknown token" end
    return { id = name, exp = exp ~= "" and tonumber(exp) or nil, via = request.via }
end
return M
]]

    -- The clock starts at 1000 s: "bob:1060" expires in 60 s.
    local function start(config)
        app = assert(testing.load_app(dir, { config = config, clock = 1000000 }))
    end

    local function auth_message(ws, token)
        return ws:send(cjson.encode({ type = "auth", token = token }))
    end

    before_each(function()
        dir = tmpdir.new()
        tmpdir.write(dir, "app.lua", HOOK)
        tmpdir.write(dir, "controllers/t.lua",
                     "return { who = function(c) return { user = c.user } end }")
    end)

    after_each(function() tmpdir.remove(dir) end)

    it("refuses the upgrade with 401 and creates no client", function()
        start({ welcome = false })
        local ws = app:connect({ query = "token=%21bad" })
        assert.equal(401, ws.status)
        assert.equal("unknown token", ws.reason)
        assert.is_nil(ws.id)
        assert.is_nil(next(app.runtime._clients))
    end)

    it("auth_at_upgrade refuses a client without a credential", function()
        start({ auth_at_upgrade = true })
        local ws = app:connect()
        assert.same({ 401, "authentication required" }, { ws.status, ws.reason })
    end)

    it("binds the user, and the core closes the client when its token expires", function()
        start({ welcome = false })
        local ws = app:connect({ query = "token=bob:1060" })
        assert.equal("bob", ws.client.user)
        assert.equal("upgrade", ws.client.auth.via)
        app:advance(59999)
        assert.is_nil(ws:closed())
        app:advance(1)
        assert.same({ code = 1008, reason = "token expired" }, ws:closed())
    end)

    it("require_auth: refusals until the auth message, then the event", function()
        start({ require_auth = true, auth_timeout = 2500, welcome = false })
        local ws = app:connect()
        assert.equal("AUTHENTICATION_FAILED", ws:request("t", "who").error.code)
        local ev = auth_message(ws, "carol")[1]
        assert.same({ "system", "authenticated", "carol" }, { ev.type, ev.action, ev.data.user_id })
        assert.same({ user = "carol" }, ws:request("t", "who").data)
        app:advance(5000) -- no exp: the authentication timeout was cancelled
        assert.is_nil(ws:closed())
    end)

    it("require_auth: the core closes a client that never authenticates", function()
        start({ require_auth = true, auth_timeout = 2500, welcome = false })
        local ws = app:connect()
        app:advance(2400)
        assert.is_nil(ws:closed())
        app:advance(100)
        assert.same({ code = 1008, reason = "authentication timeout" }, ws:closed())
    end)

    it("refresh keeps the user; another user's token fails and closes 1008", function()
        start({ welcome = false })
        local ws = app:connect({ query = "token=dan:1010" })
        auth_message(ws, "dan:1100")
        app:advance(20000) -- past the first token's expiry: the refresh moved it
        assert.is_nil(ws:closed())
        local out = auth_message(ws, "eve")
        assert.equal("AUTHENTICATION_FAILED", out[1].error.code)
        assert.same({ code = 1008, reason = "authentication failed" }, ws:closed())
    end)
end)
