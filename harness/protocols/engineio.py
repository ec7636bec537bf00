"""Engine.IO v4 / Socket.IO v5 client codec for the websocket transport, sans I/O.

Text frames in, typed events out; no sockets, no clock. The lean Socket.IO subscriber feeds every
websocket text frame to :meth:`ClientSession.feed_text` and sends what :meth:`ClientSession.data_to_send`
returns (the pong to a ping, the namespace CONNECTs after the open packet). Timers (the ping deadline,
connect timeouts) belong to the driver: :attr:`Handshake.ping_deadline_s` says how long it may wait.

Wire rules (engine.io-protocol v4 and socket.io-protocol v5, checked against socket.io-parser 4.x):

* the websocket is opened on ``/<path>/?EIO=4&transport=websocket`` (path ``socket.io`` by default; the
  trailing slash matters to the Node server); each websocket frame holds exactly one Engine.IO packet;
* Engine.IO packet = one type digit + data: ``0`` open (JSON handshake), ``1`` close, ``2`` ping (the
  client answers ``3`` with the same data, e.g. ``2probe`` -> ``3probe``), ``3`` pong, ``4`` message,
  ``5`` upgrade, ``6`` noop. In v4 the *server* pings;
* a Socket.IO packet rides in a message: ``<type>[<namespace>,][<ack id>][<JSON>]`` with types
  ``0`` CONNECT, ``1`` DISCONNECT, ``2`` EVENT, ``3`` ACK, ``4`` CONNECT_ERROR (``5``/``6`` are their
  binary forms, whose attachments come in binary frames: not supported here). The namespace is written
  only when it is not ``/``. So the hot path, an event on the default namespace, is ``42["name",...]``;
* payloads: CONNECT an object (the server's reply carries ``sid``), DISCONNECT none, EVENT a non-empty
  array whose first item is the event name, ACK an array (with an ack id), CONNECT_ERROR an object
  ``{"message": ..., "data"?: ...}`` (a bare string from older servers is accepted too).

Deliberate differences from the reference JavaScript client: an event name must be a string (the
reference parser also lets numbers through), reserved event names (``connect``, ``disconnect`` ...) are
not refused, and packets for a namespace the session did not ask for raise :class:`ProtocolError` where
the reference client drops them silently: a benchmark must count what it cannot deliver.

Every malformed frame raises :class:`ProtocolError` with a short reason, and nothing else escapes
``feed_text``; the session's state is left as it was, so the driver chooses between counting the error
and closing the connection (what the reference client does).
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NoReturn, TypeAlias
from urllib.parse import urlencode, urlsplit

__all__ = [
    "DEFAULT_NAMESPACE",
    "DEFAULT_PATH",
    "EIO_VERSION",
    "Ack",
    "ClientEvent",
    "ClientSession",
    "Closed",
    "ConnectError",
    "Connected",
    "Disconnected",
    "EnginePacketType",
    "Event",
    "Handshake",
    "Opened",
    "Packet",
    "PacketType",
    "Ping",
    "Pong",
    "ProtocolError",
    "decode_packet",
    "encode_ack",
    "encode_connect",
    "encode_disconnect",
    "encode_event",
    "encode_pong",
    "parse_open",
    "websocket_target",
    "websocket_url",
]

EIO_VERSION: Final = 4
DEFAULT_PATH: Final = "socket.io"
DEFAULT_NAMESPACE: Final = "/"
MAX_ACK_ID_DIGITS: Final = 15
"""Ack ids are JavaScript numbers; 15 digits stay exact and keep a hostile frame from building a huge int."""


class EnginePacketType(enum.IntEnum):
    """Engine.IO v4 packet types: the first character of every frame."""

    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


class PacketType(enum.IntEnum):
    """Socket.IO v5 packet types: the first character of a message's data."""

    CONNECT = 0
    DISCONNECT = 1
    EVENT = 2
    ACK = 3
    CONNECT_ERROR = 4
    BINARY_EVENT = 5
    BINARY_ACK = 6


