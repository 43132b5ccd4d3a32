-- Specs for rooms in Lua: the client methods (join, leave, rooms, users,
-- dedupe, stats), the facade (moonwire.room, broadcast, send, send_user) and
-- presence, run through the real runtime on the real core (moonwire.testing).

local tmpdir = require "support.tmpdir"
local testing = require "moonwire.testing"
local moonwire = require "moonwire"
local cjson = require "cjson"


describe("rooms", function()
    local dir, app

    local function load(config, clock)
        app = assert(testing.load_app(dir, { config = config, clock = clock }))
        return app
    end

    -- Messages of type `type_` sent to `ws` since it connected.
    local function got(ws, type_, action)
        return ws:events(type_, action)
    end

    before_each(function()
        dir = tmpdir.new()
        tmpdir.write(dir, "controllers/noop.lua", "return { x = function() end }\n")
        load({ welcome = false })
    end)

    after_each(function()
        tmpdir.remove(dir)
    end)

    describe("client:join / leave / rooms", function()
        it("joins, counts and lists the client's rooms", function()
            local a, b = app:connect(), app:connect()
            assert.equal(1, a.client:join("lobby"))
            assert.equal(2, b.client:join("lobby"))
            assert.equal(1, a.client:join("games"))
            assert.same({ "lobby", "games" }, a.client:rooms())
            assert.is_true(a.client:in_room("games"))
            assert.is_false(b.client:in_room("games"))
            assert.is_false(b.client:in_room(7))
            assert.equal(2, moonwire.room_count())
            local names = moonwire.rooms()
            table.sort(names)
            assert.same({ "games", "lobby" }, names)
        end)

        it("answers INVALID_ROOM for names that are not 1 to 256 bytes of string", function()
            local a = app:connect()
            assert.same({ nil, "INVALID_ROOM", "room name must not be empty" },
                        { a.client:join("") })
            assert.same({ nil, "INVALID_ROOM", "room name must be at most 256 bytes" },
                        { a.client:join(("r"):rep(257)) })
            assert.same({ nil, "INVALID_ROOM", "room name must be a string" },
                        { a.client:join(12) })
            assert.same({ nil, "INVALID_ROOM", "room name must be a string" },
                        { a.client:join({}) })
            assert.equal(1, a.client:join(("r"):rep(256)))
            assert.same({ nil, "INVALID_ROOM", "room name must be a string" },
                        { a.client:leave(nil) })
        end)

        it("maps core failures to codes", function()
            load({ welcome = false, max_connections_per_room = 1, max_rooms_per_client = 2 })
            local a, b = app:connect(), app:connect()
            a.client:join("one")
            assert.same({ nil, "ROOM_FULL", "room full" }, { b.client:join("one") })
            a.client:join("two")
            assert.same({ nil, "INVALID_ROOM", "too many rooms" }, { a.client:join("three") })
            assert.same({ nil, "INVALID_ROOM", "not joined" }, { b.client:leave("one") })
            a:close()
            assert.same({ nil, "CLOSED", "closed" }, { a.client:join("x") })
        end)

        it("leaves and reports the count left", function()
            local a, b = app:connect(), app:connect()
            a.client:join("r")
            b.client:join("r")
            assert.equal(1, a.client:leave("r"))
            assert.same({}, a.client:rooms())
            assert.equal(0, b.client:leave("r"))
            assert.equal(0, moonwire.room_count())
            assert.same({}, moonwire.rooms())
        end)

        it("leaves every room on disconnect", function()
            local a, b = app:connect(), app:connect()
            a.client:join("r")
            a.client:join("s")
            b.client:join("r")
            a:close()
            assert.equal(1, moonwire.room("r"):count())
            assert.equal(1, moonwire.room_count())
        end)

        it("lets on_disconnect see the client's rooms before they are dropped", function()
            tmpdir.write(dir, "app.lua", [[
                local moonwire = require "moonwire"
                return { on_disconnect = function(client)
                    moonwire.log.info("rooms: " .. table.concat(client:rooms(), ","))
                end }
            ]])
            load({ welcome = false })
            local a = app:connect()
            a.client:join("r")
            a.client:join("s")
            a:close()
            local lines = app:logs("info")
            assert.equal("rooms: r,s", lines[#lines].message)
            assert.same({}, a.client:rooms())
        end)

        it("moves the client when it may be in one room only", function()
            load({ welcome = false, client_can_join_multiple_rooms = false })
            local a = app:connect()
            a.client:join("r")
            assert.equal(1, a.client:join("s"))
            assert.same({ "s" }, a.client:rooms())
            assert.equal(0, moonwire.room("r"):count())
        end)
    end)

    describe("users", function()
        it("binds and unbinds user ids and keeps the index", function()
            local a, b, c = app:connect(), app:connect(), app:connect()
            assert.is_nil(a.client.user)
            a.client:set_user("ann")
            b.client.user = "ann"              -- assignment goes through set_user
            c.client:set_user(7)
            assert.equal("ann", b.client.user)
            assert.is_nil(rawget(b.client, "user"))
            assert.same({ 2, 0 }, { moonwire.send_user("ann", { n = 1 }) })
            assert.same({ { n = 1 } }, a:sent())
            assert.same({ { n = 1 } }, b:sent())
            assert.same({}, c:sent())
            assert.equal(1, moonwire.send_user(7, "raw"))
            a.client:set_user(nil)
            assert.equal(1, moonwire.send_user("ann", { n = 2 }))
            assert.equal(1, #a:sent())
            assert.equal(1, #moonwire.user_clients("ann"))
            assert.same({ 0, 0 }, { moonwire.send_user("nobody", { n = 3 }) })
        end)

        it("rebinding moves the connection to the new user", function()
            local a = app:connect()
            a.client:set_user("ann")
            a.client:set_user("bob")
            assert.equal(0, moonwire.send_user("ann", {}))
            assert.equal(1, moonwire.send_user("bob", {}))
        end)

        it("drops a connection from the index on disconnect", function()
            local a, b = app:connect(), app:connect()
            a.client:set_user("ann")
            b.client:set_user("ann")
            a:close()
            assert.equal(1, moonwire.send_user("ann", {}))
            assert.same({ b.client }, moonwire.user_clients("ann"))
            b:close()
            assert.same({}, app.runtime:rooms()._users)
        end)

        it("keeps the index across a reload", function()
            local a = app:connect()
            a.client:set_user("ann")
            assert.is_true(app:reload())
            assert.equal(1, moonwire.send_user("ann", {}))
        end)

        it("raises on a user id that is not a string or number", function()
            local a = app:connect()
            assert.error_matches(function() a.client:set_user({}) end, "set_user")
            assert.error_matches(function() a.client:set_user("") end, "empty")
            assert.error_matches(function() moonwire.send_user(nil, {}) end, "send_user")
        end)
    end)

    describe("public metadata, dedupe and stats", function()
        it("starts with empty public metadata", function()
            assert.same({}, app:connect().client.public)
        end)

        it("opts a client in to duplicate suppression", function()
            local a, b = app:connect(), app:connect()
            a.client:join("r")
            b.client:join("r")
            assert.is_true(a.client:dedupe(true))
            local room = moonwire.room("r")
            room:broadcast({ n = 1 }, { event_id = "e1" })
            room:broadcast({ n = 1 }, { event_id = "e1" })
            room:broadcast({ n = 2, event_id = "e2" })
            room:broadcast({ n = 2, event_id = "e2" })
            assert.equal(2, #a:sent())
            assert.equal(4, #b:sent())
            assert.error_matches(function() a.client:dedupe("yes") end, "boolean")
        end)

        it("applies config dedupe = true at connect", function()
            load({ welcome = false, dedupe = true })
            local a = app:connect()
            a.client:join("r")
            moonwire.room("r"):broadcast({}, { event_id = "x" })
            moonwire.room("r"):broadcast({}, { event_id = "x" })
            assert.equal(1, #a:sent())
        end)

        it("reports the core's per-client stats", function()
            local a = app:connect()
            a.client:join("r")
            assert.same({ buffered = 0, dropped = 0 }, a.client:stats())
            -- A client that stops reading: past the socket buffers, the
            -- server's output queue holds what it could not write.
            a:pause()
            local chunk = ("x"):rep(65536)
            for _ = 1, 32 do
                moonwire.room("r"):broadcast(chunk)
                app:run()
                if a.client:stats().buffered > 0 then
                    break
                end
            end
            local stats = a.client:stats()
            assert.is_true(stats.buffered > 0)
            assert.equal(0, stats.dropped)
            a:resume()
            assert.same({ buffered = 0, dropped = 0 }, a.client:stats())
            a:close()
            assert.same({ nil, "closed" }, { a.client:stats() })
        end)
    end)

    describe("moonwire.room", function()
        it("raises on an invalid name", function()
            assert.error_matches(function() moonwire.room("") end, "must not be empty")
            assert.error_matches(function() moonwire.room(("x"):rep(257)) end, "256 bytes")
            assert.error_matches(function() moonwire.room(1) end, "must be a string")
        end)

        it("broadcasts one encoded payload to every member", function()
            local a, b, c = app:connect(), app:connect(), app:connect()
            a.client:join("r")
            b.client:join("r")
            local proto = app.runtime:app().protocol
            local encode = proto.encode
            local calls = 0
            proto.encode = function(v) calls = calls + 1; return encode(v) end
            local ok, delivered, dropped = pcall(moonwire.room("r").broadcast,
                                                 moonwire.room("r"), { type = "t", n = 1 })
            proto.encode = encode
            assert.is_true(ok)
            assert.equal(1, calls)
            assert.same({ 2, 0 }, { delivered, dropped })
            assert.same(a:frames(), b:frames())
            assert.same({ { type = "t", n = 1 } }, a:sent())
            assert.same({}, c:sent())
        end)

        it("excludes a client or a client id", function()
            local a, b = app:connect(), app:connect()
            a.client:join("r")
            b.client:join("r")
            local room = moonwire.room("r")
            assert.equal(1, room:broadcast({ n = 1 }, { exclude = a.client }))
            assert.equal(1, room:broadcast({ n = 2 }, { exclude = b.id }))
            assert.same({ { n = 2 } }, a:sent())
            assert.same({ { n = 1 } }, b:sent())
            assert.error_matches(function() room:broadcast({}, { exclude = "a" }) end, "exclude")
            assert.error_matches(function() room:broadcast({}, { event_id = {} }) end, "event_id")
            assert.error_matches(function() room:broadcast(1) end, "table or string")
        end)

        it("sends strings raw and reports encode failures", function()
            local a = app:connect()
            a.client:join("r")
            local room = moonwire.room("r")
            assert.equal(1, room:broadcast("raw"))
            assert.equal(1, room:broadcast("\1\2", { binary = true }))
            assert.same({ { payload = "raw", binary = false },
                          { payload = "\1\2", binary = true } }, a:frames())
            local ok, err = room:broadcast({ f = print })
            assert.is_nil(ok)
            assert.matches("^encode failed", err)
        end)

        it("lists members, count and presence entries", function()
            local a, b = app:connect(), app:connect()
            a.client:join("r")
            b.client:join("r")
            b.client:set_user("bob")
            b.client.public.name = "Bob"
            local room = moonwire.room("r")
            assert.same({ a.client, b.client }, room:members())
            assert.equal(2, room:count())
            assert.same({
                { client_id = a.id, user = cjson.null, meta = {} },
                { client_id = b.id, user = "bob", meta = { name = "Bob" } },
            }, room:presence())
            assert.same({}, moonwire.room("empty"):members())
            assert.equal(0, moonwire.room("empty"):count())
        end)
    end)

    describe("moonwire.broadcast, send", function()
        it("reaches every client except exclude", function()
            local a, b = app:connect(), app:connect()
            assert.same({ 1, 0 }, { moonwire.broadcast({ n = 1 }, { exclude = a.client }) })
            assert.same({}, a:sent())
            assert.same({ { n = 1 } }, b:sent())
        end)

        it("filters on client.data and still encodes once", function()
            local a, b, c = app:connect(), app:connect(), app:connect()
            a.client.data.team = "red"
            c.client.data.team = "red"
            b.client.data.team = "blue"
            assert.equal(2, moonwire.broadcast({ n = 1 }, {
                filter = function(client) return client.data.team == "red" end }))
            assert.equal(1, moonwire.broadcast({ n = 2 }, {
                exclude = c.id, filter = function(client) return client.data.team == "red" end }))
            assert.same({ { n = 1 }, { n = 2 } }, a:sent())
            assert.same({}, b:sent())
            assert.same({ { n = 1 } }, c:sent())
            local none = function() return false end
            assert.same({ 0, 0 }, { moonwire.broadcast({}, { filter = none }) })
            assert.error_matches(function() moonwire.broadcast({}, { filter = 1 }) end, "filter")
        end)

        it("suppresses duplicates of a filtered broadcast too", function()
            local a = app:connect()
            a.client:dedupe(true)
            local all = function() return true end
            moonwire.broadcast({}, { filter = all, event_id = "e" })
            moonwire.broadcast({}, { event_id = "e" })
            assert.equal(1, #a:sent())
        end)

        it("sends to one client id", function()
            local a = app:connect()
            assert.is_true(moonwire.send(a.id, { hi = true }))
            assert.same({ { hi = true } }, a:sent())
            assert.same({ nil, "closed" }, { moonwire.send(999, {}) })
            assert.error_matches(function() moonwire.send("1", {}) end, "client id")
            assert.equal(a.client, moonwire.client(a.id))
        end)
    end)

    describe("presence", function()
        local function presence(ws, action)
            return got(ws, "presence", action)
        end

        before_each(function()
            load({ welcome = false, presence = { "lobby", "team:*" } }, 5)
        end)

        it("tells members who joined, but not the joiner", function()
            local a, b = app:connect(), app:connect()
            a.client:join("lobby")
            b.client:set_user("bob")
            b.client.public.name = "Bob"
            b.client:join("lobby")
            assert.same({ { type = "presence", action = "joined", room = "lobby", ts = 5,
                            data = { client_id = b.id, user = "bob", meta = { name = "Bob" } } } },
                        presence(a))
            assert.same({}, presence(b))
            -- joining again is not news
            b.client:join("lobby")
            assert.equal(1, #presence(a))
        end)

        it("matches prefix patterns and leaves other rooms quiet", function()
            local a, b = app:connect(), app:connect()
            a.client:join("team:red")
            a.client:join("other")
            b.client:join("team:red")
            b.client:join("other")
            assert.equal(1, #presence(a, "joined"))
            assert.equal("team:red", presence(a)[1].room)
            assert.is_true(moonwire.room("team:x"):presence_enabled())
            assert.is_false(moonwire.room("team"):presence_enabled())
        end)

        it("sends left on leave and on disconnect", function()
            local a, b, c = app:connect(), app:connect(), app:connect()
            a.client:join("lobby")
            b.client:join("lobby")
            c.client:join("lobby")
            b.client:leave("lobby")
            c:close()
            local left = presence(a, "left")
            assert.equal(2, #left)
            assert.same({ client_id = b.id, user = cjson.null, meta = {} }, left[1].data)
            assert.equal(c.id, left[2].data.client_id)
            assert.equal(0, #presence(b, "left"))
            assert.equal(1, moonwire.room("lobby"):count())
        end)

        it("sends left for the room a client was moved out of", function()
            load({ welcome = false, presence = { "lobby" },
                   client_can_join_multiple_rooms = false })
            local a, b = app:connect(), app:connect()
            a.client:join("lobby")
            b.client:join("lobby")
            b.client:join("elsewhere")
            local left = presence(a, "left")
            assert.equal(1, #left)
            assert.equal(b.id, left[1].data.client_id)
            assert.equal("lobby", left[1].room)
        end)

        it("can be switched on and off per room from Lua, across reloads", function()
            local a, b = app:connect(), app:connect()
            assert.is_true(moonwire.room("quiet"):set_presence(true))
            assert.is_true(app:reload())
            a.client:join("quiet")
            b.client:join("quiet")
            assert.equal(1, #presence(a, "joined"))
            moonwire.room("lobby"):set_presence(false)
            a.client:join("lobby")
            b.client:join("lobby")
            assert.equal(1, #presence(a, "joined"))
            assert.error_matches(function() moonwire.room("x"):set_presence("on") end, "boolean")
        end)

        it("is off by default", function()
            load({ welcome = false })
            local a, b = app:connect(), app:connect()
            a.client:join("lobby")
            b.client:join("lobby")
            b:close()
            assert.same({}, presence(a))
        end)
    end)
end)
