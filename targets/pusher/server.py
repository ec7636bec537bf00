"""Pusher Channels reference target: protocol 7 over aiohttp websockets plus the signed HTTP API.

Interface (what clients and the harness rely on; the wire format lives in harness.protocols.pusher):

* ``GET /app/{key}?protocol=7`` (websocket): ``pusher:connection_established`` with a ``socket_id``
  matching ``\\d+\\.\\d+`` and ``activity_timeout`` (``--activity-timeout``, default 120 s). An unknown key
  gets ``pusher:error`` 4001 and a close with 4001; a missing / malformed / unsupported ``protocol`` 4008 /
  4006 / 4007. Then ``pusher:subscribe`` / ``pusher:unsubscribe`` (public, ``private-``, ``presence-``,
  ``private-encrypted-`` relayed as private), ``pusher:ping`` -> ``pusher:pong``, client events
  ``client-*`` on private and presence channels the sender is subscribed to (relayed to the others, never
  echoed, with ``user_id`` on presence channels). A bad channel auth gets ``pusher:subscription_error``
  ``{"type": "AuthError", "error": ..., "status": 401}``; a malformed frame gets ``pusher:error`` (code
  null) and the connection stays open. A client silent for ``activity_timeout`` gets ``pusher:ping``; one
  that stays silent ``--pong-timeout`` more is closed with 4201.
* ``POST /apps/{id}/events`` ``{"name", "data", "channels" | "channel", "socket_id"?, "info"?}`` and
  ``POST /apps/{id}/batch_events`` ``{"batch": [{"channel", "name", "data", "socket_id"?}]}``: signed
  (auth_key, auth_timestamp within 600 s, auth_version 1.0, body_md5, auth_signature), else 401 with
  ``{"error": reason}``; unknown app id 404; bad body 400; data over ``--max-event-bytes`` 413.
  ``GET /apps/{id}/channels[?filter_by_prefix=&info=user_count]``, ``GET /apps/{id}/channels/{name}
  [?info=user_count,subscription_count]`` and ``GET /apps/{id}/channels/{name}/users`` (presence).
* Faults (``--delay-ms``, ``--drop-rate``, ``--corrupt-rate``) apply to every channel-event delivery,
  triggered or client event, decided per recipient at publish time and delivered in publish order.

A broadcast is encoded once per channel, down to the websocket frame, and written straight to each
recipient's transport; a fan-out never awaits, so concurrent publishes cannot interleave.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from harness.protocols import pusher as proto
from targets.base import CONNECTIONS, CORRUPT_PAYLOAD, WEBSOCKETS, DelayLine, Faults, UsageError, ws_text_frame

__all__ = ["TARGET", "AppCredentials", "PusherTarget", "add_args", "build_app"]

log = logging.getLogger("targets.pusher")

MAX_BODY_BYTES = 1024 * 1024
MAX_WS_MESSAGE_BYTES = 256 * 1024
MAX_WRITE_BUFFER_BYTES = 16 * 1024 * 1024
"""A client this far behind is closed with 4100 (over capacity) instead of growing memory without end."""


@dataclass(frozen=True)
class AppCredentials:
    app_id: str
    key: str
    secret: str = field(repr=False)


class Connection:
    """One websocket client: its socket id, channels (with its presence user id) and liveness."""

    __slots__ = ("channels", "last_seen", "pinged_at", "socket_id", "transport", "ws")

    def __init__(self, socket_id: str, ws: web.WebSocketResponse, transport: asyncio.Transport) -> None:
        self.socket_id = socket_id
        self.ws = ws
        self.transport = transport
        self.channels: dict[str, str | None] = {}  # channel -> presence user id (None elsewhere)
        self.last_seen = time.monotonic()
        self.pinged_at: float | None = None

    @property
    def open(self) -> bool:
        return not self.ws.closed and not self.transport.is_closing()

    def send(self, text: str) -> None:
        self.write(ws_text_frame(text.encode()))

    def write(self, frame: bytes) -> None:
        if self.open:
            self.transport.write(frame)


@dataclass
class Channel:
    name: str
    kind: proto.ChannelKind
    subscribers: dict[str, Connection] = field(default_factory=dict)
    members: dict[str, Any] = field(default_factory=dict)  # presence: user id -> user_info
    sockets_of: dict[str, set[str]] = field(default_factory=dict)  # presence: user id -> socket ids


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class PusherTarget:
    def __init__(
        self,
        app: AppCredentials,
        faults: Faults,
        *,
        activity_timeout: int = proto.ACTIVITY_TIMEOUT_S,
        pong_timeout: float = proto.PONG_TIMEOUT_S,
        max_event_bytes: int = proto.MAX_EVENT_DATA_BYTES,
    ) -> None:
        self.app = app
        self.faults = faults
        self.activity_timeout = activity_timeout
        self.pong_timeout = pong_timeout
        self.max_event_bytes = max_event_bytes
        self.connections: dict[str, Connection] = {}
        self.channels: dict[str, Channel] = {}
        self._delay = DelayLine(faults.delay_s) if faults.delay_ms > 0 else None
        self._sweeper: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Future[Any]] = set()
        self._rng = random.Random()
        self.clock: Callable[[], float] = time.time
        """The clock HTTP API timestamps are checked against (tests replace it)."""

    # -- websocket ---------------------------------------------------------------------------------

    def _new_socket_id(self) -> str:
        while True:
            socket_id = f"{self._rng.randrange(1, 10**9)}.{self._rng.randrange(1, 10**9)}"
            if socket_id not in self.connections:
                return socket_id

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=MAX_WS_MESSAGE_BYTES, compress=False, autoping=True)
        await ws.prepare(request)
        request.app[WEBSOCKETS].add(ws)
        refusal = self._refusal(request)
        if refusal is not None:
            code, message = refusal
            await ws.send_str(proto.error(message, code))
            await ws.close(code=code, message=message.encode()[:120])
            return ws
        assert request.transport is not None
        conn = Connection(self._new_socket_id(), ws, request.transport)
        self.connections[conn.socket_id] = conn
        self._ensure_sweeper()
        conn.send(proto.connection_established(conn.socket_id, self.activity_timeout))
        try:
            async for msg in ws:
                conn.last_seen, conn.pinged_at = time.monotonic(), None
                if msg.type == WSMsgType.TEXT:
                    self._on_text(conn, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    conn.send(proto.error("Binary frames are not supported"))
                else:  # ERROR: the loop ends with the connection
                    break
        finally:
            self._disconnect(conn)
        return ws

    def _refusal(self, request: web.Request) -> tuple[int, str] | None:
        key = request.match_info["key"]
        if key != self.app.key:
            return proto.CloseCode.APP_NOT_FOUND, f"App key {key} not in this cluster"
        raw = request.query.get("protocol")
        if raw is None:
            return proto.CloseCode.NO_PROTOCOL, "No protocol version supplied"
        if not raw.isdigit():
            return proto.CloseCode.INVALID_VERSION_FORMAT, f"Invalid version string format {raw!r}"
        if int(raw) not in proto.SUPPORTED_PROTOCOLS:
            return proto.CloseCode.UNSUPPORTED_PROTOCOL, f"Unsupported protocol version {raw}"
        return None

    def _on_text(self, conn: Connection, text: str) -> None:
        try:
            frame = proto.decode(text)
        except proto.ProtocolError as exc:
            conn.send(proto.error(str(exc)))
            return
        event = frame.event
        try:
            if event == "pusher:ping":
                conn.send(proto.pong())
            elif event == "pusher:pong":
                pass
            elif event == "pusher:subscribe":
                self._subscribe(conn, proto.data_object(frame.data))
            elif event == "pusher:unsubscribe":
                channel = proto.data_object(frame.data).get("channel")
                if isinstance(channel, str):
                    self._unsubscribe(conn, channel)
            elif event.startswith("client-"):
                self._client_event(conn, frame)
            else:
                log.debug("ignoring event %r from %s", event, conn.socket_id)
        except proto.ProtocolError as exc:
            conn.send(proto.error(str(exc)))

    def _subscribe(self, conn: Connection, data: dict[str, Any]) -> None:
        name = proto.validate_channel(data.get("channel"))
        kind = proto.channel_kind(name)
        user_id: str | None = None
        user_info: Any = None
        if kind != "public":
            channel_data = data.get("channel_data") if kind == "presence" else None
            if kind == "presence" and not isinstance(channel_data, str):
                conn.send(
                    proto.subscription_error(
                        name, "Presence subscriptions need channel_data", 400, "InvalidChannelData"
                    )
                )
                return
            reason = proto.verify_channel_auth(
                data.get("auth"), self.app.key, self.app.secret, conn.socket_id, name, channel_data
            )
            if reason is not None:
                conn.send(proto.subscription_error(name, reason))
                return
            if kind == "presence":
                try:
                    user_id, user_info = proto.parse_channel_data(channel_data)
                except proto.ProtocolError as exc:
                    conn.send(proto.subscription_error(name, str(exc), 400, "InvalidChannelData"))
                    return
        channel = self.channels.get(name)
        if channel is None:
            channel = self.channels[name] = Channel(name, kind)
        if name in conn.channels:  # already subscribed: confirm again, change nothing
            conn.send(proto.subscription_succeeded(name, channel.members if kind == "presence" else None))
            return
        conn.channels[name] = user_id
        channel.subscribers[conn.socket_id] = conn
        if user_id is None:
            conn.send(proto.subscription_succeeded(name))
            return
        first = user_id not in channel.sockets_of
        channel.sockets_of.setdefault(user_id, set()).add(conn.socket_id)
        channel.members[user_id] = user_info
        conn.send(proto.subscription_succeeded(name, channel.members))
        if first:
            self._fan_out_control(channel, proto.member_added(name, user_id, user_info), exclude=conn.socket_id)

    def _unsubscribe(self, conn: Connection, name: str) -> None:
        if name not in conn.channels:
            return
        user_id = conn.channels.pop(name)
        channel = self.channels.get(name)
        if channel is None:
            return
        channel.subscribers.pop(conn.socket_id, None)
        if user_id is not None:
            sockets = channel.sockets_of.get(user_id, set())
            sockets.discard(conn.socket_id)
            if not sockets:
                channel.sockets_of.pop(user_id, None)
                channel.members.pop(user_id, None)
                self._fan_out_control(channel, proto.member_removed(name, user_id))
        if not channel.subscribers:
            del self.channels[name]

    def _client_event(self, conn: Connection, frame: proto.Frame) -> None:
        name = frame.channel
        if name is None:
            raise proto.ProtocolError("Client event rejected - no channel given")
        kind = proto.channel_kind(name)
        if kind not in ("private", "presence"):
            raise proto.ProtocolError("Client event rejected - only supported on private and presence channels")
        if name not in conn.channels:
            raise proto.ProtocolError(f"Client event rejected - not subscribed to {name}")
        proto.validate_event_name(frame.event)
        data = proto.data_string(frame.data if frame.data is not None else {})
        if len(data.encode()) > self.max_event_bytes:
            raise proto.ProtocolError(f"Client event rejected - data larger than {self.max_event_bytes} bytes")
        self.broadcast(name, frame.event, data, exclude=conn.socket_id, user_id=conn.channels[name])

    def _disconnect(self, conn: Connection) -> None:
        self.connections.pop(conn.socket_id, None)
        for name in list(conn.channels):
            self._unsubscribe(conn, name)

    def _fan_out_control(self, channel: Channel, text: str, exclude: str | None = None) -> None:
        """Member events: protocol bookkeeping, never subject to faults."""
        frame = ws_text_frame(text.encode())
        for socket_id, conn in channel.subscribers.items():
            if socket_id != exclude:
                self._write(conn, frame)

    def _write(self, conn: Connection, frame: bytes) -> None:
        if not conn.open:
            return
        conn.transport.write(frame)
        if conn.transport.get_write_buffer_size() > MAX_WRITE_BUFFER_BYTES:
            log.warning("closing %s: %d bytes unread", conn.socket_id, conn.transport.get_write_buffer_size())
            conn.transport.abort()

    # -- liveness ----------------------------------------------------------------------------------

    def _ensure_sweeper(self) -> None:
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.ensure_future(self._sweep())

    async def _sweep(self) -> None:
        """One task for every connection: ping the silent, close the unresponsive with 4201."""
        period = max(0.05, min(self.activity_timeout, self.pong_timeout) / 4)
        while self.connections:
            await asyncio.sleep(period)
            now = time.monotonic()
            for conn in list(self.connections.values()):
                if conn.pinged_at is None:
                    if now - conn.last_seen >= self.activity_timeout:
                        conn.pinged_at = now
                        conn.send(proto.ping())
                elif now - conn.pinged_at >= self.pong_timeout:
                    conn.pinged_at = now + 3600  # one close is enough
                    task = asyncio.ensure_future(
                        conn.ws.close(code=proto.CloseCode.PONG_NOT_RECEIVED, message=b"Pong reply not received")
                    )
                    self._closing.add(task)
                    task.add_done_callback(self._closing.discard)

    # -- fan-out -----------------------------------------------------------------------------------

    def broadcast(
        self, name: str, event: str, data: str, exclude: str | None = None, user_id: str | None = None
    ) -> int:
        """Deliver an event to a channel's subscribers (but ``exclude``). Returns the recipients."""
        channel = self.channels.get(name)
        if channel is None:
            return 0
        recipients = [c for sid, c in channel.subscribers.items() if sid != exclude]
        if not recipients:
            return 0
        good = ws_text_frame(proto.channel_event(name, event, data, user_id).encode())
        if not self.faults.active:
            for conn in recipients:
                self._write(conn, good)
            return len(recipients)
        bad: bytes | None = None
        plan: list[tuple[Connection, bytes]] = []
        for conn in recipients:
            if self.faults.drop():
                continue
            if self.faults.corrupt():
                bad = bad or ws_text_frame(proto.channel_event(name, event, CORRUPT_PAYLOAD, user_id).encode())
                plan.append((conn, bad))
            else:
                plan.append((conn, good))
        if self._delay is not None:
            self._delay.call(lambda: self._deliver(plan))
        else:
            self._deliver(plan)
        return len(recipients)

    def _deliver(self, plan: Iterable[tuple[Connection, bytes]]) -> None:
        for conn, frame in plan:
            self._write(conn, frame)

    # -- HTTP API ----------------------------------------------------------------------------------

    async def _authenticated(self, request: web.Request) -> bytes:
        if request.match_info["app_id"] != self.app.app_id:
            raise HTTPError(404, f"Unknown app id {request.match_info['app_id']!r}")
        body = await request.read()
        reason = proto.verify_request(
            self.app.key, self.app.secret, request.method, request.path, dict(request.query), body, self.clock()
        )
        if reason is not None:
            raise HTTPError(401, reason)
        return body

    def _json_body(self, body: bytes) -> dict[str, Any]:
        try:
            obj = json.loads(body)
        except ValueError:
            raise HTTPError(400, "Body is not valid JSON") from None
        if not isinstance(obj, dict):
            raise HTTPError(400, "Body must be a JSON object")
        return obj

    def _event(self, obj: Any, *, batch: bool) -> tuple[list[str], str, str, str | None]:
        """Validate one event -> (channels, name, data, socket_id to exclude)."""
        if not isinstance(obj, dict):
            raise HTTPError(400, "Each event must be a JSON object")
        try:
            name = proto.validate_event_name(obj.get("name"))
            if batch or ("channel" in obj and "channels" not in obj):
                channels = [proto.validate_channel(obj.get("channel"))]
            else:
                raw = obj.get("channels")
                if not isinstance(raw, list) or not raw:
                    raise HTTPError(400, "'channels' must be a non-empty list")
                channels = [proto.validate_channel(c) for c in raw]
        except proto.ProtocolError as exc:
            raise HTTPError(400, str(exc)) from None
        if len(channels) > proto.MAX_CHANNELS_PER_TRIGGER:
            raise HTTPError(400, f"At most {proto.MAX_CHANNELS_PER_TRIGGER} channels per event")
        if name.startswith(("pusher:", "pusher_internal:")):
            raise HTTPError(400, "Event names starting with 'pusher:' are reserved")
        if "data" not in obj:
            raise HTTPError(400, "Missing 'data'")
        data = proto.data_string(obj["data"])
        if len(data.encode()) > self.max_event_bytes:
            raise HTTPError(413, f"Event data larger than {self.max_event_bytes} bytes")
        socket_id = obj.get("socket_id")
        if socket_id is not None and (not isinstance(socket_id, str) or not proto.SOCKET_ID_RE.match(socket_id)):
            raise HTTPError(400, "Invalid socket_id")
        return channels, name, data, socket_id

    def _channel_info(self, name: str, attributes: Iterable[str]) -> dict[str, Any]:
        channel = self.channels.get(name)
        info: dict[str, Any] = {}
        for attribute in attributes:
            if attribute == "subscription_count":
                info["subscription_count"] = len(channel.subscribers) if channel else 0
            elif attribute == "user_count":
                if proto.channel_kind(name) != "presence":
                    raise HTTPError(400, "user_count is only available for presence channels")
                info["user_count"] = len(channel.members) if channel else 0
            else:
                raise HTTPError(400, f"Unknown info attribute {attribute!r}")
        return info

    async def http_events(self, request: web.Request) -> web.Response:
        try:
            obj = self._json_body(await self._authenticated(request))
            channels, name, data, socket_id = self._event(obj, batch=False)
            attributes = _attributes(obj.get("info"))
            if attributes:  # validate before publishing anything
                for channel in channels:
                    self._channel_info(channel, attributes)
        except HTTPError as exc:
            return _error(exc)
        for channel in channels:
            self.broadcast(channel, name, data, exclude=socket_id)
        if not attributes:
            return web.json_response({})
        return web.json_response({"channels": {c: self._channel_info(c, attributes) for c in channels}})

    async def http_batch_events(self, request: web.Request) -> web.Response:
        try:
            obj = self._json_body(await self._authenticated(request))
            batch = obj.get("batch")
            if not isinstance(batch, list) or not batch:
                raise HTTPError(400, "'batch' must be a non-empty list")
            if len(batch) > proto.MAX_BATCH_EVENTS:
                raise HTTPError(400, f"At most {proto.MAX_BATCH_EVENTS} events per batch")
            events = [self._event(item, batch=True) for item in batch]
            infos = [_attributes(item.get("info")) for item in batch]
            for (channels, *_), attributes in zip(events, infos, strict=True):
                if attributes:
                    self._channel_info(channels[0], attributes)
        except HTTPError as exc:
            return _error(exc)
        for channels, name, data, socket_id in events:
            self.broadcast(channels[0], name, data, exclude=socket_id)
        if not any(infos):
            return web.json_response({})
        return web.json_response(
            {"batch": [self._channel_info(ev[0][0], attrs) for ev, attrs in zip(events, infos, strict=True)]}
        )

    async def http_channels(self, request: web.Request) -> web.Response:
        try:
            await self._authenticated(request)
            prefix = request.query.get("filter_by_prefix", "")
            attributes = _attributes(request.query.get("info"))
            if "user_count" in attributes and not prefix.startswith("presence-"):
                raise HTTPError(400, "info=user_count needs filter_by_prefix=presence-")
            channels = {
                name: self._channel_info(name, attributes)
                for name, ch in sorted(self.channels.items())
                if name.startswith(prefix) and ch.subscribers
            }
        except HTTPError as exc:
            return _error(exc)
        return web.json_response({"channels": channels})

    async def http_channel(self, request: web.Request) -> web.Response:
        try:
            await self._authenticated(request)
            name = request.match_info["name"]
            try:
                proto.validate_channel(name)
            except proto.ProtocolError as exc:
                raise HTTPError(400, str(exc)) from None
            info = self._channel_info(name, _attributes(request.query.get("info")))
        except HTTPError as exc:
            return _error(exc)
        channel = self.channels.get(name)
        return web.json_response({"occupied": bool(channel and channel.subscribers), **info})

    async def http_users(self, request: web.Request) -> web.Response:
        try:
            await self._authenticated(request)
            name = request.match_info["name"]
            if proto.channel_kind(name) != "presence":
                raise HTTPError(400, "Users are only available for presence channels")
        except HTTPError as exc:
            return _error(exc)
        channel = self.channels.get(name)
        return web.json_response({"users": [{"id": uid} for uid in (channel.members if channel else {})]})

    # -- bookkeeping -------------------------------------------------------------------------------

    def connection_count(self) -> int:
        return len(self.connections)

    async def close(self) -> None:
        if self._delay is not None:
            self._delay.cancel()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper


