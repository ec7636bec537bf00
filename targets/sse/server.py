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
* Limits: ``--max-connections`` open streams (then 503 with a JSON reason), ``--max-body-bytes``;
  a subscriber whose unsent backlog exceeds ``--max-backlog-bytes`` is cut (it reconnects and replays).
* Faults (``--delay-ms``, ``--drop-rate``, ``--corrupt-rate``) are decided per delivery at publish time,
  the replay buffer always holds the true event (a dropped delivery is lost unless the client reconnects
  from before it, exactly like a lossy network).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import re
import secrets
from collections import deque
from collections.abc import Iterable
from itertools import islice
from typing import Any

from aiohttp import web
from aiohttp_sse import EventSourceResponse

from targets.faults import CORRUPT_PAYLOAD, FaultPlan, Faults
from targets.httpapi import BadRequest, json_error, read_json
from targets.serve import UsageError, install

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
    """The last events of one channel, by sequence number, for Last-Event-ID replay."""

    def __init__(self, max_events: int, max_bytes: int) -> None:
        self.max_events, self.max_bytes = max_events, max_bytes
        self.entries: deque[tuple[int, bytes]] = deque()
        self.size = 0
        self.last = 0  # sequence number of the latest event (0: none yet)

    def append(self, frame: bytes) -> int:
        self.last += 1
        self.entries.append((self.last, frame))
        self.size += len(frame)
        while self.entries and (len(self.entries) > self.max_events or self.size > self.max_bytes):
            self.size -= len(self.entries.popleft()[1])
        return self.last

    def after(self, seq: int) -> Iterable[bytes]:
        """Frames of events after ``seq`` that are still held (older ones are gone for good)."""
        if not self.entries or seq >= self.last:
            return ()
        first = self.entries[0][0]
        return (frame for _, frame in islice(self.entries, max(0, seq + 1 - first), None))


class Stream:
    """One open subscriber: a backlog of frames its handler writes out in order."""

    __slots__ = ("backlog", "backlog_bytes", "channel", "cut", "wake")

    def __init__(self, channel: str) -> None:
        self.channel = channel
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
    def __init__(self, args: argparse.Namespace, faults: Faults) -> None:
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
        self.streams: dict[str, set[Stream]] = {}
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
        """Store and fan out one event. Returns (its id, recipients at publish time)."""
        chlog = self._log(channel)
        event_id = f"{self.epoch}-{chlog.last + 1}"
        frame = encode_event(event_id, event, data)
        chlog.append(frame)
        recipients = list(self.streams.get(channel, ()))
        return event_id, self.fan_out.send(recipients, frame, lambda: encode_event(event_id, event, CORRUPT_PAYLOAD))

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
        for frame in self._replay(channel, last_id):
            stream.push(frame)
        self.streams.setdefault(channel, set()).add(stream)
        self.open += 1
        resp = EventSourceResponse(ping_interval=self.args.keepalive_s, headers={"Access-Control-Allow-Origin": "*"})
        try:
            await resp.prepare(request)
            await resp.write(f"retry: {self.args.retry_ms}\n: connected\n\n".encode())
            await self._pump(stream, resp, request)
        except (ConnectionResetError, RuntimeError, TimeoutError):
            pass  # the client went away (RuntimeError: write after the transport closed)
        finally:
            group = self.streams.get(channel)
            if group is not None:
                group.discard(stream)
                if not group:
                    del self.streams[channel]
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

    def _replay(self, channel: str, last_id: str) -> Iterable[bytes]:
        if not last_id:
            return ()
        chlog = self.logs.get(channel)
        if chlog is None:
            return ()
        epoch, _, seq = last_id.rpartition("-")
        if epoch != self.epoch:  # an earlier run of this target: all we hold is news to the client
            return list(chlog.after(0))
        if not seq.isdigit():
            return ()
        return list(chlog.after(int(seq)))

    async def http_publish(self, request: web.Request) -> web.Response:
        try:
            channel, event, data = parse_publish(await read_json(request, self.args.max_body_bytes))
        except BadRequest as exc:
            return json_error(exc.status, str(exc))
        except ValueError as exc:
            return json_error(400, str(exc))
        event_id, recipients = self.publish(channel, event, data)
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
    def start(self) -> None:
        if self.args.cut_every > 0:
            self._cutter = asyncio.get_running_loop().create_task(self._cut_loop())

    async def close(self) -> None:
        """Shutdown: end every stream cleanly so clients reconnect, as after a real server restart."""
        self.closing = True
        if self._cutter is not None:
            self._cutter.cancel()
        self.fan_out.cancel()
        self.cut()


TARGET: web.AppKey[SSETarget] = web.AppKey("rtbench_sse_target", SSETarget)
"""The target object behind an app, for tests and embedding."""


def build_app(args: argparse.Namespace, faults: Faults) -> web.Application:
    """aiohttp app: GET /api/events, POST /api/publish, POST /admin/cut; /healthz is added by serve()."""
    target = SSETarget(args, faults)
    app = web.Application(client_max_size=max(1, args.max_body_bytes))
    app.router.add_get("/api/events", target.events)
    app.router.add_post("/api/publish", target.http_publish)
    app.router.add_route("OPTIONS", "/api/publish", target.preflight)
    app.router.add_route("OPTIONS", "/api/events", target.preflight)
    app.router.add_post("/admin/cut", target.http_cut)
    install(app, TARGET, target, target.connections)

    async def on_startup(_: web.Application) -> None:
        target.start()

    app.on_startup.append(on_startup)
    return app
