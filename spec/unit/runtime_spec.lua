-- Specs for moonwire.runtime: the functions C calls (docs/boundary.md) and
-- the dispatch behind them, on the real core: a test server calls the
-- runtime's handlers for a real client, as the server does.

local core = require "moonwire.core"
local applog = require "support.applog"
local tmpdir = require "support.tmpdir"
local testing = require "moonwire.testing"
local runtime = require "moonwire.runtime"
local cjson = require "cjson"


local CHAT = [[
local moonwire = require "moonwire"
local M = {}
function M.echo(client, data, msg) return { text = data.text, seen = msg.type } end
function M.nothing() end
function M.refuse() return nil, "text is required" end
function M.coded() return nil, "NOT_FOUND" end
function M.table_err() return nil, { code = "ROOM_FULL", message = "no seats" } end
function M.failing() moonwire.fail("AUTHORIZATION_FAILED", "admins only") end
function M.crash(client, data)
    local secret = nil
    return secret.password
end
function M.raise_table() error({ secret = "db password" }) end
function M.remember(client, data) client.data.name = data.name; return true end
function M.whoami(client) return { name = client.data.name, version = 1 } end
function M.bad_reply() return { f = print } end
function M.emit(client) return client:emit("chat", "note", { n = 1 }) end
function M.unloggable() error(setmetatable({}, { __tostring = function() error("no") end })) end
return M
]]

local HOOKS = [[
local moonwire = require "moonwire"
local log = moonwire.log
local M = {}
function M.on_start(app) log.info("started %s", app.config.name) end
function M.on_connect(client)
    if client.request.query == "deny" then moonwire.fail("AUTHENTICATION_FAILED", "bad token") end
    if client.request.query == "crash" then error("connect hook broke") end
    log.info("connected %d", client.id)
end
function M.on_message(client, msg)
    if msg.data.block then return false end
    if msg.data.deny then return nil, { code = "AUTHORIZATION_FAILED", message = "denied" } end
    if msg.data.gate then moonwire.fail("RATE_LIMIT_EXCEEDED", "slow down") end
    if msg.data.hook_crash then local x = nil; return x.y end
end
function M.on_disconnect(client, code, reason)
    log.info("disconnected %d %d %s", client.id, code, reason)
    if reason == "crash" then error("disconnect hook broke") end
end
function M.on_error(client, err, msg)
    log.warn("on_error %d %s %s", client.id, err, msg and msg.action or "-")
    if msg and msg.data.crash_on_error then error("on_error broke too") end
end
function M.on_reload(old_state, app)
    app.state.generation = (old_state.generation or 1) + 1
    log.info("generation %d", app.state.generation)
end
return M
]]


