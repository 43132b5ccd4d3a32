-- Specs for payloads that pass through unchanged (issue 9): `data` is
-- forwarded byte for byte on every path that forwards it — a reply,
-- client:send, a room broadcast, a broadcast to all, a user send, the system
-- controller's publish and broadcast — whatever lua-cjson would have done to
-- it; read and left as it was it still is; modified it is written by
-- lua-cjson with every member kept; and malformed JSON anywhere in the
-- envelope is INVALID_MESSAGE. On the real core (frames as the client
-- receives them).

local tmpdir = require "support.tmpdir"
local testing = require "moonwire.testing"
local cjson = require "cjson"

local find = string.find


local CONTROLLER = [[
local moonwire = require "moonwire"
local json = require "moonwire.json"

local function out(action, data)
    return { type = "fwd", action = action, data = data }
end

return {
    reply = function(client, data)
        return data
    end,
    send = function(client, data)
        client:send(out("send", data))
    end,
    room = function(client, data)
        client:join("r")
        moonwire.room("r"):broadcast(out("room", data))
    end,
    all = function(client, data)
        moonwire.broadcast(out("all", data))
    end,
    user = function(client, data)
        client:set_user("u")
        moonwire.send_user("u", out("user", data))
    end,
    nested = function(client, data)
        client:send({ type = "fwd", action = "nested", data = { wrap = { inner = data } } })
    end,
    -- reads every member (and those of the members), changes nothing
    read = function(client, data)
        local seen = 0
        for _, v in pairs(data) do
            seen = seen + 1
            if type(v) == "table" then
                for _ in pairs(v) do
                    seen = seen + 1
                end
            end
        end
        client:send(out("read", data))
        return { seen = seen }
    end,
    modify = function(client, data)
        data.added = true
        client:send(out("modify", data))
    end,
    raw = function(client, data)
        return { raw = json.raw(data) }
    end,
    field = function(client, data)
        client:send(out("field", json.field(data, "v")))
    end,
}
]]


-- What clients send as `data`, each kept byte for byte.
local PAYLOADS = {
    '{"n":123456789012345,"m":1700000000123456,"p":12345678901234567}',
    '{"big":123456789012345678901234567890,"neg":-9007199254740993}',
    '{"inf":1e400,"z":-0,"e":1E+2,"f":0.30000000000000004,"g":-1e-400}',
    '[]',
    '{}',
    '{"a":[],"b":{},"c":[[],{}],"d":{"e":{"f":[]}}}',
    '[[],[[]],{},{"x":{}},[{}]]',
    '{"k":1,"k":2,"k":{"deep":[1]}}',
    '{"z":1,"a":2,"m":3,"b":{"y":1,"x":2}}',
    '{"s":"\\u00e9\\/\\n\\"\\u0000","emoji":"\\ud83d\\ude00","raw":"\240\159\152\128 é"}',
    '[1, 2 ,{"x" : null} , true,false ]',
}


