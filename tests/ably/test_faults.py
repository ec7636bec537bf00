"""Ably against dead and broken servers (issue 11 items 6 and 9), both clients: a killed target is a drop of
every subscriber at once and a timed reconnect after a restart on the same port; a publish that gets no
ACK fails with a reason; a server answering garbage fails connections with a non-empty reason, and
ably-python's tracebacks never reach the console.

Servers are real, on loopback port 0: the reference target (killed and restarted on its port), the scripted
Ably server of ``test_lean`` (it never ACKs), and a websocket server answering everything with garbage.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
from ably.types.connectionstate import ConnectionState
from aiohttp import web

from harness.providers.ably import AblyProvider, AblyPublisher
from tests.ably.conftest import TEST_KEY
from tests.ably.test_lean import SECRET, Seen, fake_ably, options, run
from tests.helpers import REPO, start_target
from tests.plugin.test_interrupt import wait_for_intervals
from tests.runs import LOCUST, assert_accounted, run_scenario

TARGET_ARGS = ("--key", TEST_KEY, "--max-idle-ms", "400")


# -- a server that answers everything with garbage ---------------------------------------------------
async def _garbage(request: web.Request) -> web.WebSocketResponse:
    """Random bytes and broken JSON at once, and again for every frame the client sends."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_bytes(os.urandom(40))
    await ws.send_str("{not json")
    async for _frame in ws:
        await ws.send_bytes(os.urandom(40))
        await ws.send_str("}{")
    return ws


