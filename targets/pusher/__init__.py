"""Pusher Channels reference target (protocol 7 websocket + signed HTTP API).

``python -m targets.pusher --host 127.0.0.1 --port 6001 --app-id ID --key KEY --secret SECRET``

Credentials default to ``$PUSHER_APP_ID`` / ``$PUSHER_KEY`` / ``$PUSHER_SECRET``, else to the local
defaults ``1`` / ``rtbench-key`` / ``rtbench-secret`` (harness.protocols.pusher.LOCAL_*), which the
provider uses too, so an embedded run needs no configuration.
"""

from __future__ import annotations

from targets.pusher.server import TARGET, AppCredentials, PusherTarget, add_args, build_app

NAME = "pusher"
DEFAULT_PORT = 6001
DESCRIPTION = "Pusher Channels (protocol 7) reference target for rtbench"

__all__ = ["DEFAULT_PORT", "DESCRIPTION", "NAME", "TARGET", "AppCredentials", "PusherTarget", "add_args", "build_app"]
