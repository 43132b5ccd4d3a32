-- Specs for moonwire.uuid: version 4 UUIDs from /dev/urandom.

local uuid = require "moonwire.uuid"


local V4 = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"


describe("moonwire.uuid", function()
    it("makes RFC 4122 version 4 UUIDs", function()
        for _ = 1, 100 do
            assert.matches(V4, uuid.v4())
        end
    end)

    it("never repeats one, across many refills of its pool", function()
        local seen = {}
        for _ = 1, 2000 do
            local id = uuid.v4()
            assert.is_nil(seen[id])
            seen[id] = true
        end
    end)

    it("uses every hex digit in the random positions", function()
        local digits = {}
        for _ = 1, 200 do
            for d in uuid.v4():gsub("-", ""):gmatch(".") do
                digits[d] = true
            end
        end
        for d in ("0123456789abcdef"):gmatch(".") do
            assert.is_true(digits[d])
        end
    end)
end)
