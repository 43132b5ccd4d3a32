-- Specs for the chat example, run with `moonwire test examples/chat`.

local testing = require "moonwire.testing"


describe("chat", function()
    local app

    local function join(ws, room, name)
        return ws:request("chat", "join", { room = room, name = name })
    end

    before_each(function()
        -- The server's virtual clock starts at 10 s: events carry ts = 10000
        -- until a spec moves it (app:advance).
        app = assert(testing.load_app(".", { clock = 10000 }))
    end)

    it("lists its routes", function()
        assert.same({ "chat.join", "chat.leave", "chat.login", "chat.say", "chat.typing",
                      "chat.whisper" }, app:routes())
    end)

    it("joins a room and lists who is there", function()
        local ann, bob = app:connect(), app:connect()
        join(ann, "general", "Ann")
        local reply = join(bob, "general")
        assert.equal(2, reply.data.count)
        assert.same({ { client_id = ann.id, user = testing.null, meta = { name = "Ann" } },
                      { client_id = bob.id, user = testing.null,
                        meta = { name = "guest-" .. bob.id } } }, reply.data.members)
    end)

    it("tells members who joined and who left (presence)", function()
        local ann, bob = app:connect(), app:connect()
        join(ann, "general", "Ann")
        join(bob, "general", "Bob")
        bob:close()
        local events = ann:events("presence")
        assert.equal(2, #events)
        assert.equal("joined", events[1].action)
        assert.same({ client_id = bob.id, user = testing.null, meta = { name = "Bob" } },
                    events[1].data)
        assert.equal("left", events[2].action)
        assert.same({}, bob:events("presence"))
    end)

    it("says to everyone else in the room", function()
        local ann, bob, cy = app:connect(), app:connect(), app:connect()
        join(ann, "general", "Ann")
        join(bob, "general", "Bob")
        join(cy, "random")
        assert.same({ delivered = 1 },
                    ann:request("chat", "say", { room = "general", text = "hi" }).data)
        assert.same({ { type = "chat", action = "message", room = "general", ts = 10000,
                        data = { client_id = ann.id, user = testing.null, name = "Ann",
                                 text = "hi" } } }, bob:events("chat", "message"))
        assert.same({}, ann:events("chat", "message"))
        assert.same({}, cy:events("chat", "message"))
    end)

    it("refuses to say or type in a room the client is not in", function()
        local ann = app:connect()
        assert.same({ code = "INVALID_ROOM", message = "join the room first" },
                    ann:request("chat", "say", { room = "general", text = "hi" }).error)
        assert.equal("INVALID_ROOM", ann:request("chat", "typing", { room = "x" }).error.code)
        assert.equal("INVALID_MESSAGE",
                     ann:request("chat", "join", { room = "r", name = ("n"):rep(33) }).error.code)
        assert.equal("INVALID_ROOM", join(ann, "").error.code)
    end)

    it("throttles typing to one event per second per client", function()
        local ann, bob = app:connect(), app:connect()
        join(ann, "general")
        join(bob, "general")
        assert.same({ sent = true }, ann:request("chat", "typing", { room = "general" }).data)
        app:advance(500)
        assert.same({ sent = false }, ann:request("chat", "typing", { room = "general" }).data)
        ann:message("chat", "typing", { room = "general" })
        app:advance(499)
        assert.same({ sent = false }, ann:request("chat", "typing", { room = "general" }).data)
        app:advance(1)
        assert.equal(11000, app:now())
        assert.same({ sent = true }, ann:request("chat", "typing", { room = "general" }).data)
        local typing = bob:events("chat", "typing")
        assert.equal(2, #typing)
        assert.same({ type = "chat", action = "typing", room = "general",
                      data = { client_id = ann.id, user = testing.null } }, typing[1])
        assert.same({}, ann:events("chat", "typing"))
        -- the throttle is per client
        assert.same({ sent = true }, bob:request("chat", "typing", { room = "general" }).data)
    end)

    it("whispers to every connection of a user", function()
        local ann1, ann2, bob = app:connect(), app:connect(), app:connect()
        ann1:request("chat", "login", { user = "ann" })
        ann2:request("chat", "login", { user = "ann" })
        bob:request("chat", "login", { user = "bob" })
        assert.same({ delivered = 2 },
                    bob:request("chat", "whisper", { user = "ann", text = "psst" }).data)
        assert.equal("psst", ann1:events("chat", "whisper")[1].data.text)
        assert.equal("bob", ann2:events("chat", "whisper")[1].data.user)
        assert.equal("NOT_FOUND",
                     bob:request("chat", "whisper", { user = "zed", text = "x" }).error.code)
    end)

    it("leaves rooms, and the system controller works alongside", function()
        local ann = app:connect()
        join(ann, "general")
        assert.same({ room = "general", count = 0 },
                    ann:request("chat", "leave", { room = "general" }).data)
        assert.equal("not joined", ann:request("chat", "leave", { room = "general" }).error.message)
        assert.equal(1, ann:request("system", "join", { room = "x" }).data.count)
        assert.same({ rooms = { "x" } }, ann:request("system", "rooms").data)
    end)
end)
