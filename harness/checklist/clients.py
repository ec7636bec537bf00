"""The checklist's clients: subscribers and publishers of any provider, each subscriber with an inbox of
what it received (decoded probe envelopes, timed at the socket) and of what happened to its connection.

Items wait on inboxes for a condition, never for a fixed time: a check is as fast as the server is.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.measure import probe
from harness.providers.base import Provider, PublisherHandle, SubscriberHandle, SubscriberHooks

#: the channel every item uses (one channel: a plain broadcast server understands it)
CHANNEL = probe.channel_name(0)
#: what a queued offline mutation ends with (targets' ``--replay-fault`` recognises it)
REPLAY_MARK = "replay"


@dataclass(frozen=True)
class Arrival:
    stream: str
    seq: int
    rx_ns: int  # receive time: the kernel's, on lean clients
    latency_ns: int  # receive time minus the time it was due
    replay: bool


@dataclass
class Inbox:
    """What one connection received, in order, and its connection's story (drops, returns, errors)."""

    run_id: str
    arrivals: list[Arrival] = field(default_factory=list)
    foreign: int = 0  # payloads that are not this check's probes (another run, or garbage)
    drops: int = 0
    returns: int = 0
    reconnect_ns: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def hooks(self) -> SubscriberHooks:
        return SubscriberHooks(
            on_data=self.on_data,
            on_drop=self._on_drop,
            on_resubscribed=self._on_return,
            on_error=self._on_error,
            on_reconnect_ns=self.reconnect_ns.append,
        )

    def on_data(self, data: object, rx_ns: int) -> None:
        try:
            envelope = probe.decode(data)
        except probe.ProbeError:
            self.foreign += 1
        else:
            if envelope.run_id != self.run_id:
                self.foreign += 1
            else:
                replay = isinstance(data, str) and data.endswith("|" + REPLAY_MARK)
                self.arrivals.append(
                    Arrival(envelope.publisher_id, envelope.seq, rx_ns, rx_ns - envelope.due_ns, replay)
                )
        self.changed.set()

    def _on_drop(self) -> None:
        self.drops += 1
        self.changed.set()

    def _on_return(self) -> None:
        self.returns += 1
        self.changed.set()

    def _on_error(self, reason: str) -> None:
        self.errors.append(reason)
        self.changed.set()

    def of(self, stream: str) -> list[Arrival]:
        """Arrivals of one publisher stream, in the order they came."""
        return [a for a in self.arrivals if a.stream == stream]

    def seqs(self, stream: str) -> list[int]:
        return [a.seq for a in self.arrivals if a.stream == stream]

    async def until(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        """Wait until ``condition()`` holds (re-checked on every arrival or connection event); False if it
        still does not after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except TimeoutError:
                return condition()
        return True


@dataclass
class Subscriber:
    handle: SubscriberHandle
    inbox: Inbox


class Clients:
    """Opens subscribers and publishers on one provider and closes every one of them at the end."""

    def __init__(self, provider: Provider, run_id: str) -> None:
        self.provider = provider
        self.run_id = run_id
        self._subscribers: list[SubscriberHandle] = []
        self._publishers: list[PublisherHandle] = []

    async def subscriber(self, timeout_s: float) -> Subscriber:
        """A connected, subscribed client; raises ConnectionError or TimeoutError with the reason."""
        inbox = Inbox(self.run_id)
        handle = await asyncio.wait_for(self.provider.open_subscriber(CHANNEL, inbox.hooks()), timeout_s)
        self._subscribers.append(handle)
        return Subscriber(handle, inbox)

    async def publisher(self, timeout_s: float, *, peer: bool = False, echo: bool = True) -> PublisherHandle:
        """The provider's publisher, or with ``peer`` one that is itself a client on the channel (the event
        item's client A: Pusher's sends client events), which asked not to hear its own events if not
        ``echo`` (where the protocol lets it)."""
        opening = self.provider.open_peer(CHANNEL, echo=echo) if peer else self.provider.open_publisher()
        publisher = await asyncio.wait_for(opening, timeout_s)
        self._publishers.append(publisher)
        return publisher

    def envelope(self, stream: str, seq: int, *, replay: bool = False, due_ns: int | None = None) -> str:
        """A probe for ``stream``'s ``seq``-th event, due now (or at ``due_ns``); a replayed mutation ends
        with ``|replay``."""
        text = probe.encode(self.run_id, stream, seq, due_ns or time.time_ns())
        return text + REPLAY_MARK if replay else text

    async def aclose(self) -> None:
        closeables: list[SubscriberHandle | PublisherHandle] = [*self._subscribers, *self._publishers]
        for closeable in closeables:
            with contextlib.suppress(Exception):  # after a failed item the connection may be long gone
                await asyncio.wait_for(closeable.close(), 5.0)
        self._subscribers.clear()
        self._publishers.clear()
