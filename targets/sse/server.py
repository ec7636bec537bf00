"""SSE reference target: aiohttp + aiohttp-sse, channels, Last-Event-ID replay, fault knobs, stream cuts.

Interface (what the harness and tests rely on):

* ``GET /api/events[?channel=NAME]`` -> ``text/event-stream``. It opens with ``retry: <ms>`` and a
  ``: connected`` comment; then every event published on the channel (``default`` when none is given)
  as ``id: <epoch>-<n>`` / ``event: <name>`` (omitted for ``message``) / ``data: ...`` lines; keep-alive
  comments every ``--keepalive-s``. The subscriber is registered before the headers are sent, so a
  client that has the headers receives every later publish.
* ``Last-Event-ID: <epoch>-<n>`` (header, or ``?lastEventId=`` as polyfills send it) replays the channel's
  ring buffer after ``n``; an id from an earlier run of the target (another epoch) replays the whole
  buffer, since everything in it is news to that client.
* ``POST /api/publish`` ``{"channel": str|null, "event": str = "message", "data": any}`` ->
  ``{"id": ..., "recipients": N}`` (recipients at publish time, drops not subtracted); 400 bad JSON or
  fields, 413 body over ``--max-body-bytes``.
* ``POST /admin/cut[?channel=NAME][&mode=close|abort]`` ends every open stream (of one channel) at once
  -> ``{"cut": N}``; ``close`` ends the chunked body cleanly, ``abort`` resets the TCP connection.
  ``--cut-every S`` does the same periodically. Reconnection tests use it.
* The app's ``/api/todos`` (targets.todos): each mutation publishes a ``message`` event on the default
  channel whose JSON data names it in ``type`` (``todo:created`` / ``todo:updated`` / ``todo:deleted``).
* Limits: ``--max-connections`` open streams (then 503 with a JSON reason), ``--max-body-bytes``;
  a subscriber whose unsent backlog exceeds ``--max-backlog-bytes`` is cut (it reconnects and replays).
* Faults (``--delay-ms``, ``--drop-rate``, ``--corrupt-rate``) are decided per delivery at publish time,
  the replay buffer always holds the true event (a dropped delivery is lost unless the client reconnects
  from before it, exactly like a lossy network). ``--replay-fault`` acts before that: a dropped replayed
  mutation is answered with an id of its own and never stored nor sent, a duplicated one is two events.
* Several nodes: ``--redis redis://HOST:PORT [--node-id ID]`` joins the nodes sharing that Redis
  (targets.sse.nodes). A publish on any node reaches the streams of every node; ids are cluster-wide
  (``<cluster epoch>-<n>``, numbered in Redis), every node buffers the same ids for the same events, so a
  client may resume with ``Last-Event-ID`` on any node. A client resuming on a node that has not yet
  received its last event (it is on its way through Redis) gets nothing twice. ``recipients`` is this
  node's. Redis unreachable at startup: the node waits up to 5 s, then exits with status 2 and one line.
  Redis lost later: each node publishes alone to its own clients, with ids of its own epoch (replay
  still works for those), /healthz shows ``redis.subscribed: false``, and the node rejoins within about a
  second once Redis is back. Every response carries ``X-Rtbench-Node`` (targets.serve).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import re
import secrets
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable
from itertools import islice
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp_sse import EventSourceResponse

from targets.base import add_redis_arg
from targets.faults import CORRUPT_PAYLOAD, FaultPlan, Faults
from targets.httpapi import BadRequest, json_error, read_json
from targets.serve import HEALTH, UsageError, install
from targets.todos import TodoEvent
from targets.todos import mount as mount_todos

if TYPE_CHECKING:
    from targets.sse.nodes import SSENodes

__all__ = [
    "DEFAULT_CHANNEL",
    "TARGET",
    "ChannelLog",
    "SSETarget",
    "add_args",
    "build_app",
    "encode_event",
    "parse_publish",
]

log = logging.getLogger("targets.sse")

DEFAULT_CHANNEL = "default"
MAX_CHANNEL_LEN = 200
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def add_args(parser: argparse.ArgumentParser) -> None:
    add_redis_arg(parser)
    parser.add_argument("--retry-ms", type=int, default=1000, help="retry: hint sent to clients (default: 1000)")
    parser.add_argument(
        "--keepalive-s", type=float, default=15.0, help="seconds between keep-alive comments (default: 15)"
    )
    parser.add_argument(
        "--buffer-size",
        type=int,
        default=10_000,
        help="events kept per channel for Last-Event-ID replay (default: 10000)",
    )
    parser.add_argument(
        "--buffer-bytes",
        type=int,
        default=64 * 1024 * 1024,
        help="bytes kept per channel for replay, whichever bound comes first (default: 64 MiB)",
    )
    parser.add_argument(
        "--max-connections", type=int, default=20_000, help="open streams allowed; more get HTTP 503 (default: 20000)"
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=2 * 1024 * 1024,
        help="largest publish body; more gets HTTP 413 (default: 2 MiB)",
    )
    parser.add_argument(
        "--max-backlog-bytes",
        type=int,
        default=16 * 1024 * 1024,
        help="unsent bytes a slow subscriber may have before it is cut (default: 16 MiB)",
    )
    parser.add_argument(
        "--cut-every",
        type=float,
        default=0.0,
        metavar="S",
        help="cut every open stream each S seconds (default: 0, never)",
    )


def encode_event(event_id: str, event: str, data: str) -> bytes:
    """One event's bytes, built once per publish and shared by every recipient."""
    parts = [f"id: {event_id}\n"]
    if event != "message":
        parts.append(f"event: {event}\n")
    parts.extend(f"data: {line}\n" for line in _LINE_BREAK.split(data))
    parts.append("\n")
    return "".join(parts).encode("utf-8")


