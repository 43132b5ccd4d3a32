-- moonwire.api: the server API (docs/protocol.md, "The server API"), the
-- way in for backends, modelled on Centrifugo's HTTP API. It is a set of
-- built-in HTTP routes under /api/ (moonwire.http), served only for
-- requests that came through the API's door: api_key set, the
-- `Authorization: apikey KEY` checked in C before any Lua runs (and, with
-- api_port, only on that listener). An app cannot shadow them: its own
-- routes may not use /api/.
--
-- What the API sends to clients goes through the app's protocol like a
-- broadcast from Lua does: an event built by protocol.event, encoded once,
-- with `data` forwarded as the backend sent it (moonwire.json keeps its
-- text). By default the event is the one a client's system.publish (or
-- broadcast) makes, with `from` and `user` null; a request may name its
-- own `type` and `action`, and then `data` is the event's data itself.

local core = require "moonwire.core"
local json = require "moonwire.json"
local rooms = require "moonwire.rooms"
local bus = require "moonwire.bus"
local http = require "moonwire.http"

local type = type
local pairs = pairs
local ipairs = ipairs
local tostring = tostring
local pcall = pcall
local sort = table.sort
local floor = math.floor

local null = json.null


local _M = require("moonwire.version").module()


local function manager()
    return rooms.current()
end


-- 400 naming the field at fault.
local function bad(field, what)
    return 400, { error = { code = "BAD_REQUEST", message = field .. ": " .. what } }
end


local function array(list)
    if #list == 0 then
        return json.empty_array
    end
    return list
end


-- The request's JSON object, or nil and the 400 to answer.
local function body_of(req)
    local body = req.json
    if type(body) ~= "table" or body[1] ~= nil then
        return nil, bad("body", "must be a JSON object")
    end
    return body
end


-- The event a request asks for: `type` and `action` as given (both or
-- neither), `data` as sent; else the default type/action with
-- { from = null, user = null, data = data }. Returns the event, or nil and
-- the 400 to answer.
local function event_of(body, action, room)
    local data = json.field(body, "data")
    if data == nil then
        return nil, bad("data", "required (any JSON value)")
    end
    local type_, act = body.type, body.action
    if type_ ~= nil or act ~= nil then
        if type(type_) ~= "string" or type_ == "" then
            return nil, bad("type", "must be a non-empty string when action is given")
        end
        if type(act) ~= "string" or act == "" then
            return nil, bad("action", "must be a non-empty string when type is given")
        end
    else
        type_, act = "system", action
        data = { from = null, user = null, data = data }
    end
    local event_id = body.event_id
    if event_id ~= nil and type(event_id) ~= "string" and type(event_id) ~= "number" then
        return nil, bad("event_id", "must be a string or a number")
    end
    return manager()._host.app.protocol.event(type_, act, data, room)
end


-- Options of a fan-out: the event id, for clients with duplicate
-- suppression.
local function fanout_opts(body)
    local id = body.event_id
    if type(id) == "number" then
        id = tostring(id)
    end
    return { event_id = id ~= "" and id or nil }
end


-- The one target of send and disconnect: a client id, or a user.
local function target_of(body)
    local client, user = body.client, body.user
    if (client == nil) == (user == nil) then
        return nil, bad("client", "give exactly one of client and user")
    end
    if client ~= nil then
        if type(client) ~= "number" or client < 1 or client ~= floor(client) then
            return nil, bad("client", "must be a client id (a positive integer)")
        end
        -- In a cluster, `node` names the node the client is on (presence
        -- entries carry it); absent or this node's: a local client.
        local node = body.node
        if node ~= nil and (type(node) ~= "string" or node == "") then
            return nil, bad("node", "must be a node id (a non-empty string)")
        end
        local cl = manager()._cluster
        if node ~= nil and (not cl or node == cl.node) then
            node = nil
        end
        return { client = client, node = node }
    end
    if (type(user) ~= "string" or user == "") and type(user) ~= "number" then
        return nil, bad("user", "must be a non-empty string or a number")
    end
    return { user = user }
