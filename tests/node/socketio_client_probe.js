#!/usr/bin/env node
// Official socket.io-client probe: proves a target speaks Socket.IO as real apps' clients expect.
//
//   node socketio_client_probe.js URL CHANNEL COUNT [TIMEOUT_MS]
//
// Connects over websocket only, emits `subscribe` CHANNEL and awaits the ack, then writes one line
// "subscribed ACK_AS_JSON" on stderr (so callers know when to publish); stdout carries only the data
// of each `message` event, one JSON line each.
// Exits 0 after COUNT messages, 1 on timeout (default 10000 ms) or connection error, 2 on bad usage.
'use strict';

const { io } = require('socket.io-client');

const [url, channel, countArg, timeoutArg] = process.argv.slice(2);
const count = Number.parseInt(countArg, 10);
const timeoutMs = Number.parseInt(timeoutArg || '10000', 10);
if (!url || !channel || !Number.isInteger(count) || count < 0 || !Number.isInteger(timeoutMs)) {
  process.stderr.write('usage: socketio_client_probe.js URL CHANNEL COUNT [TIMEOUT_MS]\n');
  process.exit(2);
}

const socket = io(url, { transports: ['websocket'], reconnection: false, timeout: timeoutMs });
let received = 0;

function finish(code, reason) {
  if (reason) process.stderr.write(`socketio_client_probe: ${reason}\n`);
  socket.close();
  process.exitCode = code;
  // Let stdout drain before leaving.
  process.stdout.write('', () => process.exit(code));
}

const timer = setTimeout(() => finish(1, `timeout after ${timeoutMs} ms (${received}/${count} messages)`), timeoutMs);

socket.on('connect_error', (err) => {
  clearTimeout(timer);
  finish(1, `connect error: ${err.message}`);
});

socket.on('message', (data) => {
  received += 1;
  process.stdout.write(`${JSON.stringify(data)}\n`);
  if (received >= count) {
    clearTimeout(timer);
    finish(0);
  }
});

socket.on('connect', async () => {
  try {
    const ack = await socket.timeout(timeoutMs).emitWithAck('subscribe', channel);
    process.stderr.write(`subscribed ${JSON.stringify(ack)}\n`);
    if (count === 0) {
      clearTimeout(timer);
      finish(0);
    }
  } catch (err) {
    clearTimeout(timer);
    finish(1, `subscribe failed: ${err.message}`);
  }
});
