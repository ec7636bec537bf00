"""Plumbing shared by every reference target: CLI knobs, fault injection, /healthz, ready line, clean exit.

A target is launched by the harness as a subprocess. The contract it relies on:

* one line ``rtbench-target <name> listening http://HOST:PORT`` on stdout once the socket is bound
  (``--port 0`` lets the OS choose, so parallel tests never collide);
* ``GET /healthz`` -> ``{"ok": true, "target": name, "connections": N}``;
* SIGTERM / SIGINT -> websockets closed with 1001 (clients see a transport close and reconnect,
  as with a real server restart), exit status 0 within ~2 s;
* bad usage -> one line ``targets.<name>: error: ...`` on stderr and exit status 2, no traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import logging
import math
import random
import signal
import socket
import struct
import sys
import time
import weakref
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from aiohttp import WSCloseCode, web

__all__ = [
    "CONNECTIONS",
    "CORRUPT_PAYLOAD",
    "WEBSOCKETS",
    "ArgumentParser",
    "BadRequest",
    "DelayLine",
    "Faults",
    "UsageError",
    "add_common_args",
    "json_error",
    "main",
    "read_json",
    "serve",
    "ws_text_frame",
]

log = logging.getLogger("targets")

READY_PREFIX = "rtbench-target"

CORRUPT_PAYLOAD = "\x00not-an-envelope"
"""What a corrupted delivery carries instead of the data: valid for the transport, but not a probe
envelope, so the harness must count it as an error (never as a delivery)."""

CONNECTIONS: web.AppKey[Callable[[], int]] = web.AppKey("rtbench_connections")
"""Set by a target: returns its number of connected clients, reported by /healthz."""

WEBSOCKETS: web.AppKey[weakref.WeakSet[web.WebSocketResponse]] = web.AppKey("rtbench_websockets")
"""Filled by targets with their open websockets so shutdown can close them all (created by serve)."""

SHUTDOWN_TIMEOUT_S = 0.5
"""aiohttp waits this long for in-flight handlers (long polls, streams), then cancels them."""

WS_CLOSE_TIMEOUT_S = 1.0
"""Upper bound on waiting for clients to answer our close frames."""


class UsageError(Exception):
    """Raised by a target's build_app for bad configuration: reported as a usage error (exit 2)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are one line (no usage dump), as the exit-code contract asks."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _rate(flag: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(f"{flag} must be between 0 and 1")
    return value


@dataclass
class Faults:
    """Per-delivery fault decisions. One seeded RNG, drawn in delivery order, so a run is reproducible."""

    delay_ms: float = 0.0
    drop_rate: float = 0.0
    corrupt_rate: float = 0.0
    seed: int | None = None
    _rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.delay_ms) and self.delay_ms >= 0):
            raise ValueError("--delay-ms must be a finite number >= 0")
        _rate("--drop-rate", self.drop_rate)
        _rate("--corrupt-rate", self.corrupt_rate)
        self._rng = random.Random(self.seed)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Faults:
        return cls(delay_ms=args.delay_ms, drop_rate=args.drop_rate, corrupt_rate=args.corrupt_rate, seed=args.seed)

    @property
    def active(self) -> bool:
        """True when any fault is configured: targets then take their slower per-recipient path."""
        return self.delay_ms > 0 or self.drop_rate > 0 or self.corrupt_rate > 0

    @property
    def delay_s(self) -> float:
        return self.delay_ms / 1000.0

    def drop(self) -> bool:
        """Should this delivery be dropped? Draws nothing when dropping is off (keeps seeds comparable)."""
        return self.drop_rate > 0 and self._rng.random() < self.drop_rate

    def corrupt(self) -> bool:
        """Should this delivery carry CORRUPT_PAYLOAD instead of its data?"""
        return self.corrupt_rate > 0 and self._rng.random() < self.corrupt_rate


class DelayLine:
    """Runs callbacks ``delay_s`` after they are queued, strictly in queue order, with one timer.

    A timer per delivery would not keep order (timers due at the same instant may fire in any order)
    and awaiting sleeps one after another would add the delays up. Due times use time.monotonic(),
    not loop.time() (uvloop's has 1 ms resolution), so no callback ever runs before its delay.
    """

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self._queue: deque[tuple[float, Callable[[], object]]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._queue)

    def call(self, callback: Callable[[], object]) -> None:
        """Schedule ``callback()`` to run ``delay_s`` from now, after everything queued before it."""
        self._queue.append((time.monotonic() + self.delay_s, callback))
        if self._timer is None:
            self._arm()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queue.clear()

    def _arm(self) -> None:
        wait = self._queue[0][0] - time.monotonic()
        self._timer = asyncio.get_running_loop().call_later(max(wait, 0.0), self._release)

    def _release(self) -> None:
        self._timer = None
        queue = self._queue
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, callback = queue.popleft()
            try:
                callback()
            except Exception:
                log.exception("delayed delivery failed")
        if queue:  # not due yet (the timer fired early, or more was queued): wait again
            self._arm()


