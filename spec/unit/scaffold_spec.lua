-- Specs for moonwire.scaffold: `moonwire new NAME`.

local tmpdir = require "support.tmpdir"
local scaffold = require "moonwire.scaffold"
local testing = require "moonwire.testing"


describe("moonwire.scaffold", function()
    local root

    before_each(function()
        root = tmpdir.new()
    end)

    after_each(function()
        tmpdir.remove(root)
    end)

    it("creates a skeleton that loads and answers", function()
        local dir = root .. "/my app's"
        assert.is_true(scaffold.create(dir))
        for _, rel in ipairs({ "config.lua", "controllers/hello.lua", "app.lua",
                               "spec/hello_spec.lua", ".busted", "README.md" }) do
            local f = io.open(dir .. "/" .. rel, "rb")
            assert.is_truthy(f, rel)
            f:close()
        end
        local readme = assert(io.open(dir .. "/README.md")):read("*a")
        assert.matches("# my app's", readme, 1, true)
        for _, rel in ipairs({ "config.lua", "app.lua", "spec/hello_spec.lua", ".busted" }) do
            assert(loadfile(dir .. "/" .. rel))
        end

        local app = assert(testing.load_app(dir))
        assert.same({ "hello.ping", "hello.say" }, app:routes())
        local ws = app:connect()
        assert.equal("connected", ws:sent()[1].action)
        assert.same({ message = "Hello, Ada!" }, ws:request("hello", "say", { name = "Ada" }).data)
        assert.equal("INVALID_MESSAGE", ws:request("hello", "say", {}).error.code)
    end)

    it("adds a subscriber that loads, runs, and whose spec's event arrives", function()
        local dir = root .. "/app"
        assert.is_true(scaffold.create(dir))
        assert.is_true(scaffold.subscriber(dir, "jobs"))
        assert(loadfile(dir .. "/spec/jobs_subscriber_spec.lua"))
        local app = assert(testing.load_app(dir))
        local list = app:subscribers()
        assert.equal("jobs", list[1].name)
        assert.equal("jobs.*", list[1].selector)
        local ws = app:connect()
        ws.client:join("jobs")
        assert.equal(1, app:emit("jobs.created", { id = 1 }))
        assert.same({ id = 1 }, ws:events("jobs", "created")[1].data)
        app:close()
    end)

    it("never overwrites a subscriber, and refuses a bad name", function()
        assert.is_true(scaffold.subscriber(root, "jobs"))
        local ok, err = scaffold.subscriber(root, "jobs")
        assert.is_nil(ok)
        assert.matches("subscribers/jobs%.lua: already exists", err)
        ok, err = scaffold.subscriber(root, "9jobs")
        assert.is_nil(ok)
        assert.matches("invalid subscriber name '9jobs'", err)
    end)

    it("accepts an existing empty directory", function()
        assert.is_true(scaffold.create(root))
    end)

    it("refuses a non-empty directory", function()
        tmpdir.write(root, "keep.txt", "mine")
        local ok, err = scaffold.create(root)
        assert.is_nil(ok)
        assert.matches("already exists and is not empty", err)
        assert.is_nil(io.open(root .. "/config.lua"))
    end)

    it("uses the mkdir function it is given, and reports its failure", function()
        local made = {}
        local ok, err = scaffold.create(root .. "/x", { mkdir = function(path)
            made[#made + 1] = path
            return nil, path .. ": read-only"
        end })
        assert.is_nil(ok)
        assert.equal(root .. "/x: read-only", err)
        assert.same({ root .. "/x" }, made)
    end)

    it("raises on misuse", function()
        assert.error_matches(function() scaffold.create(nil) end, "directory path expected")
    end)
end)
