-- The guide's "NATS Integration" (subscribeNatsAndBroadcast): each NATS
-- subject pattern of config.lua's app.nats_subscriptions is broadcast to
-- the subscribers of its channel, as the bytes published (lib/feed.lua).
-- The connection is moonwire.nats's: shared per URL, reconnecting by
-- itself, subscriptions sent again after a reconnect, dropped by a reload
-- (the new code's on_start subscribes again). A NATS server that is down
-- at start or later is not an error: the app serves its clients, and the
-- feed resumes when NATS is back (messages published meanwhile are lost:
-- core NATS is at most once).

local feed = require "lib.feed"
local moonwire = require "moonwire"

local ipairs = ipairs
local pcall = pcall
local require = require
local tostring = tostring
local type = type


local _M = {}


-- Starts the feed from NATS when app.config.nats_url is set (on_start).
function _M.start(app)
    local url = app.config.nats_url
    if type(url) ~= "string" or url == "" then
        return
    end
    local loaded, nats = pcall(require, "moonwire.nats")
    if not loaded then
        moonwire.log.warn("NATS_URL is set but moonwire.nats is not available: %s",
                          (tostring(nats):match("^[^\n]*")))
        return
    end
    local nc, err = nats.connect({ url = url, name = "trading-feed" })
    if not nc then
        moonwire.log.error("NATS feed not started: %s", tostring(err))
        return
    end
    for _, s in ipairs(app.config.nats_subscriptions or {}) do
        local channel, subject = s.channel, s.subject
        local sub, why = nc:subscribe(subject, function(msg)
            local ok, bad = feed.publish_text(channel, msg.data)
            if not ok and bad then
                moonwire.log.error("Failed to parse NATS message on %s: %s", msg.subject, bad)
            end
        end)
        if sub then
            moonwire.log.info("Subscribed to NATS subject %s -> channel %s", subject, channel)
        else
            moonwire.log.error("Failed to subscribe to NATS subject %s: %s", subject,
                               tostring(why))
        end
    end
end


return _M