class ProtocolError(ValueError):
    """A frame that breaks the protocol; ``reason`` is short enough for an error counter's label."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- events -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Handshake:
    """The server's open packet. ``max_payload`` is None when an older server leaves it out."""

    sid: str
    ping_interval_ms: int
    ping_timeout_ms: int
    max_payload: int | None = None
    upgrades: tuple[str, ...] = ()

    @property
    def ping_deadline_s(self) -> float:
        """Silence after which the client should deem the connection dead (no ping for interval + timeout)."""
        return (self.ping_interval_ms + self.ping_timeout_ms) / 1000.0


@dataclass(frozen=True, slots=True)
class Opened:
    """Engine.IO session open; the namespace CONNECTs are now waiting in ``data_to_send()``."""

    handshake: Handshake


@dataclass(frozen=True, slots=True)
class Connected:
    """The server accepted our CONNECT to ``namespace``."""

    sid: str
    namespace: str = DEFAULT_NAMESPACE


@dataclass(frozen=True, slots=True)
class ConnectError:
    """The server refused our CONNECT (CONNECT_ERROR): ``reason`` is its message, ``data`` any details."""

    reason: str
    namespace: str = DEFAULT_NAMESPACE
    data: Any = None


@dataclass(slots=True)
class Event:
    """An EVENT. Not frozen: a frozen dataclass costs ~0.7 us more to build, on the hot path. Read-only."""

    name: str
    args: list[Any]
    namespace: str = DEFAULT_NAMESPACE
    ack_id: int | None = None


