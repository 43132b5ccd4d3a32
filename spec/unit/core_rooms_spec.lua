-- Specs for the rooms primitives of moonwire.core (docs/boundary.md) on the
-- real core: membership, limits, fan-out, duplicate suppression and
-- backpressure, with real clients of a test server. The handlers are
-- plain functions, so nothing of the runtime is involved.

local core = require "moonwire.core"


describe("moonwire.core rooms", function()
    local srv, clients

    -- A server with config and four connected clients: ids 1 to 4.
    local function start(config)
        if srv then
            srv:close()
        end
        srv = assert(core.test_server({ app_dir = "/nonexistent", config = config,
                                        handlers = {} }))
        clients = {}
        for i = 1, 4 do
            clients[i] = srv:connect()
            assert.equal(i, clients[i]:id())
        end
    end

    -- The data frames client `i` received, as { payload =, binary = }.
    local function sent(i)
        srv:run()
        local list = {}
        for _, f in ipairs(clients[i]:frames()) do
            if f.type == "text" or f.type == "binary" then
                list[#list + 1] = { payload = f.payload, binary = f.binary }
            end
        end
        return list
    end

    -- Client `i` stops reading and direct sends pile up until its output
    -- queue holds more than `bytes` (direct sends are never dropped).
    local function fill(i, bytes)
        clients[i]:pause_reading()
        local chunk = ("q"):rep(65536)
        for _ = 1, 256 do
            assert(core.send(i, chunk))
            srv:run()
            if core.client_stats(i).buffered > bytes then
                return
            end
        end
        error("client " .. i .. " never filled")
    end

    before_each(function()
        start()
    end)

    after_each(function()
        srv:close()
        srv = nil
    end)

    it("joins, lists and counts", function()
        assert.same({ 1 }, { core.join(1, "a") })
        assert.same({ 2 }, { core.join(2, "a") })
        assert.same({ 1 }, { core.join(1, "b") })
        assert.same({ "a", "b" }, core.rooms(1))
        assert.same({ 1, 2 }, core.members("a"))
        assert.equal(2, core.count("a"))
        assert.equal(0, core.count("nope"))
        assert.same({}, core.members("nope"))
        assert.equal(2, core.room_count())
    end)

    it("joining twice is not an error and changes nothing", function()
        core.join(1, "a")
        core.join(2, "a")
        assert.same({ 2 }, { core.join(1, "a") })
        assert.same({ "a" }, core.rooms(1))
    end)

    it("leaves, and drops empty rooms", function()
        core.join(1, "a")
        core.join(2, "a")
        assert.equal(1, core.leave(1, "a"))
        assert.same({ nil, "not joined" }, { core.leave(1, "a") })
        assert.equal(0, core.leave(2, "a"))
        assert.equal(0, core.room_count())
    end)

    it("answers closed for unknown and closed clients", function()
        assert.same({ nil, "closed" }, { core.join(9, "a") })
        assert.same({ nil, "closed" }, { core.rooms(9) })
        assert.same({ nil, "closed" }, { core.leave(9, "a") })
        assert.same({ nil, "closed" }, { core.dedupe(9, true) })
        assert.same({ nil, "closed" }, { core.client_stats(9) })
        core.close(1, 1000, "")
        assert.same({ nil, "closed" }, { core.join(1, "a") })
    end)

    it("raises on room names that are not 1 to 256 bytes", function()
        assert.error_matches(function() core.join(1, "") end, "room name")
        assert.error_matches(function() core.join(1, ("x"):rep(257)) end, "room name")
        assert.has_error(function() core.join(1, {}) end)
        assert.has_error(function() core.count(nil) end)
        assert.equal(1, core.join(1, ("x"):rep(256)))
    end)

    it("removes every membership when a client goes", function()
        core.join(1, "a")
        core.join(1, "b")
        core.join(2, "b")
        clients[1]:drop()
        srv:run()
        assert.equal(1, core.room_count())
        assert.same({ 2 }, core.members("b"))
    end)

    describe("limits", function()
        it("max_connections_per_room", function()
            start({ max_connections_per_room = 2 })
            core.join(1, "a")
            core.join(2, "a")
            assert.same({ nil, "room full" }, { core.join(3, "a") })
            assert.same({ 2 }, { core.join(2, "a") })
        end)

        it("max_rooms_per_client, 0 for unlimited", function()
            start({ max_rooms_per_client = 2 })
            core.join(1, "a")
            core.join(1, "b")
            assert.same({ nil, "too many rooms" }, { core.join(1, "c") })
            start({ max_rooms_per_client = 0 })
            for i = 1, 150 do
                assert.truthy(core.join(2, "r" .. i))
            end
        end)

        it("client_can_join_multiple_rooms = false moves the client", function()
            start({ client_can_join_multiple_rooms = false })
            core.join(1, "a")
            core.join(2, "a")
            assert.same({ 1, "a" }, { core.join(1, "b") })
            assert.same({ "b" }, core.rooms(1))
            assert.same({ 2 }, core.members("a"))
            assert.same({ 1 }, { core.join(1, "b") })
        end)

        it("a move into a full room leaves the client where it was", function()
            start({ client_can_join_multiple_rooms = false, max_connections_per_room = 1 })
            core.join(1, "a")
            core.join(2, "b")
            assert.same({ nil, "room full" }, { core.join(1, "b") })
            assert.same({ "a" }, core.rooms(1))
        end)
    end)

    describe("fan-out", function()
        before_each(function()
            core.join(1, "a")
            core.join(2, "a")
            core.join(3, "a")
        end)

        it("frames the one payload for every member, except exclude", function()
            assert.same({ 2, 0 }, { core.broadcast("a", "hi", false, 2) })
            assert.same({ { payload = "hi", binary = false } }, sent(1))
            assert.same({ { payload = "hi", binary = false } }, sent(3))
            assert.same({}, sent(2))
            assert.same({}, sent(4))
            assert.same({ 3, 0 }, { core.broadcast("a", "x", true, 0) })
            assert.is_true(sent(2)[1].binary)
        end)

        it("skips closing members without counting them", function()
            core.close(3, 1000, "")
            assert.same({ 2, 0 }, { core.broadcast("a", "hi", false) })
            assert.same({}, sent(3))
        end)

        it("send_many skips unknown and closed ids", function()
            assert.same({ 2, 0 }, { core.send_many({ 1, 4, 99 }, "m", false) })
            assert.equal(1, #sent(4))
        end)

        it("broadcast_all reaches every open client", function()
            assert.same({ 3, 0 }, { core.broadcast_all("all", false, 1) })
            assert.same({}, sent(1))
            assert.equal(1, #sent(4))
        end)

        it("refuses invalid UTF-8 text", function()
            assert.same({ nil, "invalid utf-8" }, { core.broadcast("a", "\255", false) })
            assert.same({}, sent(1))
        end)
    end)

    describe("duplicate suppression", function()
        it("delivers an event id once to opted-in clients only", function()
            core.join(1, "a")
            core.join(2, "a")
            assert.is_true(core.dedupe(1, true))
            assert.same({ 2, 0 }, { core.broadcast("a", "one", false, nil, "e1") })
            assert.same({ 1, 0 }, { core.broadcast("a", "two", false, nil, "e1") })
            assert.same({ 1, 0 }, { core.send_many({ 1, 2 }, "three", false, "e1") })
            assert.equal(1, #sent(1))
            assert.equal(3, #sent(2))
            -- no event id: never suppressed
            core.broadcast("a", "plain", false)
            assert.equal(2, #sent(1))
        end)

        it("forgets the oldest ids past event_cache_max_size", function()
            start({ event_cache_max_size = 2 })
            core.join(1, "a")
            core.dedupe(1, true)
            core.broadcast("a", "1", false, nil, "e1")
            core.broadcast("a", "2", false, nil, "e2")
            core.broadcast("a", "3", false, nil, "e3")   -- evicts e1
            core.broadcast("a", "2", false, nil, "e2")   -- suppressed
            core.broadcast("a", "1", false, nil, "e1")   -- delivered again
            assert.equal(4, #sent(1))
        end)

        it("does not remember an event id whose delivery was dropped", function()
            start({ max_buffered_bytes = 1024 })
            core.join(1, "a")
            core.dedupe(1, true)
            fill(1, 1024)
            assert.same({ 0, 1 }, { core.broadcast("a", "1", false, nil, "e1") })
            clients[1]:resume_reading()
            srv:run()
            assert.equal(0, core.client_stats(1).buffered)
            assert.same({ 1, 0 }, { core.broadcast("a", "1", false, nil, "e1") })
        end)

        it("opting out delivers duplicates again", function()
            core.join(1, "a")
            core.dedupe(1, true)
            core.broadcast("a", "1", false, nil, "e1")
            core.dedupe(1, false)
            core.broadcast("a", "1", false, nil, "e1")
            assert.equal(2, #sent(1))
        end)
    end)

    describe("backpressure", function()
        it("drops broadcasts to a client over max_buffered_bytes and counts them", function()
            start({ max_buffered_bytes = 4096 })
            core.join(1, "a")
            core.join(2, "a")
            fill(2, 4096)
            local buffered = core.client_stats(2).buffered
            assert.same({ 1, 1 }, { core.broadcast("a", "m", false) })
            assert.same({ 1, 1 }, { core.broadcast("a", "m", false) })
            assert.same({ buffered = buffered, dropped = 2 }, core.client_stats(2))
            assert.matches('"dropped":2', srv:health(), 1, true)
            assert.equal(2, #sent(1))
            -- direct sends are never dropped
            assert.is_true(core.send(2, "direct"))
            clients[2]:resume_reading()
            local frames = sent(2)
            assert.equal("direct", frames[#frames].payload)
            for _, f in ipairs(clients[2]:frames()) do
                assert.are_not.equal("close", f.type)
            end
        end)

        it("closes it with 1013 under slow_consumer_policy = close", function()
            start({ max_buffered_bytes = 4096, slow_consumer_policy = "close" })
            core.join(1, "a")
            core.join(2, "a")
            fill(2, 4096)
            assert.same({ 1, 1 }, { core.broadcast("a", "m", false) })
            clients[2]:resume_reading()
            srv:run()
            local frames = clients[2]:frames()
            local last = frames[#frames]
            assert.same({ "close", 1013 }, { last.type, last.code })
        end)
    end)
end)
