// Benchmark peer: Node.js + the `ws` library, speaking the tiny hub protocol:
//   {"type":"echo","data":D}           -> {"type":"echo","data":D}
//   {"type":"subscribe","room":R}      -> {"type":"subscribed","room":R}
//   {"type":"publish","room":R,"data":D} -> every member of R gets
//                                         {"type":"message","room":R,"data":D}
// Rooms are a Map<string, Set<WebSocket>>; a publish is encoded once and the
// same string is sent to every member.
// Usage: node server.js [--port P]   (or PORT=P; 0 picks a free port)
"use strict";
const path = require("path");
const { WebSocketServer } = require(path.join(__dirname, "node_modules", "ws"));
const wsVersion = require(path.join(__dirname, "node_modules", "ws", "package.json")).version;

function argPort() {
  const i = process.argv.indexOf("--port");
  if (i >= 0 && i + 1 < process.argv.length) return Number(process.argv[i + 1]);
  if (process.env.PORT !== undefined) return Number(process.env.PORT);
  return 8080;
}

const rooms = new Map(); // room -> Set<WebSocket>

const wss = new WebSocketServer({
  host: "127.0.0.1",
  port: argPort(),
  perMessageDeflate: false,
  clientTracking: false,
  maxPayload: 1 << 20,
});

function leaveAll(ws) {
  if (!ws.rooms) return;
  for (const room of ws.rooms) {
    const set = rooms.get(room);
    if (set) {
      set.delete(ws);
      if (set.size === 0) rooms.delete(room);
    }
  }
  ws.rooms = null;
}

wss.on("connection", (ws) => {
  ws.rooms = null;
  ws.on("error", () => {});
  ws.on("close", () => leaveAll(ws));
  ws.on("message", (raw, isBinary) => {
    let msg;
    try {
      msg = JSON.parse(raw.toString());
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
      case "subscribe": {
        const room = msg.room;
        if (typeof room !== "string" || room === "") {
          ws.send(JSON.stringify({ type: "error", error: "invalid room" }));
          return;
        }
        let set = rooms.get(room);
        if (!set) { set = new Set(); rooms.set(room, set); }
        set.add(ws);
        if (!ws.rooms) ws.rooms = new Set();
        ws.rooms.add(room);
        ws.send(JSON.stringify({ type: "subscribed", room }));
        break;
      }
      case "publish": {
        const room = msg.room;
        if (typeof room !== "string" || room === "") {
          ws.send(JSON.stringify({ type: "error", error: "invalid room" }));
          return;
        }
        const set = rooms.get(room);
        if (!set) return;
        const out = JSON.stringify({ type: "message", room, data: msg.data });
        for (const member of set) {
          if (member.readyState === 1) member.send(out);
        }
        break;
      }
      default:
        ws.send(JSON.stringify({ type: "error", error: "unknown type" }));
    }
  });
});

wss.on("listening", () => {
  console.log(`listening on ws://127.0.0.1:${wss.address().port}/ (node ${process.version}, ws ${wsVersion})`);
});

function stop() {
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
