-- Server settings for the echo example: any path, no welcome message, and
-- the default max_message_size.
return {
    port = 8080,
    path = "*",
    welcome = false,
}
