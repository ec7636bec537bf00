"""The Ably realtime protocol, sans-I/O: protocol messages in and out of JSON text or MessagePack bytes.

What the reference target (targets/ably) speaks, what tests check frames against, and the client side of
the lean subscriber (:class:`ClientSession`). Sources: Ably's "Realtime Protocol Definition"
(client-lib-development-guide/protocol), the features spec (RTN/RTL/RSL/TM items) and ably-common's
errors.json. No sockets, no clock: callers pass times and ids in.

A protocol message is a plain ``dict`` with camelCase keys, exactly as on the wire; the helpers here
build the ones a server sends and validate the ones a client sends.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Any
from urllib.parse import urlencode

import msgpack

__all__ = [
    "CLIENT_PROTOCOL_VERSION",
    "FORMATS",
    "PROTOCOL_VERSIONS",
    "Action",
    "Attached",
    "ChannelFailed",
    "ClientEvent",
    "ClientSession",
    "Closed",
    "ConnectParams",
    "Connected",
    "ConnectionDetails",
    "Deliveries",
    "Detached",
    "Disconnected",
    "ErrorInfo",
    "Failed",
    "Flag",
    "Heartbeat",
    "Ignored",
    "ProtocolError",
    "connect_query",
    "decode",
    "decode_data",
    "encode",
    "json_safe",
    "message_size",
    "parse_connect_params",
    "parse_key",
    "realtime_host",
    "token_request_mac",
]

FORMATS = ("json", "msgpack")
PROTOCOL_VERSIONS = frozenset({"1", "2", "3", "4", "5", "6"})
"""``v`` query values accepted: ably-python 3.x sends 5, ably-js 2.x sends 6."""

_KEY_RE = re.compile(r"^(?P<app>[^.:\s]+)\.(?P<key>[^.:\s]+):(?P<secret>\S+)$")


class Action(IntEnum):
    """ProtocolMessage ``action`` (protocol definition, "Actions"; TR2)."""

    HEARTBEAT = 0
    ACK = 1
    NACK = 2
    CONNECT = 3
    CONNECTED = 4
    DISCONNECT = 5
    DISCONNECTED = 6
    CLOSE = 7
    CLOSED = 8
    ERROR = 9
    ATTACH = 10
    ATTACHED = 11
    DETACH = 12
    DETACHED = 13
    PRESENCE = 14
    MESSAGE = 15
    SYNC = 16
    AUTH = 17
    ACTIVATE = 18
    OBJECT = 19
    OBJECT_SYNC = 20
    ANNOTATION = 21


class Flag(IntFlag):
    """ProtocolMessage ``flags`` bits (TR3): attach state, then channel modes."""

    HAS_PRESENCE = 1 << 0
    HAS_BACKLOG = 1 << 1
    RESUMED = 1 << 2
    TRANSIENT = 1 << 4
    ATTACH_RESUME = 1 << 5
    PRESENCE = 1 << 16
    PUBLISH = 1 << 17
    SUBSCRIBE = 1 << 18
    PRESENCE_SUBSCRIBE = 1 << 19

    @classmethod
    def all_modes(cls) -> Flag:
        return cls.PRESENCE | cls.PUBLISH | cls.SUBSCRIBE | cls.PRESENCE_SUBSCRIBE


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """Ably's ErrorInfo (TI1): an errors.json ``code``, the closest HTTP status, a message."""

    code: int
    status_code: int
    message: str

    def to_wire(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "code": self.code,
            "statusCode": self.status_code,
            "href": f"https://help.ably.io/error/{self.code}",
        }

    @classmethod
    def from_wire(cls, value: object) -> ErrorInfo:
        """Lenient: whatever a server put in ``error`` becomes an ErrorInfo (missing parts are 0 / empty)."""
        if not isinstance(value, Mapping):
            return cls(0, 0, "" if value is None else str(value)[:200])
        return cls(_int(value.get("code")), _int(value.get("statusCode")), str(value.get("message") or ""))

    @property
    def fatal(self) -> bool:
        """A 4xxxx code says the request itself is wrong (bad key, no permission): retrying cannot help.
        Token errors (40140-40149) are the exception, clients renew the token (RTN14b, RTN15h)."""
        return 40000 <= self.code < 50000 and not 40140 <= self.code < 40150

    def __str__(self) -> str:
        """``code message``, as the official clients show it (never a credential: Ably does not echo them)."""
        return f"{self.code} {self.message}".strip() if self.code else (self.message or "no reason given")

    # errors.json codes the target uses, as constructors so messages stay consistent
    @classmethod
    def bad_request(cls, message: str) -> ErrorInfo:
        return cls(40000, 400, message)

    @classmethod
    def invalid_credentials(cls, message: str = "Invalid credentials") -> ErrorInfo:
        return cls(40101, 401, message)

    @classmethod
    def key_not_found(cls, key_name: str) -> ErrorInfo:
        return cls(40400, 404, f"Invalid key in request: {key_name}")

    @classmethod
    def too_large(cls, size: int, limit: int) -> ErrorInfo:
        return cls(
            40009,
            400,
            f"Maximum size of messages that can be published at once exceeded "
            f"(was {size} bytes; limit is {limit} bytes)",
        )


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class ProtocolError(ValueError):
    """A frame or request that breaks the protocol; ``error`` is what to tell the client."""

    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(error.message)
        self.error = error


