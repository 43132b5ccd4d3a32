-- type "chat": rooms with presence, messages, a typing indicator and
-- private messages to a user's every connection.
--
--   {"type":"chat","action":"join","data":{"room":"general","name":"Ann"},"id":1}
--     -> {"room":"general","count":2,"members":[{client_id,user,meta}, ...]}
--   {"type":"chat","action":"say","data":{"room":"general","text":"hi"},"id":2}
--     -> the other members get {"type":"chat","action":"message","room":"general",
--        "data":{"client_id":1,"user":null,"name":"Ann","text":"hi"},"ts":...}
--   {"type":"chat","action":"typing","data":{"room":"general"}}
--     -> the other members get {"type":"chat","action":"typing","room":"general",
--        "data":{"client_id":1,"user":null}}, at most once a second per client

local moonwire = require "moonwire"
local settings = require "lib.settings"

local type = type


local _M = {}


-- The room of a message the client may send to: it must be a member.
local function member_room(client, data)
    local room = data.room
    if type(room) ~= "string" or room == "" then
        return nil, { code = "INVALID_ROOM", message = "room must be a non-empty string" }
    end
    if not client:in_room(room) then
        return nil, { code = "INVALID_ROOM", message = "join the room first" }
    end
    return room
end


function _M.join(client, data)
    local name = data.name
    if name ~= nil then
        if type(name) ~= "string" or name == "" or #name > settings.max_name then
            return nil, "name must be a string of 1 to " .. settings.max_name .. " bytes"
        end
        client.public.name = name
    end
    local count, code, message = client:join(data.room)
    if not count then
        return nil, { code = code, message = message }
    end
    return { room = data.room, count = count, members = moonwire.room(data.room):presence() }
end


function _M.leave(client, data)
    local count, code, message = client:leave(data.room)
    if not count then
        return nil, { code = code, message = message }
    end
    return { room = data.room, count = count }
end


function _M.say(client, data)
    local room, err = member_room(client, data)
    if not room then
        return nil, err
    end
    local text = data.text
    if type(text) ~= "string" or text == "" or #text > settings.max_text then
        return nil, "text must be a string of 1 to " .. settings.max_text .. " bytes"
    end
    local delivered = moonwire.room(room):broadcast({
        type = "chat",
        action = "message",
        room = room,
        data = { client_id = client.id, user = client:user_or_null(), name = client.public.name,
                 text = text },
        ts = moonwire.now(),
    }, { exclude = client })
    return { delivered = delivered }
end


-- Throttled in Lua: one typing event per client per `typing_interval` ms;
-- the extra ones are dropped quietly (the reply says sent = false).
function _M.typing(client, data)
    local room, err = member_room(client, data)
    if not room then
        return nil, err
    end
    local now = moonwire.now()
    local last = client.data.typing_at
    if last and now - last < settings.typing_interval then
        return { sent = false }
    end
    client.data.typing_at = now
    moonwire.room(room):broadcast({
        type = "chat",
        action = "typing",
        room = room,
        data = { client_id = client.id, user = client:user_or_null() },
    }, { exclude = client })
    return { sent = true }
end


-- A stand-in for authentication: binds this connection to a user id, so
-- that whispers reach every tab the user has open.
function _M.login(client, data)
    local user = data.user
    if type(user) ~= "string" or user == "" or #user > settings.max_name then
        return nil, "user must be a string of 1 to " .. settings.max_name .. " bytes"
    end
    client:set_user(user)
    client.public.name = user
    return { user = user }
end


function _M.whisper(client, data)
    local to, text = data.user, data.text
    if type(to) ~= "string" or type(text) ~= "string" or text == "" then
        return nil, "user and text must be strings"
    end
    local delivered = moonwire.send_user(to, {
        type = "chat",
        action = "whisper",
        data = { client_id = client.id, user = client:user_or_null(), text = text },
        ts = moonwire.now(),
    })
    if delivered == 0 then
        return nil, { code = "NOT_FOUND", message = "no such user online" }
    end
    return { delivered = delivered }
end


return _M
