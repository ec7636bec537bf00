"""Shared fixtures for the Pusher suites: the reference target on port 0 (a process, or in this process for
tests that cut connections from the server side), a raw protocol client, and an inbox of what a subscriber's
hooks saw."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web

from harness.protocols import pusher as proto
from harness.providers.base import SubscriberHooks
from harness.providers.pusher import PusherProvider
from targets.base import Faults
from targets.pusher.server import TARGET, PusherTarget, build_app
from tests.helpers import TargetProcess, start_target
from tests.pusher.helpers import sign_request

T = TypeVar("T")
APP_ID, KEY, SECRET = "4242", "test-key", "test-secret"
CREDENTIALS = ("--app-id", APP_ID, "--key", KEY, "--secret", SECRET)


def run(coro: Coroutine[Any, Any, T], timeout: float = 20) -> T:
    """Run one test's async body, bounded (no pytest-asyncio here)."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture(scope="module")
def target() -> Iterator[tuple[str, TargetProcess]]:
    url, proc = start_target("targets.pusher", "--port", "0", *CREDENTIALS)
    try:
        yield url, proc
    finally:
        proc.stop()


def ws_url(http_url: str, key: str = KEY, query: str = "?protocol=7&client=test&version=1") -> str:
    return http_url.replace("http://", "ws://", 1) + f"/app/{key}{query}"


class Client:
    """A raw websocket speaking the protocol through harness.protocols.pusher, for exact assertions."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.socket_id = ""
        self.seen: list[proto.Frame] = []

    @classmethod
    async def connect(cls, session: aiohttp.ClientSession, http_url: str, key: str = KEY) -> Client:
        client = cls(await session.ws_connect(ws_url(http_url, key)))
        established = await client.next()
        assert established.event == "pusher:connection_established", established
        client.socket_id = proto.data_object(established.data)["socket_id"]
        return client

    async def next(self, timeout: float = 5) -> proto.Frame:
        msg = await self.ws.receive(timeout=timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
        frame = proto.decode(msg.data)
        self.seen.append(frame)
        return frame

    async def expect(self, event: str, channel: str | None = None, timeout: float = 5) -> proto.Frame:
        """The next frame with this event (and channel); others are kept in ``seen``."""
        deadline = time.monotonic() + timeout
        while True:
            frame = await self.next(max(0.01, deadline - time.monotonic()))
            if frame.event == event and (channel is None or frame.channel == channel):
                return frame

    async def send(self, text: str) -> None:
        await self.ws.send_str(text)

    async def subscribe(self, channel: str, *, secret: str = SECRET, user_id: str | None = None) -> proto.Frame:
        """Subscribe (signing private/presence auth) and return the server's answer for that channel."""
        kind = proto.channel_kind(channel)
        if kind == "public":
            await self.send(proto.subscribe(channel))
        else:
            channel_data = proto.encode_json({"user_id": user_id, "user_info": {"n": user_id}}) if user_id else None
            await self.send(
                proto.subscribe(
                    channel, proto.channel_auth(KEY, secret, self.socket_id, channel, channel_data), channel_data
                )
            )
        while True:
            frame = await self.next()
            if frame.channel == channel and frame.event in (
                "pusher_internal:subscription_succeeded",
                "pusher:subscription_error",
            ):
                return frame

    async def roundtrip(self) -> list[proto.Frame]:
        """Ping and collect every frame up to the pong: what the server sent us before it."""
        await self.send(proto.client_ping())
        before: list[proto.Frame] = []
        while (frame := await self.next()).event != "pusher:pong":
            before.append(frame)
        return before

    async def close(self) -> None:
        await self.ws.close()


def signed(
    method: str,
    path: str,
    body: bytes = b"",
    *,
    secret: str = SECRET,
    timestamp: float | None = None,
    params: dict[str, str] | None = None,
) -> dict[str, str]:
    return sign_request(KEY, secret, method, path, body, int(time.time() if timestamp is None else timestamp), params)


def options(host: str | None = None, **overrides: Any) -> argparse.Namespace:
    values: dict[str, Any] = {
        "host": host,
        "channel_type": "public",
        "event": "rtbench",
        "app_id": "",
        "key": "",
        "secret": "",
        "cluster": "",
    }
    values.update(overrides)
    return argparse.Namespace(**values)


def provider_for(url: str, **overrides: Any) -> PusherProvider:
    creds = {"app_id": APP_ID, "key": KEY, "secret": SECRET}
    creds.update(overrides)
    return PusherProvider(url, options(url, **creds))


class Inbox:
    """Everything a subscriber's hooks reported, with a way to wait for a condition on it."""

    def __init__(self) -> None:
        self.items: list[object] = []
        self.rx_ns: list[int] = []
        self.handled_ns: list[int] = []
        self.errors: list[str] = []
        self.drops = 0
        self.resubscribes = 0
        self.reconnect_ns: list[int] = []
        self.changed = asyncio.Event()
        self.resubscribed = asyncio.Event()
        self.dropped = asyncio.Event()

    def hooks(self) -> SubscriberHooks:
        def on_data(data: object, rx_ns: int) -> None:
            self.handled_ns.append(time.time_ns())
            self.items.append(data)
            self.rx_ns.append(rx_ns)
            self.changed.set()

        def on_drop() -> None:
            self.drops += 1
            self.dropped.set()
            self.changed.set()

        def on_resubscribed() -> None:
            self.resubscribes += 1
            self.resubscribed.set()
            self.changed.set()

        def on_error(reason: str) -> None:
            self.errors.append(reason)
            self.changed.set()

        def on_reconnect_ns(took_ns: int) -> None:
            self.reconnect_ns.append(took_ns)
            self.changed.set()

        return SubscriberHooks(
            on_data=on_data,
            on_drop=on_drop,
            on_resubscribed=on_resubscribed,
            on_error=on_error,
            on_reconnect_ns=on_reconnect_ns,
        )

    async def until(self, condition: Callable[[], bool], timeout: float = 5) -> None:
        async def wait() -> None:
            while not condition():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), timeout)

    async def wait_for(self, count: int, timeout: float = 5) -> list[object]:
        await self.until(lambda: len(self.items) >= count, timeout)
        return self.items


@contextlib.asynccontextmanager
async def serving(app: web.Application, ssl_context: Any = None) -> AsyncIterator[str]:
    """Serve ``app`` in this loop on 127.0.0.1, port 0; yields its base URL."""
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def target_here(ssl_context: Any = None, **args: Any) -> AsyncIterator[tuple[str, PusherTarget]]:
    """The reference target in this process, so a test can cut its connections as an operator would."""
    namespace = argparse.Namespace(app_id=APP_ID, key=KEY, secret=SECRET, **args)
    app = build_app(namespace, Faults())
    async with serving(app, ssl_context) as url:
        yield url, app[TARGET]