# -- frames -----------------------------------------------------------------------------------------
def encode(message: Mapping[str, Any], fmt: str) -> bytes:
    """One protocol message as the payload of one WebSocket frame: whitespace-free JSON (UTF-8, a text
    frame) or MessagePack with str/bin types (a binary frame). Absent fields are left out, never null."""
    if fmt == "msgpack":
        packed: bytes = msgpack.packb(message, use_bin_type=True)
        return packed
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode(frame: bytes | str, fmt: str) -> dict[str, Any]:
    """A client's frame -> protocol message. ProtocolError (40000) for anything that is not a map with
    an integer ``action``; unknown action numbers are returned for the caller to ignore."""
    try:
        if fmt == "msgpack":
            if isinstance(frame, str):
                raise ValueError("text frame on a msgpack connection")
            value = msgpack.unpackb(frame, raw=False, strict_map_key=True)
        else:
            value = json.loads(frame)
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise ProtocolError(ErrorInfo.bad_request(f"Unable to decode {fmt} protocol message: {exc}"[:200])) from None
    if not isinstance(value, dict):
        raise ProtocolError(ErrorInfo.bad_request("Protocol message is not an object"))
    action = value.get("action")
    if not isinstance(action, int) or isinstance(action, bool):
        raise ProtocolError(ErrorInfo.bad_request("Protocol message has no integer action"))
    return value


def json_safe(message: dict[str, Any]) -> dict[str, Any]:
    """Binary ``data`` (possible with msgpack publishers) base64-encoded for a JSON recipient, with
    ``base64`` appended to its encoding (protocol definition, "Data"); other fields untouched."""
    items = message.get("messages") or message.get("presence")
    if not items or not any(isinstance(m.get("data"), bytes | bytearray) for m in items):
        return message
    out = []
    for m in items:
        data = m.get("data")
        if isinstance(data, bytes | bytearray):
            m = dict(m)
            m["data"] = base64.b64encode(bytes(data)).decode("ascii")
            m["encoding"] = f"{m['encoding']}/base64" if m.get("encoding") else "base64"
        out.append(m)
    return {**message, ("messages" if "messages" in message else "presence"): out}


def message_size(message: Mapping[str, Any]) -> int:
    """Ably's message size: the bytes of ``data``, ``name``, ``clientId`` and ``extras`` (as JSON)."""
    size = 0
    for field in ("data", "name", "clientId"):
        value = message.get(field)
        if isinstance(value, str):
            size += len(value.encode("utf-8"))
        elif isinstance(value, bytes | bytearray):
            size += len(value)
        elif value is not None:
            size += len(json.dumps(value, separators=(",", ":")).encode("utf-8"))
    extras = message.get("extras")
    if extras is not None:
        size += len(json.dumps(extras, separators=(",", ":")).encode("utf-8"))
    return size


