// scripts/peers/socketio/server.js - the Socket.IO peer of the cross-node
// fan-out rows (scripts/bench xnode1, xnode2; issue 12): one node of a
// Socket.IO 4 cluster whose nodes meet through @socket.io/redis-adapter.
//
// The same room protocol as the hub, as Socket.IO events:
//   subscribe(room)        joins the room, answers subscribed(room)
//   publish({room, data})  every member of the room, on every node, gets
//                          message({room, data}) (io.to(room).emit: the
//                          adapter publishes it once to Redis; each node
//                          sends it to its own members)
// Usage: node server.js --port P --redis redis://127.0.0.1:6379/0
'use strict';
const http = require('http');
const { Server } = require('socket.io');
const { createAdapter } = require('@socket.io/redis-adapter');
const { createClient } = require('redis');

function arg(name, def) {
  const i = process.argv.indexOf('--' + name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}
const port = Number(arg('port', '3000'));
const redisUrl = arg('redis', 'redis://127.0.0.1:6379/0');

async function main() {
  const pub = createClient({ url: redisUrl });
  const sub = pub.duplicate();
  pub.on('error', (e) => console.error('redis pub:', e.message));
  sub.on('error', (e) => console.error('redis sub:', e.message));
  await Promise.all([pub.connect(), sub.connect()]);
  const httpServer = http.createServer();
  const io = new Server(httpServer, {
    adapter: createAdapter(pub, sub),
    transports: ['websocket'],   // the bench's clients speak WebSocket only
    maxHttpBufferSize: 1 << 20,  // 1 MiB, as the hub peers
    serveClient: false,
  });
  io.on('connection', (socket) => {
    socket.on('subscribe', (room) => {
      socket.join(String(room));
      socket.emit('subscribed', String(room));
    });
    socket.on('publish', (msg) => {
      if (msg && typeof msg.room === 'string')
        io.to(msg.room).emit('message', { room: msg.room, data: msg.data });
    });
  });
  httpServer.listen(port, '127.0.0.1');
  const stop = () => { io.close(); pub.quit().catch(() => {}); sub.quit().catch(() => {}); process.exit(0); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
main().catch((e) => { console.error('socketio peer:', e.message); process.exit(1); });
