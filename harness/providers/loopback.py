"""An in-memory provider (as httpx's MockTransport): pub/sub without sockets, for fast unit tests.

The generator session, the collector and the plugin can run a whole measurement through it in
milliseconds. Its faults are set by the test, on the hub (every channel) or on one subscriber, so each
test knows exactly what the report must count: a discarded delivery is one loss, a disconnect is one
drop and, once back, one resubscribe.

Providers built with the same host share one :class:`LoopbackHub` (``LoopbackProvider.hub_for(host)``),
as clients of one server would, so a test reaches the hub a session uses without reaching into it.
A subscriber's deliveries always run on the loop it was opened on, even when another thread publishes.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any, ClassVar

from harness.providers.base import (
    RX_READ,
    Provider,
    ProviderConfigError,
    PublisherHandle,
    SubscriberHandle,
    SubscriberHooks,
)

#: the host a run without --host uses: one hub per process
MEMORY_HOST = "loopback://memory"


class LoopbackRefused(ConnectionRefusedError):
    """A connect or a publish the test told the hub to refuse."""


class LoopbackSubscriber(SubscriberHandle):
    """One subscription: arrivals go to its hooks, on its own loop, stamped when they are handed over."""

    def __init__(self, hub: LoopbackHub, channel: str, hooks: SubscriberHooks) -> None:
        self.hub, self.channel, self.hooks = hub, channel, hooks
        self.loop = asyncio.get_running_loop()
        self.received = 0  # deliveries handed to ``on_data``
        self.discarded = 0  # deliveries lost to ``drop_next``
        self.connected = True
        self.closed = False
        self._drop_next = 0
        self._down_since_ns = 0
        self._reconnect_timer: asyncio.TimerHandle | None = None

    @property
    def rx_clock(self) -> str:
        return RX_READ

    # -- faults -----------------------------------------------------------------------------------
    def drop_next(self, count: int = 1) -> None:
        """Lose the next ``count`` deliveries to this subscriber while it stays subscribed (each is a loss)."""
        self._drop_next += count

    def disconnect(self, down_s: float | None = None) -> None:
        """Lose the connection unasked (``on_drop``); back after ``down_s`` seconds, or at ``reconnect()``.
        Messages published while it is down are not delivered to it (nor expected by the accounting)."""
        if not self.connected or self.closed:
            return
        self.connected = False
        self._down_since_ns = time.perf_counter_ns()
        self.hooks.on_drop()
        if down_s is not None:
            self._reconnect_timer = self.loop.call_later(down_s, self.reconnect)

    def reconnect(self) -> None:
        """Back after a ``disconnect``: reports how long it was down, then ``on_resubscribed``."""
        if self.connected or self.closed:
            return
        if self._reconnect_timer is not None:
            self._reconnect_timer.cancel()
            self._reconnect_timer = None
        self.connected = True
        self.hooks.on_reconnect_ns(time.perf_counter_ns() - self._down_since_ns)
        self.hooks.on_resubscribed()

    # -- delivery ---------------------------------------------------------------------------------
    def schedule(self, text: str, delay_s: float) -> None:
        """Hand ``text`` over ``delay_s`` from now, on this subscriber's loop (thread-safe)."""
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self._later(text, delay_s)
        else:
            self.loop.call_soon_threadsafe(self._later, text, delay_s)

    def _later(self, text: str, delay_s: float) -> None:
        if delay_s > 0:
            self._not_before(text, time.perf_counter_ns() + int(delay_s * 1e9))
        else:
            self.loop.call_soon(self._arrive, text)

    def _not_before(self, text: str, at_ns: int) -> None:
        """Arrive at ``at_ns`` or later, never earlier: the loop's timers can fire early by up to the age of
        its cached clock (libuv reads it once an iteration), so an early wake waits out the rest."""
        left_ns = at_ns - time.perf_counter_ns()
        if left_ns > 0:
            self.loop.call_later(left_ns / 1e9, self._not_before, text, at_ns)
        else:
            self._arrive(text)

    def _arrive(self, text: str) -> None:
        if self.closed or not self.connected:
            return
        if self._drop_next > 0:
            self._drop_next -= 1
            self.discarded += 1
            return
        self.received += 1
        self.hooks.on_data(text, time.time_ns())

    async def close(self) -> None:
        self.closed = True
        if self._reconnect_timer is not None:
            self._reconnect_timer.cancel()
            self._reconnect_timer = None
        self.hub.remove(self)


class LoopbackPublisher(PublisherHandle):
    def __init__(self, hub: LoopbackHub) -> None:
        self.hub = hub

    async def publish(self, channel: str, text: str) -> None:
        self.hub.publish(channel, text)

    async def close(self) -> None:
        """Nothing to release."""


