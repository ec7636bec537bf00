"""``python -m targets.ably``: see targets.ably.server for the interface."""

from __future__ import annotations

from targets.ably import DEFAULT_PORT, DESCRIPTION, NAME, add_args, build_app
from targets.base import main

if __name__ == "__main__":
    raise SystemExit(main(build_app, NAME, DEFAULT_PORT, add_args=add_args, description=DESCRIPTION))
