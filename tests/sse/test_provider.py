"""harness.providers.sse against the reference target and against servers that break the rules.

Every wait is bounded and on a condition (an event arriving, a hook firing), never a bare sleep.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from harness.providers import sse as sse_provider
from harness.providers.base import SubscriberHooks
from harness.providers.http import close_shared_session, shared_session
from harness.providers.sse import SSEError, SSEProvider
from tests.helpers import TargetProcess

pytestmark = pytest.mark.timeout(60)


def options(**overrides: Any) -> argparse.Namespace:
    opts = argparse.Namespace(
        channels=1,
        event="message",
        sse_path="/api/events",
        sse_publish_path="/api/publish",
        sse_max_line=2 * 1024 * 1024,
        sse_reconnect_ms=50,
        timestamp_field="",
    )
    for key, value in overrides.items():
        setattr(opts, key, value)
    SSEProvider.validate(opts)
    return opts


@dataclass
class Capture(SubscriberHooks):
    """Hooks that record everything, including ``on_error`` (the hook notes/sse-needs.md asks for)."""

    data: list[object] = field(default_factory=list)
    rx: list[int] = field(default_factory=list)
    late: list[bool] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    drops: int = 0
    resubs: int = 0
    reconnect_times: list[int] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.on_data = self._data
        self.on_drop = self._drop
        self.on_resubscribed = self._resub
        self.on_error = self._error
        self.on_reconnect_ns = self._reconnect

    def _data(self, data: object, rx_ns: int) -> None:
        self.late.append(rx_ns > time.time_ns())  # an arrival can't be later than its callback
        self.data.append(data)
        self.rx.append(rx_ns)
        self.changed.set()

    def _error(self, reason: str) -> None:
        self.errors.append(reason)
        self.changed.set()

    def _reconnect(self, ns: int) -> None:
        self.reconnect_times.append(ns)

    def _drop(self) -> None:
        self.drops += 1
        self.changed.set()

    def _resub(self) -> None:
        self.resubs += 1
        self.changed.set()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


def capture() -> Capture:
    return Capture(on_data=lambda _d, _ns: None)


def run(coro: Awaitable[Any], timeout: float = 30.0) -> Any:
    async def main() -> Any:
        try:
            return await asyncio.wait_for(coro, timeout)
        finally:
            await close_shared_session()

    return asyncio.run(main())


@asynccontextmanager
async def serve(handler: Callable[[web.Request], Any]) -> AsyncIterator[str]:
    """A one-route server on loopback port 0 playing a badly behaved SSE endpoint."""

    async def route(request: web.Request) -> web.StreamResponse:
        result = handler(request)
        return await result if inspect.isawaitable(result) else result  # type: ignore[no-any-return]

    app = web.Application()
    app.router.add_get("/api/events", route)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def stream(request: web.Request, *chunks: bytes, hold: bool = True) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for chunk in chunks:
        await resp.write(chunk)
    if hold:
        await asyncio.Event().wait()  # keep the stream open until the test ends
    return resp


# -- the reference target --------------------------------------------------------------------------
def test_publish_and_receive_in_order(target: tuple[str, TargetProcess]) -> None:
    url, _ = target

    async def main() -> None:
        provider = SSEProvider(url, options())
        hooks = [capture() for _ in range(3)]
        subs = [await provider.open_subscriber("rtbench-0", h) for h in hooks]
        publisher = await provider.open_publisher()
        for k in range(50):
            await publisher.publish("rtbench-0", f"m{k}")
        for h in hooks:
            await h.wait_until(lambda h=h: len(h.data) == 50)  # type: ignore[misc]
            assert h.data == [f"m{k}" for k in range(50)] and not h.errors
        for s in subs:
            await s.close()

    run(main())


def test_channels_are_separate(target: tuple[str, TargetProcess]) -> None:
    url, _ = target

    async def main() -> None:
        provider = SSEProvider(url, options(channels=2))
        a, b = capture(), capture()
        subs = [await provider.open_subscriber("rtbench-0", a), await provider.open_subscriber("rtbench-1", b)]
        publisher = await provider.open_publisher()
        await publisher.publish("rtbench-1", "for-b")
        await publisher.publish("rtbench-0", "for-a")
        await a.wait_until(lambda: a.data == ["for-a"])
        await b.wait_until(lambda: b.data == ["for-b"])
        for s in subs:
            await s.close()

    run(main())


@pytest.mark.parametrize("mode", ["close", "abort"])
def test_cut_reconnects_with_last_event_id_and_loses_nothing(target: tuple[str, TargetProcess], mode: str) -> None:
    url, _ = target

    async def main() -> None:
        provider = SSEProvider(url, options())
        hooks = [capture() for _ in range(4)]
        subs = [await provider.open_subscriber("c", h) for h in hooks]
        publisher = await provider.open_publisher()
        session = await shared_session()
        sent = 0
        for round_ in range(3):
            for h in hooks:  # every subscriber is back before the next cut
                await h.wait_until(lambda h=h, r=round_: h.resubs == r)  # type: ignore[misc]
            for _ in range(40):
                await publisher.publish("c", str(sent))
                sent += 1
            async with session.post(f"{url}/admin/cut?mode={mode}") as resp:
                assert (await resp.json())["cut"] == 4
            for _ in range(20):  # published while every subscriber is away: replayed on reconnect
                await publisher.publish("c", str(sent))
                sent += 1
        for h in hooks:
            await h.wait_until(lambda h=h: len(h.data) >= sent and h.resubs == 3)  # type: ignore[misc]
            assert h.data == [str(k) for k in range(sent)], "lost, duplicated or reordered across cuts"
            assert h.drops == 3 and not h.errors
            assert len(h.reconnect_times) == 3
            assert all(ns >= 50_000_000 for ns in h.reconnect_times)  # the server's retry: 50 ms, honoured
        assert sum(len(h.reconnect_times) for h in hooks) == 12
        for s in subs:
            assert isinstance(s, sse_provider.EventSource)
        for s in subs:
            await s.close()

    run(main())


def test_reconnects_after_the_server_restarts_and_replays_its_new_events(target: tuple[str, TargetProcess]) -> None:
    """The seed app's checklist: auto-reconnect after the server is killed and restarted."""
    from tests.helpers import start_target

    url, proc = target
    port = url.rsplit(":", 1)[1]

    async def main() -> None:
        provider = SSEProvider(url, options())
        h = capture()
        sub = await provider.open_subscriber("c", h)
        publisher = await provider.open_publisher()
        await publisher.publish("c", "before")
        await h.wait_until(lambda: h.data == ["before"])
        assert await asyncio.to_thread(proc.stop) == 0  # SIGTERM: clean exit, streams ended
        await h.wait_until(lambda: h.drops == 1)
        _, proc2 = await asyncio.to_thread(start_target, "targets.sse", "--port", port, "--retry-ms", "50")
        try:
            await h.wait_until(lambda: h.resubs == 1, timeout=10)
            await publisher.publish("c", "after")
            await h.wait_until(lambda: h.data == ["before", "after"])
        finally:
            await sub.close()
            await asyncio.to_thread(proc2.stop)

    run(main())


