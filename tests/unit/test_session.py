"""The generator session end to end on the in-memory loopback provider: exact counts, no sockets, no Locust.

Each test runs the real GeneratorSession and Recorder on its own event loop and reads the final report
as the collector would (``account`` over its ledgers and subscribers).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from harness.loop import session as session_mod
from harness.loop.session import STEADY_NOT_YET, GeneratorSession
from harness.measure import hist, probe
from harness.measure.accounting import SubscriberRecord, Totals, account
from harness.providers.base import PublisherHandle, SubscriberHandle
from harness.providers.loopback import LoopbackHub, LoopbackProvider, LoopbackRefused, LoopbackSubscriber
from tests.generators import provider_options

pytestmark = pytest.mark.timeout(10)

_hosts = itertools.count()


@pytest.fixture(autouse=True)
def _no_stamping_probe(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``begin`` checks once per process that the kernel stamps UDP on loopback: a socket these tests avoid."""
    monkeypatch.setattr(session_mod, "timestamps_ready", lambda: True)
    yield
    LoopbackProvider.hubs.clear()


def new_session(*argv: str) -> GeneratorSession:
    host = f"loopback://test-{next(_hosts)}"
    return GeneratorSession(LoopbackProvider, host, provider_options("loopback", host, *argv))


def hub_of(session: GeneratorSession) -> LoopbackHub:
    provider = session.provider
    assert isinstance(provider, LoopbackProvider)
    return provider.hub


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


async def until(condition: Callable[[], bool], timeout_s: float = 3.0) -> None:
    """Let the loop run until ``condition`` holds (deliveries are loop callbacks, so polling sees them)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.002)


async def subscribe(session: GeneratorSession, count: int) -> list[tuple[SubscriberRecord, SubscriberHandle]]:
    return [await session.open_subscriber(session.next_channel()) for _ in range(count)]


class HandPublisher:
    """Publishes exactly the messages a test chooses, each through the recorder as the session's loop does."""

    def __init__(self, session: GeneratorSession, handle: PublisherHandle, channel: str) -> None:
        self.session, self.handle = session, handle
        self.ledger = session.recorder.ledger(f"hand.{channel}", channel)

    async def send(self, due_ns: int | None = None) -> None:
        recorder = self.session.recorder
        due = time.time_ns() if due_ns is None else due_ns
        seq = len(self.ledger.sent_ns)
        text = probe.encode(recorder.run_id, self.ledger.stream_id, seq, due, 64)
        recorder.published(self.ledger, time.time_ns(), due)
        await self.handle.publish(self.ledger.channel, text)


async def hand_publisher(session: GeneratorSession, channel: str = probe.channel_name(0)) -> HandPublisher:
    return HandPublisher(session, await session.provider.open_publisher(), channel)


def totals(final: dict[str, Any]) -> Totals:
    """The collector's exact accounting of one generator's final report."""
    return account(final["ledgers"], final["subscribers"])


def expected_delivered_lost(final: dict[str, Any]) -> tuple[int, int, int]:
    got = totals(final)
    return got.expected, got.delivered, got.lost


def count(final: dict[str, Any], name: str) -> int:
    return int(hist.decode(final[name]).get_total_count())


def test_every_subscriber_gets_every_message_exactly_once() -> None:
    async def body() -> None:
        session = new_session("--channels", "1")
        session.begin("run-a")
        session.steady_from(0)
        subs = await subscribe(session, 4)
        publisher = await hand_publisher(session)
        for _ in range(25):
            await publisher.send()
        await until(lambda: session.recorder.delivered == 4 * 25)
        _last, final = await session.finish(drain_timeout_s=2)
        assert final["delivered"] == 100
        assert final["counts"]["published"] == 25
        assert final["counts"]["opened"] == 4
        assert final["rx_clocks"] == {"read": 4}
        assert count(final, "latency") == 100 and count(final, "ramp") == 0
        assert expected_delivered_lost(final) == (100, 100, 0)
        assert totals(final).duplicated == 0 and totals(final).out_of_order == 0
        for record, handle in subs:
            await session.close_subscriber(record, handle)
        assert hub_of(session).subscribers() == []
        await session.aclose()

    run(body)


