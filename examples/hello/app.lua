-- Lifecycle hooks of the hello example.

local moonwire = require "moonwire"

local log = moonwire.log


local _M = {}


function _M.on_start(app)
    log.info("hello example started (greeting: %s)", app.config.greeting or "Hello")
end


function _M.on_connect(client)
    log.info("client %d connected from %s", client.id, client.remote_addr or "?")
end


function _M.on_disconnect(client, code, reason)
    local why = (reason and reason ~= "") and (" " .. reason) or ""
    log.info("client %d left (close %d%s), greeted %d times", client.id, code or 0, why,
             client.data.greeted or 0)
end


return _M