# -- servers that break the rules ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("handler", "reason"),
    [
        (lambda r: web.Response(status=404, text="nope"), "answered HTTP 404"),
        (lambda r: web.Response(status=204), "HTTP 204 No Content"),
        (lambda r: web.Response(status=500), "answered HTTP 500"),
        (lambda r: web.json_response({"events": []}), "Content-Type 'application/json"),
        (lambda r: web.Response(text="data: x\n\n", content_type="text/plain"), "not text/event-stream"),
    ],
)
def test_bad_first_response_fails_the_connect_with_a_reason(handler: Any, reason: str) -> None:
    async def main() -> None:
        async def route(request: web.Request) -> web.StreamResponse:
            return handler(request)

        async with serve(route) as url:
            with pytest.raises(SSEError, match=reason):
                await SSEProvider(url, options()).open_subscriber("c", capture())

    run(main())


def test_unreachable_server_fails_fast() -> None:
    async def main() -> None:
        async with serve(lambda r: stream(r)) as url:
            pass  # closed again: nobody listens on that port now
        with pytest.raises(ConnectionError, match=r"connect to 127\.0\.0\.1:\d+ failed"):
            await SSEProvider(url, options()).open_subscriber("c", capture())

    run(main())


def test_server_that_never_answers_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sse_provider, "CONNECT_TIMEOUT_S", 0.3)

    async def main() -> None:
        async def silent(request: web.Request) -> web.StreamResponse:
            await asyncio.Event().wait()
            raise AssertionError

        async with serve(silent) as url:
            started = time.monotonic()
            with pytest.raises(ConnectionError, match=r"no answer to GET /api/events from .* within 0\.3 s"):
                await SSEProvider(url, options()).open_subscriber("c", capture())
            assert time.monotonic() - started < 2

    run(main())


