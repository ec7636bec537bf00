"""One reconnect driver for every lean client: back off, reconnect, re-subscribe, say how long it took.

A protocol client supplies ``connect`` (open the connection and subscribe; raise on failure, or raise
:class:`GiveUp` when the protocol says not to try again) and calls :meth:`Reconnector.lost` when its
connection ends without being asked to. The driver reports the drop, the way back (with the time from
the loss to a working subscription) or the final refusal, and stops for good on ``close``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger("rtbench.reconnect")


@dataclass(frozen=True)
class Backoff:
    """Delays between attempts: ``first_s``, then times ``factor`` up to ``max_s`` (client libraries' policy)."""

    first_s: float = 0.5
    max_s: float = 5.0
    factor: float = 2.0

    def delay(self, attempt: int) -> float:
        """The wait before attempt ``attempt + 1``. Grows until it reaches ``max_s``, then stays there; the
        power is never taken past that point (a client retrying for hours would overflow a float)."""
        delay = self.first_s
        for _ in range(attempt):
            if delay >= self.max_s or delay <= 0 or self.factor <= 1:
                break
            delay *= self.factor
        return float(min(self.max_s, delay))


class GiveUp(Exception):
    """The server refused us in a way the protocol says not to retry; the message is the reason."""


class Reconnector:
    def __init__(
        self,
        connect: Callable[[], Awaitable[None]],
        *,
        backoff: Backoff,
        timeout_s: float,
        on_drop: Callable[[], None],
        on_back: Callable[[int], None],
        on_give_up: Callable[[str], None],
    ) -> None:
        self._connect = connect
        self.backoff = backoff
        self.timeout_s = timeout_s
        self._on_drop, self._on_back, self._on_give_up = on_drop, on_back, on_give_up
        self.closing = False
        self._task: asyncio.Task[None] | None = None
        self._lost_during_attempt = False

    @property
    def reconnecting(self) -> bool:
        return self._task is not None and not self._task.done()

    def lost(self, reason: str, first_delay_s: float | None = None) -> None:
        """The connection ended by itself: report the drop and start coming back."""
        if self.closing:
            return
        if self.reconnecting:  # the new connection died before the attempt finished: it failed
            self._lost_during_attempt = True
            return
        log.debug("connection lost: %s", reason)
        self._on_drop()
        self._task = asyncio.ensure_future(self._come_back(first_delay_s))

    async def _come_back(self, first_delay_s: float | None) -> None:
        lost_at = time.perf_counter_ns()
        attempt = 0
        delay = self.backoff.delay(0) if first_delay_s is None else first_delay_s
        while not self.closing:
            if delay > 0:
                await asyncio.sleep(delay)
            if self.closing:
                return
            self._lost_during_attempt = False
            try:
                await asyncio.wait_for(self._connect(), self.timeout_s)
                if self._lost_during_attempt:
                    raise ConnectionError("connection lost right after it was made")
            except GiveUp as exc:
                self._on_give_up(str(exc))
                return
            except Exception as exc:  # any failure of one attempt means: wait and try again
                log.debug("reconnect attempt %d failed: %s", attempt + 1, exc)
                attempt += 1
                delay = self.backoff.delay(attempt)
                continue
            if not self.closing:
                self._on_back(time.perf_counter_ns() - lost_at)
            return

    async def close(self) -> None:
        self.closing = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
