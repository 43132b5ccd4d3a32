-- moonwire.rooms: rooms, presence and fan-out on top of the core primitives
-- (docs/boundary.md, "Rooms and fan-out primitives"). Membership lives in C,
-- so a reload never loses it; this module owns only what Lua must decide:
-- room-name validation, the mapping of core failures to error codes, which
-- rooms have presence, presence events, the user -> connections index, and
-- encoding a message ONCE before handing it to a core fan-out primitive.
--
-- One manager belongs to one runtime (it survives reloads with it). The
-- facade (`require "moonwire"`) reaches the manager of the runtime that is
-- currently dispatching through _M.current().

local core = require "moonwire.core"

local setmetatable = setmetatable
local type = type
local pairs = pairs
local ipairs = ipairs
local error = error
local pcall = pcall
local tostring = tostring
local next = next
local sub = string.sub


local _M = require("moonwire.version").module()

local manager = {}
local manager_mt = { __index = manager }

local room = {}
local room_mt = { __index = room }

-- Room names are what C accepts (rooms.h): non-empty strings of at most
-- core.room_name_max bytes.
_M.MAX_NAME = core.room_name_max

local INVALID_ROOM = "INVALID_ROOM"
local ROOM_FULL = "ROOM_FULL"

-- The manager of the runtime that dispatched last (see runtime.lua).
local current


-- Returns true, or nil, "INVALID_ROOM", message.
local function check_name(name)
    if type(name) ~= "string" then
        return nil, INVALID_ROOM, "room name must be a string"
    end
    if name == "" then
        return nil, INVALID_ROOM, "room name must not be empty"
    end
    if #name > _M.MAX_NAME then
        return nil, INVALID_ROOM, "room name must be at most 256 bytes"
    end
    return true
end

_M.check_name = check_name


-- The id of `exclude`: a client object, a client id, or nil (nobody).
local function exclude_id(exclude, fname)
    local t = type(exclude)
    if t == "nil" then
        return nil
    elseif t == "number" then
        return exclude
    elseif t == "table" and type(exclude.id) == "number" then
        return exclude.id
    end
    error("bad option 'exclude' to '" .. fname .. "' (client or client id expected, got "
          .. t .. ")", 3)
end


-- The event id of a fan-out: opts.event_id, else the message's own
-- `event_id` field. Numbers are accepted and turned into strings.
local function event_id_of(msg, opts, fname)
    local id = opts and opts.event_id
    if id == nil and type(msg) == "table" then
        id = msg.event_id
        if type(id) == "number" then
            id = tostring(id)
        elseif type(id) ~= "string" then
            id = nil
        end
        return id
    end
    if type(id) == "number" then
        return tostring(id)
    end
    if id ~= nil and type(id) ~= "string" then
        error("bad option 'event_id' to '" .. fname .. "' (string expected, got "
              .. type(id) .. ")", 3)
    end
    return id
end


local function check_opts(opts, fname)
    if opts ~= nil and type(opts) ~= "table" then
        error("bad argument #2 to '" .. fname .. "' (table expected, got " .. type(opts) .. ")", 3)
    end
end


-- A new manager. `clients` is the runtime's id -> client table, `host` the
-- shared state whose `app` is the current app, `config` the server config.
function _M.new(clients, host, config)
    local self = setmetatable({
        _clients = clients,
        _host = host,
        _config = config or {},
        _users = {},          -- user id -> { [client id] = true }
        _presence = {},       -- room -> true/false, set by room:set_presence()
        _presence_exact = {}, -- from config.presence
        _presence_prefix = {},
        _cluster = nil,       -- moonwire.cluster, with config cluster = true
    }, manager_mt)
    self:configure(self._config)
    return self
end


function _M.current()
    return current
end


function _M.set_current(m)
    current = m
end