def test_malformed_lines_are_errors_and_good_events_still_arrive() -> None:
    async def main() -> None:
        body = b"retry: soon\nfoo: bar\nid: 1\x002\ndata: good-1\n\nnonsense line\ndata: \xff\n\ndata: good-2\n\n"

        async with serve(lambda r: stream(r, body)) as url:
            h = capture()
            sub = await SSEProvider(url, options()).open_subscriber("c", h)
            await h.wait_until(lambda: "good-2" in h.data)
            await sub.close()
        assert h.data == ["good-1", "\ufffd", "good-2"]
        assert sorted(h.errors) == sorted(
            [
                "sse: retry field is not a number: 'soon'",
                "sse: unknown field 'foo'",
                "sse: id field contains NUL (ignored)",
                "sse: unknown field 'nonsense line'",
                "sse: stream is not valid UTF-8",
            ]
        )

    run(main())


def test_other_event_types_are_ignored() -> None:
    async def main() -> None:
        body = b"event: ping\ndata: 1\n\nevent: todo:created\ndata: 2\n\ndata: 3\n\n"
        async with serve(lambda r: stream(r, body)) as url:
            h = capture()
            sub = await SSEProvider(url, options(event="todo:created")).open_subscriber("c", h)
            await h.wait_until(lambda: len(h.data) == 1)
            await sub.close()
        assert h.data == ["2"] and not h.errors

    run(main())


def test_oversized_line_is_an_error_and_the_stream_is_reopened_not_hung() -> None:
    async def main() -> None:
        opened = 0

        async def route(request: web.Request) -> web.StreamResponse:
            nonlocal opened
            opened += 1
            if opened == 1:
                return await stream(request, b"data: ok\n\n", b"data: " + b"x" * 5000)
            return await stream(request, b"data: after\n\n")

        async with serve(route) as url:
            h = capture()
            sub = await SSEProvider(url, options(sse_max_line=1024)).open_subscriber("c", h)
            await h.wait_until(lambda: "after" in h.data and h.resubs == 1)
            await sub.close()
        assert h.data == ["ok", "after"]
        assert h.errors == ["sse: SSE line longer than 1024 characters"]
        assert (h.drops, h.resubs) == (1, 1)

    run(main())


def test_http_error_on_reconnect_ends_the_subscription_like_a_browser() -> None:
    async def main() -> None:
        calls = 0

        async def route(request: web.Request) -> web.StreamResponse:
            nonlocal calls
            calls += 1
            if calls == 1:
                return await stream(request, b"data: once\n\n", hold=False)
            return web.Response(status=204)

        async with serve(route) as url:
            h = capture()
            sub = await SSEProvider(url, options()).open_subscriber("c", h)
            await h.wait_until(lambda: bool(h.errors))
            assert isinstance(sub, sse_provider.EventSource)
            assert not sub.reconnector.reconnecting  # the reconnect loop ended by itself
            assert sub.connection is None
            await sub.close()
        assert h.data == ["once"] and (h.drops, h.resubs) == (1, 0)
        assert h.errors == ["sse: server answered HTTP 204 No Content: reconnection stopped"]

    run(main())


def test_publish_error_is_raised_with_the_status(target: tuple[str, TargetProcess]) -> None:
    url, _ = target

    async def main() -> None:
        publisher = await SSEProvider(url, options(sse_publish_path="/nowhere")).open_publisher()
        with pytest.raises(RuntimeError, match="HTTP 404"):
            await publisher.publish("c", "x")

    run(main())


def test_timestamp_mode_delivers_server_stamps() -> None:
    from harness.measure.server_stamps import Stamped

    async def main() -> None:
        body = (
            b'id: 1\ndata: {"id":1,"message":"hi","timestamp":1700000000000}\n\n'
            b'id: 2\ndata: {"id":2,"message":"no stamp"}\n\n'
        )
        async with serve(lambda r: stream(r, body)) as url:
            h = capture()
            sub = await SSEProvider(url, options(timestamp_field="timestamp")).open_subscriber("c", h)
            await h.wait_until(lambda: len(h.data) + len(h.errors) == 2)
            await sub.close()
        assert h.data == [Stamped(1_700_000_000_000_000_000, "server", 1)]  # not a delivery: an error
        assert h.errors == ["sse: event data has no field 'timestamp'"]

    run(main())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"event": ""}, "--event"),
        ({"sse_path": "a b"}, "--sse-path"),
        ({"sse_max_line": "x"}, "integer"),
        ({"sse_reconnect_ms": -1}, "at least 0"),
        ({"timestamp_field": "t:weeks"}, "unit"),
    ],
)
def test_validate_rejects_bad_options(overrides: dict[str, Any], message: str) -> None:
    from harness.providers.base import ProviderConfigError

    with pytest.raises(ProviderConfigError, match=message):
        options(**overrides)
