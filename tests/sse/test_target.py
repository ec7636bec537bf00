"""The SSE reference target over real HTTP: wire format, replay, cuts, limits, faults, shutdown."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from harness.protocols.sse import Event
from targets.base import CORRUPT_PAYLOAD
from targets.sse.server import ChannelLog, encode_event, parse_publish
from tests.helpers import TargetProcess, start_target
from tests.sse.conftest import Reader
from tests.targets.nesting import DEEP_JSON

pytestmark = pytest.mark.timeout(60)


def run(coro: Any, timeout: float = 30.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def publish(session: aiohttp.ClientSession, url: str, **body: Any) -> dict[str, Any]:
    async with session.post(f"{url}/api/publish", json=body) as resp:
        assert resp.status == 200, await resp.text()
        result: dict[str, Any] = await resp.json()
        return result


# -- pure helpers ------------------------------------------------------------------------------
def test_encode_event_bytes() -> None:
    assert encode_event("e-1", "message", "a\nb\r\nc") == b"id: e-1\ndata: a\ndata: b\ndata: c\n\n"
    assert encode_event("e-2", "todo:created", "{}") == b"id: e-2\nevent: todo:created\ndata: {}\n\n"


def test_parse_publish() -> None:
    assert parse_publish({"data": "x"}) == ("default", "message", "x")
    assert parse_publish({"channel": "c", "event": "e", "data": {"a": 1}}) == ("c", "e", '{"a":1}')
    for bad in ([], {"channel": ""}, {"data": 1, "event": "a\nb"}, {"channel": 5, "data": 1}, {"channel": "c"}):
        with pytest.raises(ValueError):
            parse_publish(bad)


def test_channel_log_bounds_and_replay() -> None:
    log = ChannelLog(max_events=3, max_bytes=1000)
    for k in range(1, 6):
        assert log.next_seq("e") == k
        log.append("e", k, f"f{k}".encode())
    assert log.after("e", 0) == [b"f3", b"f4", b"f5"]  # 1 and 2 are gone for good
    assert log.after("e", 1) == [b"f3", b"f4", b"f5"]
    assert log.after("e", 3) == [b"f4", b"f5"]
    assert log.after("e", 5) == []
    assert log.after("e", 9) == []
    assert log.after("other", 5) == [b"f3", b"f4", b"f5"]  # an unknown epoch: all of it is news
    small = ChannelLog(max_events=100, max_bytes=5)
    for k, frame in enumerate((b"aaa", b"bbb", b"ccc"), 1):
        small.append("e", k, frame)
    assert small.after("e", 0) == [b"ccc"]


def test_channel_log_mixed_epochs() -> None:
    """A node on Redis: cluster events (c), then its own while Redis was away (n), then the cluster's again,
    with a gap (events it never received). Replay resumes after the client's event, whatever its epoch."""
    log = ChannelLog(max_events=100, max_bytes=10_000)
    for epoch, seq in [("c", 1), ("c", 2), ("n", 1), ("n", 2), ("c", 5), ("c", 6)]:
        log.append(epoch, seq, f"{epoch}{seq}".encode())
    assert log.after("c", 2) == [b"n1", b"n2", b"c5", b"c6"]
    assert log.after("n", 1) == [b"n2", b"c5", b"c6"]
    assert log.after("c", 3) == [b"n1", b"n2", b"c5", b"c6"]  # 3 and 4 never came here: resume after 2
    assert log.after("c", 6) == []
    assert log.after("n", 2) == [b"c5", b"c6"]
    assert log.next_seq("c") == 7
    assert log.next_seq("n") == 3
    for seq in range(7, 105):
        log.append("c", seq, b"x")
    assert "n" not in log.runs  # evicted with the oldest events; its counter stays
    assert log.next_seq("n") == 3
    assert len(log.after("n", 2)) == 100


# -- over HTTP ---------------------------------------------------------------------------------
def test_stream_format_retry_and_keepalive(target: tuple[str, TargetProcess]) -> None:
    url, _ = target

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            reader = await Reader(session, f"{url}/api/events").open()
            assert reader.response is not None
            assert reader.response.content_type == "text/event-stream"
            assert reader.response.headers["Cache-Control"] == "no-cache"
            result = await publish(session, url, data="hello", event="todo:created")
            assert result["recipients"] == 1
            await reader.wait_until(lambda: len(reader.events) == 1)
            assert reader.events == [Event("todo:created", "hello", result["id"])]
            assert reader.parser.retry_ms == 50
            await reader.wait_until(lambda: reader.parser.comments >= 2)  # ": connected" + a keep-alive
            async with session.get(f"{url}/healthz") as resp:
                assert (await resp.json())["connections"] == 1
            await reader.close()

    run(main())


