"""The Pusher target's websocket side: protocol 7 sessions (handshake, subscriptions, client events)
and liveness (ping the silent, close the unresponsive)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Any

from aiohttp import WSMsgType, web

from harness.protocols import pusher as proto
from targets import jsonsafe
from targets.pusher.credentials import AppCredentials
from targets.pusher.fanout import Channel, Connection, Hub
from targets.serve import WEBSOCKETS

__all__ = ["MAX_WS_MESSAGE_BYTES", "Sessions"]

log = logging.getLogger("targets.pusher")

MAX_WS_MESSAGE_BYTES = 256 * 1024


#: ``--client-events`` choices: relay as Pusher does, refuse as an app that has not enabled them, echo (a fault)
CLIENT_EVENTS = ("relay", "refuse", "echo")
#: what Pusher answers a client event from an app that has not enabled them
CLIENT_EVENTS_DISABLED = "To send client events, you must enable this feature in the Settings page of your dashboard."


class Sessions:
    """Every websocket client of one app, speaking protocol 7 against the shared Hub."""

    def __init__(
        self,
        hub: Hub,
        app: AppCredentials,
        *,
        activity_timeout: int,
        pong_timeout: float,
        max_event_bytes: int,
        client_events: str = "relay",
    ) -> None:
        self.hub = hub
        #: ``--client-events``: relay (as Pusher), refuse (an app without them), echo (a fault: to the sender too)
        self.client_events = client_events
        self.app = app
        self.activity_timeout = activity_timeout
        self.pong_timeout = pong_timeout
        self.max_event_bytes = max_event_bytes
        self._sweeper: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Future[Any]] = set()
        self._rng = random.Random()

    def _new_socket_id(self) -> str:
        while True:
            socket_id = f"{self._rng.randrange(1, 10**9)}.{self._rng.randrange(1, 10**9)}"
            if socket_id not in self.hub.connections:
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
        self.hub.connections[conn.socket_id] = conn
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
            frame = jsonsafe.checked(text, proto.decode, nested=lambda f: f.data)
        except jsonsafe.TooDeep as exc:  # refused as malformed JSON is
            conn.send(proto.error(f"Invalid JSON: {exc}"))
            return
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
                self._subscribe(conn, _data_object(frame.data))
            elif event == "pusher:unsubscribe":
                channel = _data_object(frame.data).get("channel")
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
                    user_id, user_info = _channel_data(channel_data)
                except proto.ProtocolError as exc:
                    conn.send(proto.subscription_error(name, str(exc), 400, "InvalidChannelData"))
                    return
        channel = self.hub.channels.get(name)
        if channel is None:
            channel = self.hub.channels[name] = Channel(name, kind)
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
            self.hub.control(channel, proto.member_added(name, user_id, user_info), exclude=conn.socket_id)

    def _unsubscribe(self, conn: Connection, name: str) -> None:
        if name not in conn.channels:
            return
        user_id = conn.channels.pop(name)
        channel = self.hub.channels.get(name)
        if channel is None:
            return
        channel.subscribers.pop(conn.socket_id, None)
        if user_id is not None:
            sockets = channel.sockets_of.get(user_id, set())
            sockets.discard(conn.socket_id)
            if not sockets:
                channel.sockets_of.pop(user_id, None)
                channel.members.pop(user_id, None)
                self.hub.control(channel, proto.member_removed(name, user_id))
        if not channel.subscribers:
            del self.hub.channels[name]

    def _client_event(self, conn: Connection, frame: proto.Frame) -> None:
        if self.client_events == "refuse":
            raise proto.ProtocolError(CLIENT_EVENTS_DISABLED)
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
        sender = None if self.client_events == "echo" else conn.socket_id
        self.hub.broadcast(name, frame.event, data, exclude=sender, user_id=conn.channels[name])

    def _disconnect(self, conn: Connection) -> None:
        self.hub.connections.pop(conn.socket_id, None)
        for name in list(conn.channels):
            self._unsubscribe(conn, name)

    def _ensure_sweeper(self) -> None:
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.ensure_future(self._sweep())

    async def _sweep(self) -> None:
        """One task for every connection: ping the silent, close the unresponsive with 4201."""
        period = max(0.05, min(self.activity_timeout, self.pong_timeout) / 4)
        while self.hub.connections:
            await asyncio.sleep(period)
            now = time.monotonic()
            for conn in list(self.hub.connections.values()):
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

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper


def _data_object(data: Any) -> dict[str, Any]:
    """proto.data_object, with a too-deep JSON string in ``data`` refused rather than recursed into."""
    if not isinstance(data, str):
        return proto.data_object(data)  # already decoded, and depth-checked, with its frame
    try:
        return jsonsafe.checked(data, proto.data_object)
    except jsonsafe.TooDeep as exc:
        raise proto.ProtocolError(f"'data' is not valid JSON: {exc}") from None


def _channel_data(channel_data: object) -> tuple[str, Any]:
    """proto.parse_channel_data, with too-deep ``user_info`` refused rather than recursed into."""
    if not isinstance(channel_data, str):
        return proto.parse_channel_data(channel_data)  # refuses it
    try:
        return jsonsafe.checked(channel_data, proto.parse_channel_data, nested=lambda parsed: parsed[1])
    except jsonsafe.TooDeep as exc:
        raise proto.ProtocolError(f"channel_data is {exc}") from None
