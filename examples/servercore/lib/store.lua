-- What the guide's event bus answers (auth.validate, auth.check.permission),
-- kept in Redis. The key layout (README.md, "Redis"), under a prefix
-- (app.redis_prefix, default "servercore:"):
--
--   servercore:token:TOKEN        string  the user id a token stands for
--                                         (SET ... EX to make it expire)
--   servercore:user:USER:roles    set     the user's roles
--   servercore:topic:TOPIC:roles  set     the roles that may subscribe to
--                                         TOPIC; the member "*" lets every
--                                         connection subscribe, even one
--                                         without a user. A topic without
--                                         the key is open to nobody.
--
-- Every call waits on Redis (the task yields; the server goes on) for at
-- most app.redis_timeout ms; while Redis is down it fails at once.

local moonwire = require "moonwire"
local shared = require "lib.shared"

local type = type
local ipairs = ipairs
local tostring = tostring


local _M = {}


_M.DEFAULT_URL = "redis://127.0.0.1:6379/0"
_M.DEFAULT_PREFIX = "servercore:"
_M.DEFAULT_TIMEOUT = 5000


local conn, conn_url, conn_app


-- The connection to app.redis_url (moonwire shares one per URL and
-- reconnects it by itself), or nil, err for a bad URL. A handle is made per
-- loaded app: a handle belongs to the server that made it.
local function redis()
    local config = shared.config()
    local url = config.redis_url or _M.DEFAULT_URL
    if conn and conn_url == url and conn_app == shared.app then
        return conn
    end
    local red, err = moonwire.redis.connect({
        url = url,
        timeout = config.redis_timeout or _M.DEFAULT_TIMEOUT,
    })
    if not red then
        return nil, err
    end
    conn, conn_url, conn_app = red, url, shared.app
    return red
end


-- Opens the connection now (on_start), so that it is up before the first
-- client comes. Returns true, or nil, err for a URL that cannot be used.
function _M.open()
    local red, err = redis()
    if not red then
        return nil, err
    end
    return true
end


local function prefix()
    return shared.config().redis_prefix or _M.DEFAULT_PREFIX
end


function _M.token_key(token)
    return prefix() .. "token:" .. token
end


function _M.user_roles_key(user)
    return prefix() .. "user:" .. tostring(user) .. ":roles"
end


function _M.topic_roles_key(topic)
    return prefix() .. "topic:" .. topic .. ":roles"
end


-- auth.validate: the user a token stands for, { id = USER, roles = {...} };
-- nil for a token Redis does not know; nil, err when Redis could not say
-- (down, timeout, a key of the wrong type).
function _M.validate(token)
    local red, err = redis()
    if not red then
        return nil, err
    end
    local user
    user, err = red:get(_M.token_key(token))
    if user == nil then
        return nil, err
    end
    if type(user) ~= "string" or user == "" then
        return nil, "token key holds no user id"
    end
    local roles
    roles, err = red:smembers(_M.user_roles_key(user))
    if not roles then
        return nil, err
    end
    return { id = user, roles = roles }
end


-- The set of a list of roles.
function _M.role_set(list)
    local set = {}
    if type(list) == "table" then
        for _, role in ipairs(list) do
            set[role] = true
        end
    end
    return set
end


-- auth.check.permission for { user, resource = topic, action =
-- 'subscribe' }: true or false, or nil, err when Redis could not say.
-- One round trip: the topic's roles and the user's current roles, which
-- also refresh the roles the broadcast filter sees (client.data.roles).
function _M.can_subscribe(client, topic)
    local red, err = redis()
    if not red then
        return nil, err
    end
    local user = client.user
    local res
    res, err = red:pipeline(function(p)
        p:smembers(_M.topic_roles_key(topic))
        if user ~= nil then
            p:smembers(_M.user_roles_key(user))
        end
    end)
    if not res then
        return nil, err
    end
    for i = 1, res.n do
        if res[i] == false then
            return nil, res.errors[i]
        end
    end
    local mine = {}
    if user ~= nil then
        mine = _M.role_set(res[2])
        client.data.roles = mine
    end
    for _, role in ipairs(res[1]) do
        if role == "*" or mine[role] then
            return true
        end
    end
    return false
end


return _M
