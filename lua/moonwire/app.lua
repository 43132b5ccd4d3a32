-- moonwire.app: loads an app folder into a fresh, validated app object:
-- controllers/*.lua into a router, the optional app.lua hooks, the
-- optional protocol.lua, the optional routes.lua (HTTP routes) and the
-- event bus's subscribers/*.lua. It also
-- owns the module searcher for app-local code: every module whose file
-- lives in the app folder is recorded, so that a
-- reload can run it fresh and, when the new code fails to load, put the old
-- modules back. Loading never raises; every failure is `nil, err` with err
-- starting "path/to/file.lua:LINE:".

local core = require "moonwire.core"
local router = require "moonwire.router"
local bus = require "moonwire.bus"
local http = require "moonwire.http"
local errors = require "moonwire.errors"
local default_protocol = require "moonwire.protocol"

local setmetatable = setmetatable
local pairs = pairs
local ipairs = ipairs
local type = type
local tostring = tostring
local error = error
local pcall = pcall
local xpcall = xpcall
local load = load
local io_open = io.open
local getenv = os.getenv
local getinfo = debug.getinfo
local concat = table.concat
local insert = table.insert
local remove = table.remove
local sort = table.sort
local find = string.find
local gsub = string.gsub
local sub = string.sub
local gmatch = string.gmatch
local package = package
local searchpath = package.searchpath


local _M = require("moonwire.version").module()

local mt = { __index = _M }

local HOOKS = {
    on_start = true,
    on_connect = true,
    on_message = true,
    on_disconnect = true,
    on_error = true,
    on_reload = true,
}

-- Policy hooks without the on_ prefix (docs/security.md): who a client is,
-- and what it may do.
local POLICY_HOOKS = { authenticate = true, authorize = true }

local PROTOCOL_OPTIONAL = { "event", "reply", "error" }

-- The loader context whose folder `require` searches first: the app being
-- loaded while load() runs, otherwise the app last activated.
local active


-- Absolute, "."- and ".."-free form of a path, for "is this file under the
-- app folder" checks. Relative paths are taken from $PWD when it is set.
local function normalize(path)
    if sub(path, 1, 1) ~= "/" then
        local cwd = getenv("PWD")
        if cwd and cwd ~= "" then
            path = cwd .. "/" .. path
        end
    end
    local parts = {}
    for seg in gmatch(path, "[^/]+") do
        if seg == ".." then
            parts[#parts] = nil
        elseif seg ~= "." then
            parts[#parts + 1] = seg
        end
    end
    return (sub(path, 1, 1) == "/" and "/" or "") .. concat(parts, "/")
end


local function is_under(path, root)
    return sub(path, 1, #root + 1) == root .. "/"
end


local function read_file(path)
    local f, err = io_open(path, "rb")
    if not f then
        return nil, err
    end
    local src = f:read("*a")
    f:close()
    if not src then
        return nil, path .. ": cannot read"
    end
    return src
end


local function exists(path)
    local f = io_open(path, "rb")
    if f then
        f:close()
        return true
    end
    return false
end


-- Compiles a file with its path as the chunk name, so that syntax and
-- runtime errors read "path:LINE: ...".
local function compile(path)
    local src, err = read_file(path)
    if not src then
        return nil, err
    end
    local fn
    fn, err = load(src, "@" .. path)
    if not fn then
        return nil, err
    end
    return fn, nil, src
end


local function load_handler(err)
    -- Level 2 is the frame that raised (error() itself is skipped).
    return errors.message(err, 2)
end


-- Runs a file and returns its value, or nil, "path:LINE: ...".
local function run(path)
    local fn, err, src = compile(path)
    if not fn then
        return nil, err
    end
    local ok, value = xpcall(fn, load_handler)
    if not ok then
        return nil, value
    end
    return value, nil, src
end


-- Line of a file's last top-level `return` (else its last line), to blame
-- a bad return value.
local function return_line(src)
    local line, found = 0, nil
    if sub(src, -1) ~= "\n" then
        src = src .. "\n"
    end
    for text in gmatch(src, "([^\n]*)\n") do
        line = line + 1
        if find(text, "^return%f[%W]") then
            found = line
        end
    end
    return found or line
end


-- The first line of src that has text in it (a route's key), or nil.
local function line_with(src, text)
    local line = 0
    for l in gmatch(src .. "\n", "([^\n]*)\n") do
        line = line + 1
        if find(l, text, 1, true) then
            return line
        end
    end
    return nil
end


local function line_of(fn)
    local info = getinfo(fn, "S")
    return info and info.linedefined or 1
end


local function searcher(name)
    local ctx = active
    if not ctx then
        return nil
    end
    local path = searchpath(name, ctx.dir .. "/?.lua;" .. ctx.dir .. "/?/init.lua")
    if not path then
        -- Any other path pattern that resolves into the app folder is app code too.
        local found = searchpath(name, package.path)
        if found and is_under(normalize(found), ctx.root) then
            path = found
        end
    end
    if not path then
        return "\n\tno file '" .. ctx.dir .. "/" .. gsub(name, "%.", "/") .. ".lua' (app folder)"
    end
    ctx.modules[name] = path
    return function(modname)
        local fn, err = compile(path)
        if not fn then
            error(err, 0)
        end
        return fn(modname, path)
    end
end


-- Installs the searcher right after package.preload's, replacing one left by
-- an earlier instance of this file (busted re-requires modules per spec file).
local function install_searcher()
    local loaders = package.loaders or package.searchers
    local here = getinfo(searcher, "S").source
    for i = #loaders, 1, -1 do
        local info = getinfo(loaders[i], "S")
        if info.source == here then
            remove(loaders, i)
        end
    end
    insert(loaders, 2, searcher)
end

install_searcher()


-- The line to blame for a bad middleware list (key `key` of a file):
-- the wrong item's first hook when the error names one ("key[2] ..."),
-- else the line that sets the key.
local function middleware_line(src, key, list, err)
    local i = tonumber(err:match(key .. "%[(%d+)%]"))
    local item = i and type(list) == "table" and list[i]
    if type(item) == "table" then
        for _, hook in ipairs({ "on_before", "on_after", "on_error" }) do
            local line = type(item[hook]) == "function" and line_of(item[hook])
            if line and line > 0 then -- not a C function
                return line
            end
        end
    end
    local line = 0
    for l in gmatch(src .. "\n", "([^\n]*)\n") do
        line = line + 1
        if find(l, "%f[%w_]" .. key .. "%s*=") then
            return line
        end
    end
    return return_line(src)
end


local function load_controllers(app, dir)
    local cdir = dir .. "/controllers"
    local entries, err = core.scandir(cdir)
    if not entries then
        if not exists(cdir) then
            return true -- an app without controllers/ has no routes
        end
        return nil, cdir .. ": " .. tostring(err)
    end

    for _, entry in ipairs(entries) do
        local name = entry.name
        -- Hidden files (an editor's ".#greet.lua" lock, "._x.lua") are not
        -- controllers, just as the file watcher ignores them.
        if entry.type == "file" and find(name, "%.lua$") and sub(name, 1, 1) ~= "." then
            local path = cdir .. "/" .. name
            local type_ = sub(name, 1, -5)
            if not router.is_valid_name(type_) then
                return nil, path .. ":1: invalid controller name '" .. type_
                            .. "' (a letter followed by letters, digits, '_' or '-')"
            end

            local controller, src
            controller, err, src = run(path)
            if err then
                return nil, err
            end
            if type(controller) ~= "table" then
                return nil, path .. ":" .. return_line(src)
                            .. ": controller must return a table, got " .. type(controller)
            end

            local ok, add_err = pcall(app.router.add, app.router, type_, controller)
            if not ok then
                local line = 1
                for action, fn in pairs(controller) do
                    if type(fn) == "function" and type(action) == "string"
                       and not find(action, "^_") and not router.is_valid_name(action)
                    then
                        line = line_of(fn)
                        break
                    end
                end
                add_err = tostring(add_err)
                for _, key in ipairs({ "_middleware", "_schema", "_throttle" }) do
                    if find(add_err, "': " .. key, 1, true) then
                        line = middleware_line(src, key, controller[key], add_err)
                        break
                    end
                end
                return nil, path .. ":" .. line .. ": " .. add_err
            end
        end
    end
    return true
end


local function load_hooks(app, dir)
    local path = dir .. "/app.lua"
    if not exists(path) then
        return true
    end
    local hooks, err, src = run(path)
    if err then
        return nil, err
    end
    if type(hooks) ~= "table" then
        return nil, path .. ":" .. return_line(src)
                    .. ": app.lua must return a table of hooks, got " .. type(hooks)
    end
    for key, value in pairs(hooks) do
        if key == "middleware" then
            -- Around every controller action (moonwire.middleware).
            local ok, chain = pcall(require("moonwire.middleware").check, value, "middleware")
            if not ok then
                return nil, path .. ":" .. middleware_line(src, "middleware", value, chain)
                            .. ": " .. tostring(chain)
            end
            app.router:set_middleware(chain)
        elseif POLICY_HOOKS[key] then
            if type(value) ~= "function" then
                return nil, path .. ":" .. return_line(src) .. ": hook '" .. key
                            .. "' must be a function, got " .. type(value)
            end
            app.hooks[key] = value
        elseif type(key) == "string" and find(key, "^on_") then
            if not HOOKS[key] then
                local line = type(value) == "function" and line_of(value) or return_line(src)
                return nil, path .. ":" .. line .. ": unknown hook '" .. key .. "' (hooks are "
                            .. "on_start, on_connect, on_message, on_disconnect, on_error, "
                            .. "on_reload)"
            end
            if type(value) ~= "function" then
                return nil, path .. ":" .. return_line(src) .. ": hook '" .. key
                            .. "' must be a function, got " .. type(value)
            end
            app.hooks[key] = value
        end
    end
    return true
end


local function load_protocol(app, dir)
    local path = dir .. "/protocol.lua"
    if not exists(path) then
        return true
    end
    local proto, err, src = run(path)
    if err then
        return nil, err
    end
    local line = src and return_line(src)
    if type(proto) ~= "table" then
        return nil, path .. ":" .. line .. ": protocol.lua must return a table, got "
                    .. type(proto)
    end
    for _, name in ipairs({ "decode", "encode" }) do
        if type(proto[name]) ~= "function" then
            return nil, path .. ":" .. line .. ": protocol must provide a function '"
                        .. name .. "'"
        end
    end
    for _, name in ipairs(PROTOCOL_OPTIONAL) do
        local fn = proto[name]
        if fn ~= nil and type(fn) ~= "function" then
            return nil, path .. ":" .. line .. ": protocol field '" .. name
                        .. "' must be a function, got " .. type(fn)
        end
    end
    -- What the app leaves out (event, reply, error, codes) comes from the
    -- default protocol; the app's own table is left untouched. A plain
    -- table of both, copied now, so that the runtime's per-message reads
    -- (decode, encode, reply) are table lookups a trace compiles, not an
    -- __index call each (docs/performance.md); fields the app adds to its
    -- table after loading are not seen (a reload copies again).
    -- Anything not copied (_VERSION, what the app's table inherits through
    -- its own metatable) is still looked up as before.
    local merged = setmetatable({}, {
        __index = function(_, key)
            local value = proto[key]
            if value == nil then
                value = default_protocol[key]
            end
            return value
        end,
    })
    for key, value in pairs(default_protocol) do
        local own = proto[key]
        if own ~= nil then
            value = own
        end
        merged[key] = value
    end
    for key, value in pairs(proto) do
        merged[key] = value
    end
    app.protocol = merged
    return true
end


-- A subscriber's middleware list, checked as controllers' are: true and
-- the checked list (nil when empty), or false and the error.
local function check_middleware(list)
    return pcall(require("moonwire.middleware").check, list, "middleware")
end


-- subscribers/*.lua: one event-bus subscriber per file (moonwire.bus
-- checks each table); app.subscribers keeps them in load order (by file
-- name), for moonwire.bus.new.
local function load_subscribers(app, dir)
    local sdir = dir .. "/subscribers"
    local entries, err = core.scandir(sdir)
    if not entries then
        if not exists(sdir) then
            return true
        end
        return nil, sdir .. ": " .. tostring(err)
    end
    local names = {}
    for _, entry in ipairs(entries) do
        local name = entry.name
        if entry.type == "file" and find(name, "%.lua$") and sub(name, 1, 1) ~= "." then
            names[#names + 1] = name
        end
    end
    sort(names)
    local by_name = {}
    for _, file in ipairs(names) do
        local path = sdir .. "/" .. file
        local spec, src
        spec, err, src = run(path)
        if err then
            return nil, err
        end
        local handle = type(spec) == "table" and spec.handle
        local line = type(handle) == "function" and line_of(handle) or return_line(src)
        local record
        record, err = bus.subscriber(spec, {
            name = sub(file, 1, -5), file = path, line = line,
            check_middleware = check_middleware,
        })
        if not record then
            local at = find(err, "^middleware") and middleware_line(src, "middleware",
                                                                      spec.middleware, err)
            return nil, path .. ":" .. (at or return_line(src)) .. ": " .. err
        end
        local other = by_name[record.name]
        if other then
            return nil, path .. ":" .. return_line(src) .. ": subscriber name '" .. record.name
                        .. "' is already used by " .. other
        end
        by_name[record.name] = path
        app.subscribers[#app.subscribers + 1] = record
    end
    return true
end


-- routes.lua: HTTP routes ("METHOD /path" -> handler), compiled by
-- moonwire.http; /api/ belongs to the server API.
local function load_routes(app, dir)
    local path = dir .. "/routes.lua"
    if not exists(path) then
        return true
    end
    local spec, err, src = run(path)
    if err then
        return nil, err
    end
    if type(spec) ~= "table" then
        return nil, path .. ":" .. return_line(src)
                    .. ": routes.lua must return a table of routes, got " .. type(spec)
    end
    local routes, culprit, key
    routes, err, culprit, key = http.compile(spec, { reserved = "/api/" })
    if not routes then
        local line = type(culprit) == "function" and line_of(culprit)
                     or key and line_with(src, key) or return_line(src)
        return nil, path .. ":" .. line .. ": " .. err
    end
    app.http_routes = routes
    return true
end


local function build(app, dir, system_on)
    if not exists(dir) then
        return nil, "app folder " .. dir .. ": no such directory"
    end
    local ok, err = load_hooks(app, dir)
    if ok then
        ok, err = load_protocol(app, dir)
    end
    if ok then
        ok, err = load_controllers(app, dir)
    end
    if ok then
        ok, err = load_routes(app, dir)
    end
    if ok then
        ok, err = load_subscribers(app, dir)
    end
    if not ok then
        return nil, err
    end
    -- The built-in system controller (join, leave, publish, ping, ...),
    -- unless the app has its own controllers/system.lua or turned it off.
    if system_on and not app.router:has("system") then
        app.router:add("system", require("moonwire.system"), true)
    end
    return app
end


-- Loads the app in `dir`. opts.config is the resolved server config (its
-- `app` table becomes app.config); opts.previous is the app being replaced,
-- whose app-local modules are unloaded first and restored on failure.
-- Returns the app or nil, err; never raises on a broken app.
function _M.load(dir, opts)
    if type(dir) ~= "string" or dir == "" then
        error("bad argument #1 to 'load' (app folder path expected)", 2)
    end
    opts = opts or {}
    local config = opts.config or {}
    dir = gsub(dir, "(.)/+$", "%1")

    local saved = {}
    local previous = opts.previous
    if previous then
        for name in pairs(previous._modules) do
            saved[name] = package.loaded[name]
            package.loaded[name] = nil
        end
    end

    local ctx = { dir = dir, root = normalize(dir), modules = {} }
    local app = setmetatable({
        dir = dir,
        config = type(config.app) == "table" and config.app or {},
        state = {},
        hooks = {},
        router = router.new(),
        subscribers = {},
        http_routes = http.compile(nil),
        protocol = default_protocol,
        _loader = ctx,
        _modules = ctx.modules,
    }, mt)

    local outer = active
    active = ctx
    local ok, res, err = pcall(build, app, dir, config.system_controller ~= false)
    active = outer
    if not ok then
        res, err = nil, tostring(res)
    end

    if not res then
        for name in pairs(ctx.modules) do
            package.loaded[name] = nil
        end
        for name, value in pairs(saved) do
            package.loaded[name] = value
        end
        return nil, err
    end
    return app
end


-- Makes `require` search this app's folder first (and record what it finds
-- there) for code that requires lazily, at run time.
function _M.activate(self)
    active = self._loader
end


-- "type.action" of every controller action, then "METHOD /path" of every
-- HTTP route.
function _M.routes(self)
    local list = self.router:routes()
    for _, name in ipairs(self.http_routes:names()) do
        list[#list + 1] = name
    end
    return list
end


-- Names of the app-local modules loaded so far, sorted.
function _M.modules(self)
    local list = {}
    for name in pairs(self._modules) do
        list[#list + 1] = name
    end
    sort(list)
    return list
end


return _M
