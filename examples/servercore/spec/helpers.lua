-- Shared helpers of the servercore specs: requests in the guide's envelope
-- and what came back, read from the real frames.

local cjson = require "cjson"

local _M = {}


-- The virtual clock: every timestamp is this until a spec moves it.
_M.CLOCK = 1700000000000

-- generateId(): a random (version 4) UUID.
_M.UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"


-- A client on the app's WebSocket path (/ws); info as app:connect's.
function _M.connect(app, info)
    info = info or {}
    info.path = info.path or "/ws"
    return app:connect(info)
end


-- The text of the last frame sent to ws.
function _M.last_text(ws)
    local frames = ws:frames()
    return frames[#frames] and frames[#frames].payload
end


local ids = 0

-- Sends {id, type:'request', action, payload?} and returns the message
-- that answers it (a response or an error carrying its id), or nil.
function _M.request(ws, action, payload)
    ids = ids + 1
    local id = "req-" .. ids
    local out = ws:send(cjson.encode({ id = id, type = "request", action = action,
                                       payload = payload }))
    for _, msg in ipairs(out) do
        if type(msg) == "table" and msg.id == id then
            return msg
        end
    end
    return nil
end


-- The events (type 'event') among what ws was sent.
function _M.events(ws)
    local list = {}
    for _, msg in ipairs(ws:sent()) do
        if type(msg) == "table" and msg.type == "event" then
            list[#list + 1] = msg
        end
    end
    return list
end


return _M
