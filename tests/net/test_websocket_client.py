"""The websocket client on the measuring transport, against real servers on loopback (port 0).

Every test runs on the stdlib loop and on uvloop (the bridge's loop). Arrival stamps are checked against
``time.time_ns()`` (both CLOCK_REALTIME) taken where the server sent and where the client's callback ran.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import WSMsgType

from harness.net.stream import CLOCK_KERNEL, RX_STAMPS, ConnectError
from harness.net.websocket import ClosedError, UpgradeError, WebSocket
from tests.net.servers import (
    LOOPS,
    WsServer,
    raw_server,
    read_client_frame,
    read_upgrade,
    run,
)
from tests.tls import self_signed

MS = 1_000_000
HELLO = bytes.fromhex("810548656c6c6f")  # RFC 6455 5.7: unmasked text "Hello"


@pytest.fixture(params=LOOPS)
def loop_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server() -> Iterator[WsServer]:
    with WsServer() as started:
        yield started


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[WsServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    with WsServer(context) as started:
        yield started


class Inbox:
    """What a client handed over: (data, rx_ns, time.time_ns() in the callback), the ends, in order."""

    def __init__(self) -> None:
        self.messages: list[tuple[str | bytes, int, int]] = []
        self.closes: list[tuple[int | None, str]] = []
        self.log: list[str] = []
        self._changed = asyncio.Event()

    def on_message(self, data: str | bytes, rx_ns: int) -> None:
        self.messages.append((data, rx_ns, time.time_ns()))
        self.log.append("message")
        self._changed.set()

    def on_close(self, code: int | None, reason: str) -> None:
        self.closes.append((code, reason))
        self.log.append("close")
        self._changed.set()

    @property
    def data(self) -> list[str | bytes]:
        return [data for data, _rx, _handled in self.messages]

    async def until_messages(self, count: int) -> None:
        while len(self.messages) < count:
            self._changed.clear()
            await self._changed.wait()

    async def until_closed(self) -> None:
        while not self.closes:
            self._changed.clear()
            await self._changed.wait()


async def subscribed(url: str, **options: object) -> tuple[WebSocket, Inbox]:
    client = await WebSocket.connect(url, timeout=2, **options)  # type: ignore[arg-type]
    inbox = Inbox()
    client.deliver_to(inbox.on_message, inbox.on_close)
    return client, inbox


def stall(blocking: object, seconds: float) -> None:
    """Hold the loop thread: wait for ``blocking`` (a concurrent future) and then sleep out ``seconds``."""
    started = time.monotonic()
    blocking.result(2)  # type: ignore[attr-defined]
    time.sleep(max(0.0, seconds - (time.monotonic() - started)))


# -- deliveries ------------------------------------------------------------------------------------
def test_messages_arrive_in_order_with_kernel_stamps(loop_kind: str, server: WsServer) -> None:
    async def main() -> None:
        client, inbox = await subscribed(server.url)
        assert client.rx_clock == CLOCK_KERNEL
        peer = await server.accepted()

        async def send_all() -> list[int]:
            sent = []
            for i in range(20):
                sent.append(time.time_ns())
                await peer.socket.send_str(f"message {i}")
            sent.append(time.time_ns())
            await peer.socket.send_bytes(bytes(range(256)) * 4)
            return sent

        sent = await server.wait(send_all())
        await inbox.until_messages(21)
        assert inbox.data == [f"message {i}" for i in range(20)] + [bytes(range(256)) * 4]
        for (_data, rx_ns, handled_ns), sent_ns in zip(inbox.messages, sent, strict=True):
            assert sent_ns <= rx_ns <= handled_ns
        assert client.stream.unstamped_reads == 0
        client.close()

    run(main, loop_kind)


def test_receive_before_deliver_to_keeps_stamps_and_order(loop_kind: str, server: WsServer) -> None:
    async def main() -> None:
        client = await WebSocket.connect(server.url, timeout=2)
        peer = await server.accepted()
        sent = time.time_ns()
        await server.wait(peer.socket.send_str("first"))
        await server.wait(peer.socket.send_str("second"))
        first, first_rx = await client.receive(timeout=2)
        second, second_rx = await client.receive(timeout=2)
        assert (first, second) == ("first", "second")
        assert sent <= first_rx <= second_rx <= time.time_ns()
        inbox = Inbox()
        client.deliver_to(inbox.on_message, inbox.on_close)
        await server.wait(peer.socket.send_str("third"))
        await inbox.until_messages(1)
        assert inbox.data == ["third"]
        client.close()
        with pytest.raises(ClosedError):
            await client.receive(timeout=1)

    run(main, loop_kind)


def test_frames_that_came_with_the_101_are_delivered(loop_kind: str) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await read_upgrade(reader) + HELLO + HELLO)
        await reader.read()

    async def main() -> None:
        async with raw_server(script) as url:
            client, inbox = await subscribed(url)
            await inbox.until_messages(2)
            assert inbox.data == ["Hello", "Hello"]
            assert inbox.messages[0][1] == inbox.messages[1][1] <= inbox.messages[0][2]  # one read, one stamp
            client.close()

    run(main, loop_kind)


# -- a stalled generator --------------------------------------------------------------------------------
def test_a_stall_does_not_move_the_arrival(loop_kind: str, server: WsServer) -> None:
    async def main() -> None:
        client, inbox = await subscribed(server.url)
        peer = await server.accepted()

        async def send() -> int:
            sent = time.time_ns()
            await peer.socket.send_str("sent while the client is stalled")
            return sent

        asked = time.time_ns()
        sending = server.submit(send())
        stall(sending, 0.2)  # the server sends while this loop thread is held
        await inbox.until_messages(1)
        sent = sending.result()
        _data, rx_ns, handled_ns = inbox.messages[0]
        assert sent <= rx_ns < sent + 20 * MS  # the arrival: far below the 200 ms stall
        assert handled_ns - asked >= 200 * MS  # the handling: after the stall
        assert handled_ns - rx_ns > 150 * MS  # client lag shows the stall
        client.close()

    run(main, loop_kind)


def test_frames_queued_in_a_stall_share_the_later_stamp_and_are_counted(loop_kind: str, server: WsServer) -> None:
    """Two frames 50 ms apart while the loop is held arrive in one read with one stamp: Linux merges segments
    that wait unread in the receive queue into one buffer carrying the latest arrival (``tcp_try_coalesce``),
    so no read size could give the first its own. What holds: never early, the last frame exact, the
    handling after the stall, and the first frame counted as a shared stamp."""

    async def main() -> None:
        client, inbox = await subscribed(server.url)
        peer = await server.accepted()
        payload = "x" * 100  # a 102-byte frame

        reads: list[int] = []
        feed = client.data_received

        def counting(data: bytes, rx_ns: int) -> None:
            reads.append(len(data))
            feed(data, rx_ns)

        client.data_received = counting  # type: ignore[method-assign]

        async def send_two() -> list[int]:
            first = time.time_ns()
            await peer.socket.send_str(payload)
            await asyncio.sleep(0.05)
            second = time.time_ns()
            await peer.socket.send_str(payload)
            return [first, second]

        shared_before = RX_STAMPS.shared
        asked = time.time_ns()
        sending = server.submit(send_two())
        stall(sending, 0.2)
        await inbox.until_messages(2)
        first_sent, second_sent = sending.result()
        (_d1, rx1, handled1), (_d2, rx2, handled2) = inbox.messages[:2]
        assert reads == [204]
        assert RX_STAMPS.shared - shared_before == 1
        assert second_sent - first_sent >= 50 * MS
        assert first_sent <= rx1 <= rx2  # never early, in order
        assert second_sent <= rx2 < second_sent + 20 * MS  # the last one queued is exact
        assert min(handled1, handled2) - asked >= 200 * MS
        client.close()

    run(main, loop_kind)


# -- control frames and closing -------------------------------------------------------------------
def test_server_ping_is_answered_with_its_payload(loop_kind: str, server: WsServer) -> None:
    async def main() -> None:
        client, inbox = await subscribed(server.url)
        peer = await server.accepted()
        await server.wait(peer.socket.ping(b"are you there"))
        answer = await server.wait(peer.next_message())
        assert (answer.type, answer.data) == (WSMsgType.PONG, b"are you there")
        assert inbox.messages == [] and inbox.closes == []
        client.close()

    run(main, loop_kind)


def test_server_close_reaches_on_close_once_with_its_code(loop_kind: str, server: WsServer) -> None:
    async def main() -> None:
        client, inbox = await subscribed(server.url)
        peer = await server.accepted()
        await server.wait(peer.socket.send_str("last words"))
        await server.wait(peer.socket.close(code=4001, message=b"bye"))
        await inbox.until_closed()
        await server.wait(peer.ended())
        client.close()  # already over: no second report
        assert inbox.data == ["last words"]
        assert inbox.closes == [(4001, "server closed the websocket with 4001: bye")]
        assert (client.closed, client.close_code) == (True, 4001)

    run(main, loop_kind)


@pytest.mark.parametrize(("close_body", "answer"), [(b"\x0f\xa1bye", b"\x0f\xa1"), (b"", b"\x03\xe8")])
def test_close_is_answered_with_the_servers_code(loop_kind: str, close_body: bytes, answer: bytes) -> None:
    async def main() -> None:
        got: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()

        async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await read_upgrade(reader) + bytes([0x88, len(close_body)]) + close_body)
            got.set_result(await read_client_frame(reader))

        async with raw_server(script) as url:
            _client, inbox = await subscribed(url)
            assert await got == (0x8, answer)  # echo the code; an empty close (1005) is answered with 1000
            await inbox.until_closed()
            assert inbox.closes[0][0] == (int.from_bytes(close_body[:2], "big") if close_body else 1005)

    run(main, loop_kind)


def test_client_close_sends_a_close_frame_and_no_on_close(loop_kind: str) -> None:
    async def main() -> None:
        got: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()

        async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await read_upgrade(reader))
            got.set_result(await read_client_frame(reader))

        async with raw_server(script) as url:
            client, inbox = await subscribed(url)
            client.close(1001, "leaving")
            assert await got == (0x8, b"\x03\xe9leaving")
            assert inbox.closes == []
            assert client.closed

    run(main, loop_kind)


def test_closing_in_on_message_stops_delivery(loop_kind: str) -> None:
    async def main() -> None:
        go = asyncio.Event()
        got: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()

        async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await read_upgrade(reader))
            await go.wait()
            writer.write(HELLO * 3)  # one write: one read holding three frames
            got.set_result(await read_client_frame(reader))

        async with raw_server(script) as url:
            client = await WebSocket.connect(url, timeout=2)
            delivered: list[str | bytes] = []

            def on_message(data: str | bytes, _rx_ns: int) -> None:
                delivered.append(data)
                client.close()

            client.deliver_to(on_message, lambda _code, _reason: delivered.append("on_close"))
            go.set()
            assert await got == (0x8, b"\x03\xe8")
            assert delivered == ["Hello"]

    run(main, loop_kind)


# -- bad servers -----------------------------------------------------------------------------------
async def misbehave(after_upgrade: bytes, **options: object) -> tuple[Inbox, tuple[int, bytes]]:
    """A server that upgrades and then sends ``after_upgrade`` (in the same write); what the client did."""
    got: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await read_upgrade(reader) + after_upgrade)
        got.set_result(await read_client_frame(reader))

    async with raw_server(script) as url:
        client, inbox = await subscribed(url, **options)
        await inbox.until_closed()
        answer = await got
        assert client.closed
        return inbox, answer


def test_garbage_after_a_message(loop_kind: str) -> None:
    async def main() -> None:
        inbox, answer = await misbehave(HELLO + b"GARBAGE GARBAGE GARBAGE")
        assert inbox.data == ["Hello"]  # it arrived before the garbage: delivered
        assert inbox.closes == [(None, "websocket protocol error: reserved bits set without a negotiated extension")]
        assert inbox.log == ["message", "close"]
        assert answer == (0x8, b"\x03\xea" + b"reserved bits set without a negotiated extension")

    run(main, loop_kind)


def test_masked_server_frame(loop_kind: str) -> None:
    async def main() -> None:
        inbox, answer = await misbehave(bytes.fromhex("818537fa213d7f9f4d5158"))
        assert inbox.messages == []
        assert inbox.closes == [(None, "websocket protocol error: server frame is masked")]
        assert answer[0] == 0x8 and answer[1][:2] == b"\x03\xea"  # 1002

    run(main, loop_kind)


def test_oversized_frame(loop_kind: str) -> None:
    async def main() -> None:
        inbox, answer = await misbehave(bytes.fromhex("827e0800") + bytes(100), max_message=1024)
        assert inbox.closes == [(None, "websocket protocol error: message exceeds 1024 bytes")]
        assert answer[1][:2] == b"\x03\xf1"  # 1009

    run(main, loop_kind)


def test_bad_utf8_is_answered_with_1007(loop_kind: str) -> None:
    async def main() -> None:
        inbox, answer = await misbehave(b"\x81\x02\xc3\x28")
        assert inbox.closes == [(None, "websocket protocol error: text frame is not UTF-8")]
        assert answer[1][:2] == b"\x03\xef"  # 1007

    run(main, loop_kind)


def test_server_that_never_answers_the_upgrade(loop_kind: str) -> None:
    async def script(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
        await reader.read()  # takes the request, says nothing

    async def main() -> None:
        async with raw_server(script) as url:
            started = time.monotonic()
            with pytest.raises(ConnectError, match=r"no websocket upgrade from 127\.0\.0\.1:\d+ within 0\.3 s"):
                await WebSocket.connect(url, timeout=0.3)
            assert 0.29 <= time.monotonic() - started < 1.0

    run(main, loop_kind)


def test_refused_tcp_connection(loop_kind: str) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def main() -> None:
        with pytest.raises(ConnectError, match=rf"connect to 127\.0\.0\.1:{port} failed: Connection refused"):
            await WebSocket.connect(f"ws://127.0.0.1:{port}/", timeout=1)

    run(main, loop_kind)


def test_close_mid_frame(loop_kind: str) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await read_upgrade(reader) + bytes.fromhex("827e0100") + bytes(100))  # 100 of 256 bytes

    async def main() -> None:
        async with raw_server(script) as url:
            client, inbox = await subscribed(url)
            await inbox.until_closed()
            assert inbox.closes == [(None, "connection closed by the server")]
            assert inbox.messages == []
            assert client.closed

    run(main, loop_kind)


def test_close_mid_handshake(loop_kind: str) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 101 Swit")

    async def main() -> None:
        async with raw_server(script) as url:
            with pytest.raises(ConnectError, match=r"no websocket upgrade .*: connection closed by the server") as info:
                await WebSocket.connect(url, timeout=2)
            assert not isinstance(info.value, UpgradeError)

    run(main, loop_kind)


def test_refused_upgrade_has_the_http_status(loop_kind: str, server: WsServer) -> None:
    async def main() -> None:
        with pytest.raises(UpgradeError) as info:
            await WebSocket.connect(server.url + "nowhere", timeout=2)
        assert info.value.status == 404
        assert str(info.value) == "websocket upgrade refused: server answered HTTP 404 Not Found"

    run(main, loop_kind)


def test_not_an_http_answer(loop_kind: str) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await reader.read()

    async def main() -> None:
        async with raw_server(script) as url:
            with pytest.raises(UpgradeError, match="not an HTTP response") as info:
                await WebSocket.connect(url, timeout=2)
            assert info.value.status is None

    run(main, loop_kind)


# -- TLS ----------------------------------------------------------------------------------------------
def test_wss_with_a_context_trusting_the_certificate(
    loop_kind: str, tls_server: WsServer, certificate: tuple[Path, Path]
) -> None:
    async def main() -> None:
        trusting = ssl.create_default_context(cafile=str(certificate[0]))
        client, inbox = await subscribed(tls_server.url, tls=trusting)
        assert tls_server.url.startswith("wss://")
        assert client.rx_clock == CLOCK_KERNEL
        peer = await tls_server.accepted()
        sent = time.time_ns()
        await tls_server.wait(peer.socket.send_str("secret"))
        await tls_server.wait(peer.socket.send_bytes(bytes(70_000)))  # spans several TLS records
        await tls_server.wait(peer.socket.ping(b"tls ping"))
        answer = await tls_server.wait(peer.next_message())
        await inbox.until_messages(2)
        assert inbox.data == ["secret", bytes(70_000)]
        assert sent <= inbox.messages[0][1] <= inbox.messages[0][2]
        assert (answer.type, answer.data) == (WSMsgType.PONG, b"tls ping")
        await tls_server.wait(peer.socket.close(code=1001))
        await inbox.until_closed()
        assert inbox.closes == [(1001, "server closed the websocket with 1001")]

    run(main, loop_kind)


def test_wss_with_default_verification_fails_with_a_clear_reason(loop_kind: str, tls_server: WsServer) -> None:
    async def main() -> None:
        with pytest.raises(
            ConnectError, match=r"TLS handshake with 127\.0\.0\.1:\d+ failed: .*certificate verify failed"
        ):
            await WebSocket.connect(tls_server.url, timeout=2)

    run(main, loop_kind)


def test_tls_data_before_the_session_ends_is_delivered_first(
    loop_kind: str, tls_server: WsServer, certificate: tuple[Path, Path]
) -> None:
    async def main() -> None:
        trusting = ssl.create_default_context(cafile=str(certificate[0]))
        client, inbox = await subscribed(tls_server.url, tls=trusting)
        peer = await tls_server.accepted()

        async def send_and_hang_up() -> None:
            await peer.socket.send_str("just before the end")
            peer.request.transport.close()  # type: ignore[union-attr]  # TLS close_notify, then FIN

        stall(tls_server.submit(send_and_hang_up()), 0.05)  # both reach the socket before one read takes them
        await inbox.until_closed()
        assert inbox.log == ["message", "close"]
        assert inbox.data == ["just before the end"]
        assert inbox.closes[0][0] is None
        assert client.closed

    run(main, loop_kind)
