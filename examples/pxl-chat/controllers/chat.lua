-- The guide's ChatController ("Creating a WebSocket Controller"): routes
-- chat.send and chat.typing. What each returns is the `response` of the
-- answer the sender gets ({"type":"chat","action":"send","response":...}).

local moonwire = require "moonwire"
local json = require "moonwire.json"
local protocol = require "moonwire.protocol"
local pxl = require "lib.pxl"
local shared = require "lib.shared"

local type = type
local tostring = tostring


local _M = {}


local MESSAGE_KEYS = { "username", "message", "timestamp" }
local ACK_KEYS = { "success", "messageId" }
local SUCCESS_KEYS = { "success" }
local TYPING_KEYS = { "username" }
local HISTORY_KEYS = { "success", "messages" }
local FAILED_KEYS = { "success", "error" }

local UNAVAILABLE = "History is not available"


-- A field of data as PXL reads it (`data?.x || fallback`), written back as
-- the client's bytes when it is passed on unchanged.
local function field_or(data, key, fallback)
    if pxl.js_or(data[key], nil) == nil then
        return fallback
    end
    return json.field(data, key)
end


-- {"type":"chat","action":"send","data":{"username":U,"text":T}}
--   every client, the sender too, gets {"type":"chat","action":"message",
--   "data":{"username":U,"message":T,"timestamp":ISO}}; the sender's answer
--   is {"type":"chat","action":"send","response":{"success":true,"messageId":MS}}.
--
-- The answer goes out first and the broadcast right after (a task of its
-- own, once this one has replied): the order a PXL server gives, whose
-- sendMessageToAll makes a round trip through Redis.
function _M.send(client, data)
    local message = pxl.message("chat", "message", pxl.ordered(MESSAGE_KEYS, {
        username = field_or(data, "username", "Anonymous"),
        message = field_or(data, "text", ""),
        timestamp = pxl.iso(),
    }))
    moonwire.spawn(moonwire.broadcast, message)
    -- For the app's subscribers (subscribers/chat-history.lua). Across
    -- nodes every node's subscribers get the event: `node` says which one
    -- the message was sent on (the one that keeps it).
    local event = message.data
    moonwire.emit("chat.message", pxl.ordered(MESSAGE_KEYS, {
        username = event.username, message = event.message, timestamp = event.timestamp,
        node = shared.node(),
    }))
    return pxl.ordered(ACK_KEYS, { success = true, messageId = pxl.now() })
end


-- {"type":"chat","action":"typing","data":{"username":U}}
--   every other client gets {"type":"chat","action":"userTyping",
--   "data":{"username":U}}; the sender's answer is {"success":true}.
function _M.typing(client, data)
    moonwire.broadcast(pxl.message("chat", "userTyping", pxl.ordered(TYPING_KEYS, {
        username = field_or(data, "username", "Anonymous"),
    })), { exclude = client })
    return pxl.ordered(SUCCESS_KEYS, { success = true })
end


-- {"type":"chat","action":"history"} -> {"success":true,"messages":[M, ...]}:
-- the last messages (app.history_size, oldest first) as chat.message's
-- data, from the Redis list chatHistory keeps; {"success":false,"error":
-- "History is not available"} when the app has no Redis or Redis does not
-- answer. Not one of the guide's actions: the app's own.
function _M.history()
    local url = shared.setting("redis_url")
    if type(url) ~= "string" or url == "" then
        return pxl.ordered(FAILED_KEYS, { success = false, error = UNAVAILABLE })
    end
    local list
    local red, err = moonwire.redis.connect(url)
    if red then
        list, err = red:lrange(shared.setting("history_key"), 0,
                               shared.setting("history_size") - 1)
    end
    if not list then
        moonwire.log.warn("chat.history: %s", tostring(err))
        return pxl.ordered(FAILED_KEYS, { success = false, error = UNAVAILABLE })
    end
    -- Newest first in Redis; each entry is JSON text, sent as written.
    local messages = {}
    for i = #list, 1, -1 do
        local entry = json.literal(list[i])
        if entry then
            messages[#messages + 1] = entry
        end
    end
    return pxl.ordered(HISTORY_KEYS, { success = true, messages = protocol.array(messages) })
end


return _M
