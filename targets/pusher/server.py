"""Pusher Channels reference target: protocol 7 over aiohttp websockets plus the signed HTTP API.

Interface (what clients and the harness rely on; the wire format lives in harness.protocols.pusher):

* ``GET /app/{key}?protocol=7`` (websocket): ``pusher:connection_established`` with a ``socket_id``
  matching ``\\d+\\.\\d+`` and ``activity_timeout`` (``--activity-timeout``, default 120 s). An unknown key
  gets ``pusher:error`` 4001 and a close with 4001; a missing / malformed / unsupported ``protocol`` 4008 /
  4006 / 4007. Then ``pusher:subscribe`` / ``pusher:unsubscribe`` (public, ``private-``, ``presence-``,
  ``private-encrypted-`` relayed as private), ``pusher:ping`` -> ``pusher:pong``, client events
  ``client-*`` on private and presence channels the sender is subscribed to (relayed to the others, never
  echoed, with ``user_id`` on presence channels). A bad channel auth gets ``pusher:subscription_error``
  ``{"type": "AuthError", "error": ..., "status": 401}``; a malformed frame gets ``pusher:error`` (code
  null) and the connection stays open. A client silent for ``activity_timeout`` gets ``pusher:ping``; one
  that stays silent ``--pong-timeout`` more is closed with 4201.
* ``POST /apps/{id}/events`` ``{"name", "data", "channels" | "channel", "socket_id"?, "info"?}`` and
  ``POST /apps/{id}/batch_events`` ``{"batch": [{"channel", "name", "data", "socket_id"?}]}``: signed
  (auth_key, auth_timestamp within 600 s, auth_version 1.0, body_md5, auth_signature), else 401 with
  ``{"error": reason}``; unknown app id 404; bad body 400; data over ``--max-event-bytes`` 413.
  ``GET /apps/{id}/channels[?filter_by_prefix=&info=user_count]``, ``GET /apps/{id}/channels/{name}
  [?info=user_count,subscription_count]`` and ``GET /apps/{id}/channels/{name}/users`` (presence).
* Faults (``--delay-ms``, ``--drop-rate``, ``--corrupt-rate``) apply to every channel-event delivery,
  triggered or client event, decided per recipient at publish time and delivered in publish order.
* The app's ``/api/todos`` (targets.todos, unsigned): each mutation triggers ``todo:created`` /
  ``todo:updated`` / ``todo:deleted`` on channel ``todos``.

Modules by job: ``session`` (websocket protocol and liveness), ``rest`` (HTTP API), ``fanout`` (channels
and delivery under the fault plan); this one wires them into an aiohttp app. A broadcast is encoded once
per channel, down to the websocket frame, and written straight to each recipient's transport; a fan-out
never awaits, so concurrent publishes cannot interleave.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

from aiohttp import web

from harness.protocols import pusher as proto
from targets.faults import Faults
from targets.pusher.credentials import AppCredentials
from targets.pusher.fanout import Channel, Connection, Hub
from targets.pusher.rest import HttpApi
from targets.pusher.session import CLIENT_EVENTS, Sessions
from targets.serve import UsageError, install
from targets.todos import TODOS_CHANNEL, TodoEvent
from targets.todos import mount as mount_todos

__all__ = ["TARGET", "AppCredentials", "PusherTarget", "add_args", "build_app"]

MAX_BODY_BYTES = 1024 * 1024


class PusherTarget:
    """One app's websocket sessions and HTTP API over one shared Hub of connections and channels."""

    def __init__(
        self,
        app: AppCredentials,
        faults: Faults,
        *,
        activity_timeout: int = proto.ACTIVITY_TIMEOUT_S,
        pong_timeout: float = proto.PONG_TIMEOUT_S,
        max_event_bytes: int = proto.MAX_EVENT_DATA_BYTES,
        client_events: str = "relay",
    ) -> None:
        self.app = app
        self.faults = faults
        self.hub = Hub(faults)
        self.sessions = Sessions(
            self.hub,
            app,
            activity_timeout=activity_timeout,
            pong_timeout=pong_timeout,
            max_event_bytes=max_event_bytes,
            client_events=client_events,
        )
        self.api = HttpApi(self.hub, app, max_event_bytes=max_event_bytes)

    @property
    def connections(self) -> dict[str, Connection]:
        return self.hub.connections

    @property
    def channels(self) -> dict[str, Channel]:
        return self.hub.channels

    @property
    def clock(self) -> Callable[[], float]:
        """The clock HTTP API timestamps are checked against (tests replace it)."""
        return self.api.clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        self.api.clock = clock

    def broadcast(
        self, name: str, event: str, data: str, exclude: str | None = None, user_id: str | None = None
    ) -> int:
        """Deliver an event to a channel's subscribers (but ``exclude``). Returns the recipients."""
        return self.hub.broadcast(name, event, data, exclude, user_id)

    def connection_count(self) -> int:
        return len(self.hub.connections)

    async def close(self) -> None:
        self.hub.close()
        await self.sessions.close()


