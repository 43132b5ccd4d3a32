-- Specs for HTTP routes (moonwire.http, APP/routes.lua) and the server API
-- (moonwire.api): route matching on its own, then requests through the
-- real core (moonwire.testing's harness:request: a real connection, the
-- request parsed and routed by C, answered through core.http_respond).

local tmpdir = require "support.tmpdir"
local testing = require "moonwire.testing"
local http = require "moonwire.http"


local function noop() end


describe("moonwire.http", function()
    describe("compile", function()
        it("refuses what is not a route, naming it", function()
            local cases = {
                { { [1] = noop }, "route keys must be strings" },
                { { ["/x"] = noop }, "route '/x': must be \"METHOD /path\"" },
                { { ["FETCH /x"] = noop }, "unknown method FETCH" },
                { { ["get /x"] = noop }, "unknown method get" },
                { { ["GET x"] = noop }, "the path must start with /" },
                { { ["GET /x"] = "nope" }, "the handler must be a function, got string" },
                { { ["GET /x"] = { handler = noop, jsno = true } }, "unknown field 'jsno'" },
                { { ["GET /x/:1a"] = noop }, "bad parameter name ':1a'" },
                { { ["GET /x/:a/:a"] = noop }, "parameter :a twice" },
                { { ["GET /x/:a"] = noop, ["GET /x/:b"] = noop }, "the same as route" },
            }
            for _, case in ipairs(cases) do
                local routes, err = http.compile(case[1])
                assert.is_nil(routes)
                assert.matches(case[2], err, 1, true)
            end
            local routes, err = http.compile({ ["POST /api/x"] = noop }, { reserved = "/api/" })
            assert.is_nil(routes)
            assert.matches("/api/ is reserved for the server API", err, 1, true)
            routes, err = http.compile({ ["GET /api"] = noop }, { reserved = "/api/" })
            assert.is_nil(routes)
            assert.matches("/api/ is reserved", err, 1, true)
            assert.truthy(http.compile({ ["GET /apiary"] = noop }, { reserved = "/api/" }))
        end)
    end)

    describe("match", function()
        local a, b, c, d = function() end, function() end, function() end, function() end
        local routes = assert(http.compile({
            ["GET /items/:id"] = a,
            ["GET /items/new"] = b,
            ["DELETE /items/:id"] = c,
            ["GET /"] = d,
            ["POST /users/:user/items/:item"] = a,
        }))

        it("takes a literal segment over a parameter, whatever the order", function()
            local route, params = routes:match("GET", "/items/new")
            assert.equal(b, route.handler)
            assert.same({}, params)
            route, params = routes:match("GET", "/items/42")
            assert.equal(a, route.handler)
            assert.same({ id = "42" }, params)
        end)

        it("decodes parameters and ignores a trailing slash", function()
            local route, params = routes:match("POST", "/users/a%20b/items/x%2Fy/")
            assert.equal("POST /users/:user/items/:item", route.name)
            assert.same({ user = "a b", item = "x/y" }, params)
            assert.equal(d, (routes:match("GET", "/")).handler)
        end)

        it("answers HEAD with the GET route, and 404 / 405 with Allow otherwise", function()
            assert.equal(a, (routes:match("HEAD", "/items/1")).handler)
            assert.same({ nil, 404 }, { routes:match("GET", "/nope") })
            assert.same({ nil, 404 }, { routes:match("GET", "/items/1/2") })
            assert.same({ nil, 405, "DELETE, GET, HEAD" }, { routes:match("PUT", "/items/1") })
            assert.same({ nil, 405, "GET, HEAD" }, { routes:match("PUT", "/") })
        end)
    end)

    it("decodes a query string", function()
        assert.same({ a = "1", b = "x y", c = { "1", "2", "3" }, flag = true, ["k k"] = "v+" },
                    http.decode_query("a=1&b=x+y&c=1&c=2&c=3&flag&k%20k=v%2B&="))
        assert.same({}, http.decode_query(""))
        assert.same({ bad = "%zz" }, http.decode_query("bad=%zz"))
    end)
end)


