"""Several SSE target nodes sharing one Redis (``--redis URL``): one numbering, one order, every node.

A publish on any node runs one Lua script in Redis that numbers the event for the whole cluster and
publishes it, atomically: ids are ``<cluster epoch>-<n>``, with the epoch set once in Redis (SET if
absent, from a fresh candidate each time, so a Redis that lost its data starts a new epoch and never
reissues an id) and ``n`` counted per channel (HINCRBY). Since Redis runs scripts one at a time, every
node receives a channel's events in id order, buffers the same ids for the same events, and can replay
them to a client that was on another node (Last-Event-ID). The publishing node delivers to its own
clients from its subscription too, so its order is the cluster's.

Redis away (subscription down, or the script fails within COMMAND_TIMEOUT_S): the node publishes alone,
in its own epoch, to its own clients; it rejoins within about a second once Redis is back. Events
published elsewhere while a node was cut off never reach it (Redis pub/sub keeps nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from typing import Any

from targets.redis_link import RedisLink, RedisUnavailable

__all__ = ["CHANNEL_PREFIX", "EPOCH_KEY", "SEQ_KEY", "SSENodes", "decode", "encode"]

log = logging.getLogger("targets.sse")

EPOCH_KEY = "rtbench:sse:epoch"
SEQ_KEY = "rtbench:sse:seq"
CHANNEL_PREFIX = "rtbench:sse:ch:"
"""Redis channel of SSE channel NAME: CHANNEL_PREFIX + NAME (nodes subscribe to the pattern)."""

_EPOCH = """
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch)
end
"""

EPOCH_SCRIPT = _EPOCH + "return epoch"
"""KEYS: epoch key. ARGV: a candidate epoch. Returns the cluster's epoch (the candidate if it had none)."""

PUBLISH_SCRIPT = (
    _EPOCH
    + """
local seq = redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
redis.call('PUBLISH', ARGV[5] .. ARGV[2], epoch .. ' ' .. seq .. '\\n' .. ARGV[3] .. '\\n' .. ARGV[4])
return {epoch, seq}
"""
)
"""KEYS: epoch key, counters hash. ARGV: candidate epoch, channel, event, data, channel prefix.
Numbers and publishes one event; returns {epoch, seq}. The payload is ``encode``'s."""

Deliver = Callable[[str, str, int, str, str], object]
"""SSETarget.deliver(channel, epoch, seq, event, data)."""


def encode(epoch: str, seq: int, event: str, data: str) -> bytes:
    """What PUBLISH_SCRIPT publishes (event names have no line break, epochs no space)."""
    return f"{epoch} {seq}\n{event}\n{data}".encode()


def decode(payload: bytes) -> tuple[str, int, str, str]:
    """(epoch, seq, event, data) of a published payload; ValueError if it is not one."""
    head, event, data = payload.decode("utf-8").split("\n", 2)
    epoch, seq = head.split(" ")
    return epoch, int(seq), event, data


class SSENodes:
    """One SSE node's part in the cluster: numbering publishes in Redis and receiving everyone's."""

    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self.epoch: str | None = None
        """The cluster's epoch, as last seen (it changes only if Redis lost its data)."""
        self.received = 0
        self.published = 0
        self.alone = 0
        """Publishes this node made alone because the script failed."""
        self._epoch = link.client.register_script(EPOCH_SCRIPT)
        self._publish = link.client.register_script(PUBLISH_SCRIPT)
        self._listener: asyncio.Task[None] | None = None

    async def start(self, deliver: Deliver) -> None:
        """Wait for Redis (UsageError if it never answers), learn the epoch, listen to every node."""
        await self.link.wait_ready()
        try:
            epoch = await self.link.call(lambda: self._epoch(keys=[EPOCH_KEY], args=[secrets.token_hex(4)]))
            self.epoch = _text(epoch)
        except RedisUnavailable:
            pass  # learnt from the first event instead
        self._listener = asyncio.get_running_loop().create_task(self._listen(deliver))

    async def publish(self, channel: str, event: str, data: str) -> str | None:
        """Number and publish one event for every node; its id, or None if Redis failed (publish alone)."""
        try:
            epoch, seq = await self.link.call(
                lambda: self._publish(
                    keys=[EPOCH_KEY, SEQ_KEY], args=[secrets.token_hex(4), channel, event, data, CHANNEL_PREFIX]
                )
            )
        except RedisUnavailable:
            self.alone += 1
            return None
        self.published += 1
        return f"{_text(epoch)}-{int(seq)}"

    async def _listen(self, deliver: Deliver) -> None:
        prefix = CHANNEL_PREFIX.encode()
        async for redis_channel, payload in self.link.messages(patterns=[CHANNEL_PREFIX + "*"]):
            try:
                channel = redis_channel.removeprefix(prefix).decode("utf-8")
                epoch, seq, event, data = decode(payload)
            except ValueError:
                log.warning("ignoring a malformed event on %r", redis_channel[:100])
                continue
            self.epoch = epoch
            self.received += 1
            deliver(channel, epoch, seq, event, data)

    def health(self) -> dict[str, Any]:
        info = self.link.health()
        info["redis"].update(epoch=self.epoch, published=self.published, received=self.received, alone=self.alone)
        return info

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
        await self.link.close()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
