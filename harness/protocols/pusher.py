"""Pusher Channels protocol 7, sans-I/O: frames, channel rules, close codes and both signatures.

Shared by the reference target (targets/pusher) and our lean client (harness/providers/pusher.py), whose
connection state machine is :class:`ClientConnection`; nothing here touches a socket or a clock (timestamps
are passed in). Tests hold golden frames and the documented worked examples, so one bug cannot hide on both
sides.

Wire rules worth knowing (from the protocol documentation and pusher-js):

* every frame is a JSON object ``{"event": str, "channel"?: str, "data"?: ..., "user_id"?: str}``;
* server-to-client ``data`` is a JSON-encoded *string* (``connection_established``, channel events,
  ``subscription_succeeded``, member events), except ``pusher:error`` whose data is an object
  ``{"code": int | null, "message": str}``; clients decode a string ``data`` once more when it is JSON;
* client-to-server ``data`` is an object (``pusher:subscribe`` ``{"channel", "auth"?, "channel_data"?}``);
* private / presence auth is ``<key>:<hex HMAC-SHA256(secret, "socket_id:channel[:channel_data]")>``;
* HTTP API requests are signed over ``METHOD\\nPATH\\n<sorted, lower-cased params without auth_signature>``.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from json.decoder import scanstring as _scan_json_string  # type: ignore[attr-defined]
from typing import Any, Literal

PROTOCOL_VERSION = 7
SUPPORTED_PROTOCOLS = frozenset({5, 6, 7})
ACTIVITY_TIMEOUT_S = 120
"""What Pusher announces in ``connection_established`` (seconds of silence before a ``pusher:ping``)."""
PONG_TIMEOUT_S = 30
AUTH_VERSION = "1.0"
TIMESTAMP_GRACE_S = 600
"""HTTP API requests whose auth_timestamp is further than this from the server's clock are rejected."""
MAX_CHANNEL_NAME = 200
MAX_EVENT_NAME = 200
MAX_CHANNELS_PER_TRIGGER = 100
MAX_BATCH_EVENTS = 10
MAX_EVENT_DATA_BYTES = 10 * 1024
"""Pusher's default message size limit (10 KB) for triggered and client events."""

LOCAL_APP_ID = "1"
LOCAL_KEY = "rtbench-key"
LOCAL_SECRET = "rtbench-secret"
"""Documented defaults shared by the local target and the provider, so ``locust -f scenarios/pusher.py``
works with nothing configured. Never use them for anything reachable from outside."""

SOCKET_ID_RE = re.compile(r"\A\d+\.\d+\Z")
CHANNEL_NAME_RE = re.compile(r"\A[-a-zA-Z0-9_=@,.;]+\Z")
APP_ID_RE = re.compile(r"\A[0-9]+\Z")

ChannelKind = Literal["public", "private", "presence", "encrypted"]


class CloseCode(enum.IntEnum):
    """Pusher's websocket close codes (4000-4099: do not reconnect; 4100-4199: back off; 4200-4299:
    reconnect at once; 4300-4399: other errors)."""

    SSL_ONLY = 4000
    APP_NOT_FOUND = 4001
    APP_DISABLED = 4003
    APP_OVER_QUOTA = 4004
    PATH_NOT_FOUND = 4005
    INVALID_VERSION_FORMAT = 4006
    UNSUPPORTED_PROTOCOL = 4007
    NO_PROTOCOL = 4008
    UNAUTHORIZED = 4009
    OVER_CAPACITY = 4100
    GENERIC_RECONNECT = 4200
    PONG_NOT_RECEIVED = 4201
    CLOSED_AFTER_INACTIVITY = 4202
    CLIENT_EVENT_RATE_LIMIT = 4301


CloseAction = Literal["tls_only", "refused", "backoff", "retry"]


def close_action(code: int | None) -> CloseAction | None:
    """What a client does after a close with ``code`` (pusher-js' Protocol.getCloseAction): None means
    an ordinary close (reconnect as after any transport loss)."""
    if code is None or code < 4000:
        return "backoff" if code is not None and 1002 <= code <= 1004 else None
    if code == CloseCode.SSL_ONLY:
        return "tls_only"
    if code < 4100:
        return "refused"
    if code < 4200:
        return "backoff"
    if code < 4300:
        return "retry"
    return "refused"


class ProtocolError(ValueError):
    """A frame or field that breaks the protocol; the message is the reason a peer can be told."""


