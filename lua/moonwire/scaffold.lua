-- moonwire.scaffold: writes a new app skeleton for `moonwire new NAME`: a
-- config, one controller, commented hooks, a passing spec, .busted and a
-- README. It only creates files; it never overwrites, and refuses a folder
-- that already has something in it.

local type = type
local error = error
local tostring = tostring
local ipairs = ipairs
local io_open = io.open
local io_popen = io.popen
local os_execute = os.execute
local gsub = string.gsub
local match = string.match


local _M = require("moonwire.version").module()


local FILES = {}

FILES["config.lua"] = [[
-- Server settings for {{name}}. Every key can be overridden with a
-- MOONWIRE_* environment variable; `app` is free-form and reaches the app
-- as app.config.
return {
    host = "127.0.0.1",
    port = 8080,
    path = "/",
    welcome = true,
    reload = true,
    app = {
        greeting = "Hello",
    },
}
]]

FILES["controllers/hello.lua"] = [[
-- Controller for type "hello": each public function is an action.
-- Client: {"type":"hello","action":"say","data":{"name":"Ada"},"id":"1"}

local moonwire = require "moonwire"


local _M = {}


-- Replies { message = "Hello, NAME!" }; a bad name is an INVALID_MESSAGE error.
function _M.say(client, data)
    if type(data.name) ~= "string" or data.name == "" then
        return nil, { code = "INVALID_MESSAGE", message = "name must be a non-empty string" }
    end
    client.data.name = data.name
    return { message = "Hello, " .. data.name .. "!" }
end


-- Replies with the server time; moonwire.fail() sends an error envelope.
function _M.ping(client, data)
    if data.fail then
        moonwire.fail("INVALID_MESSAGE", "asked to fail")
    end
    return { pong = moonwire.now(), name = client.data.name }
end


return _M
]]

FILES["app.lua"] = [[
-- Lifecycle hooks for {{name}}. Every hook is optional; errors in hooks are
-- logged with file:line and never break the server.

local moonwire = require "moonwire"

local log = moonwire.log


local _M = {}


-- Once, when the server is listening. app.config is config.lua's `app` table.
function _M.on_start(app)
    log.info("{{name}} started")
end


-- function _M.on_connect(client)
--     -- client.id, client.remote_addr, client.request.{path,query,headers}
--     -- moonwire.fail("AUTHENTICATION_FAILED") here refuses the client.
-- end


-- function _M.on_message(client, msg)
--     -- Runs before routing; return false to drop the message.
-- end


-- function _M.on_disconnect(client, code, reason)
-- end


-- function _M.on_error(client, err, msg)
--     -- A controller raised err ("file:line: ..."); the client got INTERNAL_ERROR.
-- end


-- function _M.on_reload(old_state, app)
--     -- After a hot reload: copy what you need from the old app.state.
-- end


return _M
]]

FILES["spec/hello_spec.lua"] = [[
-- Specs for the hello controller, run through the real runtime:
--   moonwire test .

local testing = require "moonwire.testing"


describe("hello", function()
    local app, ws

    before_each(function()
        app = assert(testing.load_app("."))
        ws = app:connect()
    end)

    it("says hello", function()
        local reply = ws:request("hello", "say", { name = "Ada" })
        assert.same({ message = "Hello, Ada!" }, reply.data)
    end)

    it("rejects a missing name", function()
        local reply = ws:request("hello", "say", {})
        assert.equal("error", reply.type)
        assert.equal("INVALID_MESSAGE", reply.error.code)
    end)

    it("remembers the name per client", function()
        ws:request("hello", "say", { name = "Ada" })
        assert.equal("Ada", ws:request("hello", "ping", {}).data.name)
        assert.equal("INVALID_MESSAGE", ws:request("hello", "ping", { fail = true }).error.code)
    end)
end)
]]

FILES[".busted"] = [[
-- busted settings for this app's specs (`moonwire test .`).
return {
    default = {
        lua = "luajit",
        ROOT = { "spec" },
        pattern = "_spec",
    },
}
]]

FILES["README.md"] = [[
# {{name}}

A moonwire WebSocket app.

    moonwire serve .     # run it (hot-reloads on change)
    moonwire check .     # load it and print its routes
    moonwire test .      # run spec/ with busted

Try it with any WebSocket client:

    {"type":"hello","action":"say","data":{"name":"Ada"},"id":"1"}

- `config.lua`: server settings; `app` holds your own settings.
- `controllers/*.lua`: one file per message type, one function per action.
- `subscribers/*.lua`: event-bus subscribers (`moonwire new subscriber NAME {{name}}`
  adds one; docs/subscribers.md).
- `app.lua`: lifecycle hooks.
- `spec/`: busted specs using `moonwire.testing`.
]]

local ORDER = { "config.lua", "controllers/hello.lua", "app.lua", "spec/hello_spec.lua",
                ".busted", "README.md" }


local function quote(s)
    return "'" .. gsub(s, "'", "'\\''") .. "'"
end


local function mkdir_p(path)
    local rc = os_execute("mkdir -p -- " .. quote(path))
    if rc ~= 0 and rc ~= true then
        return nil, path .. ": cannot create directory"
    end
    return true
end


