-- Specs for what /metrics says about Lua: handling time per route (waits
-- included), errors by code, and what waits (tasks, queued messages, held
-- clients), on the real core and its virtual clock. On that clock a
-- handler that never waits takes 0 and one that sleeps takes exactly its
-- sleep, so every bucket is known.

local tmpdir = require "support.tmpdir"
local testing = require "moonwire.testing"


-- The samples of a /metrics text: { ['name{labels}'] = value }, with the
-- labels as written (the server writes route before le).
local function samples(text)
    local out = {}
    for line in text:gmatch("[^\n]+") do
        if line:sub(1, 1) ~= "#" then
            local series, value = line:match("^(.+) (%S+)$")
            assert(series, "not a sample line: " .. line)
            out[series] = tonumber(value)
        end
    end
    return out
end


-- The samples of one route's histogram, by le, plus sum and count.
local function histogram(all, route)
    local h = { le = {} }
    local prefix = 'moonwire_message_duration_seconds_'
    local quoted = '{route="' .. route .. '"'
    for series, value in pairs(all) do
        local le = series:match("^" .. prefix .. "bucket" .. quoted:gsub("%p", "%%%0")
                                .. ',le="([^"]+)"}$')
        if le then
            h.le[le] = value
        elseif series == prefix .. "sum" .. quoted .. "}" then
            h.sum = value
        elseif series == prefix .. "count" .. quoted .. "}" then
            h.count = value
        end
    end
    return h
end


