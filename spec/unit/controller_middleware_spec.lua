-- Specs for middleware and schemas on controllers, through the real
-- runtime and core: the app-wide `middleware` of app.lua and a
-- controller's _middleware run around its actions (app-wide outermost),
-- a route's _schema answers INVALID_MESSAGE naming the field, require_auth
-- answers AUTHENTICATION_FAILED, rate_limit RATE_LIMIT_EXCEEDED; routes
-- without either are the controller's own functions; mistakes in any of
-- them fail the load naming file:line.

local tmpdir = require "support.tmpdir"
local testing = require "moonwire.testing"


local APP = [[
local moonwire = require "moonwire"
local mw = require "moonwire.middleware"
return {
    authenticate = function(req)
        if req.token == nil then return nil end -- anonymous
        if req.token == "good" then return { id = "ann" } end
        return nil, "bad token"
    end,
    middleware = {
        { name = "app", on_before = function(ctx) moonwire.log.info("app.before " .. ctx.route) end,
          on_after = function(ctx, res) moonwire.log.info("app.after " .. tostring(res)) end,
          on_error = function(ctx, err)
              moonwire.log.info("app.error " .. tostring(type(err) == "table" and err.message
                                                           or err))
          end },
    },
}
]]

local SHOP = [[
local moonwire = require "moonwire"
local mw = require "moonwire.middleware"
local M = {}
M._middleware = {
    { name = "shop", on_before = function(ctx)
          moonwire.log.info("shop.before " .. ctx.type .. " " .. ctx.action)
          if ctx.data and ctx.data.skip then return false end
          if ctx.data and ctx.data.wait then moonwire.sleep(ctx.data.wait) end
          if ctx.data and ctx.data.deny then moonwire.fail("AUTHORIZATION_FAILED", "no shop") end
      end,
      on_after = function(ctx, res) moonwire.log.info("shop.after " .. tostring(res)) end,
      on_error = function(ctx, err)
          if ctx.data and ctx.data.forgive then return true end
      end },
}
M._schema = {
    order = { type = "object", fields = {
        items = { type = "array", min_items = 1, items = { type = "object", fields = {
            sku = { type = "string", min_len = 1 },
            price = { type = "number", min = 0 },
        } } },
    } },
}
function M.order(client, data)
    moonwire.log.info("action order")
    return #data.items
end
function M.ping(client, data)
    moonwire.log.info("action ping")
    return "pong"
end
function M.boom(client, data)
    local t = nil
    return t.x
end
function M.refuse(client, data)
    return nil, { code = "NOT_FOUND", message = "no such thing" }
end
return M
]]

local SECURE = [[
local mw = require "moonwire.middleware"
return {
    _middleware = {
        mw.require_auth(),
        mw.rate_limit{ max = 2, window = 1000, key = function(ctx) return ctx.client.user end },
    },
    whoami = function(client) return client.user end,
}
]]

local PLAIN = [[
local M = {}
function M.echo(client, data) return data end
return M
]]

-- A controller with a schema and no middleware of its own, in an app
-- without app-wide middleware.
local CHECKED = [[
return {
    _schema = { add = { type = "object", fields = { a = "number", b = "number" } } },
    add = function(client, data) return data.a + data.b end,
    free = function(client, data) return "free" end,
}
]]


