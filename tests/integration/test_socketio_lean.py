"""The lean Socket.IO subscriber against misbehaving servers: every failure is counted with a reason, nothing
hangs past the connect timeout, and a server that goes quiet or drops us is left and rejoined."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import uvloop
from aiohttp import web

from harness.measure import probe
from harness.providers import socketio as provider_mod
from harness.providers.base import SubscriberHooks
from tests.generators import provider_options

OPEN = "0" + json.dumps({"sid": "s1", "upgrades": [], "pingInterval": 300, "pingTimeout": 200, "maxPayload": 10**6})
Script = Callable[[web.WebSocketResponse], Awaitable[None]]


class Hooks:
    def __init__(self) -> None:
        self.data: list[tuple[object, int, int]] = []
        self.errors: list[str] = []
        self.drops = 0
        self.back: list[int] = []
        self.changed = asyncio.Event()

    def hooks(self) -> SubscriberHooks:
        def on_data(data: object, rx_ns: int) -> None:
            self.data.append((data, rx_ns, time.time_ns()))
            self.changed.set()

        def on_drop() -> None:
            self.drops += 1
            self.changed.set()

        def on_error(reason: str) -> None:
            self.errors.append(reason)
            self.changed.set()

        def on_back(ns: int) -> None:
            self.back.append(ns)
            self.changed.set()

        return SubscriberHooks(on_data=on_data, on_drop=on_drop, on_error=on_error, on_reconnect_ns=on_back)

    async def until(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self.changed.clear()
                await self.changed.wait()


@contextlib.asynccontextmanager
async def socketio_server(script: Script) -> AsyncIterator[str]:
    """A minimal Engine.IO v4 server: open packet, namespace CONNECT reply, then ``script``."""

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        await ws.send_str(OPEN)
        connect = await ws.receive()
        assert connect.data == "40", connect
        await ws.send_str('40{"sid":"n1"}')
        await script(ws)
        return ws

    app = web.Application()
    app.router.add_get("/socket.io/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def open_lean(url: str, hooks: Hooks) -> Any:
    provider = provider_mod.SocketIOProvider(url, provider_options("socketio", url))
    subscriber = provider_mod.LeanSocketIOSubscriber(provider, "rtbench-0", hooks.hooks())
    await subscriber.start()
    return provider, subscriber


def test_deliveries_carry_the_kernel_stamp_and_garbage_is_counted_not_fatal() -> None:
    envelope = probe.encode("run", "p", 0, time.time_ns(), 64)

    async def script(ws: web.WebSocketResponse) -> None:
        await ws.send_str('42["message","' + envelope + '"]')
        await ws.send_str("42not json")
        await ws.send_str("9?")
        await ws.send_str('42["message","' + envelope + '"]')
        await ws.receive()

    async def main() -> None:
        hooks = Hooks()
        async with socketio_server(script) as url:
            provider, subscriber = await open_lean(url, hooks)
            await hooks.until(lambda: len(hooks.data) == 2)
            assert subscriber.rx_clock == "kernel"
            assert all(rx_ns <= handled for _, rx_ns, handled in hooks.data)
            assert [data for data, _, _ in hooks.data] == [envelope, envelope]
            assert len(hooks.errors) == 2 and all(e.startswith("socket.io: ") and len(e) > 12 for e in hooks.errors)
            assert hooks.drops == 0
            await subscriber.close()
            await provider.aclose()

    uvloop.run(main())


@pytest.mark.parametrize(
    ("name", "script"),
    [
        ("oversized frame", lambda ws: ws.send_str("4" + "x" * (5 * 1024 * 1024))),
        ("server stops pinging", lambda ws: asyncio.sleep(3)),
        ("engine.io close", lambda ws: ws.send_str("1")),
        ("namespace disconnect", lambda ws: ws.send_str("41")),
    ],
)
def test_a_broken_connection_is_a_drop_and_the_subscriber_comes_back(name: str, script: Script) -> None:
    async def once_then_hold(ws: web.WebSocketResponse) -> None:
        once_then_hold.calls += 1  # type: ignore[attr-defined]
        if once_then_hold.calls == 1:  # type: ignore[attr-defined]
            await script(ws)
        else:
            async for _ in ws:  # the second connection behaves (pongs nothing: it is a short test)
                pass

    once_then_hold.calls = 0  # type: ignore[attr-defined]

    async def main() -> None:
        hooks = Hooks()
        async with socketio_server(once_then_hold) as url:
            provider, subscriber = await open_lean(url, hooks)
            await hooks.until(lambda: hooks.drops == 1 and len(hooks.back) == 1, timeout=8)
            assert hooks.back[0] > 0
            await subscriber.close()
            await provider.aclose()

    uvloop.run(main())


def test_a_server_that_accepts_and_never_answers_fails_the_connect_with_a_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(provider_mod, "CONNECT_TIMEOUT_S", 0.5)
    listener = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"

    async def main() -> None:
        started = time.monotonic()
        with pytest.raises(ConnectionError) as caught:  # a timeout too, with its reason
            await open_lean(url, Hooks())
        assert time.monotonic() - started < 3
        assert str(caught.value)

    try:
        uvloop.run(main())
    finally:
        listener.close()


def test_a_refused_namespace_is_a_failed_connect_with_the_servers_reason() -> None:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(OPEN)
        await ws.receive()
        await ws.send_str('44{"message":"not authorized"}')
        await ws.receive()
        return ws

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/socket.io/", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        try:
            with pytest.raises(Exception, match="not authorized"):
                await open_lean(url, Hooks())
        finally:
            await runner.cleanup()

    uvloop.run(main())
