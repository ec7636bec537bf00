"""The lean EventSource on the measuring transport: kernel arrival times, HTTP/1.1 framings, cuts, redirects,
TLS, and servers that break the rules, each played byte for byte by a loopback server on port 0.

Every wait is bounded and on a condition (a hook firing, a count reached), never a bare sleep.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import pytest
import uvloop

from harness.measure.accounting import account
from harness.providers import sse as sse_provider
from harness.providers.base import SubscriberHooks
from harness.providers.http import shared_session
from harness.providers.sse import EventSource, SSEError, SSEProvider
from tests.generators import InProcessRun
from tests.helpers import TargetProcess
from tests.sse.test_provider import capture, options, run
from tests.tls import self_signed

pytestmark = pytest.mark.timeout(60)

HEAD_CHUNKED = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


# -- a server that plays literal bytes -----------------------------------------------------------------
Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "RawServer"], Awaitable[None]]


class RawServer:
    """One script per accepted connection, in order (the last one repeats); records each request head."""

    def __init__(self, scripts: tuple[Script, ...]) -> None:
        self.scripts = scripts
        self.requests: list[str] = []
        self.connections = 0
        self.stop = asyncio.Event()
        self.writers: list[asyncio.StreamWriter] = []
        self.url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        script = self.scripts[min(self.connections, len(self.scripts) - 1)]
        self.connections += 1
        with suppress(OSError, asyncio.IncompleteReadError):
            await script(reader, writer, self)

    async def read_request(self, reader: asyncio.StreamReader) -> None:
        self.requests.append((await reader.readuntil(b"\r\n\r\n")).decode())


@asynccontextmanager
async def raw_server(*scripts: Script, tls: ssl.SSLContext | None = None) -> AsyncIterator[RawServer]:
    raw = RawServer(scripts)
    server = await asyncio.start_server(raw.handle, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    raw.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    try:
        yield raw
    finally:
        raw.stop.set()
        server.close()
        for writer in raw.writers:
            writer.close()
        await server.wait_closed()


def answer(*parts: bytes, then: str = "hold") -> Script:
    """Read the request, write ``parts`` (one send each), then ``hold`` the connection open or ``close`` it."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: RawServer) -> None:
        await raw.read_request(reader)
        for part in parts:
            writer.write(part)
            await writer.drain()
        if then == "close":
            writer.close()
        else:
            await raw.stop.wait()

    return script


async def never_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: RawServer) -> None:
    await raw.read_request(reader)
    await raw.stop.wait()


