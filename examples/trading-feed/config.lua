-- Server settings for the trading-feed example: the @aladdin/websocket
-- guide's BaseWebSocketHandler options ("Configuration Reference"),
-- written in its shape below and mapped onto moonwire's options
-- (docs/configuration.md). MOONWIRE_* variables and --port/--host apply on
-- top, as for any app; the guide's own names can be set from the
-- environment too (AUTH_TIMEOUT, PING_INTERVAL, ...), which the integration
-- test uses for small times.

local getenv = os.getenv
local tonumber = tonumber


local function env_number(name, default)
    return tonumber(getenv(name) or "") or default
end


local function env_bool(name, default)
    local v = getenv(name)
    if v == nil or v == "" then
        return default
    end
    return v == "true" or v == "1" or v == "yes" or v == "on"
end


-- The guide's settings, with the values its example handler uses
-- (requireAuth, authTimeout 5000, enableEventCache, rateLimit 10/s) and the
-- defaults of its reference (pings every 30 s, pong within 5 s, a cache of
-- 1000 events).
local guide = {
    rateLimit = {
        windowMs = env_number("RATE_LIMIT_WINDOW_MS", 1000),
        maxMessages = env_number("RATE_LIMIT_MAX_MESSAGES", 10),
    },
    requireAuth = env_bool("REQUIRE_AUTH", true),
    pingInterval = env_number("PING_INTERVAL", 30000),
    pongTimeout = env_number("PONG_TIMEOUT", 5000),
    authTimeout = env_number("AUTH_TIMEOUT", 5000),
    enableEventCache = env_bool("ENABLE_EVENT_CACHE", true),
    eventCacheMaxSize = env_number("EVENT_CACHE_MAX_SIZE", 1000),
}


return {
    port = env_number("PORT", 3000),
    -- The guide's service mounts the handler on /ws.
    path = "/ws",
    -- The guide's `connected` message is app.lua's (with a UUID client id);
    -- moonwire's own welcome and system controller are off.
    welcome = false,
    system_controller = false,

    -- requireAuth, authTimeout: the core's. A client that has not sent a
    -- valid `auth` message within auth_timeout is closed with 1008.
    require_auth = guide.requireAuth,
    auth_timeout = guide.authTimeout,
    -- The auth message's token is a JWT (HS256/384/512) signed with
    -- JWT_SECRET; its `sub` is the userId.
    jwt_secret = getenv("JWT_SECRET") or "",

    -- rateLimit: the core's per-connection limit, counted in C before any
    -- Lua runs, answered with the guide's error (protocol.lua). The guide
    -- never closes a client for it.
    rate_limit = {
        window_ms = guide.rateLimit.windowMs,
        max_messages = guide.rateLimit.maxMessages,
        max_violations = 0,
    },

    -- enableEventCache, eventCacheMaxSize: the core's per-client duplicate
    -- suppression (each client remembers the event ids of its last
    -- deliveries).
    dedupe = guide.enableEventCache,
    event_cache_max_size = guide.eventCacheMaxSize,

    app = {
        -- pingInterval, pongTimeout: the JSON ping/pong of app.lua.
        ping_interval = guide.pingInterval,
        pong_timeout = guide.pongTimeout,
        -- NATS: where the feed comes from (empty: no NATS; the app serves
        -- without it), and the guide's setupNatsSubscriptions: each NATS
        -- subject pattern is broadcast to the subscribers of a channel.
        nats_url = getenv("NATS_URL") or "",
        nats_subscriptions = {
            { subject = "orders.*", channel = "orders" },
            { subject = "portfolio.*", channel = "portfolio" },
        },
        -- The same mapping for events emitted on the bus (POST /api/emit
        -- with channel "orders.created", ...): bus globs.
        bus_subscriptions = {
            { match = "orders.*", channel = "orders" },
            { match = "portfolio.*", channel = "portfolio" },
        },
    },
}
