-- Server settings for the pxl-chat example: the PXL guide's configuration
-- ("Configuration", "Room Configuration", "Inactive Client Management",
-- "Server-Side Authentication"), written in its shape below and mapped onto
-- moonwire's options (docs/configuration.md). MOONWIRE_* variables and
-- --port/--host apply on top, as for any app (the integration test sets
-- MOONWIRE_INACTIVE_TIME, MOONWIRE_CLIENT_CAN_JOIN_MULTIPLE_ROOMS, ...).

local getenv = os.getenv


-- The guide's settings, with the values its examples show.
local pxl = {
    webserver = { port = 3000 },
    auth = {
        -- auth.jwtSecretKey: process.env.JWT_SECRET_KEY.
        jwtSecretKey = getenv("JWT_SECRET_KEY") or "",
    },
    webSocket = {
        url = "ws://localhost:3000/ws",
        rooms = {
            clientCanJoinMultipleRooms = true,
        },
        disconnectInactiveClients = {
            enabled = true,
            inactiveTime = 300000,    -- 5 minutes without a message
            intervalCheckTime = 60000, -- checked every minute
        },
    },
}


local inactive = pxl.webSocket.disconnectInactiveClients

-- The guide's `redis` (here a URL, REDIS_URL): where the chatHistory
-- subscriber keeps the last messages, and chat.history reads them. Empty:
-- no history.
-- Across nodes (README.md, "Across nodes") the cluster's Redis,
-- MOONWIRE_REDIS_URL, serves when REDIS_URL is not set.
local redis_url = getenv("REDIS_URL") or getenv("MOONWIRE_REDIS_URL") or ""


return {
    port = pxl.webserver.port,
    -- The guide's clients connect to /ws (PXL takes any path that starts
    -- with /ws; moonwire serves exactly this one).
    path = "/ws",
    -- PXL sends no welcome message and has no moonwire system controller:
    -- controllers/system.lua is PXL's (joinRoom, leaveRoom).
    welcome = false,
    system_controller = false,
    -- rooms.clientCanJoinMultipleRooms: false makes a join move the client
    -- out of the room it was in. A client may be in at most 100 rooms.
    client_can_join_multiple_rooms = pxl.webSocket.rooms.clientCanJoinMultipleRooms,
    -- disconnectInactiveClients: moonwire's core closes a client that sent
    -- no message for inactive_time ms (1000 "inactive"), checking every
    -- inactive_check_interval ms (README.md, "Inactive clients").
    inactive_time = inactive.enabled and inactive.inactiveTime or 0,
    inactive_check_interval = inactive.intervalCheckTime,
    -- A subscriber's ctx.redis connects here.
    redis_url = redis_url,
    app = {
        -- Read by app.lua's authenticate hook (HS256/384/512 tokens).
        jwt_secret_key = pxl.auth.jwtSecretKey,
        -- Chat history (subscribers/chat-history.lua, chat.history): the
        -- Redis list and how many messages it keeps.
        redis_url = redis_url,
        history_key = "pxl-chat:history",
        history_size = 50,
        -- The room dashboards join for queue updates
        -- (subscribers/queue-dashboard.lua).
        queue_room = "queue:dashboard",
        -- The room told about clients connecting, disconnecting, joining
        -- and leaving rooms (subscribers/client-activity.lua).
        activity_room = "clients:activity",
    },
}
