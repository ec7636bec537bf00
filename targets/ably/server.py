"""Ably-protocol-compatible reference target: the realtime WebSocket protocol and the REST publish path.

Interface (what the official clients rely on; see harness/protocols/ably.py for the wire format):

* WebSocket at ``/`` with the query the clients send: ``key`` or ``accessToken``/``access_token``,
  ``format`` (``json`` | ``msgpack``), ``v``, ``clientId``, ``echo``, ``heartbeats``, ``resume``/``recover``.
  A bad key or token gets ERROR with errors.json codes (40101 invalid credentials, 40400 unknown key,
  4014x token errors) and the socket is closed; otherwise CONNECTED with complete ``connectionDetails``.
  A resume is never honoured (no connection state is kept): CONNECTED carries a new connectionId and
  error 80008, so clients re-attach and know continuity was lost, as Ably does after connectionStateTtl.
* HEARTBEAT is echoed with its ``id``; the target sends one every ``maxIdleInterval`` (a websocket ping
  instead when the client asked for ``heartbeats=false``).
* ATTACH -> ATTACHED (modes in ``flags``, RESUMED when already attached on this connection),
  DETACH -> DETACHED, CLOSE -> CLOSED and the socket closed.
* MESSAGE (client -> service): validated, stamped with ``id``, ``timestamp``, ``connectionId``, fanned out
  to every connection attached to the channel (not the publisher when it connected with ``echo=false``),
  then acknowledged: ACK by ``msgSerial``/``count``, or NACK with 40009 (over ``maxMessageSize``),
  40010 (bad channel), 40012 (clientId mismatch) or 40013 (bad message data).
* PRESENCE: ENTER / UPDATE / LEAVE by identified clients, broadcast to attached connections; the member
  set is sent as one SYNC page after ATTACHED (flag HAS_PRESENCE), members leave when their connection ends.
* An undecodable frame, or a frame without an integer action, gets ERROR 40000 and that connection is
  closed; everyone else is unaffected.
* REST: ``POST /channels/{name}/messages`` (JSON or msgpack body: a message or a list; Basic or Bearer
  auth; 201 ``{"channel", "messageId", "serials"}``), ``POST /keys/{keyName}/requestToken`` (a signed
  TokenRequest -> TokenDetails), ``GET /time`` -> ``[ms]``. Errors are ``{"error": ErrorInfo}``. Unlike
  Ably, Basic auth is accepted over plain http (this target has no TLS).

Fault knobs (``--delay-ms``, ``--drop-rate``, ``--corrupt-rate``) act per recipient of each MESSAGE.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import itertools
import json
import logging
import secrets
import struct
import time
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack
from aiohttp import WSMsgType, web

from harness.protocols import ably as proto
from harness.protocols.ably import Action, ErrorInfo, Flag, ProtocolError
from targets.base import CONNECTIONS, CORRUPT_PAYLOAD, WEBSOCKETS, DelayLine, Faults, UsageError

__all__ = ["DEFAULT_KEY", "TARGET", "AblyTarget", "add_args", "build_app"]

log = logging.getLogger("targets.ably")

DEFAULT_KEY = "rtbench.local:rtbench-local-secret"
"""The key a target accepts when none is given, and the one the harness uses against a local target.
Not a secret: anyone who can reach a local target can read it here."""

MAX_WRITE_BUFFER = 16 * 1024 * 1024
"""A connection whose unsent data grows past this is cut (a client that stopped reading)."""
TOKEN_TTL_MS = 60 * 60 * 1000
TOKEN_CLOCK_SKEW_MS = 10 * 60 * 1000
MAX_CHANNEL_NAME = 1024
WS_PING = b"\x89\x00"


def ws_frame(payload: bytes, binary: bool) -> bytes:
    """One unmasked RFC 6455 frame, built once per message and written to every recipient's transport."""
    first = 0x82 if binary else 0x81
    n = len(payload)
    if n < 126:
        header = bytes((first, n))
    elif n < 1 << 16:
        header = struct.pack("!BBH", first, 126, n)
    else:
        header = struct.pack("!BBQ", first, 127, n)
    return header + payload


