-- Controller for type "echo": sends every message back unchanged.

local _M = {}


-- `frame` is { payload =, binary = } from protocol.decode, which
-- protocol.encode turns back into the same bytes and frame type.
function _M.echo(client, frame)
    local ok, err = client:send(frame)
    if not ok and err ~= "closed" then
        return nil, err
    end
end


return _M
