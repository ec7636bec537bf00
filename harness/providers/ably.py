"""Ably: lean realtime subscribers on the measuring transport (the default), or the official ``ably``
package's AblyRealtime with ``--client official``; publishing through the official SDK, realtime (ACKed)
or REST.

The lean subscriber (:class:`LeanAblySubscriber`) is a websocket from :mod:`harness.net.websocket` speaking
the realtime protocol through :class:`harness.protocols.ably.ClientSession`: key auth in the URL as
ably-js sends it, CONNECTED, ATTACH, then every MESSAGE goes from the socket's reader straight to
``on_data`` with the kernel's receive time. Connection state drives liveness: a socket that ends, a
DISCONNECTED, or silence past maxIdleInterval plus a grace is a drop, and the shared reconnect driver
connects afresh and re-attaches (the target refuses resumes, and a fresh attach is what a resume
failing would lead to anyway); a fatal ERROR (4xxxx, e.g. 40101 bad key) stops with Ably's reason.

Official subscribers, local target (``--host http://127.0.0.1:PORT`` or the embedded one): ably-python
puts no port in its realtime URL, so the endpoint is ``127.0.0.1:PORT`` with ``tls=False``; its REST
client refuses Basic auth over plain http, so REST publishing against a local target uses token auth
(signed TokenRequests, which the target verifies). Real Ably: an API key in ``ABLY_API_KEY`` (or
``--ably-key``) and no ``--host``; lean subscribers connect to ``wss://`` the endpoint's realtime host
with the certificate verified. The key goes nowhere but into the connection (never logged, printed or
reported).

Every AblyRealtime builds its own ``httpx.AsyncClient`` with a fresh TLS context (~35 ms of CPU on the
loop, measured): a thousand subscribers would stall every delivery for half a minute. Clients are built
with one shared httpx client per process instead (subscribers never use it; REST publishers share a pool).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import logging
import random
import re
import socket
import ssl
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import ably.http.http as ably_http
import httpx
from ably import AblyRealtime, AblyRest
from ably.types.channelstate import ChannelState
from ably.types.connectionstate import ConnectionState

from harness.net.endpoint import Endpoint, bracketed
from harness.net.reconnect import Backoff, GiveUp
from harness.net.stream import ConnectError
from harness.net.websocket import WebSocket
from harness.protocols import ably as proto
from harness.protocols.ably import ProtocolError, parse_key
from harness.providers.base import (
    BrowserPage,
    OnData,
    OnError,
    Provider,
    ProviderConfigError,
    PublisherHandle,
    SubscriberHandle,
    SubscriberHooks,
    flag_or_env,
    listened_events,
)
from harness.providers.lean import LeanSubscriber

KEY_ENV = "ABLY_API_KEY"
LOCAL_KEY = "rtbench.local:rtbench-local-secret"  # targets.ably.DEFAULT_KEY (harness does not import targets)
CONNECT_TIMEOUT_S = 15.0
CLOSE_TIMEOUT_S = 5.0
DISCONNECTED_RETRY_S = 1.0
"""Base of the lean client's retry delays. ably-js's schedule with its base (disconnectedRetryTimeout)
at 1 s instead of 15 s: a benchmark wants a restarted target back within seconds (the app's own client
backs off 1 s .. 5 s); ably-js users shorten it the same way."""
PUBLISH_TIMEOUT_S = 5.0
"""How long a realtime publish waits for its ACK (ably-python waits for ever: a dead target hung the publisher)."""
OFFICIAL_RETRY_MS = 1000
"""ably-python's disconnectedRetryTimeout (15 s by default), as the lean client's base delay."""
LOCAL_REQUEST_TIMEOUT_MS = 3000
"""ably-python's realtimeRequestTimeout against a local target (10 s by default). ably-python 3.1 never reports
a refused connect (its websocket task dies with an OSError nobody awaits): the attempt ends only when this
timer fires, then the retry comes ``OFFICIAL_RETRY_MS`` later. Loopback answers in milliseconds."""
MAX_LOG_KINDS = 50
"""ably-python log lines the console gets at most (one per kind of message)."""
_DROPPED_STATES = frozenset(
    {ChannelState.ATTACHING, ChannelState.DETACHING, ChannelState.DETACHED, ChannelState.SUSPENDED, ChannelState.FAILED}
)
_ENDED = frozenset({ConnectionState.FAILED, ConnectionState.CLOSED, ConnectionState.INITIALIZED})
_CONNECTION_DOWN = frozenset(
    {ConnectionState.DISCONNECTED, ConnectionState.SUSPENDED, ConnectionState.FAILED, ConnectionState.CLOSED}
)


# -- lean subscriber ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AblyBackoff(Backoff):
    """ably-js's retry delays (RTB1): base x min((n + 2) / 3, 2) x a jitter of 0.8 .. 1, where n counts
    the disconnections since the connection was last up. The first retry after a live connection was
    lost is immediate (RTN15a; the caller passes 0), so attempt k (k failed attempts so far) is n = k + 1.
    The jitter also spreads a thousand subscribers' reconnections over a fifth of the delay."""

    first_s: float = DISCONNECTED_RETRY_S

    def delay(self, attempt: int) -> float:
        return self.first_s * min((attempt + 3) / 3, 2.0) * (1.0 - random.random() * 0.2)


