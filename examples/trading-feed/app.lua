-- Lifecycle hooks of the trading-feed example: BaseWebSocketHandler's
-- onOpen (the `connected` message with a UUID clientId), its JSON
-- ping/pong heartbeat (a ping every pingInterval; a client that has not
-- answered one within pongTimeout is closed with 1001 "Ping timeout"), its
-- cleanup on close, and the NATS feed (lib/nats_feed.lua). Authentication
-- (the `auth` message, authTimeout), the rate limit, channels and the
-- event cache are moonwire's own (config.lua, protocol.lua).

local message = require "lib.message"
local moonwire = require "moonwire"
local nats_feed = require "lib.nats_feed"
local shared = require "lib.shared"
local uuid = require "moonwire.uuid"

local pairs = pairs


local _M = {}


-- The heartbeat: one ping to every client (encoded once), then, pongTimeout
-- later, every client connected before that ping and silent since is
-- closed. A pong or a ping from the client counts (the package's
-- lastPingTime). Every worker runs this timer for its own clients, so the
-- ping goes to them only (local_only), not through the hub as well.
local function heartbeat(app)
    local clients = app.state.clients
    local sent_at = moonwire.now()
    moonwire.broadcast(message.new("ping"), { local_only = true })
    moonwire.timer.after(app.config.pong_timeout, function()
        for _, client in pairs(clients) do
            local data = client.data
            if data.connected_at <= sent_at and (data.pong_at or 0) < sent_at then
                moonwire.log.warn("client %s: ping timeout", data.client_id)
                client:close(1001, "Ping timeout")
            end
        end
    end)
end


function _M.on_start(app)
    shared.set(app)
    app.state.clients = app.state.clients or {}
    local interval = app.config.ping_interval
    if interval and interval > 0 then
        moonwire.timer.every(interval, function()
            heartbeat(app)
        end)
    end
    nats_feed.start(app)
end


-- The clients and their heartbeat state carry over (moonwire.nats drops
-- the old code's NATS subscriptions; the new on_start subscribes again).
function _M.on_reload(old_state, app)
    shared.set(app)
    app.state.clients = old_state.clients
end


-- onOpen: the client's id (crypto.randomUUID()) and the `connected`
-- message, first thing.
function _M.on_connect(client)
    local now = moonwire.now()
    client.data.client_id = uuid.v4()
    client.data.connected_at = now
    shared.app().state.clients[client.id] = client
    client:send(message.new("connected", { clientId = client.data.client_id }))
end


-- onClose: the base class's cleanup. Channels (rooms) and the event cache
-- are the core's and go with the connection.
function _M.on_disconnect(client)
    local app = shared.app()
    if app then
        app.state.clients[client.id] = nil
    end
end


return _M
