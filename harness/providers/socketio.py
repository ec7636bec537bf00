"""Socket.IO: lean Engine.IO v4 / Socket.IO v5 subscribers on the measuring transport (the default), or
python-socketio's AsyncClient with ``--client official``; publishing through python-socketio.

Lean subscribers (:class:`LeanSocketIOSubscriber`) read their websocket on the loop's reader with kernel
receive timestamps and decode frames with :mod:`harness.protocols.engineio` (~1.5 µs per event, where the
official client spends ~70 µs and timestamps in its callback). They reconnect like the official client as
configured here (0.5 s doubling to 5 s, for ever), and treat a server that stops pinging for its
pingInterval + pingTimeout as gone, as socket.io-client does.

Works against any Engine.IO v4 server. With one channel it uses the classic ``message`` broadcast, the
only thing a plain Node server (``socket.on('message', d => io.emit('message', d))``) understands; with
several channels it joins rooms with a ``subscribe`` event and publishes with ``publish``, as the
reference target does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import time
from typing import Any

import aiohttp
import socketio

from harness.net.reconnect import Backoff, GiveUp
from harness.net.websocket import WebSocket
from harness.protocols import engineio
from harness.providers.base import (
    BrowserPage,
    OnData,
    Provider,
    PublisherHandle,
    SubscriberHandle,
    SubscriberHooks,
    listened_events,
)
from harness.providers.http import shared_session
from harness.providers.lean import Connection, LeanSubscriber, Sweeper

CONNECT_TIMEOUT_S = 15.0
SWEEP_S = 1.0
#: how long closing a publisher waits for its emitted packets to be written
FLUSH_TIMEOUT_S = 1.0


class LeanSocketIOSubscriber(LeanSubscriber):
    backoff = Backoff(first_s=0.5, max_s=5.0)

    def __init__(self, provider: SocketIOProvider, channel: str, hooks: SubscriberHooks) -> None:
        super().__init__(hooks, CONNECT_TIMEOUT_S)
        self.provider = provider
        self.channel = channel
        self.events = listened_events(provider.options)
        self.ws: WebSocket | None = None
        self.session = engineio.ClientSession()
        self.silence_limit_ns = 0
        self._ack_ids = itertools.count(1)

    async def connect_and_subscribe(self) -> Connection:
        ws = await self.open_websocket(self.provider.websocket_url, timeout=CONNECT_TIMEOUT_S)
        session = engineio.ClientSession()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                while not session.connected():
                    await self._handshake_step(ws, session, None)
                if self.provider.rooms:
                    ack_id = next(self._ack_ids)
                    ws.send_text(engineio.encode_event("subscribe", self.channel, ack_id=ack_id))
                    while not await self._handshake_step(ws, session, ack_id):
                        pass
        except BaseException:
            ws.close()
            raise
        assert session.handshake is not None
        self.silence_limit_ns = int(session.handshake.ping_deadline_s * 1e9)
        self.ws, self.session = ws, session
        ws.deliver_to(self._on_message, self._on_close)
        self.provider.live.add(self)
        return ws

    async def _handshake_step(self, ws: WebSocket, session: engineio.ClientSession, ack_id: int | None) -> bool:
        """Read one frame of the handshake; True once the ack ``ack_id`` arrived. Deliveries that come
        before the subscription is confirmed are recorded (accounting counts them as expected)."""
        data, rx_ns = await ws.receive(CONNECT_TIMEOUT_S)
        events = session.feed_text(data) if isinstance(data, str) else session.feed_binary(data)
        for frame in session.data_to_send():
            ws.send_text(frame)
        acked = False
        for event in events:
            if isinstance(event, engineio.ConnectError):
                raise GiveUp(f"socket.io: namespace {event.namespace} refused: {event.reason}")
            if isinstance(event, engineio.Closed | engineio.Disconnected):
                raise ConnectionError("socket.io: the server closed the session during the handshake")
            if isinstance(event, engineio.Ack) and event.ack_id == ack_id:
                acked = True
            elif isinstance(event, engineio.Event) and event.name in self.events and event.args:
                self.hooks.on_data(event.args[0], rx_ns)
        return acked

    def _on_message(self, data: str | bytes, rx_ns: int) -> None:
        """The hot path: one frame, usually ``42["message","rtb1|..."]``."""
        try:
            events = self.session.feed_text(data) if type(data) is str else self.session.feed_binary(data)  # type: ignore[arg-type]
        except engineio.ProtocolError as exc:
            self.hooks.on_error(f"socket.io: {exc.reason}")
            return
        for event in events:
            if type(event) is engineio.Event:
                if event.name in self.events and event.args:
                    self.hooks.on_data(event.args[0], rx_ns)
            elif type(event) is engineio.Ping:
                for frame in self.session.data_to_send():
                    self.send(frame)
            elif type(event) is engineio.Closed or type(event) is engineio.Disconnected:
                self._drop("socket.io: the server ended the session")

    def send(self, text: str) -> None:
        if self.ws is not None:
            self.ws.send_text(text)

    def _on_close(self, _code: int | None, reason: str) -> None:
        self._drop(f"socket.io: {reason}")

    def _drop(self, reason: str) -> None:
        ws, self.ws = self.ws, None
        self.provider.live.discard(self)
        if ws is not None:
            ws.close()
        self.connection_ended(reason)

    def check_alive(self, now_ns: int) -> None:
        """socket.io-client's rule: no ping (here: nothing at all) for pingInterval + pingTimeout -> gone."""
        ws = self.ws
        if ws is not None and self.silence_limit_ns and now_ns - ws.last_rx_ns > self.silence_limit_ns:
            self._drop(f"socket.io: no ping from the server for {self.silence_limit_ns / 1e9:g} s")

    async def say_goodbye(self, connection: Connection) -> None:
        self.provider.live.discard(self)
        if self.ws is not None and self.session.connected():
            self.ws.send_text(engineio.encode_disconnect())
        self.ws = None


