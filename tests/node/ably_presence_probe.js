#!/usr/bin/env node
// Official ably-js presence probe: a member as a browser app's ably-js makes one.
//
//   node ably_presence_probe.js PORT KEY CLIENT_ID CHANNEL
//
// Connects with clientId CLIENT_ID (msgpack, ably-js's default), subscribes to CHANNEL's presence and
// enters it with data {"via":"js"}. Writes one JSON line per happening on stdout:
//   {"type":"entered","members":{clientId: data}}         (presence.get() once entered, itself included)
//   {"type":"enter"|"leave","clientId":...,"data":...}    (other members' presence events)
// Commands on stdin, one per line: `leave` leaves presence ({"type":"left"}), `quit` exits 0.
// Exits 1 on a failure, 2 on bad usage.
'use strict';

const Ably = require('ably');
const readline = require('readline');

const [portArg, key, clientId, channelName] = process.argv.slice(2);
const port = Number.parseInt(portArg, 10);
if (!Number.isInteger(port) || !key || !clientId || !channelName) {
  process.stderr.write('usage: ably_presence_probe.js PORT KEY CLIENT_ID CHANNEL\n');
  process.exit(2);
}

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

const realtime = new Ably.Realtime({
  key, clientId, endpoint: '127.0.0.1', port, tls: false, fallbackHosts: [], disableConnectivityCheck: true,
  logLevel: 0,
});
const channel = realtime.channels.get(channelName);

async function main() {
  await channel.presence.subscribe((m) => {
    if (m.clientId === clientId) return;
    if (m.action === 'enter' || m.action === 'leave') out({ type: m.action, clientId: m.clientId, data: m.data });
  });
  await channel.presence.enter({ via: 'js' });
  const members = {};
  for (const m of await channel.presence.get()) members[m.clientId] = m.data;
  out({ type: 'entered', members });
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  const cmd = line.trim();
  if (cmd === 'leave') {
    await channel.presence.leave();
    out({ type: 'left' });
  } else if (cmd === 'quit') {
    realtime.close();
    process.stdout.write('', () => process.exit(0));
  }
});
rl.on('close', () => process.exit(0));
main().catch((err) => {
  process.stderr.write(`ably_presence_probe: ${err}\n`);
  process.exit(1);
});
