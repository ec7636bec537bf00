"""Ably over the official ``ably`` package: AblyRealtime subscribers, realtime (ACKed) or REST publishing.

Local target (``--host http://127.0.0.1:PORT`` or the embedded one): ably-python puts no port in its
realtime URL, so the endpoint is ``127.0.0.1:PORT`` with ``tls=False``; its REST client refuses Basic
auth over plain http, so REST publishing against a local target uses token auth (signed TokenRequests,
which the target verifies). Real Ably: an API key in ``ABLY_API_KEY`` (or ``--ably-key``) and no
``--host``; the key goes nowhere but into the client (never logged, printed or reported).

Every AblyRealtime builds its own ``httpx.AsyncClient`` with a fresh TLS context (~35 ms of CPU on the
loop, measured): a thousand subscribers would stall every delivery for half a minute. Clients are built
with one shared httpx client per process instead (subscribers never use it; REST publishers share a pool).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import time
import types
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import ably.http.http as ably_http
import httpx
from ably import AblyRealtime, AblyRest
from ably.types.channelstate import ChannelState
from ably.types.connectionstate import ConnectionState

from harness.protocols.ably import ProtocolError, parse_key
from harness.providers.base import (
    Provider,
    ProviderConfigError,
    PublisherHandle,
    SubscriberHandle,
    SubscriberHooks,
)

KEY_ENV = "ABLY_API_KEY"
LOCAL_KEY = "rtbench.local:rtbench-local-secret"  # targets.ably.DEFAULT_KEY (harness does not import targets)
CONNECT_TIMEOUT_S = 15.0
CLOSE_TIMEOUT_S = 5.0
_DROPPED_STATES = frozenset({ChannelState.ATTACHING, ChannelState.DETACHING, ChannelState.DETACHED,
                             ChannelState.SUSPENDED, ChannelState.FAILED})
_ENDED = frozenset({ConnectionState.FAILED, ConnectionState.CLOSED, ConnectionState.INITIALIZED})


class _SharedHttpx(httpx.AsyncClient):
    """The per-process httpx client handed to every ably client; their close() must not close it."""

    async def aclose(self) -> None:
        return None

    async def really_close(self) -> None:
        await super().aclose()


@contextlib.contextmanager
def _with_http(client: _SharedHttpx) -> Iterator[None]:
    """While ably builds a client (synchronously, on this loop's thread), its Http gets ``client``."""
    saved = ably_http.httpx
    ably_http.httpx = types.SimpleNamespace(AsyncClient=lambda **_kw: client)
    try:
        yield
    finally:
        ably_http.httpx = saved


class _Redact(logging.Filter):
    """ably-python logs its websocket URL (key included) at INFO: scrub the secret from any record."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.secret in message:
            record.msg, record.args = message.replace(self.secret, "*****"), None
        return True


def _quiet_ably_logs(secret: str) -> None:
    logger = logging.getLogger("ably")
    if logger.level == logging.NOTSET or logger.level < logging.WARNING:
        logger.setLevel(logging.WARNING)
    redact = _Redact(secret)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _Redact) and f.secret == secret for f in handler.filters):
            handler.addFilter(redact)


def _reason(exc: BaseException) -> str:
    """AblyException's text is ``message status code``; keep it short and keyless."""
    code = getattr(exc, "code", None)
    message = str(getattr(exc, "message", "") or exc)
    return f"{code} {message}".strip() if code else message


class AblySubscriber(SubscriberHandle):
    def __init__(self, client: Any) -> None:
        self.client = client
        self.closing = False

    async def close(self) -> None:
        self.closing = True
        await _close_client(self.client)


async def _close_client(client: Any) -> None:
    # A FAILED or CLOSED connection has nothing to close, and ably-python would try to send CLOSE anyway.
    if client.connection.state in _ENDED:
        return
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.close(), CLOSE_TIMEOUT_S)


class AblyPublisher(PublisherHandle):
    """Publishes through a realtime client (returns once the service ACKed) or a REST client (returns on
    the 201 of ``POST /channels/{name}/messages``): both expose the same ``channels.get().publish``."""

    def __init__(self, client: Any, event: str, *, realtime: bool) -> None:
        self.client = client
        self.event = event
        self.realtime = realtime

    async def publish(self, channel: str, text: str) -> None:
        await self.client.channels.get(channel).publish(self.event, text)

    async def close(self) -> None:
        if self.realtime:
            await _close_client(self.client)
            return
        with contextlib.suppress(Exception):
            await self.client.close()


