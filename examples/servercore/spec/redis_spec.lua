-- Specs for the parts of guide 002 that wait on Redis, against a real
-- redis-server (moonwire.testing.redis_server, on a free port):
-- authenticateConnection (a token from the query string or the
-- Authorization header, validated with a timeout; a failed validation
-- leaves the connection allowed but unauthenticated), the permission check
-- of handleSubscribe, the roles the broadcast filter sees, and clean
-- answers while Redis is down or slow. Replies come over real sockets, so
-- specs turn the loop in real time (app:wait) until the answer came.

local testing = require "moonwire.testing"
local cjson = require "cjson"
local h = require "spec.helpers"

local KEY = "s3cret"


describe("servercore with Redis", function()
    local srv, app

    local function load(app_config, config)
        config = config or {}
        config.api_key = KEY
        config.app = { api_key = KEY, redis_url = srv.url, redis_timeout = 1000 }
        for k, v in pairs(app_config or {}) do
            config.app[k] = v
        end
        app = assert(testing.load_app(".", { clock = h.CLOCK, config = config }))
    end

    -- A client with this token (in the query string, or as a bearer token
    -- with how == "header"), once the upgrade was decided: the token is
    -- checked against Redis before the 101.
    local function connect(token, how)
        local info = { path = "/ws" }
        if token and how == "header" then
            info.headers = { Authorization = "Bearer " .. token }
        elseif token then
            info.query = "token=" .. token
        end
        local ws = app:connect(info)
        assert(app:wait(function()
            return ws._c:state() ~= "connecting"
        end), "the upgrade was not decided")
        -- (ws.id and ws.client are set only for an upgrade decided at once:
        -- what the server made of the connection is asked with whoami.)
        ws.status = ws._c:status()
        return ws
    end

    -- Sends a request and waits (real time) for the message answering it.
    local seq = 0
    local function ask(ws, action, payload, ms)
        seq = seq + 1
        local id = "r" .. seq
        ws:send(cjson.encode({ id = id, type = "request", action = action, payload = payload }))
        return assert(ws:wait_reply(id, ms), "no answer to " .. action)
    end

    local function subscribe(ws, topic)
        return ask(ws, "subscribe", { topic = topic })
    end

    local function logged(level, text)
        for _, line in ipairs(app:logs(level)) do
            if line.message:find(text, 1, true) then
                return true
            end
        end
        return false
    end

    local function post(path, body)
        local res = app:request("POST", path, { headers = { Authorization = "apikey " .. KEY },
                                                body = body })
        assert(res.status, "no answer to POST " .. path)
        return res
    end

    local DENIED = { code = "INTERNAL_ERROR", message = "Permission denied" }
    local UNAVAILABLE = { code = "INTERNAL_ERROR", message = "Permission check unavailable" }

    -- README.md, "Redis": tokens, users' roles, topics' roles.
    local function seed()
        srv:cli("FLUSHALL")
        srv:cli("SET", "servercore:token:tok-alice", "alice")
        srv:cli("SADD", "servercore:user:alice:roles", "admin", "user")
        srv:cli("SET", "servercore:token:tok-bob", "bob")
        srv:cli("SADD", "servercore:user:bob:roles", "user")
        srv:cli("SET", "servercore:token:tok-carol", "carol")
        srv:cli("SADD", "servercore:topic:tasks.update:roles", "user", "admin")
        srv:cli("SADD", "servercore:topic:admin.audit:roles", "admin")
        srv:cli("SADD", "servercore:topic:news:roles", "*")
    end

    setup(function()
        srv = assert(testing.redis_server())
    end)

    teardown(function()
        if srv then
            srv:close()
        end
    end)

    before_each(function()
        assert(srv:start())
        seed()
        load()
    end)

    after_each(function()
        if app then
            app:close()
        end
    end)

    describe("authenticateConnection", function()
        it("validates a token from the query string: the connection has its user and roles",
           function()
            local ws = connect("tok-alice")
            assert.equal(101, ws.status)
            assert.same({ authenticated = true, user = "alice", roles = { "admin", "user" } },
                        ask(ws, "whoami").payload)
        end)

        it("validates a bearer token from the Authorization header", function()
            local ws = connect("tok-bob", "header")
            assert.same({ authenticated = true, user = "bob", roles = { "user" } },
                        ask(ws, "whoami").payload)
        end)

        it("lets a connection with an unknown token in, unauthenticated", function()
            local ws = connect("tok-nobody")
            assert.equal(101, ws.status)
            assert.same({ authenticated = false, user = testing.null, roles = {} },
                        ask(ws, "whoami").payload)
        end)

        it("lets a connection without a token in, unauthenticated", function()
            local ws = connect(nil)
            assert.equal(101, ws.status)
            assert.is_false(ask(ws, "whoami").payload.authenticated)
        end)

        it("lets a user without roles in, with none", function()
            assert.same({ authenticated = true, user = "carol", roles = {} },
                        ask(connect("tok-carol"), "whoami").payload)
        end)

        it("lets the connection in unauthenticated when the token key is of the wrong type",
           function()
            srv:cli("DEL", "servercore:token:tok-bob")
            srv:cli("SADD", "servercore:token:tok-bob", "bob")
            local ws = connect("tok-bob")
            assert.equal(101, ws.status)
            assert.is_false(ask(ws, "whoami").payload.authenticated)
            assert.is_true(logged("warn", "WRONGTYPE"))
        end)

        it("follows an expiring token key: once Redis dropped it, it is unknown", function()
            srv:cli("SET", "servercore:token:tok-short", "bob", "PX", "1")
            assert(app:wait(function()
                return srv:cli("EXISTS", "servercore:token:tok-short") == "0"
            end))
            assert.is_false(ask(connect("tok-short"), "whoami").payload.authenticated)
        end)

        it("applies max_connections_per_user to the validated user", function()
            load(nil, { max_connections_per_user = 1 })
            local first = connect("tok-alice")
            local second = connect("tok-alice")
            assert.same({ code = 1008, reason = "too many connections for this user" },
                        second:closed())
            assert.is_nil(first:closed())
            assert.is_nil(connect("tok-bob"):closed())
        end)

        it("reads the keys under app.redis_prefix", function()
            srv:cli("SET", "acme:token:t1", "dave")
            srv:cli("SADD", "acme:user:dave:roles", "ops")
            srv:cli("SADD", "acme:topic:deploys:roles", "ops")
            load({ redis_prefix = "acme:" })
            local ws = connect("t1")
            assert.same({ authenticated = true, user = "dave", roles = { "ops" } },
                        ask(ws, "whoami").payload)
            assert.equal("response", subscribe(ws, "deploys").type)
            assert.is_false(ask(connect("tok-alice"), "whoami").payload.authenticated)
        end)
    end)

    describe("subscribe", function()
        it("subscribes when the user has one of the topic's roles", function()
            local ws = connect("tok-bob")
            local res = subscribe(ws, "tasks.update")
            assert.same({ type = "response", action = "subscribe", id = res.id,
                          payload = { topic = "tasks.update", subscribed = true },
                          metadata = { timestamp = h.CLOCK, version = "1.0.0" } }, res)
            assert.same({ topics = { "tasks.update" } }, ask(ws, "subscriptions").payload)
        end)

        it("refuses with the guide's 'Permission denied' otherwise", function()
            local ws = connect("tok-bob")
            local res = subscribe(ws, "admin.audit")
            assert.same({ type = "error", action = "error", id = res.id, payload = DENIED,
                          metadata = { timestamp = h.CLOCK, version = "1.0.0" } }, res)
            assert.same({ topics = {} }, ask(ws, "subscriptions").payload)
            -- the connection goes on
            assert.equal("response", subscribe(ws, "tasks.update").type)
        end)

        it("refuses a topic that has no roles in Redis", function()
            assert.same(DENIED, subscribe(connect("tok-alice"), "unlisted").payload)
        end)

        it("lets anyone, even without a user, subscribe to a topic open to '*'", function()
            local anonymous = connect(nil)
            assert.equal("response", subscribe(anonymous, "news").type)
            assert.equal("response", subscribe(connect("tok-carol"), "news").type)
            assert.same(DENIED, subscribe(anonymous, "tasks.update").payload)
            assert.same(DENIED, subscribe(connect("tok-carol"), "tasks.update").payload)
        end)

        it("checks the roles Redis holds now: a revoked role is refused", function()
            local ws = connect("tok-bob")
            assert.equal("response", subscribe(ws, "tasks.update").type)
            srv:cli("SREM", "servercore:user:bob:roles", "user")
            assert.same(DENIED, subscribe(ws, "tasks.update").payload)
            srv:cli("SADD", "servercore:user:bob:roles", "admin")
            assert.equal("response", subscribe(ws, "admin.audit").type)
            assert.same({ "admin" }, ask(ws, "whoami").payload.roles)
        end)

        it("refuses a subscription past max_rooms_per_client", function()
            load(nil, { max_rooms_per_client = 1 })
            local ws = connect("tok-alice")
            assert.equal("response", subscribe(ws, "news").type)
            assert.same({ code = "LIMIT_EXCEEDED", message = "Too many subscriptions" },
                        subscribe(ws, "tasks.update").payload)
            -- subscribing again to the same topic is not one more
            assert.equal("response", subscribe(ws, "news").type)
        end)

        it("counts in /health", function()
            local a, b = connect("tok-alice"), connect("tok-bob")
            subscribe(a, "tasks.update")
            subscribe(a, "admin.audit")
            subscribe(b, "tasks.update")
            subscribe(b, "admin.audit")
            assert.same({ healthy = true, connections = 2, rooms = 2,
                          details = { subscriptions = 3 } }, app:request("GET", "/health").json)
        end)
    end)

    describe("the filtered broadcast", function()
        it("reaches the subscribers whose user has one of the roles Redis gave", function()
            local alice, bob, carol, anonymous =
                connect("tok-alice"), connect("tok-bob"), connect("tok-carol"), connect(nil)
            for _, ws in ipairs({ alice, bob, carol, anonymous }) do
                assert.equal("response", subscribe(ws, "news").type)
            end
            local res = post("/broadcast", { topic = "news", data = { headline = "v2" },
                                             filter = { roles = { "admin" } } })
            assert.same({ topic = "news", delivered = 1, dropped = 0 }, res.json)
            assert.same({ headline = "v2" }, h.events(alice)[1].payload)
            for _, ws in ipairs({ bob, carol, anonymous }) do
                assert.same({}, h.events(ws))
            end
            res = post("/broadcast", { topic = "news", data = 2,
                                       filter = { roles = { "user" } } })
            assert.equal(2, res.json.delivered)
            assert.equal(1, #h.events(bob))
            -- without a filter: every subscriber
            assert.equal(4, post("/broadcast", { topic = "news", data = 3 }).json.delivered)
            -- and through the server API
            assert.equal(4, post("/api/publish", { room = "news", data = 4 }).json.delivered)
            assert.same(4, h.events(anonymous)[2].payload)
        end)

        it("sees roles as the last permission check read them", function()
            local bob = connect("tok-bob")
            subscribe(bob, "news")
            srv:cli("SADD", "servercore:user:bob:roles", "admin")
            local filter = { topic = "news", data = 1, filter = { roles = { "admin" } } }
            assert.equal(0, post("/broadcast", filter).json.delivered)
            subscribe(bob, "news")
            assert.equal(1, post("/broadcast", filter).json.delivered)
        end)
    end)

    describe("while Redis is down", function()
        it("answers a subscribe with a clean error, lets tokens in unauthenticated, and "
           .. "serves again once Redis is back", function()
            local bob = connect("tok-bob")
            assert.equal("response", subscribe(bob, "tasks.update").type)
            srv:stop()
            local res = subscribe(bob, "logs")
            assert.same({ type = "error", action = "error", id = res.id, payload = UNAVAILABLE,
                          metadata = { timestamp = h.CLOCK, version = "1.0.0" } }, res)
            assert.is_true(logged("warn", 'permission check for topic "logs" failed'))
            local late = connect("tok-alice")
            assert.equal(101, late.status)
            assert.is_false(ask(late, "whoami").payload.authenticated)
            assert.is_true(logged("warn", "token validation failed"))
            -- what needs no Redis goes on
            assert.equal("response", ask(bob, "ping").type)
            assert.equal(1, app:request("GET", "/health").json.details.subscriptions)
            assert(srv:start())
            seed()
            -- the connection comes back by itself, with backoff
            local back = false
            for _ = 1, 100 do
                back = subscribe(bob, "tasks.update").type == "response"
                if back then
                    break
                end
                app:wait(function() return false end, 100)
            end
            assert.is_true(back)
            assert.is_true(ask(connect("tok-alice"), "whoami").payload.authenticated)
        end)

        it("answers the same with an unusable redis_url, which on_start logs", function()
            load({ redis_url = "http://nowhere" })
            assert.is_true(logged("error", "cannot use app.redis_url: redis url http://nowhere"))
            local ws = connect("tok-alice")
            assert.equal(101, ws.status)
            assert.is_false(ask(ws, "whoami").payload.authenticated)
            assert.same(UNAVAILABLE, subscribe(ws, "news").payload)
        end)

        it("answers the same when Redis does not answer within redis_timeout", function()
            load({ redis_timeout = 200 })
            local bob = connect("tok-bob")
            -- Redis holds every command for 2 s (CLIENT UNPAUSE would be held
            -- too): each call here gives up after 200 ms.
            srv:cli("CLIENT", "PAUSE", "2000", "ALL")
            assert.same(UNAVAILABLE, subscribe(bob, "tasks.update").payload)
            local late = connect("tok-alice")
            assert.equal(101, late.status)
            assert.is_false(ask(late, "whoami").payload.authenticated)
            -- served again once Redis answers
            local back = false
            for _ = 1, 100 do
                back = subscribe(bob, "tasks.update").type == "response"
                if back then
                    break
                end
                app:wait(function() return false end, 100)
            end
            assert.is_true(back)
        end)

        it("lets a subscriber that left while its check waited go without a trace",
           function()
            local bob = connect("tok-bob")
            srv:cli("CLIENT", "PAUSE", "300", "ALL")
            bob:send('{"id":"s","type":"request","action":"subscribe",'
                     .. '"payload":{"topic":"tasks.update"}}')
            bob:drop()
            assert(app:wait(function()
                return app:request("GET", "/health").json.connections == 0
                       and srv:cli("PING") == "PONG"
            end))
            app:wait(function() return false end, 400)
            assert.same({ healthy = true, connections = 0, rooms = 0,
                          details = { subscriptions = 0 } }, app:request("GET", "/health").json)
            assert.same({}, app:logs("error"))
        end)
    end)
end)