@dataclass(eq=False, slots=True)
class Connection:
    """One realtime client."""

    id: str
    key: str
    key_name: str
    fmt: str
    client_id: str | None
    echo: bool
    protocol_heartbeats: bool
    ws: web.WebSocketResponse
    transport: asyncio.Transport
    channels: set[str] = field(default_factory=set)
    presence: set[str] = field(default_factory=set)  # channels this connection's clientId has entered

    @property
    def binary(self) -> bool:
        return self.fmt == "msgpack"

    def write(self, frame: bytes) -> None:
        transport = self.transport
        if transport.is_closing():
            return
        if transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            log.warning("connection %s stopped reading: closing it", self.id)
            transport.abort()
            return
        transport.write(frame)

    def send(self, message: Mapping[str, Any]) -> None:
        payload = proto.encode(message if self.binary else proto.json_safe(dict(message)), self.fmt)
        self.write(ws_frame(payload, self.binary))


class Tokens:
    """Self-contained tokens: ``base64url(json).base64url(hmac)``, signed with the issuing key's secret."""

    def __init__(self, keys: Mapping[str, str]) -> None:
        self.keys = keys

    def issue(self, key_name: str, client_id: str | None, capability: str, ttl_ms: int, now_ms: int) -> dict[str, Any]:
        expires = now_ms + ttl_ms
        body = {"k": key_name, "x": expires, "c": client_id, "i": now_ms, "p": capability}
        payload = base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()).decode().rstrip("=")
        token = f"{payload}.{self._sign(key_name, payload)}"
        details: dict[str, Any] = {
            "token": token,
            "keyName": key_name,
            "issued": now_ms,
            "expires": expires,
            "capability": capability,
        }
        if client_id is not None:
            details["clientId"] = client_id
        return details

    def _sign(self, key_name: str, payload: str) -> str:
        mac = hmac.new(self.keys[key_name].encode(), payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def verify(self, token: str, now_ms: int) -> tuple[str, str | None]:
        """-> (key name, clientId); ProtocolError with a 4014x token error (clients renew on those)."""
        try:
            payload, sig = token.split(".", 1)
            body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            key_name, expires = str(body["k"]), int(body["x"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise ProtocolError(ErrorInfo(40143, 401, "Token unrecognised")) from None
        if key_name not in self.keys or not hmac.compare_digest(sig, self._sign(key_name, payload)):
            raise ProtocolError(ErrorInfo(40143, 401, "Token unrecognised"))
        if expires <= now_ms:
            raise ProtocolError(ErrorInfo(40142, 401, "Token expired"))
        client_id = body.get("c")
        return key_name, client_id if isinstance(client_id, str) else None


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class AblyTarget:
    """Channels, connections and the fan-out. Everything runs on one event loop, and a fan-out never awaits,
    so per-connection order equals publish order; with a delay, the whole fan-out of one publish is
    queued on one DelayLine, which keeps that order."""

    def __init__(
        self, keys: Mapping[str, str], faults: Faults, *, max_message_size: int = 65536, max_idle_ms: int = 15000
    ) -> None:
        self.keys = dict(keys)
        self.tokens = Tokens(self.keys)
        self.faults = faults
        self.max_message_size = max_message_size
        self.max_idle_ms = max_idle_ms
        self.server_id = f"rtbench-{uuid.uuid4().hex[:8]}"
        self.connections: dict[str, Connection] = {}
        self.channels: dict[str, set[Connection]] = {}
        self.members: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}  # channel -> (clientId, connId) -> msg
        self._delay = DelayLine(faults.delay_s) if faults.delay_ms > 0 else None
        self._ids = itertools.count()
        self._heartbeats: asyncio.Task[None] | None = None
        self.published = 0
        self.delivered = 0

    # -- authentication ---------------------------------------------------------------------------
    def check_key(self, key: str) -> str:
        key_name, secret = proto.parse_key(key)
        known = self.keys.get(key_name)
        if known is None:
            raise ProtocolError(ErrorInfo.key_not_found(key_name))
        if not hmac.compare_digest(known, secret):
            raise ProtocolError(ErrorInfo.invalid_credentials())
        return key_name

    def authenticate(self, params: proto.ConnectParams) -> tuple[str, str | None]:
        """-> (key name, clientId of the connection)."""
        if params.key:
            key_name = self.check_key(params.key)
            client_id = params.client_id
        elif params.access_token:
            key_name, token_client = self.tokens.verify(params.access_token, now_ms())
            client_id = params.client_id or token_client
            if token_client not in (None, "*") and params.client_id not in (None, token_client):
                raise ProtocolError(ErrorInfo(40102, 401, "Incompatible clientId for this token"))
        else:
            raise ProtocolError(ErrorInfo(40101, 401, "No authentication credentials supplied (key or accessToken)"))
        return key_name, (None if client_id == "*" else client_id)

    # -- realtime ---------------------------------------------------------------------------------
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
            key_name, client_id = self.authenticate(params)
        except ProtocolError as exc:
            binary = fmt == "msgpack"
            if transport is not None and not transport.is_closing():
                payload = proto.encode(proto.error(exc.error), "msgpack" if binary else "json")
                transport.write(ws_frame(payload, binary))
            await ws.close()
            return ws
        assert transport is not None
        conn = Connection(
            id=f"{self.server_id[-4:]}{uuid.uuid4().hex[:10]}",
            key="",
            key_name=key_name,
            fmt=params.fmt,
            client_id=client_id,
            echo=params.echo,
            protocol_heartbeats=params.heartbeats,
            ws=ws,
            transport=transport,
        )
        conn.key = f"{conn.id}!{secrets.token_urlsafe(12)}"
        self.connections[conn.id] = conn
        self._ensure_heartbeats()
        details = proto.ConnectionDetails(
            connection_key=conn.key,
            server_id=self.server_id,
            client_id=client_id,
            max_message_size=self.max_message_size,
            max_idle_interval=self.max_idle_ms,
        )
        not_resumed = None
        if params.resume or params.recover:
            not_resumed = ErrorInfo(80008, 400, "Unable to recover connection: connection expired")
        conn.send(proto.connected(conn.id, details, not_resumed))
        try:
            async for frame in ws:
                if frame.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    if not self.on_frame(conn, frame.data):
                        break
                elif frame.type == WSMsgType.ERROR:
                    break
        finally:
            self._forget(conn)
            if not ws.closed:
                await ws.close()
        return ws

    def on_frame(self, conn: Connection, data: bytes | str) -> bool:
        """One frame from a client. False when the connection must end."""
        try:
            msg = proto.decode(data, conn.fmt)
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
        self.channels.setdefault(channel, set()).add(conn)
        flags = Flag.all_modes()
        if already:
            flags |= Flag.RESUMED
        members = self.members.get(channel)
        if members:
            flags |= Flag.HAS_PRESENCE
        conn.send(proto.attached(channel, flags, channel_serial=f"{self.server_id}:{next(self._ids)}"))
        if members:
            present = [{**m, "action": 1} for m in members.values()]  # PRESENT
            conn.send(
                proto.presence_message(
                    Action.SYNC,
                    channel,
                    present,
                    message_id=f"sync:{next(self._ids)}",
                    timestamp=now_ms(),
                    channel_serial=f"{self.server_id}:",
                )
            )

    def on_detach(self, conn: Connection, msg: Mapping[str, Any]) -> None:
        channel = self._channel_name(conn, msg)
        if channel is None:
            return
        self._leave_channel(conn, channel)
        conn.send(proto.detached(channel))

    def on_auth(self, conn: Connection, msg: Mapping[str, Any]) -> None:
        """AUTH (RTN22): a new token for a live connection; CONNECTED again, or ERROR when it is bad."""
        auth = msg.get("auth")
        token = auth.get("accessToken") if isinstance(auth, dict) else None
        try:
            if not isinstance(token, str):
                raise ProtocolError(ErrorInfo(40140, 401, "AUTH without an accessToken"))
            self.tokens.verify(token, now_ms())
        except ProtocolError as exc:
            conn.send(proto.error(exc.error))
            conn.transport.close()
            return
        details = proto.ConnectionDetails(
            connection_key=conn.key,
            server_id=self.server_id,
            client_id=conn.client_id,
            max_message_size=self.max_message_size,
            max_idle_interval=self.max_idle_ms,
        )
        conn.send(proto.connected(conn.id, details))

    def on_publish(self, conn: Connection, msg: Mapping[str, Any]) -> bool:
        serial = msg.get("msgSerial")
        if not isinstance(serial, int) or isinstance(serial, bool) or serial < 0:
            conn.send(proto.error(ErrorInfo.bad_request("MESSAGE without a msgSerial")))
            return False
        channel = msg.get("channel")
        if not isinstance(channel, str) or not 0 < len(channel) <= MAX_CHANNEL_NAME:
            conn.send(proto.nack(serial, 1, ErrorInfo(40010, 400, "Invalid channel name")))
            return True
        try:
            messages = self.validate_messages(msg.get("messages"), conn.client_id)
        except ProtocolError as exc:
            conn.send(proto.nack(serial, 1, exc.error))
            return True
        base_id = msg.get("id") if isinstance(msg.get("id"), str) else f"{conn.id}:{serial}"
        self.fan_out(channel, messages, str(base_id), sender=conn)
        conn.send(proto.ack(serial, 1))
        return True

    def validate_messages(self, raw: Any, client_id: str | None) -> list[dict[str, Any]]:
        """Messages from a publisher, checked as Ably checks them; ProtocolError to NACK / 400 them."""
        if not isinstance(raw, list) or not raw or not all(isinstance(m, dict) for m in raw):
            raise ProtocolError(
                ErrorInfo(40013, 400, "Invalid message data or encoding: messages must be a non-empty list of objects")
            )
        size = 0
        for m in raw:
            data, name, encoding = m.get("data"), m.get("name"), m.get("encoding")
            if not (data is None or isinstance(data, str | bytes)) or not (name is None or isinstance(name, str)):
                raise ProtocolError(ErrorInfo(40013, 400, "Invalid message data or encoding"))
            if not (encoding is None or isinstance(encoding, str)):
                raise ProtocolError(ErrorInfo(40013, 400, "Invalid message data or encoding"))
            sender_id = m.get("clientId")
            if sender_id is not None and (
                not isinstance(sender_id, str) or (client_id is not None and sender_id != client_id)
            ):
                raise ProtocolError(ErrorInfo(40012, 400, f"Mismatched clientId {sender_id!r}"))
            size += proto.message_size(m)
        if size > self.max_message_size:
            raise ProtocolError(ErrorInfo.too_large(size, self.max_message_size))
        return raw

    def fan_out(self, channel: str, messages: list[dict[str, Any]], base_id: str, sender: Connection | None) -> int:
        """Deliver to every connection attached to ``channel``; returns recipients at publish time."""
        stamp = now_ms()
        connection_id = sender.id if sender is not None else None
        client_id = sender.client_id if sender is not None else None
        out = []
        for i, m in enumerate(messages):
            item = {k: v for k, v in m.items() if k in ("name", "data", "encoding", "clientId", "extras")}
            item["id"] = m["id"] if isinstance(m.get("id"), str) else f"{base_id}:{i}"
            item["timestamp"] = stamp
            if connection_id is not None:
                item["connectionId"] = connection_id
            if client_id is not None and "clientId" not in item:
                item["clientId"] = client_id
            out.append(item)
        self.published += 1
        subscribers = self.channels.get(channel)
        if not subscribers:
            return 0
        recipients = [c for c in subscribers if c.echo or c is not sender]
        message = proto.channel_message(channel, out, message_id=base_id, timestamp=stamp, connection_id=connection_id)
        frames = _Frames(message)
        if not self.faults.active:
            self._deliver([(c, frames) for c in recipients])
            return len(recipients)
        bad: _Frames | None = None
        plan: list[tuple[Connection, _Frames]] = []
        for conn in recipients:
            if self.faults.drop():
                continue
            if self.faults.corrupt():
                bad = bad or _Frames({**message, "messages": [{**m, "data": CORRUPT_PAYLOAD} for m in out]})
                plan.append((conn, bad))
            else:
                plan.append((conn, frames))
        if self._delay is not None:
            self._delay.call(lambda: self._deliver(plan))
        else:
            self._deliver(plan)
        return len(recipients)

    def _deliver(self, plan: list[tuple[Connection, _Frames]]) -> None:
        for conn, frames in plan:
            if conn.id in self.connections:
                conn.write(frames.get(conn.fmt))
                self.delivered += 1

    # -- presence ---------------------------------------------------------------------------------
    def on_presence(self, conn: Connection, msg: Mapping[str, Any]) -> bool:
        serial = msg.get("msgSerial")
        if not isinstance(serial, int) or isinstance(serial, bool) or serial < 0:
            conn.send(proto.error(ErrorInfo.bad_request("PRESENCE without a msgSerial")))
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
        members = self.members.setdefault(channel, {})
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
        self._broadcast_presence(channel, out)
        conn.send(proto.ack(serial, 1))
        return True

    def _broadcast_presence(self, channel: str, items: list[dict[str, Any]]) -> None:
        message = proto.presence_message(
            Action.PRESENCE, channel, items, message_id=f"p:{next(self._ids)}", timestamp=now_ms()
        )
        frames = _Frames(message)
        for conn in self.channels.get(channel, ()):
            conn.write(frames.get(conn.fmt))

    def _leave_channel(self, conn: Connection, channel: str) -> None:
        conn.channels.discard(channel)
        subscribers = self.channels.get(channel)
        if subscribers is not None:
            subscribers.discard(conn)
            if not subscribers:
                del self.channels[channel]
        if channel in conn.presence:
            conn.presence.discard(channel)
            members = self.members.get(channel, {})
            left = [
                {**m, "action": 3, "timestamp": now_ms()}
                for (cid, conn_id), m in list(members.items())
                if conn_id == conn.id and members.pop((cid, conn_id), None) is not None
            ]
            if not members:
                self.members.pop(channel, None)
            if left:
                self._broadcast_presence(channel, left)

    def _forget(self, conn: Connection) -> None:
        self.connections.pop(conn.id, None)
        for channel in list(conn.channels | conn.presence):
            self._leave_channel(conn, channel)

    # -- heartbeats -------------------------------------------------------------------------------
    def _ensure_heartbeats(self) -> None:
        if self._heartbeats is None or self._heartbeats.done():
            self._heartbeats = asyncio.ensure_future(self._heartbeat_loop())

    async def _heartbeat_loop(self) -> None:
        """Keep every connection inside its maxIdleInterval: a HEARTBEAT, or a ping for heartbeats=false."""
        interval = self.max_idle_ms / 1000.0 / 2
        frames = _Frames(proto.heartbeat())
        while self.connections:
            await asyncio.sleep(interval)
            for conn in list(self.connections.values()):
                conn.write(frames.get(conn.fmt) if conn.protocol_heartbeats else WS_PING)

    # -- REST -------------------------------------------------------------------------------------
    def rest_auth(self, request: web.Request) -> tuple[str, str | None]:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                key = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise ProtocolError(ErrorInfo.invalid_credentials("Malformed Basic credentials")) from None
            return self.check_key(key), None
        if scheme.lower() == "bearer":
            token = value.strip()
            with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                token = base64.b64decode(token, validate=True).decode("utf-8")
            return self.tokens.verify(token, now_ms())
        raise ProtocolError(ErrorInfo(40101, 401, "No authentication credentials supplied"))

    async def rest_publish(self, request: web.Request) -> web.Response:
        channel = request.match_info["channel"]
        try:
            _, client_id = self.rest_auth(request)
            body = await read_body(request)
            raw = body if isinstance(body, list) else [body]
            messages = self.validate_messages(raw, client_id)
        except ProtocolError as exc:
            return rest_error(request, exc.error)
        if len(channel) > MAX_CHANNEL_NAME:
            return rest_error(request, ErrorInfo(40010, 400, "Invalid channel name"))
        base_id = messages[0]["id"] if isinstance(messages[0].get("id"), str) else f"rest{uuid.uuid4().hex[:12]}"
        base_id = base_id.rsplit(":", 1)[0] if ":" in base_id else base_id
        self.fan_out(channel, messages, base_id, sender=None)
        serials = [f"{self.server_id}@{now_ms()}-{i}" for i in range(len(messages))]
        return rest_reply(request, {"channel": channel, "messageId": base_id, "serials": serials}, status=201)

    async def rest_request_token(self, request: web.Request) -> web.Response:
        key_name = request.match_info["key_name"]
        try:
            body = await read_body(request)
            if not isinstance(body, dict):
                raise ProtocolError(ErrorInfo(40001, 400, "Invalid request body: expected a TokenRequest"))
            if key_name not in self.keys:
                raise ProtocolError(ErrorInfo.key_not_found(key_name))
            if body.get("mac") is None:  # token params authenticated by the key itself
                authed, _ = self.rest_auth(request)
                if authed != key_name:
                    raise ProtocolError(ErrorInfo.invalid_credentials())
            else:
                self._check_token_request(key_name, body)
        except ProtocolError as exc:
            return rest_error(request, exc.error)
        ttl = body.get("ttl")
        client_id = body.get("clientId")
        capability = body.get("capability") or '{"*":["*"]}'
        details = self.tokens.issue(
            key_name,
            client_id if isinstance(client_id, str) else None,
            str(capability),
            int(ttl) if isinstance(ttl, int) and ttl > 0 else TOKEN_TTL_MS,
            now_ms(),
        )
        return rest_reply(request, details)

    def _check_token_request(self, key_name: str, body: Mapping[str, Any]) -> None:
        if body.get("keyName") != key_name:
            raise ProtocolError(ErrorInfo(40101, 401, "TokenRequest keyName does not match the URL"))
        timestamp, nonce = body.get("timestamp"), body.get("nonce")
        if not isinstance(timestamp, int) or not isinstance(nonce, str):
            raise ProtocolError(ErrorInfo(40001, 400, "Invalid request body: TokenRequest needs timestamp and nonce"))
        if abs(now_ms() - timestamp) > TOKEN_CLOCK_SKEW_MS:
            raise ProtocolError(ErrorInfo(40104, 401, "Timestamp not current"))
        ttl = body.get("ttl")
        expected = proto.token_request_mac(
            self.keys[key_name],
            key_name=key_name,
            ttl=ttl if isinstance(ttl, int) and ttl else None,
            capability=body.get("capability"),
            client_id=body.get("clientId"),
            timestamp=timestamp,
            nonce=nonce,
        )
        if not hmac.compare_digest(str(body.get("mac")), expected):
            raise ProtocolError(ErrorInfo(40101, 401, "Invalid mac"))

    async def rest_time(self, request: web.Request) -> web.Response:
        return rest_reply(request, [now_ms()])

    def connection_count(self) -> int:
        return len(self.connections)

    async def close(self) -> None:
        if self._delay is not None:
            self._delay.cancel()
        if self._heartbeats is not None:
            self._heartbeats.cancel()


class _Frames:
    """A protocol message's websocket frame in each format, each built at most once."""

    __slots__ = ("_json", "_msgpack", "message")

    def __init__(self, message: dict[str, Any]) -> None:
        self.message = message
        self._json: bytes | None = None
        self._msgpack: bytes | None = None

    def get(self, fmt: str) -> bytes:
        if fmt == "msgpack":
            if self._msgpack is None:
                self._msgpack = ws_frame(proto.encode(self.message, "msgpack"), True)
            return self._msgpack
        if self._json is None:
            self._json = ws_frame(proto.encode(proto.json_safe(self.message), "json"), False)
        return self._json


# -- HTTP helpers -------------------------------------------------------------------------------------
MSGPACK = "application/x-msgpack"


async def read_body(request: web.Request) -> Any:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ProtocolError(ErrorInfo(40009, 413, "Request body too large")) from None
    try:
        if request.content_type == MSGPACK:
            return msgpack.unpackb(raw, raw=False)
        return json.loads(raw)
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
        raise ProtocolError(ErrorInfo(40001, 400, "Invalid request body")) from None


def _wants_msgpack(request: web.Request) -> bool:
    return MSGPACK in request.headers.get("Accept", "")


def rest_reply(request: web.Request, body: Any, status: int = 200) -> web.Response:
    if _wants_msgpack(request):
        return web.Response(body=msgpack.packb(body, use_bin_type=True), status=status, content_type=MSGPACK)
    return web.json_response(body, status=status)


def rest_error(request: web.Request, err: ErrorInfo) -> web.Response:
    response = rest_reply(request, {"error": err.to_wire()}, status=err.status_code)
    response.headers["X-Ably-Errorcode"] = str(err.code)
    return response


TARGET: web.AppKey[AblyTarget] = web.AppKey("rtbench_ably_target", AblyTarget)


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key",
        action="append",
        default=None,
        metavar="APP.KEYID:SECRET",
        help=f"an accepted API key, repeatable (default: the local key {DEFAULT_KEY})",
    )
    parser.add_argument(
        "--max-message-size",
        type=int,
        default=65536,
        help="maxMessageSize in bytes: larger publishes are NACKed with 40009 (default: %(default)s)",
    )
    parser.add_argument(
        "--max-idle-ms",
        type=int,
        default=15000,
        help="maxIdleInterval; heartbeats go out every half of it (default: %(default)s)",
    )


def build_app(args: argparse.Namespace, faults: Faults) -> web.Application:
    keys: dict[str, str] = {}
    for key in getattr(args, "key", None) or [DEFAULT_KEY]:
        try:
            key_name, secret = proto.parse_key(key)
        except ProtocolError:
            raise UsageError("--key must look like APP_ID.KEY_ID:SECRET") from None
        keys[key_name] = secret
    max_message_size = int(getattr(args, "max_message_size", 65536))
    max_idle_ms = int(getattr(args, "max_idle_ms", 15000))
    if max_message_size <= 0 or max_idle_ms < 100:
        raise UsageError("--max-message-size must be > 0 and --max-idle-ms >= 100")
    target = AblyTarget(keys, faults, max_message_size=max_message_size, max_idle_ms=max_idle_ms)
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_get("/", target.websocket)
    app.router.add_get("/time", target.rest_time)
    app.router.add_post("/channels/{channel}/messages", target.rest_publish)
    app.router.add_post("/keys/{key_name}/requestToken", target.rest_request_token)
    app[WEBSOCKETS] = weakref.WeakSet()
    app[CONNECTIONS] = target.connection_count
    app[TARGET] = target

    async def on_shutdown(_: web.Application) -> None:
        await target.close()

    app.on_shutdown.append(on_shutdown)
    return app
