-- Topic subscriptions (guide 002, "Subscription Model", "Room Management",
-- "Broadcasting"). A topic is a moonwire room: a connection's
-- subscriptions and the guide's this.rooms are the same thing here, the
-- membership the core keeps per connection and per room (it survives a
-- reload, and an empty room goes with its last member, as leaveRoom cleans
-- up empty rooms).
--
-- The names of the topics that have had members are kept in app.state
-- (carried over a reload by app.lua) so that /health can add up the
-- subscriptions; a name is dropped once its room is gone.

local moonwire = require "moonwire"
local shared = require "lib.shared"

local type = type
local pairs = pairs
local ipairs = ipairs


local _M = {}


local function known()
    local state = shared.state()
    local topics = state.topics
    if not topics then
        topics = {}
        state.topics = topics
    end
    return topics
end


-- joinRoom: the subscriber count after it, or nil, code, message
-- (client:join's: INVALID_ROOM, CLOSED).
function _M.subscribe(client, topic)
    local count, code, message = client:join(topic)
    if count then
        known()[topic] = true
    end
    return count, code, message
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
-- subscriptions.
function _M.count()
    local topics, n = known(), 0
    for name in pairs(topics) do
        local members = moonwire.room(name):count()
        if members == 0 then
            topics[name] = nil
        else
            n = n + members
        end
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


-- handleBroadcast: `event` to the topic's subscribers that match `roles`
-- (nil: all of them), encoded and framed once. Returns delivered, dropped
-- (members skipped by backpressure), or nil, err.
function _M.broadcast(topic, event, roles)
    local room = moonwire.room(topic)
    if roles == nil then
        return room:broadcast(event)
    end
    local chosen, any = {}, false
    for _, client in ipairs(room:members()) do
        if _M.matches(client, roles) then
            chosen[client.id] = true
            any = true
        end
    end
    if not any then
        return 0, 0
    end
    return moonwire.broadcast(event, { filter = function(client)
        return chosen[client.id] == true
    end })
end


return _M
