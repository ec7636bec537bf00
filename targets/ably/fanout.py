"""The Ably target's connections, channels and presence members, and delivering messages to them.

Everything runs on one event loop and a fan-out never awaits, so per-connection order equals publish
order; channel messages go through the fault plan (targets.faults), presence never does.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from harness.protocols import ably as proto
from harness.protocols.ably import Action
from targets.ably.messages import Frames, now_ms
from targets.faults import CORRUPT_PAYLOAD, FaultPlan, Faults
from targets.wsframes import write_frame, ws_frame

__all__ = ["Connection", "Hub"]


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
        write_frame(self.transport, frame, f"connection {self.id}")

    def send(self, message: Mapping[str, Any]) -> None:
        payload = proto.encode(message if self.binary else proto.json_safe(dict(message)), self.fmt)
        self.write(ws_frame(payload, self.binary))


class Hub:
    """State shared by the realtime sessions and the REST API, and the fan-out over it."""

    def __init__(self, faults: Faults, max_message_size: int) -> None:
        self.max_message_size = max_message_size
        self.server_id = f"rtbench-{uuid.uuid4().hex[:8]}"
        self.connections: dict[str, Connection] = {}
        self.channels: dict[str, set[Connection]] = {}
        self.members: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}  # channel -> (clientId, connId) -> msg
        self.fan_out: FaultPlan[Connection, Frames] = FaultPlan(faults, self._deliver)
        self._ids = itertools.count()
        self.published = 0
        self.delivered = 0

    def next_id(self) -> int:
        """A number unique in this target's life (channel serials, sync and presence ids)."""
        return next(self._ids)

    def publish(self, channel: str, messages: list[dict[str, Any]], base_id: str, sender: Connection | None) -> int:
        """Deliver to every connection attached to ``channel``; returns recipients at publish time.

        Each message is sent as many times as ``--replay-fault`` says (Faults.copies of its data): the
        messages sent once or more in one protocol message, those sent twice again in a second one, with
        ids of their own (``<id>~dup``)."""
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
        copies = [self.fan_out.faults.copies(m.get("data")) for m in out]
        once = [m for m, n in zip(out, copies, strict=True) if n > 0]
        again = [{**m, "id": f"{m['id']}~dup"} for m, n in zip(out, copies, strict=True) if n > 1]
        for items, message_id in ((once, base_id), (again, f"{base_id}~dup")):
            if items:
                self._send(
                    recipients,
                    proto.channel_message(
                        channel, items, message_id=message_id, timestamp=stamp, connection_id=connection_id
                    ),
                )
        return len(recipients)

    def _send(self, recipients: list[Connection], message: dict[str, Any]) -> None:
        """One channel message through the fault plan, encoded once per wire format."""
        self.fan_out.send(
            recipients,
            Frames(message),
            lambda: Frames({**message, "messages": [{**m, "data": CORRUPT_PAYLOAD} for m in message["messages"]]}),
        )

    def _deliver(self, plan: list[tuple[Connection, Frames]]) -> None:
        for conn, frames in plan:
            if conn.id in self.connections:
                conn.write(frames.get(conn.fmt))
                self.delivered += 1

    def broadcast_presence(self, channel: str, items: list[dict[str, Any]]) -> None:
        message = proto.presence_message(
            Action.PRESENCE, channel, items, message_id=f"p:{self.next_id()}", timestamp=now_ms()
        )
        frames = Frames(message)
        for conn in self.channels.get(channel, ()):
            conn.write(frames.get(conn.fmt))

    def leave_channel(self, conn: Connection, channel: str) -> None:
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
                self.broadcast_presence(channel, left)

    def forget(self, conn: Connection) -> None:
        self.connections.pop(conn.id, None)
        for channel in list(conn.channels | conn.presence):
            self.leave_channel(conn, channel)

    def close(self) -> None:
        self.fan_out.cancel()
