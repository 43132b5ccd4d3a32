-- The per-message dispatch compiles under LuaJIT (docs/performance.md, "The
-- Lua dispatch and the JIT"): on the real core, as the server runs it (C's
-- protected call into runtime.message), no trace recorded while messages
-- are dispatched is aborted for returning through a protected call. A
-- pcall or xpcall around a step of the dispatch (decode, the action, the
-- reply, encode) makes every trace that starts inside it abort with "NYI:
-- return to lower frame", after which LuaJIT leaves that code to the
-- interpreter: this spec is what notices one coming back. So does a loop
-- of a few iterations, or a function that calls itself, inside the path
-- ("inner loop in root trace").

local tmpdir = require "support.tmpdir"
local testing = require "moonwire.testing"
local vmdef = require "jit.vmdef"
local jutil = require "jit.util"


-- An app like examples/hello (a reply per request, from an action that
-- returns a table) and examples/hub (an action that sends).
local CONTROLLER = [[
local M = {}
function M.hello(client, data)
    client.data.n = (client.data.n or 0) + 1
    return { message = "Hello, " .. data.name .. "!", count = client.data.n }
end
function M.echo(client, data)
    client:send({ type = "echo", data = data })
end
-- an app that writes JSON itself with lua-cjson (moonwire.json makes it
-- decode lazy tables first)
local cjson = require "cjson"
function M.text(client, data)
    client:send(cjson.encode({ type = "text", data = data }))
end
return M
]]


describe("the message dispatch under LuaJIT", function()
    local dir, app

    before_each(function()
        dir = tmpdir.new()
        tmpdir.write(dir, "controllers/greet.lua", CONTROLLER)
        app = assert(testing.load_app(dir, { config = { welcome = false } }))
    end)

    after_each(function()
        app:close()
        tmpdir.remove(dir)
    end)

    it("records no trace abort for a return through a protected call", function()
        local aborts = {}
        -- Aborts in the runtime's code or the app's (busted's own code
        -- has aborts of its own).
        local function on_trace(what, _, func, pc, code, info)
            local where = what == "abort" and jutil.funcinfo(func, pc)
            local source = where and where.source or ""
            if source:find("/moonwire/", 1, true) or source:find(dir, 1, true) then
                local reason = vmdef.traceerr[code] or tostring(code)
                if type(info) == "number" and reason:find("%d", 1, true) then
                    reason = reason:format(info)
                end
                aborts[#aborts + 1] = reason .. " at " .. where.loc
            end
        end
        local ws = app:connect()
        jit.flush()
        jit.attach(on_trace, "trace")
        local ok, err = pcall(function()
            -- Well past LuaJIT's hot counts (56 loop iterations, 112
            -- calls), and past the ~8 retries before it blacklists.
            for i = 1, 300 do
                local hello = ws:request("greet", "hello", { name = "Ada" })
                assert.equal(i, hello.data.count)
                assert.same({ { type = "echo", data = { n = i } } },
                            ws:message("greet", "echo", { n = i }))
                assert.same({ { type = "text", data = { n = i, o = { p = i } } } },
                            ws:message("greet", "text", { n = i, o = { p = i } }))
            end
        end)
        jit.attach(on_trace)
        assert(ok, err)
        local returns, loops = {}, {}
        for _, text in ipairs(aborts) do
            if text:find("return to lower frame", 1, true) then
                returns[#returns + 1] = text
            elseif text:find("inner loop", 1, true) or text:find("recursion", 1, true) then
                -- a loop (or a function calling itself) inside the path:
                -- moonwire.json's search of outgoing tables had both
                loops[#loops + 1] = text
            end
        end
        assert.same({}, returns)
        assert.same({}, loops)
    end)
end)
