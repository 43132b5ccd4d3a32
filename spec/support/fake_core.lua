-- spec/support/fake_core.lua: the in-memory moonwire.core for unit specs.
-- It is moonwire.testing's core (installed into package.loaded when no real
-- core is loaded); require this before any moonwire module, and call
-- reset() in before_each so each test sees only its own sends and logs.

local testing = require "moonwire.testing"

return assert(testing.core, "a real moonwire.core is loaded; unit specs need the fake one")
