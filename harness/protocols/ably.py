"""The Ably realtime protocol, sans-I/O: protocol messages in and out of JSON text or MessagePack bytes.

What the reference target (targets/ably) speaks and what tests check frames against. Sources: Ably's
"Realtime Protocol Definition" (client-lib-development-guide/protocol), the features spec (RTN/RTL/TM
items) and ably-common's errors.json. No sockets, no clock: callers pass times and ids in.

A protocol message is a plain ``dict`` with camelCase keys, exactly as on the wire; the helpers here
build the ones a server sends and validate the ones a client sends.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Any

import msgpack

__all__ = [
    "FORMATS",
    "PROTOCOL_VERSIONS",
    "Action",
    "ConnectParams",
    "ConnectionDetails",
    "ErrorInfo",
    "Flag",
    "ProtocolError",
    "decode",
    "encode",
    "json_safe",
    "message_size",
    "parse_connect_params",
    "parse_key",
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
        return {"message": self.message, "code": self.code, "statusCode": self.status_code,
                "href": f"https://help.ably.io/error/{self.code}"}

    @classmethod
    def from_wire(cls, value: Mapping[str, Any]) -> ErrorInfo:
        return cls(int(value.get("code") or 0), int(value.get("statusCode") or 0), str(value.get("message") or ""))

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
        return cls(40009, 400, f"Maximum size of messages that can be published at once exceeded "
                               f"(was {size} bytes; limit is {limit} bytes)")


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
            "connectionKey": self.connection_key, "maxMessageSize": self.max_message_size,
            "maxInboundRate": self.max_inbound_rate, "maxOutboundRate": self.max_outbound_rate,
            "maxFrameSize": self.max_frame_size, "serverId": self.server_id,
            "connectionStateTtl": self.connection_state_ttl, "maxIdleInterval": self.max_idle_interval,
        }
        if self.client_id is not None:
            details["clientId"] = self.client_id
        return details


def connected(connection_id: str, details: ConnectionDetails, error: ErrorInfo | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"action": Action.CONNECTED, "connectionId": connection_id,
                               "connectionKey": details.connection_key, "connectionDetails": details.to_wire()}
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


def channel_message(channel: str, messages: Sequence[Mapping[str, Any]], *, message_id: str, timestamp: int,
                    connection_id: str | None = None, channel_serial: str | None = None) -> dict[str, Any]:
    """MESSAGE from the service: each message already carries its id, timestamp and connectionId (TM2)."""
    message: dict[str, Any] = {"action": Action.MESSAGE, "id": message_id, "channel": channel,
                               "timestamp": timestamp, "messages": list(messages)}
    if connection_id is not None:
        message["connectionId"] = connection_id
    if channel_serial is not None:
        message["channelSerial"] = channel_serial
    return message


def presence_message(action: Action, channel: str, presence: Iterable[Mapping[str, Any]], *, message_id: str,
                     timestamp: int, channel_serial: str | None = None) -> dict[str, Any]:
    """PRESENCE or SYNC from the service; a SYNC's ``channelSerial`` ends in ``:`` on its last page."""
    message: dict[str, Any] = {"action": action, "id": message_id, "channel": channel, "timestamp": timestamp,
                               "presence": list(presence)}
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
        fmt=fmt, version=version, key=query.get("key"), access_token=token, client_id=query.get("clientId"),
        echo=_flag(query, "echo", True),
        # ably-js on Node sends heartbeats=false and watches websocket pings instead (RTN23b)
        heartbeats=_flag(query, "heartbeats", True),
        resume=query.get("resume"), recover=query.get("recover"),
    )


def parse_key(key: str) -> tuple[str, str]:
    """``APP.KEYID:SECRET`` -> (key name ``APP.KEYID``, secret). ProtocolError 40101 when malformed."""
    match = _KEY_RE.match(key.strip())
    if match is None:
        raise ProtocolError(ErrorInfo.invalid_credentials("Invalid key: expected APP_ID.KEY_ID:KEY_SECRET"))
    return f"{match['app']}.{match['key']}", match["secret"]


def token_request_mac(secret: str, *, key_name: str, ttl: int | None, capability: str | None,
                      client_id: str | None, timestamp: int, nonce: str) -> str:
    """The signature of a TokenRequest (RSA9g): HMAC-SHA256 over its fields, each followed by a newline."""
    text = "".join(f"{v}\n" for v in (key_name, "" if ttl is None else ttl, capability or "", client_id or "",
                                      timestamp, nonce))
    digest = hmac.new(secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")
