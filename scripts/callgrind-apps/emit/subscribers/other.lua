-- A subscriber on another channel, so that the app's bus is not empty.
-- EMIT_COST_GLOB=1 makes it a glob (match = "jobs.*") instead of an exact
-- channel: then every emit runs the glob against the channel (moonwire.bus
-- matching()) before finding nobody.
local glob = os.getenv("EMIT_COST_GLOB") == "1"

return {
    name = "other",
    channel = not glob and "other" or nil,
    match = glob and "jobs.*" or nil,
    handle = function(ctx)
        error("never called: nothing emits on " .. ctx.channel)
    end,
}
