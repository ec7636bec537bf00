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
* the app's ``/api/todos`` (targets.todos): each mutation emits ``todo:created`` / ``todo:updated`` /
  ``todo:deleted`` to every client, the event's data an object.
* presence (targets.presence): ``presence:join`` ``{"room": str, "id": str, "info": any}`` acks
  ``{"members": {id: info}}`` (the others present) and emits ``presence:member_added`` ``{"room", "id",
  "info"}`` to the room's other members; ``presence:leave`` ``{"room"}`` (ack True) or a disconnect emits
  ``presence:member_removed`` ``{"room", "id"}`` once the member's last connection is gone. A bad request
  acks ``{"error": reason}``. Member events are bookkeeping: no fault applies. Per node (not across Redis).

Several nodes: ``--redis redis://HOST:PORT [--node-id ID]`` joins the nodes sharing that Redis through
python-socketio's Redis manager (targets.socketio.nodes). ``message`` broadcasts and publishes (socket
or HTTP, on any node) reach the clients of every node, rooms respected; a node's own clients get them
at once, the others through Redis. ``recipients`` is then this node's recipients only (a node cannot
know the others' without a round trip). Redis unreachable at startup: the node waits up to 5 s, then
exits with status 2 and one line. Redis lost later: each node keeps serving its own clients (publishes
still answer at once and deliver locally, cross-node deliveries stop, /healthz shows
``redis.subscribed: false``) and rejoins within about a second once Redis is back. Every response
carries ``X-Rtbench-Node`` (targets.serve). Without ``--redis`` none of this is loaded.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import socketio
from aiohttp import web
from engineio import json as eio_json
from engineio import packet as eio_packet
from engineio.async_drivers import aiohttp as eio_aiohttp
from socketio import packet as sio_packet

from targets import jsonsafe
from targets.base import add_redis_arg
from targets.faults import CORRUPT_PAYLOAD, FaultPlan, Faults
from targets.httpapi import BadRequest, json_error, read_json
from targets.presence import Roster
from targets.serve import HEALTH, WEBSOCKETS, install
from targets.todos import TodoEvent
from targets.todos import mount as mount_todos
from targets.wsframes import ws_text_frame

if TYPE_CHECKING:
    from targets.socketio.nodes import RedisNodes

__all__ = [
    "MAX_BODY_BYTES",
    "RESERVED_EVENTS",
    "TARGET",
    "SocketIOTarget",
    "add_args",
    "build_app",
    "parse_publish",
]

log = logging.getLogger("targets.socketio")

NAMESPACE = "/"
#: the Socket.IO room a presence room's members are in (apart from the rooms ``subscribe`` joins)
PRESENCE_ROOM = "presence:"
MAX_BODY_BYTES = 1024 * 1024
RESERVED_EVENTS = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)
"""Event names Socket.IO clients reserve for themselves; emitting them would confuse every client."""

_Prepared = tuple[bytes | None, list[Any]]
"""An event ready to send: its websocket frame (None if binary) and its engine.io packets."""


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


class _SafeJson:
    """The json "module" engine.io and Socket.IO decode client packets with: engine.io's own, with too-deep
    nesting a ValueError (a packet both already drop as malformed) instead of a RecursionError that
    would close the connection or answer a polling POST with 500."""

    dumps = staticmethod(eio_json.dumps)

    @staticmethod
    def loads(text: str | bytes, **kwargs: Any) -> Any:
        return jsonsafe.checked(text, lambda raw: eio_json.loads(raw, **kwargs))


class _SafePacket(sio_packet.Packet):  # type: ignore[misc]
    """Socket.IO packets decoded with _SafeJson, for this server only (the class attribute would be shared
    with every Socket.IO client in the process)."""

    json = _SafeJson


