"""The publisher schedule's options (``loop/session.py: Schedule``), which the todo app's writers use:
concurrent sends, a limit, a start event; on a hand-made publisher handle, no sockets."""

from __future__ import annotations

import asyncio
import time

from harness.loop.session import Schedule
from harness.providers.base import PublisherHandle
from tests.unit.test_session import new_session, run, until


class SlowHandle(PublisherHandle):
    """Answers each publish after ``answer_s``; remembers when each began."""

    def __init__(self, answer_s: float) -> None:
        self.answer_s = answer_s
        self.began: list[float] = []
        self.answered = 0

    async def publish(self, channel: str, text: str) -> None:
        self.began.append(time.monotonic())
        await asyncio.sleep(self.answer_s)
        self.answered += 1

    async def close(self) -> None:
        pass


async def opened(handle: PublisherHandle) -> PublisherHandle:
    return handle


def test_concurrent_sends_keep_the_schedule_while_answers_are_slow_and_the_limit_stops_it() -> None:
    async def body() -> None:
        session = new_session()
        session.begin("run-s1")
        session.steady_from(0)
        handle = SlowHandle(answer_s=0.1)
        plan = Schedule(concurrent=True, limit=10)
        await session.start_publisher(200, opened(handle), channels=["app"], payload_bytes=0, plan=plan)
        await until(lambda: handle.answered == 10)
        assert len(handle.began) == 10
        assert handle.began[-1] - handle.began[0] < 0.5  # one after another would take 10 x 100 ms
        _last, final = await session.finish(drain_timeout_s=0.5)
        [ledger] = final["ledgers"]
        assert (ledger["channel"], len(ledger["sent_ns"]), ledger["failed"]) == ("app", 10, [])
        await session.aclose()

    run(body)


def test_the_schedule_starts_when_its_event_is_set() -> None:
    async def body() -> None:
        session = new_session()
        session.begin("run-s2")
        session.steady_from(0)
        go = asyncio.Event()
        handle = SlowHandle(answer_s=0)
        await session.start_publisher(500, opened(handle), channels=["app"], plan=Schedule(after=go))
        for _ in range(20):  # twenty loop turns, ten due times' worth: nothing may be sent before the event
            await asyncio.sleep(0.002)
        assert handle.began == [] and session.recorder.counts["published"] == 0
        go.set()
        await until(lambda: handle.answered >= 3)
        _last, final = await session.finish(drain_timeout_s=0.5)
        assert final["counts"]["published"] == len(handle.began) >= 3
        await session.aclose()

    run(body)


def test_concurrent_sends_unanswered_at_the_end_are_failed() -> None:
    async def body() -> None:
        session = new_session()
        session.begin("run-s3")
        session.steady_from(0)
        handle = SlowHandle(answer_s=30)
        await session.start_publisher(100, opened(handle), channels=["app"], plan=Schedule(concurrent=True, limit=4))
        await until(lambda: len(handle.began) == 4)
        _last, final = await session.finish(drain_timeout_s=0.2)
        [ledger] = final["ledgers"]
        assert len(ledger["failed"]) == 4 and handle.answered == 0
        assert final["error_reasons"] == {"publish failed: no answer when the run ended": 4}
        await session.aclose()

    run(body)
