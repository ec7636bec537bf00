"""Pusher Channels: our lean protocol-7 subscriber, and a publisher signed by the official SDK.

No maintained Python Pusher client exists, so subscribers speak the protocol themselves: the connection
state machine is the sans-I/O ``harness.protocols.pusher.ClientConnection`` (connection_established,
subscribe with private and presence auth computed locally with the secret as an app's auth endpoint would,
pongs), driven over the measuring transport (``harness.net.websocket``: every message comes with the
kernel's receive time of its bytes, ``ws://`` and ``wss://`` alike). Once subscribed, a message goes from
the socket's reader straight to ``on_data``: decode, check event and channel, hand over, no task or queue.
One sweeper task per provider pings connections quiet for ``activity_timeout`` and drops those whose pong
does not come. Drops reconnect and re-subscribe through the shared driver the way pusher-js does
(4000-4099 and 4300-4399: give up; 4100-4199 and other closes: back off; 4200-4299 and a missed pong: at
once), and the time back is reported as ``reconnect_ms``.

The publisher uses the official ``pusher`` SDK to build and sign each Events API request
(``PusherClient.trigger.make_request``: the SDK's own validation and signature) and sends it on the shared
aiohttp session, so no thread and no blocking HTTP library touch the event loop (the SDK's aiohttp
backend does not import on Python 3.11+). Every run thereby checks the target's signature verification
against the SDK's.

Targets: with ``--host`` the local (or any Channels-compatible) server at that URL; with credentials
(``--app-id``/``--key``/``--secret``/``--cluster`` or ``PUSHER_APP_ID``/``PUSHER_KEY``/``PUSHER_SECRET``/
``PUSHER_CLUSTER``) and no ``--host``, real Pusher (``wss://ws-<cluster>.pusher.com``,
``https://api-<cluster>.pusher.com``). The secret is never logged or reported.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import ssl
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pusher.pusher_client import PusherClient  # type: ignore[import-untyped,unused-ignore]

from harness.net.endpoint import Endpoint
from harness.net.reconnect import Backoff, GiveUp
from harness.net.websocket import ClosedError, OnMessage, WebSocket
from harness.protocols import pusher as proto
from harness.providers.base import (
    BrowserPage,
    OnData,
    Provider,
    ProviderConfigError,
    PublisherHandle,
    SubscriberHandle,
    SubscriberHooks,
    flag_or_env,
    listened_events,
)
from harness.providers.http import shared_session
from harness.providers.lean import Connection, LeanSubscriber, Sweeper

CONNECT_TIMEOUT_S = 15.0
"""Budget for connect, TLS, upgrade, connection_established and the subscription together."""
GUARD_MARGIN_S = 1.0
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
USER_INFO = {"tool": "rtbench"}
CLIENT_NAME = "rtbench-python"
CLIENT_VERSION = "1.0"
DEFAULT_CLUSTER = "mt1"
CHANNEL_TYPES = ("public", "private", "presence")
_PREFIX = {"public": "", "private": "private-", "presence": "presence-"}
_ENV = {"app_id": "PUSHER_APP_ID", "key": "PUSHER_KEY", "secret": "PUSHER_SECRET", "cluster": "PUSHER_CLUSTER"}


class PusherConnectError(ConnectionError):
    """A connection or subscription attempt failed (the reason, and the Pusher code if the server gave one)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message if code is None else f"{message} (code {code})")
        self.code = code


class PusherRefused(PusherConnectError, GiveUp):
    """The server said not to come back (4000-4099, 4300-4399, a refused subscription): no retry."""


def _option(options: argparse.Namespace, name: str) -> str:
    """A credential from its flag, else its environment variable, else ''."""
    return flag_or_env(options, name, _ENV[name])


@dataclass(frozen=True)
class Endpoints:
    """Where and as whom to connect. ``secret`` is kept out of repr so it cannot reach a log line."""

    app_id: str
    key: str
    secret: str = field(repr=False)
    ws_base: str  # scheme://host:port, no trailing slash
    api_host: str
    api_port: int
    api_tls: bool
    cloud: bool

    @classmethod
    def resolve(cls, host: str, options: argparse.Namespace) -> Endpoints:
        cloud = PusherProvider.is_cloud(options)
        app_id = _option(options, "app_id") or proto.LOCAL_APP_ID
        key = _option(options, "key") or proto.LOCAL_KEY
        secret = _option(options, "secret") or proto.LOCAL_SECRET
        if cloud:
            cluster = _option(options, "cluster") or DEFAULT_CLUSTER
            return cls(
                app_id, key, secret, f"wss://ws-{cluster}.pusher.com:443", f"api-{cluster}.pusher.com", 443, True, True
            )
        where = Endpoint.parse(host)
        return cls(app_id, key, secret, where.base_url(websocket=True), where.host, where.port, where.tls, False)

    @property
    def ws_url(self) -> str:
        return (
            f"{self.ws_base}/app/{self.key}?protocol={proto.PROTOCOL_VERSION}&client={CLIENT_NAME}"
            f"&version={CLIENT_VERSION}&flash=false"
        )


