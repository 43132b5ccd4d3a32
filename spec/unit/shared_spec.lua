-- Specs for moonwire.shared on the real core (moonwire/core.so): dicts
-- declared by the harness's config, every method, expiry on the virtual
-- clock, eviction and the safe variants, misuse raising, /metrics, and an
-- app's handler reaching a dict.

local tmpdir = require "support.tmpdir"
local testing = require "moonwire.testing"
local moonwire = require "moonwire"


describe("moonwire.shared", function()
    local dir, app

    before_each(function()
        dir = tmpdir.new()
        tmpdir.write(dir, "controllers/hits.lua", [[
            local moonwire = require "moonwire"
            local counters = assert(moonwire.shared.dict("counters"))
            local M = {}
            function M.hit(client, data)
                return { n = counters:incr(data.page, 1, 0) }
            end
            return M
        ]])
        app = assert(testing.load_app(dir, {
            clock = 1000000,
            config = { shared_dicts = { "cache:64k", "counters:16k", "tiny:16k" } },
        }))
    end)

    after_each(function()
        app:close()
        tmpdir.remove(dir)
    end)

    it("finds declared dicts by name, and says so for others", function()
        local d = moonwire.shared.dict("cache")
        assert.truthy(d)
        assert.equal("cache", d:name())
        assert.equal('moonwire.shared.dict("cache")', tostring(d))
        local none, err = moonwire.shared.dict("nope")
        assert.is_nil(none)
        assert.equal("no such dict", err)
        assert.has_error(function() moonwire.shared.dict(42) end)
    end)

    it("stores strings, numbers and booleans, with flags", function()
        local d = moonwire.shared.dict("cache")
        assert.is_true((d:set("s", "hello")))
        assert.is_true((d:set("n", 3.25)))
        assert.is_true((d:set("t", true)))
        assert.is_true((d:set("f", false)))
        assert.is_true((d:set("bin", "a\0b")))
        assert.is_true((d:set("flagged", "x", 0, 42)))
        assert.equal("hello", d:get("s"))
        assert.equal(3.25, d:get("n"))
        assert.is_true(d:get("t"))
        assert.is_false(d:get("f"))
        assert.equal("a\0b", d:get("bin"))
        local v, flags = d:get("flagged")
        assert.equal("x", v)
        assert.equal(42, flags)
        assert.is_nil(select(2, d:get("s")))
        assert.is_nil(d:get("missing"))
        -- set to nil deletes, delete of an absent key is fine
        d:set("s", nil)
        assert.is_nil(d:get("s"))
        assert.is_true(d:delete("n"))
        assert.is_true(d:delete("n"))
        assert.is_nil(d:get("n"))
    end)

    it("add only when absent, replace only when present", function()
        local d = moonwire.shared.dict("cache")
        local ok, err = d:replace("k", 1)
        assert.is_nil(ok)
        assert.equal("not found", err)
        assert.is_true((d:add("k", 1)))
        ok, err = d:add("k", 2)
        assert.is_nil(ok)
        assert.equal("exists", err)
        assert.equal(1, d:get("k"))
        assert.is_true((d:replace("k", 2)))
        assert.equal(2, d:get("k"))
        ok, err = d:safe_add("k", 3)
        assert.is_nil(ok)
        assert.equal("exists", err)
    end)

    it("incr counts, with init and init_ttl", function()
        local d = moonwire.shared.dict("counters")
        local v, err = d:incr("c", 1)
        assert.is_nil(v)
        assert.equal("not found", err)
        assert.equal(11, d:incr("c", 1, 10))
        assert.equal(8.5, d:incr("c", -2.5, 10))
        d:set("s", "text")
        v, err = d:incr("s", 1, 0)
        assert.is_nil(v)
        assert.equal("not a number", err)
        assert.equal(1, d:incr("ttl", 1, 0, 500))
        assert.equal(500, d:ttl("ttl"))
        app:advance(500)
        assert.is_nil(d:get("ttl"))
        assert.equal(1, d:incr("ttl", 1, 0))
        assert.has_error(function() d:incr("c", "x") end)
    end)

    it("expires keys on the server's clock: ttl, expire, flush_expired", function()
        local d = moonwire.shared.dict("cache")
        d:set("short", "v", 1000)
        d:set("forever", "v")
        assert.equal(1000, d:ttl("short"))
        assert.equal(0, d:ttl("forever"))
        app:advance(400)
        assert.equal(600, d:ttl("short"))
        assert.is_true(d:expire("forever", 100))
        assert.equal(100, d:ttl("forever"))
        assert.is_true(d:expire("forever", 0))
        assert.equal(0, d:ttl("forever"))
        local ok, err = d:expire("missing", 10)
        assert.is_nil(ok)
        assert.equal("not found", err)
        app:advance(600)
        assert.is_nil(d:get("short"))
        local ttl
        ttl, err = d:ttl("short")
        assert.is_nil(ttl)
        assert.equal("not found", err)
        for i = 1, 5 do d:set("e" .. i, i, 10) end
        app:advance(10)
        assert.equal(2, d:flush_expired(2))
        assert.equal(3, d:flush_expired())
        assert.equal("v", d:get("forever"))
    end)

    it("lists keys, most recent first, and flushes all", function()
        local d = moonwire.shared.dict("cache")
        d:set("a", 1)
        d:set("b", 2, 10)
        d:set("c", 3)
        assert.same({ "c", "b", "a" }, d:get_keys())
        assert.same({ "c" }, d:get_keys(1))
        app:advance(10)
        assert.same({ "c", "a" }, d:get_keys(0))
        local cap = d:capacity()
        assert.truthy(cap > 60 * 1024 and cap < 64 * 1024)
        assert.truthy(d:free_space() < cap)
        assert.is_true(d:flush_all())
        assert.equal(cap, d:free_space())
        assert.same({}, d:get_keys())
    end)

    it("evicts the least recently used for set, fails safely for safe_set", function()
        local d = moonwire.shared.dict("tiny")
        local value = string.rep("v", 100)
        local n = 0
        while d:safe_set("k" .. n, value) do n = n + 1 end
        local ok, err = d:safe_set("k" .. n, value)
        assert.is_nil(ok)
        assert.equal("no memory", err)
        assert.truthy(n > 20)
        d:get("k0")  -- k1 is now the least recently used
        local forcible
        ok, forcible = d:set("new", value)
        assert.is_true(ok)
        assert.is_true(forcible)
        assert.is_nil(d:get("k1"))
        assert.equal(value, d:get("k0"))
        ok, err = d:set("huge", string.rep("x", 20000))
        assert.is_nil(ok)
        assert.equal("value too large", err)
        assert.matches('moonwire_shdict_evictions_total{dict="tiny"} 1', app:metrics(), 1, true)
    end)

    it("raises on misuse", function()
        local d = moonwire.shared.dict("cache")
        assert.has_error(function() d:set({}, 1) end)
        assert.has_error(function() d:set("k", {}) end)
        assert.has_error(function() d:set("k", 1, -1) end)
        assert.has_error(function() d:set("k", 1, 0, -1) end)
        assert.has_error(function() d:get(string.rep("k", moonwire.shared.key_max + 1)) end)
        assert.is_true((d:set(string.rep("k", moonwire.shared.key_max), 1)))
        assert.has_error(function() d.get("k") end)
        assert.has_error(function() d:get_keys(-1) end)
    end)

    it("keeps its content across a hot reload", function()
        local c = app:connect()
        assert.equal(1, assert(c:request("hits", "hit", { page = "/r" })).data.n)
        tmpdir.write(dir, "controllers/hits.lua", [[
            local moonwire = require "moonwire"
            local counters = assert(moonwire.shared.dict("counters"))
            local M = {}
            function M.hit(client, data)
                return { n = counters:incr(data.page, 10, 0), reloaded = true }
            end
            return M
        ]])
        assert.truthy(app:reload())
        local reply = assert(c:request("hits", "hit", { page = "/r" }))
        assert.same({ n = 11, reloaded = true }, reply.data)
    end)

    it("serves an app's handlers and shows in /metrics", function()
        local c = app:connect()
        local reply = assert(c:request("hits", "hit", { page = "/" }))
        assert.same({ n = 1 }, reply.data)
        reply = assert(c:request("hits", "hit", { page = "/" }))
        assert.same({ n = 2 }, reply.data)
        assert.equal(2, moonwire.shared.dict("counters"):get("/"))
        local metrics = app:metrics()
        assert.matches('moonwire_shdict_bytes{dict="cache"} %d+', metrics)
        assert.matches('moonwire_shdict_free_bytes{dict="counters"} %d+', metrics)
        assert.matches('moonwire_shdict_keys{dict="counters"} 1', metrics, 1, true)
        assert.matches('moonwire_shdict_recoveries_total{dict="cache"} 0', metrics, 1, true)
    end)
end)


