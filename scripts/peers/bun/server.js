// Benchmark peer: Bun's built-in WebSocket server (uWebSockets underneath),
// speaking the tiny hub protocol of docs/benchmarks.md:
//   {"type":"echo","data":D}           -> {"type":"echo","data":D}
//   {"type":"subscribe","room":R}      -> {"type":"subscribed","room":R}
//   {"type":"publish","room":R,"data":D} -> every member of R gets
//                                         {"type":"message","room":R,"data":D}
//   {"type":"incr","data":D}           -> {"type":"incr","data":D,"n":N}
//                                         after one Redis INCR of hub:incr
// Fan-out uses Bun's native pub/sub (ws.subscribe / server.publish), its
// fastest path: the message is encoded once and framed once by uWS.
// incr uses Bun's built-in Redis client (RedisClient, connected once at
// start-up when --redis URL or REDIS_URL is given, shared by every client;
// it pipelines the commands of all clients on its one connection).
// Usage: bun server.js [--port P] [--redis URL]   (or PORT=P, REDIS_URL=URL;
// port 0 picks a free port)
"use strict";

import { RedisClient } from "bun";

function arg(name, env, fallback) {
  const i = process.argv.indexOf(name);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  if (process.env[env] !== undefined) return process.env[env];
  return fallback;
}

function argPort() {
  return Number(arg("--port", "PORT", "8080"));
}

const INCR_KEY = "hub:incr";
const redisUrl = arg("--redis", "REDIS_URL", "");
let redis = null;
if (redisUrl !== "") {
  redis = new RedisClient(redisUrl);
  try {
    await redis.connect();
  } catch (e) {
    console.error(`cannot connect to Redis at ${redisUrl}: ${e.message}`);
    process.exit(1);
  }
}

const server = Bun.serve({
  hostname: "127.0.0.1",
  port: argPort(),
  fetch(req, srv) {
    if (srv.upgrade(req)) return undefined;
    return new Response("websocket only\n", { status: 426 });
  },
  websocket: {
    idleTimeout: 0,          // no idle disconnects during the idle-connections run
    sendPings: false,
    perMessageDeflate: false,
    maxPayloadLength: 1 << 20,
    message(ws, raw) {
      let msg;
      try {
        msg = JSON.parse(typeof raw === "string" ? raw : raw.toString());
      } catch (e) {
        ws.send(JSON.stringify({ type: "error", error: "invalid json" }));
        return;
      }
      if (msg === null || typeof msg !== "object") {
        ws.send(JSON.stringify({ type: "error", error: "invalid message" }));
        return;
      }
      switch (msg.type) {
        case "echo":
          ws.send(JSON.stringify({ type: "echo", data: msg.data }));
          break;
        case "incr": {
          if (redis === null) {
            ws.send(JSON.stringify({ type: "error", error: "no redis (--redis URL)" }));
            return;
          }
          const data = msg.data;
          redis.incr(INCR_KEY).then(
            (n) => ws.send(JSON.stringify({ type: "incr", data, n })),
            (e) => ws.send(JSON.stringify({ type: "error", error: "redis: " + e.message })));
          break;
        }
        case "subscribe":
          if (typeof msg.room !== "string" || msg.room === "") {
            ws.send(JSON.stringify({ type: "error", error: "invalid room" }));
            return;
          }
          ws.subscribe(msg.room);
          ws.send(JSON.stringify({ type: "subscribed", room: msg.room }));
          break;
        case "publish":
          if (typeof msg.room !== "string" || msg.room === "") {
            ws.send(JSON.stringify({ type: "error", error: "invalid room" }));
            return;
          }
          server.publish(msg.room,
            JSON.stringify({ type: "message", room: msg.room, data: msg.data }));
          break;
        default:
          ws.send(JSON.stringify({ type: "error", error: "unknown type" }));
      }
    },
  },
});

console.log(`listening on ws://127.0.0.1:${server.port}/ (bun ${Bun.version})` +
  (redis !== null ? `, redis ${redisUrl}` : ""));

function stop() {
  server.stop(true);
  if (redis !== null) redis.close();
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
