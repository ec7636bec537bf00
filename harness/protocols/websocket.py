"""RFC 6455 client side, sans I/O: the opening handshake, frame parsing and masked client frames.

Why our own and not wsproto: a lean subscriber parses one frame per delivery, and wsproto's event machinery
costs ~12 µs per 256-byte frame where this parser's fast path (one complete unfragmented frame per read,
the steady state of a push subscriber) costs ~1-2 µs. Nothing here touches a socket or a clock; the driver
(:mod:`harness.net.websocket`) feeds bytes and acts on the events.

Server frames must be unmasked and use no RSV bits (no extension is negotiated); control frames are at most
125 bytes and never fragmented; text is UTF-8. A violation raises :class:`ProtocolError` carrying the close
code a client sends (1002 protocol error, 1007 bad data, 1009 too big).
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_PROTOCOL, CLOSE_BAD_DATA, CLOSE_TOO_BIG = 1000, 1001, 1002, 1007, 1009
NO_STATUS = 1005
DEFAULT_MAX_MESSAGE = 4 * 1024 * 1024
MAX_HEAD = 16 * 1024
#: Codes a peer may put in a close frame (RFC 6455 7.4.1; 1004-1006 and 1015 are never sent).
_SENDABLE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})
_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")


class ProtocolError(ValueError):
    """The server broke RFC 6455; ``code`` is the close code to answer with.

    ``events`` are the ones decoded from the same input before the violation: they did arrive, and a
    driver delivers them before failing the connection.
    """

    def __init__(self, reason: str, code: int = CLOSE_PROTOCOL) -> None:
        super().__init__(reason)
        self.code = code
        self.events: list[Event] = []


class HandshakeError(ValueError):
    """The server did not upgrade (its status, or a bad header); the message is the user's reason."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True, slots=True)
class Message:
    """A complete data message: ``str`` for text, ``bytes`` for binary."""

    data: str | bytes


@dataclass(frozen=True, slots=True)
class Ping:
    payload: bytes


@dataclass(frozen=True, slots=True)
class Pong:
    payload: bytes


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str


Event = Message | Ping | Pong | Close


# -- opening handshake ---------------------------------------------------------------------------
def new_key() -> str:
    return base64.b64encode(os.urandom(16)).decode("ascii")


def accept_for(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode("ascii")).digest()).decode("ascii")


