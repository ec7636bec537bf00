"""Real third-party servers the tests start on loopback (Redis; nginx for the scale-out suite)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A loopback port free now (the caller binds it soon after; a clash is retried by the caller)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
