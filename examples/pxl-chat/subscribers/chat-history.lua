-- Keeps the last chat messages in Redis, for chat.history: every
-- chat.message event (chat.send emits one per message, with the broadcast
-- message's data) is pushed on the list app.history_key, trimmed to
-- app.history_size. Without a Redis (REDIS_URL unset) it keeps nothing.
-- A Redis that fails (down, slow) makes the push return nil, err, which
-- the next steps retry.

local json = require "moonwire.json"
local shared = require "lib.shared"


return {
    name = "chatHistory",
    description = "Keep the last chat messages in Redis for chat.history",
    channel = "chat.message",
    handle = function(ctx)
        local red = ctx.redis
        if not red then
            return
        end
        local key = shared.setting("history_key")
        local text, err = json.encode(ctx.message)
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
    end,
}