TARGET: web.AppKey[PusherTarget] = web.AppKey("rtbench_pusher_target", PusherTarget)
"""The target object behind an app, for tests and embedding."""


def add_args(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument(
        "--app-id",
        default=env("PUSHER_APP_ID") or proto.LOCAL_APP_ID,
        help=f"app id, digits (default: $PUSHER_APP_ID, else {proto.LOCAL_APP_ID})",
    )
    parser.add_argument(
        "--key",
        default=env("PUSHER_KEY") or proto.LOCAL_KEY,
        help=f"app key clients connect with (default: $PUSHER_KEY, else {proto.LOCAL_KEY})",
    )
    parser.add_argument(
        "--secret",
        default=env("PUSHER_SECRET") or proto.LOCAL_SECRET,
        help=f"app secret (default: $PUSHER_SECRET, else {proto.LOCAL_SECRET})",
    )
    parser.add_argument(
        "--activity-timeout",
        type=int,
        default=proto.ACTIVITY_TIMEOUT_S,
        metavar="S",
        help="seconds announced in connection_established; silent clients get a ping (default: %(default)s)",
    )
    parser.add_argument(
        "--pong-timeout",
        type=float,
        default=float(proto.PONG_TIMEOUT_S),
        metavar="S",
        help="seconds a pinged client has to answer before a 4201 close (default: %(default)s)",
    )
    parser.add_argument(
        "--max-event-bytes",
        type=int,
        default=proto.MAX_EVENT_DATA_BYTES,
        metavar="N",
        help="largest event data accepted, as Pusher's message size limit (default: %(default)s)",
    )
    parser.add_argument(
        "--client-events",
        choices=CLIENT_EVENTS,
        default="relay",
        help="relay: to the channel's other members, as Pusher does (default); refuse: as an app that has not "
        "enabled client events; echo: a fault, to the sender too, which Pusher never does (to test a check)",
    )


def build_app(args: argparse.Namespace, faults: Faults) -> web.Application:
    """aiohttp app with the websocket endpoint, the HTTP API and the app API (targets.todos); /healthz is
    added by serve()."""
    app_id = str(getattr(args, "app_id", proto.LOCAL_APP_ID))
    key = str(getattr(args, "key", proto.LOCAL_KEY))
    secret = str(getattr(args, "secret", proto.LOCAL_SECRET))
    if not proto.APP_ID_RE.match(app_id):
        raise UsageError("--app-id must be digits (as Pusher app ids are)")
    if not key or not secret:
        raise UsageError("--key and --secret must not be empty")
    activity_timeout = int(getattr(args, "activity_timeout", proto.ACTIVITY_TIMEOUT_S))
    if activity_timeout <= 0:
        raise UsageError("--activity-timeout must be > 0 (pusher-js refuses a handshake without it)")
    pong_timeout = float(getattr(args, "pong_timeout", proto.PONG_TIMEOUT_S))
    if not pong_timeout > 0:
        raise UsageError("--pong-timeout must be > 0")
    max_event_bytes = int(getattr(args, "max_event_bytes", proto.MAX_EVENT_DATA_BYTES))
    if max_event_bytes <= 0:
        raise UsageError("--max-event-bytes must be > 0")
    target = PusherTarget(
        AppCredentials(app_id, key, secret),
        faults,
        activity_timeout=activity_timeout,
        pong_timeout=pong_timeout,
        max_event_bytes=max_event_bytes,
        client_events=str(getattr(args, "client_events", "relay")),
    )
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_get("/app/{key}", target.sessions.websocket)
    api = target.api
    app.router.add_post("/apps/{app_id}/events", api.http_events)
    app.router.add_post("/apps/{app_id}/batch_events", api.http_batch_events)
    app.router.add_get("/apps/{app_id}/channels", api.http_channels)
    app.router.add_get("/apps/{app_id}/channels/{name}", api.http_channel)
    app.router.add_get("/apps/{app_id}/channels/{name}/users", api.http_users)

    async def emit_todo(event: TodoEvent) -> None:  # pusher.trigger('todos', 'todo:created', {...})
        target.broadcast(TODOS_CHANNEL, event.name, event.text)

    mount_todos(app, args, emit_todo)
    install(app, TARGET, target, target.connection_count)
    return app
