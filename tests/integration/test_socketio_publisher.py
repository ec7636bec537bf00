"""The harness's Socket.IO publisher against the real target: what it emitted reaches the server even when
it closes at once (the end of every run), so the last messages of a run are never lost by the harness."""

from __future__ import annotations

import asyncio

import pytest
import socketio

from harness.measure import probe
from harness.providers import socketio as provider_mod
from harness.providers.http import close_shared_session
from tests.generators import provider_options
from tests.helpers import running_target

pytestmark = pytest.mark.timeout(60)

BURST = 200


@pytest.mark.parametrize("argv", [(), ("--channels", "2")], ids=["broadcast", "rooms"])
def test_a_burst_emitted_just_before_close_all_arrives(argv: tuple[str, ...]) -> None:
    async def body(url: str) -> int:
        options = provider_options("socketio", url, *argv)
        listener = socketio.AsyncClient(reconnection=False)
        got: list[str] = []
        all_in = asyncio.Event()
        channel = probe.channel_name(0)

        def on_message(data: str) -> None:
            got.append(data)
            if len(got) == BURST:
                all_in.set()

        listener.on("message", on_message)
        await listener.connect(url, transports=["websocket"])
        assert await listener.call("subscribe", channel) is True
        provider = provider_mod.SocketIOProvider(url, options)
        publisher = await provider.open_publisher()
        for seq in range(BURST):
            await publisher.publish(channel, f"m{seq}")
        await publisher.close()  # at once, as a run's end does
        await provider.aclose()
        await close_shared_session()
        try:
            await asyncio.wait_for(all_in.wait(), 10)
        except TimeoutError:
            pass  # the comparison below says what is missing
        finally:
            await listener.disconnect()
        assert got == [f"m{seq}" for seq in range(BURST)]
        return len(got)

    with running_target("targets.socketio", "--port", "0") as url:
        assert asyncio.run(body(url)) == BURST