describe("moonwire.runtime", function()
    local dir, app, rt, ws

    local function write(rel, content)
        return tmpdir.write(dir, rel, content)
    end

    local function escape(s)
        return (s:gsub("%p", "%%%0"))
    end

    local function logs(level)
        return applog.text(app, level)
    end

    -- Sends a JSON message from `c`; returns what it got back, decoded.
    local function request(c, msg)
        return c:send(type(msg) == "string" and msg or cjson.encode(msg), false)
    end

    local function start(config, clock)
        app = assert(testing.load_app(dir, {
            config = config or { welcome = false, app = { name = "fixture" } },
            clock = clock or 7,
        }))
        rt = app.runtime
    end

    before_each(function()
        dir = tmpdir.new()
        write("controllers/chat.lua", CHAT)
        write("app.lua", HOOKS)
        start()
        ws = app:connect()
    end)

    after_each(function()
        tmpdir.remove(dir)
    end)

    describe("init and routes", function()
        it("lists sorted routes", function()
            assert.same({ "chat.bad_reply", "chat.coded", "chat.crash", "chat.echo", "chat.emit",
                          "chat.failing", "chat.nothing", "chat.raise_table", "chat.refuse",
                          "chat.remember", "chat.table_err", "chat.unloggable", "chat.whoami" },
                        rt:routes())
        end)

        it("returns nil, file:line for a broken app", function()
            local path = write("controllers/broken.lua",
                               "return {\n  x = function() end\n  y = 1\n}\n")
            local other = runtime.new()
            local ok, err = other:init({ app_dir = dir, config = {} })
            assert.is_nil(ok)
            assert.matches("^" .. escape(path) .. ":3: ", err)
        end)

        it("raises on misuse", function()
            assert.error_matches(function() runtime.new():init({}) end, "app_dir")
            assert.error_matches(function() runtime.new():init({ app_dir = dir, mode = "x" }) end,
                                 "mode")
            assert.error_matches(function() runtime.new():routes() end, "before init")
        end)
    end)

    describe("connect", function()
        it("calls on_start from start()", function()
            assert.matches("started fixture", logs("info"), 1, true)
        end)

        it("sends no welcome unless configured", function()
            assert.same({}, ws:sent())
            assert.matches("connected " .. ws.id, logs("info"), 1, true)
        end)

        it("welcomes before on_connect when config.welcome is set", function()
            start({ welcome = true, app = {} }, 99)
            local c = app:connect()
            assert.same({ { type = "system", action = "connected", data = { client_id = c.id },
                            ts = 99 } }, c:sent())
        end)

        it("refuses a client when on_connect fails", function()
            local c = app:connect({ query = "deny" })
            assert.same({ { type = "error",
                            error = { code = "AUTHENTICATION_FAILED", message = "bad token" } } },
                        c:sent())
            assert.same({ code = 1008, reason = "AUTHENTICATION_FAILED" }, c:closed())
        end)

        it("logs an on_connect crash with file:line and keeps the client", function()
            local c = app:connect({ query = "crash" })
            assert.matches(escape(dir) .. "/app%.lua:%d+: connect hook broke", logs("error"))
            assert.is_nil(c:closed())
            assert.equal(1, #request(c, { type = "chat", action = "echo", id = 1 }))
        end)
    end)

    describe("message", function()
        it("replies with the handler's value when the message has an id", function()
            assert.same({ { type = "chat", action = "echo", id = "r1",
                            data = { text = "hi", seen = "chat" } } },
                        request(ws, { type = "chat", action = "echo", id = "r1",
                                      data = { text = "hi" } }))
        end)

        it("sends nothing back without an id", function()
            assert.same({}, request(ws, { type = "chat", action = "echo", data = { text = "x" } }))
        end)

        it("acknowledges with null data when the handler returns nothing", function()
            assert.same({ { type = "chat", action = "nothing", id = 5, data = cjson.null } },
                        request(ws, { type = "chat", action = "nothing", id = 5 }))
        end)

        it("turns nil, err into error envelopes", function()
            assert.same({ { type = "error", id = "a",
                            error = { code = "INVALID_MESSAGE", message = "text is required" } } },
                        request(ws, { type = "chat", action = "refuse", id = "a" }))
            assert.same({ { type = "error", id = "b",
                            error = { code = "NOT_FOUND", message = "not found" } } },
                        request(ws, { type = "chat", action = "coded", id = "b" }))
            assert.same({ { type = "error", id = "c",
                            error = { code = "ROOM_FULL", message = "no seats" } } },
                        request(ws, { type = "chat", action = "table_err", id = "c" }))
        end)

        it("sends errors even without an id", function()
            assert.same({ { type = "error",
                            error = { code = "INVALID_MESSAGE", message = "text is required" } } },
                        request(ws, { type = "chat", action = "refuse" }))
        end)

        it("turns moonwire.fail into its error envelope, without logging", function()
            assert.same({ { type = "error", id = 1,
                            error = { code = "AUTHORIZATION_FAILED", message = "admins only" } } },
                        request(ws, { type = "chat", action = "failing", id = 1 }))
            assert.equal("", logs("error"))
        end)

        it("hides internal errors, logs them with file:line and traceback, calls on_error",
           function()
            local out = request(ws, { type = "chat", action = "crash", id = "x" })
            assert.same({ { type = "error", id = "x",
                            error = { code = "INTERNAL_ERROR", message = "internal error" } } },
                        out)
            assert.is_nil(ws:frames()[1].payload:find("secret", 1, true))
            local log = logs("error")
            assert.matches("chat.crash failed: " .. escape(dir) .. "/controllers/chat%.lua:11: "
                           .. "attempt to index local 'secret'", log)
            assert.matches("stack traceback:", log, 1, true)
            assert.matches("on_error " .. ws.id .. " " .. escape(dir)
                           .. "/controllers/chat%.lua:11: .* crash", logs("warn"))
        end)

        it("does not leak raised tables either", function()
            local out = request(ws, { type = "chat", action = "raise_table", id = 2 })
            assert.equal("INTERNAL_ERROR", out[1].error.code)
            assert.is_nil(ws:frames()[1].payload:find("password", 1, true))
            assert.matches("controllers/chat%.lua:13: ", logs("error"))
        end)

        it("survives an on_error hook that raises", function()
            local out = request(ws, { type = "chat", action = "crash", id = 1,
                                      data = { crash_on_error = true } })
            assert.equal("INTERNAL_ERROR", out[1].error.code)
            assert.matches("hook on_error failed: .*app%.lua:%d+: on_error broke too",
                           logs("error"))
        end)

        it("reports a raised value whose __tostring raises too, at the action's line", function()
            -- The task's stack is kept after the error: the traceback and
            -- the position are read from it, and describing the value must
            -- not raise a second time.
            local out = request(ws, { type = "chat", action = "unloggable", id = "u" })
            assert.same({ { type = "error", id = "u",
                            error = { code = "INTERNAL_ERROR", message = "internal error" } } },
                        out)
            assert.matches("chat%.unloggable failed: .*chat%.lua:18: %(error object is a table "
                           .. "value%)\nstack traceback:", logs("error"))
            assert.matches("on_error " .. ws.id .. " .*chat%.lua:18: %(error object is a table "
                           .. "value%) unloggable", logs("warn"))
        end)

        it("tells the core which action runs, by a label registered once", function()
            -- The core's watchdog keeps the labels; this spy stands in for it.
            -- running is called through the FFI (moonwire.core_ffi).
            local fast = require("moonwire.core_ffi").of(core)
            local label, running = core.label, fast.running
            local labels, current = {}, nil
            core.label = function(text)
                labels[#labels + 1] = text
                return #labels
            end
            fast.running = function(id) current = labels[id] end
            local ok, err = pcall(function()
                request(ws, { type = "chat", action = "echo", data = { text = "a" } })
                assert.matches("^chat%.echo %(.*chat%.lua:3%)$", current)
                request(ws, { type = "chat", action = "echo", data = { text = "b" } })
                request(ws, { type = "chat", action = "nothing" })
                assert.matches("^chat%.nothing %(.*chat%.lua:4%)$", current)
                assert.equal(2, #labels)
            end)
            core.label, fast.running = label, running
            assert(ok, err)
        end)

        it("refuses a message without running the app when told to", function()
            -- What the server asks while the Lua heap stays at its limit.
            rt:message(ws.id, cjson.encode({ type = "chat", action = "remember", id = "z",
                                              data = { name = "x" } }), false, true)
            assert.same({ { type = "error", id = "z",
                            error = { code = "INTERNAL_ERROR", message = "internal error" } } },
                        ws:sent())
            assert.is_nil(rt:client(ws.id).data.name)
            assert.equal("", logs("error"))
            rt:message(ws.id, "{not json", false, true)
            assert.equal("INTERNAL_ERROR", ws:sent()[2].error.code)
            assert.is_nil(ws:sent()[2].id)
        end)

        it("answers unknown types and actions with NOT_FOUND", function()
            assert.same({ { type = "error", id = 3,
                            error = { code = "NOT_FOUND", message = "unknown type 'nope'" } } },
                        request(ws, { type = "nope", action = "x", id = 3 }))
            assert.same({ { type = "error", id = 4, error = { code = "NOT_FOUND",
                            message = "unknown action 'x' for type 'chat'" } } },
                        request(ws, { type = "chat", action = "x", id = 4 }))
        end)

        it("answers malformed JSON with INVALID_MESSAGE", function()
            local out = request(ws, '{"type":"chat",')
            assert.equal(1, #out)
            assert.equal("error", out[1].type)
            assert.is_nil(out[1].id)
            assert.equal("INVALID_MESSAGE", out[1].error.code)
            assert.matches("^malformed JSON", out[1].error.message)
        end)

        it("keeps the id when a decode error leaves it usable", function()
            local out = request(ws, '{"type":"chat","id":"k"}')
            assert.same({ { type = "error", id = "k", error = { code = "INVALID_MESSAGE",
                            message = "field 'action' must be a non-empty string" } } }, out)
        end)

        it("rejects binary frames with INVALID_MESSAGE", function()
            local out = ws:send('{"type":"chat","action":"echo","id":1}', true)
            assert.equal(1, #out)
            assert.equal("INVALID_MESSAGE", out[1].error.code)
            assert.matches("binary", out[1].error.message)
        end)

        it("reports an unencodable reply as INTERNAL_ERROR and logs it", function()
            local out = request(ws, { type = "chat", action = "bad_reply", id = 9 })
            assert.same({ { type = "error", id = 9,
                            error = { code = "INTERNAL_ERROR", message = "internal error" } } },
                        out)
            assert.matches("chat.bad_reply: reply not sent: encode failed", logs("error"), 1, true)
        end)

        it("lets controllers emit events", function()
            assert.same({ { type = "chat", action = "note", data = { n = 1 }, ts = 7 },
                          { type = "chat", action = "emit", id = 1, data = true } },
                        request(ws, { type = "chat", action = "emit", id = 1 }))
        end)

        it("drops messages for unknown clients with a warning", function()
            rt:message(42, "{}", false)
            assert.matches("unknown client 42", logs("warn"), 1, true)
        end)
    end)

    describe("on_message", function()
        it("stops routing silently when it returns false", function()
            assert.same({}, request(ws, { type = "chat", action = "echo", id = 1,
                                          data = { block = true } }))
        end)

        it("stops with an error envelope on nil, err or fail()", function()
            assert.same({ { type = "error", id = 1,
                            error = { code = "AUTHORIZATION_FAILED", message = "denied" } } },
                        request(ws, { type = "chat", action = "echo", id = 1,
                                      data = { deny = true } }))
            assert.same({ { type = "error", id = 2,
                            error = { code = "RATE_LIMIT_EXCEEDED", message = "slow down" } } },
                        request(ws, { type = "chat", action = "echo", id = 2,
                                      data = { gate = true } }))
        end)

        it("hides its crashes and logs them with file:line", function()
            assert.same({ { type = "error", id = 1,
                            error = { code = "INTERNAL_ERROR", message = "internal error" } } },
                        request(ws, { type = "chat", action = "echo", id = 1,
                                      data = { hook_crash = true } }))
            assert.matches("hook on_message failed: " .. escape(dir) .. "/app%.lua:%d+: attempt",
                           logs("error"))
        end)
    end)

    describe("disconnect", function()
        it("calls on_disconnect and forgets the client", function()
            local client = rt:client(ws.id)
            ws:drop()
            assert.matches("disconnected " .. ws.id .. " 1006 ", logs("info"), 1, true)
            assert.is_nil(rt:client(ws.id))
            local ok, err = client:send("late")
            assert.is_nil(ok)
            assert.equal("closed", err)
            rt:disconnect(ws.id, 1000, "")   -- a second time is a no-op
        end)

        it("logs a crashing on_disconnect instead of raising", function()
            ws:close(1000, "crash")
            assert.matches("app%.lua:%d+: disconnect hook broke", logs("error"))
        end)
    end)

    describe("reload", function()
        it("swaps in new code and keeps clients and client.data", function()
            request(ws, { type = "chat", action = "remember", id = 1, data = { name = "Ada" } })
            write("controllers/chat.lua", CHAT:gsub("version = 1", "version = 2"))
            assert.is_true(app:reload())
            assert.same({ name = "Ada", version = 2 },
                        request(ws, { type = "chat", action = "whoami", id = 2 })[1].data)
            -- The server logs the outcome (one line per reload): not the runtime.
            assert.not_matches("reloaded app", logs("info"), 1, true)
            local lines = {}
            for _, entry in ipairs(app:logs()) do
                if entry.message:find("reload", 1, true) then
                    lines[#lines + 1] = entry.message
                end
            end
            assert.same({ "reloaded the app (spec)" }, lines)
        end)

        it("passes the old state to on_reload", function()
            assert.is_true(app:reload())
            assert.is_true(app:reload())
            assert.matches("generation 2\n.*generation 3", logs("info"))
        end)

        it("keeps the old code on failure and returns file:line", function()
            request(ws, { type = "chat", action = "remember", id = 1, data = { name = "Ada" } })
            local path = write("controllers/chat.lua", CHAT:gsub("version = 1", "version = 2")
                                                         .. "\nlocal broken = = 1\n")
            local ok, err = app:reload()
            assert.is_nil(ok)
            assert.matches("^" .. escape(path) .. ":%d+: ", err)
            assert.same({ name = "Ada", version = 1 },
                        request(ws, { type = "chat", action = "whoami", id = 2 })[1].data)
            -- Logged once, by the server, with the reason.
            local lines = app:logs("error")
            assert.equal(1, #lines)
            assert.matches("^reload failed %(spec%), the previous code keeps serving: "
                           .. escape(path) .. ":%d+: ", lines[1].message)
        end)

        it("applies a new protocol to clients that are already connected", function()
            write("protocol.lua", [[
                local json = require "moonwire.protocol"
                return {
                    decode = json.decode,
                    encode = function(v) return "custom:" .. assert(json.encode(v)), false end,
                }
            ]])
            assert.is_true(app:reload())
            ws:send('{"type":"chat","action":"nothing","id":1}')
            assert.matches("^custom:{", ws:frames()[1].payload)
        end)
    end)

    describe("failures, by the step that raised", function()
        -- The whole dispatch runs under one protected call (C's, with
        -- runtime.capture as its handler); runtime.message_failed answers
        -- and logs by the stage it was in, as when each step had its pcall.
        local PROTOCOL = [[
local moonwire = require "moonwire"
local json = require "moonwire.protocol"
local M = {}
function M.decode(payload, is_binary)
    if payload == "crash" then local x = nil; return x.y end
    if payload == "refuse" then moonwire.fail("INVALID_MESSAGE", "no thanks") end
    return json.decode(payload, is_binary)
end
function M.encode(value)
    if type(value) == "table" and type(value.data) == "table" and value.data.explode then
        error("encode blew up")
    end
    return json.encode(value)
end
function M.reply(msg, data)
    if msg.action == "bad_reply" then error("reply blew up") end
    return json.reply(msg, data)
end
return M
]]
        local CONTROLLER = [[
local M = {}
function M.echo(client, data) return { text = data.text } end
function M.bad_reply() return { text = "never sent" } end
function M.explode() return { explode = true } end
function M.send_explode(client)
    local ok, err = client:send({ type = "x", action = "y", data = { explode = true } })
    return { ok = ok or false, err = err }
end
return M
]]

        before_each(function()
            write("protocol.lua", PROTOCOL)
            write("controllers/chat.lua", CONTROLLER)
            start()
            ws = app:connect()
        end)

        local function echo_works()
            assert.same({ { type = "chat", action = "echo", id = "ok", data = { text = "t" } } },
                        request(ws, { type = "chat", action = "echo", id = "ok",
                                      data = { text = "t" } }))
        end

        it("decode: INTERNAL_ERROR, logged as protocol.decode with file:line, on_error",
           function()
            assert.same({ { type = "error",
                            error = { code = "INTERNAL_ERROR", message = "internal error" } } },
                        ws:send("crash"))
            assert.matches("protocol.decode failed: " .. escape(dir)
                           .. "/protocol%.lua:5: attempt to index local 'x'", logs("error"))
            assert.matches("stack traceback:", logs("error"), 1, true)
            assert.matches("on_error " .. ws.id .. " " .. escape(dir) .. "/protocol%.lua:5: ",
                           logs("warn"))
            echo_works()
        end)

        it("decode: moonwire.fail is its error envelope, not logged", function()
            assert.same({ { type = "error",
                            error = { code = "INVALID_MESSAGE", message = "no thanks" } } },
                        ws:send("refuse"))
            assert.equal("", logs("error"))
            echo_works()
        end)

        it("reply: INTERNAL_ERROR with the id, logged as reply not sent", function()
            assert.same({ { type = "error", id = 3,
                            error = { code = "INTERNAL_ERROR", message = "internal error" } } },
                        request(ws, { type = "chat", action = "bad_reply", id = 3 }))
            assert.matches("chat.bad_reply: reply not sent: " .. escape(dir)
                           .. "/protocol%.lua:16: reply blew up", logs("error"))
            assert.equal("", logs("warn")) -- not an action failure: no on_error
            echo_works()
        end)

        it("an app encode that raises on the reply: reply not sent: encode failed", function()
            assert.same({ { type = "error", id = 4,
                            error = { code = "INTERNAL_ERROR", message = "internal error" } } },
                        request(ws, { type = "chat", action = "explode", id = 4 }))
            assert.matches("chat.explode: reply not sent: encode failed: " .. escape(dir)
                           .. "/protocol%.lua:11: encode blew up", logs("error"))
            echo_works()
        end)

        it("an app encode that raises in client:send: nil, encode failed, the action goes on",
           function()
            local out = request(ws, { type = "chat", action = "send_explode", id = 5 })
            assert.equal(1, #out)
            assert.equal(5, out[1].id)
            assert.is_false(out[1].data.ok)
            assert.matches("^encode failed: " .. escape(dir) .. "/protocol%.lua:11: encode blew up",
                           out[1].data.err)
            assert.equal("", logs("error"))
        end)

        it("the runtime's own code: logged as C logs a call that raised, nothing sent",
           function()
            local router = rt:app().router
            router.find = function() error("router broke") end
            assert.same({}, request(ws, { type = "chat", action = "echo", id = 6 }))
            router.find = nil -- the method again
            assert.matches("lua error in message: .*router broke", logs("error"))
            assert.matches("stack traceback:", logs("error"), 1, true)
            echo_works()
        end)
    end)

    describe("module-level API", function()
        -- A server of its own whose handlers are the module's functions,
        -- as the C server calls them (docs/boundary.md).
        local function serve()
            return assert(core.test_server({
                app_dir = dir,
                config = { welcome = false },
                handlers = { upgrade = runtime.upgrade, open = runtime.open,
                             message = runtime.message, capture = runtime.capture,
                             message_failed = runtime.message_failed,
                             disconnect = runtime.disconnect, reload = runtime.reload },
            }))
        end

        it("implements docs/boundary.md", function()
            local srv = serve()
            assert.is_true(runtime.init({ app_dir = dir, config = srv:config(), mode = "serve" }))
            assert.equal(13, #runtime.routes())
            runtime.start()
            local c = srv:connect({ remote_addr = "::1" })
            c:send('{"type":"chat","action":"echo","id":1,"data":{"text":"t"}}')
            srv:run()
            assert.equal("t", cjson.decode(c:frames()[1].payload).data.text)
            c:close(1000, "bye")
            srv:run()
            local lines = {}
            for _, entry in ipairs(srv:logs()) do
                lines[#lines + 1] = entry.message
            end
            assert.matches("disconnected " .. c:id() .. " 1000 bye", table.concat(lines, "\n"),
                           1, true)
            assert.is_true(runtime.reload())
            srv:close()
        end)

        it("keeps the previous app when init fails", function()
            serve()
            assert.is_true(runtime.init({ app_dir = dir, config = {} }))
            local ok, err = runtime.init({ app_dir = dir .. "/missing", config = {} })
            assert.is_nil(ok)
            assert.is_string(err)
            assert.equal(13, #runtime.routes())
        end)
    end)
end)
