"""Socket.IO reference target: python-socketio AsyncServer on aiohttp, rooms, HTTP publish, fault knobs.

Interface (what the harness relies on):

* socket event ``message`` (any data): emitted as ``message`` to every connected client, sender included
  (the classic ``socket.on('message', d => io.emit('message', d))``);
* ``subscribe`` / ``unsubscribe`` (channel name): join / leave that room, ack ``True``
  (``False`` when the channel is not a non-empty string);
* ``publish`` ``{"channel": str|None, "event": str = "message", "data": any}``: emit ``event`` with
  ``data`` to the room (everyone when channel is absent), ack = number of recipients at publish time
  (drops not subtracted) or ``{"error": reason}``;
* ``POST /api/publish`` with the same JSON object -> ``{"recipients": N}``; 400 bad JSON/fields,
  413 body over 1 MiB (the path an app takes when it emits after a REST mutation).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from collections import deque
from typing import Any

import socketio
from aiohttp import web
from engineio import packet as eio_packet
from engineio.async_drivers import aiohttp as eio_aiohttp
from socketio import packet as sio_packet

from targets.base import CONNECTIONS, CORRUPT_PAYLOAD, WEBSOCKETS, DelayLine, Faults

__all__ = ["MAX_BODY_BYTES", "RESERVED_EVENTS", "TARGET", "SocketIOTarget", "build_app", "parse_publish"]

log = logging.getLogger("targets.socketio")

NAMESPACE = "/"
MAX_BODY_BYTES = 1024 * 1024
RESERVED_EVENTS = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)
"""Event names Socket.IO clients reserve for themselves; emitting them would confuse every client."""

_YIELD_EVERY = 256
"""Per-recipient deliveries between two yields to the loop, so a big fan-out does not stall pings."""


def parse_publish(obj: Any) -> tuple[str | None, str, Any]:
    """Validate a publish request (socket ``publish`` or HTTP body) -> (channel, event, data)."""
    if not isinstance(obj, dict):
        raise ValueError("body must be a JSON object")
    if "data" not in obj:
        raise ValueError("missing 'data'")
    channel = obj.get("channel")
    if channel is not None and (not isinstance(channel, str) or not channel):
        raise ValueError("'channel' must be a non-empty string")
    event = obj.get("event", "message")
    if event is None:
        event = "message"
    if not isinstance(event, str) or not event:
        raise ValueError("'event' must be a non-empty string")
    if event in RESERVED_EVENTS:
        raise ValueError(f"'event' must not be the reserved name {event!r}")
    return channel, event, obj["data"]


class _WebSocket(eio_aiohttp.WebSocket):  # type: ignore[misc]
    """engine.io's aiohttp websocket wrapper, plus: no permessage-deflate (compressing every frame per
    client costs more CPU than the fan-out itself; Node's socket.io server also defaults it off),
    and registration in app[WEBSOCKETS] so shutdown can close every socket with 1001."""

    async def __call__(self, environ: dict[str, Any]) -> web.WebSocketResponse:
        request: web.Request = environ["aiohttp.request"]
        self._sock = ws = web.WebSocketResponse(max_msg_size=self.server.max_http_buffer_size, compress=False)
        await ws.prepare(request)
        sockets = request.app.get(WEBSOCKETS)
        if sockets is not None:
            sockets.add(ws)
        self.environ = environ
        await self.handler(self)
        return ws


class SocketIOTarget:
    """The Socket.IO server plus its fan-out: one encode-once emit normally, per recipient with faults."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.sio = socketio.AsyncServer(
            async_mode="aiohttp",
            cors_allowed_origins="*",
            max_http_buffer_size=MAX_BODY_BYTES,
            logger=False,
            engineio_logger=False,
        )
        drivers = getattr(self.sio.eio, "_async", None)
        if isinstance(drivers, dict) and "websocket" in drivers:
            self.sio.eio._async = {**drivers, "websocket": _WebSocket}
        else:  # pragma: no cover - engine.io internals moved; keep working, only less tidy
            log.warning("engine.io internals changed: websockets are compressed and not closed on shutdown")
        self._delay = DelayLine(faults.delay_s) if faults.delay_ms > 0 else None
        self._outbox: deque[list[tuple[str, list[Any]]]] = deque()
        self._wake = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        for event, handler in (
            ("message", self._on_message),
            ("subscribe", self._on_subscribe),
            ("unsubscribe", self._on_unsubscribe),
            ("publish", self._on_publish),
        ):
            self.sio.on(event, handler=handler)

    # -- bookkeeping ---------------------------------------------------------------------------

    def connections(self) -> int:
        """Clients connected to the default namespace (the manager's room None holds them all)."""
        return len(self.sio.manager.rooms.get(NAMESPACE, {}).get(None, ()))

    def recipients(self, channel: str | None) -> int:
        return len(self.sio.manager.rooms.get(NAMESPACE, {}).get(channel, ()))

    # -- fan-out -------------------------------------------------------------------------------

    async def broadcast(self, event: str, data: Any, channel: str | None) -> int:
        """Emit ``event`` to ``channel`` (None: everyone). Returns the recipients at publish time."""
        if not self.faults.active:
            count = self.recipients(channel)
            if count:
                await self.sio.emit(event, data, to=channel, namespace=NAMESPACE)
            return count
        return self._broadcast_with_faults(event, data, channel)

    def _encode(self, event: str, data: Any) -> list[Any]:
        """engine.io packets for one event, built once and shared by recipients (as the manager does)."""
        args = [] if data is None else [data]
        pkt = self.sio.packet_class(sio_packet.EVENT, namespace=NAMESPACE, data=[event, *args])
        encoded = pkt.encode()
        if not isinstance(encoded, list):
            encoded = [encoded]
        return [eio_packet.Packet(eio_packet.MESSAGE, part) for part in encoded]

    def _broadcast_with_faults(self, event: str, data: Any, channel: str | None) -> int:
        # Recipients and fault decisions are fixed now, at publish time; only the sending waits.
        participants = list(self.sio.manager.get_participants(NAMESPACE, channel))
        good = self._encode(event, data)
        bad: list[Any] | None = None
        plan: list[tuple[str, list[Any]]] = []
        for _sid, eio_sid in participants:
            if self.faults.drop():
                continue
            if self.faults.corrupt():
                if bad is None:
                    bad = self._encode(event, CORRUPT_PAYLOAD)
                plan.append((eio_sid, bad))
            else:
                plan.append((eio_sid, good))
        if plan:
            if self._delay is not None:
                self._delay.call(lambda: self._enqueue(plan))
            else:
                self._enqueue(plan)
        return len(participants)

    def _enqueue(self, plan: list[tuple[str, list[Any]]]) -> None:
        self._outbox.append(plan)
        self._wake.set()
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send_loop())

    async def _send_loop(self) -> None:
        """The single sender: plans go out in the order they were released, so each client keeps order."""
        send = self.sio.eio.send_packet
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                plan = self._outbox.popleft()
                for i, (eio_sid, packets) in enumerate(plan, 1):
                    for pkt in packets:
                        try:
                            await send(eio_sid, pkt)
                        except Exception:  # a client going away must not stop the others
                            log.debug("send to %s failed", eio_sid, exc_info=True)
                    if i % _YIELD_EVERY == 0:
                        await asyncio.sleep(0)

    async def close(self) -> None:
        if self._delay is not None:
            self._delay.cancel()
        if self._sender is not None:
            self._sender.cancel()
        await self.sio.shutdown()

    # -- socket events -------------------------------------------------------------------------

    async def _on_message(self, sid: str, *args: Any) -> None:
        await self.broadcast("message", args[0] if args else None, None)

    async def _on_subscribe(self, sid: str, channel: Any = None, *_: Any) -> bool:
        if not isinstance(channel, str) or not channel:
            return False
        await self.sio.enter_room(sid, channel, namespace=NAMESPACE)
        return True

    async def _on_unsubscribe(self, sid: str, channel: Any = None, *_: Any) -> bool:
        if not isinstance(channel, str) or not channel:
            return False
        await self.sio.leave_room(sid, channel, namespace=NAMESPACE)
        return True

    async def _on_publish(self, sid: str, request: Any = None, *_: Any) -> int | dict[str, str]:
        try:
            channel, event, data = parse_publish(request)
        except ValueError as exc:
            return {"error": str(exc)}
        return await self.broadcast(event, data, channel)

    # -- HTTP ----------------------------------------------------------------------------------

    async def http_publish(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return _error(413, f"body larger than {MAX_BODY_BYTES} bytes")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"body larger than {MAX_BODY_BYTES} bytes")
        try:
            obj = json.loads(body)
        except ValueError:
            return _error(400, "body is not valid JSON")
        try:
            channel, event, data = parse_publish(obj)
        except ValueError as exc:
            return _error(400, str(exc))
        return web.json_response({"recipients": await self.broadcast(event, data, channel)})


TARGET: web.AppKey[SocketIOTarget] = web.AppKey("rtbench_socketio_target", SocketIOTarget)
"""The target object behind an app, for tests and embedding."""


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def build_app(args: argparse.Namespace, faults: Faults) -> web.Application:
    """aiohttp app with Socket.IO at /socket.io/ and POST /api/publish; /healthz is added by serve()."""
    target = SocketIOTarget(faults)
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    target.sio.attach(app)
    app.router.add_post("/api/publish", target.http_publish)
    app[CONNECTIONS] = target.connections
    app[TARGET] = target

    async def on_shutdown(_: web.Application) -> None:
        await target.close()

    app.on_shutdown.append(on_shutdown)
    return app
