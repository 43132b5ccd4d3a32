-- Topic subscriptions (guide 002, "Subscription Model", "Room Management",
-- "Broadcasting"). A topic is a moonwire room: a connection's
-- subscriptions and the guide's this.rooms are the same thing here, the
-- membership the core keeps per connection and per room (it survives a
-- reload, and an empty room goes with its last member, as leaveRoom cleans
-- up empty rooms). Every room of this app is a topic (no system
-- controller), so /health adds up the counts of moonwire.rooms(): with
-- workers, every worker's.
--
-- A filtered broadcast picks subscribers by their client data, which
-- exists only on the worker (or node) that serves them: each worker
-- filters its own subscribers. The worker that takes the request does so
-- at once and emits CHANNEL for the others (subscribers/broadcast.lua),
-- which do the same with the same event.

local moonwire = require "moonwire"
local json = require "moonwire.json"
local envelope = require "lib.envelope"

local type = type
local ipairs = ipairs
local tonumber = tonumber


local _M = {}

-- The bus channel of a filtered broadcast for the other workers and nodes.
_M.CHANNEL = "servercore.broadcast"


-- joinRoom: the subscriber count after it, or nil, code, message
-- (client:join's: INVALID_ROOM, CLOSED).
function _M.subscribe(client, topic)
    return client:join(topic)
end


-- leaveRoom: a connection not subscribed to the topic stays so.
function _M.unsubscribe(client, topic)
    if client:in_room(topic) then
        client:leave(topic)
    end
    return true
end


-- connection.subscriptions, in the order they were made.
function _M.of(client)
    return client:rooms()
end


-- The guide's details.subscriptions: the sum of every connection's
-- subscriptions, on every worker.
function _M.count()
    local n = 0
    for _, name in ipairs(moonwire.rooms()) do
        n = n + moonwire.room(name):count()
    end
    return n
end


-- matchesFilter: with filter.roles, a connection matches when its user
-- has one of them (a connection without a user has no roles).
function _M.matches(client, roles)
    if roles == nil then
        return true
    end
    local mine = client.data.roles
    if type(mine) ~= "table" then
        return false
    end
    for _, role in ipairs(roles) do
        if mine[role] then
            return true
        end
    end
    return false
end


-- This worker's subscribers of `topic` that match `roles` get `event`,
-- encoded and framed once. Returns delivered, dropped, or nil, err.
local function deliver(topic, event, roles)
    local chosen, any = {}, false
    for _, client in ipairs(moonwire.room(topic):members()) do
        if _M.matches(client, roles) then
            chosen[client.id] = true
            any = true
        end
    end
    if not any then
        return 0, 0
    end
    return moonwire.broadcast(event, { local_only = true, filter = function(client)
        return chosen[client.id] == true
    end })
end


-- handleBroadcast: `event` (envelope.event's, `data` its payload) to the
-- topic's subscribers that match `roles` (nil: all of them), encoded and
-- framed once. Returns delivered, dropped (members skipped by
-- backpressure) on this worker, or nil, err; with workers or nodes, the
-- others deliver to theirs.
function _M.broadcast(topic, event, roles)
    if roles == nil then
        return moonwire.room(topic):broadcast(event)
    end
    local delivered, dropped = deliver(topic, event, roles)
    local node = moonwire.node()
    if delivered and node then
        -- the payload as JSON text: the others write the same bytes
        local text, err = json.encode(event.payload)
        if not text then
            return nil, err
        end
        moonwire.emit(_M.CHANNEL, { node = node, topic = topic, id = event.id, ts = event.ts,
                                    payload = text, roles = roles })
    end
    return delivered, dropped
end


-- Another worker's (or node's) filtered broadcast, emitted by
-- _M.broadcast: the same event to this worker's matching subscribers.
-- The worker that emitted it has delivered already. Returns delivered,
-- dropped, or nil, err (a malformed message: nil, "malformed").
function _M.receive(msg)
    if type(msg) ~= "table" or msg.node == moonwire.node() then
        return 0, 0
    end
    local topic, roles, payload = msg.topic, msg.roles, msg.payload
    if type(topic) ~= "string" or type(roles) ~= "table" or type(payload) ~= "string"
       or type(msg.id) ~= "string" then
        return nil, "malformed"
    end
    local data, err = json.literal(payload)
    if data == nil then
        return nil, err
    end
    local event = envelope.event(topic, data)
    event.id = msg.id
    event.ts = tonumber(msg.ts) or event.ts
    return deliver(topic, event, roles)
end


return _M
