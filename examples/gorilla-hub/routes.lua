-- HTTP routes of the gorilla-hub example: the guide's health endpoint,
-- which replaces moonwire's own /health document (guide 004, "Testing with
-- curl"):
--
--   GET /health -> 200 {"status":"healthy","clients":N,"rooms":M}
--
-- clients: the clients the hub registered (a client refused past
-- limits.max_connections is not one); rooms: the rooms that have members
-- (a room goes with its last member, as the gorilla hub removes empty
-- rooms).

local moonwire = require "moonwire"
local hub = require "lib.hub"


return {
    ["GET /health"] = function()
        return 200, {
            status = "healthy",
            clients = hub.client_count(),
            rooms = moonwire.room_count(),
        }
    end,
}
