#!/usr/bin/python3
"""moonwire.redis in the real binary, against a real redis-server.

The test starts redis-server on a free port and an app (written to a temp
dir) whose handlers call Redis and whose on_start subscribes to a channel
and broadcasts what arrives. Real WebSocket clients drive it: calls wait
in their handlers and answer, /metrics carries the moonwire_redis_*
families, a backend's PUBLISH (redis-cli) reaches every client. Redis is
then killed: calls answer at once with "not connected" and /metrics says
down; restarted on the same port, calls and the subscription work again.
Last, SIGTERM with Redis connections open: the server exits cleanly (no
sanitizer report under ASan).
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

S = H.Suite("moonwire redis")

KV = """local moonwire = require "moonwire"
local red = assert(moonwire.redis.connect({ url = "URL", timeout = 2000 }))

local M = {}

function M.incr(client, data)
    local n, err = red:incr(data.key)
    if not n then
        moonwire.fail("REDIS", err)
    end
    return { n = n }
end

function M.pipe(client, data)
    local res, err = red:pipeline(function(p)
        p:set(data.key, "v")
        p:get(data.key)
        p:get("missing")
    end)
    if not res then
        moonwire.fail("REDIS", err)
    end
    return { n = res.n, set = res[1], get = res[2], missing = res[3] == moonwire.redis.null }
end

return M
"""

APP = """local moonwire = require "moonwire"
local M = {}

function M.on_start(app)
    local red = assert(moonwire.redis.connect("URL"))
    assert(red:subscribe("events", function(message, channel)
        -- every worker has this subscription: each sends to its own clients
        moonwire.broadcast({ type = "event", data = { channel = channel, text = message } },
                           { local_only = true })
    end))
end

return M
"""

CONFIG = """return { welcome = false }
"""


Redis = H.RedisServer


def scrape(srv):
    status, _, body = H.http_request(srv.connect_host, srv.port, "GET", "/metrics")
    eq(status, 200, "/metrics status")
    samples = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            samples[key] = float(value)
    return samples


@S.case("calls, pipelines, pub/sub and /metrics; Redis killed and back; clean shutdown",
        timeout=120)
def test_redis(ctx):
    redis = Redis(ctx)
    redis.start()
    try:
        url = "redis://127.0.0.1:%d" % redis.port
        app = ctx.tmpdir("moonwire-redis-app-")
        H.write_file(os.path.join(app, "config.lua"), CONFIG)
        H.write_file(os.path.join(app, "app.lua"), APP.replace("URL", url))
        H.write_file(os.path.join(app, "controllers", "kv.lua"), KV.replace("URL", url))
        # one process: the case waits for exactly one subscriber on Redis
        # and counts the server's commands (a connection per worker)
        srv = ctx.start("redis", app, env={"MOONWIRE_WORKERS": "1"})
        name = 'name="%s/0"' % url

        a = ctx.track(H.JsonClient(srv))
        b = ctx.track(H.JsonClient(srv))
        for i in range(1, 21):
            eq(a.request("kv", "incr", {"key": "hits"}).get("data"), {"n": i}, "INCR %d" % i)
        eq(redis.cli("GET", "hits"), "20", "the value in Redis")
        eq(b.request("kv", "pipe", {"key": "p"}).get("data"),
           {"n": 3, "set": "OK", "get": "v", "missing": True}, "pipeline")

        m = scrape(srv)
        eq(m.get("moonwire_redis_up{%s}" % name), 1.0, "redis up")
        check(m.get("moonwire_redis_commands_total{%s}" % name, 0) >= 23,
              "commands counted: %r" % m.get("moonwire_redis_commands_total{%s}" % name))
        eq(m.get('moonwire_redis_command_duration_seconds_count{%s}' % name),
           m.get('moonwire_redis_command_duration_seconds_bucket{%s,le="+Inf"}' % name),
           "histogram count is its +Inf bucket")

        # a backend publishes; on_start's subscription broadcasts to everyone
        H.poll(lambda: redis.cli("PUBSUB", "NUMSUB", "events").split() == ["events", "1"],
               timeout=10, what="subscribed")
        eq(redis.cli("PUBLISH", "events", "hello"), "1", "one subscriber")
        for c in (a, b):
            eq(c.recv(), {"type": "event", "data": {"channel": "events", "text": "hello"}},
               "event")

        # Redis dies: calls answer at once (no hang), /metrics says down
        redis.kill()
        H.poll(lambda: scrape(srv).get("moonwire_redis_up{%s}" % name) == 0.0, timeout=10,
               what="redis_up 0")
        t0 = time.monotonic()
        r = a.request("kv", "incr", {"key": "hits"})
        eq(r.get("error"), {"code": "REDIS", "message": "not connected"}, "fail fast")
        check(time.monotonic() - t0 < 1.5, "answered without waiting for Redis")
        check(srv.wait_log("connection lost", timeout=5), "the outage is logged")

        # back on the same port: the connection and the subscription return
        redis.start()
        H.poll(lambda: scrape(srv).get("moonwire_redis_up{%s}" % name) == 1.0, timeout=15,
               what="redis_up 1 again")
        eq(a.request("kv", "incr", {"key": "hits"}).get("data"), {"n": 1}, "INCR after restart")
        H.poll(lambda: redis.cli("PUBSUB", "NUMSUB", "events").split() == ["events", "1"],
               timeout=15, what="subscribed again")
        redis.cli("PUBLISH", "events", "again")
        eq(a.recv().get("data"), {"channel": "events", "text": "again"}, "event after restart")
        check(scrape(srv).get("moonwire_redis_reconnects_total{%s}" % name, 0) >= 1,
              "reconnect counted")

        # SIGTERM with the Redis connections open
        ctx.close_clients()
        eq(srv.stop(signal.SIGTERM, timeout=15), 0, "exit status after SIGTERM")
        eq(ctx.sanitizer_reports(), [], "sanitizer reports")
    finally:
        redis.kill()


if __name__ == "__main__":
    H.main(S)