end


-- The clients a target names (none for an unknown id or user).
local function clients_of(target)
    local m = manager()
    if target.client then
        local c = m:client(target.client)
        return c and { c } or {}
    end
    local list = {}
    for _, id in ipairs(m:user_ids(target.user)) do
        list[#list + 1] = m:client(id)
    end
    return list
end


-- POST /api/publish {room, data[, type, action, event_id]}: every member
-- of the room gets the event. -> {room, delivered, dropped}. A room
-- nobody is in does not exist: delivered 0.
local function publish(req)
    local body, status, answer = body_of(req)
    if not body then
        return status, answer
    end
    local room = body.room
    local ok, _, message = rooms.check_name(room)
    if not ok then
        return bad("room", message)
    end
    local event
    event, status, answer = event_of(body, "message", room)
    if not event then
        return status, answer
    end
    local delivered, dropped = manager():broadcast(room, event, fanout_opts(body))
    if not delivered then
        return 500, { error = { code = "INTERNAL_ERROR", message = tostring(dropped) } }
    end
    return 200, { room = room, delivered = delivered, dropped = dropped }
end


-- POST /api/broadcast {data[, type, action, event_id]}: every client.
-- -> {delivered, dropped}.
local function broadcast(req)
    local body, status, answer = body_of(req)
    if not body then
        return status, answer
    end
    local event
    event, status, answer = event_of(body, "broadcast")
    if not event then
        return status, answer
    end
    local delivered, dropped = manager():broadcast_all(event, fanout_opts(body))
    if not delivered then
        return 500, { error = { code = "INTERNAL_ERROR", message = tostring(dropped) } }
    end
    return 200, { delivered = delivered, dropped = dropped }
end


-- The body of a request that names a client or a user: body, target, or
-- nil, nil, status, answer.
local function targeted(req)
    local body, status, answer = body_of(req)
    if not body then
        return nil, nil, status, answer
    end
    local target
    target, status, answer = target_of(body)
    if not target then
        return nil, nil, status, answer
    end
    return body, target
end


-- POST /api/send {client | user, data[, type, action]}: one client, or
-- every connection of a user. -> {delivered}; 0 for an unknown target.
local function send(req)
    local body, target, status, answer = targeted(req)
    if not body then
        return status, answer
    end
    local event
    event, status, answer = event_of(body, "message")
    if not event then
        return status, answer
    end
    local delivered = 0
    if target.node then
        local m = manager()
        local payload, bin = m:encode(event)
        if not payload then
            return 500, { error = { code = "INTERNAL_ERROR", message = tostring(bin) } }
        end
        m._cluster:send_client(target.node, target.client, payload, bin)
    elseif target.client then
        local c = manager():client(target.client)
        if c and c:send(event) then
            delivered = 1
        end
    else
        local n, err = manager():send_user(target.user, event, fanout_opts(body))
        if not n then
            return 500, { error = { code = "INTERNAL_ERROR", message = tostring(err) } }
        end
        delivered = n
    end
    return 200, { delivered = delivered }
end


-- POST /api/disconnect {client | user[, code, reason]}: closes them with
-- code (default 1000) and reason. -> {disconnected}.
local function disconnect(req)
    local body, target, status, answer = targeted(req)
    if not body then
        return status, answer
    end
    local code, reason = body.code, body.reason
    if code == nil then
        code = 1000
    elseif type(code) ~= "number" or code ~= floor(code)
           or not ((code >= 1000 and code <= 1003) or (code >= 1007 and code <= 1014)
                   or (code >= 3000 and code <= 4999)) then
        return bad("code", "must be a close code a server may send (1000-1003, 1007-1014, "
                           .. "3000-4999)")
    end
    if reason == nil then
        reason = ""
    elseif type(reason) ~= "string" or #reason > core.close_reason_max then
        return bad("reason", "must be a string of at most " .. core.close_reason_max .. " bytes")
    end
    local n = 0
    local cl = manager()._cluster
    if cl and (target.node or target.user) then
        -- the other nodes close theirs; `disconnected` counts this node's
        cl:disconnect(target.node, target.node and target.client, target.user, code, reason)
    end
    if target.node then
        return 200, { disconnected = 0 }
    end
    for _, c in ipairs(clients_of(target)) do
        local ok, closed = pcall(c.close, c, code, reason)
        if not ok then
            return bad("reason", "must be valid UTF-8")
        end
        if closed then
            n = n + 1
        end
    end
    return 200, { disconnected = n }
end


-- Every room's name: with workers, rooms with members on any worker.
local function room_names()
    local names = core.room_names()
    local cl = manager()._cluster
    if cl then
        names = cl:room_names(names)
    end
    return names
end


-- GET /api/rooms -> {rooms = [{room, count}, ...]} sorted by name.
local function rooms_list()
    local names = room_names()
    sort(names)
    local m = manager()
    local list = {}
    for i, name in ipairs(names) do
        list[i] = { room = name, count = rooms.total(m, name, core.count(name)) }
    end
    return 200, { rooms = array(list) }
end


-- GET /api/presence?room=R -> {room, count, presence = [{client_id, user,
-- meta}, ...]}, whether or not the room has presence events.
local function presence(req)
    local room = req.query.room
    local ok, _, message = rooms.check_name(room)
    if not ok then
        return bad("room", type(room) == "table" and "given more than once" or message)
    end
    local list
    local cl = manager()._cluster
    if cl then
        -- every node's entries, read from Redis
        local err
        list, err = cl:presence(room)
        if not list then
            return 503, { error = { code = "SERVER_BUSY", message = "cluster: " .. tostring(err) } }
        end
    else
        list = manager():room(room):presence()
    end
    return 200, { room = room, count = #list, presence = array(list) }
end


-- POST /api/emit {channel, message}: an event on the app's event bus
-- (docs/subscribers.md), as moonwire.emit from app code. -> {channel,
-- subscribers} (handlers started; 0 when nobody subscribes); 503 when
-- the bus is full.
local function emit(req)
    local body, status, answer = body_of(req)
    if not body then
        return status, answer
    end
    local channel = body.channel
    if type(channel) ~= "string" or channel == "" or #channel > 256 then
        return bad("channel", "must be a non-empty string of at most 256 bytes")
    end
    local message = body.message
    if message == nil then
        return bad("message", "required (any JSON value)")
    end
    local n, err = bus.emit(channel, message)
    if not n then
        return 503, { error = { code = "SERVER_BUSY", message = tostring(err) } }
    end
    return 200, { channel = channel, subscribers = n }
end


-- GET /api/stats -> {connections, rooms, users, uptime_s}: with workers,
-- the whole server's (connections as /health counts them; rooms and users
-- from this worker's and its copy of the others' in the hub's store).
local function stats()
    local health = json.decode(core.health())
    local m = manager()
    local cl = m._cluster
    local seen = cl and cl:remote_users() or {}
    for user in pairs(m._users) do
        seen[user] = true
    end
    local users = 0
    for _ in pairs(seen) do
        users = users + 1
    end
    return 200, {
        connections = health.connections,
        rooms = #room_names(),
        users = users,
        uptime_s = health.uptime_s,
    }
end


local routes = {
    ["POST /api/publish"] = { json = true, handler = publish },
    ["POST /api/broadcast"] = { json = true, handler = broadcast },
    ["POST /api/send"] = { json = true, handler = send },
    ["POST /api/disconnect"] = { json = true, handler = disconnect },
    ["POST /api/emit"] = { json = true, handler = emit },
    ["GET /api/rooms"] = rooms_list,
    ["GET /api/presence"] = presence,
    ["GET /api/stats"] = stats,
}

_M.routes = http.compile(routes)


return _M