# -- frames ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Frame:
    """One decoded frame. ``data`` is exactly what was on the wire (a string stays a string).

    Not frozen: every delivery decodes one, and a frozen dataclass costs ~1 µs more to build.
    """

    event: str
    data: Any = None
    channel: str | None = None
    user_id: str | None = None


def decode(text: str | bytes) -> Frame:
    """Parse one websocket message. Raises ProtocolError for anything that is not a Pusher frame."""
    try:
        obj = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"Invalid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("A frame must be a JSON object")
    event = obj.get("event")
    if not isinstance(event, str) or not event:
        raise ProtocolError("A frame needs a non-empty string 'event'")
    channel = obj.get("channel")
    if channel is not None and not isinstance(channel, str):
        raise ProtocolError("'channel' must be a string")
    user_id = obj.get("user_id")
    return Frame(event, obj.get("data"), channel, None if user_id is None else str(user_id))


def encode_json(obj: object) -> str:
    """Compact JSON, as Pusher puts on the wire."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def encode(frame: Frame) -> str:
    """Serialise a frame as given (``data`` is not re-encoded: pass a string for server events)."""
    out: dict[str, Any] = {"event": frame.event}
    if frame.channel is not None:
        out["channel"] = frame.channel
    if frame.data is not None:
        out["data"] = frame.data
    if frame.user_id is not None:
        out["user_id"] = frame.user_id
    return encode_json(out)


def data_object(data: Any) -> dict[str, Any]:
    """A frame's ``data`` as an object, whether it came as an object or as a JSON string."""
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            raise ProtocolError("'data' is not valid JSON") from None
    if not isinstance(data, dict):
        raise ProtocolError("'data' must be an object")
    return data


def data_string(data: Any) -> str:
    """The string form an event's data travels in (strings untouched, anything else JSON-encoded)."""
    return data if isinstance(data, str) else encode_json(data)


# server -> client


def connection_established(socket_id: str, activity_timeout: int = ACTIVITY_TIMEOUT_S) -> str:
    return encode(
        Frame(
            "pusher:connection_established", encode_json({"socket_id": socket_id, "activity_timeout": activity_timeout})
        )
    )


def error(message: str, code: int | None = None) -> str:
    """``pusher:error``; its data is an object, and code is null for errors that keep the connection."""
    return encode(Frame("pusher:error", {"code": None if code is None else int(code), "message": message}))


def ping() -> str:
    return encode(Frame("pusher:ping", "{}"))


def pong() -> str:
    return encode(Frame("pusher:pong", "{}"))


def subscription_succeeded(channel: str, presence: Mapping[str, Any] | None = None) -> str:
    """``presence``: ``{user_id: user_info}`` of the members (the subscriber included)."""
    if presence is None:
        return encode(Frame("pusher_internal:subscription_succeeded", "{}", channel))
    ids = list(presence)
    body = {"presence": {"ids": ids, "hash": dict(presence), "count": len(ids)}}
    return encode(Frame("pusher_internal:subscription_succeeded", encode_json(body), channel))


def subscription_error(channel: str, message: str, status: int = 401, kind: str = "AuthError") -> str:
    return encode(
        Frame("pusher:subscription_error", encode_json({"type": kind, "error": message, "status": status}), channel)
    )


def member_added(channel: str, user_id: str, user_info: Any) -> str:
    body: dict[str, Any] = {"user_id": user_id}
    if user_info is not None:
        body["user_info"] = user_info
    return encode(Frame("pusher_internal:member_added", encode_json(body), channel))


def member_removed(channel: str, user_id: str) -> str:
    return encode(Frame("pusher_internal:member_removed", encode_json({"user_id": user_id}), channel))


def channel_event(channel: str, event: str, data: str, user_id: str | None = None) -> str:
    return encode(Frame(event, data, channel, user_id))


# client -> server


#: what a client event's name starts with: one a client sends over its own connection, on a private or
#: presence channel, relayed to the channel's other members and never back to the sender
CLIENT_EVENT_PREFIX = "client-"


def client_event(channel: str, event: str, data: str) -> str:
    """pusher-js's ``channel.trigger(event, data)``: ``event`` must start with ``client-``."""
    if not event.startswith(CLIENT_EVENT_PREFIX):
        raise ValueError(f"a client event's name starts with {CLIENT_EVENT_PREFIX!r}, got {event!r}")
    return encode(Frame(event, data, channel))


