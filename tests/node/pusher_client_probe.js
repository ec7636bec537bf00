#!/usr/bin/env node
// Official pusher-js probe: proves a target speaks Pusher Channels as real apps' clients expect.
//
//   node pusher_client_probe.js WS_PORT KEY AUTH_ENDPOINT CHANNEL...
//
// Connects with pusher-js over websocket only (cluster set, wsHost 127.0.0.1, forceTLS false), authorizes
// private-/presence- channels through AUTH_ENDPOINT (the standard ajax transport, as a browser app does)
// and subscribes to every CHANNEL. Writes one JSON line per happening on stdout:
//   {"type":"connected","socket_id":...}
//   {"type":"subscribed","channel":...,"members":N|null,"me":ID|null}
//   {"type":"subscription_error","channel":...,"error":...}
//   {"type":"event","channel":...,"event":...,"data":...}
//   {"type":"member_added"|"member_removed","channel":...,"id":...,"info":...}
//   {"type":"error","error":...}
// Commands on stdin, one per line: `client CHANNEL EVENT JSON` triggers a client event; `quit` exits 0.
// A second connection as another presence member: `join USER_ID CHANNEL` (the client-typing events it
// receives come as {"type":"second_event",...}), `leave`.
// Exits 1 on a connection failure, 2 on bad usage.
'use strict';

const Pusher = require('pusher-js');
const readline = require('readline');

const [portArg, key, authEndpoint, ...channels] = process.argv.slice(2);
const port = Number.parseInt(portArg, 10);
if (!Number.isInteger(port) || !key || !authEndpoint || channels.length === 0) {
  process.stderr.write('usage: pusher_client_probe.js WS_PORT KEY AUTH_ENDPOINT CHANNEL...\n');
  process.exit(2);
}

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function client(userId) {
  return new Pusher(key, {
    cluster: 'mt1',
    wsHost: '127.0.0.1',
    wsPort: port,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    channelAuthorization: { endpoint: authEndpoint, transport: 'ajax', params: { user_id: userId } },
  });
}

const pusher = client('node-1');
pusher.connection.bind('connected', () => out({ type: 'connected', socket_id: pusher.connection.socket_id }));
pusher.connection.bind('error', (err) => out({ type: 'error', error: JSON.stringify(err) }));
pusher.connection.bind('failed', () => {
  out({ type: 'error', error: 'connection failed' });
  process.exit(1);
});

for (const name of channels) {
  const channel = pusher.subscribe(name);
  channel.bind('pusher:subscription_succeeded', (members) => {
    const isPresence = name.startsWith('presence-');
    out({ type: 'subscribed', channel: name, members: isPresence ? members.count : null,
          me: isPresence ? members.me.id : null });
  });
  channel.bind('pusher:subscription_error', (err) => out({ type: 'subscription_error', channel: name,
                                                           error: JSON.stringify(err) }));
  channel.bind('pusher:member_added', (m) => out({ type: 'member_added', channel: name, id: m.id, info: m.info }));
  channel.bind('pusher:member_removed', (m) => out({ type: 'member_removed', channel: name, id: m.id }));
  channel.bind_global((event, data) => {
    if (event.startsWith('pusher:')) return;
    out({ type: 'event', channel: name, event, data });
  });
}

let second = null;
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const [cmd, ...args] = line.trim().split(' ');
  if (cmd === 'quit') {
    pusher.disconnect();
    if (second) second.disconnect();
    process.stdout.write('', () => process.exit(0));
  } else if (cmd === 'client') {
    const [name, event, ...json] = args;
    const ok = pusher.channel(name).trigger(event, JSON.parse(json.join(' ')));
    out({ type: 'client_sent', channel: name, ok });
  } else if (cmd === 'join') {
    const [userId, name] = args;
    second = client(userId);
    const channel = second.subscribe(name);
    channel.bind('pusher:subscription_succeeded', () => out({ type: 'joined', id: userId }));
    // named binding: only those get the metadata (user_id of a client event's sender)
    channel.bind('client-typing', (data, metadata) => out({ type: 'second_event', channel: name,
      event: 'client-typing', data, user_id: (metadata && metadata.user_id) || null }));
  } else if (cmd === 'leave') {
    second.disconnect();
    second = null;
    out({ type: 'left' });
  }
});
rl.on('close', () => process.exit(0));