class PusherSubscriber(LeanSubscriber):
    """One connection subscribed to one channel on the measuring transport, reconnecting as pusher-js does."""

    #: pusher-js: ``retryIn(1000)`` after a drop or a 4100-4199 close; failed attempts back off to 5 s
    backoff = Backoff(first_s=1.0, max_s=5.0)

    def __init__(self, provider: PusherProvider, channel: str, hooks: SubscriberHooks, user_id: str) -> None:
        # the handshake has its own deadline (with a reason); the base's guard only backs it up
        super().__init__(hooks, provider.connect_timeout_s + GUARD_MARGIN_S)
        self.provider = provider
        self.channel = channel
        self.user_id = user_id
        self.event = str(provider.options.event)
        events = listened_events(provider.options)
        if proto.channel_kind(channel) != "public":  # where clients may publish (PusherPeer), their events too
            events |= {proto.CLIENT_EVENT_PREFIX + name for name in events}
        self.events = events
        self.ws: WebSocket | None = None
        self.client: proto.ClientConnection | None = None
        self.pinged_at_ns = 0
        self._refused: str | None = None

    # -- connecting ----------------------------------------------------------------------------
    async def connect_and_subscribe(self) -> WebSocket:
        if self._refused is not None:
            raise GiveUp(self._refused)
        endpoints = self.provider.endpoints
        client = proto.ClientConnection(
            self.channel, key=endpoints.key, secret=endpoints.secret, user_id=self.user_id, user_info=USER_INFO
        )
        ws = await self._handshake(client)
        self.ws, self.client, self.pinged_at_ns = ws, client, 0
        ws.deliver_to(self._deliverer(client), lambda code, reason: self._ended(ws, code, reason))
        return ws

    async def _handshake(self, client: proto.ClientConnection) -> WebSocket:
        """Connect, read connection_established, subscribe and read the answer, within the connect timeout."""
        timeout = self.provider.connect_timeout_s
        ws: WebSocket | None = None
        try:
            async with asyncio.timeout(timeout):
                ws = await self.open_websocket(
                    self.provider.endpoints.ws_url,
                    timeout=timeout,
                    max_message=MAX_MESSAGE_BYTES,
                    tls=self.provider.tls_context,
                )
                while client.state is not proto.ClientState.SUBSCRIBED:
                    data, _rx_ns = await ws.receive(timeout)
                    event = client.receive(proto.decode(data))
                    for text in client.data_to_send():
                        ws.send_text(text)
                    if type(event) is proto.ServerError:
                        raise _error_from(event)
                    if type(event) is proto.SubscriptionRefused:
                        raise PusherRefused(f"subscription to {self.channel} refused: {event.reason}")
        except TimeoutError:
            stage = "connecting" if ws is None else client.state.value
            raise PusherConnectError(f"{stage}: no answer within {timeout:g} s") from None
        except ClosedError as exc:
            if ws is None:
                raise  # the websocket upgrade failed: its reason says why
            raise _closed_during_handshake(exc) from None
        except proto.ProtocolError as exc:
            raise PusherConnectError(f"pusher: {exc}") from None
        finally:
            if ws is not None and client.state is not proto.ClientState.SUBSCRIBED:
                ws.close()
        return ws

    # -- the hot path ---------------------------------------------------------------------------
    def _deliverer(self, client: proto.ClientConnection) -> OnMessage:
        """The callback the transport calls for every message: our event on our channel goes to ``on_data``
        with the arrival time the transport read; everything else is decoded and run through the codec.

        A frame that is just our event is read without building the frame's dict (``PlainEventMatcher``:
        exact, about a third of the general path's CPU, benchmarks/pusher_delivery.py); any other frame
        takes the general path, with the same result."""
        decode, receive, channel_event = proto.decode, client.receive, proto.ChannelEvent
        on_data, on_error, wanted = self.hooks.on_data, self.hooks.on_error, self.events
        plain = proto.PlainEventMatcher(self.channel, self.event)

        def on_message(data: str | bytes, rx_ns: int) -> None:
            if type(data) is str:
                text = plain(data)
                if text is not None:
                    on_data(text, rx_ns)
                    return
            try:
                frame = decode(data)
            except proto.ProtocolError as exc:
                on_error(f"pusher: malformed frame: {exc}")
                return
            event = receive(frame)
            if type(event) is channel_event:
                if event.event in wanted:
                    on_data(event.data, rx_ns)
                return
            self._other(client, event)

        return on_message

    def _other(self, client: proto.ClientConnection, event: proto.ClientEvent | None) -> None:
        ws = self.ws
        if ws is not None and self.client is client:
            for text in client.data_to_send():
                ws.send_text(text)
        if type(event) is proto.ServerError:
            code = "" if event.code is None else f" (code {event.code})"
            self.hooks.on_error(f"pusher:error {event.message}{code}")
        elif type(event) is proto.SubscriptionRefused:
            self.hooks.on_error(f"pusher: subscription to {event.channel} refused: {event.reason}")

    # -- the end of a connection ---------------------------------------------------------------
    def _ended(self, ws: WebSocket, code: int | None, reason: str) -> None:
        """The server closed, or the connection broke: come back as pusher-js would after ``code``."""
        if self.ws is ws:
            self.ws = None
        if self.closing:
            return
        action = proto.close_action(code)
        if action in ("refused", "tls_only"):
            self._refused = f"pusher: {reason}; not reconnecting"
            self.connection_ended(reason, 0.0)
        elif action == "retry":
            self.connection_ended(reason, 0.0)
        else:
            if code is None:  # no close frame: an abnormal end (RFC 6455 1006), reported with its cause
                self.hooks.on_error(f"pusher: {reason}")
            self.connection_ended(reason)

    # -- liveness (driven by the provider's sweeper) --------------------------------------------
    def check_alive(self, now_ns: int) -> None:
        """Ping after ``activity_timeout`` of silence; drop the connection when the pong does not come."""
        ws, client = self.ws, self.client
        if ws is None or client is None or ws.closed:
            return
        if self.pinged_at_ns and ws.last_rx_ns < self.pinged_at_ns:
            if now_ns - self.pinged_at_ns >= self.provider.pong_timeout_s * 1e9:
                self.ws = None
                ws.close()
                reason = f"no pong within {self.provider.pong_timeout_s:g} s of a ping"
                self.hooks.on_error(f"pusher: {reason}")
                self.connection_ended(reason, 0.0)  # pusher-js: retryIn(0)
            return
        self.pinged_at_ns = 0
        if now_ns - ws.last_rx_ns >= client.activity_timeout * 1e9:
            self.pinged_at_ns = now_ns
            ws.send_text(client.ping())

    # -- closing -------------------------------------------------------------------------------
    async def say_goodbye(self, connection: Connection) -> None:
        ws, client = self.ws, self.client
        if ws is not None and client is not None and not ws.closed:
            ws.send_text(client.unsubscribe())

    async def close(self) -> None:
        self.provider.subscribers.discard(self)
        await super().close()
        self.ws = None


