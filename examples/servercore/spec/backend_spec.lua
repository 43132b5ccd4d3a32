-- Specs for what a backend sends (guide 002, "Broadcasting"): events
-- published through the server API (/api/publish and the others, built by
-- protocol.event) and the filtered broadcast of routes.lua (POST
-- /broadcast), over real HTTP requests to the real core. Subscriptions are
-- made here with lib/topics.lua directly and roles set on the connection
-- as authentication would; redis_spec.lua makes them through Redis.

local testing = require "moonwire.testing"
local h = require "spec.helpers"

local KEY = "s3cret"
local AUTH = { Authorization = "apikey " .. KEY }
local EVENT_TEXT = '^{"id":"[%x-]+","type":"event","action":"tasks.update",'
                   .. '"payload":{"taskId":"123", "n":12345678901234567},'
                   .. '"metadata":{"timestamp":' .. h.CLOCK .. ',"version":"1.0.0"}}$'


describe("servercore backends", function()
    local app, topics

    local function load(config)
        app = assert(testing.load_app(".", { clock = h.CLOCK, config = config or {
            api_key = KEY, app = { api_key = KEY } } }))
        topics = require "lib.topics"
    end

    -- A connection subscribed to `topic`, with these roles.
    local function subscriber(topic, roles)
        local ws = h.connect(app)
        assert(topics.subscribe(ws.client, topic))
        ws.client.data.roles = {}
        for _, role in ipairs(roles or {}) do
            ws.client.data.roles[role] = true
        end
        return ws
    end

    local function post(path, body, headers)
        return app:request("POST", path, { headers = headers or AUTH, body = body })
    end

    before_each(function()
        load()
    end)

    after_each(function()
        app:close()
    end)

    describe("POST /api/publish", function()
        it("sends handleBroadcast's event to the topic's subscribers", function()
            local a, b = subscriber("tasks.update"), subscriber("tasks.update")
            local other = subscriber("logs")
            local res = post("/api/publish", '{"room":"tasks.update",'
                                             .. '"data":{"taskId":"123", "n":12345678901234567}}')
            assert.equal(200, res.status)
            assert.same({ room = "tasks.update", delivered = 2, dropped = 0 }, res.json)
            -- the guide's shape and key order, the backend's data as it wrote it
            assert.matches(EVENT_TEXT, h.last_text(a))
            assert.matches(EVENT_TEXT, h.last_text(b))
            local ev = h.events(a)[1]
            assert.matches(h.UUID, ev.id)
            -- one event, one id, for every subscriber
            assert.equal(ev.id, h.events(b)[1].id)
            assert.same({}, other:frames())
        end)

        it("gives every event an id of its own", function()
            local ws = subscriber("tasks.update")
            post("/api/publish", { room = "tasks.update", data = { n = 1 } })
            post("/api/publish", { room = "tasks.update", data = { n = 2 } })
            local events = h.events(ws)
            assert.equal(2, #events)
            assert.not_equal(events[1].id, events[2].id)
            assert.same({ n = 2 }, events[2].payload)
        end)

        it("carries the time of the publish", function()
            local ws = subscriber("tasks.update")
            app:advance(5000)
            post("/api/publish", { room = "tasks.update", data = {} })
            assert.equal(h.CLOCK + 5000, h.events(ws)[1].metadata.timestamp)
        end)

        it("lets a backend name the event's action (its type is always 'event')", function()
            local ws = subscriber("tasks")
            local res = post("/api/publish", { room = "tasks", type = "event",
                                               action = "tasks.progress", data = { p = 50 } })
            assert.equal(200, res.status)
            local ev = h.events(ws)[1]
            assert.equal("event", ev.type)
            assert.equal("tasks.progress", ev.action)
            assert.same({ p = 50 }, ev.payload)
        end)

        it("delivers to nobody for a topic without subscribers", function()
            assert.same({ room = "nobody", delivered = 0, dropped = 0 },
                        post("/api/publish", { room = "nobody", data = 1 }).json)
        end)

        it("requires the api key", function()
            subscriber("tasks.update")
            assert.equal(401, post("/api/publish", { room = "tasks.update", data = 1 }, {}).status)
            assert.equal(401, post("/api/publish", { room = "tasks.update", data = 1 },
                                   { Authorization = "apikey nope" }).status)
        end)
    end)

    describe("the rest of the server API", function()
        it("/api/broadcast sends the event 'broadcast' to every connection", function()
            local a, b = h.connect(app), subscriber("x")
            local res = post("/api/broadcast", { data = { note = "maintenance" } })
            assert.same({ delivered = 2, dropped = 0 }, res.json)
            for _, ws in ipairs({ a, b }) do
                local ev = h.events(ws)[1]
                assert.equal("broadcast", ev.action)
                assert.same({ note = "maintenance" }, ev.payload)
            end
        end)

        it("/api/send sends the event 'message' to a user's connections", function()
            local ws = h.connect(app)
            ws.client:set_user("alice")
            local res = post("/api/send", { user = "alice", data = "hi" })
            assert.same({ delivered = 1 }, res.json)
            local ev = h.events(ws)[1]
            assert.equal("message", ev.action)
            assert.equal("hi", ev.payload)
        end)
    end)

    describe("POST /broadcast (the filtered broadcast)", function()
        it("without a filter, reaches every subscriber of the topic", function()
            local a, b = subscriber("tasks.update"), subscriber("tasks.update", { "admin" })
            local other = subscriber("logs", { "admin" })
            local res = post("/broadcast", '{"topic":"tasks.update",'
                                           .. '"data":{"taskId":"123", "n":12345678901234567}}')
            assert.equal(200, res.status)
            assert.same({ topic = "tasks.update", delivered = 2, dropped = 0 }, res.json)
            assert.matches(EVENT_TEXT, h.last_text(a))
            assert.matches(EVENT_TEXT, h.last_text(b))
            assert.same({}, other:frames())
        end)

        it("with filter.roles, reaches only subscribers whose user has one of them", function()
            local user = subscriber("tasks.update", { "user" })
            local admin = subscriber("tasks.update", { "admin", "ops" })
            local guest = subscriber("tasks.update", { "guest" })
            local anonymous = subscriber("tasks.update")
            local outsider = h.connect(app)
            outsider.client.data.roles = { admin = true }
            local res = post("/broadcast", { topic = "tasks.update",
                                             data = { taskId = "123", status = "completed" },
                                             filter = { roles = { "user", "admin" } } })
            assert.same({ topic = "tasks.update", delivered = 2, dropped = 0 }, res.json)
            for _, ws in ipairs({ user, admin }) do
                local ev = h.events(ws)[1]
                assert.same({ taskId = "123", status = "completed" }, ev.payload)
                assert.equal("tasks.update", ev.action)
                assert.matches(h.UUID, ev.id)
            end
            assert.equal(h.events(user)[1].id, h.events(admin)[1].id)
            for _, ws in ipairs({ guest, anonymous, outsider }) do
                assert.same({}, ws:frames())
            end
            assert.same({ topic = "tasks.update", delivered = 0, dropped = 0 },
                        post("/broadcast", { topic = "tasks.update", data = 1,
                                             filter = { roles = { "root" } } }).json)
            assert.equal(1, #h.events(admin))
        end)

        it("treats a null filter as none", function()
            subscriber("t")
            assert.equal(1, post("/broadcast", '{"topic":"t","data":1,"filter":null}')
                            .json.delivered)
        end)

        it("refuses a request without the api key: 401 with WWW-Authenticate", function()
            local ws = subscriber("t")
            for _, headers in ipairs({ {}, { Authorization = "apikey nope" },
                                       { Authorization = "apikey " .. KEY .. "x" },
                                       { Authorization = "apikey " .. KEY:sub(1, -2) },
                                       { Authorization = "Bearer " .. KEY },
                                       { Authorization = KEY } }) do
                local res = post("/broadcast", { topic = "t", data = 1 }, headers)
                assert.equal(401, res.status)
                assert.equal("apikey", res.headers["www-authenticate"])
                assert.equal("AUTHENTICATION_FAILED", res.json.error.code)
            end
            -- the scheme in any case, then one or more spaces
            assert.equal(200, post("/broadcast", { topic = "t", data = 1 },
                                   { Authorization = "APIKEY   " .. KEY }).status)
            assert.equal(1, #h.events(ws))
        end)

        it("checks the key before reading the body", function()
            assert.equal(401, post("/broadcast", "{not json", {}).status)
        end)

        it("is not served without an api key (404), like the server API", function()
            load({})
            subscriber("t")
            assert.equal(404, post("/broadcast", { topic = "t", data = 1 }).status)
            assert.equal(404, post("/api/publish", { room = "t", data = 1 }).status)
        end)

        it("answers 400 naming what is wrong", function()
            local cases = {
                { "{not json", "malformed JSON" },
                { "[1]", "body: must be a JSON object" },
                { '{"data":1}', "topic: must be a non-empty string of at most 256 bytes" },
                { '{"topic":"","data":1}', "topic: must be" },
                { '{"topic":5,"data":1}', "topic: must be" },
                { '{"topic":"' .. string.rep("t", 257) .. '","data":1}', "topic: must be" },
                { '{"topic":"t"}', "data: required (any JSON value)" },
                { '{"topic":"t","data":1,"filter":[]}', "filter: must be an object" },
                { '{"topic":"t","data":1,"filter":"admin"}', "filter: must be an object" },
                { '{"topic":"t","data":1,"filter":{"users":["a"]}}',
                  "filter: unknown key 'users'" },
                { '{"topic":"t","data":1,"filter":{}}', "filter.roles: must be a non-empty array" },
                { '{"topic":"t","data":1,"filter":{"roles":[]}}', "filter.roles: must be" },
                { '{"topic":"t","data":1,"filter":{"roles":"admin"}}', "filter.roles: must be" },
                { '{"topic":"t","data":1,"filter":{"roles":["admin",5]}}', "filter.roles: must" },
                { '{"topic":"t","data":1,"filter":{"roles":[""]}}', "filter.roles: must be" },
                { '{"topic":"t","data":1,"filter":{"roles":{"a":1}}}', "filter.roles: must be" },
            }
            for _, case in ipairs(cases) do
                local res = post("/broadcast", case[1])
                assert.equal(400, res.status, case[1])
                assert.equal("BAD_REQUEST", res.json.error.code, case[1])
                assert.truthy(res.json.error.message:find(case[2], 1, true),
                              case[1] .. " -> " .. res.json.error.message)
            end
        end)

        it("answers 405 for another method", function()
            local res = app:request("GET", "/broadcast", { headers = AUTH })
            assert.equal(405, res.status)
        end)
    end)
end)