@dataclass(slots=True)
class _Wire:
    """A websocket engine.io client's raw transport, for writing pre-built frames straight to it."""

    sock: Any  # engineio.async_socket.AsyncSocket
    ws: web.WebSocketResponse
    transport: asyncio.Transport

    def idle(self) -> bool:
        """True when a frame written now cannot overtake anything engine.io holds for this client: the
        upgrade is done and its writer task is parked on an empty queue (so it holds no packets)."""
        sock, queue = self.sock, self.sock.queue
        return (
            sock.upgraded
            and not (sock.upgrading or sock.closing or sock.closed)
            and queue.empty()
            and bool(queue._getters)
            and not self.ws.closed
            and not self.transport.is_closing()
        )


class _WebSocket(eio_aiohttp.WebSocket):  # type: ignore[misc]
    """engine.io's aiohttp websocket wrapper, plus: no permessage-deflate (per-client compression would
    cost more than the fan-out; Node's socket.io server defaults it off too), registration in
    app[WEBSOCKETS] so shutdown can close every socket with 1001, and in ``wires`` for the fast path."""

    def __init__(self, handler: Any, server: Any, *, wires: dict[str, _Wire]) -> None:
        super().__init__(handler, server)
        self._wires = wires

    async def __call__(self, environ: dict[str, Any]) -> web.WebSocketResponse:
        request: web.Request = environ["aiohttp.request"]
        self._sock = ws = web.WebSocketResponse(max_msg_size=self.server.max_http_buffer_size, compress=False)
        await ws.prepare(request)
        sockets = request.app.get(WEBSOCKETS)
        if sockets is not None:
            sockets.add(ws)
        sock = getattr(self.handler, "__self__", None)  # the engine.io socket this handler serves
        sid = getattr(sock, "sid", None)
        if sid is not None and request.transport is not None:
            self._wires[sid] = _Wire(sock, ws, request.transport)
        self.environ = environ
        try:
            await self.handler(self)
        finally:
            if sid is not None:
                self._wires.pop(sid, None)
        return ws


