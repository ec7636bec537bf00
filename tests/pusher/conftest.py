"""Shared fixtures for the Pusher suites: the reference target on port 0 and a raw protocol client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import aiohttp
import pytest

from harness.protocols import pusher as proto
from tests.helpers import TargetProcess, start_target

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
            await self.send(proto.subscribe(channel, proto.channel_auth(KEY, secret, self.socket_id, channel,
                                                                        channel_data), channel_data))
        while True:
            frame = await self.next()
            if frame.channel == channel and frame.event in ("pusher_internal:subscription_succeeded",
                                                            "pusher:subscription_error"):
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


def signed(method: str, path: str, body: bytes = b"", *, secret: str = SECRET, timestamp: float | None = None,
           params: dict[str, str] | None = None) -> dict[str, str]:
    return proto.sign_request(KEY, secret, method, path, body, int(time.time() if timestamp is None else timestamp),
                              params)
