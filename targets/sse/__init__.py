"""Server-Sent Events reference target.

``python -m targets.sse --host 127.0.0.1 --port 3002 [--delay-ms 20] [--drop-rate 0.01]``
``[--redis redis://HOST:PORT] [--node-id ID]`` (several nodes sharing one Redis: see targets.sse.server)
"""

from __future__ import annotations

from targets.sse.server import SSETarget, add_args, build_app

NAME = "sse"
DEFAULT_PORT = 3002
DESCRIPTION = "Server-Sent Events reference target for rtbench"

__all__ = ["DEFAULT_PORT", "DESCRIPTION", "NAME", "SSETarget", "add_args", "build_app"]
