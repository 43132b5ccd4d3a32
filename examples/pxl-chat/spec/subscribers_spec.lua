-- Specs for subscribers/*.lua on the real core through moonwire.testing:
-- events emitted as a backend does (POST /api/emit) or as the server does
-- (client.joined, client.left), and what the clients get.

local testing = require "moonwire.testing"
local h = require "spec.helpers"
local cjson = require "cjson"

local CLOCK = h.CLOCK
local API_KEY = "k3y"


describe("subscribers", function()
    local app

    local function join(ws, room, username)
        local out = ws:send(cjson.encode({ type = "system", action = "joinRoom",
                                           data = { roomName = room, username = username } }))
        for _, m in ipairs(out) do
            if m.action == "joinRoom" then
                assert.is_true(m.response.success)
            end
        end
    end

    -- The messages of one type (and action) ws got.
    local function got(ws, type_, action)
        local out = {}
        for _, m in ipairs(ws:sent()) do
            if m.type == type_ and (action == nil or m.action == action) then
                out[#out + 1] = m
            end
        end
        return out
    end

    -- What a backend does: POST /api/emit with the API key.
    local function emit(channel, message)
        return app:request("POST", "/api/emit", {
            headers = { authorization = "apikey " .. API_KEY },
            body = { channel = channel, message = message },
        })
    end

    before_each(function()
        app = assert(testing.load_app(".", { clock = CLOCK, config = { api_key = API_KEY } }))
    end)

    it("are the app's four, queueDashboard first", function()
        local names = {}
        for i, s in ipairs(app:subscribers()) do
            names[i] = s.name
        end
        assert.same({ "queueDashboard", "announcements", "chatHistory", "clientActivity",
                      "roomStatus" }, names)
        assert.equal(20, app:subscribers()[1].priority)
    end)

    describe("queueDashboard", function()
        it("forwards job.completed and job.error from the server API to the dashboard room",
           function()
            local dash, other = h.connect(app), h.connect(app)
            join(dash, "queue:dashboard", "ops")
            local res = emit("job.completed", { jobId = "j-1", queue = "emails",
                                                result = { sent = 3 } })
            assert.equal(200, res.status)
            assert.same({ channel = "job.completed", subscribers = 1 }, res.json)
            emit("job.error", { jobId = "j-2", queue = "emails", error = "SMTP down" })
            assert.same({
                { type = "queue", action = "done",
                  data = { jobId = "j-1", queue = "emails", result = { sent = 3 } } },
                { type = "queue", action = "errored",
                  data = { jobId = "j-2", queue = "emails", error = "SMTP down" } },
            }, got(dash, "queue"))
            assert.same({}, got(other, "queue"))
        end)

        it("forwards the backend's JSON as it was written", function()
            local dash = h.connect(app)
            join(dash, "queue:dashboard")
            app:request("POST", "/api/emit", {
                headers = { authorization = "apikey " .. API_KEY },
                body = '{"channel":"job.completed","message":{"jobId":12345678901234567,'
                       .. '"note":"a\\/b"}}',
            })
            local frames = dash:frames()
            assert.equal('{"type":"queue","action":"done","data":{"jobId":12345678901234567,'
                         .. '"note":"a\\/b"}}', frames[#frames].payload)
        end)

        it("refuses a job event without a jobId, naming the field", function()
            local dash = h.connect(app)
            join(dash, "queue:dashboard")
            emit("job.completed", { queue = "emails" })
            assert.same({}, got(dash, "queue"))
            local lines = app:logs("warn")
            assert.matches("queueDashboard: subscriber queueDashboard on job.completed failed: "
                           .. "message.jobId: required", lines[#lines].message, 1, true)
        end)

        it("uses app.queue_room when set", function()
            app = assert(testing.load_app(".", { clock = CLOCK, config = {
                api_key = API_KEY, app = { queue_room = "ops" } } }))
            local dash = h.connect(app)
            join(dash, "ops")
            emit("job.completed", { jobId = 1 })
            assert.equal(1, #got(dash, "queue", "done"))
        end)
    end)

    describe("roomStatus", function()
        it("tells the other members who joined and who left, with the name they joined as",
           function()
            local a, b = h.connect(app), h.connect(app)
            join(a, "chat:general", "alice")
            join(b, "chat:general", "bob")
            assert.same({ { type = "room", action = "memberJoined",
                            data = { roomName = "chat:general", username = "bob",
                                     count = 2 } } }, got(a, "room"))
            assert.same({}, got(b, "room"))
            b:send('{"type":"system","action":"leaveRoom","data":{"roomName":"chat:general"}}')
            assert.same({ roomName = "chat:general", username = "bob", count = 1 },
                        got(a, "room", "memberLeft")[1].data)
            join(b, "chat:general", "bob")
            b:close()
            assert.equal(2, #got(a, "room", "memberLeft"))
            assert.equal(1, got(a, "room", "memberLeft")[2].data.count)
        end)

        it("tells the room a member moved out of (clientCanJoinMultipleRooms: false)", function()
            app = assert(testing.load_app(".", { clock = CLOCK, config = {
                client_can_join_multiple_rooms = false } }))
            local a, b = h.connect(app), h.connect(app)
            join(a, "one", "alice")
            join(b, "one", "bob")
            join(b, "two", "bob")
            assert.same({ roomName = "one", username = "bob", count = 1 },
                        got(a, "room", "memberLeft")[1].data)
        end)
    end)

    describe("clientActivity", function()
        it("tells the activity room about connects, joins, leaves and disconnects", function()
            local watch = h.connect(app)
            join(watch, "clients:activity", "ops")
            local a = h.connect(app)
            join(a, "chat:general", "alice")
            a:send('{"type":"system","action":"leaveRoom","data":{"roomName":"chat:general"}}')
            a:close()
            local seen = got(watch, "activity")
            local actions = {}
            for i, m in ipairs(seen) do
                actions[i] = m.action
            end
            assert.same({ "clientJoinedRoom", "clientConnected", "clientJoinedRoom",
                          "clientLeftRoom", "clientDisconnected" }, actions)
            assert.same({ client_id = a.id, room = "chat:general", count = 1 }, seen[3].data)
            assert.is_nil(seen[2].data.remote_addr)
        end)
    end)

    describe("announcements", function()
        it("alerts every client but those whose preferences turn notifications off", function()
            local a, b, c = h.connect(app), h.connect(app), h.connect(app)
            b:send('{"type":"user","action":"updatePreferences",'
                   .. '"data":{"theme":"dark","notifications":false}}')
            c:send('{"type":"user","action":"updatePreferences","data":{"notifications":true}}')
            assert.equal(200, emit("announcement", { message = "Maintenance in 5 minutes" })
                              .status)
            local alert = { type = "notification", action = "alert",
                            data = { message = "Maintenance in 5 minutes" } }
            assert.same({ alert }, got(a, "notification"))
            assert.same({}, got(b, "notification"))
            assert.same({ alert }, got(c, "notification"))
        end)

        it("refuses an announcement without a message, naming the field", function()
            local a = h.connect(app)
            emit("announcement", { text = "wrong field" })
            assert.same({}, got(a, "notification"))
            local lines = app:logs("warn")
            assert.matches("announcements: subscriber announcements on announcement failed: "
                           .. "message.message: required", lines[#lines].message, 1, true)
        end)

        it("sends at most 10 announcements a minute", function()
            local a = h.connect(app)
            for i = 1, 12 do
                emit("announcement", { message = "n" .. i })
            end
            assert.equal(10, #got(a, "notification"))
            app:advance(60000)
            emit("announcement", { message = "later" })
            local alerts = got(a, "notification")
            assert.equal(11, #alerts)
            assert.equal("later", alerts[11].data.message)
        end)
    end)

    it("let a client's events reach nobody else when no subscriber takes them", function()
        local res = emit("nobody.listens", { x = 1 })
        assert.same({ channel = "nobody.listens", subscribers = 0 }, res.json)
    end)
end)