describe("metrics of the Lua side", function()
    local dir, app

    local function load(config)
        local cfg = { welcome = false }
        for k, v in pairs(config or {}) do
            cfg[k] = v
        end
        app = assert(testing.load_app(dir, { config = cfg, clock = 1000000 }))
        return app
    end

    local function scrape()
        return samples(app:metrics())
    end

    before_each(function()
        dir = tmpdir.new()
        tmpdir.write(dir, "controllers/work.lua", [[
            local moonwire = require "moonwire"
            local M = {}
            function M.nap(client, data)
                assert(moonwire.sleep(data.ms))
                return true
            end
            function M.quick(client, data) return true end
            function M.refuse(client, data) moonwire.fail(data.code, "no") end
            function M.deny(client, data) return nil, { code = data.code, message = "no" } end
            function M.nap_then_fail(client, data)
                moonwire.sleep(10)
                local t = nil
                return t.field
            end
            return M
        ]])
        tmpdir.write(dir, "app.lua", [[
            local moonwire = require "moonwire"
            local M = {}
            -- work.hooked waits in the hook, then is refused before routing
            function M.on_message(client, msg)
                if msg.action == "hooked" then
                    moonwire.sleep(20)
                    return nil, { code = "HOOKED", message = "refused by the hook" }
                end
                return true
            end
            function M.authenticate(request)
                if request.token == nil then
                    return nil -- no credential: connect unauthenticated
                elseif request.token == "good" then
                    return { id = "u1" }
                end
                return nil, "bad token"
            end
            return M
        ]])
    end)

    after_each(function()
        if app then
            app:close()
            app = nil
        end
        tmpdir.remove(dir)
    end)

    describe("moonwire_message_duration_seconds", function()
        it("times a handler that waits by its route, the wait included", function()
            load()
            local ws = app:connect()
            ws:send('{"type":"work","action":"nap","id":1,"data":{"ms":50}}')
            app:advance(50)
            assert.equal(1, #ws:sent())
            local h = histogram(scrape(), "work.nap")
            assert.equal(1, h.count)
            assert.equal(0.05, h.sum)
            assert.equal(0, h.le["0.025"])
            assert.equal(1, h.le["0.05"])
            assert.equal(1, h.le["+Inf"])
        end)

        it("times a handler that never waits at 0 on the virtual clock", function()
            load()
            local ws = app:connect()
            ws:request("work", "quick", {})
            ws:request("work", "quick", {})
            local h = histogram(scrape(), "work.quick")
            assert.equal(2, h.count)
            assert.equal(0, h.sum)
            assert.equal(2, h.le["2.5e-05"])
        end)

        it("puts messages that were never routed under unrouted", function()
            load()
            local ws = app:connect()
            assert.equal("INVALID_MESSAGE", ws:send("not json")[1].error.code)
            assert.equal("NOT_FOUND", ws:request("work", "nope", {}).error.code)
            local h = histogram(scrape(), "unrouted")
            assert.equal(2, h.count)
            assert.is_nil(histogram(scrape(), "work.nope").count)
        end)

        it("does not charge a wait before routing to the previous message's route", function()
            load()
            local ws = app:connect()
            ws:request("work", "quick", {})
            ws:send('{"type":"work","action":"hooked","id":"h"}')
            -- another client's message runs while the hook waits
            app:connect():request("work", "quick", {})
            app:advance(20)
            assert.equal("HOOKED", ws:sent()[2].error.code)
            local all = scrape()
            local quick, unrouted = histogram(all, "work.quick"), histogram(all, "unrouted")
            assert.same({ 2, 0 }, { quick.count, quick.sum })
            assert.same({ 1, 0.02 }, { unrouted.count, unrouted.sum })
        end)

        it("times a handler that fails after a wait, its error answer included", function()
            load()
            local ws = app:connect()
            ws:send('{"type":"work","action":"nap_then_fail","id":"f"}')
            app:advance(10)
            assert.equal("INTERNAL_ERROR", ws:sent()[1].error.code)
            local h = histogram(scrape(), "work.nap_then_fail")
            assert.same({ 1, 0.01 }, { h.count, h.sum })
        end)

        it("times auth messages under system.auth", function()
            load()
            local ws = app:connect()
            ws:send('{"type":"auth","token":"good"}')
            assert.equal(1, histogram(scrape(), "system.auth").count)
        end)

        it("keeps counting across a reload", function()
            load()
            local ws = app:connect()
            ws:request("work", "quick", {})
            assert(app:reload())
            ws:request("work", "quick", {})
            assert.equal(2, histogram(scrape(), "work.quick").count)
        end)
    end)

    describe("moonwire_errors_total", function()
        it("counts every error envelope by its code", function()
            load()
            local ws = app:connect()
            ws:request("work", "refuse", { code = "MY_CODE" })
            ws:request("work", "refuse", { code = "MY_CODE" })
            ws:request("work", "deny", { code = 'odd "code"' })
            ws:send("not json")
            ws:send('{"type":"auth","token":"bad"}')
            local all = scrape()
            assert.equal(2, all['moonwire_errors_total{code="MY_CODE"}'])
            assert.equal(1, all['moonwire_errors_total{code="odd \\"code\\""}'])
            assert.equal(1, all['moonwire_errors_total{code="INVALID_MESSAGE"}'])
            assert.equal(1, all['moonwire_errors_total{code="AUTHENTICATION_FAILED"}'])
        end)

        it("keeps at most 64 codes; the rest are counted under other", function()
            load()
            local ws = app:connect()
            for i = 1, 70 do
                ws:request("work", "refuse", { code = "CODE_" .. i })
            end
            local n, total = 0, 0
            for series, value in pairs(scrape()) do
                if series:find("^moonwire_errors_total{") then
                    n = n + 1
                    total = total + value
                end
            end
            assert.equal(65, n)
            assert.equal(70, total)
            assert.equal(6, scrape()['moonwire_errors_total{code="other"}'])
        end)
    end)

    describe("what waits", function()
        it("reports waiting tasks, queued messages and held clients, in /health too", function()
            load({ max_pending_messages = 2 })
            local a, b = app:connect(), app:connect()
            a:send('{"type":"work","action":"nap","id":1,"data":{"ms":100}}')
            a:send('{"type":"work","action":"quick","id":2}')
            b:send('{"type":"work","action":"nap","id":3,"data":{"ms":100}}')
            b:send('{"type":"work","action":"quick","id":4}')
            b:send('{"type":"work","action":"quick","id":5}')
            local all = scrape()
            assert.equal(2, all.moonwire_lua_tasks_waiting)
            assert.equal(3, all.moonwire_lua_queued_messages)
            assert.equal(1, all.moonwire_lua_held_clients) -- b: 2 queued
            assert.equal(2, all.moonwire_lua_waits_total)
            local lua = app:health().lua
            assert.same({ 2, 3, 1, 0 }, { lua.tasks_waiting, lua.queued_messages,
                                          lua.held_clients, lua.wait_timeouts })
            app:advance(100)
            all = scrape()
            assert.same({ 0, 0, 0 }, { all.moonwire_lua_tasks_waiting,
                                       all.moonwire_lua_queued_messages,
                                       all.moonwire_lua_held_clients })
            -- a queued message is timed from when its own task starts, after
            -- the nap: time spent queued is not its handler's
            local quick = histogram(all, "work.quick")
            assert.same({ 3, 0 }, { quick.count, quick.sum })
        end)
    end)
end)
