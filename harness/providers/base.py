"""The provider seam: a spec (options, validation, cloud credentials, target module, secrets) plus an
async adapter over one real client library.

A provider knows how to open a subscriber on a channel and how to publish a text payload; it knows
nothing of probes, histograms or Locust. Everything it receives goes to ``on_data`` on the event-loop
thread, untouched, and the harness decides what it means. The class-level spec is all the plugin and the
report ask of it: which options exist and hold, whether publishers run, where the target is, what to
redact.
"""

from __future__ import annotations

import argparse
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

OnData = Callable[[object, int], None]
OnEvent = Callable[[], None]
OnError = Callable[[str], None]
OnDuration = Callable[[int], None]
OnNode = Callable[[str | None], None]


def listened_events(options: argparse.Namespace) -> frozenset[str]:
    """The event names a subscriber takes as deliveries: ``options.events`` when a workload listens to
    several (the todo app's created, updated and deleted), else the one ``--event`` it publishes."""
    names = getattr(options, "events", None) or (options.event,)
    return frozenset(str(name) for name in names)


@dataclass
class SubscriberHooks:
    """What a provider calls back: arrivals (the payload and its arrival time, ns since the epoch: the
    kernel's receive time of the bytes that completed it where the transport has one), an unrequested
    disconnect, a completed re-subscribe, a protocol error on a live subscription (its reason), how
    long a reconnection took (ns), and which server node each connection landed on (``X-Rtbench-Node``
    behind a load balancer; None when the server did not say), told before that connection delivers."""

    on_data: OnData
    on_drop: OnEvent = field(default=lambda: None)
    on_resubscribed: OnEvent = field(default=lambda: None)
    on_error: OnError = field(default=lambda _reason: None)
    on_reconnect_ns: OnDuration = field(default=lambda _ns: None)
    on_node: OnNode = field(default=lambda _node: None)


#: Where a subscriber's arrival times come from (summary.json ``rx_clock``).
RX_KERNEL, RX_READ, RX_CALLBACK = "kernel", "read", "callback"


class SubscriberHandle(ABC):
    @property
    def rx_clock(self) -> str:
        """``kernel`` (SO_TIMESTAMPNS on the socket), ``read`` (the time of the read, no kernel stamp) or
        ``callback`` (an official library's callback: includes the library's and the generator's delays)."""
        return RX_CALLBACK

    @property
    def node(self) -> str | None:
        """The server node the current connection landed on, when the server names it (lean clients)."""
        return None

    @property
    def resumes(self) -> bool:
        """Whether its next reconnect asks the server for what it missed meanwhile (an SSE stream that
        carries event ids); False: a reconnect starts from what is published after it."""
        return False

    @abstractmethod
    async def close(self) -> None: ...


class PublisherHandle(ABC):
    @abstractmethod
    async def publish(self, channel: str, text: str) -> None:
        """Hand one payload to the provider; return once the provider has accepted it."""

    async def watch_own(self, channel: str, on_data: OnData) -> bool:
        """Also hand what this publisher's own connection receives on ``channel`` to ``on_data``, to see
        whether the provider echoes a sender's events back to it. False: it publishes over HTTP, or its
        connection receives nothing (then there is no echo to see)."""
        return False

    @property
    def errors(self) -> list[str]:
        """What the server said against this publisher's own connection (a refused client event), oldest
        first; empty for a publisher that has none."""
        return []

    @abstractmethod
    async def close(self) -> None: ...