class LoopbackHub:
    """The in-memory server: channels and their subscribers, plus the faults every channel shares."""

    def __init__(self) -> None:
        self.channels: dict[str, list[LoopbackSubscriber]] = {}
        #: seconds from a publish to its deliveries (0: on the subscriber loop's next iteration)
        self.delay_s = 0.0
        #: when set, ``open_subscriber`` waits for it: a test holds connections open mid-connect
        self.connect_gate: asyncio.Event | None = None
        self.published = 0  # payloads accepted
        self._refuse_connects = 0
        self._fail_publishes = 0

    def subscribers(self, channel: str | None = None) -> list[LoopbackSubscriber]:
        """The open subscribers of ``channel``, or of every channel, in the order they subscribed."""
        if channel is not None:
            return list(self.channels.get(channel, []))
        return [s for subs in self.channels.values() for s in subs]

    def refuse_next_connects(self, count: int = 1) -> None:
        """The next ``count`` subscribers fail to connect (``LoopbackRefused``)."""
        self._refuse_connects += count

    def fail_next_publishes(self, count: int = 1) -> None:
        """The next ``count`` publishes raise ``LoopbackRefused`` and reach nobody."""
        self._fail_publishes += count

    async def subscribe(self, channel: str, hooks: SubscriberHooks) -> LoopbackSubscriber:
        if self.connect_gate is not None:
            await self.connect_gate.wait()
        if self._refuse_connects > 0:
            self._refuse_connects -= 1
            raise LoopbackRefused(f"loopback refused a subscriber on {channel}")
        subscriber = LoopbackSubscriber(self, channel, hooks)
        self.channels.setdefault(channel, []).append(subscriber)
        return subscriber

    def publish(self, channel: str, text: str) -> None:
        if self._fail_publishes > 0:
            self._fail_publishes -= 1
            raise LoopbackRefused(f"loopback refused a publish on {channel}")
        self.published += 1
        for subscriber in self.channels.get(channel, []):
            subscriber.schedule(text, self.delay_s)

    def remove(self, subscriber: LoopbackSubscriber) -> None:
        subs = self.channels.get(subscriber.channel, [])
        if subscriber in subs:
            subs.remove(subscriber)


class LoopbackProvider(Provider):
    """Constructed like any provider (host, options); ``--loopback-delay-ms`` sets the hub's delay."""

    name = "loopback"
    schemes = ("loopback",)
    #: one hub per host, shared by every provider built with it (tests: ``hub_for(host)``, ``hubs.clear()``)
    hubs: ClassVar[dict[str, LoopbackHub]] = {}

    def __init__(self, host: str, options: argparse.Namespace) -> None:
        super().__init__(host, options)
        self.hub = self.hub_for(self.host)
        delay_ms = getattr(options, "loopback_delay_ms", None)
        if delay_ms is not None:
            self.hub.delay_s = float(delay_ms) / 1000

    @classmethod
    def hub_for(cls, host: str) -> LoopbackHub:
        """The hub behind ``host``, made on first use."""
        key = host.rstrip("/")
        hub = cls.hubs.get(key)
        if hub is None:
            hub = cls.hubs[key] = LoopbackHub()
        return hub

    @classmethod
    def add_arguments(cls, group: Any) -> None:
        group.add_argument("--loopback-delay-ms", type=str, default=None, help="in-memory delivery delay (tests)")

    @classmethod
    def validate(cls, options: argparse.Namespace) -> None:
        raw = getattr(options, "loopback_delay_ms", None)
        if raw is None:
            return
        try:
            value = float(raw)
        except ValueError:
            raise ProviderConfigError(f"--loopback-delay-ms must be a number, got {raw!r}") from None
        if not 0 <= value <= 3_600_000:
            raise ProviderConfigError(f"--loopback-delay-ms must be between 0 and 3600000, got {raw!r}")

    @classmethod
    def cloud_host(cls, options: argparse.Namespace) -> str | None:
        """Like a managed service: no --host means the in-memory hub, with nothing to start or check."""
        return MEMORY_HOST

    @classmethod
    def describe_target(cls, host: str | None, options: argparse.Namespace) -> str:
        return "loopback"

    async def open_subscriber(self, channel: str, hooks: SubscriberHooks) -> LoopbackSubscriber:
        return await self.hub.subscribe(channel, hooks)

    async def open_publisher(self) -> LoopbackPublisher:
        return LoopbackPublisher(self.hub)


PROVIDER = LoopbackProvider
