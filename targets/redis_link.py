"""A target node's link to the Redis that joins it to its fellow nodes (``--redis URL``).

Imported only by a target started with ``--redis``: a lone target never loads a Redis client.

What a node needs from Redis, and how an outage looks from here:

* commands (a publish, a script) bounded in time (COMMAND_TIMEOUT_S): a dead or absent Redis makes
  them fail fast with RedisUnavailable, never hang; the caller then serves its local clients alone;
* one subscription, re-established with a capped backoff (RETRY_MIN_S .. RETRY_MAX_S) after any loss,
  for as long as the node runs. ``subscribed`` is true only once Redis confirmed every subscription,
  so a node that reports it (on /healthz) receives every later publish;
* an outage is two log lines (lost, back), never a traceback per message;
* at startup ``wait_ready`` gives Redis STARTUP_WAIT_S to answer (compose may start both at once),
  then raises UsageError: the target exits with status 2 and one line naming the URL (no password).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from targets.serve import UsageError

__all__ = ["COMMAND_TIMEOUT_S", "RedisLink", "RedisUnavailable", "redact"]

log = logging.getLogger("targets.redis")

COMMAND_TIMEOUT_S = 1.0
"""Longest a node waits on one Redis command before serving locally without it."""

CONNECT_TIMEOUT_S = 1.0
STARTUP_WAIT_S = 5.0
RETRY_MIN_S = 0.05
RETRY_MAX_S = 1.0
"""Backoff between subscription attempts: short, so a node rejoins within a second of Redis' return."""

T = TypeVar("T")


class RedisUnavailable(Exception):
    """A Redis command failed or timed out: the caller goes on without the other nodes."""


def redact(url: str) -> str:
    """The URL without its password, fit for a log line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


class RedisLink:
    """One node's Redis client: bounded commands and a self-healing subscription."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.where = redact(url)
        try:
            self.client: aioredis.Redis = aioredis.Redis.from_url(
                url,
                socket_connect_timeout=CONNECT_TIMEOUT_S,
                socket_keepalive=True,
                retry=Retry(NoBackoff(), 1),  # one retry: a pooled connection may be stale after an outage
            )
        except ValueError as exc:  # bad scheme or URL
            raise UsageError(f"--redis {self.where}: {exc}") from None
        self.subscribed = False
        self.losses = 0
        """Times the subscription was lost (after it had been up)."""
        self.failed_commands = 0
        self._commands_ok = True

    # -- commands ----------------------------------------------------------------------------------
    async def call(self, command: Callable[[], Awaitable[T]]) -> T:
        """Run one command (or pipeline) within COMMAND_TIMEOUT_S. RedisUnavailable on any failure."""
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT_S):
                result = await command()
        except (RedisError, OSError, TimeoutError) as exc:
            self.failed_commands += 1
            if self._commands_ok:
                self._commands_ok = False
                log.warning("redis %s: command failed (%s); serving local clients only", self.where, _brief(exc))
            raise RedisUnavailable(_brief(exc)) from None
        self._commands_ok = True
        return result

    async def wait_ready(self, timeout: float = STARTUP_WAIT_S) -> None:
        """PING until Redis answers, for at most ``timeout`` seconds; UsageError (exit 2) if it never does."""
        deadline = time.monotonic() + timeout
        delay = RETRY_MIN_S
        while True:
            try:
                async with asyncio.timeout(COMMAND_TIMEOUT_S):
                    await self.client.ping()
                return
            except (RedisError, OSError, TimeoutError) as exc:
                if time.monotonic() + delay > deadline:
                    raise UsageError(f"cannot reach Redis at {self.where}: {_brief(exc)}") from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    # -- subscription ------------------------------------------------------------------------------
    async def messages(
        self, *, channels: Sequence[str] = (), patterns: Sequence[str] = ()
    ) -> AsyncIterator[tuple[bytes, bytes]]:
        """(channel, payload) of every message published on ``channels`` / ``patterns``, forever:
        a lost subscription is re-established (messages published meanwhile are not seen)."""
        wanted = len(channels) + len(patterns)
        delay = RETRY_MIN_S
        while True:
            pubsub = self.client.pubsub()
            try:
                if channels:
                    await pubsub.subscribe(*channels)
                if patterns:
                    await pubsub.psubscribe(*patterns)
                confirmed = 0
                async for message in pubsub.listen():
                    kind = message["type"]
                    if kind in ("message", "pmessage"):
                        yield message["channel"], message["data"]
                    elif kind in ("subscribe", "psubscribe"):
                        confirmed += 1
                        if confirmed == wanted:
                            self._set_subscribed(None)
                            delay = RETRY_MIN_S
                raise ConnectionError("subscription ended")
            except (RedisError, OSError, TimeoutError) as exc:
                self._set_subscribed(exc)
            finally:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(COMMAND_TIMEOUT_S):
                        await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    def _set_subscribed(self, error: BaseException | None) -> None:
        if error is None:
            if not self.subscribed:
                self.subscribed = True
                self._commands_ok = True
                log.log(logging.WARNING if self.losses else logging.INFO, "redis %s: subscribed", self.where)
            return
        if self.subscribed:
            self.subscribed = False
            self.losses += 1
            log.warning("redis %s lost (%s): serving local clients only, reconnecting", self.where, _brief(error))

    def health(self) -> dict[str, Any]:
        """What /healthz reports about this link."""
        return {
            "redis": {
                "subscribed": self.subscribed,
                "losses": self.losses,
                "failed_commands": self.failed_commands,
            }
        }

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(COMMAND_TIMEOUT_S):
                await self.client.aclose()


def _brief(exc: BaseException) -> str:
    """One line for a log: the exception's type and first line, never a traceback."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
