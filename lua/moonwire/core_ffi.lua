-- moonwire.core_ffi: the primitives every message calls (core.send,
-- core.running, core.now) through LuaJIT's FFI. A compiled trace stops at
-- a classic C function (lua_CFunction) and goes on through an FFI call, so
-- with these the per-message path can run as traces from runtime.message
-- to the reply (docs/performance.md, "The Lua dispatch and the JIT").
--
-- moonwire.core._ffi points to a table of C function pointers and the
-- primitives' context (src/lua/api.h, mw_lua_ffi_t, declared again below:
-- change both together). The same table exists in the server and in
-- moonwire/core.so under busted, so nothing depends on where the symbols
-- live. Each function here returns exactly what the classic one returns:
-- what the FFI side does not handle (no server, an id that is not a
-- client id, arguments the classic function refuses with an error) goes
-- to the classic function. A core without _ffi gets the classic functions.

local ffi = require "ffi"

local type = type
local pcall = pcall
local ffi_cast = ffi.cast
local ffi_string = ffi.string


local _M = require("moonwire.version").module()


-- Once per process: busted loads this file again for every spec file.
if not pcall(ffi.typeof, "mw_lua_ffi_t") then
    ffi.cdef [[
typedef struct mw_lua_core mw_lua_core_t;
typedef struct mw_lua_ffi {
    mw_lua_core_t *ctx;
    int (*send)(mw_lua_core_t *ctx, double id, const char *data, size_t len, int binary);
    void (*running)(mw_lua_core_t *ctx, double id);
    double (*now)(mw_lua_core_t *ctx);
    const char *(*strerror)(int rc);
} mw_lua_ffi_t;
]]
end

local CLASSIC = 1 -- MW_LUA_FFI_CLASSIC


local function build(core)
    local ptr = core._ffi
    if type(ptr) ~= "userdata" then
        return { send = core.send, running = core.running, now = core.now }
    end
    local fns = ffi_cast("const mw_lua_ffi_t *", ptr)
    local ctx, c_send, c_running, c_now = fns.ctx, fns.send, fns.running, fns.now
    local c_strerror = fns.strerror
    local classic_send, classic_running = core.send, core.running

    -- mw_strerror's text per code, made into a Lua string once.
    local messages = {}
    local function message(rc)
        local text = messages[rc]
        if not text then
            text = ffi_string(c_strerror(rc))
            messages[rc] = text
        end
        return text
    end

    -- The table keeps `core` reachable: the context lives in it.
    local t = { core = core }

    -- send(id, payload, is_binary) -> true | nil, err: core.send.
    function t.send(id, payload, is_binary)
        if type(id) == "number" and type(payload) == "string" then
            local rc = c_send(ctx, id, payload, #payload, is_binary and 1 or 0)
            if rc == 0 then
                return true
            end
            if rc ~= CLASSIC then
                return nil, message(rc)
            end
        end
        return classic_send(id, payload, is_binary)
    end

    -- running(n): core.running.
    function t.running(id)
        if type(id) == "number" then
            c_running(ctx, id)
            return
        end
        return classic_running(id)
    end

    -- now() -> ms: core.now.
    function t.now()
        return c_now(ctx)
    end

    return t
end


-- One table per core table, so that a spec can replace a function in it
-- as it would in moonwire.core. Entries are never dropped (the table must
-- keep its core, and so the context its C functions use, alive): there is
-- one core table per process, or one per spec file under busted.
local cache = {}


-- The fast primitives over `core` (a moonwire.core table): send, running
-- and now, with the classic signatures and results.
function _M.of(core)
    local t = cache[core]
    if not t then
        t = build(core)
        cache[core] = t
    end
    return t
end


return _M
