-- Keeps the last chat messages in Redis, for chat.history: every
-- chat.message event (chat.send emits one per message, with the broadcast
-- message's data) is pushed on the list app.history_key, trimmed to
-- app.history_size. Without a Redis (REDIS_URL unset) it keeps nothing.
-- With several nodes only the node the message was sent on keeps it.
--
-- Built from the subscriber utilities: the event is validated first (a
-- malformed one is refused naming the field), a Redis call that fails
-- (down, slow) is retried with a growing delay (the task waits; the loop
-- goes on), and the logging and timing middleware log failures and time
-- each run (moonwire_message_duration_seconds{route="bus:chatHistory"}).

local json = require "moonwire.json"
local handlers = require "moonwire.handlers"
local mw = require "moonwire.middleware"
local pxl = require "lib.pxl"
local shared = require "lib.shared"

local tostring = tostring


-- chat.message's data, as chat.send builds it.
local MESSAGE = {
    type = "object",
    fields = {
        username = "any",
        message = "any",
        timestamp = { type = "string", min_len = 1 },
    },
}


local MESSAGE_KEYS = { "username", "message", "timestamp" }


local function store(ctx)
    local red = ctx.redis
    -- Across nodes (docs/scaling.md) every node runs this handler; the
    -- node the message was sent on keeps it, once, in the shared list.
    if not red or not shared.ours(ctx.message) then
        return
    end
    local key = shared.setting("history_key")
    local m = ctx.message
    local text, err = json.encode(pxl.ordered(MESSAGE_KEYS, {
        username = m.username, message = m.message, timestamp = m.timestamp }))
    if not text then
        return nil, err
    end
    local ok
    ok, err = red:lpush(key, text)
    if not ok then
        return nil, "LPUSH: " .. tostring(err)
    end
    ok, err = red:ltrim(key, 0, shared.setting("history_size") - 1)
    if not ok then
        return nil, "LTRIM: " .. tostring(err)
    end
    return true
end


return {
    name = "chatHistory",
    description = "Keep the last chat messages in Redis for chat.history",
    channel = "chat.message",
    middleware = { mw.logging("chatHistory"), mw.timing() },
    handle = handlers.compose({
        handlers.with_validation(MESSAGE),
        handlers.with_retry({ attempts = 3, delay = 100, backoff = 2, max_delay = 1000 }),
    }, store),
}