-- Reads the keys this module uses from the server config.
function manager.configure(self, config)
    self._config = config or {}
    local exact, prefix = {}, {}
    local list = self._config.presence
    if type(list) == "table" then
        for _, name in ipairs(list) do
            if type(name) == "string" and name ~= "" then
                if sub(name, -1) == "*" then
                    prefix[#prefix + 1] = sub(name, 1, -2)
                else
                    exact[name] = true
                end
            end
        end
    end
    self._presence_exact, self._presence_prefix = exact, prefix
end


function manager.config(self)
    return self._config
end


function manager.client(self, id)
    return self._clients[id]
end


-- Presence: room:set_presence() wins; else config `presence` (exact names,
-- or prefixes written "name*").
function manager.presence_enabled(self, name)
    local explicit = self._presence[name]
    if explicit ~= nil then
        return explicit
    end
    if self._presence_exact[name] then
        return true
    end
    for _, prefix in ipairs(self._presence_prefix) do
        if sub(name, 1, #prefix) == prefix then
            return true
        end
    end
    return false
end


function manager.set_presence(self, name, enabled)
    self._presence[name] = enabled
end


-- Encodes a table with the current protocol (strings pass through: text, or
-- binary with opts.binary). Returns payload, is_binary or nil, err.
function manager.encode(self, msg, opts)
    local t = type(msg)
    if t == "string" then
        return msg, opts ~= nil and opts.binary == true
    end
    local ok, payload, bin = pcall(self._host.app.protocol.encode, msg)
    if not ok then
        return nil, "encode failed: " .. tostring(payload)
    end
    if type(payload) ~= "string" then
        return nil, "encode failed: " .. tostring(bin)
    end
    return payload, bin == true
end


-- The presence entry of one client: { client_id =, user =, meta = }, and
-- its node's id in a cluster.
function manager.presence_entry(self, client)
    local cl = self._cluster
    return {
        client_id = client.id,
        user = client:user_or_null(),
        meta = client.public or {},
        node = cl and cl.node or nil,
    }
end


-- Sends a presence event about `client` to the members of `name`, except
-- `exclude` (an id). Errors are logged, never raised: presence is best effort.
function manager.announce(self, name, action, client, exclude)
    return self:announce_entry(name, action, self:presence_entry(client), exclude)
end


-- The same for a presence entry; `local_only`: to this node's members
-- only (a worker that exited: every worker tells its own members).
function manager.announce_entry(self, name, action, entry, exclude, local_only)
    local proto = self._host.app.protocol
    local ok, event = pcall(proto.event, "presence", action, entry, name)
    if not ok then
        core.log("error", "presence event for room " .. name .. " failed: " .. tostring(event))
        return
    end
    local payload, bin = self:encode(event)
    if not payload then
        core.log("error", "presence event for room " .. name .. ": " .. bin)
        return
    end
    core.broadcast(name, payload, bin, exclude, nil)
    local cl = self._cluster
    if cl and not local_only then
        cl:room_broadcast(name, payload, bin, nil)
    end
end


-- A room's member count from this node's `n`: with workers, the members
-- on the other workers added (the cluster's copy of the hub's store).
local function total(self, name, n)
    local cl = self._cluster
    if cl and cl.remote then
        return n + cl:remote_count(name)
    end
    return n
end

_M.total = total


local function member_of(id, name)
    local list = core.rooms(id)
    if not list then
        return false
    end
    for _, r in ipairs(list) do
        if r == name then
            return true
        end
    end
    return false
end

_M.member_of = member_of


-- The event bus's client.joined / client.left (docs/subscribers.md):
-- built only when a subscriber may take it.
function manager.tell(self, bus, channel, client, name, count)
    if bus and bus:has(channel) then
        bus:emit(channel, { client_id = client.id, user = client.user, room = name,
                            count = count }, client)
    end
end


-- client:join(). Returns count or nil, code, message.
function manager.join(self, client, name)
    local ok, code, message = check_name(name)
    if not ok then
        return nil, code, message
    end
    if client._closed then
        return nil, "CLOSED", "closed"
    end
    local presence = self:presence_enabled(name)
    local bus = self._host.bus
    local told = bus and bus:has("client.joined")
    local was_member = (presence or told) and member_of(client.id, name)

    local cl = self._cluster
    -- max_connections_per_room: the C core counts every worker's members
    -- (shared memory, shlimits.h), at once.
    local count, moved = core.join(client.id, name)
    if not count then
        local err = moved
        if err == "room full" then
            return nil, ROOM_FULL, "room full"
        elseif err == "too many rooms" then
            return nil, INVALID_ROOM, "too many rooms"
        elseif err == "closed" then
            return nil, "CLOSED", "closed"
        end
        return nil, INVALID_ROOM, tostring(err)
    end

    if moved ~= nil and moved ~= name then
        local left = core.count(moved)
        if cl then
            cl:left(moved, client, left)
        end
        if self:presence_enabled(moved) then
            self:announce(moved, "left", client, nil)
        end
        self:tell(bus, "client.left", client, moved, total(self, moved, left))
    end
    if cl then
        cl:joined(name, client, count)
        count = total(self, name, count)
    end
    if presence and not was_member then
        self:announce(name, "joined", client, client.id)
    end
    if told and not was_member then
        self:tell(bus, "client.joined", client, name, count)
    end
    return count
end


-- client:leave(). Returns the remaining count or nil, code, message.
function manager.leave(self, client, name)
    local ok, code, message = check_name(name)
    if not ok then
        return nil, code, message
    end
    local count, err = core.leave(client.id, name)
    if not count then
        if err == "not joined" then
            return nil, INVALID_ROOM, "not joined"
        elseif err == "closed" then
            return nil, "CLOSED", "closed"
        end
        return nil, INVALID_ROOM, tostring(err)
    end
    local cl = self._cluster
    if cl then
        cl:left(name, client, count)
        count = total(self, name, count)
    end
    if self:presence_enabled(name) and (count > 0 or cl) then
        self:announce(name, "left", client, nil)
    end
    self:tell(self._host.bus, "client.left", client, name, count)
    return count
end


-- Called by runtime.disconnect, while C still has the client's memberships:
-- presence `left` to the other members, and the user index cleaned.
function manager.disconnect(self, client)
    local list = core.rooms(client.id)
    if list then
        local bus = self._host.bus
        local cl = self._cluster
        for _, name in ipairs(list) do
            local count = core.count(name)
            if cl then
                cl:left(name, client, count - 1)
            end
            if self:presence_enabled(name) and (count > 1 or cl) then
                self:announce(name, "left", client, client.id)
            end
            self:tell(bus, "client.left", client, name, total(self, name, count - 1))
        end
    end
    self:bind_user(client, nil)
end


-- Moves `client` from its current user's set to `user`'s (nil: none).
function manager.bind_user(self, client, user)
    local users = self._users
    local old = client._user
    if old ~= nil then
        local set = users[old]
        if set then
            set[client.id] = nil
            if next(set) == nil then
                users[old] = nil
                if self._cluster then
                    self._cluster:user_gone(old)
                end
            end
        end
    end
    if user ~= nil then
        local set = users[user]
        if not set then
            set = {}
            users[user] = set
            if self._cluster then
                self._cluster:user_bound(user)
            end
        end
        set[client.id] = true
    end
end


-- Ids of every connection bound to `user`, in no particular order.
function manager.user_ids(self, user)
    local set = self._users[user]
    local ids = {}
    if set then
        for id in pairs(set) do
            ids[#ids + 1] = id
        end
    end
    return ids
end


-- Fan-out to a room. Returns delivered, dropped (this node's) or nil, err.
-- In a cluster the same bytes go to the room's members on the other nodes
-- (and workers), unless `local_only` (ctx.server of a subscriber, or
-- opts.local_only: a message every worker got by itself, from NATS say).
function manager.broadcast(self, name, msg, opts, local_only)
    local_only = local_only or (opts ~= nil and opts.local_only == true)
    local payload, bin = self:encode(msg, opts)
    if not payload then
        return nil, bin
    end
    local event_id = event_id_of(msg, opts, "broadcast")
    local delivered, dropped = core.broadcast(name, payload, bin,
                                              exclude_id(opts and opts.exclude, "broadcast"),
                                              event_id)
    local cl = self._cluster
    if cl and not local_only then
        cl:room_broadcast(name, payload, bin, event_id)
    end
    return delivered, dropped
end


-- Fan-out to every client, or to those `opts.filter(client)` accepts.
function manager.broadcast_all(self, msg, opts, local_only)
    local_only = local_only or (opts ~= nil and opts.local_only == true)
    local ex = exclude_id(opts and opts.exclude, "broadcast")
    local event_id = event_id_of(msg, opts, "broadcast")
    local filter = opts and opts.filter
    if filter ~= nil and type(filter) ~= "function" then
        error("bad option 'filter' to 'broadcast' (function expected, got "
              .. type(filter) .. ")", 3)
    end
    local payload, bin = self:encode(msg, opts)
    if not payload then
        return nil, bin
    end
    if not filter then
        local cl = self._cluster
        if cl and not local_only then
            cl:broadcast_all(payload, bin, event_id)
        end
        return core.broadcast_all(payload, bin, ex, event_id)
    end
    local ids = {}
    for id, client in pairs(self._clients) do
        if id ~= ex and not client._closed and filter(client) then
            ids[#ids + 1] = id
        end
    end
    if #ids == 0 then
        return 0, 0
    end
    return core.send_many(ids, payload, bin, event_id)
end


-- Every connection of a user (in a cluster, on every node unless
-- `local_only`). Returns delivered, dropped (this node's) or nil, err.
function manager.send_user(self, user, msg, opts, local_only)
    local_only = local_only or (opts ~= nil and opts.local_only == true)
    local ids = self:user_ids(user)
    local cl = not local_only and self._cluster
    if #ids == 0 and not cl then
        return 0, 0
    end
    local payload, bin = self:encode(msg, opts)
    if not payload then
        return nil, bin
    end
    local event_id = event_id_of(msg, opts, "send_user")
    if cl then
        cl:send_user(user, payload, bin, event_id)
        if #ids == 0 then
            return 0, 0
        end
    end
    return core.send_many(ids, payload, bin, event_id)
end


-- A room handle. Raises on an invalid name.
function manager.room(self, name, level)
    local ok, _, message = check_name(name)
    if not ok then
        error("bad argument #1 to 'room' (" .. message .. ")", (level or 1) + 1)
    end
    return setmetatable({ name = name, _m = self }, room_mt)
end


-- room:broadcast(msg, opts) -> delivered, dropped or nil, err.
function room.broadcast(self, msg, opts)
    local t = type(msg)
    if t ~= "table" and t ~= "string" then
        error("bad argument #1 to 'broadcast' (table or string expected, got " .. t .. ")", 2)
    end
    check_opts(opts, "broadcast")
    return self._m:broadcast(self.name, msg, opts, self._local)
end


-- Client objects of the members, in the order C lists them (this node's:
-- another worker's clients are not objects here).
function room.members(self)
    local clients = self._m._clients
    local list = {}
    for _, id in ipairs(core.members(self.name)) do
        local client = clients[id]
        if client then
            list[#list + 1] = client
        end
    end
    return list
end


-- The members of the room: with workers, on every worker.
function room.count(self)
    return total(self._m, self.name, core.count(self.name))
end


-- The presence entries of the members: with workers, every worker's (in
-- the same order on each).
function room.presence(self)
    local m = self._m
    local list = {}
    for _, client in ipairs(self:members()) do
        list[#list + 1] = m:presence_entry(client)
    end
    local cl = m._cluster
    if cl and cl.remote then
        return cl:with_remote(self.name, list)
    end
    return list
end


function room.presence_enabled(self)
    return self._m:presence_enabled(self.name)
end


function room.set_presence(self, enabled)
    if type(enabled) ~= "boolean" then
        error("bad argument #1 to 'set_presence' (boolean expected, got "
              .. type(enabled) .. ")", 2)
    end
    self._m:set_presence(self.name, enabled)
    return true
end


_M.check_opts = check_opts


return _M
