-- Server settings for the gorilla-hub example, from the environment
-- variables the guide documents (WEBSOCKET_PORT, WEBSOCKET_PING_INTERVAL,
-- WEBSOCKET_LIMITS_MAX_CONNECTIONS, ...) with the guide's defaults, mapped
-- onto moonwire's options (docs/configuration.md). README.md says which
-- guide setting becomes which option, and which have no counterpart.
--
-- Durations are Go duration strings ("54s", "1m30s", "500ms"), as the
-- guide writes them. A malformed value stops the server (exit status 2)
-- with a message naming the variable.

local getenv = os.getenv
local tonumber = tonumber
local floor = math.floor
local find = string.find
local sub = string.sub
local error = error


-- Go's time.ParseDuration units, in milliseconds; "ms" is tried before "m",
-- and both micro signs Go accepts (U+00B5, U+03BC) are here.
local UNITS = {
    { "ns", 1e-6 }, { "us", 1e-3 }, { "\194\181s", 1e-3 }, { "\206\188s", 1e-3 },
    { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
}


-- "1m30s" -> 90000 (ms, rounded), or nil for a malformed or negative one.
local function parse_duration(text)
    if text == "0" then
        return 0
    end
    local pos, total = 1, 0
    if sub(text, 1, 1) == "+" then
        pos = 2
    end
    if pos > #text then
        return nil
    end
    while pos <= #text do
        local s, e = find(text, "^%d*%.?%d*", pos)
        local number = tonumber(sub(text, s, e))
        if not number then
            return nil
        end
        pos = e + 1
        local scale
        for i = 1, #UNITS do
            local unit = UNITS[i][1]
            if sub(text, pos, pos + #unit - 1) == unit then
                scale, pos = UNITS[i][2], pos + #unit
                break
            end
        end
        if not scale then
            return nil
        end
        total = total + number * scale
    end
    return floor(total + 0.5)
end


local function env(name)
    local value = getenv("WEBSOCKET_" .. name)
    if value == "" then
        return nil
    end
    return value
end


local function integer(name, default)
    local text = env(name)
    if text == nil then
        return default
    end
    local n = tonumber(text)
    if not n or n < 0 or n % 1 ~= 0 then
        error("WEBSOCKET_" .. name .. ": must be a non-negative integer (got '" .. text .. "')", 0)
    end
    return n
end


local function duration(name, default)
    local text = env(name) or default
    local ms = parse_duration(text)
    if not ms then
        error("WEBSOCKET_" .. name .. ": must be a Go duration such as \"54s\" (got '"
              .. text .. "')", 0)
    end
    return ms
end


local ping_interval = duration("PING_INTERVAL", "54s")
local pong_wait = duration("PONG_WAIT", "60s")
if pong_wait <= ping_interval then
    error("WEBSOCKET_PONG_WAIT: must be longer than WEBSOCKET_PING_INTERVAL", 0)
end


return {
    host = env("HOST") or "0.0.0.0",
    port = integer("PORT", 8081),
    -- The guide's one WebSocket endpoint; every other path but /health
    -- answers 404.
    path = "/ws",
    -- The guide's `timeout`: how long a client may take to send its
    -- request.
    handshake_timeout = duration("TIMEOUT", "30s"),
    -- Larger messages close the connection with 1009, as gorilla's read
    -- limit does.
    max_message_size = integer("MAX_MESSAGE_SIZE", 512000),
    -- A client that has sent nothing for ping_interval gets a ping; one
    -- that still sends nothing by pong_wait after its last sign of life is
    -- dropped.
    ping_interval = ping_interval,
    pong_timeout = pong_wait - ping_interval,
    -- limits.max_connections_per_room: moonwire's own room limit, whose
    -- ROOM_FULL the controller words as the guide does.
    max_connections_per_room = integer("LIMITS_MAX_CONNECTIONS_PER_ROOM", 0),
    -- The hub has no limit on rooms per client.
    max_rooms_per_client = 0,
    -- The hub sends its own `connected` message and has no system
    -- controller. moonwire's max_connections (a 503 at the upgrade) stays
    -- off: the guide's clients are accepted and told "server is at maximum
    -- capacity" (app.lua).
    welcome = false,
    system_controller = false,
    -- The count of registered clients, the whole server's with workers
    -- (lib/hub.lua): one small key per worker.
    shared_dicts = { "hub:64k" },
    app = {
        max_connections = integer("LIMITS_MAX_CONNECTIONS", 0),
    },
}
