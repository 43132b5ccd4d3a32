-- Specs for moonwire.websocket on the real core (moonwire.testing): the
-- argument and option checks, where it may wait, and a real connect from a
-- handler (a refused port, over a real socket). The client against real
-- servers is spec/integration/test_wsclient.py.

local tmpdir = require "support.tmpdir"
local testing = require "moonwire.testing"
local websocket = require "moonwire.websocket"
local cjson = require "cjson"


describe("moonwire.websocket", function()
    it("raises on a URL that is not a string and on bad options", function()
        assert.has_error(function() websocket.connect(42) end,
                         "bad argument #1 to 'connect' (URL string expected, got number)")
        assert.has_error(function() websocket.connect("ws://h/", 5) end,
                         "bad argument #2 to 'connect' (table expected, got number)")
        local bad = {
            { timeout = -1 }, { timeout = "1" }, { close_timeout = 0 },
            { max_message_size = 0.5 }, { max_queue = 0 }, { protocols = { "a b" } },
            { protocols = 7 }, { headers = { "x" } }, { headers = { X = {} } },
            { tls = true }, { tls = { verify = "yes" } }, { tls = { ca_file = 1 } },
            { controllers = { chat = function() end } }, { on_close = "f" },
        }
        for _, opts in ipairs(bad) do
            local ok, err = pcall(websocket.connect, "ws://127.0.0.1:1/", opts)
            assert.is_false(ok)
            assert.matches("bad option '[%w_.]+' to 'connect'", err)
        end
    end)

    describe("in an app", function()
        local app

        before_each(function()
            local dir = tmpdir.new()
            tmpdir.write(dir, "controllers/probe.lua", [[
                local moonwire = require "moonwire"
                local M = {}
                function M.connect(client, data)
                    local ws, err = moonwire.websocket.connect(data.url, { timeout = 3000 })
                    return { ok = ws ~= nil, err = err }
                end
                return M
            ]])
            app = assert(testing.load_app(dir, { config = { welcome = false } }))
        end)

        after_each(function()
            app:close()
        end)

        local function ask(data)
            local ws = app:connect()
            ws:send(cjson.encode({ type = "probe", action = "connect", data = data, id = "c" }))
            return assert(ws:wait_reply("c")).data
        end

        it("returns nil and a clear error for a refused port, from a handler", function()
            local r = ask({ url = "ws://127.0.0.1:1/" })
            assert.is_false(r.ok)
            assert.equals("connect to 127.0.0.1:1: connection refused", r.err)
        end)

        it("returns nil, err for a URL it cannot use", function()
            local r = ask({ url = "http://127.0.0.1/" })
            assert.is_false(r.ok)
            assert.equals("the URL's scheme must be ws or wss, not http", r.err)
        end)

        it("raises outside a task", function()
            local ok, err = pcall(websocket.connect, "ws://127.0.0.1:1/")
            assert.is_false(ok)
            assert.matches("^cannot wait", err)
        end)
    end)
end)
