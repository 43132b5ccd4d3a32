-- The guide's UserController ("Client Metadata"): user.updatePreferences
-- stores what the client sent as its `preferences`, as
-- clientManager.updateClient({clientId, key: 'preferences', data}) does.
-- The metadata lives in client.data (it survives reloads); subscribers read
-- it (subscribers/announcements.lua sends announcements only to clients
-- whose preferences do not turn notifications off).

local pxl = require "lib.pxl"


local _M = {}


local SUCCESS_KEYS = { "success" }


-- {"type":"user","action":"updatePreferences","data":{"theme":"dark",
-- "notifications":true}} -> {"success":true}. The whole data replaces the
-- previous preferences.
function _M.updatePreferences(client, data)
    client.data.preferences = data
    return pxl.ordered(SUCCESS_KEYS, { success = true })
end


return _M
