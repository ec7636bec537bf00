"""Pusher Channels: our asyncio protocol-7 subscriber, and a publisher signed by the official SDK.

No maintained Python Pusher client exists, so subscribers speak the protocol themselves
(harness.protocols.pusher) over websockets from the shared aiohttp session: connect to
``/app/<key>?protocol=7``, read ``connection_established``, subscribe (private and presence auth computed
locally with the secret, as an app's auth endpoint would), answer pings, ping when the line goes quiet,
and reconnect and re-subscribe after a drop the way pusher-js does (4000-4099: give up; 4100-4199: back
off; 4200-4299: at once).

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
import contextlib
import itertools
import logging
import os
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from pusher.pusher_client import PusherClient  # type: ignore[import-untyped,unused-ignore]

from harness.protocols import pusher as proto
from harness.providers.base import (
    Provider,
    ProviderConfigError,
    PublisherHandle,
    SubscriberHandle,
    SubscriberHooks,
)
from harness.providers.http import shared_session

log = logging.getLogger("rtbench.pusher")

CONNECT_TIMEOUT_S = 15.0
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 5.0
CLIENT_NAME = "rtbench-python"
CLIENT_VERSION = "1.0"
DEFAULT_CLUSTER = "mt1"
CHANNEL_TYPES = ("public", "private", "presence")
_PREFIX = {"public": "", "private": "private-", "presence": "presence-"}
_ENV = {"app_id": "PUSHER_APP_ID", "key": "PUSHER_KEY", "secret": "PUSHER_SECRET", "cluster": "PUSHER_CLUSTER"}


class PusherConnectError(ConnectionError):
    """The server refused the connection or the subscription (its reason and Pusher code, if any)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message if code is None else f"{message} (code {code})")
        self.code = code


def _option(options: argparse.Namespace, name: str) -> str:
    """A credential from its flag, else its environment variable, else ''."""
    value = getattr(options, name, None) or os.environ.get(_ENV[name], "")
    return str(value).strip()


def _credentials_given(options: argparse.Namespace) -> bool:
    return any(_option(options, name) for name in ("app_id", "key", "secret"))


def _is_cloud(host: str | None, options: argparse.Namespace) -> bool:
    return not host and _credentials_given(options)


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
        user_host = getattr(options, "host", None)
        cloud = _is_cloud(user_host, options)
        app_id = _option(options, "app_id") or proto.LOCAL_APP_ID
        key = _option(options, "key") or proto.LOCAL_KEY
        secret = _option(options, "secret") or proto.LOCAL_SECRET
        if cloud:
            cluster = _option(options, "cluster") or DEFAULT_CLUSTER
            return cls(app_id, key, secret, f"wss://ws-{cluster}.pusher.com:443", f"api-{cluster}.pusher.com", 443,
                       True, True)
        parts = urlsplit(host)
        tls = parts.scheme in ("https", "wss")
        port = parts.port or (443 if tls else 80)
        hostname = parts.hostname or "127.0.0.1"
        netloc = f"[{hostname}]" if ":" in hostname else hostname
        return cls(app_id, key, secret, f"{'wss' if tls else 'ws'}://{netloc}:{port}", hostname, port, tls, False)

    @property
    def ws_url(self) -> str:
        return (f"{self.ws_base}/app/{self.key}?protocol={proto.PROTOCOL_VERSION}&client={CLIENT_NAME}"
                f"&version={CLIENT_VERSION}&flash=false")


