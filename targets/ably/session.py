"""The Ably target's realtime side: one WebSocket session per client (connect, attach, publish, presence,
auth, heartbeats), speaking harness.protocols.ably over the shared Hub."""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from collections.abc import Mapping
from typing import Any

from aiohttp import WSMsgType, web

from harness.protocols import ably as proto
from harness.protocols.ably import Action, ErrorInfo, Flag, ProtocolError
from targets import jsonsafe
from targets.ably.auth import Auth
from targets.ably.fanout import Connection, Hub
from targets.ably.messages import MAX_CHANNEL_NAME, Frames, now_ms, validate_messages
from targets.ably.rest import rest_error
from targets.serve import WEBSOCKETS
from targets.wsframes import ws_frame

__all__ = ["Realtime"]

log = logging.getLogger("targets.ably")

WS_PING = b"\x89\x00"


def decode_frame(data: bytes | str, fmt: str) -> dict[str, Any]:
    """A client's frame -> protocol message; too-deep input is a 40000 like any undecodable frame."""
    try:
        return jsonsafe.checked(data, lambda raw: proto.decode(raw, fmt), binary=fmt == "msgpack")
    except jsonsafe.TooDeep as exc:
        raise ProtocolError(ErrorInfo.bad_request(f"Unable to decode {fmt} protocol message: {exc}")) from None


