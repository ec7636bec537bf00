"""Ably messages as the target handles them: the service clock, publish validation, and encoding a
protocol message once per wire format (JSON or msgpack) whoever receives it."""

from __future__ import annotations

import re
import time
from typing import Any

from harness.protocols import ably as proto
from harness.protocols.ably import ErrorInfo, ProtocolError
from targets.wsframes import ws_frame

__all__ = ["MAX_CHANNEL_NAME", "Frames", "now_ms", "validate_messages"]

MAX_CHANNEL_NAME = 1024

ENCODING_STEP = re.compile(r"json|utf-8|base64|cipher\+[a-z0-9]+-[0-9]+-[a-z0-9]+")
"""The steps a publisher's ``encoding`` may chain (RSL4, RSL5): json, utf-8, base64 and a named cipher such as
``cipher+aes-128-cbc`` (relayed as is: the key stays with the clients). Anything else Ably refuses (40013)."""


def valid_encoding(encoding: object) -> bool:
    """Whether a message's ``encoding`` is absent or a ``/``-separated chain of known steps."""
    if encoding is None or encoding == "":
        return True
    return isinstance(encoding, str) and all(ENCODING_STEP.fullmatch(step) for step in encoding.split("/"))


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def validate_messages(raw: Any, client_id: str | None, max_message_size: int) -> list[dict[str, Any]]:
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
        if not valid_encoding(encoding):
            raise ProtocolError(ErrorInfo(40013, 400, f"Invalid message data or encoding: encoding {encoding!r}"))
        sender_id = m.get("clientId")
        if sender_id is not None and (
            not isinstance(sender_id, str) or (client_id is not None and sender_id != client_id)
        ):
            raise ProtocolError(ErrorInfo(40012, 400, f"Mismatched clientId {sender_id!r}"))
        size += proto.message_size(m)
    if size > max_message_size:
        raise ProtocolError(ErrorInfo.too_large(size, max_message_size))
    return raw


class Frames:
    """A protocol message's websocket frame in each format, each built at most once."""

    __slots__ = ("_json", "_msgpack", "message")

    def __init__(self, message: dict[str, Any]) -> None:
        self.message = message
        self._json: bytes | None = None
        self._msgpack: bytes | None = None

    def get(self, fmt: str) -> bytes:
        if fmt == "msgpack":
            if self._msgpack is None:
                self._msgpack = ws_frame(proto.encode(self.message, "msgpack"), binary=True)
            return self._msgpack
        if self._json is None:
            self._json = ws_frame(proto.encode(proto.json_safe(self.message), "json"), False)
        return self._json
