"""What every lean subscriber shares: a connection on the measuring transport, one subscription, and the
shared reconnect driver (:mod:`harness.net.reconnect`) reporting drops, returns and refusals to the hooks.

A provider's subscriber implements ``connect_and_subscribe`` (return a live connection, already
subscribed, whose end it reports through ``connection_ended``) and the per-message handling; this class
does the rest the same way for every provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from abc import abstractmethod
from typing import Generic, Protocol, TypeVar

from harness.net.reconnect import Backoff, GiveUp, Reconnector
from harness.net.stream import Stream
from harness.net.websocket import WebSocket
from harness.protocols import websocket as ws_protocol
from harness.providers.base import RX_KERNEL, SubscriberHandle, SubscriberHooks

CONNECT_TIMEOUT_S = 15.0


class Connection(Protocol):
    @property
    def rx_clock(self) -> str: ...

    @property
    def stream(self) -> Stream: ...

    def close(self) -> None: ...


class Watched(Protocol):
    def check_alive(self, now_ns: int) -> None:
        """Ping a quiet connection or drop a silent one (``now_ns``: the clock of receive times)."""


W = TypeVar("W", bound=Watched)


class Sweeper(Generic[W]):
    """One task per provider that asks each watched subscriber, every ``interval_s``, whether its connection
    is still alive: thousands of subscribers, one timer, and no per-message cost on the hot path."""

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self.members: set[W] = set()
        self._task: asyncio.Task[None] | None = None

    def add(self, member: W) -> None:
        self.members.add(member)
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    def discard(self, member: W) -> None:
        self.members.discard(member)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            now_ns = time.time_ns()
            for member in list(self.members):
                member.check_alive(now_ns)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class LeanSubscriber(SubscriberHandle):
    #: reconnect policy (subclasses follow their official client's)
    backoff = Backoff()

    def __init__(self, hooks: SubscriberHooks, connect_timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        self.hooks = hooks
        self.connect_timeout_s = connect_timeout_s
        self.connection: Connection | None = None
        self.closing = False
        self._node: str | None = None
        self.reconnector = Reconnector(
            self._open,
            backoff=self.backoff,
            timeout_s=connect_timeout_s,
            on_drop=hooks.on_drop,
            on_back=self._back,
            on_give_up=self._give_up,
        )

    @property
    def rx_clock(self) -> str:
        return self.connection.rx_clock if self.connection is not None else RX_KERNEL

    @property
    def node(self) -> str | None:
        return self._node

    def landed(self, node: str | None) -> None:
        """A connection was answered by server node ``node``: tell the hooks before it delivers anything, on
        every connection (a reconnect may land on another node behind the load balancer)."""
        self._node = node
        self.hooks.on_node(node)

    async def open_websocket(
        self,
        url: str,
        *,
        timeout: float,
        max_message: int = ws_protocol.DEFAULT_MAX_MESSAGE,
        tls: ssl.SSLContext | None = None,
    ) -> WebSocket:
        """``WebSocket.connect``, with the node that answered the upgrade told to the hooks before the first
        message is read."""
        ws = await WebSocket.connect(url, timeout=timeout, max_message=max_message, tls=tls)
        self.landed(ws.node)
        return ws

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

    def sever(self) -> bool:
        """Cut the live connection from the client's side, as a network loss (``rtbench check``'s offline
        item): the subscriber notices through its usual path and comes back by itself. False when there
        was no live connection to cut."""
        connection = self.connection
        if connection is None or self.closing:
            return False
        connection.stream.cut()
        return True

    async def close(self) -> None:
        self.closing = True
        await self.reconnector.close()
        connection, self.connection = self.connection, None
        if connection is not None:
            await self.say_goodbye(connection)
            connection.close()

    async def say_goodbye(self, connection: Connection) -> None:
        """What the protocol sends before a client leaves (e.g. an unsubscribe); nothing by default."""
