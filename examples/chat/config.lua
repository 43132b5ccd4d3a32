-- Server settings for the chat example (docs/configuration.md lists every key).
return {
    port = 8080,
    path = "/",
    welcome = true,
    -- Presence on every room: members get "joined"/"left" events.
    presence = { "*" },
    -- A client may sit in several rooms, up to 20 of them.
    max_rooms_per_client = 20,
    max_connections_per_room = 1000,
    app = {
        max_text = 2000,        -- bytes per chat message
        max_name = 32,          -- bytes per display name
        typing_interval = 1000, -- ms between two typing events of one client
    },
}
