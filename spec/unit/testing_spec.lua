-- Specs for moonwire.testing: the in-memory core and the app harness.

local core = require "support.fake_core"
local tmpdir = require "support.tmpdir"
local testing = require "moonwire.testing"


describe("moonwire.testing", function()
    local dir

    before_each(function()
        core.reset()
        dir = tmpdir.new()
    end)

    after_each(function()
        tmpdir.remove(dir)
    end)

    it("installs its core as moonwire.core", function()
        assert.equal(core, package.loaded["moonwire.core"])
        assert.equal(testing.core, core)
    end)

    describe("core", function()
        it("scandir lists sorted entries with their type, quoting odd names", function()
            tmpdir.write(dir, "b.lua", "")
            tmpdir.write(dir, "a'quote $(x).lua", "")
            tmpdir.write(dir, ".hidden", "")
            tmpdir.write(dir, "sub/x.lua", "")
            assert.same({
                { name = ".hidden", type = "file" },
                { name = "a'quote $(x).lua", type = "file" },
                { name = "b.lua", type = "file" },
                { name = "sub", type = "dir" },
            }, core.scandir(dir))
        end)

        it("scandir returns nil, err for a missing directory", function()
            local entries, err = core.scandir(dir .. "/nope'; touch " .. dir .. "/pwned; '")
            assert.is_nil(entries)
            assert.matches("no such directory", err)
            assert.same({}, core.scandir(dir))
        end)

        it("send refuses invalid UTF-8 in text frames only", function()
            assert.is_true(core.send(1, "h\195\169", false))
            assert.same({ nil, "invalid utf-8" }, { core.send(1, "\195", false) })
            assert.same({ nil, "invalid utf-8" }, { core.send(1, "\237\160\128", false) })
            assert.is_true(core.send(1, "\195", true))
            assert.equal(2, #core.sent[1])
        end)

        it("close validates like the server and then reports closed", function()
            assert.error_matches(function() core.close(1, 1005, "") end, "invalid close code")
            assert.error_matches(function() core.close(1, 1000, ("r"):rep(124)) end, "123")
            assert.is_true(core.close(1, 4001, "x"))
            assert.same({ nil, "closed" }, { core.close(1, 1000, "") })
            assert.same({ nil, "closed" }, { core.send(1, "x") })
        end)

        it("validates UTF-8 strictly", function()
            assert.is_true(testing.valid_utf8("a\226\130\172\240\159\152\128"))
            assert.is_false(testing.valid_utf8("\192\128"))          -- overlong
            assert.is_false(testing.valid_utf8("\244\144\128\128"))  -- past U+10FFFF
            assert.is_false(testing.valid_utf8("\226\130"))          -- truncated
        end)
    end)

    describe("load_app", function()
        before_each(function()
            tmpdir.write(dir, "config.lua", "return { welcome = true, app = { n = 2 } }")
            tmpdir.write(dir, "controllers/math.lua", [[
                return { double = function(client, data, msg) return data.x * 2 end }
            ]])
        end)

        it("reads config.lua, lets opts.config override it, and drives the runtime", function()
            local app = assert(testing.load_app(dir))
            assert.same({ "math.double" }, app:routes())
            local ws = app:connect()
            assert.equal("connected", ws:sent()[1].action)
            local reply = ws:request("math", "double", { x = 21 })
            assert.same({ type = "math", action = "double", id = "req-1", data = 42 }, reply)
            assert.equal("req-2", ws:request("math", "nope").id)

            local quiet = assert(testing.load_app(dir, { config = { welcome = false } }))
            assert.same({}, quiet:connect():sent())
        end)

        it("applies the server's defaults: welcome is on", function()
            os.remove(dir .. "/config.lua")
            local app = assert(testing.load_app(dir))
            assert.same({}, app.config.app)
            assert.equal("connected", app:connect():sent()[1].action)
        end)

        it("returns nil, err for a broken app or config", function()
            tmpdir.write(dir, "controllers/math.lua", "return 1")
            local app, err = testing.load_app(dir)
            assert.is_nil(app)
            assert.matches("controllers/math.lua:1: controller must return a table", err, 1, true)
            tmpdir.write(dir, "config.lua", "return 1")
            app, err = testing.load_app(dir)
            assert.is_nil(app)
            assert.matches("config.lua must return a table", err, 1, true)
        end)

        it("gives each connection its own id and exposes the server-side client", function()
            local app = assert(testing.load_app(dir))
            local a, b = app:connect({ path = "/x" }), app:connect()
            assert.are_not.equal(a.id, b.id)
            assert.equal("/x", a.client.request.path)
            a:close(1001, "away")
            assert.is_nil(app.runtime:client(a.id))
        end)
    end)
end)