@dataclass(frozen=True)
class BrowserPage:
    """How a browser page subscribes with the provider's official JavaScript client (``--browser-probes``).

    ``bundle``: the client's browser build, relative to the browser clients folder (``browser/node_modules``,
    served to the page from that local file, never a CDN); '' when the browser has the client built in
    (EventSource). ``script``: the page's code, run with ``cfg`` (this ``config``, as JSON) and ``rtb`` in
    scope: it calls ``rtb.deliver(data)`` for each event, ``rtb.subscribed()`` once deliveries will come (and
    again after a reconnect), ``rtb.dropped()`` when the connection is lost, ``rtb.error(text)`` on errors.
    ``config`` may hold a client credential (a key the page needs): it goes to the page only, never a log."""

    bundle: str
    script: str
    config: dict[str, Any] = field(default_factory=dict)


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
    #: the default of ``--event`` (the name subscribers listen to and publishers send); None: no --event
    event_default: ClassVar[str | None] = None
    #: the events the app's readers listen to (targets/todos.py: a todo created, updated, deleted)
    app_events: ClassVar[tuple[str, ...]] = ("todo:created", "todo:updated", "todo:deleted")
    #: older spellings of ``--event`` this provider still accepts
    event_aliases: ClassVar[tuple[str, ...]] = ()
    #: the official browser client's bundle, relative to the browser clients folder (``--browser-clients``):
    #: '' when browsers have the client built in (EventSource), None when there is no browser client
    browser_bundle: ClassVar[str | None] = None
    #: what a secret of this provider looks like inside an option's value (e.g. an API key in a URL): the
    #: report replaces every match (``harness.report.html.redact(params, patterns)``)
    secret_patterns: ClassVar[tuple[re.Pattern[str], ...]] = ()
    #: provider option defaults under ``rtbench check`` where the checklist needs other than a run's
    check_defaults: ClassVar[dict[str, object]] = {}

    def __init__(self, host: str, options: argparse.Namespace) -> None:
        self.host = host.rstrip("/")
        self.options = options

    @classmethod
    def add_arguments(cls, group: Any) -> None:
        """Register provider-specific Locust options (``group.add_argument``); subclasses call this first
        for the options providers share (``--event``: one definition, each provider's default)."""
        if cls.event_default is not None:
            group.add_argument(
                "--event",
                *cls.event_aliases,
                dest="event",
                default=cls.event_default,
                help=f"{cls.name}: event name subscribers listen to and publishers send (default: {cls.event_default})",
            )

    @classmethod
    def validate(cls, options: argparse.Namespace) -> None:
        """Raise ProviderConfigError for options this provider cannot work with; subclasses call this first."""
        if cls.event_default is not None:
            event = str(getattr(options, "event", "") or "")
            if not event.strip() or any(c in event for c in "\r\n"):
                raise ProviderConfigError("--event must be a non-empty name on one line")

    @classmethod
    def publishes(cls, options: argparse.Namespace) -> bool:
        """Whether this run has publisher users: False when the server makes the events itself."""
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

    # -- the managed service --------------------------------------------------------------------
    @classmethod
    def cloud_credentials(cls, options: argparse.Namespace) -> bool:
        """Whether credentials for the provider's managed service are configured (flags or environment)."""
        return False

    @classmethod
    def cloud_url(cls, options: argparse.Namespace) -> str:
        """The managed service's URL; asked only when :meth:`cloud_credentials` holds."""
        raise NotImplementedError(f"{cls.name} has no managed service")

    @classmethod
    def is_cloud(cls, options: argparse.Namespace) -> bool:
        """The run goes to the managed service: credentials and no --host (the embedded target is not one)."""
        return not getattr(options, "host", None) and cls.cloud_credentials(options)

    @classmethod
    def describe_target(cls, host: str | None, options: argparse.Namespace) -> str:
        """``embedded``, ``external`` or ``cloud`` for summary.json."""
        if host:
            return "external"
        return "cloud" if cls.cloud_credentials(options) else "embedded"

    @classmethod
    def cloud_host(cls, options: argparse.Namespace) -> str | None:
        """The managed service's URL when credentials are configured and no --host was given; None means
        the embedded reference target is started as usual."""
        return cls.cloud_url(options) if cls.is_cloud(options) else None

    def browser_page(self, channel: str) -> BrowserPage:
        """The page a browser probe opens to subscribe to ``channel`` with the official JS client."""
        raise ProviderConfigError(f"--browser-probes: {self.name} has no official browser client")

    @classmethod
    def check_browser(cls, options: argparse.Namespace) -> None:
        """Raise ProviderConfigError when this run's options cannot be followed by a browser page;
        subclasses call this first."""
        if cls.browser_bundle is None:
            raise ProviderConfigError(f"--browser-probes: {cls.name} has no official browser client")

    @abstractmethod
    async def open_subscriber(self, channel: str, hooks: SubscriberHooks) -> SubscriberHandle:
        """Connect and subscribe; return only once deliveries on ``channel`` will reach ``hooks``."""

    @abstractmethod
    async def open_publisher(self) -> PublisherHandle: ...

    async def open_peer(self, channel: str, *, echo: bool = True) -> PublisherHandle:
        """A publisher that is itself a client on ``channel``, as a second browser window that sends is
        (``rtbench check``'s client A): the provider's publisher unless clients publish otherwise (Pusher's
        client events). ``echo=False``: one that asked not to hear its own events, where the protocol has
        that choice (Ably's ``echo=false``); ignored elsewhere."""
        return await self.open_publisher()

    async def aclose(self) -> None:
        """Release shared resources."""


def flag_or_env(options: argparse.Namespace, dest: str, env: str) -> str:
    """A credential from its flag, else its environment variable, else '' (stripped)."""
    return str(getattr(options, dest, None) or os.environ.get(env, "")).strip()
