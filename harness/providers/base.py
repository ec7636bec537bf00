"""The provider seam: an async adapter over one real client library.

A provider knows how to open a subscriber on a channel and how to publish a text payload; it knows
nothing of probes, histograms or Locust. Everything it receives goes to ``on_data`` on the event-loop
thread, untouched, and the harness decides what it means.
"""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

OnData = Callable[[object, int], None]
OnEvent = Callable[[], None]
OnError = Callable[[str], None]
OnDuration = Callable[[int], None]


@dataclass
class SubscriberHooks:
    """What a provider calls back: arrivals (the payload and its arrival time, ns since the epoch: the
    kernel's receive time of the bytes that completed it where the transport has one), an unrequested
    disconnect, a completed re-subscribe, a protocol error on a live subscription (its reason), and how
    long a reconnection took (ns)."""

    on_data: OnData
    on_drop: OnEvent = field(default=lambda: None)
    on_resubscribed: OnEvent = field(default=lambda: None)
    on_error: OnError = field(default=lambda _reason: None)
    on_reconnect_ns: OnDuration = field(default=lambda _ns: None)


#: Where a subscriber's arrival times come from (summary.json ``rx_clock``).
RX_KERNEL, RX_READ, RX_CALLBACK = "kernel", "read", "callback"


class SubscriberHandle(ABC):
    @property
    def rx_clock(self) -> str:
        """``kernel`` (SO_TIMESTAMPNS on the socket), ``read`` (the time of the read, no kernel stamp) or
        ``callback`` (an official library's callback: includes the library's and the generator's delays)."""
        return RX_CALLBACK

    @abstractmethod
    async def close(self) -> None: ...


class PublisherHandle(ABC):
    @abstractmethod
    async def publish(self, channel: str, text: str) -> None:
        """Hand one payload to the provider; return once the provider has accepted it."""

    @abstractmethod
    async def close(self) -> None: ...


class ProviderConfigError(ValueError):
    """Bad provider options; the message is a one-line reason (exit code 2)."""


class Provider(ABC):
    """One per process, created on the bridge's loop; owns shared resources such as an HTTP session."""

    name: ClassVar[str]
    #: module of the reference target started when no --host is given (``python -m <module>``)
    target_module: ClassVar[str | None] = None
    #: URL schemes accepted for --host
    schemes: ClassVar[tuple[str, ...]] = ("http", "https")
    #: the official library ``--client official`` uses for subscribers, if the provider has one
    official_client: ClassVar[str | None] = None

    def __init__(self, host: str, options: argparse.Namespace) -> None:
        self.host = host.rstrip("/")
        self.options = options

    @classmethod
    def add_arguments(cls, group: Any) -> None:
        """Register provider-specific Locust options (``group.add_argument``)."""

    @classmethod
    def validate(cls, options: argparse.Namespace) -> None:
        """Raise ProviderConfigError for options this provider cannot work with."""

    @classmethod
    def publishes(cls, options: argparse.Namespace) -> bool:
        """Whether runs need publisher users (not when the server stamps its own events)."""
        return True

    @classmethod
    def check_client(cls, options: argparse.Namespace) -> None:
        """``--client official`` needs an official library to exist for this provider."""
        if getattr(options, "client", "lean") == "official" and cls.official_client is None:
            raise ProviderConfigError(
                f"--client official: {cls.name} has no official Python client; its subscribers are always lean"
            )

    def use_official_client(self) -> bool:
        return getattr(self.options, "client", "lean") == "official"

    @classmethod
    def describe_target(cls, host: str | None, options: argparse.Namespace) -> str:
        """``embedded``, ``external`` or ``cloud`` for summary.json."""
        return "external" if host else "embedded"

    @classmethod
    def cloud_host(cls, options: argparse.Namespace) -> str | None:
        """The managed service's URL when credentials are configured and no --host was given; None means
        the embedded reference target is started as usual."""
        return None

    @abstractmethod
    async def open_subscriber(self, channel: str, hooks: SubscriberHooks) -> SubscriberHandle:
        """Connect and subscribe; return only once deliveries on ``channel`` will reach ``hooks``."""

    @abstractmethod
    async def open_publisher(self) -> PublisherHandle: ...

    async def aclose(self) -> None:
        """Release shared resources."""
