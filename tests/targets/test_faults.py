"""targets.faults.FaultPlan without sockets: exact decisions, one corrupted payload, delay ordering."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from targets.faults import FaultPlan, Faults

Plan = list[tuple[int, str]]


class Sink:
    """A deliver callback that records every plan it is handed, and when."""

    def __init__(self, want: int = 0) -> None:
        self.plans: list[Plan] = []
        self.at: list[float] = []
        self.want = want
        self.done = asyncio.Event() if want else None  # set once ``want`` plans arrived (in a running loop)

    def __call__(self, plan: Plan) -> None:
        self.plans.append(plan)
        self.at.append(time.monotonic())
        if self.done is not None and len(self.plans) >= self.want:
            self.done.set()


class Counter:
    """A corrupted-payload builder that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        return "BAD"


def expected(seed: int, n: int, drop: float, corrupt: float) -> Plan:
    """The plan the documented rule gives: per recipient, a drop draw, then (if kept) a corrupt draw."""
    rng = random.Random(seed)
    plan: Plan = []
    for r in range(n):
        if drop > 0 and rng.random() < drop:
            continue
        plan.append((r, "BAD" if corrupt > 0 and rng.random() < corrupt else "good"))
    return plan


def test_no_faults_delivers_everything_at_once_and_never_builds_the_corruption() -> None:
    sink, bad = Sink(), Counter()
    plan: FaultPlan[int, str] = FaultPlan(Faults(), sink)
    assert plan.send(list(range(5)), "good", bad) == 5
    assert sink.plans == [[(r, "good") for r in range(5)]]
    assert bad.calls == 0 and plan.pending == 0


def test_drop_everything_still_counts_recipients_at_publish_time() -> None:
    sink, bad = Sink(), Counter()
    plan: FaultPlan[int, str] = FaultPlan(Faults(drop_rate=1.0), sink)
    assert plan.send(list(range(7)), "good", bad) == 7
    assert sink.plans == [[]]
    assert bad.calls == 0


def test_corrupt_everything_builds_the_bad_payload_once() -> None:
    sink, bad = Sink(), Counter()
    plan: FaultPlan[int, str] = FaultPlan(Faults(corrupt_rate=1.0), sink)
    assert plan.send(list(range(6)), "good", bad) == 6
    assert sink.plans == [[(r, "BAD") for r in range(6)]]
    assert bad.calls == 1


@pytest.mark.parametrize(("drop", "corrupt"), [(0.3, 0.0), (0.0, 0.4), (0.25, 0.25)])
def test_seeded_decisions_are_exact_and_reproducible(drop: float, corrupt: float) -> None:
    sink = Sink()
    plan: FaultPlan[int, str] = FaultPlan(Faults(drop_rate=drop, corrupt_rate=corrupt, seed=11), sink)
    plan.send(list(range(200)), "good", Counter())
    assert sink.plans == [expected(11, 200, drop, corrupt)]
    kept = len(sink.plans[0])
    bad = sum(1 for _, payload in sink.plans[0] if payload == "BAD")
    assert (kept < 200) == (drop > 0) and (bad > 0) == (corrupt > 0)


def test_decisions_continue_across_publishes_in_order() -> None:
    """Two publishes of 50 draw exactly what one publish of 100 would: one RNG, in delivery order."""
    sink = Sink()
    plan: FaultPlan[int, str] = FaultPlan(Faults(drop_rate=0.5, seed=3), sink)
    plan.send(list(range(50)), "good", Counter())
    plan.send(list(range(50, 100)), "good", Counter())
    assert sink.plans[0] + sink.plans[1] == expected(3, 100, 0.5, 0.0)


def test_delay_delivers_whole_plans_in_publish_order_never_early() -> None:
    async def scenario() -> tuple[Sink, list[float], int]:
        sink = Sink(want=20)
        assert sink.done is not None
        plan: FaultPlan[int, str] = FaultPlan(Faults(delay_ms=30), sink)
        sent: list[float] = []
        for i in range(20):
            sent.append(time.monotonic())
            assert plan.send([i, i + 100], f"p{i}", Counter()) == 2
        queued = plan.pending
        assert sink.plans == []  # nothing delivered synchronously
        await asyncio.wait_for(sink.done.wait(), 5)
        return sink, sent, queued

    sink, sent, queued = asyncio.run(scenario())
    assert queued == 20
    assert sink.plans == [[(i, f"p{i}"), (i + 100, f"p{i}")] for i in range(20)]
    assert all(at - t0 >= 0.03 for at, t0 in zip(sink.at, sent, strict=True))


def test_delay_skips_empty_plans_and_cancel_forgets_pending() -> None:
    async def scenario() -> tuple[int, int, Sink]:
        sink = Sink(want=1)
        assert sink.done is not None
        plan: FaultPlan[int, str] = FaultPlan(Faults(delay_ms=20, drop_rate=1.0), sink)
        plan.send([1, 2, 3], "good", Counter())
        empty = plan.pending  # all dropped: nothing to wait for
        cancelled: FaultPlan[int, str] = FaultPlan(Faults(delay_ms=20), sink)
        cancelled.send([1], "cancelled", Counter())
        waiting = cancelled.pending
        cancelled.cancel()
        later: FaultPlan[int, str] = FaultPlan(Faults(delay_ms=40), sink)
        later.send([2], "later", Counter())  # due after the cancelled one would have been
        await asyncio.wait_for(sink.done.wait(), 5)
        return empty, waiting, sink

    empty, waiting, sink = asyncio.run(scenario())
    assert (empty, waiting) == (0, 1)
    assert sink.plans == [[(2, "later")]]
