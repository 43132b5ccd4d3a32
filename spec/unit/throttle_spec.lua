-- Per-route throttles come before any app code: a throttled message runs
-- neither on_message, nor the require_auth check, nor the router's lookup
-- (docs/lua-api.md, "Per-route throttles"). Driven through the harness
-- of moonwire.testing, as an app's own spec would be.

local tmpdir = require "support.tmpdir"
local testing = require "moonwire.testing"


describe("per-route throttles", function()
    local dir

    before_each(function()
        dir = tmpdir.new()
        tmpdir.write(dir, "config.lua", "return { welcome = false }")
        tmpdir.write(dir, "app.lua", [[
            local M = {}
            function M.on_message(client, msg)
                local seen = client.data.seen or {}
                client.data.seen = seen
                local route = msg.type .. "." .. msg.action
                seen[route] = (seen[route] or 0) + 1
            end
            return M
        ]])
        tmpdir.write(dir, "controllers/t.lua", [[
            local M = {}
            M._throttle = { say = { window_ms = 60000, max_messages = 2 } }
            function M.say() return { said = true } end
            function M.seen(client) return client.data.seen end
            return M
        ]])
    end)

    after_each(function()
        tmpdir.remove(dir)
    end)

    it("drops a throttled message before on_message sees it", function()
        local app = assert(testing.load_app(dir))
        local ws = app:connect()
        local codes = {}
        for i = 1, 5 do
            local r = ws:request("t", "say")
            codes[i] = r.error and r.error.code or "ok"
        end
        assert.same({ "ok", "ok", "RATE_LIMIT_EXCEEDED", "RATE_LIMIT_EXCEEDED",
                      "RATE_LIMIT_EXCEEDED" }, codes)
        assert.same({ ["t.say"] = 2, ["t.seen"] = 1 }, ws:request("t", "seen").data)
    end)

    it("answers a throttled message before require_auth does", function()
        local app = assert(testing.load_app(dir, { config = { require_auth = true } }))
        local ws = app:connect()
        local codes = {}
        for i = 1, 3 do
            codes[i] = ws:request("t", "say").error.code
        end
        assert.same({ "AUTHENTICATION_FAILED", "AUTHENTICATION_FAILED", "RATE_LIMIT_EXCEEDED" },
                    codes)
    end)
end)
