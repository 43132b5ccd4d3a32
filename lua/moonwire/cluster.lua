-- moonwire.cluster: nodes through Redis (docs/scaling.md). With config
-- `cluster = true` a node shares with the others, through config
-- `redis_url`: room broadcasts, broadcasts to all, sends to a user or to a
-- client of another node, disconnects, presence and room counts, and the
-- event bus's cluster-wide events.
--
-- Sharded like Socket.IO's sharded adapter and Centrifugo: a node
-- subscribes only to the channels of the rooms and users it has locally,
-- plus its own node channel (sends to and disconnects of its clients) and
-- the two channels every node takes (broadcasts to all, bus events). A
-- message costs nothing on a node with no recipient: Redis does not send
-- it there.
--
-- The origin encodes a message once (moonwire.rooms' encode) and publishes
-- those bytes behind a small header; a receiving node hands them to the
-- core's fan-out unchanged, so each node frames them once. A node skips
-- what it published itself (it delivered locally already). Delivery across
-- nodes is at most once: a message published while Redis is down, or lost
-- with a connection, is counted and never sent again.
--
-- The transport is an interface (publish, subscribe, unsubscribe, up, and
-- send for the presence writes of a shared store) so that callers do not
-- change with it: redis_transport between nodes, hub_transport between
-- the workers of one machine (`workers > 1` without `cluster`: the
-- supervisor's hub, src/hubd.h, forwards each message to the workers
-- subscribed to its channel; node ids are "w<N>").
--
-- Between workers, presence and room counts are read locally, never
-- waited for: each worker puts an entry per member of its rooms in the
-- supervisor's store (hub_transport set/del), the supervisor passes every
-- change on to the other workers, and each keeps a copy of the others'
-- entries (`remote`). A worker that starts gets the others' entries
-- before anything else; when one exits, the supervisor drops its entries
-- and tells the others, which drop theirs and announce the members as
-- left (docs/scaling.md, "Workers").

local core = require "moonwire.core"
local cjson = require "cjson.safe"
local json = require "moonwire.json"

local type = type
local pairs = pairs
local ipairs = ipairs
local tostring = tostring
local tonumber = tonumber
local getenv = os.getenv
local setmetatable = setmetatable
local pcall = pcall
local concat = table.concat
local find = string.find
local sub = string.sub
local unpack = unpack
local floor = math.floor
local next = next
local sort = table.sort


local _M = require("moonwire.version").module()

local PREFIX = "mw:"

-- Message kinds (one byte of the header).
local ROOM, ALL, USER, CLIENT, DISCONNECT, EVENT = "r", "a", "u", "c", "d", "e"
_M.kinds = { room = ROOM, all = ALL, user = USER, client = CLIENT, disconnect = DISCONNECT,
             event = EVENT }


-- ---- pure parts: channel and key names, the header -------------------------

-- The channel of a room, a user or a node; "all" and "bus" are every
-- node's. User ids may be numbers: their text is the name.
function _M.channel(kind, name)
    if kind == "all" or kind == "bus" then
        return PREFIX .. kind
    end
    return PREFIX .. kind .. ":" .. tostring(name)
end

-- The room or user a channel names (nil for another channel).
function _M.channel_name(channel, kind)
    local p = PREFIX .. kind .. ":"
    if sub(channel, 1, #p) == p then
        return sub(channel, #p + 1)
    end
    return nil
end

-- Presence keys: the set of nodes with members in a room, and one node's
-- entries of the room (a hash: local client id -> JSON entry) that expires
-- unless the node refreshes it.
function _M.nodes_key(room)
    return PREFIX .. "rn:" .. room
end

function _M.entries_key(node, room)
    return PREFIX .. "p:" .. node .. ":" .. room
end

-- A member's key in the workers' store (one set of keys per worker): its
-- local client id and the room.
function _M.member_key(id, room)
    return "m:" .. id .. ":" .. room
end

-- A client's key in the hub's store: its worker's connection, so that
-- the other workers can tell their subscribers it disconnected if that
-- worker dies.
function _M.client_key(id)
    return "c:" .. id
end

-- The client id and room of a member key, or nil.
function _M.parse_member_key(key)
    if type(key) ~= "string" or sub(key, 1, 2) ~= "m:" then
        return nil
    end
    local colon = find(key, ":", 3, true)
    local id = colon and tonumber(sub(key, 3, colon - 1))
    if not id or colon == #key then
        return nil
    end
    return id, sub(key, colon + 1)
end


-- The bytes on the wire: five header lines then the payload.
--   origin node \n kind \n target \n t|b \n event id length \n event id payload
-- target: the local client id a client/disconnect message is for ("" for
-- every client of the user the channel names). Binary safe: the payload
-- and the event id are taken by length, not scanned.
function _M.encode(origin, kind, target, bin, event_id, payload)
    event_id = event_id or ""
    return concat({ origin, "\n", kind, "\n", target or "", "\n", bin and "b" or "t", "\n",
                    #event_id, "\n", event_id, payload })
end

-- The header as a table { origin, kind, target, bin, event_id } and the
-- payload, or nil, err for bytes that are not a cluster message.
function _M.decode(frame)
    if type(frame) ~= "string" then
        return nil, "not a string"
    end
    local fields, pos = {}, 1
    for i = 1, 5 do
        local nl = find(frame, "\n", pos, true)
        if not nl then
            return nil, "truncated header"
        end
        fields[i] = sub(frame, pos, nl - 1)
        pos = nl + 1
    end
    local evlen = tonumber(fields[5])
    if not evlen or evlen < 0 or evlen ~= floor(evlen) or pos + evlen - 1 > #frame then
        return nil, "bad event id length"
    end
    local kind = fields[2]
    if #kind ~= 1 or fields[1] == "" then
        return nil, "bad header"
    end
    local bin = fields[4]
    if bin ~= "t" and bin ~= "b" then
        return nil, "bad header"
    end
    local event_id = evlen > 0 and sub(frame, pos, pos + evlen - 1) or nil
    return { origin = fields[1], kind = kind, target = fields[3], bin = bin == "b",
             event_id = event_id }, sub(frame, pos + evlen)
end


-- A random node id (config node_id empty): 12 hex digits.
function _M.random_id()
    local uuid = require("moonwire.uuid").v4()
    return (uuid:gsub("-", "")):sub(1, 12)
end


-- ---- the Redis transport ----------------------------------------------------

local redis_transport = { name = "Redis" }
local redis_transport_mt = { __index = redis_transport }

-- A transport on the shared connection of `url` (moonwire.redis): nil, err
-- for a bad URL or before the server serves.
function _M.redis_transport(url)
    local id, err = core.redis_open(url, nil, nil, nil)
    if not id then
        return nil, err
    end
    return setmetatable({ _id = id, _subs = {} }, redis_transport_mt)
end

-- publish(channel, bytes) -> true | nil, err (at once while Redis is down)
function redis_transport.publish(self, channel, bytes)
    return core.redis_send(self._id, "PUBLISH", channel, bytes)
end

-- send(cmd, ...) -> true | nil, err: a write whose reply nobody waits for.
function redis_transport.send(self, ...)
    return core.redis_send(self._id, ...)
end

-- subscribe(channel, fn): fn(bytes, channel) in a task of its own for
-- every message; held across reconnects and reloads.
function redis_transport.subscribe(self, channel, fn)
    if self._subs[channel] then
        return true
    end
    local sid, err = core.redis_subscribe(self._id, channel, false, fn, true)
    if not sid then
        return nil, err
    end
    self._subs[channel] = sid
    return true
end

function redis_transport.unsubscribe(self, channel)
    local sid = self._subs[channel]
    if sid then
        self._subs[channel] = nil
        core.redis_unsubscribe(sid)
    end
end

function redis_transport.subscriptions(self)
    local n = 0
    for _ in pairs(self._subs) do
        n = n + 1
    end
    return n
end

-- up() -> true, or false and why not; and how many times the connection
-- came back since the start (a new one may have lost what was written).
function redis_transport.up(self)
    local up, err, reconnects = core.redis_status(self._id)
    if up then
        return true, nil, reconnects
    end
    return false, err, reconnects
end


-- ---- the hub transport: the workers of one machine ---------------------------

local hub_transport = { name = "the workers' hub" }
local hub_transport_mt = { __index = hub_transport }

-- A transport on this worker's socket to its supervisor, and the worker's
-- number; nil, err outside a worker ("not a worker"). It has a store:
-- set and del keep this worker's entries in the supervisor, and
-- `on_store(op, worker, key, value)` gets the other workers' ("set",
-- "del", and "exit" when a worker is gone).
function _M.hub_transport()
    local self = setmetatable({ _subs = {}, store = true }, hub_transport_mt)
    local worker, err = core.hub_open(function(bytes, channel, op, origin)
        if op == "pub" then
            local fn = self._subs[channel]
            if fn then
                fn(bytes, channel)
            end
        else
            local fn = self.on_store
            if fn then
                fn(op, origin, channel, bytes)
            end
        end
    end)
    if not worker then
        return nil, err
    end
    return self, worker
end

function hub_transport.publish(self, channel, bytes)
    return core.hub_publish(channel, bytes)
end

function hub_transport.subscribe(self, channel, fn)
    if self._subs[channel] then
        return true
    end
    self._subs[channel] = fn
    return core.hub_subscribe(channel)
end

function hub_transport.unsubscribe(self, channel)
    if self._subs[channel] then
        self._subs[channel] = nil
        core.hub_unsubscribe(channel)
    end
end

function hub_transport.set(self, key, value)
    return core.hub_set(key, value)
end

function hub_transport.del(self, key)
    return core.hub_del(key)
end

hub_transport.subscriptions = redis_transport.subscriptions

function hub_transport.up(self)
    if core.hub_up() then
        return true, nil, 0
    end
    return false, "the supervisor is gone", 0
end


-- ---- the cluster --------------------------------------------------------------

local cluster = {}
local cluster_mt = { __index = cluster }

-- The cluster of this process (one runtime serves), for stats().
local current

local function log(level, msg)
    core.log(level, "cluster: " .. msg)
end


-- A cluster for the rooms manager `manager` over `transport`. opts:
-- node_id, presence_ttl (ms).
function _M.new(manager, transport, opts)
    local self = setmetatable({
        node = opts.node_id,
        ttl = opts.presence_ttl or 15000,
        transport = transport,
        manager = manager,
        rooms = {},     -- room -> true: its channel is subscribed (local members)
        users = {},     -- user -> true
        down = false,   -- an outage is going on (logged once)
        receiving = false,
        stats = { published = 0, publish_failed = 0, received = 0, outages = 0,
                  bad_messages = 0 },
    }, cluster_mt)
    self.on_message = function(bytes, channel)
        self:receive(bytes, channel)
    end
    if transport.store then
        -- The other workers' members: room -> { n = how many, by = {
        -- [worker number] = { [client id] = presence entry JSON } } }.
        self.remote = {}
        self.elsewhere = 0 -- rooms in self.remote and not in self.rooms
        -- ... and their clients: [worker number] = { [client id] =
        -- { user =, node = } }.
        self.remote_clients = {}
        transport.on_store = function(op, worker, key, value)
            self:store_change(op, worker, key, value)
        end
    end
    return self
end


-- Starts the cluster: node channel, "all" and "bus", and the heartbeat.
function cluster.start(self)
    local t = self.transport
    t:subscribe(_M.channel("node", self.node), self.on_message)
    t:subscribe(_M.channel("all"), self.on_message)
    t:subscribe(_M.channel("bus"), self.on_message)
    local _, _, reconnects = t:up()
    self._reconnects = reconnects
    self:arm()
    current = self
    log("info", "node " .. self.node .. " in the cluster (presence_ttl " .. self.ttl .. " ms)")
    return true
end


-- The heartbeat timer (app timers go with a reload: the runtime calls
-- this again after one).
function cluster.arm(self)
    local every = floor(self.ttl / 3)
    if every < 100 then
        every = 100
    end
    self._timer = core.timer(every, function()
        self:heartbeat()
    end, true)
end


-- A write failed: Redis is away. Logged once per outage; `message`: a
-- cross-node message was lost (counted).
function cluster.failed(self, err, message)
    if message then
        self.stats.publish_failed = self.stats.publish_failed + 1
    end
    if not self.down then
        self.down = true
        self.stats.outages = self.stats.outages + 1
        log("error", self.transport.name .. " unreachable (" .. tostring(err)
            .. "): local clients are served, cross-node messages are counted and dropped "
            .. "until it is back")
    end
end


-- Redis answers again: presence is written anew (Redis may have lost it).
function cluster.back(self)
    self.down = false
    local _, _, reconnects = self.transport:up()
    self._reconnects = reconnects
    log("info", "Redis is back: " .. self.stats.publish_failed
        .. " cross-node messages were dropped so far; presence republished")
    self:republish()
end


function cluster.publish(self, channel, kind, target, bin, event_id, payload)
    if self.down and self.transport:up() then
        self:back()
    end
    local ok, err = self.transport:publish(channel,
                                           _M.encode(self.node, kind, target, bin, event_id,
                                                     payload))
    if ok then
        self.stats.published = self.stats.published + 1
        return true
    end
    self:failed(err, true)
    return nil, err
end


-- A presence write; a failure counts as an outage but not as a message.
-- A transport without a store (the hub) takes none.
function cluster.write(self, ...)
    if self.down or not self.transport.send then
        return nil
    end
    local ok, err = self.transport:send(...)
    if not ok then
        self:failed(err, false)
    end
    return ok
end


-- ---- what leaves this node ----------------------------------------------------

function cluster.room_broadcast(self, name, payload, bin, event_id)
    return self:publish(_M.channel("room", name), ROOM, "", bin, event_id, payload)
end

function cluster.broadcast_all(self, payload, bin, event_id)
    return self:publish(_M.channel("all"), ALL, "", bin, event_id, payload)
end

function cluster.send_user(self, user, payload, bin, event_id)
    return self:publish(_M.channel("user", user), USER, "", bin, event_id, payload)
end

function cluster.send_client(self, node, id, payload, bin)
    return self:publish(_M.channel("node", node), CLIENT, tostring(id), bin, nil, payload)
end

-- Disconnect client `id` of `node`, or (id nil) every connection of `user`
-- on the other nodes.
function cluster.disconnect(self, node, id, user, code, reason)
    local payload = tostring(code) .. "\n" .. (reason or "")
    if id then
        return self:publish(_M.channel("node", node), DISCONNECT, tostring(id), false, nil,
                            payload)
    end
    return self:publish(_M.channel("user", user), DISCONNECT, "", false, nil, payload)
end

-- A bus event for the other nodes' subscribers.
function cluster.event(self, channel, message)
    local text, err = cjson.encode({ channel = channel, message = message })
    if not text then
        log("error", "bus event on '" .. channel .. "' not sent to the other nodes: " .. err)
        return nil, err
    end
    return self:publish(_M.channel("bus"), EVENT, "", false, nil, text)
end


-- ---- membership: channels and presence ------------------------------------------

local function entry_json(self, client)
    local text = cjson.encode(self.manager:presence_entry(client))
    return text or "{}"
end


-- With workers: how many rooms have members on the other workers and none
-- here, kept as rooms come and go on either side and told to the core,
-- so that /health's rooms and moonwire_rooms count each room once.
local function elsewhere(self, delta)
    self.elsewhere = self.elsewhere + delta
    core.set_rooms_elsewhere(self.elsewhere)
end

-- Room `name` has members here (on = true) or no longer (false).
local function set_local(self, name, on)
    self.rooms[name] = on or nil
    if self.remote and self.remote[name] then
        elsewhere(self, on and -1 or 1)
    end
end


-- Room `name` has members on the other workers (r, their entries) or no
-- longer (nil).
local function set_remote(self, name, r)
    self.remote[name] = r
    if not self.rooms[name] then
        elsewhere(self, r and 1 or -1)
    end
end


-- client joined `name` on this node (local count now `count`).
function cluster.joined(self, name, client, count)
    if not self.rooms[name] then
        set_local(self, name, true)
        self.transport:subscribe(_M.channel("room", name), self.on_message)
    end
    if self.remote then
        self.transport:set(_M.member_key(client.id, name), entry_json(self, client))
        return count
    end
    local key = _M.entries_key(self.node, name)
    if self:write("HSET", key, tostring(client.id), entry_json(self, client)) then
        self:write("PEXPIRE", key, self.ttl)
        self:write("SADD", _M.nodes_key(name), self.node)
    end
    return count
end


-- client left `name` (local count now `count`).
function cluster.left(self, name, client, count)
    if self.remote then
        self.transport:del(_M.member_key(client.id, name))
    end
    local key = _M.entries_key(self.node, name)
    self:write("HDEL", key, tostring(client.id))
    if count <= 0 and self.rooms[name] then
        set_local(self, name, false)
        self.transport:unsubscribe(_M.channel("room", name))
        self:write("SREM", _M.nodes_key(name), self.node)
    end
end


function cluster.user_bound(self, user)
    if not self.users[user] then
        self.users[user] = true
        self.transport:subscribe(_M.channel("user", user), self.on_message)
    end
end

function cluster.user_gone(self, user)
    if self.users[user] then
        self.users[user] = nil
        self.transport:unsubscribe(_M.channel("user", user))
    end
end


-- Every presence entry of this node, written anew (Redis came back, maybe
-- empty).
function cluster.republish(self)
    local m = self.manager
    for name in pairs(self.rooms) do
        local ids = core.members(name) or {}
        if #ids == 0 then
            set_local(self, name, false)
            self.transport:unsubscribe(_M.channel("room", name))
        else
            local key = _M.entries_key(self.node, name)
            local args = { "HSET", key }
            for _, id in ipairs(ids) do
                local client = m:client(id)
                if client then
                    args[#args + 1] = tostring(id)
                    args[#args + 1] = entry_json(self, client)
                end
            end
            self:write("DEL", key)
            if #args > 2 then
                self:write(unpack(args))
            end
            self:write("PEXPIRE", key, self.ttl)
            self:write("SADD", _M.nodes_key(name), self.node)
        end
    end
end


-- Every third of presence_ttl: keeps this node's entries alive, notices
-- Redis coming back.
function cluster.heartbeat(self)
    local t = self.transport
    if self.down then
        if t:up() then
            self:back()
        end
        return
    end
    local up, err, reconnects = t:up()
    if not up then
        self:failed(err ~= "" and err or "down", false)
        return
    end
    if reconnects and reconnects ~= self._reconnects then
        -- back after an outage too short for any write to notice it
        self._reconnects = reconnects
        self:republish()
        return
    end
    for name in pairs(self.rooms) do
        self:write("PEXPIRE", _M.entries_key(self.node, name), self.ttl)
        self:write("SADD", _M.nodes_key(name), self.node)
    end
end


-- ---- what arrives from the other nodes --------------------------------------------

function cluster.receive(self, bytes, channel)
    local h, payload = _M.decode(bytes)
    if not h then
        self.stats.bad_messages = self.stats.bad_messages + 1
        return
    end
    if h.origin == self.node then
        return
    end
    self.stats.received = self.stats.received + 1
    local kind = h.kind
    if kind == ROOM then
        local name = _M.channel_name(channel, "room")
        if name then
            core.broadcast(name, payload, h.bin, nil, h.event_id)
        end
    elseif kind == ALL then
        core.broadcast_all(payload, h.bin, nil, h.event_id)
    elseif kind == USER then
        local user = _M.channel_name(channel, "user")
        local ids = user and self:user_ids(user)
        if ids and #ids > 0 then
            core.send_many(ids, payload, h.bin, h.event_id)
        end
    elseif kind == CLIENT then
        local id = tonumber(h.target)
        if id then
            core.send_many({ id }, payload, h.bin, nil)
        end
    elseif kind == DISCONNECT then
        self:close_local(h.target, channel, payload)
    elseif kind == EVENT then
        local ev = cjson.decode(payload)
        if type(ev) == "table" and type(ev.channel) == "string" then
            local bus = self.manager._host.bus
            if bus then
                self.receiving = true
                pcall(bus.emit, bus, ev.channel, ev.message)
                self.receiving = false
            end
        end
    else
        self.stats.bad_messages = self.stats.bad_messages + 1
    end
end


-- The local ids of a user named by a channel (user ids that are numbers
-- arrive as text).
function cluster.user_ids(self, user)
    local m = self.manager
    local ids = m:user_ids(user)
    if #ids == 0 and tonumber(user) then
        ids = m:user_ids(tonumber(user))
    end
    return ids
end


function cluster.close_local(self, target, channel, payload)
    local nl = find(payload, "\n", 1, true)
    local code = tonumber(nl and sub(payload, 1, nl - 1)) or 1000
    local reason = nl and sub(payload, nl + 1) or ""
    local ids
    if target ~= "" then
        ids = { tonumber(target) }
    else
        local user = _M.channel_name(channel, "user")
        ids = user and self:user_ids(user) or {}
    end
    local m = self.manager
    for _, id in ipairs(ids) do
        local client = m:client(id)
        if client then
            pcall(client.close, client, code, reason)
        end
    end
end


-- ---- the other workers' members (the hub's store) -------------------------------

-- A change of another worker's entries (transport.on_store): "set" and
-- "del" of a member key, "exit" of a worker. Each record runs in a task of
-- its own, in the order they came, messages included: a presence event
-- published after a join reaches a worker after the join's entry.
function cluster.store_change(self, op, worker, key, value)
    if op == "exit" then
        return self:worker_gone(worker)
    end
    if type(key) == "string" and sub(key, 1, 2) == "c:" then
        return self:client_change(op, worker, key, value)
    end
    local id, room = _M.parse_member_key(key)
    if not id then
        self.stats.bad_messages = self.stats.bad_messages + 1
        return
    end
    local remote = self.remote
    local r = remote[room]
    if op == "set" then
        if not r then
            r = { n = 0, by = {} }
            set_remote(self, room, r)
        end
        local by = r.by[worker]
        if not by then
            by = {}
            r.by[worker] = by
        end
        if by[id] == nil then
            r.n = r.n + 1
        end
        by[id] = value
    elseif op == "del" then
        local by = r and r.by[worker]
        if by and by[id] ~= nil then
            by[id] = nil
            r.n = r.n - 1
            if next(by) == nil then
                r.by[worker] = nil
            end
            if r.n == 0 then
                set_remote(self, room, nil)
            end
        end
    end
end


-- A client key of another worker set or deleted.
function cluster.client_change(self, op, worker, key, value)
    local id = tonumber(sub(key, 3))
    if not id then
        self.stats.bad_messages = self.stats.bad_messages + 1
        return
    end
    local clients = self.remote_clients[worker]
    if op == "set" then
        if not clients then
            clients = {}
            self.remote_clients[worker] = clients
        end
        local c = cjson.decode(value or "")
        if type(c) ~= "table" then
            self.stats.bad_messages = self.stats.bad_messages + 1
            c = {}
        end
        clients[id] = c
    elseif op == "del" and clients then
        clients[id] = nil
        if next(clients) == nil then
            self.remote_clients[worker] = nil
        end
    end
end


-- The users bound to a connection on the other workers: a set, { [user]
-- = true } (walks every client of theirs: for /api/stats, not a hot path).
function cluster.remote_users(self)
    local users = {}
    for _, clients in pairs(self.remote_clients or {}) do
        for _, c in pairs(clients) do
            if c.user ~= nil then
                users[c.user] = true
            end
        end
    end
    return users
end


-- This worker's client `client` connected, or is bound to another user
-- (workers only: between nodes a dead node's clients are not announced).
function cluster.client_up(self, client)
    if self.remote then
        local text = cjson.encode({ user = client.user, node = self.node })
        self.transport:set(_M.client_key(client.id), text or "{}")
    end
end

function cluster.client_down(self, client)
    if self.remote then
        self.transport:del(_M.client_key(client.id))
    end
end


-- The bus events a dead worker's clients would have emitted had they
-- disconnected: client.left for each room, then client.disconnected
-- (code 1006, reason "worker exited"), each with `node`, the dead
-- worker's. Every worker emits them to its own subscribers only, as for an
-- event that came from another worker.
local function tell_gone(self, gone, clients)
    local host = self.manager._host
    local bus = host and host.bus
    if not bus then
        return
    end
    local left, disconnected = bus:has("client.left"), bus:has("client.disconnected")
    self.receiving = true
    if left then
        for _, g in ipairs(gone) do
            local entry = json.decode(g[2])
            if type(entry) == "table" then
                local room, user = g[1], entry.user
                if type(user) ~= "string" and type(user) ~= "number" then
                    user = nil -- the entry's null
                end
                pcall(bus.emit, bus, "client.left", {
                    client_id = entry.client_id, user = user, room = room,
                    count = (core.count(room) or 0) + self:remote_count(room), node = entry.node })
            end
        end
    end
    if disconnected and clients then
        for id, c in pairs(clients) do
            pcall(bus.emit, bus, "client.disconnected", {
                client_id = id, user = c.user, code = 1006, reason = "worker exited",
                node = c.node })
        end
    end
    self.receiving = false
end


-- Worker `worker` exited: its members are dropped, and announced as left
-- to this worker's members of their rooms (every worker does the same for
-- its own members); its clients' bus events follow (tell_gone).
function cluster.worker_gone(self, worker)
    local clients = self.remote_clients and self.remote_clients[worker]
    if clients then
        self.remote_clients[worker] = nil
    end
    local gone = {}
    for room, r in pairs(self.remote) do
        local by = r.by[worker]
        if by then
            r.by[worker] = nil
            for _, text in pairs(by) do
                r.n = r.n - 1
                gone[#gone + 1] = { room, text }
            end
            if r.n == 0 then
                set_remote(self, room, nil)
            end
        end
    end
    local m = self.manager
    for _, g in ipairs(gone) do
        local room = g[1]
        if m:presence_enabled(room) then
            local entry = json.decode(g[2])
            if type(entry) == "table" then
                m:announce_entry(room, "left", entry, nil, true)
            end
        end
    end
    tell_gone(self, gone, clients)
end


-- How many members room `name` has on the other workers (0 between nodes:
-- room counts are per node there).
function cluster.remote_count(self, name)
    local r = self.remote and self.remote[name]
    return r and r.n or 0
end


local function by_node_and_id(a, b)
    local na, nb = tostring(a.node), tostring(b.node)
    if na ~= nb then
        return na < nb
    end
    return (tonumber(a.client_id) or 0) < (tonumber(b.client_id) or 0)
end


-- `list` (this worker's presence entries of room `name`) with the other
-- workers' added, in the same order on every worker (node, client id).
-- Between nodes, list as it is.
function cluster.with_remote(self, name, list)
    local r = self.remote and self.remote[name]
    if not self.remote then
        return list
    end
    if r then
        for _, by in pairs(r.by) do
            for _, text in pairs(by) do
                local entry = json.decode(text)
                if type(entry) == "table" then
                    list[#list + 1] = entry
                end
            end
        end
    end
    sort(list, by_node_and_id)
    return list
end


-- The names of the rooms with members here or on another worker, given
-- this worker's (core.room_names()); between nodes, names as they are.
function cluster.room_names(self, names)
    local remote = self.remote
    if not remote then
        return names
    end
    local seen = {}
    for _, name in ipairs(names) do
        seen[name] = true
    end
    for name in pairs(remote) do
        if not seen[name] then
            names[#names + 1] = name
        end
    end
    return names
end


-- ---- reading presence across nodes (waits: call from a task) -------------------------

-- Every presence entry of room `name` on every live node, or nil, err.
-- A node whose entries expired (dead) is taken out of the room's set.
function cluster.presence(self, name)
    if not self.url then
        -- between workers: this worker's members and its copy of the others'
        return self.manager:room(name):presence()
    end
    if not self._red then
        local red, err = require("moonwire.redis").connect(self.url)
        if not red then
            return nil, err
        end
        self._red = red
    end
    local red = self._red
    local nodes, err = red:call("SMEMBERS", _M.nodes_key(name))
    if not nodes then
        return nil, err
    end
    local list = {}
    for _, node in ipairs(nodes) do
        local h
        h, err = red:call("HGETALL", _M.entries_key(node, name))
        if not h then
            return nil, err
        end
        if #h == 0 then
            red:call("SREM", _M.nodes_key(name), node)
        end
        for i = 2, #h, 2 do
            local entry = cjson.decode(h[i])
            if type(entry) == "table" then
                entry.node = entry.node or node
                list[#list + 1] = entry
            end
        end
    end
    return list
end


-- ---- counters -----------------------------------------------------------------------

-- /health and /metrics: nil when the cluster is off.
function _M.stats()
    local self = current
    if not self then
        return nil
    end
    local out = { up = not self.down and self.transport:up() == true,
                  subscriptions = self.transport:subscriptions() }
    for k, v in pairs(self.stats) do
        out[k] = v
    end
    out.node = self.node
    return out
end

function _M.current()
    return current
end

-- For specs: forget the process's cluster.
function _M.reset()
    current = nil
end


-- Starts the cluster of a runtime from its config, or nil, err.
function _M.start(manager, config)
    local node = config.node_id
    if type(node) ~= "string" or node == "" then
        node = _M.random_id()
    else
        -- With workers, each worker is a node of its own: a configured id
        -- shared by them would make each skip the others' messages as its
        -- own and mix their presence. Worker N is "<node_id>-w<N>".
        local worker = tonumber(getenv("MW_WORKER") or "")
        if worker and worker > 0 then
            node = node .. "-w" .. worker
        end
    end
    local t, err = _M.redis_transport(config.redis_url)
    if not t then
        return nil, err
    end
    local self = _M.new(manager, t, { node_id = node, presence_ttl = config.presence_ttl })
    self.url = config.redis_url
    self:start()
    return self
end


-- Starts the cluster of a worker's runtime over the supervisor's hub, or
-- nil, err ("not a worker" in a process of its own).
function _M.start_hub(manager, config)
    local t, worker = _M.hub_transport()
    if not t then
        return nil, worker
    end
    local self = _M.new(manager, t, { node_id = "w" .. worker,
                                      presence_ttl = config.presence_ttl })
    self:start()
    return self
end


return _M
