"""Socket.IO over python-socketio's AsyncClient (websocket transport, one aiohttp session per process).

Works against any Engine.IO v4 server. With one channel it uses the classic ``message`` broadcast, the
only thing a plain Node server (``socket.on('message', d => io.emit('message', d))``) understands; with
several channels it joins rooms with a ``subscribe`` event and publishes with ``publish``, as the
reference target does.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import aiohttp
import socketio

from harness.providers.base import (
    Provider,
    ProviderConfigError,
    PublisherHandle,
    SubscriberHandle,
    SubscriberHooks,
)
from harness.providers.http import shared_session

CONNECT_TIMEOUT_S = 15.0


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

    async def close(self) -> None:
        if self.client is not None:
            await self.client.disconnect()


class SocketIOProvider(Provider):
    name = "socketio"
    official_client = "python-socketio AsyncClient"
    target_module = "targets.socketio"
    schemes = ("http", "https", "ws", "wss")

    def __init__(self, host: str, options: argparse.Namespace) -> None:
        super().__init__(host.replace("ws://", "http://", 1).replace("wss://", "https://", 1), options)
        self.rooms = int(options.channels) > 1

    @classmethod
    def add_arguments(cls, group: Any) -> None:
        group.add_argument("--publish-via", choices=("socket", "http"), default="socket",
                           help="Socket.IO: publish with a socket emit, or POST /api/publish on the app")
        group.add_argument("--event", default="message",
                           help="event name subscribers listen to and publishers emit (default: message)")
        group.add_argument("--socketio-path", default="socket.io", help="Socket.IO: the server's path")

    @classmethod
    def validate(cls, options: argparse.Namespace) -> None:
        if not str(options.event).strip():
            raise ProviderConfigError("--event must not be empty")

    async def _client(self, session: aiohttp.ClientSession) -> socketio.AsyncClient:
        return socketio.AsyncClient(reconnection=True, reconnection_delay=0.5, reconnection_delay_max=5,
                                    handle_sigint=False, http_session=session, ssl_verify=True)

    async def _connect(self, client: socketio.AsyncClient) -> None:
        await client.connect(self.host, transports=["websocket"], socketio_path=self.options.socketio_path,
                             wait_timeout=CONNECT_TIMEOUT_S)

    async def open_subscriber(self, channel: str, hooks: SubscriberHooks) -> SubscriberHandle:
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
        client.on(self.options.event, lambda data: hooks.on_data(data, time.time_ns()))
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
