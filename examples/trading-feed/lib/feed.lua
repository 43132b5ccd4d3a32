-- Feed events to channels: the guide's broadcastToChannel, with the event
-- cache. A channel is a moonwire room (membership in C, one encode and one
-- frame per broadcast); an event goes out as the bytes the feed published
-- (a NATS message's data, an emitted event's JSON), once per subscriber,
-- and a subscriber that already got an event with the same id does not
-- get it again (the core's per-client cache, config.lua's dedupe).
--
-- Every worker gets each event by itself (its own plain NATS subscription;
-- a bus event runs the subscriber of every worker), so each broadcasts it
-- to its own members only (local_only): with workers = N every subscriber
-- gets it once, not N times through the hub.

local json = require "moonwire.json"
local moonwire = require "moonwire"

local type = type


local _M = {}


-- An event's id, for the cache: its `eventId`, else its `id` (a string or
-- a number). Events without one are never dropped.
function _M.event_id(event)
    if type(event) ~= "table" then
        return nil
    end
    local id = event.eventId
    if type(id) ~= "string" and type(id) ~= "number" then
        id = event.id
    end
    if type(id) == "string" and id ~= "" then
        return id
    end
    if type(id) == "number" then
        return id
    end
    return nil
end


-- Broadcasts `text` (JSON) to the subscribers of `channel`. Returns
-- delivered, dropped, or nil, err for text that is not JSON (the package's
-- "Failed to parse NATS message": nothing is sent).
function _M.publish_text(channel, text)
    local event, err = json.decode(text)
    if event == nil then
        return nil, err
    end
    local room = moonwire.room(channel)
    return room:broadcast(text, { event_id = _M.event_id(event), local_only = true })
end


-- Broadcasts a Lua value (an emitted event) to the subscribers of
-- `channel`; what came from JSON keeps its bytes (moonwire.json).
function _M.publish(channel, event)
    local text, err = json.encode(event)
    if not text then
        return nil, err
    end
    return moonwire.room(channel):broadcast(text, { event_id = _M.event_id(event),
                                                   local_only = true })
end


return _M