class PusherSubscriber(SubscriberHandle):
    """One connection subscribed to one channel, reconnecting by itself until closed."""

    def __init__(self, provider: PusherProvider, channel: str, hooks: SubscriberHooks, user_id: str) -> None:
        self.provider = provider
        self.channel = channel
        self.hooks = hooks
        self.user_id = user_id
        self.event = str(provider.options.event)
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.socket_id = ""
        self.activity_timeout = float(proto.ACTIVITY_TIMEOUT_S)
        self.last_seen = time.monotonic()
        self.pinged_at: float | None = None
        self.closing = False
        self._task: asyncio.Task[None] | None = None

    # -- connect -----------------------------------------------------------------------------------
    async def connect(self) -> None:
        """Connect and subscribe; returns once the server confirmed the subscription."""
        session = await shared_session()
        ws = await session.ws_connect(self.provider.endpoints.ws_url, autoping=True, compress=0,
                                      max_msg_size=MAX_MESSAGE_BYTES, timeout=aiohttp.ClientWSTimeout(
                                          ws_receive=None, ws_close=5.0))
        try:
            await self._handshake(ws)
        except BaseException:
            await ws.close()
            raise
        self.ws = ws
        self.last_seen, self.pinged_at = time.monotonic(), None

    async def _receive_frame(self, ws: aiohttp.ClientWebSocketResponse, deadline: float) -> proto.Frame:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no answer from the server")
            msg = await ws.receive(timeout=remaining)
            if msg.type == aiohttp.WSMsgType.TEXT:
                return proto.decode(msg.data)
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED,
                            aiohttp.WSMsgType.ERROR):
                raise PusherConnectError(f"connection closed during the handshake: {msg.extra or ''}".rstrip(": "),
                                         ws.close_code)

    async def _handshake(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        frame = await self._receive_frame(ws, deadline)
        if frame.event == "pusher:error":
            raise _error_from(frame)
        if frame.event != "pusher:connection_established":
            raise PusherConnectError(f"expected pusher:connection_established, got {frame.event}")
        data = proto.data_object(frame.data)
        socket_id = data.get("socket_id")
        if not isinstance(socket_id, str) or not proto.SOCKET_ID_RE.match(socket_id):
            raise PusherConnectError(f"invalid socket_id {socket_id!r}")
        timeout = data.get("activity_timeout")
        self.socket_id = socket_id
        if isinstance(timeout, int | float) and timeout > 0:
            self.activity_timeout = float(timeout)
        await ws.send_str(self._subscribe_frame())
        while True:
            frame = await self._receive_frame(ws, deadline)
            if frame.event == "pusher_internal:subscription_succeeded" and frame.channel == self.channel:
                return
            if frame.event == "pusher:subscription_error" and frame.channel == self.channel:
                raise PusherConnectError(f"subscription to {self.channel} refused: {_reason(frame.data)}")
            if frame.event == "pusher:error":
                raise _error_from(frame)
            if frame.event == "pusher:ping":
                await ws.send_str(proto.client_pong())

    def _subscribe_frame(self) -> str:
        kind = proto.channel_kind(self.channel)
        endpoints = self.provider.endpoints
        if kind == "public":
            return proto.subscribe(self.channel)
        channel_data = None
        if kind == "presence":
            channel_data = proto.encode_json({"user_id": self.user_id, "user_info": {"tool": "rtbench"}})
        auth = proto.channel_auth(endpoints.key, endpoints.secret, self.socket_id, self.channel, channel_data)
        return proto.subscribe(self.channel, auth, channel_data)

    # -- run ---------------------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            code = await self._read()
            if self.closing:
                return
            self.ws = None
            self.hooks.on_drop()
            if not await self._reconnect(code):
                return
            self.hooks.on_resubscribed()

    async def _read(self) -> int | None:
        """Deliver until the connection ends; returns its close code."""
        ws = self.ws
        assert ws is not None
        hooks, event, channel = self.hooks, self.event, self.channel
        async for msg in ws:
            self.last_seen, self.pinged_at = time.monotonic(), None
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue  # BINARY is not Pusher; ERROR ends the iteration by itself
            try:
                frame = proto.decode(msg.data)
            except proto.ProtocolError as exc:
                hooks.on_error(f"pusher: malformed frame: {exc}")
                continue
            if frame.event == event and frame.channel == channel:
                hooks.on_data(frame.data, time.time_ns())
            elif frame.event == "pusher:ping":
                await ws.send_str(proto.client_pong())
            elif frame.event == "pusher:error":
                hooks.on_error(f"pusher:error {_reason(frame.data)}")
        return ws.close_code

    async def _reconnect(self, code: int | None) -> bool:
        """Reconnect as pusher-js would after a close with ``code``; False when the server refused us."""
        action = proto.close_action(code)
        if action in ("refused", "tls_only"):
            self.hooks.on_error(f"pusher: server closed the connection with {code}; not reconnecting")
            return False
        delay = 0.0 if action == "retry" else BACKOFF_FIRST_S
        while not self.closing:
            if delay:
                await asyncio.sleep(delay)
            if self.closing:
                return False
            try:
                await asyncio.wait_for(self.connect(), CONNECT_TIMEOUT_S)
            except PusherConnectError as exc:
                if proto.close_action(exc.code) in ("refused", "tls_only"):
                    self.hooks.on_error(f"pusher: reconnect refused: {exc}")
                    return False
            except (OSError, TimeoutError, aiohttp.ClientError, proto.ProtocolError) as exc:
                log.debug("pusher: reconnect failed: %s", exc)
            else:
                if self.closing:
                    await self._close_ws()
                    return False
                return True
            delay = min(BACKOFF_MAX_S, max(BACKOFF_FIRST_S, delay * 2))
        return False

    # -- liveness (driven by the provider's sweeper) -----------------------------------------------
    def check_alive(self, now: float) -> None:
        ws = self.ws
        if ws is None or ws.closed:
            return
        if self.pinged_at is None:
            if now - self.last_seen >= self.activity_timeout:
                self.pinged_at = now
                _spawn(_send_quietly(ws, proto.client_ping()))
        elif now - self.pinged_at >= proto.PONG_TIMEOUT_S:
            self.pinged_at = now + 3600
            _spawn(ws.close())  # the read loop ends and reconnects

    async def _close_ws(self) -> None:
        ws, self.ws = self.ws, None
        if ws is not None and not ws.closed:
            with contextlib.suppress(Exception):
                await ws.close()

    async def close(self) -> None:
        self.closing = True
        self.provider.subscribers.discard(self)
        ws = self.ws
        if ws is not None and not ws.closed:
            with contextlib.suppress(Exception):
                await ws.send_str(proto.unsubscribe(self.channel))
        await self._close_ws()
        task = self._task
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), 5)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()


