-- The guide's "NATS Integration" (subscribeNatsAndBroadcast): each NATS
-- subject pattern of config.lua's app.nats_subscriptions is broadcast to
-- the subscribers of its channel. The connection is moonwire.nats's
-- (shared per URL, reconnecting by itself); this file only connects at
-- start, retrying with a backoff while NATS does not answer, so that the
-- server serves its clients whether or not NATS is up. Retries run on
-- timers, which a reload cancels; the subscriptions are kept in app.state
-- and dropped by on_reload, before the new code's on_start subscribes
-- again.

local feed = require "lib.feed"
local moonwire = require "moonwire"

local pcall = pcall
local require = require
local tostring = tostring


local _M = {}


local MIN_BACKOFF = 500
local MAX_BACKOFF = 10000


local function subscribe_all(app, nc)
    local subs = {}
    for _, s in ipairs(app.config.nats_subscriptions or {}) do
        local channel, subject = s.channel, s.subject
        local sub, err = nc:subscribe(subject, function(msg)
            local ok, why = feed.publish_text(channel, msg.data)
            if not ok and why then
                moonwire.log.error("Failed to parse NATS message on %s: %s", msg.subject, why)
            end
        end)
        if sub then
            subs[#subs + 1] = sub
            moonwire.log.info("Subscribed to NATS subject %s -> channel %s", subject, channel)
        else
            moonwire.log.error("Failed to subscribe to NATS subject %s: %s", subject,
                               tostring(err))
        end
    end
    return subs
end


-- Starts the feed from NATS, when app.config.nats_url is set. Returns at
-- once; the connection is made in a timer's task.
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
    local backoff = MIN_BACKOFF
    local warned = false
    local attempt
    attempt = function()
        local nc, err = nats.connect({ url = url, timeout = 2000 })
        if not nc then
            if not warned then
                moonwire.log.warn("NATS %s not reachable (%s); serving without it, retrying",
                                  url, tostring(err))
                warned = true
            end
            moonwire.timer.after(backoff, attempt)
            backoff = math.min(backoff * 2, MAX_BACKOFF)
            return
        end
        app.state.nats_subs = subscribe_all(app, nc)
        app.state.nats = nc
        moonwire.log.info("NATS feed from %s", url)
    end
    moonwire.timer.after(0, attempt)
end


-- Drops the subscriptions of the code a reload replaces.
function _M.stop(state)
    for _, sub in ipairs(state.nats_subs or {}) do
        pcall(sub.unsubscribe, sub)
    end
    state.nats_subs = nil
end


return _M
