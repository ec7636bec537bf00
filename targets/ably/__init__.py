"""Ably-protocol-compatible reference target.

``python -m targets.ably --host 127.0.0.1 --port 8081 --key APP.KEYID:SECRET [--key ...] [--delay-ms 20]``
(no ``--key``: the documented local key ``targets.ably.DEFAULT_KEY``).
"""

from __future__ import annotations

from targets.ably.server import DEFAULT_KEY, TARGET, AblyTarget, add_args, build_app

NAME = "ably"
DEFAULT_PORT = 8081
DESCRIPTION = "Ably-protocol-compatible reference target for rtbench"

__all__ = ["DEFAULT_KEY", "DEFAULT_PORT", "DESCRIPTION", "NAME", "TARGET", "AblyTarget", "add_args", "build_app"]
