-- Server settings for the hub example: any path, no welcome event (the hub
-- protocol has none), and no built-in system controller (the hub protocol
-- has its own subscribe/publish). Everything else is the default.
return {
    port = 8080,
    path = "*",
    welcome = false,
    system_controller = false,
}