@dataclass(frozen=True, slots=True)
class Ack:
    """The answer to one of our events sent with ``ack_id``."""

    ack_id: int
    args: list[Any]
    namespace: str = DEFAULT_NAMESPACE


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The server ended our membership of ``namespace`` (DISCONNECT); the websocket may stay open."""

    namespace: str = DEFAULT_NAMESPACE


@dataclass(frozen=True, slots=True)
class Ping:
    """A server ping (liveness: the driver resets its deadline); the pong is queued in ``data_to_send()``."""

    payload: str = ""


@dataclass(frozen=True, slots=True)
class Pong:
    """A pong from the server (v4 servers only send one in answer to a client ping, e.g. ``3probe``)."""

    payload: str = ""


@dataclass(frozen=True, slots=True)
class Closed:
    """Engine.IO close packet: the server is ending the session; nothing more may arrive."""


ClientEvent: TypeAlias = Opened | Connected | ConnectError | Event | Ack | Disconnected | Ping | Pong | Closed


@dataclass(frozen=True, slots=True)
class Packet:
    """One decoded Socket.IO packet; ``data`` is None when the packet has no payload."""

    type: PacketType
    namespace: str = DEFAULT_NAMESPACE
    data: Any = None
    ack_id: int | None = None


# -- JSON ---------------------------------------------------------------------------------------------


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)
_SCAN: Final[Callable[[str, int], tuple[Any, int]]] = _DECODER.scan_once  # type: ignore[attr-defined]
"""The C scanner called at an index: ~0.4 us for a probe event where ``json.loads(text[2:])`` costs several
times that (its Python wrapper, a whitespace regex, the slice)."""
_dumps: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
"""Compact UTF-8 like JavaScript's JSON.stringify, so encoded frames match the reference client's bytes."""


def _snip(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _json_at(text: str, start: int) -> Any:
    """The JSON value filling ``text[start:]``; anything else (bad or trailing input) is a ProtocolError."""
    try:
        value, end = _SCAN(text, start)
        if end == len(text):
            return value
    except StopIteration:
        pass  # not a JSON value at ``start`` (perhaps whitespace): the full decoder below says what is wrong
    except RecursionError:
        raise ProtocolError("JSON nested too deeply") from None
    except ValueError as exc:
        raise ProtocolError(f"bad JSON: {getattr(exc, 'msg', exc)}") from None
    try:  # JSON allows whitespace around the value: the slow path, for what the scanner did not take
        return _DECODER.decode(text[start:])
    except RecursionError:
        raise ProtocolError("JSON nested too deeply") from None
    except ValueError as exc:
        raise ProtocolError(f"bad JSON: {getattr(exc, 'msg', exc)}") from None


# -- URL and handshake --------------------------------------------------------------------------------


def websocket_target(path: str = DEFAULT_PATH, query: Mapping[str, str] | None = None) -> str:
    """The websocket request target, e.g. ``/socket.io/?EIO=4&transport=websocket``.

    ``query`` adds parameters (a server may read them in its connection handler); EIO and transport win.
    """
    params = {**(query or {}), "EIO": str(EIO_VERSION), "transport": "websocket"}
    stripped = path.strip("/")
    return f"/{stripped}/?{urlencode(params)}" if stripped else f"/?{urlencode(params)}"


def websocket_url(base_url: str, path: str = DEFAULT_PATH, query: Mapping[str, str] | None = None) -> str:
    """``http://host:port`` (or https/ws/wss) -> ``ws://host:port/socket.io/?EIO=4&transport=websocket``.

    A path in ``base_url`` is refused: in the JavaScript client it would name a namespace, which here is
    :class:`ClientSession`'s ``namespaces`` argument, and the server's path is ``path``.
    """
    parts = urlsplit(base_url)
    schemes = {"http": "ws", "ws": "ws", "https": "wss", "wss": "wss"}
    if parts.scheme not in schemes or not parts.netloc:
        raise ValueError(f"not an http(s) or ws(s) URL: {base_url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"base URL must be scheme://host[:port], got {base_url!r}")
    return f"{schemes[parts.scheme]}://{parts.netloc}{websocket_target(path, query)}"


def _ms(handshake: Mapping[str, Any], key: str) -> int:
    value = handshake.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ProtocolError(f"open packet: {key} must be a positive number")
    return int(value)


def parse_open(text: str) -> Handshake:
    """Parse the open packet ``0{"sid":..., "pingInterval":..., "pingTimeout":..., ...}``."""
    if not text.startswith("0"):
        raise ProtocolError(f"not an open packet: {_snip(text)}")
    body = _json_at(text, 1) if len(text) > 1 else None
    if not isinstance(body, dict):
        raise ProtocolError("open packet: payload is not a JSON object")
    sid = body.get("sid")
    if not isinstance(sid, str) or not sid:
        raise ProtocolError("open packet: no sid")
    max_payload = body.get("maxPayload")
    if max_payload is not None:
        max_payload = _ms(body, "maxPayload")
    upgrades = body.get("upgrades", [])
    if not isinstance(upgrades, list) or not all(isinstance(u, str) for u in upgrades):
        raise ProtocolError("open packet: upgrades is not a list of strings")
    return Handshake(sid, _ms(body, "pingInterval"), _ms(body, "pingTimeout"), max_payload, tuple(upgrades))


# -- Socket.IO packets --------------------------------------------------------------------------------

_ABSENT: Final[Any] = object()
_PACKET_TYPES: Final = tuple(PacketType)
_ACK_DIGITS: Final = re.compile(r"[0-9]*")


def decode_packet(text: str, start: int = 0) -> Packet:
    """Decode and check one Socket.IO packet from ``text[start:]`` (``start=1`` skips the message ``4``)."""
    if start >= len(text):
        raise ProtocolError("empty Socket.IO packet")
    kind = text[start]
    if kind not in "01234":
        if kind in "56":
            raise ProtocolError("binary attachments are not supported")
        raise ProtocolError(f"unknown Socket.IO packet type {kind!r}")
    ptype = _PACKET_TYPES[ord(kind) - 48]
    i = start + 1
    namespace = DEFAULT_NAMESPACE
    if text.startswith("/", i):
        comma = text.find(",", i)
        end = len(text) if comma < 0 else comma  # like socket.io-parser, the comma may be missing at the end
        namespace = text[i:end]
        i = end + 1
    ack_id: int | None = None
    digits = _ACK_DIGITS.match(text, i)
    if digits is not None and digits.end() > i:
        if digits.end() - i > MAX_ACK_ID_DIGITS:
            raise ProtocolError("ack id too long")
        ack_id = int(digits.group())
        i = digits.end()
    data = _json_at(text, i) if i < len(text) else _ABSENT
    name = ptype.name
    if ptype is PacketType.EVENT:
        if type(data) is not list or not data:
            raise ProtocolError("EVENT payload is not a non-empty array")
        if type(data[0]) is not str:
            raise ProtocolError("EVENT name is not a string")
    elif ptype is PacketType.ACK:
        if type(data) is not list:
            raise ProtocolError("ACK payload is not an array")
        if ack_id is None:
            raise ProtocolError("ACK without an ack id")
    elif ptype is PacketType.CONNECT:
        if data is not _ABSENT and type(data) is not dict:
            raise ProtocolError("CONNECT payload is not an object")
    elif ptype is PacketType.CONNECT_ERROR:
        if type(data) is not dict and type(data) is not str:
            raise ProtocolError("CONNECT_ERROR payload is not an object")
    elif data is not _ABSENT:
        raise ProtocolError("DISCONNECT with a payload")
    if ack_id is not None and ptype not in (PacketType.EVENT, PacketType.ACK):
        raise ProtocolError(f"{name} with an ack id")
    return Packet(ptype, namespace, None if data is _ABSENT else data, ack_id)


def _ns_prefix(namespace: str) -> str:
    if namespace == DEFAULT_NAMESPACE:
        return ""
    if not namespace.startswith("/") or "," in namespace:
        raise ValueError(f"namespace must start with '/' and hold no ',': {namespace!r}")
    return namespace + ","


def _check_ack_id(ack_id: int) -> str:
    if type(ack_id) is not int or ack_id < 0 or len(str(ack_id)) > MAX_ACK_ID_DIGITS:
        raise ValueError(f"ack id must be an int in 0..{10**MAX_ACK_ID_DIGITS - 1}: {ack_id!r}")
    return str(ack_id)


def encode_connect(namespace: str = DEFAULT_NAMESPACE, auth: Mapping[str, Any] | None = None) -> str:
    """CONNECT frame: ``40``, ``40/admin,``, ``40{"token":"x"}``; ``auth`` reaches the server's handshake."""
    head = "40" + _ns_prefix(namespace)
    if auth is None:
        return head
    if not isinstance(auth, Mapping):
        raise ValueError("auth must be a mapping (the CONNECT payload is a JSON object)")
    return head + _dumps(dict(auth))