def parse_publish(obj: Any) -> tuple[str, str, str]:
    """Validate a publish body -> (channel, event, data as text). ValueError with the reason."""
    if not isinstance(obj, dict):
        raise ValueError("body must be a JSON object")
    channel = obj.get("channel")
    if channel is None:
        channel = DEFAULT_CHANNEL
    if not isinstance(channel, str) or not channel or len(channel) > MAX_CHANNEL_LEN:
        raise ValueError(f"channel must be a non-empty string of at most {MAX_CHANNEL_LEN} characters")
    event = obj.get("event", "message")
    if not isinstance(event, str) or not event or _LINE_BREAK.search(event):
        raise ValueError("event must be a non-empty string without line breaks")
    if "data" not in obj:
        raise ValueError("data is missing")
    data = obj["data"]
    return channel, event, data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))


class ChannelLog:
    """The last events of one channel, for Last-Event-ID replay, oldest first.

    An event is known by (epoch, seq): seq grows within an epoch. A lone target has one epoch; a node on
    Redis holds the cluster's and, for what it published alone while Redis was away, its own, so the
    events of one epoch need not be contiguous here: each epoch keeps the positions of its events."""

    def __init__(self, max_events: int, max_bytes: int) -> None:
        self.max_events, self.max_bytes = max_events, max_bytes
        self.entries: deque[tuple[str, bytes]] = deque()  # (epoch, frame)
        self.first = 0  # position of entries[0]; positions count every event ever appended
        self.size = 0
        self.runs: dict[str, deque[tuple[int, int]]] = {}  # epoch -> (seq, position) of the events held
        self.latest: dict[str, int] = {}  # epoch -> highest seq appended (kept when the events are gone)

    def next_seq(self, epoch: str) -> int:
        return self.latest.get(epoch, 0) + 1

    def skip(self, epoch: str) -> int:
        """Number an event that is never stored nor sent (a replayed mutation dropped by ``--replay-fault``):
        its publisher gets an id as usual, and no later event has it."""
        seq = self.latest[epoch] = self.next_seq(epoch)
        return seq

    def append(self, epoch: str, seq: int, frame: bytes) -> None:
        self.runs.setdefault(epoch, deque()).append((seq, self.first + len(self.entries)))
        self.entries.append((epoch, frame))
        self.latest[epoch] = max(seq, self.latest.get(epoch, 0))
        self.size += len(frame)
        while self.entries and (len(self.entries) > self.max_events or self.size > self.max_bytes):
            gone_epoch, gone = self.entries.popleft()
            self.first += 1
            self.size -= len(gone)
            run = self.runs[gone_epoch]
            run.popleft()  # the oldest event held is the oldest of its epoch
            if not run:
                del self.runs[gone_epoch]

    def after(self, epoch: str, seq: int) -> list[bytes]:
        """Frames of the events held after event (epoch, seq). An epoch with nothing held here, or a seq
        older than all it holds: everything held (it is all news, or the rest is gone for good)."""
        run = self.runs.get(epoch)
        start = self.first
        if run is not None:
            i = bisect_right(run, seq, key=itemgetter(0))
            if i > 0:  # right after the latest event of that epoch the client has
                start = run[i - 1][1] + 1
        return [frame for _, frame in islice(self.entries, start - self.first, None)]


