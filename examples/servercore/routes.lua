-- HTTP routes of the servercore example.
--
--   GET /health      getHealth() of guide 002, in its shape and key order:
--                    {"healthy":true,"connections":N,"rooms":M,
--                     "details":{"subscriptions":S}}
--   POST /broadcast  the guide's ServerEvents.BROADCAST from a backend:
--                    {"topic":T,"data":D,"filter":{"roles":[...]}} (filter
--                    optional), sent as handleBroadcast sends it: the
--                    event to the topic's subscribers whose user has one
--                    of the roles. Behind `Authorization: apikey KEY`, the
--                    server API's key; 404 when no key is set, as /api/.
--
-- A publish without a filter can also go through the server API:
-- POST /api/publish {"room":T,"data":D} (README.md, "Backends").

local moonwire = require "moonwire"
local json = require "moonwire.json"
local envelope = require "lib.envelope"
local shared = require "lib.shared"
local topics = require "lib.topics"
local apikey = require "lib.apikey"

local type = type
local pairs = pairs
local tostring = tostring
local ipairs = ipairs
local format = string.format
local find = string.find


local JSON = { ["Content-Type"] = "application/json" }
local MAX_TOPIC = 256


local function bad(field, what)
    return 400, { error = { code = "BAD_REQUEST", message = field .. ": " .. what } }
end


-- The filter's roles (nil: no filter), or nil, status, answer.
local function roles_of(filter)
    if filter == nil or filter == json.null then
        return nil
    end
    -- json.raw: an empty array decodes to an empty table like {} does.
    if type(filter) ~= "table" or filter[1] ~= nil or find(json.raw(filter) or "", "^%s*%[") then
        return nil, bad("filter", "must be an object")
    end
    for key in pairs(filter) do
        if key ~= "roles" then
            return nil, bad("filter", "unknown key '" .. tostring(key) .. "' (only roles)")
        end
    end
    local roles = filter.roles
    if type(roles) ~= "table" or roles[1] == nil then
        return nil, bad("filter.roles", "must be a non-empty array of role names")
    end
    for key in pairs(roles) do
        if type(key) ~= "number" then
            return nil, bad("filter.roles", "must be a non-empty array of role names")
        end
    end
    for _, role in ipairs(roles) do
        if type(role) ~= "string" or role == "" then
            return nil, bad("filter.roles", "must be a non-empty array of role names")
        end
    end
    return roles
end


local function broadcast(req)
    local key = shared.config().api_key
    if type(key) ~= "string" or key == "" then
        return 404, { error = { code = "NOT_FOUND", message = "not found" } }
    end
    if not apikey.ok(key, req.headers.authorization) then
        return 401, { ["WWW-Authenticate"] = "apikey", ["Content-Type"] = "application/json" },
               { error = { code = "AUTHENTICATION_FAILED", message = "api key required" } }
    end
    local body, kind = json.decode(req.body)
    if body == nil then
        return 400, { error = { code = "BAD_REQUEST", message = kind } }
    end
    if kind ~= "object" then
        return bad("body", "must be a JSON object")
    end
    local topic = body.topic
    if type(topic) ~= "string" or topic == "" or #topic > MAX_TOPIC then
        return bad("topic", "must be a non-empty string of at most " .. MAX_TOPIC .. " bytes")
    end
    local data = json.field(body, "data")
    if data == nil then
        return bad("data", "required (any JSON value)")
    end
    local roles, status, answer = roles_of(body.filter)
    if status then
        return status, answer
    end
    local delivered, dropped = topics.broadcast(topic, envelope.event(topic, data), roles)
    if not delivered then
        moonwire.log.error("broadcast to topic %q failed: %s", topic, tostring(dropped))
        return 500, { error = { code = "INTERNAL_ERROR", message = "internal error" } }
    end
    return 200, { topic = topic, delivered = delivered, dropped = dropped }
end


return {
    ["GET /health"] = function()
        local doc = moonwire.health()
        return 200, JSON, format('{"healthy":true,"connections":%d,"rooms":%d,'
                                 .. '"details":{"subscriptions":%d}}',
                                 doc and doc.connections or 0, moonwire.room_count(),
                                 topics.count())
    end,

    ["POST /broadcast"] = broadcast,
}