# -- what a server sends ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ConnectionDetails:
    """CONNECTED's ``connectionDetails`` (CD2), every field a client may read."""

    connection_key: str
    server_id: str
    client_id: str | None = None
    max_message_size: int = 65536
    max_inbound_rate: int = 250
    max_outbound_rate: int = 250
    max_frame_size: int = 524288
    connection_state_ttl: int = 120000
    max_idle_interval: int = 15000

    def to_wire(self) -> dict[str, Any]:
        details: dict[str, Any] = {
            "connectionKey": self.connection_key,
            "maxMessageSize": self.max_message_size,
            "maxInboundRate": self.max_inbound_rate,
            "maxOutboundRate": self.max_outbound_rate,
            "maxFrameSize": self.max_frame_size,
            "serverId": self.server_id,
            "connectionStateTtl": self.connection_state_ttl,
            "maxIdleInterval": self.max_idle_interval,
        }
        if self.client_id is not None:
            details["clientId"] = self.client_id
        return details


def connected(connection_id: str, details: ConnectionDetails, error: ErrorInfo | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {
        "action": Action.CONNECTED,
        "connectionId": connection_id,
        "connectionKey": details.connection_key,
        "connectionDetails": details.to_wire(),
    }
    if error is not None:  # non-fatal, e.g. a resume that could not be honoured (RTN15c7)
        message["error"] = error.to_wire()
    return message


def heartbeat(heartbeat_id: str | None = None) -> dict[str, Any]:
    return {"action": Action.HEARTBEAT} if heartbeat_id is None else {"action": Action.HEARTBEAT, "id": heartbeat_id}


def ack(msg_serial: int, count: int = 1) -> dict[str, Any]:
    return {"action": Action.ACK, "msgSerial": msg_serial, "count": count}


def nack(msg_serial: int, count: int, error: ErrorInfo) -> dict[str, Any]:
    return {"action": Action.NACK, "msgSerial": msg_serial, "count": count, "error": error.to_wire()}


def error(err: ErrorInfo, channel: str | None = None) -> dict[str, Any]:
    """ERROR: fatal for the connection, or for one channel when ``channel`` is given."""
    message: dict[str, Any] = {"action": Action.ERROR, "error": err.to_wire()}
    if channel is not None:
        message["channel"] = channel
    return message


def attached(channel: str, flags: int, channel_serial: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"action": Action.ATTACHED, "channel": channel, "flags": int(flags)}
    if channel_serial is not None:
        message["channelSerial"] = channel_serial
    return message


def detached(channel: str, err: ErrorInfo | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"action": Action.DETACHED, "channel": channel}
    if err is not None:
        message["error"] = err.to_wire()
    return message


def closed() -> dict[str, Any]:
    return {"action": Action.CLOSED}


def channel_message(
    channel: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    message_id: str,
    timestamp: int,
    connection_id: str | None = None,
    channel_serial: str | None = None,
) -> dict[str, Any]:
    """MESSAGE from the service: each message already carries its id, timestamp and connectionId (TM2)."""
    message: dict[str, Any] = {
        "action": Action.MESSAGE,
        "id": message_id,
        "channel": channel,
        "timestamp": timestamp,
        "messages": list(messages),
    }
    if connection_id is not None:
        message["connectionId"] = connection_id
    if channel_serial is not None:
        message["channelSerial"] = channel_serial
    return message


def presence_message(
    action: Action,
    channel: str,
    presence: Iterable[Mapping[str, Any]],
    *,
    message_id: str,
    timestamp: int,
    channel_serial: str | None = None,
) -> dict[str, Any]:
    """PRESENCE or SYNC from the service; a SYNC's ``channelSerial`` ends in ``:`` on its last page."""
    message: dict[str, Any] = {
        "action": action,
        "id": message_id,
        "channel": channel,
        "timestamp": timestamp,
        "presence": list(presence),
    }
    if channel_serial is not None:
        message["channelSerial"] = channel_serial
    return message


# -- what a client sends ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ConnectParams:
    """The WebSocket URL's query (RTN2): how the client authenticates and wants to be served."""

    fmt: str = "json"
    version: str | None = None
    key: str | None = None
    access_token: str | None = None
    client_id: str | None = None
    echo: bool = True
    heartbeats: bool = True
    resume: str | None = None
    recover: str | None = None


def _flag(query: Mapping[str, str], name: str, default: bool) -> bool:
    value = query.get(name)
    if value is None:
        return default
    return value.strip().lower() not in ("false", "0", "no")


def parse_connect_params(query: Mapping[str, str]) -> ConnectParams:
    """Validate the connect query; ProtocolError with errors.json codes (40003 bad value, 40017 version)."""
    fmt = query.get("format", "json")
    if fmt not in FORMATS:
        raise ProtocolError(ErrorInfo(40003, 400, f"Unsupported format: {fmt!r}"))
    version = query.get("v")
    if version is not None and version not in PROTOCOL_VERSIONS:
        raise ProtocolError(ErrorInfo(40017, 400, f"Unsupported protocol version: {version!r}"))
    token = query.get("accessToken") or query.get("access_token")
    return ConnectParams(
        fmt=fmt,
        version=version,
        key=query.get("key"),
        access_token=token,
        client_id=query.get("clientId"),
        echo=_flag(query, "echo", True),
        # ably-js on Node sends heartbeats=false and watches websocket pings instead (RTN23b)
        heartbeats=_flag(query, "heartbeats", True),
        resume=query.get("resume"),
        recover=query.get("recover"),
    )


def parse_key(key: str) -> tuple[str, str]:
    """``APP.KEYID:SECRET`` -> (key name ``APP.KEYID``, secret). ProtocolError 40101 when malformed."""
    match = _KEY_RE.match(key.strip())
    if match is None:
        raise ProtocolError(ErrorInfo.invalid_credentials("Invalid key: expected APP_ID.KEY_ID:KEY_SECRET"))
    return f"{match['app']}.{match['key']}", match["secret"]


def token_request_mac(
    secret: str,
    *,
    key_name: str,
    ttl: int | None,
    capability: str | None,
    client_id: str | None,
    timestamp: int,
    nonce: str,
) -> str:
    """The signature of a TokenRequest (RSA9g): HMAC-SHA256 over its fields, each followed by a newline."""
    text = "".join(
        f"{v}\n" for v in (key_name, "" if ttl is None else ttl, capability or "", client_id or "", timestamp, nonce)
    )
    digest = hmac.new(secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


# -- the client side ----------------------------------------------------------------------------------
CLIENT_PROTOCOL_VERSION = "6"
"""The ``v`` the lean client sends: ably-js 2.x's (its Defaults.protocolVersion)."""


def realtime_host(endpoint: str = "main") -> str:
    """The realtime host of an ``endpoint`` client option (REC1b): a hostname or IP is itself,
    ``nonprod:ID`` is ``ID.realtime.ably-nonprod.net``, any other ``ID`` is ``ID.realtime.ably.net``."""
    endpoint = endpoint.strip() or "main"
    if "." in endpoint or "::" in endpoint or endpoint == "localhost":
        return endpoint
    if endpoint.startswith("nonprod:"):
        return f"{endpoint.removeprefix('nonprod:')}.realtime.ably-nonprod.net"
    return f"{endpoint}.realtime.ably.net"


def connect_query(
    key: str,
    fmt: str,
    *,
    echo: bool = False,
    heartbeats: bool = True,
    client_id: str | None = None,
    version: str = CLIENT_PROTOCOL_VERSION,
) -> str:
    """The websocket URL's query (RTN2) for basic auth, as ably-js sends it: the key itself in ``key``
    (so the URL is a secret: use it over TLS to the real service, never log it). ``heartbeats=true``
    asks for protocol HEARTBEATs, which the client can see (it cannot see websocket pings it answers)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, not {fmt!r}")
    params = {"key": key, "format": fmt, "heartbeats": "true" if heartbeats else "false", "v": version}
    if not echo:
        params["echo"] = "false"
    if client_id is not None:
        params["clientId"] = client_id
    return urlencode(params)


def decode_data(data: object, encoding: str) -> tuple[object, str]:
    """Undo a message's ``encoding`` (RSL6): its steps were applied left to right, so they are undone
    right to left; ``base64``, ``utf-8`` and ``json`` are understood. Returns the data and the part of
    the encoding left undone ('' when fully decoded): a cipher or vcdiff step, or one that failed."""
    steps = encoding.split("/") if encoding else []
    while steps:
        step = steps[-1]
        try:
            if step == "base64" and isinstance(data, str | bytes):
                data = base64.b64decode(data, validate=True)
            elif step == "utf-8" and isinstance(data, bytes):
                data = data.decode("utf-8")
            elif step == "json" and isinstance(data, str | bytes):
                data = json.loads(data)
            else:
                break
        except (ValueError, TypeError):  # binascii.Error and UnicodeDecodeError are ValueErrors
            break
        steps.pop()
    return data, "/".join(steps)


@dataclass(frozen=True, slots=True)
class Connected:
    """CONNECTED: the connection is usable. ``max_idle_ms`` is the longest the service promises to stay
    silent (CD2h); ``error`` is a non-fatal note such as 80008, a resume that was not honoured."""

    connection_id: str
    max_idle_ms: int
    connection_state_ttl_ms: int
    error: ErrorInfo | None = None


@dataclass(frozen=True, slots=True)
class Attached:
    """ATTACHED for our channel; ``resumed`` says no message was missed since the last attachment (RTL12)."""

    channel: str
    flags: int
    error: ErrorInfo | None = None

    @property
    def resumed(self) -> bool:
        return bool(self.flags & Flag.RESUMED)


@dataclass(frozen=True, slots=True)
class Detached:
    """DETACHED for our channel: deliveries stopped (asked for, or the service's doing: RTL13)."""

    channel: str
    error: ErrorInfo | None = None


@dataclass(frozen=True, slots=True)
class ChannelFailed:
    """ERROR naming our channel: the channel failed, the connection carries on (RTL14)."""

    channel: str
    error: ErrorInfo


@dataclass(frozen=True, slots=True)
class Deliveries:
    """MESSAGE on our channel: the decoded ``data`` of each message with our name, in order, and a
    reason for each one whose encoding could not be undone (not delivered)."""

    payloads: list[object]
    undecodable: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Heartbeat:
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Disconnected:
    """DISCONNECTED: the service is dropping the transport; the client should connect again (RTN15)."""

    error: ErrorInfo | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    """ERROR without a channel: the connection is over (RTN14g, RTN15i); ``error.fatal`` says whether
    connecting again can help."""

    error: ErrorInfo


@dataclass(frozen=True, slots=True)
class Closed:
    """CLOSED: the service confirmed (or imposed) the end of the connection."""


@dataclass(frozen=True, slots=True)
class Ignored:
    """Anything a subscriber does not act on: ACK, NACK, PRESENCE, SYNC, other channels, unknown actions."""

    action: int


ClientEvent = (
    Connected | Attached | Detached | ChannelFailed | Deliveries | Heartbeat | Disconnected | Failed | Closed | Ignored
)


class ClientSession:
    """One realtime connection subscribed to one channel, client side: frames in, events out, frames to
    send built here. ``state`` follows the connection and the channel together: connecting -> connected
    -> attaching -> attached, and detached, disconnected, failed or closed when that ends.

    The hot path is :meth:`receive` on a MESSAGE: one decode, a channel check and, per message, a name
    check (and the encoding undone when there is one)."""

    __slots__ = ("channel", "connection_id", "fmt", "name", "state")

    def __init__(self, fmt: str, channel: str, name: str | Collection[str] | None) -> None:
        """``name``: the message name(s) delivered; None: every message on the channel."""
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, not {fmt!r}")
        self.fmt, self.channel = fmt, channel
        self.name: frozenset[str] | None = (
            frozenset((name,) if isinstance(name, str) else name) if name is not None else None
        )
        self.state = "connecting"
        self.connection_id: str | None = None

    # -- frames to send -----------------------------------------------------------------------------
    def frame(self, message: Mapping[str, Any]) -> str | bytes:
        """A protocol message as one websocket message: text for JSON, binary for MessagePack."""
        encoded = encode(message, self.fmt)
        return encoded.decode("utf-8") if self.fmt == "json" else encoded

    def attach(self) -> str | bytes:
        """ATTACH our channel (RTL4c); only once CONNECTED."""
        if self.state not in ("connected", "detached"):
            raise RuntimeError(f"cannot attach while {self.state}")
        self.state = "attaching"
        return self.frame({"action": Action.ATTACH, "channel": self.channel})

    def close(self) -> str | bytes:
        """CLOSE (RTN12a): the service discards the connection's state at once instead of keeping it
        for connectionStateTtl."""
        return self.frame({"action": Action.CLOSE})

    # -- frames received ------------------------------------------------------------------------------
    def receive(self, frame: str | bytes) -> ClientEvent:
        """One websocket message from the service -> one event. ProtocolError (40000) for a frame that
        is not a protocol message, or a MESSAGE without a list of message objects."""
        message = decode(frame, self.fmt)
        action = message["action"]
        if action == Action.MESSAGE:
            if message.get("channel") != self.channel:
                return Ignored(action)
            return self._deliveries(message)
        if action == Action.HEARTBEAT:
            hb_id = message.get("id")
            return Heartbeat(hb_id if isinstance(hb_id, str) else None)
        channel = message.get("channel")
        error = message.get("error")
        info = ErrorInfo.from_wire(error) if error is not None else None
        if action == Action.CONNECTED:
            return self._connected(message, info)
        if action == Action.ATTACHED and channel == self.channel:
            self.state = "attached"
            return Attached(self.channel, _int(message.get("flags")), info)
        if action == Action.DETACHED and channel == self.channel:
            self.state = "detached"
            return Detached(self.channel, info)
        if action == Action.ERROR:
            if channel is None:
                self.state = "failed"
                return Failed(info or ErrorInfo(0, 0, "ERROR without an error"))
            if channel == self.channel:
                self.state = "detached"
                return ChannelFailed(self.channel, info or ErrorInfo(0, 0, "channel ERROR without an error"))
            return Ignored(action)
        if action == Action.DISCONNECTED:
            self.state = "disconnected"
            return Disconnected(info)
        if action == Action.CLOSED:
            self.state = "closed"
            return Closed()
        return Ignored(action)

    def _connected(self, message: Mapping[str, Any], info: ErrorInfo | None) -> Connected:
        details = message.get("connectionDetails")
        if not isinstance(details, Mapping):
            details = {}
        connection_id = message.get("connectionId")
        self.connection_id = connection_id if isinstance(connection_id, str) else ""
        if self.state == "connecting":
            self.state = "connected"
        return Connected(
            self.connection_id,
            _int(details.get("maxIdleInterval")) or 15000,
            _int(details.get("connectionStateTtl")) or 120000,
            info,
        )

    def _deliveries(self, message: Mapping[str, Any]) -> Deliveries:
        items = message.get("messages")
        if type(items) is not list:
            raise ProtocolError(ErrorInfo.bad_request("MESSAGE without a messages array"))
        name = self.name
        payloads: list[object] = []
        undecodable: list[str] = []
        for item in items:
            if type(item) is not dict:
                raise ProtocolError(ErrorInfo.bad_request("MESSAGE with a message that is not an object"))
            if name is not None and item.get("name") not in name:
                continue
            data = item.get("data")
            encoding = item.get("encoding")
            if encoding:
                data, left = decode_data(data, str(encoding))
                if left:
                    undecodable.append(f"message data with encoding {str(encoding)[:40]!r}: cannot undo {left[:40]!r}")
                    continue
            payloads.append(data)
        return Deliveries(payloads, tuple(undecodable))
