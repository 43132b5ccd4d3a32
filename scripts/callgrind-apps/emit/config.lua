-- The app of `scripts/callgrind-echo --app scripts/callgrind-apps/emit`:
-- what an emit nobody subscribes to costs (docs/performance.md, "Events
-- through the bus"). The hub's settings: any path, no welcome, no system
-- controller.
return {
    port = 8080,
    path = "*",
    welcome = false,
    system_controller = false,
}