def _attributes(raw: object) -> list[str]:
    if raw is None or raw == "":
        return []
    if not isinstance(raw, str):
        raise HTTPError(400, "'info' must be a comma-separated string")
    return [a for a in (part.strip() for part in raw.split(",")) if a]


def _error(exc: HTTPError) -> web.Response:
    return web.json_response({"error": str(exc)}, status=exc.status)


TARGET: web.AppKey[PusherTarget] = web.AppKey("rtbench_pusher_target", PusherTarget)
"""The target object behind an app, for tests and embedding."""


def add_args(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument(
        "--app-id",
        default=env("PUSHER_APP_ID") or proto.LOCAL_APP_ID,
        help=f"app id, digits (default: $PUSHER_APP_ID, else {proto.LOCAL_APP_ID})",
    )
    parser.add_argument(
        "--key",
        default=env("PUSHER_KEY") or proto.LOCAL_KEY,
        help=f"app key clients connect with (default: $PUSHER_KEY, else {proto.LOCAL_KEY})",
    )
    parser.add_argument(
        "--secret",
        default=env("PUSHER_SECRET") or proto.LOCAL_SECRET,
        help=f"app secret (default: $PUSHER_SECRET, else {proto.LOCAL_SECRET})",
    )
    parser.add_argument(
        "--activity-timeout",
        type=int,
        default=proto.ACTIVITY_TIMEOUT_S,
        metavar="S",
        help="seconds announced in connection_established; silent clients get a ping (default: %(default)s)",
    )
    parser.add_argument(
        "--pong-timeout",
        type=float,
        default=float(proto.PONG_TIMEOUT_S),
        metavar="S",
        help="seconds a pinged client has to answer before a 4201 close (default: %(default)s)",
    )
    parser.add_argument(
        "--max-event-bytes",
        type=int,
        default=proto.MAX_EVENT_DATA_BYTES,
        metavar="N",
        help="largest event data accepted, as Pusher's message size limit (default: %(default)s)",
    )


def build_app(args: argparse.Namespace, faults: Faults) -> web.Application:
    """aiohttp app with the websocket endpoint and the HTTP API; /healthz is added by serve()."""
    app_id = str(getattr(args, "app_id", proto.LOCAL_APP_ID))
    key = str(getattr(args, "key", proto.LOCAL_KEY))
    secret = str(getattr(args, "secret", proto.LOCAL_SECRET))
    if not proto.APP_ID_RE.match(app_id):
        raise UsageError("--app-id must be digits (as Pusher app ids are)")
    if not key or not secret:
        raise UsageError("--key and --secret must not be empty")
    activity_timeout = int(getattr(args, "activity_timeout", proto.ACTIVITY_TIMEOUT_S))
    if activity_timeout <= 0:
        raise UsageError("--activity-timeout must be > 0 (pusher-js refuses a handshake without it)")
    pong_timeout = float(getattr(args, "pong_timeout", proto.PONG_TIMEOUT_S))
    if not pong_timeout > 0:
        raise UsageError("--pong-timeout must be > 0")
    max_event_bytes = int(getattr(args, "max_event_bytes", proto.MAX_EVENT_DATA_BYTES))
    if max_event_bytes <= 0:
        raise UsageError("--max-event-bytes must be > 0")
    target = PusherTarget(
        AppCredentials(app_id, key, secret),
        faults,
        activity_timeout=activity_timeout,
        pong_timeout=pong_timeout,
        max_event_bytes=max_event_bytes,
    )
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_get("/app/{key}", target.websocket)
    app.router.add_post("/apps/{app_id}/events", target.http_events)
    app.router.add_post("/apps/{app_id}/batch_events", target.http_batch_events)
    app.router.add_get("/apps/{app_id}/channels", target.http_channels)
    app.router.add_get("/apps/{app_id}/channels/{name}", target.http_channel)
    app.router.add_get("/apps/{app_id}/channels/{name}/users", target.http_users)
    app[CONNECTIONS] = target.connection_count
    app[TARGET] = target
    app[WEBSOCKETS] = weakref.WeakSet()  # serve() keeps it; tests that skip serve() need it too

    async def on_shutdown(_: web.Application) -> None:
        await target.close()

    app.on_shutdown.append(on_shutdown)
    return app
