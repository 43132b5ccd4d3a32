-- Specs for moonwire.app: loading an app folder, its errors, and app-local
-- modules across reloads.

require "moonwire.core"  -- the real core (moonwire/core.so): scandir, log
local tmpdir = require "support.tmpdir"
local app_loader = require "moonwire.app"
local protocol = require "moonwire.protocol"


describe("moonwire.app", function()
    local dir

    before_each(function()
        dir = tmpdir.new()
    end)

    after_each(function()
        tmpdir.remove(dir)
    end)

    local function write(rel, content)
        return tmpdir.write(dir, rel, content)
    end

    local function escape(s)
        return (s:gsub("%p", "%%%0"))
    end

    -- Loads and expects failure; err must start with "path:LINE: ".
    local function load_error(path, line)
        local app, err = app_loader.load(dir)
        assert.is_nil(app)
        assert.is_string(err)
        assert.matches("^" .. escape(path) .. ":" .. line .. ": ", err)
        return err
    end

    it("loads controllers, hooks and config", function()
        write("controllers/chat.lua", [[
            local M = {}
            function M.send() end
            function M.join() end
            function M._private() end
            return M
        ]])
        write("controllers/room.lua", "return { list = function() end }")
        write("controllers/README.md", "not a controller")
        write("controllers/sub/x.lua", "error('must not be loaded')")
        write("controllers/.#chat.lua", "error('an editor lock file, not a controller')")
        write("app.lua", "return { on_connect = function() end, helper = 1 }")
        local config = { port = 1, app = { greeting = "hi" } }
        local app = assert(app_loader.load(dir, { config = config }))
        assert.same({ "chat.join", "chat.send", "room.list" }, app:routes())
        assert.is_function(app.hooks.on_connect)
        assert.is_nil(app.hooks.helper)
        assert.same({ greeting = "hi" }, app.config)
        assert.same({}, app.state)
        assert.equal(protocol, app.protocol)
    end)

    it("loads an app with no controllers folder", function()
        local app = assert(app_loader.load(dir))
        assert.same({}, app:routes())
    end)

    it("fails on a missing app folder", function()
        local app, err = app_loader.load(dir .. "/nope")
        assert.is_nil(app)
        assert.matches("no such directory", err)
    end)

    it("reports syntax errors with file:line", function()
        local path = write("controllers/bad.lua", "local M = {}\nfunction M.x(\nreturn M\n")
        local err = load_error(path, 3)
        assert.matches("expected near 'return'", err)
    end)

    it("reports runtime errors with file:line", function()
        local path = write("controllers/boom.lua", "local M = {}\n\nlocal x = nil + 1\nreturn M\n")
        local err = load_error(path, 3)
        assert.matches("arithmetic", err)
    end)

    it("reports errors without a position (level 0, tables) at the raising line", function()
        local path = write("controllers/zero.lua", "\nerror('plain', 0)\n")
        assert.matches("plain$", load_error(path, 2))
        tmpdir.remove(dir)
        dir = tmpdir.new()
        path = write("controllers/tbl.lua", "\n\nerror({ message = 'as table' })\n")
        assert.matches("as table$", load_error(path, 3))
        tmpdir.remove(dir)
        dir = tmpdir.new()
        path = write("controllers/nil.lua", "error()\n")
        assert.matches("nil value", load_error(path, 1))
    end)

    it("rejects a controller that does not return a table", function()
        local path = write("controllers/none.lua", "local M = {}\nfunction M.x() end\nreturn 'M'\n")
        assert.matches("controller must return a table, got string$", load_error(path, 3))
    end)

    it("rejects a controller file name that is not a valid type", function()
        local path = write("controllers/9lives.lua", "return {}")
        assert.matches("invalid controller name '9lives'", load_error(path, 1))
    end)

    it("rejects an invalid action name at its definition", function()
        local path = write("controllers/x.lua",
                           "local M = {}\n\nM['bad name'] = function() end\nreturn M\n")
        assert.matches("invalid action name 'bad name'", load_error(path, 3))
    end)

    it("validates app.lua", function()
        local path = write("app.lua", "return 5\n")
        assert.matches("must return a table of hooks", load_error(path, 1))
        path = write("app.lua", "return {\n  on_mesage = function() end,\n}\n")
        assert.matches("unknown hook 'on_mesage'", load_error(path, 2))
        path = write("app.lua", "return { on_start = true }\n")
        assert.matches("hook 'on_start' must be a function", load_error(path, 1))
    end)

    it("validates protocol.lua and falls back to the default for the rest", function()
        local path = write("protocol.lua", "return { decode = function() end }\n")
        assert.matches("protocol must provide a function 'encode'", load_error(path, 1))

        write("protocol.lua", [[
            return {
                decode = function(p) return { type = "raw", action = "in", data = p } end,
                encode = function(v) return tostring(v.data), true end,
                name = "raw",
            }
        ]])
        local app = assert(app_loader.load(dir))
        assert.equal("raw", app.protocol.name)
        assert.same({ type = "raw", action = "in", data = "x" }, app.protocol.decode("x"))
        assert.equal(protocol.reply, app.protocol.reply)
        assert.equal(protocol.error, app.protocol.error)
        assert.equal(protocol.event, app.protocol.event)
    end)

    it("gives the runtime the protocol as a plain table of its functions", function()
        -- Read per message: a field, not an __index call (docs/performance.md).
        write("protocol.lua", [[
            local base = { name = "inherited", error = function() return "base" end }
            return setmetatable({
                decode = function(p) return { type = "raw", action = "in", data = p } end,
                encode = function(v) return tostring(v), false end,
            }, { __index = base })
        ]])
        local app = assert(app_loader.load(dir))
        for _, name in ipairs({ "decode", "encode", "reply", "event", "error" }) do
            assert.is_function(rawget(app.protocol, name), name)
        end
        assert.equal(protocol.reply, rawget(app.protocol, "reply"))
        assert.equal(protocol.INVALID_MESSAGE, rawget(app.protocol, "INVALID_MESSAGE"))
        -- What the app's table inherits is its own, as before.
        assert.equal("base", app.protocol.error())
        assert.equal("inherited", app.protocol.name)
    end)

    it("returns nil, err instead of raising when something unexpected fails", function()
        write("controllers/a.lua", "return {}")
        local core = package.loaded["moonwire.core"]
        local scandir = core.scandir
        core.scandir = function() error("disk on fire") end
        local ok, app, err = pcall(app_loader.load, dir)
        core.scandir = scandir
        assert.is_true(ok)
        assert.is_nil(app)
        assert.matches("disk on fire", err)
    end)

    describe("app-local modules", function()
        local function counter_app(start)
            write("lib/counter.lua", "local M = { n = " .. start .. " }\n"
                  .. "function M.bump() M.n = M.n + 1; return M.n end\nreturn M\n")
            write("controllers/count.lua", [[
                local counter = require "lib.counter"
                return { bump = function() return counter.bump() end }
            ]])
        end

        after_each(function()
            package.loaded["lib.counter"] = nil
            package.loaded["lib.other"] = nil
        end)

        it("are resolved from the app folder and recorded", function()
            counter_app(0)
            local app = assert(app_loader.load(dir))
            assert.same({ "lib.counter" }, app:modules())
            assert.equal(1, app.router:find("count", "bump")())
            assert.equal(0 + 1, package.loaded["lib.counter"].n)
        end)

        it("are loaded fresh on reload", function()
            counter_app(0)
            local old = assert(app_loader.load(dir))
            local old_bump = old.router:find("count", "bump")
            old_bump()
            old_bump()
            counter_app(100)
            local new = assert(app_loader.load(dir, { previous = old }))
            assert.equal(101, new.router:find("count", "bump")())
            assert.equal(3, old_bump())   -- the old code keeps its own module
        end)

        it("are restored when the new app fails to load", function()
            counter_app(0)
            local old = assert(app_loader.load(dir))
            local old_module = package.loaded["lib.counter"]
            write("lib/counter.lua", "return { n = 5 }\n")
            write("lib/other.lua", "return {}\n")
            local path = write("controllers/late.lua", "require 'lib.other'\nlocal x = {} + 1\n")
            local new, err = app_loader.load(dir, { previous = old })
            assert.is_nil(new)
            assert.matches("^" .. escape(path) .. ":2: ", err)
            assert.equal(old_module, package.loaded["lib.counter"])
            assert.is_nil(package.loaded["lib.other"])
        end)

        it("report errors inside the module with its own file:line", function()
            local path = write("lib/counter.lua", "local M = {}\nM.x = nil .. 'x'\nreturn M\n")
            write("controllers/count.lua", "require 'lib.counter'\nreturn {}\n")
            local app, err = app_loader.load(dir)
            assert.is_nil(app)
            assert.matches("^" .. escape(path) .. ":2: ", err)
            assert.is_nil(package.loaded["lib.counter"])
        end)

        it("include modules found through package.path inside the app folder", function()
            write("vendor/thing.lua", "return { loaded_at = os.clock() }\n")
            write("controllers/t.lua", "local thing = require 'thing'\n"
                                       .. "return { x = function() return thing end }\n")
            local saved = package.path
            package.path = dir .. "/vendor/?.lua;" .. package.path
            local app, err = app_loader.load(dir)
            local again = app and app_loader.load(dir, { previous = app })
            package.path = saved
            package.loaded.thing = nil
            assert.is_nil(err)
            assert.same({ "thing" }, app:modules())
            assert.is_table(again)
            assert.are_not.equal(app.router:find("t", "x")(), again.router:find("t", "x")())
        end)

        it("are searched in the active app at run time", function()
            write("controllers/lazy.lua", [[
                return { get = function() return require("lib.other").value end }
            ]])
            write("lib/other.lua", "return { value = 'lazy' }\n")
            local app = assert(app_loader.load(dir))
            app:activate()
            assert.equal("lazy", app.router:find("lazy", "get")())
            assert.same({ "lib.other" }, app:modules())
        end)
    end)
end)
