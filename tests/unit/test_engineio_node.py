"""The official server judges the codec: raw websockets to the plain Node socket.io 4 broadcast server,
every frame through :class:`ClientSession`, nothing from python-socketio in between."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from websockets.asyncio.client import ClientConnection, connect

from harness.protocols.engineio import (
    ClientEvent,
    ClientSession,
    Connected,
    ConnectError,
    Event,
    Opened,
    Ping,
    encode_event,
    websocket_url,
)
from tests.helpers import node_available, start_target

pytestmark = [
    pytest.mark.node,
    pytest.mark.skipif(not node_available(), reason="tests/node/node_modules missing: run `npm ci` in tests/node"),
    pytest.mark.timeout(60),
]

PROBE = 'rtb1|run-1|pub-0|1|1712345678901234567|héllo "quoted" \\ back'


class Client:
    """A raw websocket driven by the codec: records frames as received, sends what the session asks."""

    def __init__(self, ws: ClientConnection, session: ClientSession) -> None:
        self.ws = ws
        self.session = session
        self.frames: list[str] = []

    async def next_events(self) -> list[ClientEvent]:
        """Events of the next frame that holds any, answering pings on the way."""
        while True:
            frame = await self.ws.recv()
            assert isinstance(frame, str), f"binary frame from the server: {frame!r}"
            self.frames.append(frame)
            events = self.session.feed_text(frame)
            for text in self.session.data_to_send():
                await self.ws.send(text)
            if events and not isinstance(events[0], Ping):
                return events


@asynccontextmanager
async def client(
    url: str, namespaces: tuple[str, ...] = ("/",), auth: dict[str, str] | None = None
) -> AsyncIterator[Client]:
    async with connect(websocket_url(url)) as ws:
        yield Client(ws, ClientSession(namespaces, auth))


@pytest.fixture(scope="module")
def node_url() -> Iterator[str]:
    url, proc = start_target("socketio_broadcast_server.js", "0")
    try:
        yield url
    finally:
        assert proc.stop() == 0


async def handshake(c: Client) -> Opened:
    (opened,) = await c.next_events()
    assert isinstance(opened, Opened)
    return opened


def test_handshake_event_broadcast_through_the_codec(node_url: str) -> None:
    async def scenario() -> None:
        async with client(node_url) as a, client(node_url, auth={"token": "t"}) as b:
            for c in (a, b):
                opened = await handshake(c)
                # node socket.io 4 defaults, as sent on a websocket-only session (no upgrades)
                hs = opened.handshake
                assert (hs.upgrades, hs.ping_interval_ms, hs.ping_timeout_ms, hs.max_payload) == (
                    (),
                    25000,
                    20000,
                    1000000,
                )
                (connected,) = await c.next_events()
                assert isinstance(connected, Connected) and connected.namespace == "/" and connected.sid
                assert c.session.connected()
            assert a.frames[1] != b.frames[1]  # each its own Socket.IO sid

            sent = encode_event("message", PROBE)
            await a.ws.send(sent)
            for c in (a, b):
                assert await c.next_events() == [Event("message", [PROBE])]
                assert c.frames[-1] == sent  # JSON.stringify's bytes are ours: the encoder matches

    asyncio.run(asyncio.wait_for(scenario(), 20))


def test_unknown_namespace_is_refused_with_connect_error(node_url: str) -> None:
    async def scenario() -> None:
        async with client(node_url, namespaces=("/", "/nope")) as c:
            await handshake(c)
            events = [*(await c.next_events()), *(await c.next_events())]
            refused = [e for e in events if isinstance(e, ConnectError)]
            assert refused == [ConnectError("Invalid namespace", "/nope")]
            assert [e.namespace for e in events if isinstance(e, Connected)] == ["/"]
            assert c.session.sids.keys() == {"/"}

    asyncio.run(asyncio.wait_for(scenario(), 20))