class SocketIOTarget:
    """The Socket.IO server plus its fan-out.

    A broadcast is encoded once, down to the websocket frame, and written to each client's transport
    (one syscall per recipient, no task, no per-client encode), as Node's socket.io does. Clients
    engine.io is busy with (polling, mid-upgrade, packets queued) get the packet through its queue
    instead, so per-client order always holds. A fan-out never awaits, so concurrent publishers cannot
    interleave; with faults, recipients and decisions are fixed at publish time and delivered (after
    the delay, in publish order) by the same fan-out.
    """

    def __init__(self, faults: Faults, nodes: RedisNodes | None = None) -> None:
        self.faults = faults
        self.nodes = nodes
        """The Redis manager joining this node to the others (None: a lone target)."""
        self.sio = socketio.AsyncServer(
            client_manager=nodes,
            async_mode="aiohttp",
            cors_allowed_origins="*",
            max_http_buffer_size=MAX_BODY_BYTES,
            serializer=_SafePacket,
            json=_SafeJson,  # engine.io has only a process-wide hook: harmless, it is its json bounded
            logger=False,
            engineio_logger=False,
        )
        self._wires: dict[str, _Wire] = {}
        self.sent_direct = 0
        """Deliveries written straight to a websocket (the fast path)."""
        self.sent_queued = 0
        """Deliveries handed to engine.io's per-client queue (polling, busy or binary)."""
        drivers = getattr(self.sio.eio, "_async", None)
        if isinstance(drivers, dict) and "websocket" in drivers:
            self.sio.eio._async = {**drivers, "websocket": partial(_WebSocket, wires=self._wires)}
        else:  # pragma: no cover - engine.io internals moved: still correct, only slower
            log.warning("engine.io internals changed: no direct writes, websockets not closed on shutdown")
        self.fan_out: FaultPlan[str, _Prepared] = FaultPlan(faults, self._deliver)
        self.roster = Roster()
        """Presence members per room (``presence:join``)."""
        self._on_eio_disconnect_next = self.sio.eio.handlers.get("disconnect")
        self.sio.eio.on("disconnect", self._on_eio_disconnect)
        for event, handler in (
            ("message", self._on_message),
            ("subscribe", self._on_subscribe),
            ("unsubscribe", self._on_unsubscribe),
            ("publish", self._on_publish),
            ("presence:join", self._on_presence_join),
            ("presence:leave", self._on_presence_leave),
            ("disconnect", self._on_disconnect),
        ):
            self.sio.on(event, handler=handler)

    # -- bookkeeping ---------------------------------------------------------------------------

    def connections(self) -> int:
        """Clients connected to the default namespace (the manager's room None holds them all)."""
        return len(self.sio.manager.rooms.get(NAMESPACE, {}).get(None, ()))

    # -- fan-out -------------------------------------------------------------------------------

    def publish(self, event: str, data: Any, channel: str | None) -> int:
        """Emit ``event`` to ``channel`` on every node: here at once, the other nodes through Redis; as many
        times as ``--replay-fault`` says (targets.faults: Faults.copies). Returns this node's recipients at
        publish time."""
        copies = self.faults.copies(data)
        if copies == 0:
            return len(self._recipients(channel))
        for _ in range(copies):
            recipients = self.broadcast(event, data, channel)
            if self.nodes is not None:
                self.nodes.announce(event, data, channel)
        return recipients

    def _recipients(self, channel: str | None) -> list[str]:
        return [eio_sid for _, eio_sid in self.sio.manager.get_participants(NAMESPACE, channel)]

    def broadcast(self, event: str, data: Any, channel: str | None) -> int:
        """Emit ``event`` to ``channel`` (None: everyone) on this node. Returns the recipients at publish time."""
        recipients = self._recipients(channel)
        if not recipients:
            return 0
        return self.fan_out.send(recipients, self._prepare(event, data), lambda: self._prepare(event, CORRUPT_PAYLOAD))

    def _prepare(self, event: str, data: Any) -> _Prepared:
        """engine.io packets for one event (as AsyncManager.emit builds them) and, when it is a single
        text packet, the websocket frame carrying it."""
        args = [] if data is None else [data]
        encoded = self.sio.packet_class(sio_packet.EVENT, namespace=NAMESPACE, data=[event, *args]).encode()
        parts = encoded if isinstance(encoded, list) else [encoded]
        packets = [eio_packet.Packet(eio_packet.MESSAGE, part) for part in parts]
        frame = None
        if len(packets) == 1 and isinstance(parts[0], str):
            frame = ws_text_frame(packets[0].encode().encode())
        return frame, packets

    def _deliver(self, plan: list[tuple[str, _Prepared]]) -> None:
        wires, sockets = self._wires, self.sio.eio.sockets
        direct = 0
        for eio_sid, (frame, packets) in plan:
            wire = wires.get(eio_sid)
            if frame is not None and wire is not None and wire.idle():
                wire.transport.write(frame)
                direct += 1
                continue
            sock = sockets.get(eio_sid)
            if sock is not None and not sock.closed:
                for pkt in packets:
                    sock.queue.put_nowait(pkt)
                self.sent_queued += 1
        self.sent_direct += direct

    async def start(self) -> None:
        """With Redis: wait for it (UsageError if it never answers) and start listening to the other nodes."""
        if self.nodes is not None:
            await self.nodes.link.wait_ready()
            self.sio.manager_initialized = True
            self.nodes.initialize()

    async def close(self) -> None:
        self.fan_out.cancel()
        await self.sio.shutdown()
        if self.nodes is not None:
            await self.nodes.close()

    # -- socket events -------------------------------------------------------------------------

    async def _on_eio_disconnect(self, eio_sid: str, *args: Any) -> None:
        """A polling client that says goodbye still has a long-poll GET open, which engine.io would hold
        for up to a ping interval (25 s): answer it now with a NOOP, as Node's engine.io does."""
        if self._on_eio_disconnect_next is not None:
            await self._on_eio_disconnect_next(eio_sid, *args)
        sock = self.sio.eio.sockets.get(eio_sid)
        if sock is not None and not sock.upgraded:
            sock.queue.put_nowait(eio_packet.Packet(eio_packet.NOOP))

    async def _on_message(self, sid: str, *args: Any) -> None:
        self.publish("message", args[0] if args else None, None)

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
        return self.publish(event, data, channel)

    # -- presence ------------------------------------------------------------------------------

    async def _on_presence_join(self, sid: str, request: Any = None, *_: Any) -> dict[str, Any]:
        if not isinstance(request, dict):
            return {"error": "presence:join takes {room, id, info}"}
        room, member = request.get("room"), request.get("id")
        if not isinstance(room, str) or not room or not isinstance(member, str) or not member:
            return {"error": "presence:join needs a non-empty room and id"}
        await self.sio.enter_room(sid, PRESENCE_ROOM + room, namespace=NAMESPACE)
        info = request.get("info")
        others, added = self.roster.join(sid, room, member, info)  # no await from here to the fan-out
        if added:
            self._tell(room, "presence:member_added", {"room": room, "id": member, "info": info}, skip=sid)
        return {"members": others}

    async def _on_presence_leave(self, sid: str, request: Any = None, *_: Any) -> bool:
        room = request.get("room") if isinstance(request, dict) else None
        if not isinstance(room, str) or not room:
            return False
        self._left(sid, room, self.roster.leave(sid, room))
        await self.sio.leave_room(sid, PRESENCE_ROOM + room, namespace=NAMESPACE)
        return True

    async def _on_disconnect(self, sid: str, *_: Any) -> None:
        for room, member in self.roster.disconnect(sid):
            self._left(sid, room, member)

    def _left(self, sid: str, room: str, member: str | None) -> None:
        if member is not None:
            self._tell(room, "presence:member_removed", {"room": room, "id": member}, skip=sid)

    def _tell(self, room: str, event: str, data: dict[str, Any], skip: str) -> None:
        """A member event to the room's connections but ``skip``'s, now and past the fault plan."""
        skip_eio = self.sio.manager.eio_sid_from_sid(skip, NAMESPACE)
        prepared = self._prepare(event, data)
        self._deliver([(e, prepared) for e in self._recipients(PRESENCE_ROOM + room) if e != skip_eio])

    # -- HTTP ----------------------------------------------------------------------------------

    async def http_publish(self, request: web.Request) -> web.Response:
        try:
            channel, event, data = parse_publish(await read_json(request, MAX_BODY_BYTES))
        except BadRequest as exc:
            return json_error(exc.status, str(exc))
        except ValueError as exc:
            return json_error(400, str(exc))
        return web.json_response({"recipients": self.publish(event, data, channel)})


