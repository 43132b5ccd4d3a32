-- Server settings for the hub example: any path, no welcome event (the hub
-- protocol has none), and no built-in system controller (the hub protocol
-- has its own subscribe/publish). Everything else is the default.
--
-- app.redis_url: the Redis server of the incr message (scripts/bench sets
-- HUB_REDIS_URL for its Redis rows). Without one, incr answers UNAVAILABLE
-- and nothing connects to Redis.
local getenv = os.getenv

return {
    port = 8080,
    path = "*",
    welcome = false,
    system_controller = false,
    app = {
        redis_url = getenv("HUB_REDIS_URL"),
    },
}
