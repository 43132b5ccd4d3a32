-- Lifecycle hooks of the gorilla-hub example: a client id (a UUID) for
-- every connection, the guide's `connected` message, and the global
-- connection limit (limits.max_connections) as the guide describes it: the
-- client is accepted, told "server is at maximum capacity", and closed.

local moonwire = require "moonwire"
local hub = require "lib.hub"
local uuid = require "moonwire.uuid"


local _M = {}


-- on_start runs for each load of the code: at startup, and after each
-- reload (after on_reload). The hub's count of registered clients lives
-- in a shared dict (lib/hub.lua): a reload keeps it.
function _M.on_start(app)
    hub.set_app(app)
end


function _M.on_reload(old_state, app)
    hub.set_app(app, old_state)
end


function _M.on_connect(client)
    local id = uuid.v4()
    client.data.client_id = id
    if not hub.register(client) then
        -- The error message (protocol.error words it), then a close with
        -- 1008 and the reason "SERVER_FULL" (README.md, "Choices").
        moonwire.fail("SERVER_FULL", hub.ERR_SERVER_FULL)
    end
    client:send(hub.connected(id))
end


function _M.on_disconnect(client)
    hub.unregister(client)
end


return _M