class PusherPublisher(PublisherHandle):
    """Publishes with the Events API (``POST /apps/<id>/events``), signed by the official SDK."""

    def __init__(self, provider: PusherProvider) -> None:
        self.provider = provider
        endpoints = provider.endpoints
        self.client = PusherClient(
            endpoints.app_id,
            endpoints.key,
            endpoints.secret,
            ssl=endpoints.api_tls,
            host=endpoints.api_host,
            port=endpoints.api_port,
        )
        self.event = str(provider.options.event)

    async def publish(self, channel: str, text: str) -> None:
        request = self.client.trigger.make_request([self.provider.wire_channel(channel)], self.event, text)
        session = await shared_session()
        async with session.post(
            request.base_url + request.signed_path, data=request.body, headers=request.headers
        ) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"Events API answered HTTP {resp.status}: {body[:200].decode(errors='replace')}")

    async def close(self) -> None:
        """Nothing to release: requests use the shared session."""


class PusherPeer(PublisherHandle):
    """A client that publishes as pusher-js's ``channel.trigger`` does: a ``client-`` event over its own
    subscribed private or presence connection, which Pusher relays to the channel's other members and never
    back to the sender. What the server says against it (a refused client event) is kept in ``errors``."""

    def __init__(self, provider: PusherProvider, channel: str) -> None:
        self.provider = provider
        self.wire_channel = provider.wire_channel(channel)
        self.event = proto.CLIENT_EVENT_PREFIX + str(provider.options.event)
        self._errors: list[str] = []
        self._on_own: OnData | None = None
        self.subscriber: PusherSubscriber | None = None

    async def open(self) -> None:
        hooks = SubscriberHooks(on_data=self._heard, on_error=self._errors.append)
        self.subscriber = await self.provider.subscribe(self.wire_channel, hooks)

    def _heard(self, data: object, rx_ns: int) -> None:
        if self._on_own is not None:
            self._on_own(data, rx_ns)

    async def publish(self, channel: str, text: str) -> None:
        """Sent once written: Pusher acknowledges no client event (a refusal comes back as an error)."""
        ws = self.subscriber.ws if self.subscriber is not None else None
        if ws is None or ws.closed:
            last = f" ({self._errors[-1]})" if self._errors else ""
            raise ConnectionError(f"pusher: the client's connection is down{last}")
        ws.send_text(proto.client_event(self.provider.wire_channel(channel), self.event, text))

    async def watch_own(self, channel: str, on_data: OnData) -> bool:
        self._on_own = on_data
        return True

    @property
    def errors(self) -> list[str]:
        return self._errors

    async def close(self) -> None:
        if self.subscriber is not None:
            await self.subscriber.close()


