-- The guide's ChatController ("Creating a WebSocket Controller"): routes
-- chat.send and chat.typing. What each returns is the `response` of the
-- answer the sender gets ({"type":"chat","action":"send","response":...}).

local moonwire = require "moonwire"
local json = require "moonwire.json"
local pxl = require "lib.pxl"


local _M = {}


local MESSAGE_KEYS = { "username", "message", "timestamp" }
local ACK_KEYS = { "success", "messageId" }
local SUCCESS_KEYS = { "success" }
local TYPING_KEYS = { "username" }


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


return _M
