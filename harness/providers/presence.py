"""Presence members: one connection each that joins a room as a member and reports the member events it
receives, with the kernel's receive time of their bytes (``--presence`` in the todo app).

Each provider's presence is its own protocol (Pusher presence channels, Ably presence ENTER / LEAVE, a
Socket.IO ``presence:join`` on the reference target), but a member is the same everywhere:
connect, join with a member id and info, learn who is there, then hear who comes and goes. The shared
part is here once (:class:`WebSocketMember`: connect on the measuring transport, read the handshake,
then hand every message to the protocol's ``feed`` on the reader callback); a provider's member is the
frames it sends and how it reads the answers. A member keeps no reconnect: a presence member that drops
has left, which is what the other members are told.
"""

from __future__ import annotations

import asyncio
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.net.websocket import WebSocket
from harness.protocols import ably as ably_proto
from harness.protocols import engineio
from harness.protocols import pusher as pusher_proto
from harness.providers.base import Provider

JOIN_TIMEOUT_S = 15.0
#: the Pusher channel a room is (presence channels are ``presence-`` + a name)
PUSHER_PREFIX = "presence-"


class JoinRefused(ConnectionError):
    """The server refused the member (its reason)."""


@dataclass
class MemberHooks:
    """What a member calls back: the members it was told of on joining (id -> info, itself included where
    the protocol lists it), a member added (id, info, receive time ns), a member removed (id, receive time
    ns), and a problem on a live member connection (its reason)."""

    on_listed: Callable[[dict[str, Any]], None]
    on_added: Callable[[str, Any, int], None]
    on_removed: Callable[[str, int], None]
    on_error: Callable[[str], None] = field(default=lambda _reason: None)


class Member(ABC):
    """One presence member. ``join`` returns once the member is present and its list was told."""

    def __init__(self, room: str, member_id: str, info: Any, hooks: MemberHooks) -> None:
        self.room = room
        self.member_id = member_id
        self.info = info
        self.hooks = hooks
        #: when the join request went out (ns since the epoch); 0 until then
        self.join_ns = 0

    def stamp(self) -> None:
        """The join request goes out now: its time goes into the member's info (a dict), where the other
        members read it to time the member_added they get."""
        self.join_ns = time.time_ns()
        if isinstance(self.info, dict):
            self.info["join_us"] = self.join_ns // 1000  # as measure.presence.member_info

    @abstractmethod
    async def join(self) -> None: ...

    @abstractmethod
    async def leave(self) -> None:
        """Leave the room and close the connection (the others are told the member was removed)."""


class WebSocketMember(Member):
    """A member on its own websocket: the connection and its handshake, shared by every protocol."""

    def __init__(self, url: str, room: str, member_id: str, info: Any, hooks: MemberHooks) -> None:
        super().__init__(room, member_id, info, hooks)
        self.url = url
        self.ws: WebSocket | None = None
        self.joined = False

    async def join(self) -> None:
        ws = self.ws = await WebSocket.connect(self.url, timeout=JOIN_TIMEOUT_S)
        ws.counts_shared = False  # no deliveries here: the leave storm must not judge the deliveries' stamps
        try:
            async with asyncio.timeout(JOIN_TIMEOUT_S):
                while not self.joined:
                    data, rx_ns = await ws.receive(JOIN_TIMEOUT_S)
                    self.feed(data, rx_ns)
        except TimeoutError:
            ws.close()
            raise TimeoutError(f"presence: not joined within {JOIN_TIMEOUT_S:g} s") from None
        except BaseException:
            ws.close()
            raise
        ws.deliver_to(self._on_message, self._on_close)

    def _on_message(self, data: str | bytes, rx_ns: int) -> None:
        try:
            self.feed(data, rx_ns)
        except Exception as exc:  # a live member's bad frame is counted, the member stays
            self.hooks.on_error(f"presence: {type(exc).__name__}: {str(exc)[:120]}")

    def _on_close(self, _code: int | None, reason: str) -> None:
        if self.joined:
            self.hooks.on_error(f"presence: member connection ended: {reason[:120]}")
        self.joined = False

    def send(self, text: str) -> None:
        if self.ws is not None:
            self.ws.send_text(text)

    @abstractmethod
    def feed(self, data: str | bytes, rx_ns: int) -> None:
        """One message from the server: set ``joined`` once the member is present (after ``on_listed``),
        tell the hooks of member events, raise JoinRefused for a refusal."""

    def goodbye(self) -> list[str]:
        """The frames that take the member out of the room before the connection closes."""
        return []

    async def leave(self) -> None:
        ws, self.ws = self.ws, None
        self.joined = False
        if ws is None:
            return
        for frame in self.goodbye():
            ws.send_text(frame)
        ws.close()