def encode_event(name: str, *args: Any, namespace: str = DEFAULT_NAMESPACE, ack_id: int | None = None) -> str:
    """EVENT frame: ``42["name",...args]``, ``42/admin,7["name"]`` (7: the server should answer with ACK 7)."""
    if not isinstance(name, str):
        raise ValueError(f"event name must be a string: {name!r}")
    ack = "" if ack_id is None else _check_ack_id(ack_id)
    return "42" + _ns_prefix(namespace) + ack + _dumps([name, *args])


def encode_ack(ack_id: int, *args: Any, namespace: str = DEFAULT_NAMESPACE) -> str:
    """ACK frame answering a server event that carried ``ack_id``: ``43/admin,13["bar"]``."""
    return "43" + _ns_prefix(namespace) + _check_ack_id(ack_id) + _dumps(list(args))


def encode_disconnect(namespace: str = DEFAULT_NAMESPACE) -> str:
    """DISCONNECT frame: ``41`` or ``41/admin,``."""
    return "41" + _ns_prefix(namespace)


def encode_pong(payload: str = "") -> str:
    """Pong frame echoing the ping's data: ``3``, ``3probe``."""
    return "3" + payload


# -- the session --------------------------------------------------------------------------------------


class ClientSession:
    """One client connection's protocol state: fed the server's text frames, yields events and replies.

    ``namespaces`` are CONNECTed (each with ``auth``) as soon as the open packet arrives. Hot path: an
    EVENT on the default namespace without an ack id (``42[...]``) is decoded by one C JSON scan
    (~1.3 us per 256-byte probe on the dev box); everything else takes the checked path (~5 us).
    """

    def __init__(self, namespaces: Iterable[str] = (DEFAULT_NAMESPACE,), auth: Mapping[str, Any] | None = None) -> None:
        self.namespaces = tuple(namespaces)
        if not self.namespaces or len(set(self.namespaces)) != len(self.namespaces):
            raise ValueError(f"namespaces must be distinct and at least one: {self.namespaces!r}")
        self._connects = [encode_connect(ns, auth) for ns in self.namespaces]  # validates both now
        self.handshake: Handshake | None = None
        self.sids: dict[str, str] = {}
        """Connected namespaces -> the sid the server gave each."""
        self.closed = False
        self._pending: set[str] = set()
        self._root = False  # "/" connected and the session open: the fast path may run
        self._out: list[str] = []

    def connected(self, namespace: str = DEFAULT_NAMESPACE) -> bool:
        return namespace in self.sids

    def data_to_send(self) -> list[str]:
        """Text frames to send, in order (then forgotten): CONNECTs after the open packet, pongs."""
        out, self._out = self._out, []
        return out

    def disconnect(self, namespace: str = DEFAULT_NAMESPACE) -> None:
        """Leave ``namespace``: queues its DISCONNECT; its events then raise ProtocolError."""
        if namespace not in self.sids:
            raise ValueError(f"not connected to {namespace!r}")
        del self.sids[namespace]
        self._root = DEFAULT_NAMESPACE in self.sids
        self._out.append(encode_disconnect(namespace))

    def feed_binary(self, data: bytes) -> list[ClientEvent]:
        """Binary frames only carry Socket.IO attachments, which this client does not support."""
        raise ProtocolError("binary frame: attachments are not supported")

    def feed_text(self, text: str) -> list[ClientEvent]:
        """One websocket text frame -> the events it holds (none for a noop). Raises ProtocolError only."""
        if self._root and text.startswith("42["):
            try:
                value, end = _SCAN(text, 2)
            except (ValueError, StopIteration, RecursionError):
                pass  # the checked path says what is wrong
            else:
                if end == len(text) and type(value) is list and value and type(value[0]) is str:
                    return [Event(value[0], value[1:])]
        return self._feed_checked(text)

    def _feed_checked(self, text: str) -> list[ClientEvent]:
        if self.closed:
            raise ProtocolError("frame after close")
        if not text:
            raise ProtocolError("empty frame")
        kind = text[0]
        if self.handshake is None:
            if kind != "0":
                raise ProtocolError(f"expected the open packet, got {_snip(text)}")
            handshake = parse_open(text)
            self.handshake = handshake
            self._pending.update(self.namespaces)
            self._out.extend(self._connects)
            return [Opened(handshake)]
        if kind == "4":
            return [self._message(decode_packet(text, 1))]
        if kind == "2":
            self._out.append(encode_pong(text[1:]))
            return [Ping(text[1:])]
        if kind == "3":
            return [Pong(text[1:])]
        if kind == "6":
            return []
        if kind == "1":
            self.closed = True
            self._root = False
            self.sids.clear()
            self._pending.clear()
            return [Closed()]
        if kind == "0":
            raise ProtocolError("second open packet")
        if kind == "5":
            raise ProtocolError("upgrade packet on a websocket-only session")
        raise ProtocolError(f"unknown Engine.IO packet type {kind!r}")

    def _message(self, packet: Packet) -> ClientEvent:
        ptype, ns, data = packet.type, packet.namespace, packet.data
        if ptype is PacketType.CONNECT or ptype is PacketType.CONNECT_ERROR:
            if ns not in self._pending:
                raise ProtocolError(f"{ptype.name} for a namespace not being connected: {_snip(ns)}")
            if ptype is PacketType.CONNECT_ERROR:
                self._pending.discard(ns)
                if isinstance(data, str):
                    return ConnectError(data, ns)
                message = data.get("message")
                return ConnectError(message if isinstance(message, str) else _dumps(data)[:80], ns, data.get("data"))
            sid = data.get("sid") if isinstance(data, dict) else None
            if not isinstance(sid, str) or not sid:
                raise ProtocolError("CONNECT reply without a sid (a Socket.IO v2 server?)")
            self._pending.discard(ns)
            self.sids[ns] = sid
            self._root = DEFAULT_NAMESPACE in self.sids
            return Connected(sid, ns)
        if ns not in self.sids:
            raise ProtocolError(f"{ptype.name} on a namespace not connected: {_snip(ns)}")
        if ptype is PacketType.EVENT:
            return Event(data[0], data[1:], ns, packet.ack_id)
        if ptype is PacketType.ACK:
            assert packet.ack_id is not None  # decode_packet guarantees it
            return Ack(packet.ack_id, data, ns)
        del self.sids[ns]  # DISCONNECT
        self._root = DEFAULT_NAMESPACE in self.sids
        return Disconnected(ns)
