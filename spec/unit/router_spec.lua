-- Specs for moonwire.router.

require "moonwire.core"  -- the real core (moonwire/core.so): scandir, log
local router = require "moonwire.router"


describe("moonwire.router", function()
    local r

    local chat = {
        send = function() return "send" end,
        join = function() return "join" end,
        _helper = function() return "private" end,
        LIMIT = 10,
    }

    before_each(function()
        r = router.new()
        r:add("chat", chat)
        r:add("room-admin", { kick = function() end })
    end)

    it("routes built-in controllers but leaves them out of routes()", function()
        local sys = { ping = function() return "pong" end }
        assert.is_false(r:has("system"))
        r:add("system", sys, true)
        assert.is_true(r:has("system"))
        assert.equal(sys.ping, r:find("system", "ping"))
        assert.same({ "chat.join", "chat.send", "room-admin.kick" }, r:routes())
    end)

    it("finds actions by type and name", function()
        assert.equal(chat.send, r:find("chat", "send"))
        assert.equal(chat.join, r:find("chat", "join"))
    end)

    it("labels each action with where it is defined, for the watchdog", function()
        local fn, label = r:find("chat", "send")
        assert.equal(chat.send, fn)
        assert.matches("^chat%.send %(.*router_spec%.lua:11%)$", label)
        local r2 = router.new()
        r2:add("c", { len = string.len })
        fn, label = r2:find("c", "len")
        assert.equal(string.len, fn)
        assert.equal("c.len", label)
    end)

    it("lists sorted routes, skipping private names and non-functions", function()
        assert.same({ "chat.join", "chat.send", "room-admin.kick" }, r:routes())
    end)

    it("returns NOT_FOUND for unknown types and actions", function()
        local fn, code, message = r:find("nope", "send")
        assert.is_nil(fn)
        assert.equal("NOT_FOUND", code)
        assert.equal("unknown type 'nope'", message)
        fn, code, message = r:find("chat", "_helper")
        assert.is_nil(fn)
        assert.equal("NOT_FOUND", code)
        assert.equal("unknown action '_helper' for type 'chat'", message)
        assert.is_nil(r:find("chat", "LIMIT"))
        assert.is_nil(r:find("chat", nil))
    end)

    it("does not echo long client-supplied names in full", function()
        local _, _, message = r:find(("x"):rep(1000), "a")
        assert.is_true(#message < 100)
    end)

    it("snapshots the controller when added", function()
        local ctl = { a = function() end }
        local r2 = router.new()
        r2:add("t", ctl)
        ctl.b = function() end
        assert.same({ "t.a" }, r2:routes())
    end)

    it("raises on misuse", function()
        assert.has_error(function() r:add("chat", {}) end,
                         "controller 'chat' is already registered")
        assert.has_error(function() r:add("x", "nope") end,
                         "controller 'x' must be a table, got string")
        assert.error_matches(function() r:add("9lives", {}) end, "invalid controller type 9lives")
        assert.error_matches(function() r:add("a.b", {}) end, "invalid controller type a.b")
        assert.error_matches(function() r:add("ok", { ["bad name"] = function() end }) end,
                             "invalid action name 'bad name' in controller 'ok'")
    end)

    it("validates names", function()
        assert.is_true(router.is_valid_name("chat_v2"))
        assert.is_true(router.is_valid_name("room-admin"))
        assert.is_false(router.is_valid_name("_x"))
        assert.is_false(router.is_valid_name("a.b"))
        assert.is_false(router.is_valid_name(""))
        assert.is_false(router.is_valid_name(1))
    end)

    describe("_throttle", function()
        local function ctl(throttle)
            return { typing = function() end, say = function() end, _throttle = throttle }
        end

        it("keeps a checked copy per route", function()
            local rr = router.new()
            rr:add("chat", ctl({ typing = { window_ms = 1000, max_messages = 1, silent = true } }))
            assert.same(
                { window_ms = 1000, max_messages = 1, silent = true, route = "chat.typing" },
                rr:throttle("chat", "typing"))
            assert.is_nil(rr:throttle("chat", "say"))
            assert.is_nil(rr:throttle("other", "typing"))
        end)

        it("refuses unknown actions and bad limits, naming the field", function()
            assert.error_matches(function() router.new():add("chat", ctl({ nope = {} })) end,
                                 "_throttle.nope: no such action", 1, true)
            assert.error_matches(function()
                router.new():add("chat", ctl({ say = { window_ms = 0, max_messages = 1 } }))
            end, "_throttle.say must be", 1, true)
            assert.error_matches(function()
                router.new():add("chat", ctl({ say = { window_ms = 10, max_messages = 1.5 } }))
            end, "_throttle.say must be", 1, true)
            assert.error_matches(function()
                local say = { window_ms = 10, max_messages = 1, silent = 1 }
                router.new():add("chat", ctl({ say = say }))
            end, "silent must be a boolean", 1, true)
            assert.error_matches(function() router.new():add("chat", ctl(5)) end,
                                 "_throttle must be a table", 1, true)
        end)
    end)
end)
