// Benchmark peer: Bun's built-in WebSocket server (uWebSockets underneath),
// speaking the tiny hub protocol of docs/benchmarks.md:
//   {"type":"echo","data":D}           -> {"type":"echo","data":D}
//   {"type":"subscribe","room":R}      -> {"type":"subscribed","room":R}
//   {"type":"publish","room":R,"data":D} -> every member of R gets
//                                         {"type":"message","room":R,"data":D}
// Fan-out uses Bun's native pub/sub (ws.subscribe / server.publish), its
// fastest path: the message is encoded once and framed once by uWS.
// Usage: bun server.js [--port P]   (or PORT=P; 0 picks a free port)
"use strict";

function argPort() {
  const i = process.argv.indexOf("--port");
  if (i >= 0 && i + 1 < process.argv.length) return Number(process.argv[i + 1]);
  if (process.env.PORT !== undefined) return Number(process.env.PORT);
  return 8080;
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

console.log(`listening on ws://127.0.0.1:${server.port}/ (bun ${Bun.version})`);

function stop() {
  server.stop(true);
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
