-- client:authorize(action, resource): the app's authorize hook, asked with
-- exactly the semantics the system controller uses before join, publish
-- and broadcast (docs/lua-api.md, "client:authorize"). Driven through the
-- harness of moonwire.testing, as an app's own spec would be.

local tmpdir = require "support.tmpdir"
local testing = require "moonwire.testing"


local HOOKS = [[
local moonwire = require "moonwire"
local M = {}
function M.authorize(client, action, resource)
    client.data.asked = { action = action, resource = resource or "(nil)" }
    if resource == "raise" then error("the hook broke") end
    if resource == "fail" then moonwire.fail("AUTHORIZATION_FAILED", "by fail") end
    if resource == "table" then return nil, { message = "from a table" } end
    if resource == "silent" then return false end
    if resource and resource:find("^private") then return false, "admins only" end
    return true
end
return M
]]

-- doc.may: whatever client:authorize answered, as data; doc.edit: the
-- usual shape, passing the error on.
local DOC = [[
local M = {}
function M.may(client, data)
    local ok, err = client:authorize(data.action, data.resource)
    return { ok = ok or false, err = err or false, asked = client.data.asked }
end
function M.edit(client, data)
    local ok, err = client:authorize("edit", data.doc)
    if not ok then return nil, err end
    return { edited = data.doc }
end
function M.misuse(client, data)
    return client:authorize(data.action)
end
return M
]]


describe("client:authorize", function()
    local dir, app, ws

    before_each(function()
        dir = tmpdir.new()
        tmpdir.write(dir, "config.lua", "return { welcome = false }")
        tmpdir.write(dir, "app.lua", HOOKS)
        tmpdir.write(dir, "controllers/doc.lua", DOC)
        app = assert(testing.load_app(dir))
        ws = app:connect()
    end)

    after_each(function()
        tmpdir.remove(dir)
    end)

    local function may(action, resource)
        return ws:request("doc", "may", { action = action, resource = resource }).data
    end

    it("returns true when the hook allows, passing it the client, action and resource", function()
        assert.same({ ok = true, err = false, asked = { action = "edit", resource = "readme" } },
                    may("edit", "readme"))
        assert.same({ action = "broadcast", resource = "(nil)" }, may("broadcast").asked)
    end)

    it("returns nil and an AUTHORIZATION_FAILED error table when the hook refuses", function()
        local no = { code = "AUTHORIZATION_FAILED", message = "not allowed" }
        assert.same({ code = "AUTHORIZATION_FAILED", message = "admins only" },
                    may("edit", "private-1").err)
        assert.same({ code = "AUTHORIZATION_FAILED", message = "from a table" },
                    may("edit", "table").err)
        assert.same(no, may("edit", "silent").err)
        assert.same(no, may("edit", "fail").err)      -- moonwire.fail: refused, not logged
        assert.same({}, app:logs("error"))
        assert.same(no, may("edit", "raise").err)     -- a raise: refused and logged
        local lines = app:logs("error")
        assert.equal(1, #lines)
        assert.matches("hook authorize failed: .*the hook broke", lines[1].message)
    end)

    it("gives an action an error it can return as is", function()
        assert.same({ edited = "readme" }, ws:request("doc", "edit", { doc = "readme" }).data)
        assert.same({ code = "AUTHORIZATION_FAILED", message = "admins only" },
                    ws:request("doc", "edit", { doc = "private-2" }).error)
    end)

    it("answers as the system controller does for the same action and resource", function()
        for _, room in ipairs({ "lobby", "private-1", "table", "silent", "raise" }) do
            local via_system = ws:request("system", "join", { room = room })
            local via_client = may("join", room)
            if via_system.error then
                assert.same(via_system.error, via_client.err, room)
            else
                assert.is_true(via_client.ok, room)
            end
        end
    end)

    it("allows everything when the app has no authorize hook", function()
        os.remove(dir .. "/app.lua")
        assert.is_true(app:reload())
        assert.same({ ok = true, err = false }, may("edit", "private-1"))
    end)

    it("raises for an action that is not a non-empty string", function()
        local r = ws:request("doc", "misuse", { action = 42 })
        assert.equal("INTERNAL_ERROR", r.error.code)
        local lines = app:logs("error")
        assert.matches("bad argument #1 to 'authorize' %(non%-empty string expected, got number%)",
                       lines[1].message)
    end)
end)
