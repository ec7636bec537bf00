"""Pre-built websocket frames written straight to clients' transports: the fan-out fast path.

A broadcast is encoded once, down to the frame, and the same bytes go to every recipient (one write,
no task, no per-client encode), as Node servers do; aiohttp's send_* would encode per client.
"""

from __future__ import annotations

import asyncio
import logging
import struct

__all__ = ["MAX_WRITE_BUFFER", "write_frame", "ws_frame", "ws_text_frame"]

log = logging.getLogger("targets")

MAX_WRITE_BUFFER = 16 * 1024 * 1024
"""A client this far behind (unsent bytes) stopped reading: it is cut instead of growing memory without end."""


def ws_frame(payload: bytes, binary: bool = False) -> bytes:
    """One unmasked, uncompressed RFC 6455 text (or binary) frame."""
    first = 0x82 if binary else 0x81
    n = len(payload)
    if n < 126:
        header = bytes((first, n))
    elif n < 1 << 16:
        header = struct.pack("!BBH", first, 126, n)
    else:
        header = struct.pack("!BBQ", first, 127, n)
    return header + payload


def ws_text_frame(payload: bytes) -> bytes:
    """One text frame (the JSON protocols)."""
    return ws_frame(payload, False)


def write_frame(transport: asyncio.Transport, frame: bytes, who: str, limit: int = MAX_WRITE_BUFFER) -> bool:
    """Write ``frame`` unless the transport is closing; abort a client whose backlog passes ``limit``.
    Returns whether the frame was written."""
    if transport.is_closing():
        return False
    transport.write(frame)
    backlog = transport.get_write_buffer_size()
    if backlog > limit:
        log.warning("closing %s: %d bytes unread", who, backlog)
        transport.abort()
    return True