describe("middleware and schemas on controllers", function()
    local dir, app

    local function load(files)
        dir = tmpdir.new()
        for path, text in pairs(files) do
            tmpdir.write(dir, path, text)
        end
        local err
        app, err = testing.load_app(dir, { config = { welcome = false }, clock = 1000000 })
        return app, err
    end

    local function infos()
        local out = {}
        for _, entry in ipairs(app:logs("info")) do
            out[#out + 1] = entry.message
        end
        return out
    end

    after_each(function()
        if app then
            app:close()
            app = nil
        end
        tmpdir.remove(dir)
    end)

    describe("an app with middleware", function()
        before_each(function()
            assert(load({ ["app.lua"] = APP, ["controllers/shop.lua"] = SHOP,
                          ["controllers/secure.lua"] = SECURE, ["controllers/plain.lua"] = PLAIN }))
        end)

        it("runs the app's middleware outside the controller's, around the action", function()
            local ws = app:connect()
            assert.equal("pong", ws:request("shop", "ping", {}).data)
            assert.same({ "app.before shop.ping", "shop.before shop ping", "action ping",
                          "shop.after pong", "app.after pong" }, infos())
        end)

        it("runs the app's middleware around a controller without its own", function()
            local ws = app:connect()
            assert.same({ x = 1 }, ws:request("plain", "echo", { x = 1 }).data)
            assert.same({ "app.before plain.echo", "app.after table" },
                        { infos()[1], (infos()[2]:gsub("table: .*", "table")) })
        end)

        it("answers INVALID_MESSAGE naming the field that fails the route's schema", function()
            local ws = app:connect()
            local reply = ws:request("shop", "order", { items = { { sku = "a", price = 1 },
                                                                  { sku = "b", price = "2" } } })
            assert.equal("error", reply.type)
            assert.same({ code = "INVALID_MESSAGE",
                          message = "data.items[2].price: expected number, got string" },
                        reply.error)
            reply = ws:request("shop", "order", { items = {} })
            assert.equal("data.items: expected at least 1 items, got 0", reply.error.message)
            reply = ws:request("shop", "order", { items = "three" })
            assert.equal("data.items: expected array, got string", reply.error.message)
            assert.equal(2, ws:request("shop", "order", { items = { { sku = "a", price = 1 },
                                                                    { sku = "b", price = 2 } } })
                                                           .data)
            -- the schema runs inside the middleware: on_error saw each failure
            local text = table.concat(infos(), "\n")
            assert.matches("app.error data.items[2].price: expected number, got string", text,
                           1, true)
            assert.is_nil(text:find("action order\n.*action order"))
        end)

        it("skips the action when on_before says false, replying without data", function()
            local ws = app:connect()
            local reply = ws:request("shop", "ping", { skip = true })
            assert.equal("ping", reply.action)
            assert.equal(testing.null, reply.data)
            assert.is_nil(reply.error)
            assert.same({ "app.before shop.ping", "shop.before shop ping" }, infos())
        end)

        it("answers a moonwire.fail raised in on_before with its code", function()
            local ws = app:connect()
            assert.same({ code = "AUTHORIZATION_FAILED", message = "no shop" },
                        ws:request("shop", "ping", { deny = true }).error)
            assert.matches("app.error no shop", table.concat(infos(), "\n"), 1, true)
        end)

        it("answers INTERNAL_ERROR for an action that raises, logged with its file:line", function()
            local ws = app:connect()
            assert.same({ code = "INTERNAL_ERROR", message = "internal error" },
                        ws:request("shop", "boom", {}).error)
            local errors = {}
            for _, entry in ipairs(app:logs("error")) do
                errors[#errors + 1] = entry.message
            end
            assert.matches("controllers/shop.lua:%d+: attempt to index local 't'",
                           table.concat(errors, "\n"))
        end)

        it("suppresses the action's error when on_error returns true", function()
            local ws = app:connect()
            local reply = ws:request("shop", "boom", { forgive = true })
            assert.is_nil(reply.error)
            assert.equal("boom", reply.action)
            reply = ws:request("shop", "refuse", { forgive = true })
            assert.is_nil(reply.error)
            assert.same({ code = "NOT_FOUND", message = "no such thing" },
                        ws:request("shop", "refuse", {}).error)
        end)

        it("lets a middleware wait", function()
            local ws = app:connect()
            ws:send('{"type":"shop","action":"ping","id":"w","data":{"wait":40}}')
            assert.same({}, ws:sent())
            app:advance(40)
            assert.equal("pong", ws:sent()[1].data)
        end)

        it("answers AUTHENTICATION_FAILED from require_auth until the client authenticates",
           function()
            local ws = app:connect()
            assert.same({ code = "AUTHENTICATION_FAILED", message = "authentication required" },
                        ws:request("secure", "whoami").error)
            ws:request("system", "auth", { token = "good" })
            assert.equal("ann", ws:request("secure", "whoami").data)
        end)

        it("answers RATE_LIMIT_EXCEEDED past the rate_limit middleware's limit", function()
            local ws = app:connect()
            ws:request("system", "auth", { token = "good" })
            assert.equal("ann", ws:request("secure", "whoami").data)
            assert.equal("ann", ws:request("secure", "whoami").data)
            local err = ws:request("secure", "whoami").error
            assert.equal("RATE_LIMIT_EXCEEDED", err.code)
            assert.equal("rate limit exceeded: retry in 500 ms", err.message)
            app:advance(500)
            assert.equal("ann", ws:request("secure", "whoami").data)
        end)
    end)

    describe("an app without middleware", function()
        it("routes each action without a schema to the controller's own function", function()
            assert(load({ ["controllers/checked.lua"] = CHECKED,
                          ["controllers/plain.lua"] = PLAIN }))
            local router = app.runtime:app().router
            for _, route in ipairs({ { "plain", "echo" }, { "checked", "free" } }) do
                local fn = router:find(route[1], route[2])
                local info = debug.getinfo(fn, "S")
                assert.matches("controllers/" .. route[1] .. ".lua", info.source, 1, true)
            end
            local fn = router:find("checked", "add")
            assert.matches("moonwire/router.lua", debug.getinfo(fn, "S").source, 1, true)
            local ws = app:connect()
            assert.equal(3, ws:request("checked", "add", { a = 1, b = 2 }).data)
            assert.equal("data.b: required", ws:request("checked", "add", { a = 1 }).error.message)
            assert.equal("free", ws:request("checked", "free").data)
        end)
    end)

    describe("mistakes", function()
        local function refused(files)
            local a, err = load(files)
            assert.is_nil(a)
            return err
        end

        it("names the file and line of a bad app-wide middleware", function()
            local err = refused({ ["app.lua"] = 'local x = 1\nreturn {\n  middleware = {\n'
                                                .. '    { name = "m", on_before = "yes" } } }\n' })
            assert.matches("app.lua:3: middleware[1] ('m'): on_before must be a function, got "
                           .. "string", err, 1, true)
            err = refused({ ["app.lua"] = 'return {\n  middleware = {\n    { name = "a",\n'
                                          .. '      on_after = function() end,\n'
                                          .. '      onError = function() end } } }\n' })
            assert.matches("app.lua:4: middleware[1] ('a'): onError is spelled on_error here", err,
                           1, true)
        end)

        it("names the file and line of a bad _middleware", function()
            local err = refused({ ["controllers/x.lua"] = 'local M = {}\n\nM._middleware = '
                                  .. '{ { on_before = print } }\nfunction M.a() end\nreturn M\n' })
            assert.matches("controllers/x.lua:3: controller 'x': _middleware[1]: a middleware "
                           .. "needs a name", err, 1, true)
        end)

        it("names the file and line of a bad _schema", function()
            local err = refused({ ["controllers/x.lua"] = 'local M = {}\nfunction M.a() end\n'
                                  .. 'M._schema = { a = { type = "object", fields = {\n'
                                  .. '  n = "nubmer" } } }\nreturn M\n' })
            assert.matches('controllers/x.lua:3: controller \'x\': _schema.a: schema.fields.n: '
                           .. 'unknown type "nubmer"', err, 1, true)
            err = refused({ ["controllers/x.lua"] = 'return { _schema = { b = "any" }, '
                                                    .. 'a = function() end }\n' })
            assert.matches("controllers/x.lua:1: controller 'x': _schema.b: no such action", err,
                           1, true)
        end)
    end)
end)
