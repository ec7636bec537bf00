"""Who is present in which room: the bookkeeping a target's presence feature needs, without any wire.

A member is a user id with its info; one member may hold several connections (tabs), and it is added
when its first connection joins and removed when its last one leaves, as Pusher's presence channels and
Ably's presence (per clientId) behave. A target turns what :meth:`Roster.join` and :meth:`Roster.leave`
answer into its own protocol's events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Roster"]


@dataclass
class _Room:
    info: dict[str, Any] = field(default_factory=dict)  # member id -> info, in join order
    connections: dict[str, set[str]] = field(default_factory=dict)  # member id -> connection ids


class Roster:
    """Rooms of members; every method is synchronous, so a target calls it between two awaits."""

    def __init__(self) -> None:
        self._rooms: dict[str, _Room] = {}
        self._joined: dict[str, dict[str, str]] = {}  # connection id -> room -> member id

    def join(self, connection: str, room: str, member: str, info: Any) -> tuple[dict[str, Any], bool]:
        """``connection`` joins ``room`` as ``member``: (the other members present, id -> info; whether the
        member is new, so the others must be told). Joining again as another member leaves the first."""
        current = self._joined.get(connection, {}).get(room)
        if current is not None and current != member:
            self.leave(connection, room)
        state = self._rooms.setdefault(room, _Room())
        others = {m: i for m, i in state.info.items() if m != member}
        sockets = state.connections.setdefault(member, set())
        added = not sockets
        sockets.add(connection)
        state.info[member] = info
        self._joined.setdefault(connection, {})[room] = member
        return others, added

    def leave(self, connection: str, room: str) -> str | None:
        """``connection`` leaves ``room``: the member id whose last connection this was (tell the others),
        else None."""
        member = self._joined.get(connection, {}).pop(room, None)
        if member is None:
            return None
        if not self._joined[connection]:
            del self._joined[connection]
        state = self._rooms[room]
        sockets = state.connections[member]
        sockets.discard(connection)
        if sockets:
            return None
        del state.connections[member]
        del state.info[member]
        if not state.info:
            del self._rooms[room]
        return member

    def disconnect(self, connection: str) -> list[tuple[str, str]]:
        """A connection ended: (room, member) for every member it was the last connection of."""
        gone = []
        for room in list(self._joined.get(connection, {})):
            member = self.leave(connection, room)
            if member is not None:
                gone.append((room, member))
        return gone

    def members(self, room: str) -> dict[str, Any]:
        state = self._rooms.get(room)
        return dict(state.info) if state is not None else {}