describe("HTTP routes (routes.lua) on the real core", function()
    local dir

    local ROUTES = [[
        local moonwire = require "moonwire"
        local n = 0
        return {
            ["GET /items/:id"] = function(req)
                return 200, { id = req.params.id, q = req.query, qs = req.query_string,
                              route = req.route, agent = req.headers["x-agent"] }
            end,
            ["POST /items"] = {
                json = true,
                handler = function(req)
                    n = n + 1
                    return 201, { ["Location"] = "/items/" .. n }, { n = n, got = req.json }
                end,
            },
            ["PUT /raw"] = function(req)
                return 200, { ["Content-Type"] = "text/csv", ["X-Len"] = #req.body }, req.body
            end,
            ["GET /text"] = function() return 200, "plain" end,
            ["GET /boom"] = function() error("kaboom") end,
            ["GET /nostatus"] = function() return "oops" end,
            ["GET /fail"] = function() moonwire.fail("AUTHORIZATION_FAILED", "not you") end,
            ["DELETE /items/:id"] = function() return 204, {}, nil end,
            ["GET /bad-header"] = function() return 200, { ["Content-Length"] = "9" }, "x" end,
        }
    ]]

    before_each(function()
        dir = tmpdir.new()
        tmpdir.write(dir, "routes.lua", ROUTES)
    end)

    after_each(function()
        tmpdir.remove(dir)
    end)

    it("routes by method and path, with params, query and headers", function()
        local app = assert(testing.load_app(dir))
        local r = app:request("GET", "/items/42", { query = "a=1&b=x%20y",
                                                    headers = { ["X-Agent"] = "spec" } })
        assert.equal(200, r.status)
        assert.equal("application/json", r.headers["content-type"])
        assert.same({ id = "42", q = { a = "1", b = "x y" }, qs = "a=1&b=x%20y",
                      route = "GET /items/:id", agent = "spec" }, r.json)
        r = app:request("GET", "/text")
        assert.equal("plain", r.body)
        assert.equal("text/plain; charset=utf-8", r.headers["content-type"])
        assert.same({ "DELETE /items/:id", "GET /bad-header", "GET /boom", "GET /fail",
                      "GET /items/:id", "GET /nostatus", "GET /text", "POST /items", "PUT /raw" },
                    (function()
                        local list = {}
                        for _, name in ipairs(app:routes()) do
                            if name:find(" ") then
                                list[#list + 1] = name
                            end
                        end
                        return list
                    end)())
    end)

    it("gives a JSON route its decoded body, and a bad one 400 naming the problem", function()
        local app = assert(testing.load_app(dir))
        local r = app:request("POST", "/items", { body = { name = "x", tags = { 1, 2 } } })
        assert.equal(201, r.status)
        assert.equal("/items/1", r.headers["location"])
        assert.same({ n = 1, got = { name = "x", tags = { 1, 2 } } }, r.json)
        r = app:request("POST", "/items", { body = '{"name": "x",}' })
        assert.equal(400, r.status)
        assert.equal("BAD_REQUEST", r.json.error.code)
        assert.matches("^malformed JSON: .* at character %d+$", r.json.error.message)
        r = app:request("POST", "/items", { body = "" })
        assert.equal(400, r.status)
        assert.matches("malformed JSON", r.json.error.message, 1, true)
        -- the handler did not run for either
        assert.equal(2, app:request("POST", "/items", { body = "[]" }).json.n)
    end)

    it("sends headers, string bodies as they are, 204 without a body", function()
        local app = assert(testing.load_app(dir))
        local r = app:request("PUT", "/raw", { body = "a,b\n1,2\n" })
        assert.equal(200, r.status)
        assert.equal("text/csv", r.headers["content-type"])
        assert.equal("8", r.headers["x-len"])
        assert.equal("a,b\n1,2\n", r.body)
        r = app:request("DELETE", "/items/3")
        assert.equal(204, r.status)
        assert.is_nil(r.headers["content-length"])
        assert.equal("", r.body)
    end)

    it("answers 404, 405 with Allow, and HEAD without a body", function()
        local app = assert(testing.load_app(dir))
        local r = app:request("GET", "/nope")
        assert.equal(404, r.status)
        assert.same({ error = { code = "NOT_FOUND", message = "not found" } }, r.json)
        r = app:request("PATCH", "/items/1")
        assert.equal(405, r.status)
        assert.equal("DELETE, GET, HEAD", r.headers.allow)
        assert.equal("METHOD_NOT_ALLOWED", r.json.error.code)
        r = app:request("HEAD", "/text")
        assert.equal(200, r.status)
        assert.equal("5", r.headers["content-length"])
        assert.equal("", r.body)
    end)

    it("turns a handler's error into 500, logged with file:line, and keeps serving", function()
        local app = assert(testing.load_app(dir))
        local r = app:request("GET", "/boom")
        assert.equal(500, r.status)
        assert.same({ error = { code = "INTERNAL_ERROR", message = "internal error" } }, r.json)
        local logs = app:logs("error")
        assert.equal(1, #logs)
        assert.matches("^GET /boom failed: .*routes.lua:19: kaboom\nstack traceback:",
                       logs[1].message)
        r = app:request("GET", "/nostatus")
        assert.equal(500, r.status)
        assert.matches("returned oops instead of a status", app:logs("error")[2].message, 1, true)
        r = app:request("GET", "/bad-header")
        assert.equal(500, r.status)
        assert.matches("Content-Length' is written by the server",
                       app:logs("error")[3].message, 1, true)
        r = app:request("GET", "/fail")
        assert.equal(403, r.status)
        assert.same({ error = { code = "AUTHORIZATION_FAILED", message = "not you" } }, r.json)
        assert.equal(3, #app:logs("error")) -- a failure is not a bug: not logged
        assert.equal(200, app:request("GET", "/text").status)
    end)

    it("refuses a body over http_max_body with 413 before any Lua runs", function()
        local app = assert(testing.load_app(dir, { config = { http_max_body = 10 } }))
        local r = app:request("PUT", "/raw", { body = "0123456789" })
        assert.equal(200, r.status)
        r = app:request("PUT", "/raw", { body = "0123456789a" })
        assert.equal(413, r.status)
        assert.equal("request body too large\n", r.body)
        r = app:request("PUT", "/raw", { headers = { ["Transfer-Encoding"] = "chunked" },
                                         body = "6\r\nabcdef\r\n6\r\nghijkl\r\n0\r\n\r\n" })
        assert.equal(413, r.status)
        r = app:request("PUT", "/raw", { headers = { ["Transfer-Encoding"] = "chunked" },
                                         body = "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n" })
        assert.equal("abcde", r.body)
    end)

    it("lets the app replace /health, or extend the server's document", function()
        local app = assert(testing.load_app(dir))
        local builtin = app:request("GET", "/health")
        assert.equal("healthy", builtin.json.status)
        tmpdir.write(dir, "routes.lua", [[
            local moonwire = require "moonwire"
            return {
                ["GET /health"] = function()
                    local doc = assert(moonwire.health())
                    doc.service = "spec"
                    return 200, doc
                end,
            }
        ]])
        assert(app:reload())
        local r = app:request("GET", "/health")
        assert.equal(200, r.status)
        assert.equal("spec", r.json.service)
        assert.equal("healthy", r.json.status)
        assert.equal(1, r.json.reloads)
        assert.equal("[]", r.body:match('"restart_required":(%[%])'))
        assert.equal("", app:request("HEAD", "/health").body)
        assert.equal(405, app:request("POST", "/health").status)

        tmpdir.write(dir, "routes.lua", [[
            return { ["GET /health"] = function() return 200, { up = true } end }
        ]])
        assert(app:reload())
        assert.same({ up = true }, app:request("GET", "/health").json)

        os.remove(dir .. "/routes.lua")
        assert(app:reload())
        assert.equal("healthy", app:request("GET", "/health").json.status)
        assert.equal(404, app:request("GET", "/text").status)
    end)

    it("reloads routes.lua; a broken one fails the reload and the old routes serve", function()
        local app = assert(testing.load_app(dir))
        tmpdir.write(dir, "routes.lua", [[
            return {
                ["GET /text"] = function() return 200, "new" end,
                ["GET /extra"] = function() return 200, "extra" end,
            }
        ]])
        assert(app:reload())
        assert.equal("new", app:request("GET", "/text").body)
        assert.equal("extra", app:request("GET", "/extra").body)

        tmpdir.write(dir, "routes.lua", "return { ['GET /text'] = function( end }")
        local ok, err = app:reload()
        assert.is_nil(ok)
        assert.matches("routes.lua:1:", err, 1, true)
        assert.equal("new", app:request("GET", "/text").body)

        tmpdir.write(dir, "routes.lua", "return {\n  ['GET /x'] = function() end,\n"
                                        .. "  ['POST /api/mine'] = function() end,\n}\n")
        ok, err = app:reload()
        assert.is_nil(ok)
        assert.matches("routes.lua:3: route 'POST /api/mine': /api/ is reserved", err, 1, true)
        tmpdir.write(dir, "routes.lua", "return 42")
        ok, err = app:reload()
        assert.is_nil(ok)
        assert.matches("routes.lua:1: routes.lua must return a table of routes, got number",
                       err, 1, true)
        assert.equal("extra", app:request("GET", "/extra").body)
    end)

    it("keeps /api/ for the server API: 404 while it is off", function()
        local app = assert(testing.load_app(dir))
        assert.equal(404, app:request("GET", "/api/stats").status)
        assert.equal(404, app:request("GET", "/api/stats",
                                      { headers = { Authorization = "apikey x" } }).status)
    end)
end)


describe("the server API on the real core", function()
    local dir, app
    local KEY = { Authorization = "apikey s3cret" }

    local function api(method, path, body, query)
        return app:request(method, path, { headers = KEY, body = body, query = query })
    end

    before_each(function()
        dir = tmpdir.new()
        tmpdir.write(dir, "config.lua", [[
            return { api_key = "s3cret", welcome = false, presence = { "lobby" } }
        ]])
        tmpdir.write(dir, "app.lua", [[
            return {
                on_connect = function(client)
                    local user = client.request.query:match("user=(%w+)")
                    if user then client:set_user(user) end
                end,
            }
        ]])
        app = assert(testing.load_app(dir))
    end)

    after_each(function()
        app:close()
        tmpdir.remove(dir)
    end)

    it("refuses a missing or wrong key with 401 before any Lua runs", function()
        local r = app:request("GET", "/api/stats")
        assert.equal(401, r.status)
        assert.equal("apikey", r.headers["www-authenticate"])
        r = app:request("GET", "/api/stats", { headers = { Authorization = "apikey nope" } })
        assert.equal(401, r.status)
        assert.equal(200, api("GET", "/api/stats").status)
        assert.equal(404, api("GET", "/api/nope").status)
        assert.equal(405, api("GET", "/api/publish").status)
        assert.equal("POST", api("GET", "/api/publish").headers.allow)
    end)

    it("publishes to a room, data forwarded as the backend sent it", function()
        local a, b, c = app:connect(), app:connect(), app:connect()
        a:request("system", "join", { room = "lobby" })
        b:request("system", "join", { room = "lobby" })
        a:sent()
        local before_b = #b:sent()
        local r = api("POST", "/api/publish",
                      '{"room":"lobby","data":{"big":12345678901234567,"s":"a\\/b"}}')
        assert.equal(200, r.status)
        assert.same({ room = "lobby", delivered = 2, dropped = 0 }, r.json)
        local frames = a:frames()
        local last = frames[#frames].payload
        assert.matches('"data":{"big":12345678901234567,"s":"a\\/b"}', last, 1, true)
        local ev = a:last()
        assert.equal("system", ev.type)
        assert.equal("message", ev.action)
        assert.equal("lobby", ev.room)
        assert.equal(testing.null, ev.data.from)
        assert.equal(before_b + 1, #b:sent())
        assert.same({}, c:sent())

        r = api("POST", "/api/publish", { room = "lobby", type = "news", action = "flash",
                                          data = { text = "hi" } })
        assert.equal(2, r.json.delivered)
        ev = b:last()
        assert.same({ "news", "flash", "lobby", { text = "hi" } },
                    { ev.type, ev.action, ev.room, ev.data })

        r = api("POST", "/api/publish", { room = "nobody-here", data = 1 })
        assert.same({ room = "nobody-here", delivered = 0, dropped = 0 }, r.json)
    end)

    it("answers bad bodies with 400 naming the field", function()
        local cases = {
            { "/api/publish", "{nope", "BAD_REQUEST", "malformed JSON" },
            { "/api/publish", "[1]", "BAD_REQUEST", "body: must be a JSON object" },
            { "/api/publish", { data = 1 }, "BAD_REQUEST", "room: " },
            { "/api/publish", { room = "", data = 1 }, "BAD_REQUEST", "room: " },
            { "/api/publish", { room = "r" }, "BAD_REQUEST", "data: required" },
            { "/api/publish", { room = "r", data = 1, type = "t" }, "BAD_REQUEST", "action: " },
            { "/api/broadcast", {}, "BAD_REQUEST", "data: required" },
            { "/api/send", { data = 1 }, "BAD_REQUEST", "client: give exactly one" },
            { "/api/send", { client = 1, user = "u", data = 1 }, "BAD_REQUEST", "exactly one" },
            { "/api/send", { client = -1, data = 1 }, "BAD_REQUEST", "client: must be" },
            { "/api/disconnect", { user = "u", code = 1005 }, "BAD_REQUEST", "code: " },
            { "/api/disconnect", { user = "u", reason = ("x"):rep(124) }, "BAD_REQUEST",
              "reason: " },
        }
        for _, case in ipairs(cases) do
            local r = api("POST", case[1], case[2])
            assert.equal(400, r.status)
            assert.equal(case[3], r.json.error.code)
            assert.matches(case[4], r.json.error.message, 1, true)
        end
        assert.equal(400, api("GET", "/api/presence").status)
    end)

    it("broadcasts, sends to a client or a user, disconnects", function()
        local a = app:connect({ query = "user=ann" })
        local a2 = app:connect({ query = "user=ann" })
        local b = app:connect({ query = "user=bob" })
        local r = api("POST", "/api/broadcast", { data = { n = 1 } })
        assert.same({ delivered = 3, dropped = 0 }, r.json)
        assert.equal("broadcast", b:last().action)
        assert.same({ n = 1 }, b:last().data.data)

        r = api("POST", "/api/send", { client = b.id, data = "only b" })
        assert.same({ delivered = 1 }, r.json)
        assert.equal("only b", b:last().data.data)
        r = api("POST", "/api/send", { user = "ann", type = "dm", action = "new", data = 7 })
        assert.same({ delivered = 2 }, r.json)
        assert.same({ "dm", "new", 7 }, { a:last().type, a:last().action, a:last().data })
        assert.equal(7, a2:last().data)
        assert.same({ delivered = 0 }, api("POST", "/api/send", { client = 99999, data = 1 }).json)
        assert.same({ delivered = 0 }, api("POST", "/api/send", { user = "zed", data = 1 }).json)

        r = api("POST", "/api/disconnect", { user = "ann", code = 4001, reason = "bye" })
        assert.same({ disconnected = 2 }, r.json)
        assert.same({ code = 4001, reason = "bye" }, a:closed())
        assert.same({ code = 4001, reason = "bye" }, a2:closed())
        r = api("POST", "/api/disconnect", { client = b.id })
        assert.same({ disconnected = 1 }, r.json)
        assert.same({ code = 1000, reason = "" }, b:closed())
        assert.same({ disconnected = 0 },
                    api("POST", "/api/disconnect", { client = b.id }).json)
    end)

    it("lists rooms, presence and stats", function()
        assert.equal('{"rooms":[]}', api("GET", "/api/rooms").body)
        local a = app:connect({ query = "user=ann" })
        local b = app:connect()
        a:request("system", "join", { room = "lobby" })
        a:request("system", "join", { room = "games" })
        b:request("system", "join", { room = "lobby" })
        local r = api("GET", "/api/rooms")
        assert.same({ rooms = { { room = "games", count = 1 }, { room = "lobby", count = 2 } } },
                    r.json)
        r = api("GET", "/api/presence", nil, { room = "lobby" })
        assert.equal("lobby", r.json.room)
        assert.equal(2, r.json.count)
        local users = {}
        for _, entry in ipairs(r.json.presence) do
            users[entry.client_id] = entry.user
        end
        assert.same({ [a.id] = "ann", [b.id] = testing.null }, users)
        r = api("GET", "/api/presence", nil, { room = "empty" })
        assert.same({ room = "empty", count = 0 }, { room = r.json.room, count = r.json.count })
        assert.matches('"presence":[]', r.body, 1, true)
        r = api("GET", "/api/stats")
        assert.same({ connections = 2, rooms = 2, users = 1, uptime_s = 0 }, r.json)
    end)
end)