class Realtime:
    """The WebSocket endpoint at ``/``."""

    def __init__(self, hub: Hub, auth: Auth, *, max_idle_ms: int, ignore_echo: bool = False) -> None:
        self.hub = hub
        self.auth = auth
        self.max_idle_ms = max_idle_ms
        #: a fault (``--ignore-echo``): every connection hears its own messages, echo=false or not
        self.ignore_echo = ignore_echo
        self._heartbeats: asyncio.Task[None] | None = None

    def _details(self, conn: Connection) -> proto.ConnectionDetails:
        return proto.ConnectionDetails(
            connection_key=conn.key,
            server_id=self.hub.server_id,
            client_id=conn.client_id,
            max_message_size=self.hub.max_message_size,
            max_idle_interval=self.max_idle_ms,
        )

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return rest_error(request, ErrorInfo.bad_request("Expected a WebSocket upgrade at /"))
        # The upgrade is accepted first: the client learns why it failed from an ERROR message, as from Ably.
        ws = web.WebSocketResponse(compress=False, max_msg_size=4 * 1024 * 1024, autoping=True)
        await ws.prepare(request)
        request.app[WEBSOCKETS].add(ws)
        transport = request.transport
        fmt = request.query.get("format", "json")
        try:
            params = proto.parse_connect_params(request.query)
            key_name, client_id = self.auth.authenticate(params)
        except ProtocolError as exc:
            binary = fmt == "msgpack"
            if transport is not None and not transport.is_closing():
                payload = proto.encode(proto.error(exc.error), "msgpack" if binary else "json")
                transport.write(ws_frame(payload, binary))
            await ws.close()
            return ws
        assert transport is not None
        conn = Connection(
            id=f"{self.hub.server_id[-4:]}{uuid.uuid4().hex[:10]}",
            key="",
            key_name=key_name,
            fmt=params.fmt,
            client_id=client_id,
            echo=params.echo or self.ignore_echo,
            protocol_heartbeats=params.heartbeats,
            ws=ws,
            transport=transport,
        )
        conn.key = f"{conn.id}!{secrets.token_urlsafe(12)}"
        self.hub.connections[conn.id] = conn
        self._ensure_heartbeats()
        not_resumed = None
        if params.resume or params.recover:
            not_resumed = ErrorInfo(80008, 400, "Unable to recover connection: connection expired")
        conn.send(proto.connected(conn.id, self._details(conn), not_resumed))
        try:
            async for frame in ws:
                if frame.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    if not self.on_frame(conn, frame.data):
                        break
                elif frame.type == WSMsgType.ERROR:
                    break
        finally:
            self.hub.forget(conn)
            if not ws.closed:
                await ws.close()
        return ws

    def on_frame(self, conn: Connection, data: bytes | str) -> bool:
        """One frame from a client. False when the connection must end."""
        try:
            msg = decode_frame(data, conn.fmt)
        except ProtocolError as exc:
            conn.send(proto.error(exc.error))
            return False
        action = msg["action"]
        if action == Action.HEARTBEAT:
            hb_id = msg.get("id")
            conn.send(proto.heartbeat(hb_id if isinstance(hb_id, str) else None))
        elif action == Action.MESSAGE:
            return self.on_publish(conn, msg)
        elif action == Action.ATTACH:
            self.on_attach(conn, msg)
        elif action == Action.DETACH:
            self.on_detach(conn, msg)
        elif action == Action.PRESENCE:
            return self.on_presence(conn, msg)
        elif action == Action.CLOSE:
            conn.send(proto.closed())
            return False
        elif action == Action.DISCONNECT:
            return False
        elif action == Action.AUTH:
            self.on_auth(conn, msg)
        else:
            log.debug("ignoring action %s from %s", action, conn.id)
        return True

    def _channel_name(self, conn: Connection, msg: Mapping[str, Any]) -> str | None:
        channel = msg.get("channel")
        if isinstance(channel, str) and 0 < len(channel) <= MAX_CHANNEL_NAME:
            return channel
        if isinstance(channel, str):
            conn.send(proto.error(ErrorInfo(40010, 400, "Invalid channel name"), channel))
        else:
            conn.send(proto.error(ErrorInfo(40010, 400, "Invalid channel name")))
        return None

    def on_attach(self, conn: Connection, msg: Mapping[str, Any]) -> None:
        channel = self._channel_name(conn, msg)
        if channel is None:
            return
        already = channel in conn.channels
        conn.channels.add(channel)
        self.hub.channels.setdefault(channel, set()).add(conn)
        flags = Flag.all_modes()
        if already:
            flags |= Flag.RESUMED
        members = self.hub.members.get(channel)
        if members:
            flags |= Flag.HAS_PRESENCE
        conn.send(proto.attached(channel, flags, channel_serial=f"{self.hub.server_id}:{self.hub.next_id()}"))
        if members:
            present = [{**m, "action": 1} for m in members.values()]  # PRESENT
            conn.send(
                proto.presence_message(
                    Action.SYNC,
                    channel,
                    present,
                    message_id=f"sync:{self.hub.next_id()}",
                    timestamp=now_ms(),
                    channel_serial=f"{self.hub.server_id}:",
                )
            )

    def on_detach(self, conn: Connection, msg: Mapping[str, Any]) -> None:
        channel = self._channel_name(conn, msg)
        if channel is None:
            return
        self.hub.leave_channel(conn, channel)
        conn.send(proto.detached(channel))

    def on_auth(self, conn: Connection, msg: Mapping[str, Any]) -> None:
        """AUTH (RTN22): a new token for a live connection; CONNECTED again, or ERROR when it is bad."""
        auth = msg.get("auth")
        token = auth.get("accessToken") if isinstance(auth, dict) else None
        try:
            if not isinstance(token, str):
                raise ProtocolError(ErrorInfo(40140, 401, "AUTH without an accessToken"))
            self.auth.tokens.verify(token, now_ms())
        except ProtocolError as exc:
            conn.send(proto.error(exc.error))
            conn.transport.close()
            return
        conn.send(proto.connected(conn.id, self._details(conn)))

    def on_publish(self, conn: Connection, msg: Mapping[str, Any]) -> bool:
        serial = _serial(conn, msg, "MESSAGE")
        if serial is None:
            return False
        channel = msg.get("channel")
        if not isinstance(channel, str) or not 0 < len(channel) <= MAX_CHANNEL_NAME:
            conn.send(proto.nack(serial, 1, ErrorInfo(40010, 400, "Invalid channel name")))
            return True
        try:
            messages = validate_messages(msg.get("messages"), conn.client_id, self.hub.max_message_size)
        except ProtocolError as exc:
            conn.send(proto.nack(serial, 1, exc.error))
            return True
        base_id = msg.get("id") if isinstance(msg.get("id"), str) else f"{conn.id}:{serial}"
        self.hub.publish(channel, messages, str(base_id), sender=conn)
        conn.send(proto.ack(serial, 1))
        return True

    # -- presence ---------------------------------------------------------------------------------
    def on_presence(self, conn: Connection, msg: Mapping[str, Any]) -> bool:
        serial = _serial(conn, msg, "PRESENCE")
        if serial is None:
            return False
        channel = msg.get("channel")
        items = msg.get("presence")
        if not isinstance(channel, str) or not channel:
            conn.send(proto.nack(serial, 1, ErrorInfo(40010, 400, "Invalid channel name")))
            return True
        if not isinstance(items, list) or not items or not all(isinstance(p, dict) for p in items):
            conn.send(proto.nack(serial, 1, ErrorInfo(40013, 400, "Invalid presence message")))
            return True
        out = []
        members = self.hub.members.setdefault(channel, {})
        stamp = now_ms()
        for i, p in enumerate(items):
            action = p.get("action")
            client_id = p.get("clientId") or conn.client_id
            if not isinstance(client_id, str) or not client_id:
                no_client = ErrorInfo(91000, 400, "Unable to enter presence channel (no clientId)")
                conn.send(proto.nack(serial, 1, no_client))
                return True
            if action not in (2, 3, 4):  # ENTER, LEAVE, UPDATE (PresenceMessage action ordinals)
                conn.send(proto.nack(serial, 1, ErrorInfo(40013, 400, f"Invalid presence action {action!r}")))
                return True
            item = {k: v for k, v in p.items() if k in ("data", "encoding", "extras")}
            item.update(
                id=f"{conn.id}:{serial}:{i}", clientId=client_id, connectionId=conn.id, timestamp=stamp, action=action
            )
            if action == 3:
                members.pop((client_id, conn.id), None)
                conn.presence.discard(channel)
            else:
                members[(client_id, conn.id)] = {k: v for k, v in item.items() if k != "action"}
                conn.presence.add(channel)
            out.append(item)
        self.hub.broadcast_presence(channel, out)
        conn.send(proto.ack(serial, 1))
        return True

    def _ensure_heartbeats(self) -> None:
        if self._heartbeats is None or self._heartbeats.done():
            self._heartbeats = asyncio.ensure_future(self._heartbeat_loop())

    async def _heartbeat_loop(self) -> None:
        """Keep every connection inside its maxIdleInterval: a HEARTBEAT, or a ping for heartbeats=false."""
        interval = self.max_idle_ms / 1000.0 / 2
        frames = Frames(proto.heartbeat())
        while self.hub.connections:
            await asyncio.sleep(interval)
            for conn in list(self.hub.connections.values()):
                conn.write(frames.get(conn.fmt) if conn.protocol_heartbeats else WS_PING)

    def close(self) -> None:
        if self._heartbeats is not None:
            self._heartbeats.cancel()


def _serial(conn: Connection, msg: Mapping[str, Any], what: str) -> int | None:
    """The ``msgSerial`` an ACK / NACK must name; without one the client gets ERROR (None: end the connection)."""
    serial = msg.get("msgSerial")
    if not isinstance(serial, int) or isinstance(serial, bool) or serial < 0:
        conn.send(proto.error(ErrorInfo.bad_request(f"{what} without a msgSerial")))
        return None
    return serial
