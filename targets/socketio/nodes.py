"""Several Socket.IO target nodes sharing one Redis (``--redis URL``): python-socketio's Redis manager,
feeding the target's fast fan-out.

A publish on any node is delivered to that node's clients at once (the fast path, as without Redis),
then announced on the Redis channel CHANNEL in the message shape python-socketio's AsyncPubSubManager
uses, so the other nodes' managers, which read that channel, deliver it to their clients, again through
their fast path. A node's announcements leave in its publish order (one sender, pipelined), so every
node sees one node's publishes in the order that node made them.

Redis away: the node goes on serving its own clients; announcements are dropped (counted in /healthz
``redis.dropped``) while its subscription is down, since no fellow node could receive them anyway, and
resume once it is back. Announcements never wait on Redis: a publish answers at once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import socketio
from socketio.packet import Packet

from targets.redis_link import RedisLink, RedisUnavailable

__all__ = ["CHANNEL", "MAX_PENDING", "RedisNodes"]

log = logging.getLogger("targets.socketio")

CHANNEL = "rtbench:socketio"
"""The Redis channel every node's manager reads (python-socketio's ``channel`` argument)."""

MAX_PENDING = 100_000
"""Announcements waiting for Redis beyond this are dropped (a stalled Redis must not eat the memory)."""

Broadcast = Callable[[str, Any, "str | None"], int]


class RedisNodes(socketio.AsyncRedisManager):  # type: ignore[misc]
    """The client manager of a node: rooms as usual, emits from other nodes handed to ``broadcast``."""

    def __init__(self, link: RedisLink, namespace: str) -> None:
        super().__init__(url=link.url, channel=CHANNEL, logger=log)
        self.link = link
        self.namespace = namespace
        self.broadcast: Broadcast | None = None
        """The target's local fast fan-out (set by the target once built)."""
        self.received = 0
        """Emits from other nodes delivered here."""
        self.dropped = 0
        """Announcements that never reached Redis (it was away or failed)."""
        self._pending: deque[bytes] = deque()
        self._wake = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None

    # -- out: announce a local publish -------------------------------------------------------------
    def announce(self, event: str, data: Any, room: str | None) -> None:
        """Tell the other nodes about an event just delivered here: the dict AsyncPubSubManager.emit
        publishes (binary attachments as base64), so any python-socketio node understands it."""
        args = [data]
        binary = Packet.data_is_binary(args)
        if binary:
            payload, attachments = Packet.deconstruct_binary(args)
            args = [payload, *[base64.b64encode(a).decode() for a in attachments]]
        message = {
            "method": "emit",
            "event": event,
            "data": args,
            "binary": binary,
            "namespace": self.namespace,
            "room": room,
            "skip_sid": None,
            "callback": None,
            "host_id": self.host_id,
        }
        self._queue(self.json.dumps(message))

    async def _publish(self, data: Any) -> None:
        """The library's own notifications (remote disconnects, room changes): same ordered sender."""
        self._queue(self.json.dumps(data))

    def _queue(self, encoded: str | bytes) -> None:
        if not self.link.subscribed or len(self._pending) >= MAX_PENDING:
            self.dropped += 1
            return
        self._pending.append(encoded if isinstance(encoded, bytes) else encoded.encode())
        self._wake.set()

    async def _send_loop(self) -> None:
        """Publish what is queued, in order, as pipelines: one round trip for a burst of publishes."""
        pending, client = self._pending, self.link.client
        while True:
            await self._wake.wait()
            self._wake.clear()
            while pending:
                batch = list(pending)
                pending.clear()

                async def send(batch: list[bytes] = batch) -> Any:
                    pipe = client.pipeline(transaction=False)
                    for encoded in batch:
                        pipe.publish(CHANNEL, encoded)
                    return await pipe.execute()

                try:
                    await self.link.call(send)
                except RedisUnavailable:
                    self.dropped += len(batch)

    # -- in: emits from the other nodes ------------------------------------------------------------
    async def _listen(self) -> AsyncIterator[bytes]:
        """What AsyncPubSubManager._thread reads (it skips our own host_id): never ends."""
        async for _, payload in self.link.messages(channels=[CHANNEL]):
            yield payload

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        """Another node's emit: decoded as AsyncPubSubManager does, delivered by the local fast path."""
        if self.broadcast is None or message.get("namespace", "/") != self.namespace:
            return
        data = message.get("data")
        if message.get("binary") and isinstance(data, list) and data:
            data = Packet.reconstruct_binary(data[0], [base64.b64decode(a) for a in data[1:]])
        if isinstance(data, list):
            data = data[0] if len(data) == 1 else None if not data else tuple(data)
        self.received += 1
        self.broadcast(message["event"], data, message.get("room"))

    # -- lifecycle ---------------------------------------------------------------------------------
    def initialize(self) -> None:
        """Started with the app (not at the first client, as python-socketio would): a node with no
        client yet still reports its link, and its first client misses nothing."""
        super().initialize()
        self._sender = asyncio.get_running_loop().create_task(self._send_loop())

    def health(self) -> dict[str, Any]:
        info = self.link.health()
        info["redis"].update(received=self.received, dropped=self.dropped)
        return info

    async def close(self) -> None:
        for task in (self._sender, getattr(self, "thread", None)):
            if isinstance(task, asyncio.Task):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self.link.close()