class SocketIOSubscriber(SubscriberHandle):
    def __init__(self, client: socketio.AsyncClient) -> None:
        self.client = client
        self.closing = False

    async def close(self) -> None:
        self.closing = True
        await self.client.disconnect()


class SocketIOPublisher(PublisherHandle):
    def __init__(self, provider: SocketIOProvider, client: socketio.AsyncClient | None) -> None:
        self.provider = provider
        self.client = client

    async def publish(self, channel: str, text: str) -> None:
        event = self.provider.options.event
        if self.client is None:
            body = {"channel": channel if self.provider.rooms else None, "event": event, "data": text}
            session = await shared_session()
            async with session.post(f"{self.provider.host}/api/publish", json=body) as resp:
                if resp.status >= 300:
                    raise RuntimeError(f"POST /api/publish answered HTTP {resp.status}")
        elif self.provider.rooms:
            await self.client.emit("publish", {"channel": channel, "event": event, "data": text})
        else:
            await self.client.emit(event, text)

    async def watch_own(self, channel: str, on_data: OnData) -> bool:
        """The publisher's python-socketio connection hears what the server emits to it (``io.emit`` includes
        the sender; a room it never joined does not)."""
        if self.client is None:
            return False
        self.client.on(str(self.provider.options.event), lambda data: on_data(data, time.time_ns()))
        return True

    async def close(self) -> None:
        """What was emitted goes out before the goodbye: python-socketio's ``disconnect`` closes the websocket
        at once, dropping packets its writer has not sent yet (the last publishes of every run)."""
        if self.client is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.client.eio.queue.join(), FLUSH_TIMEOUT_S)
            await self.client.disconnect()


#: a browser probe's subscription (``BrowserPage``): the official client as an app uses it
SOCKETIO_PAGE = """
const socket = io(cfg.url, {path: cfg.path, transports: ["websocket"]});
socket.on(cfg.event, (data) => rtb.deliver(data));
socket.on("connect", async () => {
  if (cfg.rooms) {
    try { await socket.timeout(30000).emitWithAck("subscribe", cfg.channel); }
    catch (e) { rtb.error("subscribe failed: " + e.message); return; }
  }
  rtb.subscribed();
});
socket.on("disconnect", () => rtb.dropped());
socket.on("connect_error", (e) => rtb.error("connect_error: " + e.message));
"""


