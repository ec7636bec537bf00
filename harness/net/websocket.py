"""A client websocket on the measuring transport: every message arrives with its kernel receive time.

Two phases, because protocols need both: during a protocol's own handshake (Engine.IO open, Pusher's
connection_established, Ably's CONNECTED) the caller awaits ``receive()``; once subscribed it hands over a
callback with ``deliver_to`` and messages go straight from the socket's reader to it, with no task or
queue per message. Pings are answered here; a close frame is answered and reported once through
``on_close``.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import Callable, Mapping

from harness.net.endpoint import Endpoint
from harness.net.stream import ConnectError, Stream, client_tls_context, note_shared
from harness.protocols import http1
from harness.protocols import websocket as ws

OnMessage = Callable[[str | bytes, int], None]
OnClose = Callable[[int | None, str], None]


class ClosedError(ConnectionError):
    """The websocket ended; ``code`` is the server's close code when it sent one."""

    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.code = code


class UpgradeError(ConnectError):
    """The server answered the upgrade request with something else than a valid 101; ``status`` is its
    HTTP status (None when the answer was not HTTP at all)."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.status = status


class WebSocket:
    #: whether messages sharing a read's stamp count in the run's ``rx_stamps`` (a verdict on deliveries);
    #: False on connections that carry no deliveries (presence members, ``providers/presence.py``)
    counts_shared = True

    def __init__(self, stream: Stream, key: str, max_message: int) -> None:
        self.stream = stream
        self.key = key
        self.parser = ws.FrameParser(max_message)
        self.headers: dict[str, str] = {}
        #: the server node that answered the upgrade (``X-Rtbench-Node``), None when it did not say
        self.node: str | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        #: why the server's answer to the upgrade request was refused, and its HTTP status
        self.refusal: ws.HandshakeError | None = None
        self.last_rx_ns = 0
        self._head = bytearray()
        self._upgraded = False
        self._queue: collections.deque[tuple[str | bytes, int]] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._on_message: OnMessage | None = None
        self._on_close: OnClose | None = None
        self._ended = False

    @property
    def rx_clock(self) -> str:
        return self.stream.rx_clock

    @property
    def closed(self) -> bool:
        return self._ended

    # -- opening -----------------------------------------------------------------------------------
    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        timeout: float,
        headers: Mapping[str, str] | None = None,
        max_message: int = ws.DEFAULT_MAX_MESSAGE,
        tls: ssl.SSLContext | None = None,
    ) -> WebSocket:
        """Connect, upgrade, and return once the server answered 101 (all within ``timeout``).

        Raises ConnectError for every way this fails: UpgradeError (with the HTTP status) when the server
        refused the upgrade.
        """
        endpoint = Endpoint.parse(url)
        context = (tls or client_tls_context()) if endpoint.tls else None
        stream = await Stream.connect(endpoint.host, endpoint.port, timeout=timeout, tls=context)
        key = ws.new_key()
        socket_ = cls(stream, key, max_message)
        stream.start(socket_)
        stream.write(ws.handshake_request(endpoint.host_header, endpoint.target, key, headers))
        try:
            async with asyncio.timeout(timeout):
                while not socket_._upgraded:
                    await socket_._wait()
        except TimeoutError:
            stream.close()
            raise ConnectError(
                f"no websocket upgrade from {endpoint.host}:{endpoint.port} within {timeout:g} s"
            ) from None
        except ClosedError as exc:  # ended before the upgrade: refused, or the connection went away
            stream.close()
            if socket_.refusal is not None:
                raise UpgradeError(str(exc), socket_.refusal.status) from None
            raise ConnectError(f"no websocket upgrade from {endpoint.host}:{endpoint.port}: {exc}") from None
        except BaseException:
            stream.close()
            raise
        return socket_

    # -- the stream's protocol ----------------------------------------------------------------------
    def data_received(self, data: bytes, rx_ns: int) -> None:
        self.last_rx_ns = rx_ns
        if not self._upgraded:
            data = self._upgrade(data)
            if not data:
                return
        try:
            events = self.parser.feed(data)
        except ws.ProtocolError as exc:
            self._handle(exc.events, rx_ns)  # what arrived before the violation still arrived
            self._fail(exc.code, str(exc))
            return
        if (len(events) > 1 or (events and self.parser.buffered)) and self.counts_shared:
            shared = sum(1 for event in events if type(event) is ws.Message)
            note_shared(shared if self.parser.buffered else shared - 1, rx_ns)
        self._handle(events, rx_ns)

    def _handle(self, events: list[ws.Event], rx_ns: int) -> None:
        on_message = self._on_message
        for event in events:
            if self._ended:  # a callback closed us, or a close frame came: nothing more is delivered
                return
            if type(event) is ws.Message:
                if on_message is not None:
                    on_message(event.data, rx_ns)
                else:
                    self._queue.append((event.data, rx_ns))
                    self._wake()
            elif type(event) is ws.Ping:
                self.stream.write(ws.pong(event.payload))
            elif type(event) is ws.Close:
                self._closed_by_server(event)

    def _upgrade(self, data: bytes) -> bytes:
        """Collect the 101 response head; returns the bytes after it (frames that came with it)."""
        self._head += data
        try:
            parsed = ws.parse_handshake_response(self._head, self.key)
        except ws.HandshakeError as exc:
            self.refusal = exc
            self._end(None, f"websocket upgrade refused: {exc}")
            return b""
        if parsed is None:
            return b""
        self.headers, length = parsed
        self.node = http1.server_node(self.headers.get(http1.NODE_HEADER.lower()))
        rest = bytes(self._head[length:])
        self._head = bytearray()
        self._upgraded = True
        self._wake()
        return rest

    def connection_lost(self, reason: str) -> None:
        self._end(None, reason)

    # -- receiving -----------------------------------------------------------------------------
    async def receive(self, timeout: float) -> tuple[str | bytes, int]:
        """The next message and its arrival time (handshake phase); ClosedError when the socket ended."""
        async with asyncio.timeout(timeout):
            while not self._queue:
                if self._ended:
                    raise ClosedError(self.close_reason or "connection closed", self.close_code)
                await self._wait()
        return self._queue.popleft()

    def deliver_to(self, on_message: OnMessage, on_close: OnClose) -> None:
        """From now on every message goes to ``on_message`` as it is read; the end to ``on_close``, once."""
        self._on_message, self._on_close = on_message, on_close
        while self._queue:
            on_message(*self._queue.popleft())
        if self._ended:
            self._notify_close()

    async def _wait(self) -> None:
        if self._ended:
            raise ClosedError(self.close_reason or "connection closed", self.close_code)
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- sending and closing ----------------------------------------------------------------------
    def send_text(self, text: str) -> None:
        self.stream.write(ws.text(text))

    def send_bytes(self, data: bytes) -> None:
        self.stream.write(ws.binary(data))

    def close(self, code: int = ws.CLOSE_NORMAL, reason: str = "") -> None:
        """Say goodbye and drop the connection (we asked: no on_close, and nothing more is delivered)."""
        if self._ended:
            return
        self._on_close = None
        self._queue.clear()
        self.stream.write(ws.close(code, reason))
        self._end(code, reason or "closed by the client")

    def _closed_by_server(self, event: ws.Close) -> None:
        if not self._ended:
            self.stream.write(ws.close(event.code if event.code != ws.NO_STATUS else ws.CLOSE_NORMAL))
        detail = f": {event.reason}" if event.reason else ""
        self._end(event.code, f"server closed the websocket with {event.code}{detail}")

    def _fail(self, code: int, reason: str) -> None:
        if self._ended:
            return
        self.stream.write(ws.close(code, reason))
        self._end(None, f"websocket protocol error: {reason}")

    def _end(self, code: int | None, reason: str) -> None:
        if self._ended:
            return
        self._ended = True
        self.close_code, self.close_reason = code, reason
        self.stream.close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ClosedError(reason, code))
        self._notify_close()

    def _notify_close(self) -> None:
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close(self.close_code, self.close_reason)
