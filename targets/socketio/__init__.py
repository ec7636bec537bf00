"""Socket.IO reference target.

``python -m targets.socketio --host 127.0.0.1 --port 3001 [--delay-ms 20] [--drop-rate 0.01]``
``[--redis redis://HOST:PORT] [--node-id ID]`` (several nodes sharing one Redis: see targets.socketio.server)
"""

from __future__ import annotations

from targets.socketio.server import SocketIOTarget, add_args, build_app

NAME = "socketio"
DEFAULT_PORT = 3001
DESCRIPTION = "Socket.IO reference target for rtbench"

__all__ = ["DEFAULT_PORT", "DESCRIPTION", "NAME", "SocketIOTarget", "add_args", "build_app"]