def add_common_args(parser: argparse.ArgumentParser, default_port: int) -> None:
    """The knobs every target shares (see DESIGN.md, measurement rule 6)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument(
        "--port",
        type=int,
        default=default_port,
        help="port to bind, 0 = any free port (default: %(default)s)",
    )
    parser.add_argument("--delay-ms", type=float, default=0.0, metavar="MS", help="extra delay added to every delivery")
    parser.add_argument(
        "--drop-rate",
        type=float,
        default=0.0,
        metavar="P",
        help="probability in [0,1] of dropping a delivery",
    )
    parser.add_argument(
        "--corrupt-rate",
        type=float,
        default=0.0,
        metavar="P",
        help="probability in [0,1] of replacing a delivery by a malformed payload",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed for drop/corrupt decisions")
    parser.add_argument(
        "--log-level",
        default="warning",
        type=str.lower,
        choices=["debug", "info", "warning", "error", "critical"],
        help="(default: %(default)s)",
    )


def url_for(host: str, port: int) -> str:
    """http URL of a bound address; IPv6 literals get brackets."""
    if ":" in host:
        host = f"[{host.split('%', 1)[0]}]"
    return f"http://{host}:{port}"


_NAME: web.AppKey[str] = web.AppKey("rtbench_target_name", str)


async def _healthz(request: web.Request) -> web.Response:
    app = request.app
    count = app[CONNECTIONS]() if CONNECTIONS in app else 0
    return web.json_response({"ok": True, "target": app[_NAME], "connections": count})


async def _close_websockets(app: web.Application) -> None:
    """on_shutdown: send 1001 Going Away to every tracked websocket, bounded in time."""
    tasks = [
        asyncio.ensure_future(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown"))
        for ws in app[WEBSOCKETS]
        if not ws.closed
    ]
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=WS_CLOSE_TIMEOUT_S)
        for task in pending:
            task.cancel()


def _bound_address(runner: web.AppRunner, requested_host: str) -> tuple[str, int]:
    host, port = runner.addresses[0][:2]
    # A wildcard bind is reachable at the address the user gave; otherwise report what was bound
    # (e.g. "localhost" -> 127.0.0.1), so the URL names exactly one socket.
    if host in ("0.0.0.0", "::"):
        host = requested_host
    return str(host), int(port)


async def serve(app: web.Application, args: argparse.Namespace, name: str) -> None:
    """Run ``app`` until SIGTERM/SIGINT, printing the ready line once bound. UsageError if it cannot bind."""
    app[_NAME] = name
    if WEBSOCKETS not in app:
        app[WEBSOCKETS] = weakref.WeakSet()
    app.router.add_get("/healthz", _healthz)
    app.on_shutdown.insert(0, _close_websockets)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    try:
        try:
            # reuse_address lets a restarted target rebind at once (TIME_WAIT), never a live port.
            site = web.TCPSite(runner, args.host, args.port, reuse_address=True, backlog=4096)
            await site.start()
        except OSError as exc:
            raise UsageError(_bind_error(args.host, args.port, exc)) from None
        host, port = _bound_address(runner, args.host)
        print(f"{READY_PREFIX} {name} listening {url_for(host, port)}", flush=True)
        await stop.wait()
        log.info("shutting down")
    finally:
        try:
            await asyncio.wait_for(runner.cleanup(), timeout=2 * SHUTDOWN_TIMEOUT_S + WS_CLOSE_TIMEOUT_S + 1)
        except Exception:  # exiting anyway (TimeoutError included): a slow client must not block it
            log.warning("unclean shutdown", exc_info=True)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def raise_fd_limit() -> int:
    """Lift the soft open-files limit to the hard one: 1,024 (a common default) caps a target near 1,000
    clients, far below the 5,000 a run may open. Returns the limit now in force."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError):
        return soft
    return wanted


def _bind_error(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"cannot listen on {host}:{port}: address already in use"
    if isinstance(exc, socket.gaierror):
        return f"cannot listen on {host}:{port}: unknown host"
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


def _run(coro: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency, but do not die without it
        asyncio.run(coro)
    else:
        uvloop.run(coro)


def main(
    build_app: Callable[[argparse.Namespace, Faults], web.Application],
    name: str,
    default_port: int,
    argv: Sequence[str] | None = None,
    *,
    add_args: Callable[[argparse.ArgumentParser], Any] | None = None,
    description: str | None = None,
) -> int:
    """Parse the CLI, build the target's app and serve it. Returns the process exit status."""
    parser = ArgumentParser(prog=f"targets.{name}", description=description)
    add_common_args(parser, default_port)
    if add_args is not None:
        add_args(parser)
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535")
    try:
        faults = Faults.from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    raise_fd_limit()

    async def run() -> None:
        # Built inside the loop: servers such as python-socketio bind to the running loop.
        await serve(build_app(args, faults), args, name)

    try:
        _run(run())
    except UsageError as exc:
        parser.error(str(exc))
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        pass
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    return 0


class BadRequest(ValueError):
    """An HTTP request a target refuses; ``status`` and a one-line reason for the JSON error body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def json_error(status: int, message: str) -> web.Response:
    """The JSON error body every target answers with (CORS-open, like the rest of its API)."""
    return web.json_response({"error": message}, status=status, headers={"Access-Control-Allow-Origin": "*"})


async def read_json(request: web.Request, limit: int) -> Any:
    """A request's JSON body, refusing bodies over ``limit`` bytes (413) and bad JSON (400)."""
    if request.content_length is not None and request.content_length > limit:
        raise BadRequest(413, f"body larger than {limit} bytes")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BadRequest(413, f"body larger than {limit} bytes") from None
    try:
        return json.loads(body)
    except ValueError:
        raise BadRequest(400, "body is not valid JSON") from None


def ws_text_frame(payload: bytes) -> bytes:
    """One unmasked, uncompressed RFC 6455 text frame: build once, write the same bytes to every
    recipient (the fan-out fast path of the websocket targets)."""
    n = len(payload)
    if n < 126:
        header = bytes((0x81, n))
    elif n < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, n)
    else:
        header = struct.pack("!BBQ", 0x81, 127, n)
    return header + payload
