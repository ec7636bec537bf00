"""Loopback servers for the transport tests: a real aiohttp websocket server on its own thread, raw asyncio
servers that misbehave on purpose, a self-signed certificate, and a runner that fails on any exception
that escaped into the event loop.

The aiohttp server has its own thread and loop so it keeps sending while a test holds the client's loop
thread busy (the stall the measuring transport exists for).
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import hashlib
import ssl
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

from aiohttp import WSMessage, web

T = TypeVar("T")
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
LOOPS = ["asyncio", "uvloop"]


def run(main: Callable[[], Awaitable[T]], loop_kind: str, timeout: float = 5.0) -> T:
    """Run ``main`` on a fresh loop of ``loop_kind`` (the bridge runs uvloop); fail on escaped exceptions."""
    loop: asyncio.AbstractEventLoop
    if loop_kind == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    escaped: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: escaped.append(context))
    try:
        result = loop.run_until_complete(asyncio.wait_for(main(), timeout))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    assert not escaped, f"exceptions escaped into the event loop: {escaped}"
    return result


class Peer:
    """One accepted websocket, driven from the server's loop; what it receives is queued there."""

    def __init__(self, server: WsServer, request: web.Request, socket: web.WebSocketResponse) -> None:
        self.server, self.request, self.socket = server, request, socket
        self.inbox: asyncio.Queue[WSMessage] = asyncio.Queue()
        self.finished = asyncio.Event()

    async def ended(self) -> None:
        """Until the server's handler for this websocket returned (call through ``WsServer.wait``)."""
        await self.finished.wait()

    async def next_message(self) -> WSMessage:
        """The next frame from the client (call through ``WsServer.wait``)."""
        return await self.inbox.get()


class WsServer:
    """An aiohttp websocket server on 127.0.0.1, port 0, on a thread of its own (``/`` upgrades)."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.ssl_context = ssl_context
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._accepted: asyncio.Queue[Peer] | None = None
        self._runner: web.AppRunner | None = None
        self._peers: list[Peer] = []
        self._thread = threading.Thread(target=self.loop.run_forever, name="ws-test-server", daemon=True)

    @property
    def url(self) -> str:
        scheme = "wss" if self.ssl_context else "ws"
        return f"{scheme}://127.0.0.1:{self.port}/"

    def __enter__(self) -> WsServer:
        self._thread.start()
        self.submit(self._start()).result(5)
        return self

    def __exit__(self, *_exc: object) -> None:
        with contextlib.suppress(Exception):
            self.submit(self._stop()).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start ``coro`` on the server's loop now (from any thread); its result arrives in the future."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    async def wait(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the server's loop and await its result from the caller's loop."""
        return await asyncio.wrap_future(self.submit(coro))

    async def accepted(self) -> Peer:
        """The next websocket the server accepted."""

        async def next_peer() -> Peer:
            assert self._accepted is not None
            return await self._accepted.get()

        return await self.wait(next_peer())

    async def _start(self) -> None:
        self._accepted = asyncio.Queue()
        app = web.Application()
        app.router.add_get("/", self._handler)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _handler(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(autoping=False, timeout=0.5)
        await socket.prepare(request)
        peer = Peer(self, request, socket)
        self._peers.append(peer)
        assert self._accepted is not None
        self._accepted.put_nowait(peer)
        try:
            async for message in socket:
                peer.inbox.put_nowait(message)
        finally:
            peer.finished.set()
        return socket

    async def _stop(self) -> None:
        for peer in self._peers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(peer.socket.close(), 0.5)
        if self._runner is not None:
            await self._runner.cleanup()


@contextlib.contextmanager
def ws_server(ssl_context: ssl.SSLContext | None = None) -> Iterator[WsServer]:
    with WsServer(ssl_context) as server:
        yield server


# -- raw servers that misbehave ------------------------------------------------------------------------
RawScript = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def accept_for(key: bytes) -> bytes:
    """Written here from RFC 6455 4.2.2, not taken from the code under test."""
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


async def read_upgrade(reader: asyncio.StreamReader) -> bytes:
    """Read a client's upgrade request; return the 101 response head that accepts it."""
    head = await reader.readuntil(b"\r\n\r\n")
    key = next(
        line.split(b":", 1)[1].strip() for line in head.split(b"\r\n") if line.lower().startswith(b"sec-websocket-key:")
    )
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_for(key) + b"\r\n\r\n"
    )


@contextlib.asynccontextmanager
async def raw_server(script: RawScript) -> AsyncIterator[str]:
    """A plain TCP server on the caller's loop running ``script`` per connection; yields its ws:// URL."""
    tasks: list[asyncio.Task[None]] = []
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks.append(asyncio.current_task())  # type: ignore[arg-type]
        writers.append(writer)
        try:
            await script(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}/"
    finally:
        server.close()
        for writer in writers:  # a script waiting for the client sees the end (cancelling it would log)
            writer.close()
        if tasks:
            await asyncio.wait(tasks, timeout=2)


async def read_client_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One masked client frame: (opcode, unmasked payload); written here from RFC 6455 5.2."""
    b0, b1 = await reader.readexactly(2)
    assert b1 & 0x80, "client frames must be masked"
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(await reader.readexactly(2), "big")
    elif n == 127:
        n = int.from_bytes(await reader.readexactly(8), "big")
    mask = await reader.readexactly(4)
    payload = await reader.readexactly(n)
    return b0 & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