def test_the_sessions_open_model_publisher_reaches_every_subscriber_on_every_channel() -> None:
    async def body() -> None:
        session = new_session("--channels", "2")
        session.begin("run-b")
        session.steady_from(0)
        await subscribe(session, 6)  # three per channel
        await session.start_publisher(rate=400)
        await until(lambda: session.recorder.counts["published"] >= 40)
        _last, final = await session.finish(drain_timeout_s=2)
        published = final["counts"]["published"]
        assert published >= 40
        assert {ledger["channel"] for ledger in final["ledgers"]} == {probe.channel_name(0), probe.channel_name(1)}
        assert final["delivered"] == 3 * published  # each message reaches the three subscribers of its channel
        assert expected_delivered_lost(final) == (3 * published, 3 * published, 0)
        assert hub_of(session).published == published
        await session.aclose()

    run(body)


def test_discarded_deliveries_are_counted_lost_exactly() -> None:
    async def body() -> None:
        session = new_session()
        session.begin("run-c")
        session.steady_from(0)
        await subscribe(session, 3)
        victim = hub_of(session).subscribers()[1]
        victim.drop_next(2)
        publisher = await hand_publisher(session)
        for _ in range(10):
            await publisher.send()
        await until(lambda: session.recorder.delivered == 3 * 10 - 2)
        _last, final = await session.finish(drain_timeout_s=2)
        assert victim.discarded == 2 and victim.received == 8
        assert final["delivered"] == 28
        assert expected_delivered_lost(final) == (30, 28, 2)
        await session.aclose()

    run(body)


def test_deliveries_due_before_the_steady_state_go_to_the_ramp_histogram() -> None:
    async def body() -> None:
        session = new_session()
        session.begin("run-d")
        assert session.recorder.steady_from_ns == STEADY_NOT_YET  # everything is ramp-up until told otherwise
        await subscribe(session, 2)
        publisher = await hand_publisher(session)
        for _ in range(3):
            await publisher.send()
        steady = time.time_ns() + 1
        session.steady_from(steady)
        for _ in range(5):
            await publisher.send(due_ns=max(time.time_ns(), steady))
        await until(lambda: session.recorder.delivered == 2 * 8)
        _last, final = await session.finish(drain_timeout_s=2)
        assert final["steady_from_ns"] == steady
        assert count(final, "ramp") == 2 * 3
        assert count(final, "latency") == 2 * 5
        assert count(final, "publish_lag") == 5  # only the steady state's sends
        assert sum(len(seqs) for seqs, _ in final["fanout"].values()) == 5  # fan-out: steady messages only
        assert totals(final).lost == 0
        await session.aclose()

    run(body)


def test_spawning_complete_waits_for_subscribers_still_connecting() -> None:
    async def body() -> None:
        session = new_session()
        session.begin("run-e")
        hub = hub_of(session)
        hub.connect_gate = asyncio.Event()
        opening = asyncio.ensure_future(session.open_subscriber(session.next_channel()))
        await until(lambda: len(session.recorder.subscribers) == 1)  # its record exists: it is connecting
        session.spawning_complete(warmup_s=0.5)
        assert session.recorder.steady_from_ns == STEADY_NOT_YET  # a connection is still being made
        before = time.time_ns()
        hub.connect_gate.set()
        await opening
        after = time.time_ns()
        steady = session.recorder.steady_from_ns
        assert before + 500_000_000 <= steady <= after + 500_000_000
        await session.finish(drain_timeout_s=0.5)
        await session.aclose()

    run(body)


def test_a_refused_connect_is_counted_and_leaves_no_subscriber() -> None:
    async def body() -> None:
        session = new_session()
        session.begin("run-f")
        hub_of(session).refuse_next_connects(1)
        with pytest.raises(LoopbackRefused):
            await session.open_subscriber(session.next_channel())
        await subscribe(session, 1)
        _last, final = await session.finish(drain_timeout_s=0.5)
        assert (final["counts"]["failed"], final["counts"]["opened"]) == (1, 1)
        assert len(final["subscribers"]) == 1
        assert any(reason.startswith("connect failed: LoopbackRefused") for reason in final["error_reasons"])
        await session.aclose()

    run(body)


