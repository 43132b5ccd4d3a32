-- Lifecycle hooks of the chat example: every client starts with a guest
-- display name, which presence events and the member list show.

local moonwire = require "moonwire"
local settings = require "lib.settings"

local log = moonwire.log


local _M = {}


function _M.on_start(app)
    settings.set(app.config)
    log.info("chat example started")
end


function _M.on_reload(_, app)
    settings.set(app.config)
end


function _M.on_connect(client)
    client.public.name = "guest-" .. client.id
end


function _M.on_disconnect(client, code)
    log.info("client %d (%s) left with %d", client.id, client.public.name, code or 0)
end


return _M
