#!/usr/bin/env node
// Official ably-js probe: proves a target speaks the Ably realtime protocol as ably-js 2.x expects.
//
//   node ably_client_probe.js PORT KEY FORMAT [TIMEOUT_MS]      FORMAT: json | msgpack
//
// A subscriber attaches channel "probe" and subscribes to event "ev"; a publisher connected with
// echoMessages:false attaches and subscribes too, then publishes three messages, awaiting each ACK.
// A third client with a wrong secret must reach the failed state. Prints one JSON line on stdout:
// {received, ids, connectionIds, publisherConnectionId, echoReceived, badKey} and exits 0;
// exits 1 on timeout or an unexpected error, 2 on bad usage.
'use strict';

const Ably = require('ably');

const [portArg, key, format, timeoutArg] = process.argv.slice(2);
const port = Number.parseInt(portArg, 10);
const timeoutMs = Number.parseInt(timeoutArg || '15000', 10);
if (!Number.isInteger(port) || !key || !['json', 'msgpack'].includes(format)) {
  process.stderr.write('usage: ably_client_probe.js PORT KEY json|msgpack [TIMEOUT_MS]\n');
  process.exit(2);
}

function client(extra) {
  return new Ably.Realtime({
    key, endpoint: '127.0.0.1', port, tls: false, fallbackHosts: [], disableConnectivityCheck: true,
    useBinaryProtocol: format === 'msgpack', logLevel: 0, ...extra,
  });
}

const clients = [];
function finish(code, line) {
  if (line) process.stdout.write(line + '\n');
  for (const c of clients) { try { c.close(); } catch (e) { /* closing anyway */ } }
  process.stdout.write('', () => process.exit(code));
}
setTimeout(() => { process.stderr.write(`ably_client_probe: timeout after ${timeoutMs} ms\n`); finish(1); }, timeoutMs);

async function main() {
  const sub = client({});
  const pub = client({ echoMessages: false });
  clients.push(sub, pub);
  const got = [];
  let echoReceived = 0;
  let gotAll;
  const allArrived = new Promise((resolve) => { gotAll = resolve; });
  await sub.channels.get('probe').subscribe('ev', (msg) => {
    got.push(msg);
    if (got.length === 3) gotAll();
  });
  await pub.channels.get('probe').subscribe('ev', () => { echoReceived += 1; });
  for (let i = 0; i < 3; i += 1) {
    await pub.channels.get('probe').publish('ev', `hello-${i}`);  // resolves on ACK
  }
  await allArrived;

  const bad = client({ key: key.split(':')[0] + ':wrong-secret' });
  clients.push(bad);
  const failed = await new Promise((resolve) => {
    bad.connection.once('failed', (change) => resolve(change.reason));
  });
  finish(0, JSON.stringify({
    received: got.map((m) => m.data),
    ids: got.map((m) => m.id),
    connectionIds: got.map((m) => m.connectionId),
    timestamps: got.map((m) => m.timestamp),
    publisherConnectionId: pub.connection.id,
    echoReceived,
    badKey: { state: bad.connection.state, code: failed && failed.code, statusCode: failed && failed.statusCode },
  }));
}

main().catch((err) => {
  process.stderr.write(`ably_client_probe: ${err && err.stack ? err.stack : err}\n`);
  finish(1);
});
