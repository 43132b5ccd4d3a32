-- Specs for the built-in `system` controller (moonwire.system): join/leave
-- and their aliases, publish, broadcast, ping, rooms, and how an app turns it
-- off or replaces it.

local tmpdir = require "support.tmpdir"
local testing = require "moonwire.testing"


describe("system controller", function()
    local dir, app

    -- The clock starts at 1 s: events carry ts = 1000.
    local function load(config)
        app = assert(testing.load_app(dir, { config = config, clock = 1000 }))
        return app
    end

    local function req(ws, action, data)
        return ws:request("system", action, data)
    end

    before_each(function()
        dir = tmpdir.new()
        tmpdir.write(dir, "controllers/greet.lua", "return { hi = function() return 'hi' end }\n")
        load({ welcome = false })
    end)

    after_each(function()
        tmpdir.remove(dir)
    end)

    it("is mounted by default but not listed among the app's routes", function()
        assert.same({ "greet.hi" }, app:routes())
        assert.equal("pong", req(app:connect(), "ping").action)
    end)

    describe("join and leave", function()
        it("reply with the room and its count; aliases subscribe/unsubscribe", function()
            local a, b = app:connect(), app:connect()
            assert.same({ type = "system", action = "join", id = "req-1",
                          data = { room = "r", count = 1 } }, req(a, "join", { room = "r" }))
            assert.same({ room = "r", count = 2 }, req(b, "subscribe", { room = "r" }).data)
            assert.same({ room = "r", count = 1 }, req(a, "leave", { room = "r" }).data)
            assert.same({ room = "r", count = 0 }, req(b, "unsubscribe", { room = "r" }).data)
        end)

        it("answers INVALID_ROOM for bad names and leaving a room not joined", function()
            local a = app:connect()
            local function err(action, data)
                return req(a, action, data).error
            end
            assert.same({ code = "INVALID_ROOM", message = "room name must not be empty" },
                        err("join", { room = "" }))
            assert.same({ code = "INVALID_ROOM", message = "room name must be at most 256 bytes" },
                        err("join", { room = ("x"):rep(257) }))
            assert.same({ code = "INVALID_ROOM", message = "room name must be a string" },
                        err("join", { room = 5 }))
            assert.same({ code = "INVALID_ROOM", message = "room name must be a string" },
                        err("join", {}))
            assert.same({ code = "INVALID_ROOM", message = "not joined" },
                        err("leave", { room = "r" }))
        end)

        it("answers ROOM_FULL and too many rooms", function()
            load({ welcome = false, max_connections_per_room = 1, max_rooms_per_client = 1 })
            local a, b = app:connect(), app:connect()
            req(a, "join", { room = "r" })
            assert.same({ code = "ROOM_FULL", message = "room full" },
                        req(b, "join", { room = "r" }).error)
            assert.same({ code = "INVALID_ROOM", message = "too many rooms" },
                        req(a, "join", { room = "s" }).error)
        end)

        it("includes the presence list when the room has presence", function()
            load({ welcome = false, presence = { "p*" } })
            local a, b = app:connect(), app:connect()
            a.client:set_user("ann")
            req(a, "join", { room = "pool" })
            local reply = req(b, "join", { room = "pool" }).data
            assert.same({ room = "pool", count = 2, presence = {
                { client_id = a.id, user = "ann", meta = {} },
                { client_id = b.id, user = testing.null, meta = {} },
            } }, reply)
            assert.is_nil(req(a, "join", { room = "other" }).data.presence)
        end)
    end)

    describe("publish", function()
        it("refuses a client that is not in the room", function()
            local a, b = app:connect(), app:connect()
            req(a, "join", { room = "r" })
            assert.same({ code = "INVALID_ROOM", message = "not subscribed to this room" },
                        req(b, "publish", { room = "r", data = "x" }).error)
            assert.same({}, a:events("system", "message"))
            assert.equal("INVALID_ROOM", req(b, "publish", { room = "" }).error.code)
        end)

        it("delivers to every other member exactly once", function()
            local a, b, c, d = app:connect(), app:connect(), app:connect(), app:connect()
            for _, ws in ipairs({ a, b, c }) do
                req(ws, "join", { room = "r" })
            end
            a.client:set_user("ann")
            assert.same({ room = "r", delivered = 2 },
                        req(a, "publish", { room = "r", data = { text = "hi" } }).data)
            local want = { type = "system", action = "message", room = "r", ts = 1000,
                           data = { from = a.id, user = "ann", data = { text = "hi" } } }
            assert.same({ want }, b:events("system", "message"))
            assert.same({ want }, c:events("system", "message"))
            assert.same({}, a:events("system", "message"))
            assert.same({}, d:sent())
        end)

        it("passes data.event_id on for duplicate suppression", function()
            local a, b = app:connect(), app:connect()
            req(a, "join", { room = "r" })
            req(b, "join", { room = "r" })
            b.client:dedupe(true)
            req(a, "publish", { room = "r", data = 1, event_id = "e1" })
            req(a, "publish", { room = "r", data = 1, event_id = "e1" })
            assert.equal(1, #b:events("system", "message"))
        end)

        it("sends null data when there is none", function()
            local a, b = app:connect(), app:connect()
            req(a, "join", { room = "r" })
            req(b, "join", { room = "r" })
            req(a, "publish", { room = "r" })
            assert.equal(testing.null, b:events("system", "message")[1].data.data)
        end)
    end)

    describe("broadcast", function()
        it("is refused unless allow_client_broadcast is on", function()
            local a, b = app:connect(), app:connect()
            assert.same({ code = "AUTHORIZATION_FAILED", message = "client broadcast is disabled" },
                        req(a, "broadcast", { data = 1 }).error)
            assert.same({}, b:sent())
        end)

        it("reaches every other client when allowed", function()
            load({ welcome = false, allow_client_broadcast = true })
            local a, b, c = app:connect(), app:connect(), app:connect()
            assert.same({ delivered = 2 }, req(a, "broadcast", { data = "all" }).data)
            assert.same({ { type = "system", action = "broadcast", ts = 1000,
                            data = { from = a.id, user = testing.null, data = "all" } } },
                        b:events("system", "broadcast"))
            assert.equal(1, #c:events("system", "broadcast"))
            assert.same({}, a:events("system", "broadcast"))
        end)
    end)

    describe("ping and rooms", function()
        it("answers ping with pong, with or without an id", function()
            local a = app:connect()
            assert.same({ type = "system", action = "pong", id = "req-1", data = { ts = 1000 } },
                        req(a, "ping"))
            assert.same({ { type = "system", action = "pong", data = { ts = 1000 }, ts = 1000 } },
                        a:message("system", "ping"))
        end)

        it("lists the client's rooms, as a JSON array even when empty", function()
            local a = app:connect()
            req(a, "join", { room = "x" })
            req(a, "join", { room = "y" })
            assert.same({ rooms = { "x", "y" } }, req(a, "rooms").data)
            req(a, "leave", { room = "x" })
            req(a, "leave", { room = "y" })
            local frames = a:frames()
            a:request("system", "rooms")
            local raw = a:frames()[#frames + 1].payload
            assert.matches('"rooms":[]', raw, 1, true)
        end)
    end)

    describe("mounting", function()
        it("is off with system_controller = false", function()
            load({ welcome = false, system_controller = false })
            assert.equal("NOT_FOUND", req(app:connect(), "join", { room = "r" }).error.code)
        end)

        it("gives way to the app's own controllers/system.lua", function()
            tmpdir.write(dir, "controllers/system.lua",
                         "return { join = function() return 'mine' end }\n")
            load({ welcome = false })
            local a = app:connect()
            assert.equal("mine", req(a, "join", { room = "r" }).data)
            assert.equal("NOT_FOUND", req(a, "ping").error.code)
            assert.same({ "greet.hi", "system.join" }, app:routes())
        end)

        it("stays mounted across a reload", function()
            assert.is_true(app:reload())
            assert.equal(1, req(app:connect(), "join", { room = "r" }).data.count)
        end)
    end)

    it("keeps the runtime's welcome event shape", function()
        load({})
        local a = app:connect()
        assert.same({ type = "system", action = "connected", data = { client_id = a.id },
                      ts = 1000 }, a:sent()[1])
    end)
end)