def idle_grace_ms(max_idle_ms: int) -> int:
    """How long past maxIdleInterval silence is tolerated: a third of it, at least 1 s, at most 10 s
    (ably-js waits realtimeRequestTimeout, 10 s). With Ably's 15 s a dead server is noticed after 20 s
    of silence rather than ably-js's 25 s; the local target's heartbeats come every half interval."""
    return int(min(10_000, max(1_000, max_idle_ms // 3)))


class AblyRefused(GiveUp):
    """Ably said no in a way connecting again cannot fix (a 4xxxx ERROR); the message is its code and reason."""


class LeanAblySubscriber(LeanSubscriber):
    """One realtime connection attached to one channel; deliveries timed at the socket."""

    backoff = AblyBackoff()

    def __init__(
        self,
        hooks: SubscriberHooks,
        *,
        url: str,
        fmt: str,
        channel: str,
        event: str | frozenset[str] | None,
        tls: ssl.SSLContext | None = None,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
    ) -> None:
        super().__init__(hooks, connect_timeout_s)
        self.url = url  # holds the key: never log it
        self.fmt, self.channel, self.event, self.tls = fmt, channel, event, tls
        # the handshake's own deadline comes first, so a timeout fails with a reason, not the caller's wait_for
        self.handshake_timeout_s = max(connect_timeout_s * 0.9, connect_timeout_s - 0.5)
        self.session: proto.ClientSession | None = None
        self._ws: WebSocket | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._idle_limit_ns = 0
        self._idle_text = ""
        self._handing_over = False
        self._ended_during_handover: str | None = None
        self._last_quick_retry = 0.0

    # -- connecting ---------------------------------------------------------------------------------
    async def connect_and_subscribe(self) -> WebSocket:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.handshake_timeout_s
        try:
            ws = await self.open_websocket(self.url, timeout=self.handshake_timeout_s, tls=self.tls)
        except ValueError:  # a malformed URL: say so without the URL (it holds the key)
            raise ConnectError("the Ably realtime URL is malformed (check --ably-endpoint / --host)") from None
        session = proto.ClientSession(self.fmt, self.channel, self.event)
        waiting_for = "CONNECTED"
        try:
            async with asyncio.timeout_at(deadline):
                connected = await self._until(ws, session, proto.Connected)
                assert isinstance(connected, proto.Connected)
                waiting_for = "ATTACHED"
                _send(ws, session.attach())
                await self._until(ws, session, proto.Attached)
        except TimeoutError:
            ws.close()
            raise ConnectError(f"no {waiting_for} from Ably within {self.handshake_timeout_s:g} s") from None
        except BaseException:
            ws.close()
            raise
        self.session, self._ws = session, ws
        self._ended_during_handover = None
        self._handing_over = True
        try:  # frames queued behind ATTACHED are delivered now, synchronously
            ws.deliver_to(self._on_frame, self._on_close)
        finally:
            self._handing_over = False
        if self._ended_during_handover is not None:
            ws.close()
            raise ConnectionError(self._ended_during_handover)
        self._watch_idle(ws, connected.max_idle_ms)
        return ws

    async def _until(self, ws: WebSocket, session: proto.ClientSession, wanted: type) -> proto.ClientEvent:
        """Read handshake frames until ``wanted``; what ends the attempt raises (AblyRefused when fatal)."""
        while True:
            frame, _rx_ns = await ws.receive(self.handshake_timeout_s)
            try:
                event = session.receive(frame)
            except ProtocolError as exc:
                raise ConnectionError(f"Ably sent an undecodable frame: {exc}") from None
            if isinstance(event, wanted):
                return event
            if isinstance(event, proto.Failed | proto.ChannelFailed):
                what = "the connection" if isinstance(event, proto.Failed) else f"channel {self.channel!r}"
                if event.error.fatal:
                    raise AblyRefused(str(event.error))
                raise ConnectionError(f"Ably failed {what}: {event.error}")
            if isinstance(event, proto.Disconnected):
                raise ConnectionError(f"Ably disconnected: {event.error or 'no reason given'}")
            if isinstance(event, proto.Detached):
                raise ConnectionError(f"Ably detached channel {self.channel!r}: {event.error or 'no reason given'}")
            if isinstance(event, proto.Closed):
                raise ConnectionError("Ably closed the connection during the handshake")

    # -- the hot path ----------------------------------------------------------------------------
    def _on_frame(self, frame: str | bytes, rx_ns: int) -> None:
        session = self.session
        assert session is not None
        try:
            event = session.receive(frame)
        except ProtocolError as exc:
            reason = f"Ably sent an undecodable frame: {exc}"
            self.hooks.on_error(reason)
            self._end(reason)
            return
        if type(event) is proto.Deliveries:
            on_data = self.hooks.on_data
            for payload in event.payloads:
                on_data(payload, rx_ns)
            for reason in event.undecodable:
                self.hooks.on_error(reason)
            return
        if type(event) is proto.Heartbeat or type(event) is proto.Ignored:
            return
        self._on_state(event)

    def _on_state(self, event: proto.ClientEvent) -> None:
        """Everything but deliveries and heartbeats: what ends the subscription ends the connection, and
        the driver connects afresh and re-attaches (or gives up when Ably refuses that)."""
        if isinstance(event, proto.Connected):  # a new CONNECTED on a live connection (RTN24)
            if self._ws is not None:
                self._watch_idle(self._ws, event.max_idle_ms)
        elif isinstance(event, proto.Disconnected):
            self._end(f"Ably disconnected: {event.error or 'no reason given'}")
        elif isinstance(event, proto.Failed):
            self._end(f"Ably failed the connection: {event.error}")
        elif isinstance(event, proto.Closed):
            self._end("Ably closed the connection")
        elif isinstance(event, proto.Detached):
            self._end(f"Ably detached channel {self.channel!r}: {event.error or 'no reason given'}")
        elif isinstance(event, proto.ChannelFailed):
            self._end(f"Ably failed channel {self.channel!r}: {event.error}")

    def _on_close(self, code: int | None, reason: str) -> None:
        if reason.startswith("websocket protocol error"):  # garbage on the wire: an error, not just a drop
            self.hooks.on_error(reason)
        self._end(reason)

    def _end(self, reason: str) -> None:
        """The connection is over without us asking: close it and let the driver come back."""
        if self._handing_over:
            self._ended_during_handover = reason
            return
        self._cancel_idle()
        ws, self._ws = self._ws, None
        if ws is not None:
            ws.close()
        # the first retry is immediate (RTN15a), but at most one immediate retry a second (as ably-js)
        now = time.monotonic()
        since = now - self._last_quick_retry
        retry_after = 0.0 if since >= 1.0 else 1.0 - since
        self._last_quick_retry = now + retry_after
        self.connection_ended(reason, retry_after)

    # -- liveness --------------------------------------------------------------------------------
    def _watch_idle(self, ws: WebSocket, max_idle_ms: int) -> None:
        """Silence past maxIdleInterval + grace means the server or the path to it is dead (CD2h)."""
        grace_ms = idle_grace_ms(max_idle_ms)
        self._idle_limit_ns = (max_idle_ms + grace_ms) * 1_000_000
        self._idle_text = f"maxIdleInterval {max_idle_ms} ms + {grace_ms} ms grace"
        self._cancel_idle()
        self._idle_timer = asyncio.get_running_loop().call_later(self._idle_limit_ns / 1e9, self._check_idle, ws)

    def _check_idle(self, ws: WebSocket) -> None:
        self._idle_timer = None
        if ws.closed or ws is not self._ws:
            return
        silent_ns = time.time_ns() - ws.last_rx_ns  # last_rx_ns: the kernel's time of the last read
        left_ns = self._idle_limit_ns - silent_ns
        if left_ns <= 0 and _unread(ws):
            left_ns = 50_000_000  # the loop is behind, not the server: the reader gets to it first
        if left_ns > 0:
            self._idle_timer = asyncio.get_running_loop().call_later(left_ns / 1e9, self._check_idle, ws)
            return
        self._end(f"no frame from Ably for {silent_ns // 1_000_000} ms ({self._idle_text})")

    def _cancel_idle(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    # -- leaving ----------------------------------------------------------------------------------
    async def say_goodbye(self, connection: Any) -> None:
        self._cancel_idle()
        self._ws = None
        if self.session is not None and isinstance(connection, WebSocket) and not connection.closed:
            _send(connection, self.session.close())

    async def close(self) -> None:
        await super().close()
        self._cancel_idle()


def _send(ws: WebSocket, frame: str | bytes) -> None:
    if isinstance(frame, str):
        ws.send_text(frame)
    else:
        ws.send_bytes(frame)


def _unread(ws: WebSocket) -> bool:
    """Bytes (or the end) waiting in the socket that the loop has not read yet."""
    try:
        ws.stream.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return False
    return True


# -- official clients -----------------------------------------------------------------------------------
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


class _Sink:
    """Where ably-python's error logs of one client go: the last reason (a connect that fails says why) and,
    once ``on_error`` is set (a live subscriber), undecodable frames as counted errors, as the lean client
    counts them. ably-python logs such a frame and carries on; nothing else would tell the run."""

    def __init__(self) -> None:
        self.last = ""
        self.on_error: OnError | None = None

    def take(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        undecodable = exc is not None and record.funcName == "ws_read_loop"
        if undecodable:
            self.last = f"Ably sent an undecodable frame: {_text(exc)}"
        else:
            self.last = _text(exc) if exc is not None else record.getMessage().splitlines()[0]
        if undecodable and self.on_error is not None:
            self.on_error(self.last)


#: the sink of the client whose tasks are running: set while a client is built and subscribed, inherited
#: by every task ably-python creates from there (asyncio copies the context into each task)
_SINK: contextvars.ContextVar[_Sink | None] = contextvars.ContextVar("rtbench_ably_sink", default=None)


@contextlib.contextmanager
def _sinking(sink: _Sink) -> Iterator[None]:
    token = _SINK.set(sink)
    try:
        yield
    finally:
        _SINK.reset(token)


def _text(exc: BaseException | None) -> str:
    """An exception's reason, never empty (a bare TimeoutError says nothing by itself)."""
    if exc is None:
        return ""
    return _reason(exc) or type(exc).__name__


class _AblyLogRoute(logging.Handler):
    """ably-python logs every failure with a traceback (60-120 lines against a garbage server). A record of
    one of our clients goes to its sink (counted or given as a reason, never printed); any other record
    reaches the console once per kind (digits aside), one line, no traceback, with the key scrubbed."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        self.said: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        sink = _SINK.get()
        if sink is not None and record.levelno >= logging.WARNING:
            sink.take(record)
            return
        line = record.getMessage().splitlines()[0] if record.getMessage() else ""
        if record.exc_info and record.exc_info[1] is not None:
            line = f"{line}: {_text(record.exc_info[1])}" if line else _text(record.exc_info[1])
        for secret in self.secrets:
            line = line.replace(secret, "*****")
        kind = re.sub(r"\d+", "#", line)
        if kind in self.said or len(self.said) >= MAX_LOG_KINDS:
            return
        self.said.add(kind)
        quiet = logging.makeLogRecord(
            {**record.__dict__, "msg": line, "args": None, "exc_info": None, "exc_text": None}
        )
        logging.getLogger().handle(quiet)


_ROUTE = _AblyLogRoute()


def _quiet_ably_logs(secret: str) -> None:
    """ably-python's logs go through :class:`_AblyLogRoute` only (not straight to the root's handlers)."""
    logger = logging.getLogger("ably")
    if logger.level == logging.NOTSET or logger.level < logging.WARNING:
        logger.setLevel(logging.WARNING)
    _ROUTE.secrets.add(secret)
    if _ROUTE not in logger.handlers:
        logger.addHandler(_ROUTE)
    logger.propagate = False


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


class _Liveness:
    """Connection state drives drops, channel state the way back: ably-python keeps a channel ATTACHED
    while its connection is DISCONNECTED (a killed target went unnoticed), then re-attaches every channel
    once CONNECTED again. A drop is the first of: the connection leaving CONNECTED, or the channel leaving
    ATTACHED; the way back is the channel ATTACHED on a CONNECTED connection, timed from the drop. FAILED
    is final (ably-python never retries it): an error with Ably's reason."""

    def __init__(self, client: Any, hooks: SubscriberHooks, handle: AblySubscriber) -> None:
        self.client, self.hooks, self.handle = client, hooks, handle
        self.up = True
        self.lost_at_ns = 0

    def on_connection(self, change: Any) -> None:
        current = getattr(change, "current", None)
        if self.handle.closing or current not in _CONNECTION_DOWN:
            return
        self._drop()
        if current == ConnectionState.FAILED:
            reason = getattr(change, "reason", None)
            self.hooks.on_error(f"Ably failed the connection: {_text(reason) if reason else 'no reason given'}")

    def on_channel(self, change: Any) -> None:
        current = getattr(change, "current", None)
        if self.handle.closing:
            return
        if current in _DROPPED_STATES:
            self._drop()
            if current == ChannelState.FAILED:
                reason = getattr(change, "reason", None)
                self.hooks.on_error(f"Ably failed the channel: {_text(reason) if reason else 'no reason given'}")
        elif current == ChannelState.ATTACHED and not self.up and self._connected():
            self.up = True
            self.hooks.on_resubscribed()
            self.hooks.on_reconnect_ns(time.perf_counter_ns() - self.lost_at_ns)

    def _connected(self) -> bool:
        return bool(self.client.connection.state == ConnectionState.CONNECTED)

    def _drop(self) -> None:
        if self.up:
            self.up = False
            self.lost_at_ns = time.perf_counter_ns()
            self.hooks.on_drop()


async def _close_client(client: Any) -> None:
    # A FAILED or CLOSED connection has nothing to close, and ably-python would try to send CLOSE anyway.
    if client.connection.state in _ENDED:
        return
    manager = client.connection.connection_manager
    transport = getattr(manager, "transport", None)
    websocket = getattr(transport, "websocket", None)
    if transport is not None and (transport.is_disposed or websocket is None or websocket.close_code is not None):
        # no live websocket: ably-python would send CLOSE on it from a task nobody awaits (a traceback at exit)
        with contextlib.suppress(Exception):
            await transport.dispose()
        manager.transport = None
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.close(), CLOSE_TIMEOUT_S)


class AblyPublisher(PublisherHandle):
    """Publishes through a realtime client (returns once the service ACKed) or a REST client (returns on
    the 201 of ``POST /channels/{name}/messages``): both expose the same ``channels.get().publish``.

    A realtime publish with no ACK within ``timeout_s`` raises (the session counts it failed). The realtime
    client does not queue while disconnected (``queue_messages=False``): a publish then fails at once, and a
    message counted failed is never sent later behind the run's back."""

    def __init__(
        self,
        client: Any,
        event: str,
        *,
        realtime: bool,
        sink: _Sink | None = None,
        timeout_s: float = PUBLISH_TIMEOUT_S,
    ) -> None:
        self.client = client
        self.event = event
        self.realtime = realtime
        self.sink = sink or _Sink()
        self.timeout_s = timeout_s

    async def publish(self, channel: str, text: str) -> None:
        with _sinking(self.sink):
            try:
                await asyncio.wait_for(self.client.channels.get(channel).publish(self.event, text), self.timeout_s)
            except TimeoutError:
                what = "ACK" if self.realtime else "answer"
                raise TimeoutError(f"no {what} from Ably within {self.timeout_s:g} s") from None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if str(exc):
                    raise
                raise ConnectionError(_text(exc)) from None

    async def watch_own(self, channel: str, on_data: OnData) -> bool:
        """A realtime publisher attaches to ``channel`` too: Ably echoes a client's own messages unless it
        connected with ``echo=false``. A REST publisher has no connection to hear anything on."""
        if not self.realtime:
            return False
        with _sinking(self.sink):
            await asyncio.wait_for(
                self.client.channels.get(channel).subscribe(self.event, lambda m: on_data(m.data, time.time_ns())),
                self.timeout_s,
            )
        return True

    async def close(self) -> None:
        if self.realtime:
            await _close_client(self.client)
            return
        with contextlib.suppress(Exception):
            await self.client.close()


#: a browser probe's subscription (``BrowserPage``): ably-js as an app uses it (``cfg.options``: its
#: constructor's options, the key included; the page never logs)
ABLY_PAGE = """
const client = new Ably.Realtime({...cfg.options, logLevel: 0});
const channel = client.channels.get(cfg.channel);
let up = false;
client.connection.on((change) => {
  if (up && change.current !== "connected") { up = false; rtb.dropped(); }
  if (change.current === "failed") rtb.error("ably connection failed: " + (change.reason && change.reason.message));
});
channel.on("attached", () => { if (client.connection.state === "connected") { up = true; rtb.subscribed(); } });
channel.subscribe(cfg.event, (message) => rtb.deliver(message.data))
  .catch((e) => rtb.error("ably attach failed: " + e.message));
"""


class AblyProvider(Provider):
    name = "ably"
    browser_bundle = "ably/build/ably.min.js"
    official_client = "ably AblyRealtime"
    target_module = "targets.ably"
    schemes = ("http", "https", "ws", "wss")
    event_default = "todo:created"
    event_aliases = ("--ably-event",)
    #: an API key (APP.KEYID:SECRET) anywhere in a value, e.g. inside a URL
    secret_patterns = (re.compile(r"\b[\w-]+\.[\w-]+:[\w+/=-]{6,}"),)

    def __init__(self, host: str, options: argparse.Namespace) -> None:
        super().__init__(host, options)
        self.cloud = self.is_cloud(options)
        self.key = self.resolve_key(options)
        self.binary = str(getattr(options, "ably_format", "msgpack")) == "msgpack"
        self.event = str(options.event)
        self._http: _SharedHttpx | None = None
        _quiet_ably_logs(parse_key(self.key)[1])
        #: lean subscribers: how long a connection may take (connect, upgrade, CONNECTED, ATTACHED) and
        #: the TLS context for wss (None: the system's trust store, verified)
        self.connect_timeout_s = CONNECT_TIMEOUT_S
        self.tls_context: ssl.SSLContext | None = None
        query = proto.connect_query(self.key, "msgpack" if self.binary else "json")
        if self.cloud:
            endpoint = str(getattr(options, "ably_endpoint", "") or "")
            self.realtime_opts: dict[str, Any] = {"endpoint": endpoint} if endpoint else {}
            self.rest_opts: dict[str, Any] = dict(self.realtime_opts)
            self._ws_url = f"wss://{bracketed(proto.realtime_host(endpoint))}/?{query}"
        else:
            where = Endpoint.parse(self.host)
            self.realtime_opts = {
                "endpoint": where.netloc,
                "tls": where.tls,
                "realtime_request_timeout": LOCAL_REQUEST_TIMEOUT_MS,
            }
            # ably-python refuses Basic auth over plain http: sign token requests instead
            self.rest_opts = {
                "endpoint": bracketed(where.host),
                "tls": where.tls,
                ("tls_port" if where.tls else "port"): where.port,
                "use_token_auth": not where.tls,
            }
            self._ws_url = f"{where.base_url(websocket=True)}/?{query}"

    def browser_page(self, channel: str) -> BrowserPage:
        """ably-js on the realtime websocket, in this run's wire format."""
        options: dict[str, object] = {"key": self.key, "useBinaryProtocol": self.binary}
        if self.cloud:
            options |= self.realtime_opts
        else:
            where = Endpoint.parse(self.host)
            options |= {"endpoint": where.host, "tls": where.tls, ("tlsPort" if where.tls else "port"): where.port}
            options |= {"fallbackHosts": [], "disableConnectivityCheck": True}
        return BrowserPage(
            self.browser_bundle or "", ABLY_PAGE, {"options": options, "channel": channel, "event": self.event}
        )

    # -- options ------------------------------------------------------------------------------
    @classmethod
    def add_arguments(cls, group: Any) -> None:
        super().add_arguments(group)  # --event (also spelt --ably-event): the message name
        group.add_argument(
            "--ably-key",
            default="",
            include_in_web_ui=False,
            help=f"Ably: API key APP.KEYID:SECRET (default: ${KEY_ENV}; with no --host either one "
            "means the real Ably service, else the local target's key)",
        )
        group.add_argument(
            "--ably-publish",
            choices=("realtime", "rest"),
            default="realtime",
            help="Ably: publish on a realtime connection (awaiting the ACK) or with the REST API",
        )
        group.add_argument(
            "--ably-format",
            choices=("msgpack", "json"),
            default="msgpack",
            help="Ably: wire format (msgpack is the client's default)",
        )
        group.add_argument(
            "--ably-endpoint",
            default="",
            help="Ably: endpoint of the real service, e.g. 'nonprod:sandbox' (default: main)",
        )

    @staticmethod
    def _given_key(options: argparse.Namespace) -> str:
        return flag_or_env(options, "ably_key", KEY_ENV)

    @classmethod
    def cloud_credentials(cls, options: argparse.Namespace) -> bool:
        """A key was given: with no --host the run goes to real Ably."""
        return bool(cls._given_key(options))

    @classmethod
    def cloud_url(cls, options: argparse.Namespace) -> str:
        return "https://rest.ably.io"

    @classmethod
    def resolve_key(cls, options: argparse.Namespace) -> str:
        return cls._given_key(options) or LOCAL_KEY

    @classmethod
    def validate(cls, options: argparse.Namespace) -> None:
        super().validate(options)
        try:
            parse_key(cls.resolve_key(options))
        except ProtocolError:
            source = "--ably-key" if getattr(options, "ably_key", "") else KEY_ENV
            raise ProviderConfigError(f"{source} must look like APP_ID.KEY_ID:KEY_SECRET") from None

    # -- clients ------------------------------------------------------------------------------
    def _shared_http(self) -> _SharedHttpx:
        if self._http is None:
            self._http = _SharedHttpx(http2=True)
        return self._http

    def _realtime(self, sink: _Sink, **extra: Any) -> Any:
        """A realtime client whose tasks (it connects at once) carry ``sink``: its error logs go there."""
        options = {"disconnected_retry_timeout": OFFICIAL_RETRY_MS, **self.realtime_opts, **extra}
        with _with_http(self._shared_http()), _sinking(sink):
            return AblyRealtime(self.key, use_binary_protocol=self.binary, **options)

    def _rest(self) -> Any:
        with _with_http(self._shared_http()):
            return AblyRest(self.key, use_binary_protocol=self.binary, **self.rest_opts)

    async def open_subscriber(self, channel: str, hooks: SubscriberHooks) -> SubscriberHandle:
        if self.use_official_client():
            return await self._official_subscriber(channel, hooks)
        subscriber = LeanAblySubscriber(
            hooks,
            url=self._ws_url,
            fmt="msgpack" if self.binary else "json",
            channel=channel,
            event=listened_events(self.options),
            tls=self.tls_context,
            connect_timeout_s=self.connect_timeout_s,
        )
        await subscriber.start()
        return subscriber

    async def _official_subscriber(self, channel: str, hooks: SubscriberHooks) -> SubscriberHandle:
        """AblyRealtime, timed in its callback (``rx_clock`` ``callback``)."""
        sink = _Sink()
        client = self._realtime(sink)
        handle = AblySubscriber(client)
        realtime_channel = client.channels.get(channel)

        def on_message(message: Any) -> None:
            hooks.on_data(message.data, time.time_ns())

        try:
            with _sinking(sink):
                # Connected first: ably-python moves a connection to FAILED on ERROR without failing the
                # channels attaching on it, so an attach started earlier would wait out its timeout.
                await self._connected(client, sink)
                for name in sorted(listened_events(self.options)):
                    await asyncio.wait_for(realtime_channel.subscribe(name, on_message), CONNECT_TIMEOUT_S)
        except BaseException as exc:
            handle.closing = True
            await _close_client(client)
            if isinstance(exc, asyncio.CancelledError):
                raise
            if isinstance(exc, TimeoutError):
                raise ConnectionError(f"not subscribed within {CONNECT_TIMEOUT_S:g} s") from None
            raise ConnectionError(_text(exc)) from None
        liveness = _Liveness(client, hooks, handle)
        client.connection.on(liveness.on_connection)
        realtime_channel.on(liveness.on_channel)
        sink.on_error = hooks.on_error
        return handle

    async def open_publisher(self) -> PublisherHandle:
        return await self.open_peer("")

    async def open_peer(self, channel: str, *, echo: bool = True) -> PublisherHandle:
        """The publisher (realtime unless ``--ably-publish rest``); ``echo=False`` connects with ``echo=false``
        (ably-js's ``echoMessages: false``): Ably must not send its own messages back to it."""
        if str(getattr(self.options, "ably_publish", "realtime")) == "rest":
            return AblyPublisher(self._rest(), self.event, realtime=False)
        sink = _Sink()
        quiet = {} if echo else {"transport_params": {"echo": "false"}}
        client = self._realtime(sink, queue_messages=False, **quiet)
        try:
            with _sinking(sink):
                await self._connected(client, sink)
        except BaseException as exc:
            await _close_client(client)
            if isinstance(exc, ConnectionError | asyncio.CancelledError):
                raise
            raise ConnectionError(_text(exc)) from None
        return AblyPublisher(client, self.event, realtime=True, sink=sink)

    @staticmethod
    async def _connected(client: Any, sink: _Sink, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        """Wait for CONNECTED. As for a lean client's first connection, the first failure is final: a
        connection that ends up anything but CONNECTED raises ConnectionError with the best reason known
        (what ably-python logged, else its error, else the state)."""

        def reason(state: Any) -> str:
            error = client.connection.error_reason
            return sink.last or (_text(error) if error is not None else f"Ably connection {state}")

        try:
            async with asyncio.timeout(timeout_s):
                while (state := client.connection.state) != ConnectionState.CONNECTED:
                    if state in _CONNECTION_DOWN:
                        raise ConnectionError(reason(state))
                    await client.connection.once_async()
        except TimeoutError:
            last = reason(client.connection.state)
            raise ConnectionError(f"no CONNECTED from Ably within {timeout_s:g} s ({last})") from None

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.really_close()
            self._http = None


PROVIDER = AblyProvider