def subscribe(channel: str, auth: str | None = None, channel_data: str | None = None) -> str:
    body: dict[str, Any] = {"channel": channel}
    if auth is not None:
        body["auth"] = auth
    if channel_data is not None:
        body["channel_data"] = channel_data
    return encode(Frame("pusher:subscribe", body))


def unsubscribe(channel: str) -> str:
    return encode(Frame("pusher:unsubscribe", {"channel": channel}))


def client_ping() -> str:
    return encode(Frame("pusher:ping", {}))


def client_pong() -> str:
    return encode(Frame("pusher:pong", {}))


# -- channels ----------------------------------------------------------------------------------


def channel_kind(name: str) -> ChannelKind:
    if name.startswith("private-encrypted-"):
        return "encrypted"
    if name.startswith("private-"):
        return "private"
    if name.startswith("presence-"):
        return "presence"
    return "public"


def validate_channel(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise ProtocolError("Channel name must be a non-empty string")
    if len(name) > MAX_CHANNEL_NAME:
        raise ProtocolError(f"Channel name longer than {MAX_CHANNEL_NAME} characters")
    if not CHANNEL_NAME_RE.match(name):
        raise ProtocolError(f"Invalid channel name {name!r}")
    return name


def validate_event_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise ProtocolError("Event name must be a non-empty string")
    if len(name) > MAX_EVENT_NAME:
        raise ProtocolError(f"Event name longer than {MAX_EVENT_NAME} characters")
    return name


def parse_channel_data(channel_data: object) -> tuple[str, Any]:
    """Presence ``channel_data`` (a JSON string) -> (user_id as a string, user_info or None)."""
    if not isinstance(channel_data, str):
        raise ProtocolError("Presence subscriptions need 'channel_data' (a JSON string)")
    body = data_object(channel_data)
    user_id = body.get("user_id")
    if isinstance(user_id, bool) or not isinstance(user_id, str | int) or user_id == "":
        raise ProtocolError("channel_data needs a non-empty 'user_id'")
    return str(user_id), body.get("user_info")


# -- signatures --------------------------------------------------------------------------------


def hmac_hex(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def channel_string_to_sign(socket_id: str, channel: str, channel_data: str | None = None) -> str:
    return f"{socket_id}:{channel}" if channel_data is None else f"{socket_id}:{channel}:{channel_data}"


def channel_auth(key: str, secret: str, socket_id: str, channel: str, channel_data: str | None = None) -> str:
    """The ``auth`` field of a private or presence subscription: ``<key>:<signature>``."""
    return f"{key}:{hmac_hex(secret, channel_string_to_sign(socket_id, channel, channel_data))}"


def verify_channel_auth(
    auth: object, key: str, secret: str, socket_id: str, channel: str, channel_data: str | None = None
) -> str | None:
    """None if ``auth`` is right, else the reason (as Pusher words it, naming the string to sign)."""
    if not isinstance(auth, str) or ":" not in auth:
        return "Invalid auth: expected '<key>:<signature>'"
    given_key, _, signature = auth.partition(":")
    if given_key != key:
        return f"Invalid key {given_key!r} in auth"
    to_sign = channel_string_to_sign(socket_id, channel, channel_data)
    if not hmac.compare_digest(signature.encode(), hmac_hex(secret, to_sign).encode()):
        return f"Invalid signature: expected HMAC SHA256 hex digest of {to_sign}"
    return None


def body_md5(body: bytes) -> str:
    return hashlib.md5(body).hexdigest()  # the protocol's content digest


def request_string_to_sign(method: str, path: str, params: Mapping[str, str]) -> str:
    """``METHOD\\nPATH\\nk=v&...``: every parameter but auth_signature, keys lower-cased and sorted,
    values as they are (not URL-encoded)."""
    pairs = sorted((k.lower(), v) for k, v in params.items() if k.lower() != "auth_signature")
    return "\n".join((method.upper(), path, "&".join(f"{k}={v}" for k, v in pairs)))


def verify_request(
    key: str, secret: str, method: str, path: str, params: Mapping[str, str], body: bytes, now: float
) -> str | None:
    """None if the request is signed right and fresh, else the reason for the 401."""
    for name in ("auth_key", "auth_timestamp", "auth_version", "auth_signature"):
        if not params.get(name):
            return f"Missing {name}"
    if params["auth_key"] != key:
        return f"Unknown auth_key {params['auth_key']!r}"
    if params["auth_version"] != AUTH_VERSION:
        return f"Unsupported auth_version {params['auth_version']!r}"
    try:
        timestamp = int(params["auth_timestamp"])
    except ValueError:
        return "auth_timestamp is not an integer"
    if abs(now - timestamp) > TIMESTAMP_GRACE_S:
        return (
            f"Timestamp expired: given timestamp ({timestamp}) not within {TIMESTAMP_GRACE_S}s "
            f"of server time ({int(now)})"
        )
    given_md5 = params.get("body_md5")
    if body and given_md5 is None:
        return "Missing body_md5"
    if given_md5 is not None and given_md5 != body_md5(body):
        return "body_md5 does not match the body"
    to_sign = request_string_to_sign(method, path, params)
    if not hmac.compare_digest(params["auth_signature"].encode(), hmac_hex(secret, to_sign).encode()):
        return "Invalid signature: you should have sent HmacSHA256Hex(" + repr(to_sign)[1:-1] + ", your_secret)"
    return None


# -- the client's side of one connection ----------------------------------------------------------


class ClientState(enum.Enum):
    CONNECTING = "waiting for pusher:connection_established"
    SUBSCRIBING = "waiting for the subscription to be confirmed"
    SUBSCRIBED = "subscribed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Established:
    """``pusher:connection_established``: the socket id and the seconds of silence before a client pings."""

    socket_id: str
    activity_timeout: float


@dataclass(frozen=True, slots=True)
class Subscribed:
    channel: str


@dataclass(frozen=True, slots=True)
class SubscriptionRefused:
    """``pusher:subscription_error`` for our channel (``status`` is the auth endpoint's HTTP status)."""

    channel: str
    reason: str
    status: int | None


@dataclass(slots=True)
class ChannelEvent:
    """An event on our channel (not frozen: one per delivery)."""

    channel: str
    event: str
    data: Any
    user_id: str | None


@dataclass(frozen=True, slots=True)
class ServerError:
    """``pusher:error``. ``code`` null: the connection stays; 4000-4399: the close that follows means
    ``close_action(code)``."""

    message: str
    code: int | None

    @property
    def action(self) -> CloseAction | None:
        return close_action(self.code)


ClientEvent = Established | Subscribed | SubscriptionRefused | ChannelEvent | ServerError


class ClientConnection:
    """One client connection subscribed to one channel, run as pusher-js runs it.

    Fed decoded frames (:meth:`receive`), it answers what happened (one event per frame, or None) and queues
    what the client must send (:meth:`data_to_send`): the subscription once the connection is established
    (private and presence auth signed here with the app secret, as an app's auth endpoint would), a pong for
    every ping. Frames that break the handshake raise ProtocolError. A new connection needs a new instance
    (the socket id, and so the auth, change).
    """

    __slots__ = (
        "_outbox",
        "activity_timeout",
        "channel",
        "key",
        "max_activity_timeout",
        "secret",
        "socket_id",
        "state",
        "user_id",
        "user_info",
    )

    def __init__(
        self,
        channel: str,
        *,
        key: str = "",
        secret: str = "",
        user_id: str | int | None = None,
        user_info: Any = None,
        max_activity_timeout: float = ACTIVITY_TIMEOUT_S,
    ) -> None:
        kind = channel_kind(channel)
        if kind == "encrypted":
            raise ValueError("encrypted channels are not supported")
        if kind != "public" and not (key and secret):
            raise ValueError(f"a {kind} channel needs the app key and secret to sign its auth")
        if kind == "presence" and (user_id is None or user_id == ""):
            raise ValueError("a presence channel needs a user id")
        self.channel = channel
        self.key, self.secret = key, secret
        self.user_id, self.user_info = user_id, user_info
        self.max_activity_timeout = max_activity_timeout
        self.state = ClientState.CONNECTING
        self.socket_id = ""
        self.activity_timeout = float(max_activity_timeout)
        self._outbox: list[str] = []

    def receive(self, frame: Frame) -> ClientEvent | None:
        event = frame.event
        if (
            self.state is ClientState.SUBSCRIBED
            and frame.channel == self.channel
            and not event.startswith(("pusher:", "pusher_internal:"))
        ):
            return ChannelEvent(frame.channel, event, frame.data, frame.user_id)
        if event == "pusher:ping":
            self._outbox.append(client_pong())
            return None
        if event == "pusher:error":
            return _server_error(frame.data)
        if self.state is ClientState.CONNECTING:
            if event != "pusher:connection_established":
                self.state = ClientState.FAILED
                raise ProtocolError(f"expected pusher:connection_established, got {event}")
            return self._established(frame.data)
        if frame.channel != self.channel:
            return None  # pongs, and anything about channels we are not on
        if event == "pusher_internal:subscription_succeeded":
            if self.state is ClientState.SUBSCRIBING:
                self.state = ClientState.SUBSCRIBED
                return Subscribed(self.channel)
        elif event == "pusher:subscription_error":
            self.state = ClientState.FAILED
            body = _object_or_none(frame.data)
            if body is None:
                return SubscriptionRefused(self.channel, str(frame.data)[:200], None)
            status = body.get("status")
            reason = body.get("error") or body.get("message") or body.get("type") or body
            return SubscriptionRefused(self.channel, str(reason)[:200], status if type(status) is int else None)
        return None  # member_added / member_removed and the like

    def _established(self, data: Any) -> Established:
        try:
            body = data_object(data)
        except ProtocolError:
            self.state = ClientState.FAILED
            raise
        socket_id = body.get("socket_id")
        if not isinstance(socket_id, str) or not SOCKET_ID_RE.match(socket_id):
            self.state = ClientState.FAILED
            raise ProtocolError(f"connection_established with an invalid socket_id {socket_id!r}")
        timeout = body.get("activity_timeout")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            self.state = ClientState.FAILED
            raise ProtocolError(f"connection_established with an invalid activity_timeout {timeout!r}")
        self.socket_id = socket_id
        self.activity_timeout = float(min(timeout, self.max_activity_timeout))
        self.state = ClientState.SUBSCRIBING
        self._outbox.append(self._subscribe())
        return Established(socket_id, self.activity_timeout)

    def _subscribe(self) -> str:
        kind = channel_kind(self.channel)
        if kind == "public":
            return subscribe(self.channel)
        channel_data = None
        if kind == "presence":
            channel_data = encode_json({"user_id": self.user_id, "user_info": self.user_info})
        return subscribe(
            self.channel, channel_auth(self.key, self.secret, self.socket_id, self.channel, channel_data), channel_data
        )

    def data_to_send(self) -> list[str]:
        """Frames to send now, in order (each is sent once)."""
        out, self._outbox = self._outbox, []
        return out

    @staticmethod
    def ping() -> str:
        """What to send when the line has been quiet for ``activity_timeout``."""
        return client_ping()

    def unsubscribe(self) -> str:
        return unsubscribe(self.channel)


class PlainEventMatcher:
    """Reads, without parsing the whole frame, a frame that is exactly one event on one channel and returns its
    string data; anything else gives None (decode and ``receive`` it then).

    Why: a subscriber's steady state is that one frame, again and again, and building the frame's dict with
    ``json.loads`` is most of its cost. This checks the fixed text around the data (the key order of either
    known server: ``event, channel, data`` or ``event, data, channel``, no spaces) and reads the data with
    the JSON module's own C string scanner (strict, as ``json.loads``), so the result is the one ``decode``
    would give, escapes included. Use it only once subscribed.
    """

    __slots__ = ("_after_data_first", "_after_data_last", "_data_first", "_data_last")

    def __init__(self, channel: str, event: str) -> None:
        name, where = encode_json(event), encode_json(channel)
        self._data_last = f'{{"event":{name},"channel":{where},"data":"'
        self._after_data_last = "}"
        self._data_first = f'{{"event":{name},"data":"'
        self._after_data_first = f',"channel":{where}}}'

    def __call__(self, text: str) -> str | None:
        if text.startswith(self._data_last):
            start, after = len(self._data_last), self._after_data_last
        elif text.startswith(self._data_first):
            start, after = len(self._data_first), self._after_data_first
        else:
            return None
        if not text.endswith(after):
            return None
        try:
            data, end = _scan_json_string(text, start)
        except ValueError:  # not a valid JSON string: the general path reports it
            return None
        return data if end == len(text) - len(after) else None


def _object_or_none(data: Any) -> dict[str, Any] | None:
    try:
        return data_object(data)
    except ProtocolError:
        return None


def _server_error(data: Any) -> ServerError:
    body = _object_or_none(data)
    if body is None:
        return ServerError(str(data)[:200], None)
    code = body.get("code")
    return ServerError(str(body.get("message") or "")[:200], code if type(code) is int else None)