-- nil when `dir` does not exist, else whether it holds any entry.
local function has_entries(dir)
    local p = io_popen("test -d " .. quote(dir) .. " && echo // && ls -A -- " .. quote(dir)
                       .. " 2>/dev/null")
    if not p then
        return nil
    end
    local out = p:read("*a") or ""
    p:close()
    if out:sub(1, 3) ~= "//\n" then
        local f = io_open(dir, "rb")
        if f then
            f:close()
            return true  -- exists but is not a directory
        end
        return nil
    end
    return out:sub(4) ~= ""
end


-- Writes content to path (replacing it). true or nil, err.
local function write_file(path, content)
    local f, err = io_open(path, "wb")
    if not f then
        return nil, err
    end
    local ok, werr = f:write(content)
    f:close()
    if not ok then
        return nil, path .. ": " .. tostring(werr)
    end
    return true
end


-- Creates the skeleton in `dir` (the app's name is its last path segment).
-- opts.mkdir(path) -> true | nil, err replaces the shell's mkdir -p.
-- Returns true or nil, err.
function _M.create(dir, opts)
    if type(dir) ~= "string" or dir == "" then
        error("bad argument #1 to 'create' (directory path expected)", 2)
    end
    opts = opts or {}
    local mkdir = opts.mkdir or mkdir_p
    dir = gsub(dir, "(.)/+$", "%1")
    local name = match(dir, "([^/]+)$") or dir

    if has_entries(dir) then
        return nil, dir .. ": already exists and is not empty"
    end

    for _, sub in ipairs({ "", "/controllers", "/spec" }) do
        local ok, err = mkdir(dir .. sub)
        if not ok then
            return nil, err
        end
    end

    for _, rel in ipairs(ORDER) do
        local path = dir .. "/" .. rel
        local content = gsub(FILES[rel], "{{name}}", (gsub(name, "%%", "%%%%")))
        local ok, err = write_file(path, content)
        if not ok then
            return nil, err
        end
    end
    return true
end


-- A subscriber for `moonwire new subscriber NAME [APP]`: a working
-- handler that forwards its events to a room, and a spec that emits one.
local SUBSCRIBER = [[
-- subscribers/{{name}}.lua: an event-bus subscriber (docs/subscribers.md).
-- It runs, in a task of its own, for every event its selector accepts:
-- `channel = "x"`, `channels = { "x", "y" }`, or `match =` a glob ("job.*"),
-- a function(ctx) or a list of them. Higher `priority` runs first.
return {
    name = "{{name}}",
    description = "forwards {{name}}.* events to the room '{{name}}'",
    match = "{{name}}.*",
    priority = 0,
    -- middleware = { require("moonwire.middleware").logging("{{name}}") },
    handle = function(ctx)
        -- ctx.channel, ctx.message, ctx.server (send, broadcast, room, join,
        -- leave, client, disconnect, emit), ctx.redis (config redis_url).
        ctx.server.room("{{name}}"):broadcast({
            type = "{{name}}",
            action = ctx.channel:match("[^.]+$"),
            data = ctx.message,
        })
    end,
}
]]

local SUBSCRIBER_SPEC = [[
-- Specs for subscribers/{{name}}.lua, through the real runtime: an event
-- emitted on the bus reaches the members of the room.
local testing = require "moonwire.testing"

describe("subscriber {{name}}", function()
    local app

    before_each(function()
        app = assert(testing.load_app("."))
    end)

    after_each(function()
        app:close()
    end)

    it("forwards {{name}}.* events to the room", function()
        local ws = app:connect()
        ws.client:join("{{name}}")
        assert.equal(1, app:emit("{{name}}.created", { id = 7 }))
        local got = ws:events("{{name}}", "created")
        assert.equal(1, #got)
        assert.same({ id = 7 }, got[1].data)
    end)
end)
]]


-- Like write_file, but never over an existing file.
local function write_new(path, content)
    local f = io_open(path, "rb")
    if f then
        f:close()
        return nil, path .. ": already exists"
    end
    return write_file(path, content)
end


-- Writes dir/subscribers/NAME.lua and dir/spec/NAME_subscriber_spec.lua.
-- Returns true or nil, err (an existing file is never overwritten).
function _M.subscriber(dir, name, opts)
    if type(dir) ~= "string" or dir == "" then
        error("bad argument #1 to 'subscriber' (directory path expected)", 2)
    end
    if type(name) ~= "string" or not match(name, "^[%a][%w_%-]*$") then
        return nil, "invalid subscriber name '" .. tostring(name)
                    .. "' (a letter followed by letters, digits, '_' or '-')"
    end
    opts = opts or {}
    local mkdir = opts.mkdir or mkdir_p
    dir = gsub(dir, "(.)/+$", "%1")
    for _, sub in ipairs({ "/subscribers", "/spec" }) do
        local ok, err = mkdir(dir .. sub)
        if not ok then
            return nil, err
        end
    end
    local files = {
        { dir .. "/subscribers/" .. name .. ".lua", SUBSCRIBER },
        { dir .. "/spec/" .. name .. "_subscriber_spec.lua", SUBSCRIBER_SPEC },
    }
    for _, f in ipairs(files) do
        local existing = io_open(f[1], "rb")
        if existing then
            existing:close()
            return nil, f[1] .. ": already exists"
        end
    end
    for _, f in ipairs(files) do
        local ok, err = write_new(f[1], (gsub(f[2], "{{name}}", name)))
        if not ok then
            return nil, err
        end
    end
    return true
end


return _M
