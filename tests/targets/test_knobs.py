"""The shared knobs ``--replay-fault`` and ``--accept-connections`` on every reference target: real
subprocesses on port 0, the harness's own lean subscribers and publishers (what ``rtbench check`` uses).

Absence of a delivery is proven with a fence: every target keeps per-connection order, so once the
message published after the replayed one has arrived, every copy of the replayed one that was going to
arrive has.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest

from harness import providers
from harness.checklist.clients import CHANNEL, REPLAY_MARK
from harness.providers.base import SubscriberHandle, SubscriberHooks
from harness.providers.http import close_shared_session
from targets.base import main
from targets.faults import REPLAY_SUFFIX, Faults
from tests.generators import provider_options
from tests.helpers import REPO, TargetProcess, start_target

pytestmark = pytest.mark.timeout(60)

PROVIDERS = ("socketio", "sse", "pusher", "ably")

PUBLISH_PATHS = [
    ("socketio", ("--publish-via", "socket")),
    ("socketio", ("--publish-via", "http")),
    ("sse", ()),
    ("pusher", ()),
    ("ably", ("--ably-publish", "realtime")),
    ("ably", ("--ably-publish", "rest")),
]
"""Every publish path a provider's publisher has (the Pusher REST API is its only one)."""

HTTP_PUBLISH = {"socketio": ("--publish-via", "http"), "ably": ("--ably-publish", "rest")}
"""Publishers that open no connection of their own (the admission tests count connections)."""

REPLAYED = f"m1|{REPLAY_MARK}"
EXPECTED = {
    "none": ["m0", REPLAYED, "m2"],
    "drop": ["m0", "m2"],
    "duplicate": ["m0", REPLAYED, REPLAYED, "m2"],
}