class Stream:
    """One open subscriber: a backlog of frames its handler writes out in order."""

    __slots__ = ("backlog", "backlog_bytes", "channel", "cut", "floor", "wake")

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.floor: tuple[str, int] | None = None
        """(epoch, seq) the client already has although this node has not seen it yet (it came from
        another node, whose event reaches this one through Redis a moment later): held back until then."""
        self.backlog: list[bytes] = []
        self.backlog_bytes = 0
        self.cut: str | None = None  # "close" or "abort" once the target ends this stream
        self.wake = asyncio.Event()

    def push(self, frame: bytes) -> None:
        self.backlog.append(frame)
        self.backlog_bytes += len(frame)
        self.wake.set()

    def end(self, mode: str) -> None:
        if self.cut is None:
            self.cut = mode
        self.wake.set()


def _deliver(plan: list[tuple[Stream, bytes]]) -> None:
    for stream, frame in plan:
        stream.push(frame)


class SSETarget:
    def __init__(self, args: argparse.Namespace, faults: Faults, nodes: SSENodes | None = None) -> None:
        for flag in (
            "retry_ms",
            "buffer_size",
            "buffer_bytes",
            "max_connections",
            "max_body_bytes",
            "max_backlog_bytes",
        ):
            if getattr(args, flag) < 0:
                raise UsageError(f"--{flag.replace('_', '-')} must be >= 0")
        if not args.keepalive_s > 0:
            raise UsageError("--keepalive-s must be > 0")
        if not args.cut_every >= 0:
            raise UsageError("--cut-every must be >= 0")
        self.args = args
        self.faults = faults
        self.epoch = secrets.token_hex(3)
        """This process's epoch: the ids of what it publishes alone (no Redis, or Redis away)."""
        self.nodes = nodes
        """The link to the other nodes on Redis (None: a lone target)."""
        self.streams: dict[str, set[Stream]] = {}
        self.floored: dict[str, set[Stream]] = {}  # per channel, the streams with a floor
        self.logs: dict[str, ChannelLog] = {}
        self.open = 0
        self.fan_out: FaultPlan[Stream, bytes] = FaultPlan(faults, _deliver)
        self._cutter: asyncio.Task[None] | None = None
        self.closing = False

    def connections(self) -> int:
        return self.open

    def _log(self, channel: str) -> ChannelLog:
        chlog = self.logs.get(channel)
        if chlog is None:
            chlog = self.logs[channel] = ChannelLog(self.args.buffer_size, self.args.buffer_bytes)
        return chlog

    # -- publishing ------------------------------------------------------------------------------
    def publish(self, channel: str, event: str, data: str) -> tuple[str, int]:
        """Store and fan out one event on this node alone, in its own epoch. Returns (its id, recipients
        at publish time)."""
        seq = self._log(channel).next_seq(self.epoch)
        return f"{self.epoch}-{seq}", self.deliver(channel, self.epoch, seq, event, data)

    async def publish_copies(self, channel: str, event: str, data: str) -> tuple[str, int]:
        """Publish as many times as ``--replay-fault`` says (Faults.copies): once, or for a replayed offline
        mutation never (the answer is as usual, its id used up) or twice (two events, two ids). Returns the
        first event's id and recipients."""
        copies = self.faults.copies(data)
        if copies == 0:
            return f"{self.epoch}-{self._log(channel).skip(self.epoch)}", len(self.streams.get(channel, ()))
        first = await self.publish_anywhere(channel, event, data)
        for _ in range(copies - 1):
            await self.publish_anywhere(channel, event, data)
        return first

    async def publish_anywhere(self, channel: str, event: str, data: str) -> tuple[str, int]:
        """Publish on every node: through Redis, which numbers the event for the whole cluster and hands
        it to every node, this one included (so all deliver in the same order). Redis away: here alone."""
        nodes = self.nodes
        if nodes is None or not nodes.link.subscribed:
            return self.publish(channel, event, data)
        recipients = len(self.streams.get(channel, ()))
        event_id = await nodes.publish(channel, event, data)
        if event_id is None:
            return self.publish(channel, event, data)
        return event_id, recipients

    def deliver(self, channel: str, epoch: str, seq: int, event: str, data: str) -> int:
        """Store event (epoch, seq) for replay and fan it out to this node's streams of the channel
        (those that already have it held back). Returns the recipients at publish time."""
        event_id = f"{epoch}-{seq}"
        frame = encode_event(event_id, event, data)
        self._log(channel).append(epoch, seq, frame)
        recipients: list[Stream] = list(self.streams.get(channel, ()))
        waiting = self.floored.get(channel)
        if waiting:
            held = self._hold_back(waiting, epoch, seq)
            if not waiting:
                del self.floored[channel]
            if held:
                recipients = [stream for stream in recipients if stream not in held]
        return self.fan_out.send(recipients, frame, lambda: encode_event(event_id, event, CORRUPT_PAYLOAD))

    @staticmethod
    def _hold_back(waiting: set[Stream], epoch: str, seq: int) -> set[Stream]:
        """The streams whose client already has event (epoch, seq); those past their floor leave ``waiting``."""
        held: set[Stream] = set()
        for stream in list(waiting):
            floor = stream.floor
            if floor is None or floor[0] != epoch:
                continue
            if seq <= floor[1]:
                held.add(stream)
            else:
                stream.floor = None
                waiting.discard(stream)
        return held

    def cut(self, channel: str | None = None, mode: str = "close") -> int:
        """End every open stream (of one channel): clients see the stream end and reconnect."""
        victims = [s for ch, group in self.streams.items() if channel in (None, ch) for s in group]
        for stream in victims:
            stream.end(mode)
        return len(victims)

    async def _cut_loop(self) -> None:
        while True:
            await asyncio.sleep(self.args.cut_every)
            log.info("cut %d streams", self.cut())

    # -- HTTP ------------------------------------------------------------------------------------
    async def events(self, request: web.Request) -> web.StreamResponse:
        channel = request.query.get("channel") or DEFAULT_CHANNEL
        if len(channel) > MAX_CHANNEL_LEN:
            return json_error(400, f"channel longer than {MAX_CHANNEL_LEN} characters")
        if self.closing:
            return json_error(503, "server shutting down")
        if self.open >= self.args.max_connections:
            return json_error(503, f"too many open streams (limit {self.args.max_connections})")
        stream = Stream(channel)
        last_id = request.headers.get("Last-Event-ID") or request.query.get("lastEventId") or ""
        # Register and take the replay in one step (no await between): no event is missed or doubled.
        for frame in self._replay(channel, last_id, stream):
            stream.push(frame)
        self.streams.setdefault(channel, set()).add(stream)
        if stream.floor is not None:
            self.floored.setdefault(channel, set()).add(stream)
        self.open += 1
        resp = EventSourceResponse(ping_interval=self.args.keepalive_s, headers={"Access-Control-Allow-Origin": "*"})
        try:
            await resp.prepare(request)
            await resp.write(f"retry: {self.args.retry_ms}\n: connected\n\n".encode())
            await self._pump(stream, resp, request)
        except (ConnectionResetError, RuntimeError, TimeoutError):
            pass  # the client went away (RuntimeError: write after the transport closed)
        finally:
            for streams in (self.streams, self.floored):
                group = streams.get(channel)
                if group is not None:
                    group.discard(stream)
                    if not group:
                        del streams[channel]
            self.open -= 1
            if resp.prepared:
                resp.stop_streaming()
                with contextlib.suppress(Exception):
                    await resp.wait()
        if stream.cut == "abort" and request.transport is not None:
            request.transport.abort()
        return resp

    async def _pump(self, stream: Stream, resp: EventSourceResponse, request: web.Request) -> None:
        keepalive = self.args.keepalive_s
        while True:
            if not stream.backlog:
                stream.wake.clear()
                try:
                    async with asyncio.timeout(keepalive):
                        await stream.wake.wait()
                except TimeoutError:  # idle: is the client still there? (aiohttp-sse pings it)
                    if not resp.is_connected() or request.transport is None or request.transport.is_closing():
                        return
                    continue
            if stream.cut is not None:
                return
            if stream.backlog_bytes > self.args.max_backlog_bytes:
                log.warning("cutting a slow subscriber on %s (%d bytes behind)", stream.channel, stream.backlog_bytes)
                stream.cut = "abort"
                return
            frames, stream.backlog, stream.backlog_bytes = stream.backlog, [], 0
            await resp.write(frames[0] if len(frames) == 1 else b"".join(frames))

    def _replay(self, channel: str, last_id: str, stream: Stream) -> Iterable[bytes]:
        """What a client resuming from ``last_id`` missed. An id of an epoch this node does not know (an
        earlier run, say) replays everything held, all news to that client; a malformed one, nothing.
        On Redis, an id of the cluster's epoch beyond what this node has seen sets the stream's floor."""
        if not last_id:
            return ()
        epoch, _, seq = last_id.rpartition("-")
        chlog = self.logs.get(channel)
        cluster_epoch = self.nodes.epoch if self.nodes is not None else None
        if not seq.isdigit():
            known = epoch in (self.epoch, cluster_epoch) or (chlog is not None and epoch in chlog.latest)
            return () if known or chlog is None else chlog.after(epoch, 0)
        if epoch == cluster_epoch and int(seq) > (chlog.latest.get(epoch, 0) if chlog is not None else 0):
            stream.floor = (epoch, int(seq))
        return () if chlog is None else chlog.after(epoch, int(seq))

    async def http_publish(self, request: web.Request) -> web.Response:
        try:
            channel, event, data = parse_publish(await read_json(request, self.args.max_body_bytes))
        except BadRequest as exc:
            return json_error(exc.status, str(exc))
        except ValueError as exc:
            return json_error(400, str(exc))
        event_id, recipients = await self.publish_copies(channel, event, data)
        return web.json_response(
            {"id": event_id, "recipients": recipients}, headers={"Access-Control-Allow-Origin": "*"}
        )

    async def http_cut(self, request: web.Request) -> web.Response:
        mode = request.query.get("mode", "close")
        if mode not in ("close", "abort"):
            return json_error(400, "mode must be close or abort")
        return web.json_response({"cut": self.cut(request.query.get("channel") or None, mode)})

    async def preflight(self, request: web.Request) -> web.Response:
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Origin": "*",
                "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                "Access-Control-Allow-Headers": "Content-Type, Last-Event-ID, Cache-Control",
                "Access-Control-Max-Age": "600",
            },
        )

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the cut timer; on Redis, wait for it (UsageError if it never answers) and join the nodes."""
        if self.args.cut_every > 0:
            self._cutter = asyncio.get_running_loop().create_task(self._cut_loop())
        if self.nodes is not None:
            await self.nodes.start(self.deliver)

    async def close(self) -> None:
        """Shutdown: end every stream cleanly so clients reconnect, as after a real server restart."""
        self.closing = True
        if self._cutter is not None:
            self._cutter.cancel()
        self.fan_out.cancel()
        self.cut()
        if self.nodes is not None:
            await self.nodes.close()


TARGET: web.AppKey[SSETarget] = web.AppKey("rtbench_sse_target", SSETarget)
"""The target object behind an app, for tests and embedding."""


def build_app(args: argparse.Namespace, faults: Faults) -> web.Application:
    """aiohttp app: GET /api/events, POST /api/publish, POST /admin/cut and the app API (targets.todos);
    /healthz is added by serve()."""
    nodes = None
    redis_url: str | None = getattr(args, "redis", None)
    if redis_url:
        from targets.redis_link import RedisLink
        from targets.sse.nodes import SSENodes

        nodes = SSENodes(RedisLink(redis_url))
    target = SSETarget(args, faults, nodes)
    app = web.Application(client_max_size=max(1, args.max_body_bytes))
    app.router.add_get("/api/events", target.events)
    app.router.add_post("/api/publish", target.http_publish)
    app.router.add_route("OPTIONS", "/api/publish", target.preflight)
    app.router.add_route("OPTIONS", "/api/events", target.preflight)
    app.router.add_post("/admin/cut", target.http_cut)

    async def emit_todo(event: TodoEvent) -> None:  # a ``message`` on the default channel, ``type`` in its JSON
        await target.publish_anywhere(DEFAULT_CHANNEL, "message", event.text)

    mount_todos(app, args, emit_todo)
    install(app, TARGET, target, target.connections)
    if nodes is not None:
        app[HEALTH] = nodes.health

    async def on_startup(_: web.Application) -> None:
        await target.start()

    app.on_startup.append(on_startup)
    return app