class SocketIOProvider(Provider):
    name = "socketio"
    browser_bundle = "socket.io-client/dist/socket.io.min.js"
    official_client = "python-socketio AsyncClient"
    target_module = "targets.socketio"
    schemes = ("http", "https", "ws", "wss")
    event_default = "message"

    def __init__(self, host: str, options: argparse.Namespace) -> None:
        super().__init__(host.replace("ws://", "http://", 1).replace("wss://", "https://", 1), options)
        self.rooms = int(options.channels) > 1
        self.live: Sweeper[LeanSocketIOSubscriber] = Sweeper(SWEEP_S)

    @property
    def websocket_url(self) -> str:
        return engineio.websocket_url(self.host, str(self.options.socketio_path))

    @classmethod
    def add_arguments(cls, group: Any) -> None:
        super().add_arguments(group)
        group.add_argument(
            "--publish-via",
            choices=("socket", "http"),
            default="socket",
            help="Socket.IO: publish with a socket emit, or POST /api/publish on the app",
        )
        group.add_argument("--socketio-path", default="socket.io", help="Socket.IO: the server's path")

    async def _client(self, session: aiohttp.ClientSession) -> socketio.AsyncClient:
        return socketio.AsyncClient(
            reconnection=True,
            reconnection_delay=0.5,
            reconnection_delay_max=5,
            handle_sigint=False,
            http_session=session,
            ssl_verify=True,
        )

    async def _connect(self, client: socketio.AsyncClient) -> None:
        await client.connect(
            self.host,
            transports=["websocket"],
            socketio_path=self.options.socketio_path,
            wait_timeout=CONNECT_TIMEOUT_S,
        )

    def browser_page(self, channel: str) -> BrowserPage:
        """socket.io-client over websocket only, joining ``channel``'s room when the run has several."""
        path = "/" + str(self.options.socketio_path).strip("/") + "/"
        config = {"url": self.host, "path": path, "event": str(self.options.event), "rooms": self.rooms}
        return BrowserPage(self.browser_bundle or "", SOCKETIO_PAGE, {**config, "channel": channel})

    async def open_subscriber(self, channel: str, hooks: SubscriberHooks) -> SubscriberHandle:
        if self.use_official_client():
            return await self._open_official_subscriber(channel, hooks)
        subscriber = LeanSocketIOSubscriber(self, channel, hooks)
        await subscriber.start()
        return subscriber

    async def aclose(self) -> None:
        await self.live.aclose()

    async def _open_official_subscriber(self, channel: str, hooks: SubscriberHooks) -> SubscriberHandle:
        client = await self._client(await shared_session())
        handle = SocketIOSubscriber(client)
        connected_once = False

        async def join() -> None:
            if self.rooms:
                await client.call("subscribe", channel, timeout=CONNECT_TIMEOUT_S)

        async def on_connect() -> None:
            if connected_once:  # python-socketio reconnected by itself: rooms are gone, join again
                await join()
                hooks.on_resubscribed()

        def on_disconnect(*_reason: Any) -> None:
            if not handle.closing:
                hooks.on_drop()

        client.on("connect", on_connect)
        client.on("disconnect", on_disconnect)
        for name in listened_events(self.options):
            client.on(name, lambda data: hooks.on_data(data, time.time_ns()))
        try:
            await self._connect(client)
            await join()
        except BaseException:
            handle.closing = True
            await client.disconnect()
            raise
        connected_once = True
        return handle

    async def open_publisher(self) -> PublisherHandle:
        if self.options.publish_via == "http":
            return SocketIOPublisher(self, None)
        client = await self._client(await shared_session())
        await self._connect(client)
        return SocketIOPublisher(self, client)


PROVIDER = SocketIOProvider
