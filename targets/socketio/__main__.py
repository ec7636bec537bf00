"""``python -m targets.socketio``: see targets.socketio.server for the interface."""

from __future__ import annotations

from targets.base import main
from targets.socketio import DEFAULT_PORT, DESCRIPTION, NAME, add_args, build_app

if __name__ == "__main__":
    raise SystemExit(main(build_app, NAME, DEFAULT_PORT, add_args=add_args, description=DESCRIPTION))
