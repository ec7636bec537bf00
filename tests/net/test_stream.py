"""The measuring transport itself: each read takes what is queued, with its kernel stamp; the end; writes."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from harness.net.stream import CLOCK_KERNEL, RX_STAMPS, Stream
from tests.net.servers import LOOPS, run


@pytest.fixture(params=LOOPS)
def loop_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Recorder:
    """A stream protocol that records reads and the end."""

    def __init__(self) -> None:
        self.reads: list[tuple[bytes, int]] = []
        self.lost: list[str] = []
        self.changed = asyncio.Event()

    def data_received(self, data: bytes, rx_ns: int) -> None:
        self.reads.append((data, rx_ns))
        self.changed.set()

    def connection_lost(self, reason: str) -> None:
        self.lost.append(reason)
        self.changed.set()

    async def until(self, condition: object) -> None:
        while not condition():  # type: ignore[operator]
            self.changed.clear()
            await self.changed.wait()


async def connected_pair() -> tuple[Stream, socket.socket]:
    """A Stream connected to a plain blocking socket the test writes from."""
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        stream = await Stream.connect("127.0.0.1", listener.getsockname()[1], timeout=2)
        peer, _ = listener.accept()
    finally:
        listener.close()
    return stream, peer


def test_a_read_takes_everything_queued_with_one_kernel_stamp(loop_kind: str) -> None:
    async def main() -> None:
        stream, peer = await connected_pair()
        recorder = Recorder()
        assert stream.rx_clock == CLOCK_KERNEL
        sent = time.time_ns()
        peer.sendall(b"01234")
        peer.sendall(b"56789")
        before = RX_STAMPS.reads
        stream.start(recorder)
        await recorder.until(lambda: sum(len(data) for data, _ in recorder.reads) == 10)
        assert [data for data, _ in recorder.reads] == [b"0123456789"]
        assert RX_STAMPS.reads - before == 1
        assert all(sent <= rx_ns <= time.time_ns() for _, rx_ns in recorder.reads)
        assert stream.unstamped_reads == 0
        stream.close()
        peer.close()

    run(main, loop_kind)


def test_the_end_is_reported_once_and_is_not_an_unstamped_read(loop_kind: str) -> None:
    async def main() -> None:
        stream, peer = await connected_pair()
        recorder = Recorder()
        stream.start(recorder)
        peer.sendall(b"last")
        peer.close()
        await recorder.until(lambda: recorder.lost)
        assert [data for data, _ in recorder.reads] == [b"last"]
        assert recorder.lost == ["connection closed by the server"]
        assert stream.closed and stream.unstamped_reads == 0
        stream.write(b"after the end")  # ignored, no error
        stream.close()
        assert recorder.lost == ["connection closed by the server"]

    run(main, loop_kind)


def test_close_tells_the_protocol_nothing(loop_kind: str) -> None:
    async def main() -> None:
        stream, peer = await connected_pair()
        recorder = Recorder()
        stream.start(recorder)
        stream.close()
        assert peer.recv(10) == b""  # the peer sees the end
        peer.close()
        assert stream.closed and recorder.lost == []

    run(main, loop_kind)


def test_writes_larger_than_the_socket_buffer_arrive_whole_and_in_order(loop_kind: str) -> None:
    async def main() -> None:
        stream, peer = await connected_pair()
        stream.start(Recorder())
        blob = bytes(range(256)) * 16384  # 4 MiB: more than the socket takes at once
        stream.write(blob[:1000])
        stream.write(blob[1000:])
        stream.write(b"end")
        assert stream._pending  # the socket took only part: the rest waits for the writer callback
        loop = asyncio.get_running_loop()

        def read_all() -> bytes:
            received = bytearray()
            while len(received) < len(blob) + 3:
                chunk = peer.recv(1 << 20)
                assert chunk
                received += chunk
            return bytes(received)

        received = await loop.run_in_executor(None, read_all)
        assert received == blob + b"end"
        stream.close()
        peer.close()

    run(main, loop_kind)