describe("moonwire.shared without dicts", function()
    it("has no dicts when the config declares none", function()
        local dir = tmpdir.new()
        local app = assert(testing.load_app(dir, {}))
        local d, err = moonwire.shared.dict("cache")
        assert.is_nil(d)
        assert.equal("no such dict", err)
        app:close()
        tmpdir.remove(dir)
    end)

    it("refuses a bad shared_dicts, naming the key", function()
        local dir = tmpdir.new()
        local bads = { { "cache" }, { "cache:1k" }, { cache = "10m" }, { "a:16k", "a:32k" } }
        for _, bad in ipairs(bads) do
            local app, err = testing.load_app(dir, { config = { shared_dicts = bad } })
            assert.is_nil(app)
            assert.matches("shared_dicts", err, 1, true)
        end
        tmpdir.remove(dir)
    end)

    it("a handle outlives its server's dicts without touching them", function()
        local dir = tmpdir.new()
        local app = assert(testing.load_app(dir, { config = { shared_dicts = { "cache:16k" } } }))
        local d = moonwire.shared.dict("cache")
        d:set("k", 1)
        app:close()
        assert.has_error(function() d:get("k") end, 'shared dict "cache" is gone')
        -- a new server with a dict of that name: the handle finds the new one
        app = assert(testing.load_app(dir, { config = { shared_dicts = { "cache:16k" } } }))
        assert.is_nil(d:get("k"))
        app:close()
        tmpdir.remove(dir)
    end)
end)