class PusherMember(WebSocketMember):
    """A member of Pusher presence channel ``presence-<room>``: channel_data ``{user_id, user_info}`` signed
    as an app's auth endpoint signs it; ``pusher_internal:subscription_succeeded`` lists the members,
    ``pusher_internal:member_added`` / ``member_removed`` follow."""

    def __init__(self, provider: Provider, room: str, member_id: str, info: Any, hooks: MemberHooks) -> None:
        endpoints = provider.endpoints  # type: ignore[attr-defined]
        super().__init__(endpoints.ws_url, room, member_id, info, hooks)
        self.channel = PUSHER_PREFIX + room
        self.client = pusher_proto.ClientConnection(
            self.channel, key=endpoints.key, secret=endpoints.secret, user_id=member_id, user_info=info
        )

    def feed(self, data: str | bytes, rx_ns: int) -> None:
        frame = pusher_proto.decode(data)
        if frame.event == "pusher:connection_established":
            self.stamp()  # the subscription, channel_data included, is built from the info as this is received
        event = self.client.receive(frame)
        for text in self.client.data_to_send():
            self.send(text)
        if isinstance(event, pusher_proto.SubscriptionRefused):
            raise JoinRefused(f"pusher: {self.channel} refused: {event.reason}")
        if isinstance(event, pusher_proto.ServerError) and event.code is not None:
            raise JoinRefused(f"pusher: error {event.code}: {event.message}")
        if frame.channel != self.channel:
            return
        if isinstance(event, pusher_proto.Subscribed):
            presence = pusher_proto.data_object(frame.data).get("presence")
            members = presence.get("hash") if isinstance(presence, dict) else None
            self.hooks.on_listed(dict(members) if isinstance(members, dict) else {})
            self.joined = True
        elif frame.event == "pusher_internal:member_added":
            body = pusher_proto.data_object(frame.data)
            self.hooks.on_added(str(body.get("user_id")), body.get("user_info"), rx_ns)
        elif frame.event == "pusher_internal:member_removed":
            self.hooks.on_removed(str(pusher_proto.data_object(frame.data).get("user_id")), rx_ns)

    def goodbye(self) -> list[str]:
        return [self.client.unsubscribe()]


class SocketIOMember(WebSocketMember):
    """A member on the Socket.IO reference target: ``presence:join`` ``{room, id, info}`` acked with the
    members present, then ``presence:member_added`` / ``presence:member_removed`` (targets/socketio)."""

    JOIN_ACK = 1

    def __init__(self, provider: Provider, room: str, member_id: str, info: Any, hooks: MemberHooks) -> None:
        super().__init__(provider.websocket_url, room, member_id, info, hooks)  # type: ignore[attr-defined]
        self.session = engineio.ClientSession()
        self._asked = False

    def feed(self, data: str | bytes, rx_ns: int) -> None:
        events = self.session.feed_text(data) if isinstance(data, str) else self.session.feed_binary(data)
        for text in self.session.data_to_send():
            self.send(text)
        if not self._asked and self.session.connected():
            self._asked = True
            self.stamp()
            request = {"room": self.room, "id": self.member_id, "info": self.info}
            self.send(engineio.encode_event("presence:join", request, ack_id=self.JOIN_ACK))
        for event in events:
            if isinstance(event, engineio.ConnectError):
                raise JoinRefused(f"socket.io: namespace {event.namespace} refused: {event.reason}")
            if isinstance(event, engineio.Ack) and event.ack_id == self.JOIN_ACK:
                answer = event.args[0] if event.args else None
                if not isinstance(answer, dict) or not isinstance(answer.get("members"), dict):
                    raise JoinRefused(f"socket.io: presence:join answered {str(answer)[:120]}")
                self.hooks.on_listed(answer["members"])
                self.joined = True
            elif isinstance(event, engineio.Event) and event.args and isinstance(event.args[0], dict):
                body = event.args[0]
                if body.get("room") != self.room:
                    continue
                if event.name == "presence:member_added":
                    self.hooks.on_added(str(body.get("id")), body.get("info"), rx_ns)
                elif event.name == "presence:member_removed":
                    self.hooks.on_removed(str(body.get("id")), rx_ns)

    def goodbye(self) -> list[str]:
        return [engineio.encode_event("presence:leave", {"room": self.room}), engineio.encode_disconnect()]


