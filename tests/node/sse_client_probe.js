#!/usr/bin/env node
// Official `eventsource` client probe: proves an SSE server works with the EventSource real apps use,
// reconnection and Last-Event-ID included (the client resends the last id it saw by itself).
//
//   node sse_client_probe.js URL COUNT [TIMEOUT_MS]
//
// Writes "open" on stderr each time the stream (re)opens, so callers know when to publish; stdout
// carries one JSON line {"id", "data"} per `message` event.
// Exits 0 after COUNT messages, 1 on timeout (default 10000 ms), 2 on bad usage.
'use strict';

const { EventSource } = require('eventsource');

const [url, countArg, timeoutArg] = process.argv.slice(2);
const count = Number.parseInt(countArg, 10);
const timeoutMs = Number.parseInt(timeoutArg || '10000', 10);
if (!url || !Number.isInteger(count) || count < 1 || !Number.isInteger(timeoutMs)) {
  process.stderr.write('usage: sse_client_probe.js URL COUNT [TIMEOUT_MS]\n');
  process.exit(2);
}

const es = new EventSource(url);
let received = 0;

function finish(code, reason) {
  if (reason) process.stderr.write(`sse_client_probe: ${reason}\n`);
  es.close();
  process.stdout.write('', () => process.exit(code)); // let stdout drain before leaving
}

const timer = setTimeout(() => finish(1, `timeout after ${timeoutMs} ms (${received}/${count} messages)`), timeoutMs);

es.addEventListener('open', () => process.stderr.write('open\n'));
es.addEventListener('error', (event) => process.stderr.write(`error ${event.message || ''}\n`));
es.addEventListener('message', (event) => {
  received += 1;
  process.stdout.write(`${JSON.stringify({ id: event.lastEventId, data: event.data })}\n`);
  if (received >= count) {
    clearTimeout(timer);
    finish(0);
  }
});