@asynccontextmanager
async def garbage_server() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/", _garbage)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@contextmanager
def garbage_server_thread() -> Iterator[str]:
    """The garbage server on a loop of its own, for a run in another process."""
    loop = asyncio.new_event_loop()
    ready: list[str] = []
    started, stop = threading.Event(), asyncio.Event()

    async def serve() -> None:
        async with garbage_server() as url:
            ready.append(url)
            started.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield ready[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


class Console(logging.Handler):
    """What reaches the root logger's handlers (Locust's console). Not caplog: pytest also hooks its handler
    onto non-propagating loggers such as ``ably``, so caplog sees records the console never gets."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("ably"):
            self.records.append(record)


@pytest.fixture
def console() -> Iterator[Console]:
    handler = Console()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


async def every(seen: list[Seen], predicate: Callable[[Seen], bool], timeout: float) -> None:
    for s in seen:
        await s.until(functools.partial(predicate, s), timeout)


# -- item 6: a killed target, the official client --------------------------------------------------
def test_official_client_target_killed_and_restarted_is_a_drop_each_and_a_timed_reconnect() -> None:
    """ably-python keeps its channels ATTACHED while the connection is DISCONNECTED: connection state must
    drive the drop. After a restart on the same port both subscribers are back within seconds (was ~25 s)."""
    url, proc = start_target("targets.ably", "--port", "0", *TARGET_ARGS)
    port = url.rsplit(":", 1)[1]
    procs = [proc]

    async def scenario() -> None:
        provider = AblyProvider(url, options(host=url, client="official"))
        seen = [Seen(), Seen()]
        subs = [await provider.open_subscriber("chan", s.hooks()) for s in seen]
        publisher = await provider.open_publisher()
        assert isinstance(publisher, AblyPublisher)
        await publisher.publish("chan", "before")
        await every(seen, lambda s: len(s.data) == 1, 5)
        killed_at = time.monotonic()
        proc.kill()
        await every(seen, lambda s: s.drops == 1, 3)
        with pytest.raises(Exception) as info:  # fails: no hang waiting for an ACK that cannot come
            await publisher.publish("chan", "while-dead")
        assert str(info.value)
        assert time.monotonic() - killed_at < publisher.timeout_s + 1
        restarted = asyncio.ensure_future(asyncio.to_thread(start_target, "targets.ably", "--port", port, *TARGET_ARGS))
        await every(seen, lambda s: s.back == 1, 15)
        back_after = time.monotonic() - killed_at
        procs.append((await restarted)[1])
        assert back_after < 10, f"reconnected after {back_after:.1f} s"
        for s in seen:
            assert s.drops == 1 and s.errors == []
            assert len(s.reconnect_ns) == 1 and 0 < s.reconnect_ns[0] < back_after * 1e9
        if publisher.client.connection.state != ConnectionState.CONNECTED:
            await asyncio.wait_for(publisher.client.connection.once_async(ConnectionState.CONNECTED), 10)
        await publisher.publish("chan", "after-restart")
        await every(seen, lambda s: len(s.data) == 2, 5)
        for s in seen:
            assert [d for d, _, _ in s.data] == ["before", "after-restart"]
        await publisher.close()
        for sub in subs:
            await sub.close()
        await provider.aclose()

    try:
        run(scenario(), timeout=60)
    finally:
        for p in procs:
            p.stop()


def test_a_publish_never_acked_fails_in_time_with_a_reason() -> None:
    async def scenario() -> None:
        async with fake_ably() as fake:  # CONNECTED and ATTACHED, but never an ACK
            provider = AblyProvider(fake.url, options(ably_format="json", host=fake.url))
            publisher = await provider.open_publisher()
            assert isinstance(publisher, AblyPublisher)
            publisher.timeout_s = 0.5
            started = time.monotonic()
            with pytest.raises(TimeoutError, match=r"^no ACK from Ably within 0\.5 s$"):
                await publisher.publish("chan", "unanswered")
            assert 0.5 <= time.monotonic() - started < 1.5
            await publisher.close()
            await provider.aclose()

    run(scenario())


@pytest.mark.load
def test_official_client_run_whose_target_is_killed_fails_with_every_subscriber_dropped(tmp_path: Path) -> None:
    url, target = start_target("targets.ably", "--port", "0", "--key", TEST_KEY)
    load = ["-u", "11", "-r", "11", "-t", "8s", "--publish-rate", "20", "--drain-timeout", "2", "--client", "official"]
    where = ["--host", url, "--ably-key", TEST_KEY, "--report-dir", str(tmp_path)]
    run_ = subprocess.Popen(
        [*LOCUST, "-f", str(REPO / "scenarios" / "ably.py"), "--headless", "--only-summary", *load, *where],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_intervals(run_, tmp_path, rows=3)
        target.kill()
        target.wait()
        out, _ = run_.communicate(timeout=90)
    finally:
        if run_.poll() is None:
            run_.kill()
        target.stop()
    s = json.loads((tmp_path / "summary.json").read_text())
    assert run_.returncode == 1, out
    assert s["passed"] is False
    assert s["connections"]["dropped"] == 10 and s["connections"]["reconnected"] == 0
    assert s["messages"]["publish_failed"] > 0
    assert s["messages"]["lost"] >= s["messages"]["publish_failed"] * 10
    assert all(reason.strip() for reason in s["errors_by_reason"]), s["errors_by_reason"]
    assert "Traceback" not in out and SECRET not in out
    assert_accounted(s)


# -- item 9: a server answering garbage ------------------------------------------------------------
@pytest.mark.parametrize("client", ["lean", "official"])
@pytest.mark.parametrize("fmt", ["msgpack", "json"])
def test_garbage_server_fails_the_connect_with_a_reason_and_no_traceback(
    client: str, fmt: str, console: Console
) -> None:

    async def scenario() -> None:
        async with garbage_server() as url:
            provider = AblyProvider(url, options(host=url, client=client, ably_format=fmt))
            started = time.monotonic()
            with pytest.raises(ConnectionError) as sub_info:
                await provider.open_subscriber("chan", Seen().hooks())
            with pytest.raises(ConnectionError) as pub_info:  # the publisher is ably-python whatever the client
                await provider.open_publisher()
            assert time.monotonic() - started < 10
            for info in (sub_info, pub_info):
                assert "Ably sent an undecodable frame: " in str(info.value), str(info.value)
                assert SECRET not in str(info.value)
            await provider.aclose()

    run(scenario())
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in console.records)
    assert len({r.getMessage() for r in console.records}) == len(console.records)  # one line per reason at most


def test_garbage_on_a_live_official_subscription_is_a_counted_error_with_a_reason(console: Console) -> None:
    async def scenario() -> None:
        async with fake_ably() as fake:
            provider = AblyProvider(fake.url, options(ably_format="json", host=fake.url, client="official"))
            seen = Seen()
            sub = await provider.open_subscriber("chan", seen.hooks())
            await fake.live[0].send_str("{garbage")
            await fake.live[0].send_str('{"action":15,"channel":"chan","messages":[{"name":"ev","data":"fine"}]}')
            await seen.until(lambda: bool(seen.errors) and bool(seen.data), 5)
            assert len(seen.errors) == 1 and seen.errors[0].startswith("Ably sent an undecodable frame: ")
            assert seen.errors[0] != "Ably sent an undecodable frame: "
            assert seen.data[0][0] == "fine" and seen.drops == 0  # ably-python carries on past the frame
            await sub.close()
            await provider.aclose()

    run(scenario())
    assert console.records == []  # counted in the run, not printed


@pytest.mark.load
@pytest.mark.parametrize("client", ["lean", "official"])
def test_a_run_against_a_garbage_server_counts_every_failure_with_a_reason(tmp_path: Path, client: str) -> None:
    with garbage_server_thread() as url:
        done = run_scenario(
            "ably",
            *("--host", url, "--ably-key", TEST_KEY, "-u", "6", "-r", "6", "-t", "10s", "--client", client),
            *("--drain-timeout", "1"),
            folder=tmp_path,
        )
    s = done.summary
    assert done.returncode == 1
    assert s["connections"]["failed"] == 5 and s["connections"]["opened"] == 0
    reasons = s["errors_by_reason"]
    assert sum(reasons.values()) == s["messages"]["errors"] >= 5
    for reason in reasons:
        assert "Ably sent an undecodable frame: " in reason and not reason.endswith(": "), reasons
    output = done.stdout + done.stderr
    assert "Traceback" not in output and SECRET not in output
    assert_accounted(s)
