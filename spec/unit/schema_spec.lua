-- Specs for moonwire.schema: the types, required and optional fields,
-- bounds, enums, nested objects and arrays, errors that name the path of
-- the wrong field, and descriptions that are refused when made.

local schema = require "moonwire.schema"
local json = require "moonwire.json"


local function check(spec, value, path)
    return schema.check(schema.new(spec), value, path)
end


describe("moonwire.schema", function()
    describe("types", function()
        it("accepts each type's values and names what it got otherwise", function()
            assert.is_true(check("string", "x"))
            assert.is_true(check("number", 1.5))
            assert.is_true(check("integer", 3))
            assert.is_true(check("boolean", false))
            assert.is_true(check("table", { 1, a = 2 }))
            assert.is_true(check("object", { a = 1 }))
            assert.is_true(check("array", { 1, 2, 3 }))
            assert.is_true(check("any", function() end))

            assert.same({ nil, "value: expected string, got number" }, { check("string", 1) })
            assert.same({ nil, "value: expected number, got string" }, { check("number", "1") })
            assert.same({ nil, "value: expected integer, got 1.5" }, { check("integer", 1.5) })
            assert.same({ nil, "value: expected integer, got inf" },
                        { check("integer", math.huge) })
            assert.same({ nil, "value: expected boolean, got string" },
                        { check("boolean", "true") })
            assert.same({ nil, "value: expected object, got string" }, { check("object", "x") })
            assert.same({ nil, "value: expected array, got object" },
                        { check("array", { 1, 2, x = 3 }) })
            assert.same({ nil, "value: expected array, got object" },
                        { check("array", { [1] = 1, [3] = 3 }) })
        end)

        it("takes an empty table as an empty array and as an empty object", function()
            assert.is_true(check("array", {}))
            assert.is_true(check("object", {}))
        end)

        it("calls JSON null null, and treats it as missing", function()
            assert.same({ nil, "data[2]: expected string, got null" },
                        { check({ type = "array", items = "string" }, { "a", json.null }, "data") })
            assert.is_true(check({ type = "array", items = "string?" }, { "a", json.null }))
            assert.same({ nil, "data.x: required" },
                        { check({ type = "object", fields = { x = "string" } }, { x = json.null },
                                "data") })
            assert.is_true(check({ type = "object", fields = { x = "string?" } },
                                 { x = json.null }))
        end)
    end)

    describe("fields", function()
        local user = schema.new({
            type = "object",
            fields = {
                name = { type = "string", min_len = 1, max_len = 8 },
                age = { type = "integer", min = 0, max = 150, optional = true },
                role = { type = "string", enum = { "admin", "user" } },
                nick = "string?",
            },
        })

        it("requires the fields not marked optional", function()
            assert.is_true(user:check({ name = "ann", role = "user" }))
            assert.same({ nil, "data.name: required" }, { user:check({ role = "user" }, "data") })
            assert.same({ nil, "data: required" }, { user:check(nil, "data") })
        end)

        it("checks optional fields when they are there", function()
            assert.same({ nil, "data.age: expected integer, got string" },
                        { user:check({ name = "a", role = "user", age = "3" }, "data") })
            assert.same({ nil, "data.nick: expected string, got boolean" },
                        { user:check({ name = "a", role = "user", nick = true }, "data") })
        end)

        it("bounds string lengths and numbers", function()
            assert.same({ nil, "data.name: expected at least 1 bytes, got 0" },
                        { user:check({ name = "", role = "user" }, "data") })
            assert.same({ nil, "data.name: expected at most 8 bytes, got 9" },
                        { user:check({ name = "123456789", role = "user" }, "data") })
            assert.same({ nil, "data.age: expected a number >= 0, got -1" },
                        { user:check({ name = "a", role = "user", age = -1 }, "data") })
            assert.same({ nil, "data.age: expected a number <= 150, got 151" },
                        { user:check({ name = "a", role = "user", age = 151 }, "data") })
            assert.same({ nil, "value: expected a number >= 0, got nan" },
                        { check({ type = "number", min = 0 }, 0 / 0) })
        end)

        it("checks enums, showing the choices", function()
            assert.same({ nil, 'data.role: expected one of "admin", "user", got "root"' },
                        { user:check({ name = "a", role = "root" }, "data") })
            assert.is_true(check({ type = "number", enum = { 1, 2 } }, 2))
            assert.same({ nil, "value: expected one of 1, 2, got 3" },
                        { check({ type = "number", enum = { 1, 2 } }, 3) })
        end)

        it("reports the first wrong field in name order, every time", function()
            local s = schema.new({ type = "object", fields = { b = "string", a = "string" } })
            for _ = 1, 10 do
                assert.same({ nil, "value.a: required" }, { s:check({}) })
            end
        end)

        it("allows unknown fields unless told to reject them", function()
            assert.is_true(user:check({ name = "a", role = "user", extra = 1 }))
            local strict = schema.new({ type = "object", unknown = "reject",
                                        fields = { a = "number" } })
            assert.is_true(strict:check({ a = 1 }))
            assert.same({ nil, "data.b: unknown field" },
                        { strict:check({ a = 1, b = 2 }, "data") })
            assert.same({ nil, 'data["two words"]: unknown field' },
                        { strict:check({ a = 1, ["two words"] = 2 }, "data") })
        end)

        it("matches string patterns and runs custom checks", function()
            local code = schema.new({ type = "string", pattern = "^%u%u%d$" })
            assert.is_true(code:check("AB1"))
            assert.same({ nil, "value: does not match the pattern ^%u%u%d$" },
                        { code:check("ab1") })
            local even = schema.new({ type = "integer", check = function(v)
                return v % 2 == 0, "must be even"
            end })
            assert.is_true(even:check(4))
            assert.same({ nil, "n: must be even" }, { even:check(3, "n") })
        end)
    end)

    describe("nested input", function()
        local order = schema.new({
            type = "object",
            fields = {
                customer = { type = "object", fields = {
                    address = { type = "object",
                                fields = { zip = { type = "string", min_len = 5 } } },
                } },
                items = {
                    type = "array", min_items = 1, max_items = 3,
                    items = { type = "object", fields = {
                        sku = "string",
                        price = { type = "number", min = 0 },
                        tags = { type = "array", items = "string", optional = true },
                    } },
                },
            },
        })
        local function valid()
            return {
                customer = { address = { zip = "12345" } },
                items = { { sku = "a", price = 1 }, { sku = "b", price = 2.5, tags = { "x" } } },
            }
        end

        it("passes a valid value", function()
            assert.is_true(order:check(valid(), "data"))
        end)

        it("names the path of a wrong field inside arrays and objects", function()
            local v = valid()
            v.items[2].price = "2.50"
            assert.same({ nil, "data.items[2].price: expected number, got string" },
                        { order:check(v, "data") })
            v = valid()
            v.items[2].tags[1] = 7
            assert.same({ nil, "data.items[2].tags[1]: expected string, got number" },
                        { order:check(v, "data") })
            v = valid()
            v.customer.address.zip = "1"
            assert.same({ nil, "data.customer.address.zip: expected at least 5 bytes, got 1" },
                        { order:check(v, "data") })
            v = valid()
            v.items[1].sku = nil
            assert.same({ nil, "data.items[1].sku: required" }, { order:check(v, "data") })
        end)

        it("bounds array lengths", function()
            local v = valid()
            v.items = {}
            assert.same({ nil, "data.items: expected at least 1 items, got 0" },
                        { order:check(v, "data") })
            v.items = {}
            for i = 1, 4 do
                v.items[i] = { sku = "a", price = 1 }
            end
            assert.same({ nil, "data.items: expected at most 3 items, got 4" },
                        { order:check(v, "data") })
        end)

        it("checks JSON the server decoded, lazy objects included", function()
            local big = string.rep("x", 300) -- objects over 256 bytes decode lazily
            local text = '{"customer":{"address":{"zip":"12345","note":"' .. big .. '"}},'
                         .. '"items":[{"sku":"a","price":1},{"sku":"b","price":"2"}]}'
            local v = assert(json.decode(text))
            assert.same({ nil, "data.items[2].price: expected number, got string" },
                        { order:check(v, "data") })
            local strict = schema.new({ type = "object", unknown = "reject", fields = {
                note = "string" } })
            v = assert(json.decode('{"inner":{"note":"' .. big .. '","x":1}}'))
            assert.same({ nil, "value.x: unknown field" }, { strict:check(v.inner) })
        end)

        it("reuses a schema inside another", function()
            local money = schema.new({ type = "number", min = 0 })
            local s = schema.new({ type = "object", fields = { a = money, b = money } })
            assert.same({ nil, "value.b: expected a number >= 0, got -2" },
                        { s:check({ a = 1, b = -2 }) })
        end)
    end)

    describe("descriptions", function()
        local function refused(spec)
            local ok, err = pcall(schema.new, spec)
            assert.is_false(ok)
            return err
        end

        it("refuses an unknown type, naming where it is", function()
            assert.matches('schema.fields.items.items.fields.price: unknown type "nubmer"',
                           refused({ type = "object", fields = { items = { type = "array",
                               items = { type = "object", fields = { price = "nubmer" } } } } }),
                           1, true)
            assert.matches('schema: unknown type "str"', refused({ type = "str" }), 1, true)
            assert.matches("schema: type is missing", refused({ min_len = 1 }), 1, true)
            assert.matches("schema: expected a type name or a table, got number", refused(5),
                           1, true)
        end)

        it("refuses an option the type does not take", function()
            assert.matches('schema: unknown option "minlen" for type string (it takes max_len, '
                           .. 'min_len, pattern)', refused({ type = "string", minlen = 1 }),
                           1, true)
            assert.matches('schema: unknown option "min" for type string',
                           refused({ type = "string", min = 1 }), 1, true)
        end)

        it("refuses bad bounds, patterns, enums and flags", function()
            assert.matches("min_len 3 is greater than max_len 2",
                           refused({ type = "string", min_len = 3, max_len = 2 }), 1, true)
            assert.matches("min_len must be a non-negative integer, got -1",
                           refused({ type = "string", min_len = -1 }), 1, true)
            assert.matches("min 2 is greater than max 1",
                           refused({ type = "number", min = 2, max = 1 }), 1, true)
            assert.matches("max must be a number", refused({ type = "number", max = "9" }), 1, true)
            assert.matches('invalid pattern "[a"', refused({ type = "string", pattern = "[a" }),
                           1, true)
            assert.matches("enum must be a non-empty list", refused({ type = "any", enum = {} }),
                           1, true)
            assert.matches("optional must be a boolean",
                           refused({ type = "any", optional = "yes" }), 1, true)
            assert.matches('unknown must be "allow" or "reject"',
                           refused({ type = "object", unknown = "deny" }), 1, true)
            assert.matches("schema: field names must be strings, got 1",
                           refused({ type = "object", fields = { "string" } }), 1, true)
            assert.matches("check must be a function", refused({ type = "any", check = true }),
                           1, true)
        end)

        it("blames the line that made the schema", function()
            local err = refused({ type = "nope" })
            assert.is_nil(err:match("schema%.lua"))
            local ok, located = pcall(function()
                local s = schema.new({ type = "nope" })
                return s
            end)
            assert.is_false(ok)
            assert.matches("schema_spec.lua:%d+: schema: unknown type", located)
        end)

        it("compiles a description passed to check", function()
            assert.same({ nil, "x: expected string, got number" },
                        { schema.check("string", 1, "x") })
            assert.is_true(schema.is_schema(schema.new("any")))
            assert.is_false(schema.is_schema({ type = "any" }))
        end)
    end)
end)
