"""What every lean subscriber shares: a connection on the measuring transport, one subscription, and the
shared reconnect driver (:mod:`harness.net.reconnect`) reporting drops, returns and refusals to the hooks.

A provider's subscriber implements ``connect_and_subscribe`` (return a live connection, already
subscribed, whose end it reports through ``connection_ended``) and the per-message handling; this class
does the rest the same way for every provider.
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from typing import Protocol

from harness.net.reconnect import Backoff, GiveUp, Reconnector
from harness.providers.base import RX_KERNEL, SubscriberHandle, SubscriberHooks

CONNECT_TIMEOUT_S = 15.0


class Connection(Protocol):
    @property
    def rx_clock(self) -> str: ...

    def close(self) -> None: ...


class LeanSubscriber(SubscriberHandle):
    #: reconnect policy (subclasses follow their official client's)
    backoff = Backoff()

    def __init__(self, hooks: SubscriberHooks, connect_timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        self.hooks = hooks
        self.connect_timeout_s = connect_timeout_s
        self.connection: Connection | None = None
        self.closing = False
        self.reconnector = Reconnector(self._open, backoff=self.backoff, timeout_s=connect_timeout_s,
                                       on_drop=hooks.on_drop, on_back=self._back, on_give_up=self._give_up)

    @property
    def rx_clock(self) -> str:
        return self.connection.rx_clock if self.connection is not None else RX_KERNEL

    async def start(self) -> None:
        """The first connection: a failure raises (the generator counts a failed connect with its reason)."""
        try:
            await asyncio.wait_for(self._open(), self.connect_timeout_s)
        except TimeoutError:
            raise ConnectionError(f"not subscribed within {self.connect_timeout_s:g} s") from None
        except GiveUp as exc:
            if isinstance(exc, ConnectionError):  # already says what it is (a provider's refusal)
                raise
            raise ConnectionError(str(exc)) from None

    async def _open(self) -> None:
        connection = await self.connect_and_subscribe()
        if self.closing:
            connection.close()
            return
        self.connection = connection

    @abstractmethod
    async def connect_and_subscribe(self) -> Connection:
        """Connect, subscribe, and start delivering; raise on failure (GiveUp: do not retry)."""

    def connection_ended(self, reason: str, retry_after_s: float | None = None) -> None:
        """The connection ended without us asking: report the drop and come back (after ``retry_after_s``,
        else the backoff's first delay)."""
        self.connection = None
        if not self.closing:
            self.reconnector.lost(reason, retry_after_s)

    def _back(self, took_ns: int) -> None:
        self.hooks.on_resubscribed()
        self.hooks.on_reconnect_ns(took_ns)

    def _give_up(self, reason: str) -> None:
        self.hooks.on_error(reason)

    async def close(self) -> None:
        self.closing = True
        await self.reconnector.close()
        connection, self.connection = self.connection, None
        if connection is not None:
            await self.say_goodbye(connection)
            connection.close()

    async def say_goodbye(self, connection: Connection) -> None:
        """What the protocol sends before a client leaves (e.g. an unsubscribe); nothing by default."""
