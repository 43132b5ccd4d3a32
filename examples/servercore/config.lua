-- Server settings for the servercore example (guide 002). The guide gives
-- no port, path or limits of its own; its Rules ("Message Validation",
-- "Connection Limits") map to moonwire options, each settable from a
-- SERVERCORE_* variable (README.md, "Configuration"). MOONWIRE_* variables
-- and --port/--host apply on top, as for any app.

local getenv = os.getenv
local tonumber = tonumber
local error = error


local function env(name)
    local value = getenv("SERVERCORE_" .. name)
    if value == "" then
        return nil
    end
    return value
end


-- A SERVERCORE_ variable holding an integer of at least `min` (default 0);
-- a malformed value stops the server naming the variable.
local function integer(name, default, min)
    local text = env(name)
    if text == nil then
        return default
    end
    min = min or 0
    local n = tonumber(text)
    if not n or n < min or n % 1 ~= 0 then
        error("SERVERCORE_" .. name .. ": must be an integer of at least " .. min
              .. " (got '" .. text .. "')", 0)
    end
    return n
end


-- The key backends present (Authorization: apikey KEY) to the server API
-- and to POST /broadcast. MOONWIRE_API_KEY sets the server's api_key over
-- config.lua, so it is read first, for both to agree.
local api_key = getenv("MOONWIRE_API_KEY") or env("API_KEY") or ""


return {
    port = integer("PORT", 8080),
    -- The guide does not say where the WebSocket server listens: /ws.
    -- Not "*" (any path), which would take POST /broadcast from routes.lua.
    path = env("WS_PATH") or "/ws",
    -- The app speaks only the guide's envelope: no moonwire welcome event,
    -- no built-in system controller.
    welcome = false,
    system_controller = false,
    -- Rules 1, "Enforce size limits": a larger message closes the
    -- connection with 1009.
    max_message_size = integer("MAX_MESSAGE_SIZE", 1048576),
    -- Rules 2, "Limit connections per user": the connection past it is
    -- closed with 1008 "too many connections for this user" (0: no limit).
    max_connections_per_user = integer("MAX_CONNECTIONS_PER_USER", 0),
    -- Rules 2, "Implement rate limiting": messages per second per
    -- connection (0: no limit); past it a message gets the error
    -- RATE_LIMIT_EXCEEDED, and 10 in a row close the connection (1008).
    rate_limit = {
        window_ms = 1000,
        max_messages = integer("RATE_LIMIT", 0),
    },
    -- Rules 2, "Clean up inactive connections": a client silent for
    -- ping_interval gets a ping and is dropped if it does not answer within
    -- pong_timeout; with SERVERCORE_INACTIVE_TIME (ms), one that sends no
    -- message for that long is closed with 1000 "inactive".
    ping_interval = integer("PING_INTERVAL", 30000),
    pong_timeout = integer("PONG_TIMEOUT", 10000),
    inactive_time = integer("INACTIVE_TIME", 0),
    -- Subscriptions one connection may hold (0: no limit).
    max_rooms_per_client = integer("MAX_SUBSCRIPTIONS", 100),
    api_key = api_key,
    app = {
        api_key = api_key,
        -- Where tokens, roles and topic permissions are kept (README.md,
        -- "Redis").
        redis_url = env("REDIS_URL") or "redis://127.0.0.1:6379/0",
        redis_prefix = env("REDIS_PREFIX") or "servercore:",
        -- How long each Redis call of a token validation or a permission
        -- check may wait (ms): the guide's auth.validate timeout. Keep it
        -- under handshake_timeout (10 s), which bounds the whole upgrade.
        redis_timeout = integer("REDIS_TIMEOUT", 5000, 1),
    },
}