#: a browser probe's subscription (``BrowserPage``): pusher-js as an app uses it (``cfg.options`` is its
#: constructor's options: the cluster, and the local target's websocket host and port)
PUSHER_PAGE = """
const pusher = new Pusher(cfg.key, cfg.options);
const channel = pusher.subscribe(cfg.channel);
channel.bind("pusher:subscription_succeeded", () => rtb.subscribed());
channel.bind("pusher:subscription_error", (e) => rtb.error("subscription error: " + JSON.stringify(e)));
channel.bind(cfg.event, (data) => rtb.deliver(data));
pusher.connection.bind("state_change", (s) => { if (s.previous === "connected") rtb.dropped(); });
pusher.connection.bind("error", (e) => rtb.error("pusher error: " + JSON.stringify(e && e.data || e)));
"""


class PusherProvider(Provider):
    name = "pusher"
    browser_bundle = "pusher-js/dist/web/pusher.min.js"
    target_module = "targets.pusher"
    schemes = ("http", "https", "ws", "wss")
    event_default = "rtbench"
    #: private channels under ``rtbench check``: client A then sends client events, as a browser window does
    check_defaults: ClassVar[dict[str, object]] = {"channel_type": "private"}

    def __init__(self, host: str, options: argparse.Namespace) -> None:
        super().__init__(host, options)
        self.endpoints = Endpoints.resolve(self.host, options)
        self.prefix = _PREFIX[str(getattr(options, "channel_type", "public"))]
        #: live subscribers, asked every second whether their connection still answers
        self.subscribers: Sweeper[PusherSubscriber] = Sweeper()
        #: tunables (tests shorten them): handshake budget, pong wait, TLS trust
        self.connect_timeout_s = CONNECT_TIMEOUT_S
        self.pong_timeout_s = float(proto.PONG_TIMEOUT_S)
        self.tls_context: ssl.SSLContext | None = None  # None: the system's CAs, verification on
        self._user_ids = itertools.count(1)

    @classmethod
    def add_arguments(cls, group: Any) -> None:
        super().add_arguments(group)
        group.add_argument(
            "--channel-type",
            choices=CHANNEL_TYPES,
            default="public",
            help="Pusher: public, private- or presence- channels (auth signed locally)",
        )
        group.add_argument(
            "--app-id",
            default="",
            help="Pusher app id (default: $PUSHER_APP_ID, else the "
            f"local target's {proto.LOCAL_APP_ID}); with credentials and no --host: real Pusher",
        )
        group.add_argument("--key", default="", help=f"Pusher app key (default: $PUSHER_KEY, else {proto.LOCAL_KEY})")
        group.add_argument(
            "--secret",
            default="",
            include_in_web_ui=False,
            help="Pusher app secret (default: $PUSHER_SECRET, else the local default); never logged",
        )
        group.add_argument(
            "--cluster",
            default="",
            help=f"Pusher cluster for real Pusher (default: $PUSHER_CLUSTER, else {DEFAULT_CLUSTER})",
        )

    @classmethod
    def validate(cls, options: argparse.Namespace) -> None:
        super().validate(options)
        event = str(options.event)
        if event.startswith(("pusher:", "pusher_internal:", "client-")):
            raise ProviderConfigError("--event must not start with 'pusher:' or 'client-' (reserved by Pusher)")
        if len(event) > proto.MAX_EVENT_NAME:
            raise ProviderConfigError(f"--event must be at most {proto.MAX_EVENT_NAME} characters")
        if str(getattr(options, "channel_type", "public")) not in CHANNEL_TYPES:
            raise ProviderConfigError(f"--channel-type must be one of {', '.join(CHANNEL_TYPES)}")
        if getattr(options, "refetch", None) and str(getattr(options, "channel_type", "public")) != "public":
            raise ProviderConfigError("the todo app's events are on the public channel 'todos': --channel-type public")
        app_id = _option(options, "app_id")
        if app_id and not proto.APP_ID_RE.match(app_id):
            raise ProviderConfigError("--app-id / PUSHER_APP_ID must be digits")
        if cls.is_cloud(options):
            missing = [
                f"--{n.replace('_', '-')} ({_ENV[n]})" for n in ("app_id", "key", "secret") if not _option(options, n)
            ]
            if missing:
                raise ProviderConfigError(f"real Pusher needs {', '.join(missing)}; or give --host for a local target")
            cluster = _option(options, "cluster")
            if cluster and not all(c.isalnum() or c == "-" for c in cluster):
                raise ProviderConfigError(f"--cluster {cluster!r} is not a cluster name")

    @classmethod
    def cloud_credentials(cls, options: argparse.Namespace) -> bool:
        return any(_option(options, name) for name in ("app_id", "key", "secret"))

    @classmethod
    def cloud_url(cls, options: argparse.Namespace) -> str:
        """Real Pusher's API URL (no embedded target is started then)."""
        return f"https://api-{_option(options, 'cluster') or DEFAULT_CLUSTER}.pusher.com"

    def wire_channel(self, channel: str) -> str:
        """The harness's channel name with the prefix --channel-type asks for."""
        return self.prefix + channel

    @classmethod
    def check_browser(cls, options: argparse.Namespace) -> None:
        super().check_browser(options)
        if str(getattr(options, "channel_type", "public")) != "public":
            raise ProviderConfigError(
                "--browser-probes: pusher pages subscribe to public channels (--channel-type public)"
            )

    def browser_page(self, channel: str) -> BrowserPage:
        """pusher-js over websocket; the public key only (never the secret)."""
        ends = self.endpoints
        options: dict[str, object] = {
            "cluster": _option(self.options, "cluster") or DEFAULT_CLUSTER,
            "disableStats": True,
        }
        if not ends.cloud:
            where = Endpoint.parse(ends.ws_base)
            port_key = "wssPort" if where.tls else "wsPort"
            options |= {"wsHost": where.host, port_key: where.port, "forceTLS": where.tls}
            options["enabledTransports"] = ["wss" if where.tls else "ws"]
        config = {
            "key": ends.key,
            "options": options,
            "channel": self.wire_channel(channel),
            "event": str(self.options.event),
        }
        return BrowserPage(self.browser_bundle or "", PUSHER_PAGE, config)

    async def open_subscriber(self, channel: str, hooks: SubscriberHooks) -> SubscriberHandle:
        return await self.subscribe(self.wire_channel(channel), hooks)

    async def subscribe(self, wire_channel: str, hooks: SubscriberHooks) -> PusherSubscriber:
        user_id = f"rtb-{os.getpid()}-{next(self._user_ids)}"
        subscriber = PusherSubscriber(self, wire_channel, hooks, user_id)
        await subscriber.start()
        self.subscribers.add(subscriber)
        return subscriber

    async def open_publisher(self) -> PublisherHandle:
        return PusherPublisher(self)

    async def open_peer(self, channel: str, *, echo: bool = True) -> PublisherHandle:
        """A client sending client events where the channel allows them (private, presence); on a public
        channel, the Events API publisher."""
        if self.prefix == "":
            return await self.open_publisher()
        peer = PusherPeer(self, channel)
        await peer.open()
        return peer

    async def aclose(self) -> None:
        await self.subscribers.aclose()
        for subscriber in list(self.subscribers.members):
            await subscriber.close()


def _error_from(event: proto.ServerError) -> PusherConnectError:
    """A ``pusher:error`` during the handshake: a refusal when its code says not to come back."""
    message = f"pusher:error {event.message}"
    if event.action in ("refused", "tls_only"):
        return PusherRefused(message, event.code)
    return PusherConnectError(message, event.code)


def _closed_during_handshake(exc: ClosedError) -> PusherConnectError:
    message = f"connection closed during the handshake: {exc}"
    if proto.close_action(exc.code) in ("refused", "tls_only"):
        return PusherRefused(message, exc.code)
    return PusherConnectError(message, exc.code)


PROVIDER = PusherProvider