def handshake_request(host: str, target: str, key: str, headers: Mapping[str, str] | None = None) -> bytes:
    """The client's upgrade request (``target`` is path plus query)."""
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse_handshake_response(buffer: bytes | bytearray, key: str) -> tuple[dict[str, str], int] | None:
    """``(headers, head_length)`` once the response head is complete, None while it is not.

    Raises HandshakeError for anything but a valid 101 answer to ``key``.
    """
    end = buffer.find(b"\r\n\r\n")
    if end < 0 and len(buffer) <= MAX_HEAD:
        return None
    if end < 0 or end + 4 > MAX_HEAD:
        raise HandshakeError(f"response head exceeds {MAX_HEAD} bytes")
    lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise HandshakeError(f"not an HTTP response: {lines[0][:80]!r}")
    status = int(parts[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise HandshakeError(f"malformed header line {line[:80]!r}", status)
        headers[name.strip().lower()] = value.strip()
    if status != 101:
        raise HandshakeError(f"server answered HTTP {status} {parts[2] if len(parts) > 2 else ''}".rstrip(), status)
    if headers.get("upgrade", "").lower() != "websocket":
        raise HandshakeError("101 response without Upgrade: websocket", status)
    if "upgrade" not in headers.get("connection", "").lower():
        raise HandshakeError("101 response without Connection: Upgrade", status)
    if headers.get("sec-websocket-accept") != accept_for(key):
        raise HandshakeError("Sec-WebSocket-Accept does not match the key", status)
    if headers.get("sec-websocket-extensions"):
        raise HandshakeError(
            f"server chose an extension we did not offer: {headers['sec-websocket-extensions']}", status
        )
    return headers, end + 4


# -- client frames -------------------------------------------------------------------------------
def encode_frame(opcode: int, payload: bytes, mask: bytes | None = None) -> bytes:
    """One final, masked client frame (RFC 6455 5.3: every client frame is masked)."""
    mask = mask if mask is not None else os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + _U16.pack(n)
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + _U64.pack(n)
    return head + mask + apply_mask(payload, mask)


def apply_mask(payload: bytes, mask: bytes) -> bytes:
    """XOR with the repeating 4-byte key, as one big-integer operation (no per-byte Python loop)."""
    n = len(payload)
    if not n:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def text(data: str) -> bytes:
    return encode_frame(OP_TEXT, data.encode("utf-8"))


def binary(data: bytes) -> bytes:
    return encode_frame(OP_BINARY, data)


def pong(payload: bytes) -> bytes:
    return encode_frame(OP_PONG, payload)


def ping(payload: bytes = b"") -> bytes:
    return encode_frame(OP_PING, payload)


def close(code: int = CLOSE_NORMAL, reason: str = "") -> bytes:
    """A close frame; the reason is cut to the 123 bytes a control frame has room for, on a UTF-8 boundary
    (a peer fails a close whose reason is not valid UTF-8)."""
    body = reason.encode("utf-8")[:123].decode("utf-8", "ignore").encode("utf-8")
    return encode_frame(OP_CLOSE, _U16.pack(code) + body)


# -- server frames -------------------------------------------------------------------------------
class FrameParser:
    """Server-to-client frames in, complete messages and control frames out."""

    __slots__ = (
        "_buffer",
        "_fragment_opcode",
        "_fragment_size",
        "_fragments",
        "closed",
        "max_message",
    )

    def __init__(self, max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        self.max_message = max_message
        self._buffer = b""
        self._fragments: list[bytes] = []
        self._fragment_opcode = 0
        self._fragment_size = 0
        self.closed = False

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame held for the next feed."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Event]:
        if self.closed:
            return []
        if self._buffer:
            data = self._buffer + data
            self._buffer = b""
        # fast path: exactly one final, unmasked data frame with a 7- or 16-bit length (a push delivery)
        size = len(data)
        if size >= 2 and (data[0] == 0x81 or data[0] == 0x82) and not self._fragments:
            n = data[1]
            head = 2
            if n == 126 and size >= 4:
                n, head = (data[2] << 8) | data[3], 4
            if size == head + n and n < 126 * (head == 2) + 65536 * (head == 4) and n <= self.max_message:
                payload = data[head:]
                if data[0] == 0x82:
                    return [Message(payload)]
                try:
                    return [Message(payload.decode("utf-8"))]
                except UnicodeDecodeError:
                    self.closed = True
                    raise ProtocolError("text frame is not UTF-8", CLOSE_BAD_DATA) from None
        events: list[Event] = []
        offset = 0
        while not self.closed:
            try:
                parsed = self._parse_one(data, offset, events)
            except ProtocolError as exc:
                self.closed = True  # the stream is broken: nothing after this can be trusted
                exc.events = events
                raise
            if parsed is None:
                break
            offset = parsed
        if offset < size and not self.closed:
            self._buffer = data[offset:]
        return events

    def _parse_one(self, data: bytes, offset: int, events: list[Event]) -> int | None:
        """Parse the frame at ``offset``; returns the offset after it, or None if it is incomplete."""
        available = len(data) - offset
        if available < 2:
            return None
        b0, b1 = data[offset], data[offset + 1]
        if b1 & 0x80:
            raise ProtocolError("server frame is masked")
        if b0 & 0x70:
            raise ProtocolError("reserved bits set without a negotiated extension")
        fin, opcode, n = b0 & 0x80, b0 & 0x0F, b1 & 0x7F
        # judge the header before waiting for a payload that may never come (or never fit)
        if opcode >= 0x8:
            if opcode > OP_PONG:
                raise ProtocolError(f"unknown opcode {opcode:#x}")
            if not fin or n > 125:
                raise ProtocolError("control frame fragmented or longer than 125 bytes")
        elif opcode > OP_BINARY:
            raise ProtocolError(f"unknown opcode {opcode:#x}")
        elif opcode == OP_CONT:
            if not self._fragments:
                raise ProtocolError("continuation frame with nothing to continue")
        elif self._fragments:
            raise ProtocolError("new data frame before the fragmented message ended")
        head = 2
        if n == 126:
            if available < 4:
                return None
            n = _U16.unpack_from(data, offset + 2)[0]
            head = 4
        elif n == 127:
            if available < 10:
                return None
            n = _U64.unpack_from(data, offset + 2)[0]
            if n >> 63:
                raise ProtocolError("64-bit frame length with the most significant bit set")
            head = 10
        if opcode < 0x8 and n + self._fragment_size > self.max_message:
            raise ProtocolError(f"message exceeds {self.max_message} bytes", CLOSE_TOO_BIG)
        end = offset + head + n
        if len(data) < end:
            return None
        payload = data[offset + head : end]
        self._frame(fin, opcode, payload, events)
        return end

    def _frame(self, fin: int, opcode: int, payload: bytes, events: list[Event]) -> None:
        if opcode in (OP_TEXT, OP_BINARY):
            if fin:
                events.append(Message(_as_data(opcode, payload)))
            else:
                self._fragment_opcode, self._fragments, self._fragment_size = opcode, [payload], len(payload)
        elif opcode == OP_CONT:
            self._fragments.append(payload)
            self._fragment_size += len(payload)
            if fin:
                whole = b"".join(self._fragments)
                self._fragments, self._fragment_size = [], 0
                events.append(Message(_as_data(self._fragment_opcode, whole)))
        elif opcode == OP_PING:
            events.append(Ping(payload))
        elif opcode == OP_PONG:
            events.append(Pong(payload))
        else:  # OP_CLOSE: the header checks let nothing else through
            events.append(_close_event(payload))
            self.closed = True


def _as_data(opcode: int, payload: bytes) -> str | bytes:
    if opcode == OP_BINARY:
        return payload
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("text frame is not UTF-8", CLOSE_BAD_DATA) from None


def _close_event(payload: bytes) -> Close:
    if not payload:
        return Close(NO_STATUS, "")
    if len(payload) == 1:
        raise ProtocolError("close frame with a one-byte body")
    code = _U16.unpack_from(payload)[0]
    if code not in _SENDABLE_CODES and not 3000 <= code <= 4999:
        raise ProtocolError(f"close frame with invalid code {code}")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("close reason is not UTF-8", CLOSE_BAD_DATA) from None
    return Close(code, reason)
