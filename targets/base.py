"""What every reference target is built on: its command line, ``main``, and the shared pieces it uses.

A target is a package ``targets/<name>/`` whose ``__main__`` calls ``main(build_app, name, port)``.
``main`` parses the knobs every target shares (host, port, fault plan, admission limit, node id, log level) plus
the target's own, builds the app inside the event loop and serves it (targets.serve). Bad usage -> one line
``targets.<name>: error: ...`` on stderr and exit status 2, no traceback.

The shared pieces live in small modules (faults, admission, serve, httpapi, todos, wsframes); their names
are re-exported here so a target, and the tests, can import what they need from one place.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NoReturn

from aiohttp import web

from targets.faults import CORRUPT_PAYLOAD, REPLAY_FAULTS, DelayLine, FaultPlan, Faults
from targets.httpapi import BadRequest, json_error, read_json
from targets.parent import die_with_parent
from targets.serve import (
    CONNECTIONS,
    HEALTH,
    NODE_HEADER,
    READY_PREFIX,
    WEBSOCKETS,
    UsageError,
    raise_fd_limit,
    serve,
    url_for,
)
from targets.todos import add_args as add_todo_args
from targets.wsframes import ws_frame, ws_text_frame

__all__ = [
    "CONNECTIONS",
    "CORRUPT_PAYLOAD",
    "HEALTH",
    "NODE_HEADER",
    "READY_PREFIX",
    "WEBSOCKETS",
    "ArgumentParser",
    "BadRequest",
    "DelayLine",
    "FaultPlan",
    "Faults",
    "UsageError",
    "add_common_args",
    "add_redis_arg",
    "json_error",
    "main",
    "read_json",
    "serve",
    "url_for",
    "ws_frame",
    "ws_text_frame",
]


_TOKEN = re.compile(r"[!-~]{1,64}")
"""A node id: it travels in an HTTP header, so visible ASCII only, bounded."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are one line (no usage dump), as the exit-code contract asks."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


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
        "--replay-fault",
        default="none",
        metavar="|".join(REPLAY_FAULTS),
        help="what becomes of a replayed offline mutation (a payload ending with '|replay'): fanned out "
        "once (none), never though its publish is accepted (drop), or twice (duplicate) (default: %(default)s)",
    )
    parser.add_argument(
        "--accept-connections",
        type=int,
        default=None,
        metavar="N",
        help="accept N subscriber connections (websockets, event streams) in this process's life, then refuse "
        "every further one with HTTP 503 (default: unlimited)",
    )
    parser.add_argument(
        "--node-id",
        default=None,
        metavar="ID",
        help="name of this node among several: sent as the X-Rtbench-Node header on every response",
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        type=str.lower,
        choices=["debug", "info", "warning", "error", "critical"],
        help="(default: %(default)s)",
    )
    add_todo_args(parser)


def add_redis_arg(parser: argparse.ArgumentParser) -> None:
    """``--redis URL``, for the targets that can run as several nodes sharing one Redis."""
    parser.add_argument(
        "--redis",
        default=None,
        metavar="URL",
        help="join the nodes sharing this Redis (redis://HOST:PORT[/DB]): publishes reach every node's clients",
    )


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
    die_with_parent()
    parser = ArgumentParser(prog=f"targets.{name}", description=description)
    add_common_args(parser, default_port)
    if add_args is not None:
        add_args(parser)
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535")
    if args.node_id is not None and not _TOKEN.fullmatch(args.node_id):
        parser.error("--node-id must be 1-64 visible ASCII characters")
    if args.accept_connections is not None and args.accept_connections < 0:
        parser.error("--accept-connections must be >= 0")
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
