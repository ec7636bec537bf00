"""Ably-protocol-compatible reference target: the realtime WebSocket protocol and the REST publish path.

Interface (what the official clients rely on; see harness/protocols/ably.py for the wire format):

* WebSocket at ``/`` with the query the clients send: ``key`` or ``accessToken``/``access_token``,
  ``format`` (``json`` | ``msgpack``), ``v``, ``clientId``, ``echo``, ``heartbeats``, ``resume``/``recover``.
  A bad key or token gets ERROR with errors.json codes (40101 invalid credentials, 40400 unknown key,
  4014x token errors) and the socket is closed; otherwise CONNECTED with complete ``connectionDetails``.
  A resume is never honoured (no connection state is kept): CONNECTED carries a new connectionId and
  error 80008, so clients re-attach and know continuity was lost, as Ably does after connectionStateTtl.
* HEARTBEAT is echoed with its ``id``; the target sends one every ``maxIdleInterval`` (a websocket ping
  instead when the client asked for ``heartbeats=false``).
* ATTACH -> ATTACHED (modes in ``flags``, RESUMED when already attached on this connection),
  DETACH -> DETACHED, CLOSE -> CLOSED and the socket closed.
* MESSAGE (client -> service): validated, stamped with ``id``, ``timestamp``, ``connectionId``, fanned out
  to every connection attached to the channel (not the publisher when it connected with ``echo=false``),
  then acknowledged: ACK by ``msgSerial``/``count``, or NACK with 40009 (over ``maxMessageSize``),
  40010 (bad channel), 40012 (clientId mismatch) or 40013 (bad message data).
* PRESENCE: ENTER / UPDATE / LEAVE by identified clients, broadcast to attached connections; the member
  set is sent as one SYNC page after ATTACHED (flag HAS_PRESENCE), members leave when their connection ends.
* An undecodable frame, or a frame without an integer action, gets ERROR 40000 and that connection is
  closed; everyone else is unaffected.
* REST: ``POST /channels/{name}/messages`` (JSON or msgpack body: a message or a list; Basic or Bearer
  auth; 201 ``{"channel", "messageId", "serials"}``), ``POST /keys/{keyName}/requestToken`` (a signed
  TokenRequest -> TokenDetails), ``GET /time`` -> ``[ms]``. Errors are ``{"error": ErrorInfo}``. Unlike
  Ably, Basic auth is accepted over plain http (this target has no TLS).
* The app's ``/api/todos`` (targets.todos, no auth): each mutation publishes ``todo:created`` /
  ``todo:updated`` / ``todo:deleted`` on channel ``todos``, its data JSON (encoding ``json``).

Fault knobs (``--delay-ms``, ``--drop-rate``, ``--corrupt-rate``) act per recipient of each MESSAGE.

Modules by job: ``session`` (realtime protocol), ``rest`` (HTTP API), ``fanout`` (connections, channels,
presence, delivery under the fault plan), ``auth`` (keys and tokens), ``messages`` (validation, encoding);
this one wires them into an aiohttp app.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Mapping

from aiohttp import web

from harness.protocols import ably as proto
from harness.protocols.ably import ProtocolError
from targets.ably.auth import Auth
from targets.ably.fanout import Hub
from targets.ably.rest import Rest
from targets.ably.session import Realtime
from targets.faults import Faults
from targets.serve import UsageError, install
from targets.todos import TODOS_CHANNEL, TodoEvent
from targets.todos import mount as mount_todos

__all__ = ["DEFAULT_KEY", "TARGET", "AblyTarget", "add_args", "build_app"]

DEFAULT_KEY = "rtbench.local:rtbench-local-secret"
"""The key a target accepts when none is given, and the one the harness uses against a local target.
Not a secret: anyone who can reach a local target can read it here."""


class AblyTarget:
    """One Ably-like service: realtime sessions and the REST API over one Hub, checked by one Auth."""

    def __init__(
        self,
        keys: Mapping[str, str],
        faults: Faults,
        *,
        max_message_size: int = 65536,
        max_idle_ms: int = 15000,
        ignore_echo: bool = False,
    ) -> None:
        self.faults = faults
        self.auth = Auth(keys)
        self.hub = Hub(faults, max_message_size)
        self.realtime = Realtime(self.hub, self.auth, max_idle_ms=max_idle_ms, ignore_echo=ignore_echo)
        self.rest = Rest(self.hub, self.auth)

    def connection_count(self) -> int:
        return len(self.hub.connections)

    async def close(self) -> None:
        self.hub.close()
        self.realtime.close()


TARGET: web.AppKey[AblyTarget] = web.AppKey("rtbench_ably_target", AblyTarget)
"""The target object behind an app, for tests and embedding."""


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key",
        action="append",
        default=None,
        metavar="APP.KEYID:SECRET",
        help=f"an accepted API key, repeatable (default: the local key {DEFAULT_KEY})",
    )
    parser.add_argument(
        "--max-message-size",
        type=int,
        default=65536,
        help="maxMessageSize in bytes: larger publishes are NACKed with 40009 (default: %(default)s)",
    )
    parser.add_argument(
        "--max-idle-ms",
        type=int,
        default=15000,
        help="maxIdleInterval; heartbeats go out every half of it (default: %(default)s)",
    )
    parser.add_argument(
        "--ignore-echo",
        action="store_true",
        help="a fault: send a client's own messages back even when it connected with echo=false, which Ably "
        "never does (to test a check)",
    )


def build_app(args: argparse.Namespace, faults: Faults) -> web.Application:
    keys: dict[str, str] = {}
    for key in getattr(args, "key", None) or [DEFAULT_KEY]:
        try:
            key_name, secret = proto.parse_key(key)
        except ProtocolError:
            raise UsageError("--key must look like APP_ID.KEY_ID:SECRET") from None
        keys[key_name] = secret
    max_message_size = int(getattr(args, "max_message_size", 65536))
    max_idle_ms = int(getattr(args, "max_idle_ms", 15000))
    if max_message_size <= 0 or max_idle_ms < 100:
        raise UsageError("--max-message-size must be > 0 and --max-idle-ms >= 100")
    target = AblyTarget(
        keys,
        faults,
        max_message_size=max_message_size,
        max_idle_ms=max_idle_ms,
        ignore_echo=bool(getattr(args, "ignore_echo", False)),
    )
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_get("/", target.realtime.websocket)
    app.router.add_get("/time", target.rest.time)
    app.router.add_post("/channels/{channel}/messages", target.rest.publish)
    app.router.add_post("/keys/{key_name}/requestToken", target.rest.request_token)

    async def emit_todo(event: TodoEvent) -> None:  # channels.get('todos').publish('todo:created', {...})
        message = {"name": event.name, "data": event.text, "encoding": "json"}
        target.hub.publish(TODOS_CHANNEL, [message], f"todo{uuid.uuid4().hex[:12]}", sender=None)

    mount_todos(app, args, emit_todo)
    install(app, TARGET, target, target.connection_count)
    return app
