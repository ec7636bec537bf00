#!/usr/bin/env node
// Plain Node socket.io 4 broadcast server: the baseline the Python reference target is compared with.
//
//   node socketio_broadcast_server.js [PORT]      (0 or absent = any free port)
//
// Prints "rtbench-target node-socketio listening http://127.0.0.1:PORT" once listening and exits 0
// on SIGTERM/SIGINT.
'use strict';

const http = require('http');
const { Server } = require('socket.io');

const port = Number.parseInt(process.argv[2] || '0', 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`node-socketio: error: bad port ${JSON.stringify(process.argv[2])}\n`);
  process.exit(2);
}

const httpServer = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ok: true, target: 'node-socketio', pid: process.pid, connections: io.engine.clientsCount }));
    return;
  }
  res.writeHead(404).end();
});
const io = new Server(httpServer, { cors: { origin: '*' } });

io.on('connection', (socket) => {
  socket.on('message', (d) => io.emit('message', d));
});

httpServer.on('error', (err) => {
  process.stderr.write(`node-socketio: error: ${err.message}\n`);
  process.exit(2);
});

httpServer.listen(port, '127.0.0.1', () => {
  const { port: bound } = httpServer.address();
  process.stdout.write(`rtbench-target node-socketio listening http://127.0.0.1:${bound}\n`);
});

function shutdown() {
  io.close(() => process.exit(0));
  httpServer.closeAllConnections(); // idle keep-alive HTTP connections would hold close() open
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
