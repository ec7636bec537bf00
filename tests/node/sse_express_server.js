#!/usr/bin/env node
// An SSE server written as a user of the blueprint would write it (Express 5): what `rtbench check sse
// --host` meets in the wild, rather than rtbench's own reference target.
//
//   node sse_express_server.js [PORT]      (0 or absent = any free port)
//
// GET  /api/events[?channel=NAME]   text/event-stream: "retry:", then every event published on the
//                                    channel with an "id:"; comment keep-alives; Last-Event-ID resumes
//                                    from a bounded buffer per channel
// POST /api/publish                 {"channel": str|null, "event": str = "message", "data": any}
//                                    -> {"id": ..., "recipients": N}  (the reference target's contract)
// GET  /healthz                     {"ok": true, "pid": ..., "connections": N}
//
// Prints "rtbench-target node-sse-express listening http://127.0.0.1:PORT" once listening; logs one line
// per resumed stream ("resume channel=... last-event-id=... replayed=N"); exits 0 on SIGTERM/SIGINT.
'use strict';

const express = require('express');

const port = Number.parseInt(process.argv[2] || '0', 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`node-sse-express: error: bad port ${JSON.stringify(process.argv[2])}\n`);
  process.exit(2);
}

const RETRY_MS = 1000;
const KEEPALIVE_MS = 15000;
const BUFFER_EVENTS = 1000;
const DEFAULT_CHANNEL = 'default';

// Ids are "<boot time in µs>-<n>": an id from an earlier run of this server is never mistaken for one
// of this run, so a client resuming across a restart gets everything buffered since (all of it is news).
const boot = String(Math.round((performance.timeOrigin + performance.now()) * 1000));
let counter = 0;

const streams = new Map(); // channel -> Set of open responses
const buffers = new Map(); // channel -> [{ seq, frame }], oldest first, at most BUFFER_EVENTS

function frameOf(id, event, data) {
  const lines = [`id: ${id}`];
  if (event !== 'message') lines.push(`event: ${event}`);
  for (const line of data.split(/\r\n|\r|\n/)) lines.push(`data: ${line}`);
  return `${lines.join('\n')}\n\n`;
}

// What a client resuming from lastId missed: after that event if it is one of this run's, else everything held.
function missed(channel, lastId) {
  const buffer = buffers.get(channel) || [];
  const [epoch, seq] = lastId.split('-');
  const after = epoch === boot && /^\d+$/.test(seq || '') ? Number(seq) : 0;
  return buffer.filter((entry) => entry.seq > after);
}

const app = express();

app.get('/api/events', (req, res) => {
  const channel = req.query.channel || DEFAULT_CHANNEL;
  if (typeof channel !== 'string') {
    res.status(400).json({ error: 'channel must be one string' });
    return;
  }
  const lastId = req.get('Last-Event-ID') || '';
  res.set({
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-cache',
    'X-Accel-Buffering': 'no',
    'Access-Control-Allow-Origin': '*',
  });
  res.flushHeaders();
  res.write(`retry: ${RETRY_MS}\n: connected\n\n`);
  // Replay and register in one tick: no publish can fall between them.
  if (lastId) {
    const replay = missed(channel, lastId);
    for (const entry of replay) res.write(entry.frame);
    console.log(`resume channel=${channel} last-event-id=${lastId} replayed=${replay.length}`);
  }
  if (!streams.has(channel)) streams.set(channel, new Set());
  streams.get(channel).add(res);
  const keepalive = setInterval(() => res.write(': keep-alive\n\n'), KEEPALIVE_MS);
  res.on('close', () => {
    clearInterval(keepalive);
    const group = streams.get(channel);
    group.delete(res);
    if (group.size === 0) streams.delete(channel);
  });
});

app.post('/api/publish', express.json({ limit: '1mb' }), (req, res) => {
  const body = req.body;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    res.status(400).json({ error: 'body must be a JSON object' });
    return;
  }
  const channel = body.channel ?? DEFAULT_CHANNEL;
  const event = body.event ?? 'message';
  if (typeof channel !== 'string' || channel === '') {
    res.status(400).json({ error: 'channel must be a non-empty string or null' });
    return;
  }
  if (typeof event !== 'string' || event === '' || /[\r\n]/.test(event)) {
    res.status(400).json({ error: 'event must be a non-empty string without line breaks' });
    return;
  }
  if (!('data' in body)) {
    res.status(400).json({ error: 'data is missing' });
    return;
  }
  const data = typeof body.data === 'string' ? body.data : JSON.stringify(body.data);
  counter += 1;
  const id = `${boot}-${counter}`;
  const frame = frameOf(id, event, data);
  if (!buffers.has(channel)) buffers.set(channel, []);
  const buffer = buffers.get(channel);
  buffer.push({ seq: counter, frame });
  if (buffer.length > BUFFER_EVENTS) buffer.shift();
  const recipients = streams.get(channel) || new Set();
  for (const stream of recipients) stream.write(frame);
  res.json({ id, recipients: recipients.size });
});

app.get('/healthz', (req, res) => {
  let connections = 0;
  for (const group of streams.values()) connections += group.size;
  res.json({ ok: true, target: 'node-sse-express', pid: process.pid, connections });
});

// Bad JSON (400) or a body over the limit (413) from express.json, as JSON like every other answer.
app.use((err, req, res, next) => {
  res.status(err.status || 500).json({ error: err.message });
});

const server = app.listen(port, '127.0.0.1', (err) => {
  if (err) {
    process.stderr.write(`node-sse-express: error: ${err.message}\n`);
    process.exit(2);
  }
  process.stdout.write(`rtbench-target node-sse-express listening http://127.0.0.1:${server.address().port}\n`);
});

function shutdown() {
  for (const group of streams.values()) for (const stream of group) stream.end(); // clients reconnect
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