def test_last_event_id_replays_what_was_missed(target: tuple[str, TargetProcess]) -> None:
    url, _ = target

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            for case, (index, expected) in enumerate(
                [(3, range(4, 10)), (9, ()), (None, ()), ("other-5", range(10)), ("x", ())]
            ):
                channel = f"c{case}"
                ids = [(await publish(session, url, channel=channel, data=str(k)))["id"] for k in range(10)]
                epoch = ids[0].split("-")[0]
                last_id = ids[index] if isinstance(index, int) else f"{epoch}-x" if index == "x" else index
                headers = {"Last-Event-ID": last_id} if last_id else {}
                reader = await Reader(session, f"{url}/api/events?channel={channel}", headers).open()
                await publish(session, url, channel=channel, data="fence")  # live, after any replay
                await reader.wait_until(lambda r=reader: "fence" in r.data())  # type: ignore[misc]
                assert reader.data() == [*map(str, expected), "fence"], last_id
                await reader.close()
            ids = [(await publish(session, url, channel="c", data=str(k)))["id"] for k in range(10)]
            reader = await Reader(session, f"{url}/api/events?channel=c&lastEventId={ids[7]}").open()
            await reader.wait_until(lambda: len(reader.events) == 2)
            assert reader.data() == ["8", "9"]
            await reader.close()

    run(main())


@pytest.mark.parametrize("mode", ["close", "abort"])
def test_cut_ends_every_stream(target: tuple[str, TargetProcess], mode: str) -> None:
    url, _ = target

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            readers = [await Reader(session, f"{url}/api/events?channel={c}").open() for c in "aab"]
            await publish(session, url, channel="b", data="x")
            await readers[2].wait_until(lambda: readers[2].data() == ["x"])
            async with session.post(f"{url}/admin/cut?channel=a&mode={mode}") as resp:
                assert await resp.json() == {"cut": 2}
            for reader in readers[:2]:
                await asyncio.wait_for(reader.ended.wait(), 5)
                assert (reader.error is not None) == (mode == "abort")
            assert not readers[2].ended.is_set()
            async with session.post(f"{url}/admin/cut?mode=sideways") as resp:
                assert resp.status == 400
            for reader in readers:
                await reader.close()

    run(main())


def test_cut_every_knob() -> None:
    async def main(url: str) -> None:
        async with aiohttp.ClientSession() as session:
            reader = await Reader(session, f"{url}/api/events").open()
            await asyncio.wait_for(reader.ended.wait(), 5)

    url, proc = start_target("targets.sse", "--port", "0", "--cut-every", "0.2")
    try:
        run(main(url))
    finally:
        proc.stop()


def test_limits_are_clear_http_errors() -> None:
    async def main(url: str) -> None:
        async with aiohttp.ClientSession() as session:
            readers = [await Reader(session, f"{url}/api/events").open() for _ in range(2)]
            async with session.get(f"{url}/api/events") as resp:
                assert resp.status == 503
                assert "too many open streams (limit 2)" in (await resp.json())["error"]
            async with session.post(f"{url}/api/publish", json={"data": "x" * 2000}) as resp:
                assert resp.status == 413 and "larger than 1024" in (await resp.json())["error"]
            async with session.post(f"{url}/api/publish", data=b"{not json") as resp:
                assert resp.status == 400 and (await resp.json())["error"] == "body is not valid JSON"
            async with session.post(f"{url}/api/publish", json={"channel": "c"}) as resp:
                assert resp.status == 400 and (await resp.json())["error"] == "data is missing"
            async with session.get(f"{url}/api/events?channel=" + "c" * 300) as resp:
                assert resp.status == 400
            for reader in readers:
                await reader.close()

    url, proc = start_target("targets.sse", "--port", "0", "--max-connections", "2", "--max-body-bytes", "1024")
    try:
        run(main(url))
    finally:
        proc.stop()


def test_faults_drop_and_corrupt() -> None:
    async def main(url: str) -> None:
        async with aiohttp.ClientSession() as session:
            reader = await Reader(session, f"{url}/api/events").open()
            for k in range(20):
                await publish(session, url, data=str(k))
            await reader.wait_until(lambda: len(reader.events) == 20)
            assert reader.data() == [CORRUPT_PAYLOAD] * 20
            await reader.close()

    url, proc = start_target("targets.sse", "--port", "0", "--corrupt-rate", "1")
    try:
        run(main(url))
    finally:
        proc.stop()


def test_sigterm_ends_streams_and_exits_zero() -> None:
    url, proc = start_target("targets.sse", "--port", "0")

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            reader = await Reader(session, f"{url}/api/events").open()
            await publish(session, url, data="x")
            await reader.wait_until(lambda: reader.data() == ["x"])
            assert await asyncio.to_thread(proc.stop, 5) == 0
            await asyncio.wait_for(reader.ended.wait(), 5)
            await reader.close()

    try:
        run(main())
    finally:
        proc.stop()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--keepalive-s", "0"], "--keepalive-s"),
        (["--drop-rate", "2"], "--drop-rate"),
        (["--max-connections", "-1"], "--max-connections"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "targets.sse", "--port", "0", *args], capture_output=True, text=True, timeout=20
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr and "Traceback" not in done.stderr


def test_deeply_nested_body_is_a_400_and_publishing_goes_on(target: tuple[str, TargetProcess]) -> None:
    url, proc = target

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            body = ('{"channel":"c","data":' + DEEP_JSON + "}").encode()
            async with session.post(f"{url}/api/publish", data=body) as resp:
                assert resp.status == 400 and "nested deeper" in (await resp.json())["error"]
            assert (await publish(session, url, channel="c", data="after"))["recipients"] == 0

    run(main())
    assert "RecursionError" not in proc.stderr_text()