def event_stream(*events: bytes) -> Script:
    """A good chunked event stream, one event per chunk, held open."""
    return answer(HEAD_CHUNKED, *(chunk(e) for e in events))


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll a loop-owned condition (the generator's counters have no event to wait on), bounded."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


# -- arrival times ------------------------------------------------------------------------------
def test_kernel_receive_times_never_after_the_callback(target: tuple[str, TargetProcess]) -> None:
    url, _ = target

    async def main() -> None:
        provider = SSEProvider(url, options())
        hooks = [capture() for _ in range(3)]
        subs = [await provider.open_subscriber("c", h) for h in hooks]
        assert [s.rx_clock for s in subs] == ["kernel"] * 3
        publisher = await provider.open_publisher()
        before = time.time_ns()
        for k in range(20):
            await publisher.publish("c", f"m{k}")
        for h in hooks:
            await h.wait_until(lambda h=h: len(h.data) == 20)  # type: ignore[misc]
            assert h.data == [f"m{k}" for k in range(20)]
            assert not any(h.late), "rx_ns later than time.time_ns() in the callback"
            assert all(before < rx for rx in h.rx) and h.rx == sorted(h.rx)
        for s in subs:
            await s.close()

    run(main())


def test_cut_through_the_generator_drops_reconnects_and_loses_nothing(target: tuple[str, TargetProcess]) -> None:
    """POST /admin/cut: every stream dropped, reconnected after the server's retry: (50 ms) with Last-Event-ID,
    the reconnect time recorded, and the events published meanwhile replayed: nothing lost."""
    url, _ = target

    async def main() -> None:
        run_ = InProcessRun("sse", url)
        await run_.open(5)
        recorder = run_.generator.recorder
        try:
            for _ in range(5):
                await asyncio.wrap_future(run_.publish())
            await run_.delivered(25)
            session = await shared_session()
            async with session.post(f"{url}/admin/cut?mode=close") as resp:
                assert (await resp.json())["cut"] == 5
            await until(lambda: recorder.counts["dropped"] == 5)
            for _ in range(5):  # while every subscriber is away: replayed on reconnect
                await asyncio.wrap_future(run_.publish())
            await run_.delivered(50)
            await until(lambda: recorder.counts["reconnected"] == 5)
            assert recorder.rx_clocks == {"kernel": 5}
            assert recorder.counts["errors"] == 0, dict(recorder.error_reasons)
            recorder.interval_report()
            assert recorder.reconnect.get_total_count() == 5
            assert recorder.reconnect.get_min_value() >= 50_000  # us: the server's retry: honoured
            final = recorder.final_report(time.time_ns())
            totals = account(final["ledgers"], final["subscribers"])
            assert (totals.expected, totals.delivered, totals.lost, totals.duplicated) == (50, 50, 0, 0)
        finally:
            await run_.close()

    uvloop.run(main())


# -- framings -----------------------------------------------------------------------------------
BODY = b"retry: 10\nid: 1\ndata: a\n\nid: 2\ndata: b\n\n"
FRAMINGS = {
    "chunked": answer(
        HEAD_CHUNKED, chunk(b"retry: 10\nid: 1\ndata: a\n\n"), chunk(b"id: 2\ndata: b\n\n"), b"0\r\n\r\n"
    ),
    "content-length": answer(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nContent-Length: %d\r\n\r\n" % len(BODY),
        BODY,
    ),
    "close-delimited": answer(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n", BODY, then="close"
    ),
    "http/1.0": answer(b"HTTP/1.0 200 OK\r\nContent-Type: Text/Event-Stream\r\n\r\n", BODY, then="close"),
}


@pytest.mark.parametrize("framing", list(FRAMINGS))
def test_framings_deliver_then_reconnect_with_last_event_id(framing: str) -> None:
    async def main() -> None:
        async with raw_server(FRAMINGS[framing], event_stream(b"id: 3\ndata: c\n\n")) as raw:
            h = capture()
            sub = await SSEProvider(raw.url, options(sse_reconnect_ms=5000)).open_subscriber("c", h)
            await h.wait_until(lambda: h.data == ["a", "b", "c"] and h.resubs == 1)
            await sub.close()
        assert not h.errors and h.drops == 1
        assert "Last-Event-ID" not in raw.requests[0]
        assert "\r\nLast-Event-ID: 2\r\n" in raw.requests[1]
        assert raw.requests[1].startswith("GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:")
        assert 10_000_000 <= h.reconnect_times[0] < 2_000_000_000  # retry: 10 ms, not --sse-reconnect-ms

    run(main())


# -- servers that break the rules ---------------------------------------------------------------------
async def failed_connect(url: str) -> tuple[float, dict[str, int], dict[str, int]]:
    """Open one subscriber through the generator: (seconds it took, counts, error reasons)."""
    run_ = InProcessRun("sse", url)
    run_.generator.begin("run")
    started = time.monotonic()
    try:
        with pytest.raises(Exception):  # noqa: B017 - the reason is what is checked
            await run_.generator.open_subscriber("rtbench-0")
        recorder = run_.generator.recorder
        return time.monotonic() - started, dict(recorder.counts), dict(recorder.error_reasons)
    finally:
        await run_.generator.aclose()


def test_garbage_instead_of_a_response_is_a_failed_connect_with_the_reason() -> None:
    async def main() -> None:
        async with raw_server(answer(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")) as raw:
            _, counts, reasons = await failed_connect(raw.url)
        assert counts["failed"] == 1 and counts["errors"] == 1
        [reason] = reasons
        assert re.fullmatch(
            r"connect failed: SSEError: bad HTTP response from 127\.0\.0\.1:(?:\d+|<n>): "
            r"bad status line b'SSH-2\.0-OpenSSH_9\.2'",
            reason,
        ), reason

    run(main())


def test_server_that_accepts_and_never_answers_fails_within_the_connect_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sse_provider, "CONNECT_TIMEOUT_S", 0.3)

    async def main() -> None:
        async with raw_server(never_answers) as raw:
            took, counts, reasons = await failed_connect(raw.url)
        assert 0.3 <= took < 1.5
        assert counts["failed"] == 1
        [reason] = reasons
        assert re.fullmatch(
            r"connect failed: ConnectError: sse: no answer to GET /api/events from "
            r"127\.0\.0\.1:(?:\d+|<n>) within 0\.3 s",
            reason,
        ), reason

    run(main())


def test_garbage_mid_stream_is_an_error_and_the_stream_reopened() -> None:
    async def main() -> None:
        bad = answer(HEAD_CHUNKED, chunk(b"id: 1\ndata: one\n\n"), b"zz\r\nxx\r\n")
        async with raw_server(bad, event_stream(b"id: 2\ndata: two\n\n")) as raw:
            h = capture()
            sub = await SSEProvider(raw.url, options()).open_subscriber("c", h)
            await h.wait_until(lambda: h.data == ["one", "two"] and h.resubs == 1)
            await sub.close()
        assert h.drops == 1
        [error] = h.errors
        assert re.fullmatch(r"sse: bad HTTP response from 127\.0\.0\.1:\d+: bad chunk size b'zz'", error), error
        assert "\r\nLast-Event-ID: 1\r\n" in raw.requests[1]

    run(main())


@pytest.mark.parametrize(
    ("tail", "error"),
    [
        (b"40\r\nid: 2\ndata: par", "connection closed with 49 bytes of a chunk missing"),  # 64 - 15: broken
        (b"", None),  # between chunks: the server went away, as a killed process does; not an error
    ],
)
def test_close_mid_chunk_is_an_error_between_chunks_a_drop(tail: bytes, error: str | None) -> None:
    async def main() -> None:
        first = answer(HEAD_CHUNKED, chunk(b"id: 1\ndata: one\n\n"), tail, then="close")
        async with raw_server(first, event_stream(b"id: 2\ndata: two\n\n")) as raw:
            h = capture()
            sub = await SSEProvider(raw.url, options()).open_subscriber("c", h)
            await h.wait_until(lambda: h.data == ["one", "two"] and h.resubs == 1)
            await sub.close()
        assert (h.drops, h.resubs) == (1, 1)
        assert "\r\nLast-Event-ID: 1\r\n" in raw.requests[1]
        if error is None:
            assert not h.errors
        else:
            [reason] = h.errors
            assert reason.startswith("sse: bad HTTP response from 127.0.0.1:") and reason.endswith(error), reason

    run(main())


def test_garbage_on_a_reconnect_is_counted_and_retried() -> None:
    async def main() -> None:
        scripts = (
            answer(HEAD_CHUNKED, chunk(b"id: 1\ndata: one\n\n"), b"0\r\n\r\n"),
            answer(b"HTTP/1.1 2OO OK\r\n\r\n"),
            event_stream(b"id: 2\ndata: two\n\n"),
        )
        async with raw_server(*scripts) as raw:
            h = capture()
            sub = await SSEProvider(raw.url, options()).open_subscriber("c", h)
            await h.wait_until(lambda: h.data == ["one", "two"] and h.resubs == 1)
            await sub.close()
        assert h.drops == 1 and len(raw.requests) == 3
        [reason] = h.errors
        assert "bad status line b'HTTP/1.1 2OO OK'" in reason

    run(main())


# -- redirects ----------------------------------------------------------------------------------
def test_redirects_are_followed_and_reconnects_start_from_the_original_url() -> None:
    async def main() -> None:
        moved = answer(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /real?x=1\r\nContent-Length: 0\r\n\r\n")
        scripts = (
            moved,
            answer(HEAD_CHUNKED, chunk(b"id: 7\ndata: one\n\n"), b"0\r\n\r\n"),
            moved,
            event_stream(b"id: 8\ndata: two\n\n"),
        )
        async with raw_server(*scripts) as raw:
            h = capture()
            sub = await SSEProvider(raw.url, options()).open_subscriber("c", h)
            await h.wait_until(lambda: h.data == ["one", "two"] and h.resubs == 1)
            await sub.close()
        assert [r.split("\r\n", 1)[0] for r in raw.requests] == [
            "GET /api/events HTTP/1.1",
            "GET /real?x=1 HTTP/1.1",
            "GET /api/events HTTP/1.1",
            "GET /real?x=1 HTTP/1.1",
        ]
        assert "\r\nLast-Event-ID: 7\r\n" in raw.requests[2] and not h.errors

    run(main())


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (b"HTTP/1.1 302 Found\r\nLocation: /api/events\r\nContent-Length: 0\r\n\r\n", "more than 5 redirects"),
        (b"HTTP/1.1 301 Moved Permanently\r\nContent-Length: 0\r\n\r\n", "answered HTTP 301 without a Location"),
        (
            b"HTTP/1.1 302 Found\r\nLocation: ftp://example.com/\r\nContent-Length: 0\r\n\r\n",
            "not an http or https URL",
        ),
    ],
)
def test_bad_redirects_fail_the_connect_with_a_reason(response: bytes, reason: str) -> None:
    async def main() -> None:
        async with raw_server(answer(response)) as raw:
            with pytest.raises(SSEError, match=reason):
                await SSEProvider(raw.url, options()).open_subscriber("c", capture())
            assert len(raw.requests) == (6 if "more than" in reason else 1)

    run(main())


# -- TLS ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


def test_https_stream_through_the_transport(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)

    async def main() -> None:
        async with raw_server(
            event_stream(b"id: 1\ndata: secret\n\n", b"id: 2\ndata: sauce\n\n"), tls=server_tls
        ) as raw:
            provider = SSEProvider(raw.url, options())
            with pytest.raises(ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):  # verified by default
                await provider.open_subscriber("c", capture())
            provider.tls = ssl.create_default_context(cafile=str(cert))
            h = capture()
            sub = await provider.open_subscriber("c", h)
            await h.wait_until(lambda: h.data == ["secret", "sauce"])
            assert sub.rx_clock == "kernel" and not any(h.late) and not h.errors
            await sub.close()

    run(main())


def test_close_during_a_reconnect_attempt_leaves_nothing_running() -> None:
    """A subscriber closed while its reconnect waits on a silent server: the attempt is abandoned."""

    async def main() -> None:
        async with raw_server(answer(HEAD_CHUNKED, chunk(b"data: one\n\n"), b"0\r\n\r\n"), never_answers) as raw:
            h = capture()
            sub = await SSEProvider(raw.url, options(sse_reconnect_ms=0)).open_subscriber("c", h)
            assert isinstance(sub, EventSource)
            await until(lambda: len(raw.requests) == 2)
            assert sub.reconnector.reconnecting
            await sub.close()
            assert not sub.reconnector.reconnecting and sub.connection is None
        assert h.data == ["one"] and (h.drops, h.resubs) == (1, 0) and not h.errors

    run(main())


# -- the server node behind a load balancer -------------------------------------------------------------
def test_each_stream_tells_its_node_before_its_events_and_a_reconnect_tells_the_new_one() -> None:
    def head(node: bytes) -> bytes:
        return HEAD_CHUNKED[:-2] + b"X-Rtbench-Node: " + node + b"\r\n\r\n"

    async def main() -> None:
        scripts = (  # each head comes with its first event in one write: delivered in the same read
            answer(head(b"sse-1") + chunk(b"id: 1\ndata: one\n\n"), b"0\r\n\r\n"),
            answer(head(b"sse-2") + chunk(b"id: 2\ndata: two\n\n")),
        )
        log: list[tuple[str, object]] = []
        changed = asyncio.Event()

        def note(kind: str, value: object = None) -> None:
            log.append((kind, value))
            changed.set()

        hooks = SubscriberHooks(
            on_data=lambda data, _rx: note("data", data),
            on_drop=lambda: note("drop"),
            on_resubscribed=lambda: note("back"),
            on_node=lambda node: note("node", node),
        )
        async with raw_server(*scripts) as raw:
            sub = await SSEProvider(raw.url, options(sse_reconnect_ms=10)).open_subscriber("c", hooks)
            async with asyncio.timeout(10):
                while len(log) < 6:
                    changed.clear()
                    await changed.wait()
            assert sub.node == "sse-2"
            await sub.close()
        assert log == [
            ("node", "sse-1"),
            ("data", "one"),
            ("drop", None),
            ("node", "sse-2"),
            ("data", "two"),
            ("back", None),
        ]

    run(main())
