-- Specs for the public facade, require "moonwire".

local core = require "moonwire.core"
local tmpdir = require "support.tmpdir"
local testing = require "moonwire.testing"
local moonwire = require "moonwire"
local errors = require "moonwire.errors"


describe("moonwire", function()
    local dir, app

    -- An empty app on the real core: its server takes the log lines and
    -- keeps the clock.
    before_each(function()
        dir = tmpdir.new()
        app = assert(testing.load_app(dir, { clock = 1234 }))
    end)

    after_each(function()
        tmpdir.remove(dir)
    end)

    it("has a version: the core's, the same in the C modules", function()
        assert.matches("^%d+%.%d+%.%d+$", moonwire._VERSION)
        assert.equal(core.version, moonwire._VERSION)
        assert.equal(require("moonwire.core.jwt").version, core.version)
        assert.equal(moonwire._VERSION, require("moonwire.protocol")._VERSION)
    end)

    it("fail raises a recoverable failure with code and message", function()
        local ok, err = pcall(moonwire.fail, "ROOM_FULL", "no seats left")
        assert.is_false(ok)
        assert.is_true(errors.is_failure(err))
        assert.equal("ROOM_FULL", err.code)
        assert.equal("no seats left", err.message)
        ok, err = pcall(moonwire.fail, "NOT_FOUND")
        assert.is_false(ok)
        assert.equal("not found", err.message)
    end)

    it("fail raises on misuse", function()
        assert.error_matches(function() moonwire.fail("lower") end, "bad argument #1 to 'fail'")
        assert.error_matches(function() moonwire.fail(nil) end, "bad argument #1 to 'fail'")
        assert.error_matches(function() moonwire.fail("X", 1) end, "bad argument #2 to 'fail'")
    end)

    it("logs through the core, formatting only when given arguments", function()
        local before = #app:logs()
        moonwire.log.info("client %d joined %s", 3, "lobby")
        moonwire.log.warn("100% literal")
        moonwire.log.debug("d")
        moonwire.log.error("e")
        assert.same({
            { level = "info", message = "client 3 joined lobby" },
            { level = "warn", message = "100% literal" },
            { level = "debug", message = "d" },
            { level = "error", message = "e" },
        }, { select(before + 1, unpack(app:logs())) })
        assert.error_matches(function() moonwire.log.info(nil) end, "string expected")
    end)

    it("now is the core clock", function()
        assert.equal(1234, moonwire.now())
        app:advance(10)
        assert.equal(1244, moonwire.now())
    end)
end)
