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