def test_a_failed_publish_is_counted_and_lost_to_every_subscriber() -> None:
    async def body() -> None:
        session = new_session()
        session.begin("run-g")
        session.steady_from(0)
        await subscribe(session, 2)
        hub_of(session).fail_next_publishes(1)
        await session.start_publisher(rate=500)
        await until(lambda: session.recorder.delivered >= 20)
        _last, final = await session.finish(drain_timeout_s=2)
        published = final["counts"]["published"]
        assert hub_of(session).published == published
        assert [len(ledger["failed"]) for ledger in final["ledgers"]] == [1]
        assert final["counts"]["errors"] == 1
        assert expected_delivered_lost(final) == (2 * (published + 1), 2 * published, 2)
        assert totals(final).publish_failed == 1
        await session.aclose()

    run(body)


def test_a_disconnect_is_a_drop_and_a_resubscribe_and_messages_while_down_are_lost() -> None:
    """Nobody asked the subscriber to leave: what was published while it was away was owed to it."""

    async def body() -> None:
        session = new_session()
        session.begin("run-h")
        session.steady_from(0)
        await subscribe(session, 2)
        victim: LoopbackSubscriber = hub_of(session).subscribers()[0]
        publisher = await hand_publisher(session)
        for _ in range(3):
            await publisher.send()
        await until(lambda: session.recorder.delivered == 6)
        victim.disconnect()
        assert session.recorder.reconnecting == 1
        for _ in range(4):
            await publisher.send()
        await until(lambda: session.recorder.delivered == 6 + 4)
        victim.reconnect()
        for _ in range(2):
            await publisher.send()
        await until(lambda: session.recorder.delivered == 10 + 4)
        _last, final = await session.finish(drain_timeout_s=2)
        assert (final["counts"]["dropped"], final["counts"]["reconnected"]) == (1, 1)
        assert count(final, "reconnect") == 1
        assert len(final["subscribers"][0]["windows"]) == 2
        assert victim.received == 3 + 2
        assert final["subscribers"][0]["windows"][0][1] == final["subscribers"][0]["windows"][1][0]  # no gap
        assert expected_delivered_lost(final) == (18, 14, 4)
        await session.aclose()

    run(body)


def test_a_subscriber_that_never_comes_back_loses_what_was_published_after_its_drop() -> None:
    async def body() -> None:
        session = new_session()
        session.begin("run-h2")
        session.steady_from(0)
        await subscribe(session, 2)
        victim: LoopbackSubscriber = hub_of(session).subscribers()[0]
        publisher = await hand_publisher(session)
        for _ in range(3):
            await publisher.send()
        await until(lambda: session.recorder.delivered == 6)
        victim.disconnect()
        for _ in range(4):
            await publisher.send()
        await until(lambda: session.recorder.delivered == 6 + 4)
        _last, final = await session.finish(drain_timeout_s=0.6)
        assert (final["counts"]["dropped"], final["counts"]["reconnected"]) == (1, 0)
        assert expected_delivered_lost(final) == (14, 10, 4)
        await session.aclose()

    run(body)


def test_the_drain_ends_when_deliveries_go_quiet_and_waits_for_those_in_flight() -> None:
    async def body() -> None:
        session = new_session("--loopback-delay-ms", "150")
        session.begin("run-i")
        session.steady_from(0)
        await subscribe(session, 3)
        publisher = await hand_publisher(session)
        for _ in range(5):
            await publisher.send()
        assert session.recorder.delivered == 0  # all five are still in flight
        started = time.monotonic()
        _last, final = await session.finish(drain_timeout_s=5)
        elapsed = time.monotonic() - started
        assert final["delivered"] == 15 and totals(final).lost == 0
        assert elapsed < 2.0  # quiet long before the 5 s timeout
        assert (
            hist.decode(final["latency"]).get_min_value() >= 149_000
        )  # us (3 significant digits): the hub's delay is in every latency
        await session.aclose()

    run(body)


def test_the_drain_waits_past_a_quiet_spell_for_messages_known_in_flight() -> None:
    """A server slow to write the last messages (here 0.6 s, past the 0.25 s quiet spell) delays them;
    the generator knows they were sent while its subscribers listened, so it waits: late, not lost."""

    async def body() -> None:
        session = new_session("--loopback-delay-ms", "600")
        session.begin("run-late")
        session.steady_from(0)
        await subscribe(session, 3)
        publisher = await hand_publisher(session)
        for _ in range(5):
            await publisher.send()
        assert session.recorder.in_flight() == 15
        _last, final = await session.finish(drain_timeout_s=5)
        assert final["delivered"] == 15 and totals(final).lost == 0
        assert session.recorder.in_flight() == 0
        await session.aclose()

    run(body)


