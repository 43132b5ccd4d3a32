-- HTTP routes of the gorilla-hub example: the guide's health endpoint,
-- which takes /health from moonwire's own document (guide 004, "Testing
-- with curl"):
--
--   GET /health -> 200 {"status":"healthy","clients":N,"rooms":M}
--
-- clients: the clients the hub admitted (one refused past
-- limits.max_connections is not one); rooms: the rooms that have members
-- (a room goes with its last member, as the gorilla hub removes empty
-- rooms). Written with the guide's key order.

local moonwire = require "moonwire"
local hub = require "lib.hub"

local format = string.format


local JSON = { ["Content-Type"] = "application/json" }


return {
    ["GET /health"] = function()
        return 200, JSON, format('{"status":"healthy","clients":%d,"rooms":%d}',
                                 hub.client_count(), moonwire.room_count())
    end,
}
