-- moonwire.system: the built-in `system` controller (docs/protocol.md,
-- "The system controller"). The runtime mounts it as type "system" unless the
-- server config has `system_controller = false` or the app ships its own
-- controllers/system.lua. It is an ordinary controller written against the
-- public API (client methods and the rooms manager), so an app that replaces
-- it can copy from here.

local moonwire = require "moonwire"
local rooms = require "moonwire.rooms"
local default_protocol = require "moonwire.protocol"
local json = require "moonwire.json"

local type = type
local tostring = tostring

local null = json.null


local _M = require("moonwire.version").module()


local function manager()
    return rooms.current()
end


local function fail(code, message)
    return nil, { code = code, message = message }
end


local function room_of(data)
    local name = type(data) == "table" and data.room or nil
    local ok, code, message = rooms.check_name(name)
    if not ok then
        return nil, code, message
    end
    return name
end


-- A client-supplied event id: a string (numbers are turned into one).
local function event_id(data)
    local id = data.event_id
    if type(id) == "number" then
        return tostring(id)
    end
    if type(id) == "string" and id ~= "" then
        return id
    end
    return nil
end


-- An array for the reply: the default protocol cannot otherwise send `[]`.
local function array(list)
    local m = manager()
    if m._host.app.protocol.encode == default_protocol.encode then
        return default_protocol.array(list)
    end
    return list
end


local function event(type_, action, data, room)
    return manager()._host.app.protocol.event(type_, action, data, room)
end


-- {"type":"system","action":"join","data":{"room":"lobby"},"id":1}
--   -> {"room":"lobby","count":N[,"presence":[...]]}
function _M.join(client, data)
    local room, code, message = room_of(data)
    if not room then
        return fail(code, message)
    end
    local allowed, err = client:authorize("join", room)
    if not allowed then
        return nil, err
    end
    local count
    count, code, message = client:join(room)
    if not count then
        return fail(code, message)
    end
    local reply = { room = room, count = count }
    local m = manager()
    if m:presence_enabled(room) then
        reply.presence = array(m:room(room):presence())
    end
    return reply
end

_M.subscribe = _M.join


-- -> {"room":"lobby","count":remaining}
function _M.leave(client, data)
    local room, code, message = room_of(data)
    if not room then
        return fail(code, message)
    end
    local count
    count, code, message = client:leave(room)
    if not count then
        return fail(code, message)
    end
    return { room = room, count = count }
end

_M.unsubscribe = _M.leave


-- {"room":"lobby","data":X[,"event_id":"e1"]} -> every other member gets
-- {"type":"system","action":"message","room":"lobby",
--  "data":{"from":ID,"user":U,"data":X},"ts":...}; the reply is
-- {"room":"lobby","delivered":N}.
function _M.publish(client, data)
    local room, code, message = room_of(data)
    if not room then
        return fail(code, message)
    end
    if not client:in_room(room) then
        return fail("INVALID_ROOM", "not subscribed to this room")
    end
    local allowed, aerr = client:authorize("publish", room)
    if not allowed then
        return nil, aerr
    end
    -- json.field: a number or escaped string keeps the client's text.
    local payload = json.field(data, "data")
    if payload == nil then
        payload = null
    end
    local ev = event("system", "message", { from = client.id, user = client:user_or_null(),
                                             data = payload }, room)
    local delivered, err = manager():broadcast(room, ev, { exclude = client,
                                                            event_id = event_id(data) })
    if not delivered then
        return fail("INVALID_MESSAGE", err)
    end
    return { room = room, delivered = delivered }
end


-- {"data":X} -> every other client gets
-- {"type":"system","action":"broadcast","data":{"from":ID,"user":U,"data":X},"ts":...}.
-- Only with `allow_client_broadcast = true` in the server config.
function _M.broadcast(client, data)
    local m = manager()
    if not m:config().allow_client_broadcast then
        return fail("AUTHORIZATION_FAILED", "client broadcast is disabled")
    end
    local allowed, aerr = client:authorize("broadcast", nil)
    if not allowed then
        return nil, aerr
    end
    -- json.field: a number or escaped string keeps the client's text.
    local payload = json.field(data, "data")
    if payload == nil then
        payload = null
    end
    local ev = event("system", "broadcast", { from = client.id, user = client:user_or_null(),
                                               data = payload })
    local delivered, err = m:broadcast_all(ev, { exclude = client, event_id = event_id(data) })
    if not delivered then
        return fail("INVALID_MESSAGE", err)
    end
    return { delivered = delivered }
end


-- The answer to the server's ping event (app_ping): receiving it is what
-- counts; nothing is sent back.
function _M.pong()
end


-- With an id: the reply's action is "pong". Without one: a pong event.
function _M.ping(client, data, msg)
    local now = moonwire.now()
    if msg and msg.id ~= nil then
        msg.action = "pong"
        return { ts = now }
    end
    client:emit("system", "pong", { ts = now })
end


-- -> {"rooms":["a","b"]}
function _M.rooms(client)
    return { rooms = array(client:rooms()) }
end


return _M
