-- The requests a client can make ({type:'request', id, action, payload}),
-- one action each; protocol.lua routes a request here with its payload as
-- `payload`. What an action returns is the response's payload; `nil, err`
-- is sendError's message for the request. The guide shows subscribe (with
-- its permission check) and names unsubscribe; ping, subscriptions and
-- whoami are this app's (README.md, "Choices").

local moonwire = require "moonwire"
local json = require "moonwire.json"
local store = require "lib.store"
local topics = require "lib.topics"

local type = type
local pairs = pairs
local tostring = tostring
local sort = table.sort


local _M = {}


local MAX_TOPIC = 256


-- The topic a subscribe or unsubscribe names: payload {topic: "tasks.update"}.
local function topic_of(payload)
    local topic = type(payload) == "table" and payload.topic or nil
    if type(topic) ~= "string" or topic == "" or #topic > MAX_TOPIC then
        return nil, { code = "INVALID_MESSAGE",
                      message = "Invalid payload: topic must be a non-empty string of at most "
                                .. MAX_TOPIC .. " bytes" }
    end
    return topic
end


-- handleSubscribe: the permission check (auth.check.permission, answered
-- by Redis: lib/store.lua), then the subscription. A refusal is the
-- guide's `new Error('Permission denied')`, which sendError sends with
-- its default code. -> {topic, subscribed: true}
function _M.subscribe(client, payload)
    local topic, err = topic_of(payload)
    if not topic then
        return nil, err
    end
    local allowed
    allowed, err = store.can_subscribe(client, topic)
    if allowed == nil then
        moonwire.log.warn("permission check for topic %q failed: %s", topic, tostring(err))
        return nil, { code = "INTERNAL_ERROR", message = "Permission check unavailable" }
    end
    if not allowed then
        return nil, { code = "INTERNAL_ERROR", message = "Permission denied" }
    end
    local count, code
    count, code = topics.subscribe(client, topic)
    if not count then
        if code == "CLOSED" then
            return
        end
        -- max_rooms_per_client (README.md, "Rules").
        return nil, { code = "LIMIT_EXCEEDED", message = "Too many subscriptions" }
    end
    return { topic = topic, subscribed = true }
end


-- -> {topic, subscribed: false}, whether or not the connection was
-- subscribed.
function _M.unsubscribe(client, payload)
    local topic, err = topic_of(payload)
    if not topic then
        return nil, err
    end
    topics.unsubscribe(client, topic)
    return { topic = topic, subscribed = false }
end


-- -> {pong: true}: a round trip.
function _M.ping()
    return { pong = true }
end


-- -> {topics: [...]}: the connection's subscriptions, in the order made.
function _M.subscriptions(client)
    local list = topics.of(client)
    return { topics = list[1] == nil and json.empty_array or list }
end


-- -> {authenticated, user, roles}: what the token the connection came
-- with was validated as (user null and roles [] without one).
function _M.whoami(client)
    local roles = {}
    for role in pairs(client.data.roles or {}) do
        roles[#roles + 1] = role
    end
    sort(roles)
    return {
        authenticated = client.user ~= nil,
        user = client:user_or_null(),
        roles = roles[1] == nil and json.empty_array or roles,
    }
end


return _M