describe("payloads pass through unchanged", function()
    local dir, app

    before_each(function()
        dir = tmpdir.new()
        tmpdir.write(dir, "controllers/fwd.lua", CONTROLLER)
        app = assert(testing.load_app(dir, {
            config = { welcome = false, allow_client_broadcast = true,
                       max_message_size = 4 * 1024 * 1024 },
        }))
    end)

    after_each(function()
        app:close()
        tmpdir.remove(dir)
    end)

    -- The text of the last frame `conn` received.
    local function last_text(conn)
        local frames = conn:frames()
        return frames[#frames] and frames[#frames].payload
    end

    local function send(conn, action, data_text, id)
        local text = '{"type":"fwd","action":"' .. action .. '","data":' .. data_text
                     .. (id and ',"id":' .. id or "") .. '}'
        conn:send(text)
    end

    -- `text` holds `"data":` followed by exactly `raw`.
    local function carries(raw, text)
        assert.is_string(text)
        assert.is_truthy(find(text, '"data":' .. raw, 1, true),
                         "expected data " .. raw .. " in " .. tostring(text))
    end

    it("in a reply", function()
        local ws = app:connect()
        for i, raw in ipairs(PAYLOADS) do
            send(ws, "reply", raw, i)
            carries(raw, last_text(ws))
        end
    end)

    it("through client:send, nested in a new table too", function()
        local ws = app:connect()
        for _, raw in ipairs(PAYLOADS) do
            send(ws, "send", raw)
            carries(raw, last_text(ws))
            send(ws, "nested", raw)
            assert.is_truthy(find(last_text(ws), '"inner":' .. raw, 1, true), raw)
        end
    end)

    it("through a room broadcast, a broadcast to all and a user send", function()
        local a, b = app:connect(), app:connect()
        send(b, "room", "{}") -- b joins r
        for _, raw in ipairs(PAYLOADS) do
            send(a, "room", raw)
            carries(raw, last_text(b))
            carries(raw, last_text(a))
            send(a, "all", raw)
            carries(raw, last_text(b))
            send(b, "user", raw)
            carries(raw, last_text(b))
        end
    end)

    it("read and left unchanged, at every level", function()
        local ws = app:connect()
        for i, raw in ipairs(PAYLOADS) do
            send(ws, "read", raw, i)
            local frames = ws:frames()
            carries(raw, frames[#frames - 1].payload)
        end
    end)

    it("modified: written by lua-cjson with every member kept", function()
        local ws = app:connect()
        send(ws, "modify", '{"n":5,"list":[1,2],"o":{"k":"v"}}')
        local got = cjson.decode(last_text(ws)).data
        assert.same({ n = 5, list = { 1, 2 }, o = { k = "v" }, added = true }, got)
        -- an unchanged member object inside a changed one keeps its text
        send(ws, "modify", '{"o":{"p":12345678901234567,"q":[]}}')
        assert.is_truthy(find(last_text(ws), '"o":{"p":12345678901234567,"q":[]}', 1, true))
    end)

    it("json.raw gives the text while unchanged, json.field a member's", function()
        local ws = app:connect()
        send(ws, "raw", '{"a": [1, 2]}', 1)
        assert.equal('{"a": [1, 2]}', ws:last().data.raw)
        send(ws, "field", '{"v":12345678901234567}')
        carries("12345678901234567", last_text(ws))
        send(ws, "field", '{"v":"a\\/b"}')
        carries('"a\\/b"', last_text(ws))
    end)

    it("1 MiB of data", function()
        local ws = app:connect()
        local raw = '{"blob":"' .. ("x\\/"):rep(349525) .. '","n":1E+2}'
        assert.is_true(#raw > 1024 * 1024)
        send(ws, "send", raw)
        carries(raw, last_text(ws))
    end)

    it("through the system controller's publish and broadcast", function()
        local a, b = app:connect(), app:connect()
        a:request("system", "join", { room = "r" })
        b:request("system", "join", { room = "r" })
        for _, raw in ipairs({ '12345678901234567', '1E+2', '-0', '"a\\/b\\u00e9"',
                               '{"x":[],"y":1e400}', '[]' }) do
            a:send('{"type":"system","action":"publish","id":1,"data":{"room":"r","data":'
                   .. raw .. '}}')
            carries(raw, last_text(b))
            a:send('{"type":"system","action":"broadcast","id":2,"data":{"data":' .. raw .. '}}')
            carries(raw, last_text(b))
        end
    end)

    it("answers malformed JSON anywhere in the envelope with INVALID_MESSAGE", function()
        local ws = app:connect()
        local good = '{"type":"fwd","action":"reply","data":{"a":[1,{"b":"c"}],"n":1},"z":[true]}'
        for i = 1, #good - 1 do
            local out = ws:send(good:sub(1, i))
            assert.equal("INVALID_MESSAGE", out[1] and out[1].error.code, good:sub(1, i))
        end
        for _, bad in ipairs({
            '{"type":"fwd","action":"reply","data":{"a":tru}}',
            '{"type":"fwd","action":"reply","data":{"a":1,}}',
            '{"type":"fwd","action":"reply","data":{"a":01}}',
            '{"type":"fwd","action":"reply","data":{},"z":[1 2]}',
            '{"type":"fwd","action":"reply","data":{}} x',
            '{"type":"fwd","action":"reply","data":{"s":"\\x"}}',
            '{"type":"fwd","action":"reply","data":["\\ud800"]}',
        }) do
            local out = ws:send(bad)
            assert.equal("INVALID_MESSAGE", out[1] and out[1].error.code, bad)
            assert.matches("^malformed JSON: .* at character %d+$", out[1].error.message)
        end
        send(ws, "reply", "{}", 7) -- still served
        assert.same({}, ws:last().data)
    end)
end)


describe("lazy data in Lua", function()
    local json = require "moonwire.json"

    -- Objects over 256 bytes are lazy; smaller ones are decoded at once.
    local PAD = ',"pad":"' .. ("p"):rep(300) .. '"'

    it("decodes small objects at once and still forwards them as sent", function()
        local msg = assert(json.decode('{"data":{"a":1,"b":{"c":12345678901234567}}}'))
        assert.is_nil(getmetatable(msg.data))
        assert.equal(1, rawget(msg.data, "a"))
        assert.equal('{"c":12345678901234567}', json.raw(msg.data.b))
        assert.matches('"data":{"a":1,"b":{"c":12345678901234567}}',
                       json.encode({ data = msg.data }), 1, true)
    end)

    it("pairs, next and setmetatable decode a lazy table first", function()
        local msg = assert(json.decode('{"data":{"a":1,"b":{"c":[1,2]' .. PAD .. '}'
                                       .. PAD .. '}}'))
        local data = msg.data
        assert.equal(json.LAZY, getmetatable(data))
        assert.is_nil(rawget(data, "a")) -- rawget does not decode
        local keys = {}
        for k in pairs(data) do
            keys[#keys + 1] = k
        end
        table.sort(keys)
        assert.same({ "a", "b", "pad" }, keys)
        assert.is_nil(getmetatable(data))
        local b = data.b
        assert.equal(json.LAZY, getmetatable(b))
        assert.is_not_nil(next(b))
        local other = assert(json.decode('{"x":{"y":2' .. PAD .. '}}')).x
        assert.equal(json.LAZY, getmetatable(other))
        setmetatable(other, { __index = function() return "dflt" end })
        assert.equal(2, other.y)
        assert.equal("dflt", other.z)
    end)

    it("bounds the work of arrays nested deep inside large arrays", function()
        -- Decoding each level at once rescans and copies what is inside it:
        -- past 8 times the text, the deeper arrays are left lazy instead.
        local inner = ("1,"):rep(5000) .. "1"
        local text = ("["):rep(40) .. inner .. ("]"):rep(40)
        local v = assert(json.decode(text))
        local lazy_at, x = nil, v
        for depth = 1, 40 do
            if getmetatable(x) == json.LAZY and not lazy_at then
                lazy_at = depth
            end
            if depth < 40 then
                x = x[1] -- decodes a lazy level on the way
            end
        end
        assert.is_number(lazy_at)
        assert.is_true(lazy_at > 2 and lazy_at < 20, "first lazy level " .. tostring(lazy_at))
        assert.equal(5001, #x)
        local n = 0
        for _, one in ipairs(x) do
            n = n + one
        end
        assert.equal(5001, n)
        assert.equal(text, json.encode(v)) -- forwarded as sent
        local first = assert(json.decode(text))
        while getmetatable(first) ~= json.LAZY do
            first = rawget(first, 1)
        end
        local count = 0
        for _ in ipairs(first) do -- ipairs decodes a lazy array first
            count = count + 1
        end
        assert.equal(1, count)
    end)

    it("arrays are decoded at once, so # works", function()
        local v = assert(json.decode('{"list":[1,[2,3],{"k":"v"}]}'))
        assert.equal(3, #v.list)
        assert.equal(2, #v.list[2])
        assert.equal("v", v.list[3].k)
    end)

    it("keeps lua-cjson's values for what Lua reads", function()
        local v = assert(json.decode('{"n":12345678901234567,"i":1e400,"z":-0,"e":1E+2,'
                                     .. '"s":"\\u00e9\\ud83d\\ude00","nul":null,"t":true}'))
        assert.equal(12345678901234567, v.n)
        assert.equal(math.huge, v.i)
        assert.equal(-math.huge, 1 / v.z)
        assert.equal(100, v.e)
        assert.equal("é😀", v.s)
        assert.equal(json.null, v.nul)
        assert.is_true(v.t)
    end)

    it("a changed member is written by lua-cjson, unchanged siblings as sent", function()
        local v = assert(json.decode('{"a":{"n":12345678901234567},"b":{"m":1E+2}}'))
        v.b.m = 5
        local text = json.encode(v)
        assert.matches('"a":{"n":12345678901234567}', text, 1, true)
        assert.matches('"b":{"m":5}', text, 1, true)
        assert.is_nil(json.raw(v))
        assert.equal('{"n":12345678901234567}', json.raw(v.a))
    end)

    it("json.literal and json.empty_array", function()
        local text = json.encode({ x = json.literal("[1, 2]"), e = json.empty_array })
        assert.is_truthy(text == '{"x":[1, 2],"e":[]}' or text == '{"e":[],"x":[1, 2]}', text)
        local lit, err = json.literal("{bad")
        assert.is_nil(lit)
        assert.matches("^malformed JSON", err)
        assert.has_error(function() return json.literal("[1]").x end)
    end)

    it("lua-cjson's own encode sees every member of a lazy table", function()
        local cjson = require "cjson"
        local v = assert(json.decode('{"d":{"k":"v"}}'))
        assert.equal('{"k":"v"}', cjson.encode(v.d))
    end)
end)


describe("json.ordered and json.encode_ordered", function()
    local json = require "moonwire.json"

    it("writes a marked table's listed keys in order, then the others sorted", function()
        local t = json.ordered({ "type", "room", "data", "gone" },
                               { zeta = 1, data = { x = 1 }, alpha = true, room = "r",
                                 type = "t", [1] = "not a string key" })
        assert.equal('{"type":"t","room":"r","data":{"x":1},"alpha":true,"zeta":1}',
                     json.encode_ordered(t))
    end)

    it("orders marked tables inside marked ones, and keeps the client's bytes", function()
        local msg = assert(json.decode('{"data":{"n":12345678901234567,"b":1,"a":2}}'))
        local t = json.ordered({ "b", "a" }, {
            a = json.ordered({ "y", "x" }, { x = 1, y = json.null }),
            b = msg.data,
        })
        assert.equal('{"b":{"n":12345678901234567,"b":1,"a":2},"a":{"y":null,"x":1}}',
                     json.encode_ordered(t))
    end)

    it("writes an unmarked value as encode() does", function()
        assert.equal(json.encode({ a = { 1, 2 } }), json.encode_ordered({ a = { 1, 2 } }))
        assert.equal('"s"', json.encode_ordered("s"))
        local self = {}
        self.me = self
        local text, err = json.encode_ordered(json.ordered({ "me" }, { me = self }))
        assert.is_nil(text)
        assert.is_string(err)
    end)
end)