class AblyMember(WebSocketMember):
    """A member of Ably channel ``<room>``: connect with the member id as clientId (JSON protocol), ATTACH
    (a SYNC lists who is present when ATTACHED says HAS_PRESENCE), then PRESENCE ENTER with the info as
    JSON data; joined at its ACK. PRESENCE messages with ENTER / LEAVE follow; the member's own (Ably echoes
    presence to its sender) are not news to it and are skipped."""

    ENTER, LEAVE = 2, 3  # PresenceMessage actions (TP2)

    def __init__(self, provider: Provider, room: str, member_id: str, info: Any, hooks: MemberHooks) -> None:
        base = provider._ws_url.split("?", 1)[0]  # type: ignore[attr-defined]
        query = ably_proto.connect_query(provider.key, "json", client_id=member_id)  # type: ignore[attr-defined]
        super().__init__(f"{base}?{query}", room, member_id, info, hooks)
        self._syncing = False
        self._listed: dict[str, Any] = {}

    def feed(self, data: str | bytes, rx_ns: int) -> None:
        msg = ably_proto.decode(data, "json")
        action, channel = msg.get("action"), msg.get("channel")
        if action == ably_proto.Action.CONNECTED:
            self.send(json.dumps({"action": ably_proto.Action.ATTACH, "channel": self.room}))
        elif action in (ably_proto.Action.ERROR, ably_proto.Action.NACK) or (
            action == ably_proto.Action.DETACHED and channel == self.room
        ):
            raise JoinRefused(f"ably: {str(msg.get('error'))[:160]}")
        elif action == ably_proto.Action.ATTACHED and channel == self.room:
            self._syncing = bool(int(msg.get("flags", 0)) & ably_proto.Flag.HAS_PRESENCE)
            if not self._syncing:
                self._enter()
        elif action == ably_proto.Action.SYNC and channel == self.room:
            for item in msg.get("presence") or []:
                if item.get("clientId") != self.member_id:
                    self._listed[str(item.get("clientId"))] = _ably_data(item)
            if str(msg.get("channelSerial", "")).endswith(":"):  # the last page (RTP18b)
                self._syncing = False
                self._enter()
        elif action == ably_proto.Action.ACK and msg.get("msgSerial") == 0 and not self.joined:
            self.hooks.on_listed(self._listed)
            self.joined = True
        elif action == ably_proto.Action.PRESENCE and channel == self.room:
            for item in msg.get("presence") or []:
                member = str(item.get("clientId"))
                if member == self.member_id:
                    continue
                if item.get("action") == self.ENTER:
                    self.hooks.on_added(member, _ably_data(item), rx_ns)
                elif item.get("action") == self.LEAVE:
                    self.hooks.on_removed(member, rx_ns)

    def _enter(self) -> None:
        self.stamp()
        item = {"action": self.ENTER, "clientId": self.member_id, "data": json.dumps(self.info), "encoding": "json"}
        self.send(
            json.dumps({"action": ably_proto.Action.PRESENCE, "channel": self.room, "msgSerial": 0, "presence": [item]})
        )

    def goodbye(self) -> list[str]:
        item = {"action": self.LEAVE, "clientId": self.member_id}
        leave = {"action": ably_proto.Action.PRESENCE, "channel": self.room, "msgSerial": 1, "presence": [item]}
        return [json.dumps(leave), json.dumps({"action": ably_proto.Action.CLOSE})]


def _ably_data(item: dict[str, Any]) -> Any:
    """A presence message's data with its encoding undone (``json``: what ably-js sends for an object)."""
    data, _rest = ably_proto.decode_data(item.get("data"), str(item.get("encoding") or ""))
    return data


MemberClass = Callable[[Provider, str, str, Any, MemberHooks], Member]
#: provider name -> its member; a provider not named has no presence (``--presence`` is refused)
MEMBERS: dict[str, MemberClass] = {"ably": AblyMember, "pusher": PusherMember, "socketio": SocketIOMember}


def supports(provider: str) -> bool:
    return provider in MEMBERS


def open_member(provider: Provider, room: str, member_id: str, info: Any, hooks: MemberHooks) -> Member:
    """The provider's member (not joined yet); KeyError for a provider without presence."""
    return MEMBERS[provider.name](provider, room, member_id, info, hooks)