def run(coro: Awaitable[Any], timeout: float = 30.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def targets() -> Iterator[Callable[..., str]]:
    """Starts a target once per distinct command line in this module; all stopped at its end."""
    started: dict[tuple[str, ...], tuple[str, TargetProcess]] = {}

    def target(provider: str, *args: str) -> str:
        key = (provider, *args)
        if key not in started:
            started[key] = start_target(f"targets.{provider}", "--host", "127.0.0.1", "--port", "0", *args)
        return started[key][0]

    yield target
    for _, proc in started.values():  # all told at once: they shut down side by side
        proc.send_signal(signal.SIGTERM)
    for _, proc in started.values():
        try:
            proc.wait(5)
        finally:
            proc.stop()  # SIGKILL if still there
        assert proc.returncode == 0, proc.stderr_text()


class Inbox:
    """What one subscriber received, in order; wakes waiters on every arrival."""

    def __init__(self) -> None:
        self.got: list[str] = []
        self.changed = asyncio.Event()

    def hooks(self) -> SubscriberHooks:
        return SubscriberHooks(on_data=self.on_data)

    def on_data(self, data: object, _rx_ns: int) -> None:
        self.got.append(data.decode() if isinstance(data, bytes | bytearray) else str(data))
        self.changed.set()

    async def until(self, last: str, timeout: float = 10.0) -> list[str]:
        """Everything received once ``last`` (the fence) has arrived."""
        async with asyncio.timeout(timeout):
            while last not in self.got:
                self.changed.clear()
                await self.changed.wait()
        return self.got


class Clients:
    """One provider's lean subscribers and a publisher on this loop, all closed by ``aclose``."""

    def __init__(self, provider: str, url: str, *argv: str) -> None:
        self.provider = providers.load(provider)(url, provider_options(provider, url, *argv))
        self.handles: list[Any] = []

    async def subscriber(self) -> tuple[SubscriberHandle, Inbox]:
        inbox = Inbox()
        handle = await asyncio.wait_for(self.provider.open_subscriber(CHANNEL, inbox.hooks()), 10)
        self.handles.append(handle)
        return handle, inbox

    async def publish(self, *texts: str) -> None:
        publisher = await asyncio.wait_for(self.provider.open_publisher(), 10)
        self.handles.append(publisher)
        for text in texts:
            await asyncio.wait_for(publisher.publish(CHANNEL, text), 10)

    async def aclose(self) -> None:
        for handle in self.handles:
            await asyncio.wait_for(handle.close(), 5)
        await self.provider.aclose()
        await close_shared_session()


async def healthz(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/healthz") as resp:
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
        return body


# -- --replay-fault ---------------------------------------------------------------------------------


def test_the_replay_mark_is_the_checklists() -> None:
    assert REPLAY_SUFFIX == "|" + REPLAY_MARK


def test_copies_decide_on_the_payload_string_only() -> None:
    drop, duplicate = Faults(replay_fault="drop"), Faults(replay_fault="duplicate")
    for payload in ("x|replay", b"x|replay"):
        assert (Faults().copies(payload), drop.copies(payload), duplicate.copies(payload)) == (1, 0, 2)
    for other in ("x|replay ", "x|replayed", "replay", None, {"data": "x|replay"}, 7):
        assert (drop.copies(other), duplicate.copies(other)) == (1, 1)


@pytest.mark.parametrize("fault", list(EXPECTED))
@pytest.mark.parametrize(("provider", "argv"), PUBLISH_PATHS, ids=lambda p: " ".join(p) if isinstance(p, tuple) else p)
def test_replay_fault(targets: Callable[..., str], provider: str, argv: tuple[str, ...], fault: str) -> None:
    """Two subscribers get the ordinary messages once each, and the replayed one once, never or twice."""
    url = targets(provider, "--replay-fault", fault)

    async def scenario() -> list[list[str]]:
        clients = Clients(provider, url, *argv)
        try:
            inboxes = [(await clients.subscriber())[1] for _ in range(2)]
            await clients.publish("m0", REPLAYED, "m2")
            return [await inbox.until("m2") for inbox in inboxes]
        finally:
            await clients.aclose()

    assert run(scenario()) == [EXPECTED[fault]] * 2


def test_duplicated_sse_events_have_ids_of_their_own(targets: Callable[..., str]) -> None:
    """The publisher is answered for the first copy; the stream carries two events, each with its id."""
    url = targets("sse", "--replay-fault", "duplicate")

    async def scenario() -> tuple[list[dict[str, Any]], list[str]]:
        async with aiohttp.ClientSession() as session:
            answers: list[dict[str, Any]] = []
            async with session.get(f"{url}/api/events?channel=dup") as stream:
                assert stream.status == 200
                await stream.content.readuntil(b": connected\n\n")
                for data in ("a", "b|replay", "c"):
                    async with session.post(f"{url}/api/publish", json={"channel": "dup", "data": data}) as resp:
                        assert resp.status == 200
                        answers.append(await resp.json())
                lines: list[str] = []
                while "data: c" not in lines:
                    lines.append((await stream.content.readline()).decode().rstrip("\n"))
        return answers, lines

    answers, lines = run(scenario())
    assert [a["recipients"] for a in answers] == [1, 1, 1]
    ids = [line.removeprefix("id: ") for line in lines if line.startswith("id: ")]
    assert [line for line in lines if line.startswith("data: ")] == ["data: a", *["data: b|replay"] * 2, "data: c"]
    assert len(set(ids)) == 4
    assert [a["id"] for a in answers] == [ids[0], ids[1], ids[3]]


def test_dropped_sse_event_is_answered_and_never_replayed(targets: Callable[..., str]) -> None:
    """A dropped replay is answered like any event (an id, the recipients), yet neither a live stream nor a
    client resuming from before it is sent it."""
    url = targets("sse", "--replay-fault", "drop")

    async def data_until_c(stream: aiohttp.ClientResponse) -> list[str]:
        lines: list[str] = []
        while "data: c" not in lines:
            lines.append((await stream.content.readline()).decode().rstrip("\n"))
        return [line for line in lines if line.startswith("data: ")]

    async def scenario() -> tuple[list[dict[str, Any]], list[str], list[str]]:
        async with aiohttp.ClientSession() as session:
            answers = []
            async with session.get(f"{url}/api/events?channel=drop") as live:
                await live.content.readuntil(b": connected\n\n")
                for data in ("a", "b|replay", "c"):
                    async with session.post(f"{url}/api/publish", json={"channel": "drop", "data": data}) as resp:
                        assert resp.status == 200
                        answers.append(await resp.json())
                got_live = await data_until_c(live)
            resume = {"Last-Event-ID": answers[0]["id"]}
            async with session.get(f"{url}/api/events?channel=drop", headers=resume) as stream:
                got_resumed = await data_until_c(stream)
        return answers, got_live, got_resumed

    answers, live, resumed = run(scenario())
    assert len({a["id"] for a in answers}) == 3 and [a["recipients"] for a in answers] == [1, 1, 1]
    assert live == ["data: a", "data: c"]
    assert resumed == ["data: c"]


# -- --accept-connections ---------------------------------------------------------------------------


async def refused_raw(url: str, provider: str) -> tuple[int, str]:
    """A plain subscriber request past the limit: the status and body it gets."""
    async with aiohttp.ClientSession() as session:
        if provider == "sse":
            async with session.get(f"{url}/api/events", headers={"Accept": "text/event-stream"}) as resp:
                return resp.status, await resp.text()
        try:
            async with session.ws_connect(f"{url}/any/path"):
                pass
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status, exc.message
        raise AssertionError("the websocket upgrade was accepted")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_accept_connections(targets: Callable[..., str], provider: str) -> None:
    """Two subscribers get in and are served; the third (lean) and a raw upgrade get 503; publishing and
    /healthz are not subscriber connections and keep working."""
    url = targets(provider, "--accept-connections", "2")

    async def scenario() -> tuple[list[list[str]], str, tuple[int, str], dict[str, Any], dict[str, Any]]:
        before = await healthz(url)
        clients = Clients(provider, url, *HTTP_PUBLISH.get(provider, ()))
        try:
            inboxes = [(await clients.subscriber())[1] for _ in range(2)]
            with pytest.raises(Exception) as refused:  # each client says it its way, the status in it
                await clients.subscriber()
            raw = await refused_raw(url, provider)
            await clients.publish("after")
            got = [await inbox.until("after") for inbox in inboxes]
        finally:
            await clients.aclose()
        return got, str(refused.value), raw, before, await healthz(url)

    got, reason, (status, body), before, after = run(scenario())
    assert got == [["after"], ["after"]]
    assert "503" in reason
    assert status == 503
    if provider == "sse":  # aiohttp keeps the websocket refusal's body from us
        assert body.startswith("not accepting connections: all 2 accepted")
    assert (before["connections_accepted"], before["connections_refused"]) == (0, 0)
    assert (after["connections_accepted"], after["connections_refused"]) == (2, 2)
    assert after["ok"] is True and after["target"] == provider


def test_accept_no_connections(targets: Callable[..., str]) -> None:
    """``--accept-connections 0``: the very first subscriber is refused, on any path."""
    url = targets("socketio", "--accept-connections", "0")
    status, _ = run(refused_raw(url, "socketio"))
    health = run(healthz(url))
    assert status == 503
    assert (health["connections_accepted"], health["connections_refused"]) == (0, 1)


def test_healthz_has_no_admission_counts_without_the_knob(targets: Callable[..., str]) -> None:
    health = run(healthz(targets("sse", "--replay-fault", "none")))
    assert "connections_accepted" not in health and "connections_refused" not in health


# -- bad values -------------------------------------------------------------------------------------


BAD = [
    (("--replay-fault", "sometimes"), "--replay-fault must be one of none, drop, duplicate"),
    (("--accept-connections", "-1"), "--accept-connections must be >= 0"),
    (("--accept-connections", "two"), "argument --accept-connections: invalid int value: 'two'"),
]


@pytest.mark.parametrize(("argv", "message"), BAD, ids=lambda v: " ".join(v) if isinstance(v, tuple) else None)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_bad_values_are_one_line_and_exit_2(
    provider: str, argv: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """In process: ``main`` refuses before it binds anything (the subprocess case follows)."""
    target = __import__(f"targets.{provider}", fromlist=["build_app"])
    with pytest.raises(SystemExit) as exited:
        main(target.build_app, target.NAME, 0, ["--port", "0", *argv], add_args=target.add_args)
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and err == f"targets.{provider}: error: {message}\n"


def test_bad_value_as_a_process() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "targets.ably", "--port", "0", "--replay-fault", "twice"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == "targets.ably: error: --replay-fault must be one of none, drop, duplicate\n"
