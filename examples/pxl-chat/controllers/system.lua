-- PXL's built-in system controller (the guide's "Room Management":
-- system.joinRoom and system.leaveRoom with data.roomName), replacing
-- moonwire's own (whose join/leave take data.room). The answers are those
-- of @scpxl/nodejs-framework's controllers/server/system.ts; rooms are
-- moonwire's, so clientCanJoinMultipleRooms = false (config.lua) makes a
-- join move the client out of the room it was in, in the C core.

local pxl = require "lib.pxl"

local type = type
local pairs = pairs


local _M = {}


local FAILED_KEYS = { "success", "error", "clientId" }
local JOIN_FAILED_KEYS = { "success", "error", "message", "clientId" }
local JOINED_KEYS = { "success", "message", "data" }
local JOINED_DATA_KEYS = { "userId", "userType", "username", "roomName", "joinedAt" }
local LEFT_KEYS = { "success", "message", "data", "clientId" }
local LEFT_DATA_KEYS = { "roomName", "leftAt" }
local ROOM_KEYS = { "roomName" }


local function room_required(client)
    return pxl.ordered(FAILED_KEYS, { success = false, error = "Room name is required",
                                      clientId = client.data.client_id })
end


-- The answer of the controller's catch: the room could not be joined (a
-- name moonwire's rooms do not take, a full room). PXL puts the
-- exception's text in `message`; here it is moonwire's reason.
local function failed(client, what, reason)
    return pxl.ordered(JOIN_FAILED_KEYS, { success = false, error = what, message = reason,
                                           clientId = client.data.client_id })
end


-- {"type":"system","action":"joinRoom","data":{"roomName":R,"username":U,
-- "userId":I,"userType":T}} -> {"success":true,"message":"Successfully
-- joined room: R","data":{"userId":I,"userType":T,"username":U,
-- "roomName":R,"joinedAt":ISO}}. userId defaults to the client id,
-- userType to "user", username to "user_" and the client id's first 8
-- digits. Joining a room the client is in already answers the same.
function _M.joinRoom(client, data)
    local room = data.roomName
    if pxl.js_or(room, nil) == nil then
        return room_required(client)
    end
    if type(room) ~= "string" then
        return failed(client, "Failed to join room", "room name must be a string")
    end
    local client_id = client.data.client_id
    local user_id = pxl.nullish(data.userId, client_id)
    local user_type = pxl.nullish(data.userType, "user")
    local username = pxl.nullish(data.username, "user_" .. client_id:sub(1, 8))
    -- What joinRoom stores about the client's user in the room (PXL's
    -- userData), for the room's listeners (subscribers/room-status.lua).
    -- Entries of rooms the client has left go at its next join (not at the
    -- leave itself: the listeners of that leave still read them).
    local rooms = client.data.rooms or {}
    for name in pairs(rooms) do
        if not client:in_room(name) then
            rooms[name] = nil
        end
    end
    local count, _, reason = client:join(room)
    if not count then
        return failed(client, "Failed to join room", reason)
    end
    rooms[room] = { userId = user_id, userType = user_type, username = username }
    client.data.rooms = rooms
    return pxl.ordered(JOINED_KEYS, {
        success = true,
        message = "Successfully joined room: " .. room,
        data = pxl.ordered(JOINED_DATA_KEYS, {
            userId = user_id, userType = user_type, username = username, roomName = room,
            joinedAt = pxl.iso(),
        }),
    })
end


-- {"type":"system","action":"leaveRoom","data":{"roomName":R}}: a member
-- first gets {"type":"user","action":"leftRoom","data":{"roomName":R}};
-- then the answer {"success":true,"message":"Successfully left room: R",
-- "data":{"roomName":R,"leftAt":ISO},"clientId":C} (a client that was
-- not in the room gets the answer alone, as in PXL).
function _M.leaveRoom(client, data)
    local room = data.roomName
    if pxl.js_or(room, nil) == nil then
        return room_required(client)
    end
    if type(room) ~= "string" then
        return failed(client, "Failed to leave room", "room name must be a string")
    end
    if client:in_room(room) and client:leave(room) then
        client:send(pxl.message("user", "leftRoom", pxl.ordered(ROOM_KEYS, { roomName = room })))
    end
    return pxl.ordered(LEFT_KEYS, {
        success = true,
        message = "Successfully left room: " .. room,
        data = pxl.ordered(LEFT_DATA_KEYS, { roomName = room, leftAt = pxl.iso() }),
        clientId = client.data.client_id,
    })
end


return _M