TARGET: web.AppKey[SocketIOTarget] = web.AppKey("rtbench_socketio_target", SocketIOTarget)
"""The target object behind an app, for tests and embedding."""


def add_args(parser: argparse.ArgumentParser) -> None:
    add_redis_arg(parser)


def build_app(args: argparse.Namespace, faults: Faults) -> web.Application:
    """aiohttp app with Socket.IO at /socket.io/, POST /api/publish and the app API (targets.todos);
    /healthz is added by serve()."""
    nodes = None
    redis_url: str | None = getattr(args, "redis", None)
    if redis_url:
        from targets.redis_link import RedisLink
        from targets.socketio.nodes import RedisNodes

        nodes = RedisNodes(RedisLink(redis_url), NAMESPACE)
    target = SocketIOTarget(faults, nodes)
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    target.sio.attach(app)
    app.router.add_post("/api/publish", target.http_publish)

    async def emit_todo(event: TodoEvent) -> None:  # io.emit('todo:created', {...}): every client, every node
        target.publish(event.name, event.data, None)

    mount_todos(app, args, emit_todo)
    install(app, TARGET, target, target.connections)
    if nodes is not None:
        nodes.broadcast = target.broadcast
        app[HEALTH] = nodes.health

        async def on_startup(_: web.Application) -> None:
            await target.start()

        app.on_startup.append(on_startup)
    return app