def test_a_generator_without_the_publisher_waits_for_what_a_fellow_subscriber_already_got() -> None:
    """Two generators on one target, as with ``--processes``: the publisher's ledger is on the other one,
    so this one waits for the messages one of its own subscribers has and another has not yet."""

    async def body() -> None:
        publishing = new_session()
        host = publishing.host
        listening = GeneratorSession(LoopbackProvider, host, provider_options("loopback", host))
        for session in (publishing, listening):
            session.begin("run-two")
            session.steady_from(0)
        await subscribe(listening, 2)
        publisher = await hand_publisher(publishing)
        await publisher.send()
        await until(lambda: listening.recorder.delivered == 2)
        slow = hub_of(listening).subscribers()[1]
        deliver = slow.schedule
        slow.schedule = lambda text, _delay_s: deliver(text, 0.6)  # type: ignore[method-assign]
        for _ in range(4):
            await publisher.send()
        await until(lambda: listening.recorder.delivered == 6)
        assert listening.recorder.in_flight() == 4
        _last, final = await listening.finish(drain_timeout_s=5)
        _last, published = await publishing.finish(drain_timeout_s=1)
        got = account(published["ledgers"], final["subscribers"])
        assert (got.expected, got.delivered, got.lost) == (10, 10, 0)
        for session in (publishing, listening):
            await session.aclose()

    run(body)


def test_the_drain_gives_up_at_its_timeout_while_a_subscriber_is_still_down() -> None:
    async def body() -> None:
        session = new_session()
        session.begin("run-j")
        session.steady_from(0)
        await subscribe(session, 1)
        hub_of(session).subscribers()[0].disconnect()
        started = time.monotonic()
        _last, final = await session.finish(drain_timeout_s=0.6)
        elapsed = time.monotonic() - started
        assert 0.6 <= elapsed < 1.5
        assert (final["counts"]["dropped"], final["counts"]["reconnected"]) == (1, 0)
        await session.aclose()

    run(body)


def test_the_drain_waits_for_a_subscriber_coming_back() -> None:
    async def body() -> None:
        session = new_session()
        session.begin("run-k")
        session.steady_from(0)
        await subscribe(session, 1)
        hub_of(session).subscribers()[0].disconnect(down_s=0.4)
        _last, final = await session.finish(drain_timeout_s=3)
        assert (final["counts"]["dropped"], final["counts"]["reconnected"]) == (1, 1)
        assert (
            hist.decode(final["reconnect"]).get_min_value() >= 399_000
        )  # us (3 significant digits): how long it was down
        await session.aclose()

    run(body)


def test_publish_lag_is_recorded_for_every_steady_send() -> None:
    async def body() -> None:
        session = new_session()
        session.begin("run-l")
        session.steady_from(0)
        await subscribe(session, 1)
        await session.start_publisher(rate=200)
        await until(lambda: session.recorder.counts["published"] >= 20)
        _last, final = await session.finish(drain_timeout_s=2)
        lag = hist.decode(final["publish_lag"])
        assert lag.get_total_count() == final["counts"]["published"]
        assert lag.get_max_value() < 1_000_000  # us: an idle loop sends within a second of the due time
        assert len(session.take_ui_publish()) == final["counts"]["published"]
        await session.aclose()

    run(body)


def test_deliveries_published_from_another_thread_run_on_the_subscribers_loop() -> None:
    async def body() -> None:
        session = new_session()
        session.begin("run-m")
        session.steady_from(0)
        await subscribe(session, 2)
        publisher = await hand_publisher(session)
        loop_thread = asyncio.get_running_loop()
        seen: list[bool] = []
        hook = hub_of(session).subscribers()[0].hooks
        original = hook.on_data

        def on_data(data: object, rx_ns: int) -> None:
            seen.append(asyncio.get_running_loop() is loop_thread)
            original(data, rx_ns)

        hook.on_data = on_data
        await asyncio.to_thread(asyncio.run, publisher.send())
        await until(lambda: session.recorder.delivered == 2)
        _last, final = await session.finish(drain_timeout_s=1)
        assert seen == [True]
        assert totals(final).lost == 0
        await session.aclose()

    run(body)
