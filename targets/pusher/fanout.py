"""The Pusher target's channels and their fan-out: who is subscribed, and delivering events to them.

A broadcast is encoded once per channel, down to the websocket frame, and written straight to each
recipient's transport. Channel events go through the fault plan; member events (protocol bookkeeping)
never do.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from harness.protocols import pusher as proto
from targets.faults import CORRUPT_PAYLOAD, FaultPlan, Faults
from targets.wsframes import write_frame, ws_text_frame

__all__ = ["Channel", "Connection", "Hub"]


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
        """Write a pre-built frame; a client too far behind is cut (targets.wsframes.write_frame)."""
        if not self.ws.closed:
            write_frame(self.transport, frame, self.socket_id)


@dataclass
class Channel:
    name: str
    kind: proto.ChannelKind
    subscribers: dict[str, Connection] = field(default_factory=dict)
    members: dict[str, Any] = field(default_factory=dict)  # presence: user id -> user_info
    sockets_of: dict[str, set[str]] = field(default_factory=dict)  # presence: user id -> socket ids


class Hub:
    """Connections and channels, shared by the websocket sessions and the HTTP API."""

    def __init__(self, faults: Faults) -> None:
        self.connections: dict[str, Connection] = {}
        self.channels: dict[str, Channel] = {}
        self.fan_out: FaultPlan[Connection, bytes] = FaultPlan(faults, _deliver)

    def broadcast(
        self, name: str, event: str, data: str, exclude: str | None = None, user_id: str | None = None
    ) -> int:
        """Deliver an event to a channel's subscribers (but ``exclude``), as many times as ``--replay-fault``
        says (Faults.copies). Returns the recipients."""
        channel = self.channels.get(name)
        if channel is None:
            return 0
        recipients = [c for sid, c in channel.subscribers.items() if sid != exclude]
        if not recipients:
            return 0
        good = ws_text_frame(proto.channel_event(name, event, data, user_id).encode())
        for _ in range(self.fan_out.faults.copies(data)):
            self.fan_out.send(
                recipients,
                good,
                lambda: ws_text_frame(proto.channel_event(name, event, CORRUPT_PAYLOAD, user_id).encode()),
            )
        return len(recipients)

    def control(self, channel: Channel, text: str, exclude: str | None = None) -> None:
        """Member events: protocol bookkeeping, never subject to faults."""
        frame = ws_text_frame(text.encode())
        for socket_id, conn in channel.subscribers.items():
            if socket_id != exclude:
                conn.write(frame)

    def close(self) -> None:
        self.fan_out.cancel()


def _deliver(plan: list[tuple[Connection, bytes]]) -> None:
    for conn, frame in plan:
        conn.write(frame)