class AblyProvider(Provider):
    name = "ably"
    official_client = "ably AblyRealtime"
    target_module = "targets.ably"
    schemes = ("http", "https", "ws", "wss")

    def __init__(self, host: str, options: argparse.Namespace) -> None:
        super().__init__(host, options)
        self.cloud = self.is_cloud(options)
        self.key = self.resolve_key(options)
        self.binary = str(getattr(options, "ably_format", "msgpack")) == "msgpack"
        self.event = str(getattr(options, "ably_event", "todo:created"))
        self._http: _SharedHttpx | None = None
        _quiet_ably_logs(parse_key(self.key)[1])
        if self.cloud:
            endpoint = str(getattr(options, "ably_endpoint", "") or "")
            self.realtime_opts: dict[str, Any] = {"endpoint": endpoint} if endpoint else {}
            self.rest_opts: dict[str, Any] = dict(self.realtime_opts)
        else:
            parts = urlsplit(self.host)
            tls = parts.scheme in ("https", "wss")
            hostname = parts.hostname or "127.0.0.1"
            if ":" in hostname:
                hostname = f"[{hostname}]"
            port = parts.port or (443 if tls else 80)
            self.realtime_opts = {"endpoint": f"{hostname}:{port}", "tls": tls}
            # ably-python refuses Basic auth over plain http: sign token requests instead
            self.rest_opts = {"endpoint": hostname, "tls": tls, ("tls_port" if tls else "port"): port,
                              "use_token_auth": not tls}

    # -- options ------------------------------------------------------------------------------
    @classmethod
    def add_arguments(cls, group: Any) -> None:
        group.add_argument("--ably-key", default="", include_in_web_ui=False,
                           help=f"Ably: API key APP.KEYID:SECRET (default: ${KEY_ENV}; with no --host either one "
                                "means the real Ably service, else the local target's key)")
        group.add_argument("--ably-publish", choices=("realtime", "rest"), default="realtime",
                           help="Ably: publish on a realtime connection (awaiting the ACK) or with the REST API")
        group.add_argument("--ably-format", choices=("msgpack", "json"), default="msgpack",
                           help="Ably: wire format (msgpack is the client's default)")
        group.add_argument("--ably-event", default="todo:created", help="Ably: message name published and subscribed")
        group.add_argument("--ably-endpoint", default="",
                           help="Ably: endpoint of the real service, e.g. 'nonprod:sandbox' (default: main)")

    @staticmethod
    def _given_key(options: argparse.Namespace) -> str:
        return str(getattr(options, "ably_key", "") or os.environ.get(KEY_ENV, "")).strip()

    @classmethod
    def is_cloud(cls, options: argparse.Namespace) -> bool:
        """Real Ably: a key was given and no --host (the harness's own embedded target is not a host)."""
        return bool(cls._given_key(options)) and not getattr(options, "host", None)

    @classmethod
    def resolve_key(cls, options: argparse.Namespace) -> str:
        return cls._given_key(options) or LOCAL_KEY

    @classmethod
    def validate(cls, options: argparse.Namespace) -> None:
        try:
            parse_key(cls.resolve_key(options))
        except ProtocolError:
            source = "--ably-key" if getattr(options, "ably_key", "") else KEY_ENV
            raise ProviderConfigError(f"{source} must look like APP_ID.KEY_ID:KEY_SECRET") from None
        if not str(getattr(options, "ably_event", "x")).strip():
            raise ProviderConfigError("--ably-event must not be empty")

    @classmethod
    def cloud_host(cls, options: argparse.Namespace) -> str | None:
        """No --host and a key: the run goes to real Ably, and no embedded target is started."""
        return "https://rest.ably.io" if cls.is_cloud(options) else None

    @classmethod
    def describe_target(cls, host: str | None, options: argparse.Namespace) -> str:
        if host:
            return "external"
        return "cloud" if cls.is_cloud(options) else "embedded"

    # -- clients ------------------------------------------------------------------------------
    def _shared_http(self) -> _SharedHttpx:
        if self._http is None:
            self._http = _SharedHttpx(http2=True)
        return self._http

    def _realtime(self, **extra: Any) -> Any:
        with _with_http(self._shared_http()):
            return AblyRealtime(self.key, use_binary_protocol=self.binary, **self.realtime_opts, **extra)

    def _rest(self) -> Any:
        with _with_http(self._shared_http()):
            return AblyRest(self.key, use_binary_protocol=self.binary, **self.rest_opts)

    async def open_subscriber(self, channel: str, hooks: SubscriberHooks) -> SubscriberHandle:
        client = self._realtime()
        handle = AblySubscriber(client)
        realtime_channel = client.channels.get(channel)
        state = {"attached": False, "dropped": False}

        def on_channel_state(change: Any) -> None:
            """Attached -> anything else is a drop; back to attached is a re-subscribe (ably re-attaches
            by itself after a reconnect)."""
            if not state["attached"] or handle.closing:
                return
            current = getattr(change, "current", None)
            if current in _DROPPED_STATES and not state["dropped"]:
                state["dropped"] = True
                hooks.on_drop()
            elif current == ChannelState.ATTACHED and state["dropped"]:
                state["dropped"] = False
                hooks.on_resubscribed()

        def on_message(message: Any) -> None:
            hooks.on_data(message.data, time.time_ns())

        try:
            # Connected first: ably-python moves a connection to FAILED on ERROR without failing the
            # channels attaching on it, so an attach started earlier would wait out its timeout.
            await asyncio.wait_for(self._connected(client), CONNECT_TIMEOUT_S)
            await asyncio.wait_for(realtime_channel.subscribe(self.event, on_message), CONNECT_TIMEOUT_S)
        except BaseException as exc:
            handle.closing = True
            await _close_client(client)
            if isinstance(exc, asyncio.TimeoutError | asyncio.CancelledError):
                raise
            raise ConnectionError(_reason(exc)) from None
        state["attached"] = True
        realtime_channel.on(on_channel_state)
        return handle

    async def open_publisher(self) -> PublisherHandle:
        if str(getattr(self.options, "ably_publish", "realtime")) == "rest":
            return AblyPublisher(self._rest(), self.event, realtime=False)
        client = self._realtime()
        try:
            await asyncio.wait_for(self._connected(client), CONNECT_TIMEOUT_S)
        except BaseException:
            await _close_client(client)
            raise
        return AblyPublisher(client, self.event, realtime=True)

    @staticmethod
    async def _connected(client: Any) -> None:
        """Wait for CONNECTED; a FAILED connection raises its Ably error."""
        while client.connection.state != ConnectionState.CONNECTED:
            if client.connection.state in (ConnectionState.FAILED, ConnectionState.CLOSED,
                                           ConnectionState.SUSPENDED):
                reason = client.connection.error_reason
                raise ConnectionError(_reason(reason) if reason is not None else str(client.connection.state))
            await client.connection.once_async()

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.really_close()
            self._http = None


PROVIDER = AblyProvider
