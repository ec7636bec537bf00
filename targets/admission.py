"""``--accept-connections N``: a target that lets N subscriber connections in, then refuses every other.

It models a server that never takes a client back (``rtbench check``'s reconnect and offline items must
then fail), in one aiohttp middleware for every target: the websocket upgrade (any path) and the SSE event
stream are where a subscriber connects, whatever the protocol on top. A connection counts as accepted when
it is let through to the target; the 503 answer is decided before the target sees the request.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

__all__ = ["STREAM_PATH", "Admission", "is_subscriber"]

STREAM_PATH = "/api/events"
"""The SSE target's stream: a subscriber connection even without ``Accept: text/event-stream``."""


def is_subscriber(request: web.Request) -> bool:
    """Whether ``request`` opens a subscriber connection: a websocket upgrade or an event stream."""
    if request.method != "GET":
        return False
    headers = request.headers
    return (
        headers.get("Upgrade", "").lower() == "websocket"
        or "text/event-stream" in headers.get("Accept", "")
        or request.path == STREAM_PATH
    )


class Admission:
    """Counts subscriber connections and refuses those past ``limit`` with HTTP 503."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.accepted = 0
        self.refused = 0

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not is_subscriber(request):
            return await handler(request)
        if self.accepted >= self.limit:
            self.refused += 1
            return web.Response(
                status=503, text=f"not accepting connections: all {self.limit} accepted (--accept-connections)\n"
            )
        self.accepted += 1
        return await handler(request)

    def health(self) -> dict[str, Any]:
        """The counts /healthz reports."""
        return {"connections_accepted": self.accepted, "connections_refused": self.refused}
