"""A server that accepts and never answers, seen by the generator session: publishes that get no answer and
connections still being made when the run ends are counted (with a reason), and ``finish`` stays bounded.

Runs on the in-memory loopback provider: a publisher whose publish never returns and the hub's connect
gate (never opened) stand in for the silent server; no sockets.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from harness.loop import session as session_mod
from harness.loop.session import RUN_ENDED, GeneratorSession, RunEnded
from harness.measure.accounting import Totals, account
from harness.measure.records import FinalReport
from harness.providers.base import PublisherHandle
from tests.unit.test_session import _no_stamping_probe, hub_of, new_session, run, subscribe, until

__all__ = ["_no_stamping_probe"]  # the autouse fixture, shared with test_session

pytestmark = pytest.mark.timeout(15)


class UnansweredPublisher(PublisherHandle):
    """Every publish waits for an answer that never comes (what a silent server gives)."""

    def __init__(self) -> None:
        self.attempts = 0
        self.closed = False

    async def publish(self, channel: str, text: str) -> None:
        self.attempts += 1
        await asyncio.Event().wait()

    async def close(self) -> None:
        self.closed = True


def unanswered(session: GeneratorSession) -> UnansweredPublisher:
    handle = UnansweredPublisher()

    async def open_publisher() -> PublisherHandle:
        return handle

    session.provider.open_publisher = open_publisher  # type: ignore[method-assign]
    return handle


def totals(final: FinalReport) -> Totals:
    return account(final["ledgers"], final["subscribers"])


def test_a_publish_with_no_answer_fails_after_the_publish_timeout_and_is_owed_to_every_subscriber() -> None:
    async def body() -> None:
        session = new_session("--channels", "1")
        session.begin("silent-a")
        session.steady_from(0)
        session.publish_timeout_s = 0.05
        await subscribe(session, 3)
        handle = unanswered(session)
        await session.start_publisher(rate=200)
        await until(lambda: handle.attempts >= 3)  # the schedule goes on past each unanswered publish
        _last, final = await session.finish(drain_timeout_s=0.3)
        failed = totals(final).publish_failed
        assert failed >= 3 and failed == handle.attempts
        assert final["counts"]["published"] == 0
        assert final["error_reasons"]["publish failed: no answer within 0.05 s"] >= 2
        assert totals(final).lost == 3 * failed  # each owed to all three subscribers
        assert handle.closed
        await session.aclose()

    run(body)


def test_the_end_of_the_run_cuts_a_publish_waiting_for_its_answer_and_counts_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def body() -> None:
        monkeypatch.setattr(session_mod, "PUBLISHERS_STOP_MIN_S", 0.2)
        session = new_session("--channels", "1")
        session.begin("silent-b")
        session.steady_from(0)
        session.publish_timeout_s = 3600  # only the end of the run can end it
        await subscribe(session, 2)
        handle = unanswered(session)
        await session.start_publisher(rate=100)
        await until(lambda: handle.attempts == 1)
        began = time.monotonic()
        _last, final = await session.finish(drain_timeout_s=0.3)
        took = time.monotonic() - began
        assert took < 0.3 + session_mod.CUT_WAIT_S * 2  # not the publish timeout, not an unbounded wait
        assert final["error_reasons"] == {"publish failed: no answer when the run ended": 1}
        assert totals(final).publish_failed == 1
        assert totals(final).lost == 2
        await session.aclose()

    run(body)


def test_connections_still_being_made_when_the_run_ends_count_as_failed_with_a_reason() -> None:
    async def body() -> None:
        session = new_session()
        session.begin("silent-c")
        hub_of(session).connect_gate = asyncio.Event()  # never opened: no subscriber gets its answer
        openings = [asyncio.ensure_future(session.open_subscriber(session.next_channel())) for _ in range(4)]

        async def never_answered() -> PublisherHandle:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        session.provider.open_publisher = never_answered  # type: ignore[method-assign]
        publisher = asyncio.ensure_future(session.start_publisher(rate=10))
        await until(lambda: len(session.recorder.subscribers) == 4)
        _last, final = await session.finish(drain_timeout_s=0.2)
        assert (final["counts"]["failed"], final["counts"]["opened"]) == (4, 0)
        assert final["subscribers"] == []
        assert final["error_reasons"] == {
            f"connect failed: {RUN_ENDED}": 4,
            f"publisher connect failed: {RUN_ENDED}": 1,
        }
        for opening in [*openings, publisher]:  # the waiting user hears why, too
            with pytest.raises(RunEnded):
                await opening
        await session.aclose()

    run(body)


def test_a_connect_the_run_did_not_cut_is_still_cancellable() -> None:
    """Only the end of the run turns a cancelled connect into a failure; any other cancel stays a cancel."""

    async def body() -> None:
        session = new_session()
        session.begin("silent-d")
        hub_of(session).connect_gate = asyncio.Event()
        opening = asyncio.ensure_future(session.open_subscriber(session.next_channel()))
        await until(lambda: len(session.recorder.subscribers) == 1)
        opening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await opening
        await session.finish(drain_timeout_s=0.1)
        await session.aclose()

    run(body)