class PusherPublisher(PublisherHandle):
    """Publishes with the Events API (``POST /apps/<id>/events``), signed by the official SDK."""

    def __init__(self, provider: PusherProvider) -> None:
        self.provider = provider
        endpoints = provider.endpoints
        self.client = PusherClient(endpoints.app_id, endpoints.key, endpoints.secret, ssl=endpoints.api_tls,
                                   host=endpoints.api_host, port=endpoints.api_port)
        self.event = str(provider.options.event)

    async def publish(self, channel: str, text: str) -> None:
        request = self.client.trigger.make_request([self.provider.wire_channel(channel)], self.event, text)
        session = await shared_session()
        async with session.post(request.base_url + request.signed_path, data=request.body,
                                headers=request.headers) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"Events API answered HTTP {resp.status}: {body[:200].decode(errors='replace')}")

    async def close(self) -> None:
        """Nothing to release: requests use the shared session."""


class PusherProvider(Provider):
    name = "pusher"
    target_module = "targets.pusher"
    schemes = ("http", "https", "ws", "wss")

    def __init__(self, host: str, options: argparse.Namespace) -> None:
        super().__init__(host, options)
        self.endpoints = Endpoints.resolve(self.host, options)
        self.prefix = _PREFIX[str(getattr(options, "channel_type", "public"))]
        self.subscribers: set[PusherSubscriber] = set()
        self._user_ids = itertools.count(1)
        self._sweeper: asyncio.Task[None] | None = None

    @classmethod
    def add_arguments(cls, group: Any) -> None:
        group.add_argument("--channel-type", choices=CHANNEL_TYPES, default="public",
                           help="Pusher: public, private- or presence- channels (auth signed locally)")
        group.add_argument("--event", default="rtbench",
                           help="Pusher: event name published and listened to (default: rtbench)")
        group.add_argument("--app-id", default="", help="Pusher app id (default: $PUSHER_APP_ID, else the "
                           f"local target's {proto.LOCAL_APP_ID}); with credentials and no --host: real Pusher")
        group.add_argument("--key", default="", help="Pusher app key (default: $PUSHER_KEY, else "
                           f"{proto.LOCAL_KEY})")
        group.add_argument("--secret", default="", include_in_web_ui=False,
                           help="Pusher app secret (default: $PUSHER_SECRET, else the local default); never logged")
        group.add_argument("--cluster", default="", help="Pusher cluster for real Pusher (default: $PUSHER_CLUSTER, "
                           f"else {DEFAULT_CLUSTER})")

    @classmethod
    def validate(cls, options: argparse.Namespace) -> None:
        event = str(getattr(options, "event", "") or "")
        if not event.strip():
            raise ProviderConfigError("--event must not be empty")
        if event.startswith(("pusher:", "pusher_internal:", "client-")):
            raise ProviderConfigError("--event must not start with 'pusher:' or 'client-' (reserved by Pusher)")
        if len(event) > proto.MAX_EVENT_NAME:
            raise ProviderConfigError(f"--event must be at most {proto.MAX_EVENT_NAME} characters")
        if str(getattr(options, "channel_type", "public")) not in CHANNEL_TYPES:
            raise ProviderConfigError(f"--channel-type must be one of {', '.join(CHANNEL_TYPES)}")
        app_id = _option(options, "app_id")
        if app_id and not proto.APP_ID_RE.match(app_id):
            raise ProviderConfigError("--app-id / PUSHER_APP_ID must be digits")
        if _is_cloud(getattr(options, "host", None), options):
            missing = [f"--{n.replace('_', '-')} ({_ENV[n]})" for n in ("app_id", "key", "secret")
                       if not _option(options, n)]
            if missing:
                raise ProviderConfigError(f"real Pusher needs {', '.join(missing)}; or give --host for a local target")
            cluster = _option(options, "cluster")
            if cluster and not all(c.isalnum() or c == "-" for c in cluster):
                raise ProviderConfigError(f"--cluster {cluster!r} is not a cluster name")

    @classmethod
    def describe_target(cls, host: str | None, options: argparse.Namespace) -> str:
        return "cloud" if _is_cloud(host, options) else super().describe_target(host, options)

    @classmethod
    def cloud_host(cls, options: argparse.Namespace) -> str | None:
        """Real Pusher's API URL when credentials are configured and no --host was given: no embedded
        target is started then."""
        if not _is_cloud(getattr(options, "host", None), options):
            return None
        return f"https://api-{_option(options, 'cluster') or DEFAULT_CLUSTER}.pusher.com"

    def wire_channel(self, channel: str) -> str:
        """The harness's channel name with the prefix --channel-type asks for."""
        return self.prefix + channel

    async def open_subscriber(self, channel: str, hooks: SubscriberHooks) -> SubscriberHandle:
        user_id = f"rtb-{os.getpid()}-{next(self._user_ids)}"
        subscriber = PusherSubscriber(self, self.wire_channel(channel), hooks, user_id)
        await subscriber.connect()
        self.subscribers.add(subscriber)
        subscriber.start()
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.ensure_future(self._sweep())
        return subscriber

    async def open_publisher(self) -> PublisherHandle:
        return PusherPublisher(self)

    async def _sweep(self) -> None:
        """One task for every subscriber: ping quiet connections, drop the ones that stopped answering."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for subscriber in list(self.subscribers):
                subscriber.check_alive(now)

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for subscriber in list(self.subscribers):
            await subscriber.close()


def _reason(data: Any) -> str:
    try:
        obj = proto.data_object(data)
    except proto.ProtocolError:
        return str(data)[:200]
    return str(obj.get("error") or obj.get("message") or obj)[:200]


def _error_from(frame: proto.Frame) -> PusherConnectError:
    try:
        obj = proto.data_object(frame.data)
    except proto.ProtocolError:
        return PusherConnectError(f"pusher:error {frame.data!r}")
    code = obj.get("code")
    return PusherConnectError(f"pusher:error {obj.get('message')}", code if isinstance(code, int) else None)


_BACKGROUND: set[asyncio.Future[Any]] = set()


def _spawn(coro: Coroutine[Any, Any, Any]) -> None:
    """Fire and forget, keeping a reference so the task is not collected mid-flight."""
    task = asyncio.ensure_future(coro)
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


async def _send_quietly(ws: aiohttp.ClientWebSocketResponse, text: str) -> None:
    with contextlib.suppress(Exception):
        await ws.send_str(text)


PROVIDER = PusherProvider
