"""Serving one target's aiohttp app: bind, ready line, /healthz, clean shutdown on SIGTERM / SIGINT.

The contract the harness relies on (it launches targets as subprocesses):

* one line ``rtbench-target <name> listening http://HOST:PORT`` on stdout once the socket is bound
  (``--port 0`` lets the OS choose, so parallel tests never collide);
* ``GET /healthz`` -> ``{"ok": true, "target": name, "connections": N}``, plus ``"node": ID`` on a
  node (below), ``connections_accepted`` / ``connections_refused`` under ``--accept-connections``
  (targets.admission) and whatever the target adds under HEALTH (a node on Redis: its link's state);
* ``--node-id ID`` names this process among several serving one app (scale-out): every HTTP response
  it sends, the websocket 101 and the SSE stream included, carries ``X-Rtbench-Node: ID`` so a client
  behind a load balancer knows which node it reached. Without ``--node-id`` there is no header, except
  on a target started with ``--redis`` (a node by construction): it defaults to ``HOSTNAME:PORT``
  (the bound port), unique per process on one machine and readable in logs;
* SIGTERM / SIGINT -> websockets closed with 1001 (clients see a transport close and reconnect,
  as with a real server restart), exit status 0 within ~2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import signal
import socket
import weakref
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from aiohttp import WSCloseCode, web

from targets.admission import Admission

__all__ = [
    "CONNECTIONS",
    "HEALTH",
    "NODE_HEADER",
    "READY_PREFIX",
    "WEBSOCKETS",
    "UsageError",
    "install",
    "raise_fd_limit",
    "serve",
    "url_for",
]

log = logging.getLogger("targets")

READY_PREFIX = "rtbench-target"

CONNECTIONS: web.AppKey[Callable[[], int]] = web.AppKey("rtbench_connections")
"""Set by a target: returns its number of connected clients, reported by /healthz."""

HEALTH: web.AppKey[Callable[[], dict[str, Any]]] = web.AppKey("rtbench_health")
"""Set by a target that has more to report on /healthz (merged into its JSON)."""

NODE_HEADER = "X-Rtbench-Node"
"""Response header naming the node that answered (``--node-id``); the harness clients read it."""

WEBSOCKETS: web.AppKey[weakref.WeakSet[web.WebSocketResponse]] = web.AppKey("rtbench_websockets")
"""Filled by targets with their open websockets so shutdown can close them all (created by serve)."""

SHUTDOWN_TIMEOUT_S = 0.5
"""aiohttp waits this long for in-flight handlers (long polls, streams), then cancels them."""

WS_CLOSE_TIMEOUT_S = 1.0
"""Upper bound on waiting for clients to answer our close frames."""

_NAME: web.AppKey[str] = web.AppKey("rtbench_target_name", str)
_ADMISSION: web.AppKey[Admission] = web.AppKey("rtbench_admission", Admission)
_NODE: web.AppKey[list[str]] = web.AppKey("rtbench_node_id", list)
"""This process's node id, in a one-item list (empty: not a node) so it can be filled once the port is
bound, after the app is frozen."""


class Closeable(Protocol):
    async def close(self) -> None: ...


T = TypeVar("T", bound=Closeable)


def install(app: web.Application, key: web.AppKey[T], target: T, connections: Callable[[], int]) -> None:
    """Hang a target object on its app: tests and embedders find it under ``key``, /healthz counts its
    ``connections``, and shutdown closes it (after the websockets got their 1001)."""
    app[key] = target
    app[CONNECTIONS] = connections
    if WEBSOCKETS not in app:  # serve() would create it; tests that skip serve() need it too
        app[WEBSOCKETS] = weakref.WeakSet()

    async def on_shutdown(_: web.Application) -> None:
        await target.close()

    app.on_shutdown.append(on_shutdown)


class UsageError(Exception):
    """Raised by a target's build_app for bad configuration: reported as a usage error (exit 2)."""


def url_for(host: str, port: int) -> str:
    """http URL of a bound address; IPv6 literals get brackets."""
    if ":" in host:
        host = f"[{host.split('%', 1)[0]}]"
    return f"http://{host}:{port}"


async def _healthz(request: web.Request) -> web.Response:
    app = request.app
    count = app[CONNECTIONS]() if CONNECTIONS in app else 0
    body: dict[str, Any] = {"ok": True, "target": app[_NAME], "connections": count}
    node = app.get(_NODE)
    if node:
        body["node"] = node[0]
    if _ADMISSION in app:
        body.update(app[_ADMISSION].health())
    if HEALTH in app:
        body.update(app[HEALTH]())
    return web.json_response(body)


def _name_node(app: web.Application, node_id: str | None) -> list[str]:
    """Hang the node id (filled now or once bound) on the app and stamp it on every response."""
    node: list[str] = [node_id] if node_id else []
    app[_NODE] = node

    async def stamp(_: web.Request, response: web.StreamResponse) -> None:
        if node:
            response.headers[NODE_HEADER] = node[0]

    app.on_response_prepare.append(stamp)
    return node


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


def _bind_error(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"cannot listen on {host}:{port}: address already in use"
    if isinstance(exc, socket.gaierror):
        return f"cannot listen on {host}:{port}: unknown host"
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


async def serve(app: web.Application, args: argparse.Namespace, name: str) -> None:
    """Run ``app`` until SIGTERM/SIGINT, printing the ready line once bound. UsageError if it cannot bind."""
    app[_NAME] = name
    if WEBSOCKETS not in app:
        app[WEBSOCKETS] = weakref.WeakSet()
    app.router.add_get("/healthz", _healthz)
    app.on_shutdown.insert(0, _close_websockets)
    limit: int | None = getattr(args, "accept_connections", None)
    if limit is not None:  # only then: every other target serves without a middleware in the way
        admission = app[_ADMISSION] = Admission(limit)
        app.middlewares.append(admission.middleware)
    node_id: str | None = getattr(args, "node_id", None)
    is_node = bool(node_id) or bool(getattr(args, "redis", None))
    node = _name_node(app, node_id) if is_node else None

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
        if node is not None and not node:
            node.append(f"{socket.gethostname()}:{port}")
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
