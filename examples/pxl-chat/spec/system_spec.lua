-- Specs for controllers/system.lua, PXL's system controller: joinRoom and
-- leaveRoom with data.roomName, their answers as @scpxl/nodejs-framework
-- sends them, and rooms.clientCanJoinMultipleRooms.

local testing = require "moonwire.testing"
local h = require "spec.helpers"

local CLOCK = h.CLOCK
local ISO = h.ISO


describe("system", function()
    local app

    local function join(ws, data)
        return ws:send(require("cjson").encode({ type = "system", action = "joinRoom",
                                                 data = data }))
    end

    local function leave(ws, room)
        return ws:send(require("cjson").encode({ type = "system", action = "leaveRoom",
                                                 data = { roomName = room } }))
    end

    before_each(function()
        app = assert(testing.load_app(".", { clock = CLOCK }))
    end)

    describe("joinRoom", function()
        it("joins the room and answers with the user it joined as", function()
            local a = h.connect(app)
            local out = join(a, { roomName = "chat:general", username = "alice", userId = 7,
                                  userType = "member" })
            assert.same({ { type = "system", action = "joinRoom", response = {
                success = true, message = "Successfully joined room: chat:general",
                data = { userId = 7, userType = "member", username = "alice",
                         roomName = "chat:general", joinedAt = ISO } } } }, out)
            assert.equal('{"type":"system","action":"joinRoom","response":{"success":true,'
                         .. '"message":"Successfully joined room: chat:general","data":'
                         .. '{"userId":7,"userType":"member","username":"alice",'
                         .. '"roomName":"chat:general","joinedAt":"' .. ISO .. '"}}}',
                         h.last_text(a))
            assert.same({ "chat:general" }, a.client:rooms())
        end)

        it("defaults userId to the client id, userType to user, username to user_ and 8 digits",
           function()
            local a = h.connect(app)
            local id = a.client.data.client_id
            local data = join(a, { roomName = "r", username = testing.null })[1].response.data
            assert.same({ userId = id, userType = "user", username = "user_" .. id:sub(1, 8),
                          roomName = "r", joinedAt = ISO }, data)
        end)

        it("answers a join without a room name with PXL's error answer", function()
            local a = h.connect(app)
            local id = a.client.data.client_id
            for _, data in ipairs({ {}, { roomName = "" }, { roomName = testing.null },
                                    { roomName = false } }) do
                assert.same({ { type = "system", action = "joinRoom", response = {
                    success = false, error = "Room name is required", clientId = id } } },
                    join(a, data))
            end
            assert.same({}, a.client:rooms())
        end)

        it("answers a room moonwire cannot take as PXL's failed join", function()
            local a = h.connect(app)
            local r = join(a, { roomName = ("x"):rep(257) })[1].response
            assert.same({ success = false, error = "Failed to join room",
                          message = "room name must be at most 256 bytes",
                          clientId = a.client.data.client_id }, r)
            r = join(a, { roomName = 5 })[1].response
            assert.equal("room name must be a string", r.message)
        end)

        it("keeps a client in several rooms (clientCanJoinMultipleRooms: true)", function()
            local a = h.connect(app)
            join(a, { roomName = "one" })
            join(a, { roomName = "two" })
            assert.same({ "one", "two" }, a.client:rooms())
            -- Joining again answers the same and counts the client once.
            assert.is_true(join(a, { roomName = "one" })[1].response.success)
            assert.equal(1, require("moonwire").room("one"):count())
        end)

        it("moves the client with clientCanJoinMultipleRooms: false", function()
            app = assert(testing.load_app(".", { clock = CLOCK, config = {
                client_can_join_multiple_rooms = false } }))
            local a, b = h.connect(app), h.connect(app)
            join(a, { roomName = "one", username = "a" })
            join(b, { roomName = "one" })
            assert.is_true(join(a, { roomName = "two" })[1].response.success)
            assert.same({ "two" }, a.client:rooms())
            assert.same({ "one" }, b.client:rooms())
        end)
    end)

    describe("leaveRoom", function()
        it("tells the member user.leftRoom, then answers", function()
            local a = h.connect(app)
            join(a, { roomName = "lobby" })
            local out = leave(a, "lobby")
            assert.same({ type = "user", action = "leftRoom", data = { roomName = "lobby" } },
                        out[1])
            assert.same({ type = "system", action = "leaveRoom", response = {
                success = true, message = "Successfully left room: lobby",
                data = { roomName = "lobby", leftAt = ISO },
                clientId = a.client.data.client_id } }, out[2])
            assert.equal('{"type":"system","action":"leaveRoom","response":{"success":true,'
                         .. '"message":"Successfully left room: lobby","data":{"roomName":'
                         .. '"lobby","leftAt":"' .. ISO .. '"},"clientId":"'
                         .. a.client.data.client_id .. '"}}', h.last_text(a))
            assert.same({}, a.client:rooms())
        end)

        it("answers success alone to a client that was not in the room", function()
            local a = h.connect(app)
            local out = leave(a, "elsewhere")
            assert.equal(1, #out)
            assert.is_true(out[1].response.success)
        end)

        it("answers a leave without a room name with PXL's error answer", function()
            local a = h.connect(app)
            assert.same({ success = false, error = "Room name is required",
                          clientId = a.client.data.client_id },
                        a:send('{"type":"system","action":"leaveRoom"}')[1].response)
        end)
    end)
end)
