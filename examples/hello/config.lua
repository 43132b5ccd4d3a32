-- Server settings for the hello example (see docs for every key).
return {
    port = 8080,
    path = "/",
    welcome = true,
    app = {
        greeting = "Hello",
    },
}
