-- moonwire.cluster's pure parts: channel and key names, the header; and
-- the copy a worker keeps of the other workers' members (fed as the hub
-- transport feeds it, on a fake transport and rooms manager).
local cluster = require "moonwire.cluster"
local cjson = require "cjson"

describe("moonwire.cluster", function()
    it("names channels of rooms, users and nodes, and the shared ones", function()
        assert.equal("mw:room:lobby", cluster.channel("room", "lobby"))
        assert.equal("mw:user:42", cluster.channel("user", 42))
        assert.equal("mw:node:n1", cluster.channel("node", "n1"))
        assert.equal("mw:all", cluster.channel("all"))
        assert.equal("mw:bus", cluster.channel("bus"))
        assert.equal("a:b", cluster.channel_name("mw:room:a:b", "room"))
        assert.is_nil(cluster.channel_name("mw:user:x", "room"))
        assert.equal("mw:rn:lobby", cluster.nodes_key("lobby"))
        assert.equal("mw:p:n1:lobby", cluster.entries_key("n1", "lobby"))
    end)

    it("round-trips the header and a binary payload", function()
        local payload = "\0\n\255{\"a\":1}\n"
        local frame = cluster.encode("n1", "r", "", true, "ev\n7", payload)
        local h, p = cluster.decode(frame)
        assert.same({ origin = "n1", kind = "r", target = "", bin = true, event_id = "ev\n7" }, h)
        assert.equal(payload, p)
        h, p = cluster.decode(cluster.encode("n2", "c", "17", false, nil, "x"))
        assert.same({ origin = "n2", kind = "c", target = "17", bin = false }, h)
        assert.equal("x", p)
    end)

    it("refuses what is not a cluster message", function()
        assert.same({ nil, "truncated header" }, { cluster.decode("hello") })
        assert.same({ nil, "bad event id length" }, { cluster.decode("n\nr\n\nt\n9\nab") })
        assert.same({ nil, "bad header" }, { cluster.decode("n\nrr\n\nt\n0\n") })
        assert.same({ nil, "bad header" }, { cluster.decode("\nr\n\nt\n0\n") })
        assert.same({ nil, "bad header" }, { cluster.decode("n\nr\n\nx\n0\n") })
        assert.same({ nil, "not a string" }, { cluster.decode(nil) })
    end)

    it("makes a random node id of 12 hex digits", function()
        local a, b = cluster.random_id(), cluster.random_id()
        assert.truthy(a:match("^%x+$") and #a == 12)
        assert.are_not.equal(a, b)
    end)

    it("names a member in the workers' store and reads the name back", function()
        assert.equal("m:7:a:b", cluster.member_key(7, "a:b"))
        assert.same({ 7, "a:b" }, { cluster.parse_member_key("m:7:a:b") })
        assert.is_nil(cluster.parse_member_key("m:x:room"))
        assert.is_nil(cluster.parse_member_key("m:7:"))
        assert.is_nil(cluster.parse_member_key("p:7:room"))
    end)

    describe("the other workers' members", function()
        local told, cl

        before_each(function()
            told = {}
            local manager = {
                presence_enabled = function(_, room)
                    return room == "pres"
                end,
                announce_entry = function(_, room, action, entry, exclude, local_only)
                    told[#told + 1] = { room, action, entry.client_id, entry.node, exclude,
                                        local_only }
                end,
            }
            local sent = {}
            local transport = { store = true, sent = sent }
            function transport.set(_, key, value)
                sent[#sent + 1] = { "set", key, value }
            end
            cl = cluster.new(manager, transport, { node_id = "w1" })
        end)

        local function entry(id, node)
            return cjson.encode({ client_id = id, user = cjson.null, meta = {}, node = node })
        end

        it("counts and lists them as the store changes, in one order", function()
            cl:store_change("set", 3, cluster.member_key(9, "pres"), entry(9, "w3"))
            cl:store_change("set", 2, cluster.member_key(4, "pres"), entry(4, "w2"))
            cl:store_change("set", 2, cluster.member_key(1, "pres"), entry(1, "w2"))
            cl:store_change("set", 2, cluster.member_key(1, "pres"), entry(1, "w2")) -- again
            cl:store_change("set", 2, cluster.member_key(1, "other"), entry(1, "w2"))
            assert.equal(3, cl:remote_count("pres"))
            assert.equal(1, cl:remote_count("other"))
            assert.equal(0, cl:remote_count("none"))
            local list = cl:with_remote("pres", { { client_id = 5, node = "w1" } })
            local got = {}
            for i, e in ipairs(list) do
                got[i] = e.node .. ":" .. e.client_id
            end
            assert.same({ "w1:5", "w2:1", "w2:4", "w3:9" }, got)
            local names = cl:room_names({ "mine", "pres" })
            table.sort(names)
            assert.same({ "mine", "other", "pres" }, names)
            cl:store_change("del", 2, cluster.member_key(4, "pres"))
            cl:store_change("del", 2, cluster.member_key(4, "pres")) -- gone already
            cl:store_change("del", 2, cluster.member_key(1, "other"))
            assert.equal(2, cl:remote_count("pres"))
            assert.equal(0, cl:remote_count("other"))
            assert.same({ "mine", "pres" }, cl:room_names({ "mine" }))
            assert.same({}, told)
        end)

        it("drops a worker that exited and announces its members of rooms with presence",
           function()
            cl:store_change("set", 2, cluster.member_key(4, "pres"), entry(4, "w2"))
            cl:store_change("set", 2, cluster.member_key(4, "quiet"), entry(4, "w2"))
            cl:store_change("set", 3, cluster.member_key(9, "pres"), entry(9, "w3"))
            cl:store_change("exit", 2)
            assert.equal(1, cl:remote_count("pres"))
            assert.equal(0, cl:remote_count("quiet"))
            assert.same({ { "pres", "left", 4, "w2", nil, true } }, told)
        end)

        it("counts a record it cannot read and keeps going", function()
            cl:store_change("set", 2, "junk", "{}")
            assert.equal(1, cl.stats.bad_messages)
        end)

        it("puts a member's entry in the store on join", function()
            cl.manager.presence_entry = function(_, client)
                return { client_id = client.id, node = "w1" }
            end
            cl.transport.subscribe = function() return true end
            cl:joined("pres", { id = 5 }, 1)
            local sent = cl.transport.sent
            assert.equal(1, #sent)
            assert.same({ "set", "m:5:pres" }, { sent[1][1], sent[1][2] })
            assert.same({ client_id = 5, node = "w1" }, cjson.decode(sent[1][3]))
        end)

        it("puts a client in the store when it opens or changes user, and takes it out", function()
            local sent = cl.transport.sent
            function cl.transport.del(_, key)
                sent[#sent + 1] = { "del", key }
            end
            cl:client_up({ id = 5 })
            cl:client_up({ id = 5, user = "ann" })
            cl:client_down({ id = 5 })
            assert.same({ "set", "c:5" }, { sent[1][1], sent[1][2] })
            assert.same({ node = "w1" }, cjson.decode(sent[1][3]))
            assert.same({ user = "ann", node = "w1" }, cjson.decode(sent[2][3]))
            assert.same({ "del", "c:5" }, sent[3])
        end)

        it("counts the rooms only the other workers have members in", function()
            local tr = cl.transport
            tr.subscribe = function() return true end
            tr.unsubscribe = function() return true end
            tr.del = function() end
            cl.manager.presence_entry = function(_, client)
                return { client_id = client.id, node = "w1" }
            end
            local function only_elsewhere()
                local n = 0
                for room in pairs(cl.remote) do
                    if not cl.rooms[room] then
                        n = n + 1
                    end
                end
                return n
            end
            local function set(worker, id, room)
                cl:store_change("set", worker, cluster.member_key(id, room),
                                entry(id, "w" .. worker))
            end
            local steps = {
                { function() set(2, 4, "a") end, 1 },
                { function() cl:joined("a", { id = 5 }, 1) end, 0 },
                { function() set(2, 4, "b") end, 1 },
                { function() set(3, 9, "b") end, 1 },
                { function() cl:left("a", { id = 5 }, 0) end, 2 },
                { function() cl:joined("c", { id = 5 }, 1) end, 2 },
                { function() cl:store_change("del", 2, cluster.member_key(4, "a")) end, 1 },
                { function() cl:store_change("exit", 2) end, 1 },
                { function() cl:store_change("exit", 3) end, 0 },
            }
            for i, step in ipairs(steps) do
                step[1]()
                assert.equal(step[2], cl.elsewhere, "step " .. i)
                assert.equal(only_elsewhere(), cl.elsewhere, "step " .. i)
            end
        end)

        it("counts the other workers' users once each", function()
            cl:store_change("set", 2, cluster.client_key(1), '{"user":"ann","node":"w2"}')
            cl:store_change("set", 3, cluster.client_key(2), '{"user":"ann","node":"w3"}')
            cl:store_change("set", 3, cluster.client_key(3), '{"user":"bob","node":"w3"}')
            cl:store_change("set", 3, cluster.client_key(4), '{"node":"w3"}')
            assert.same({ ann = true, bob = true }, cl:remote_users())
            cl:store_change("del", 3, cluster.client_key(3))
            assert.same({ ann = true }, cl:remote_users())
            cl:store_change("set", 3, cluster.client_key(5), "not json")
            assert.equal(1, cl.stats.bad_messages)
        end)

        it("tells this worker's subscribers that a dead worker's clients left and "
           .. "disconnected, without sending it on", function()
            local emitted = {}
            cl.manager._host = { bus = {
                has = function() return true end,
                emit = function(_, channel, message)
                    emitted[#emitted + 1] = { channel, message, cl.receiving }
                end,
            } }
            cl:store_change("set", 2, cluster.client_key(4), '{"user":"ann","node":"w2"}')
            cl:store_change("set", 2, cluster.member_key(4, "quiet"), entry(4, "w2"))
            cl:store_change("set", 3, cluster.client_key(9), '{"node":"w3"}')
            cl:store_change("exit", 2)
            assert.same({
                { "client.left", { client_id = 4, room = "quiet", count = 0, node = "w2" }, true },
                { "client.disconnected", { client_id = 4, user = "ann", code = 1006,
                                           reason = "worker exited", node = "w2" }, true },
            }, emitted)
            assert.is_false(cl.receiving)
            assert.same({}, cl:remote_users())
        end)
    end)
end)
