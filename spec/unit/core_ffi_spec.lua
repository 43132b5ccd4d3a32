-- Specs for moonwire.core_ffi: core.send, core.running and core.now called
-- through LuaJIT's FFI (src/lua/api.c, mw_lua_ffi_t) answer exactly what
-- the classic functions answer, on the real core (moonwire/core.so).

local core = require "moonwire.core"
local core_ffi = require "moonwire.core_ffi"
local tmpdir = require "support.tmpdir"
local testing = require "moonwire.testing"


-- Every value a call returns, or the error it raised, for side-by-side
-- checks. The classic function names itself in an argument error and the
-- FFI path reaches it from a wrapper, so the name is left out.
local function outcome(fn, ...)
    local function collect(ok, ...)
        if not ok then
            return { raised = (tostring((...)):gsub("bad argument (#%d+) to '[^']*'",
                                                   "bad argument %1")) }
        end
        return { n = select("#", ...), ... }
    end
    return collect(pcall(fn, ...))
end


describe("moonwire.core_ffi", function()
    local dir, app, ws, fast

    before_each(function()
        dir = tmpdir.new()
        tmpdir.write(dir, "controllers/chat.lua", "return { noop = function() end }\n")
        app = assert(testing.load_app(dir, { config = { welcome = false }, clock = 1000 }))
        ws = app:connect()
        fast = core_ffi.of(core)
    end)

    after_each(function()
        app:close()
        tmpdir.remove(dir)
    end)

    it("is built on the core's FFI table", function()
        assert.equal("userdata", type(core._ffi))
        assert.is_not.equal(core.send, fast.send)
        assert.equal(fast, core_ffi.of(core))
    end)

    describe("send", function()
        it("sends text and binary frames as core.send does", function()
            assert.same({ true }, { fast.send(ws.id, "one", false) })
            assert.same({ true }, { core.send(ws.id, "two", false) })
            assert.same({ true }, { fast.send(ws.id, "\255\0bin", true) })
            assert.same({ { payload = "one", binary = false },
                          { payload = "two", binary = false },
                          { payload = "\255\0bin", binary = true } }, ws:frames())
        end)

        it("refuses invalid UTF-8 in a text frame as core.send does", function()
            local bad = "caf\195"
            assert.same({ core.send(ws.id, bad, false) }, { fast.send(ws.id, bad, false) })
            assert.same({ nil, "invalid utf-8" }, { fast.send(ws.id, bad) })
            assert.same({}, ws:frames())
        end)

        it("answers closed for a client that is gone or never was", function()
            assert.same({ nil, "closed" }, { fast.send(ws.id + 1000, "x", false) })
            assert.same({ core.send(ws.id + 1000, "x") }, { fast.send(ws.id + 1000, "x") })
            local id = ws.id
            ws:close()
            assert.same({ nil, "closed" }, { fast.send(id, "x", false) })
            assert.same({ core.send(id, "x") }, { fast.send(id, "x") })
        end)

        it("raises on misuse as core.send does", function()
            for _, args in ipairs({ { 0, "x" }, { -1, "x" }, { 1.5, "x" }, { 2 ^ 60, "x" },
                                    { "1", "x" }, { nil, "x" }, { ws.id, nil },
                                    { ws.id, {} }, { 0 / 0, "x" } }) do
                local classic = outcome(core.send, args[1], args[2], false)
                local ffi = outcome(fast.send, args[1], args[2], false)
                assert.same(classic, ffi)
            end
            assert.matches("client id must be a positive integer",
                           outcome(fast.send, 0, "x").raised, 1, true)
        end)

        it("takes a number payload as core.send does", function()
            assert.same({ core.send(ws.id, 12) }, { fast.send(ws.id, 34) })
            assert.same({ "12", "34" }, { ws:frames()[1].payload, ws:frames()[2].payload })
        end)

        it("answers not serving without a server", function()
            local id = ws.id
            app:close()
            assert.same({ nil, "not serving" }, { fast.send(id, "x", false) })
            assert.same({ core.send(id, "x") }, { fast.send(id, "x") })
        end)
    end)

    describe("running", function()
        it("takes what core.running takes, without raising", function()
            for _, id in ipairs({ 1, 0, -3, 1.5, 1e300, 0 / 0, "2", false }) do
                assert.same(outcome(core.running, id), outcome(fast.running, id))
            end
            assert.same(outcome(core.running), outcome(fast.running))
        end)
    end)

    describe("now", function()
        it("reads the server's clock as core.now does", function()
            assert.equal(1000, fast.now())
            app:advance(250)
            assert.equal(core.now(), fast.now())
            assert.equal(1250, fast.now())
        end)

        it("is what moonwire.now() returns", function()
            app:advance(5)
            assert.equal(fast.now(), require("moonwire").now())
        end)
    end)

    it("falls back to the classic functions for a core without an FFI table", function()
        local send, running, now = function() end, function() end, function() end
        local plain = core_ffi.of({ send = send, running = running, now = now })
        assert.same({ send, running, now }, { plain.send, plain.running, plain.now })
    end)
end)
