"""The todo-app figures (harness/measure/appstats.py), their summary section, gates and constants."""

from __future__ import annotations

import pytest

from harness.loop import app
from harness.measure import gates, hist
from harness.measure.appstats import AppStats, summary_section
from harness.measure.records import FinalReport
from harness.measure.refetch import ALWAYS, COALESCED, Fresh
from targets import todos

MS = 1_000_000


def final_with(stats: AppStats) -> FinalReport:
    return {"todo_app": stats.to_wire()}  # type: ignore[typeddict-item]  # only the key the section reads


def test_steady_samples_are_recorded_and_ramp_ones_only_counted() -> None:
    stats = AppStats(COALESCED)
    stats.steady_from_ns = 100 * MS
    stats.mutated(due_ns=50 * MS, round_trip_ns=9 * MS, ok=True)  # ramp: counted, not timed
    stats.mutated(due_ns=150 * MS, round_trip_ns=4 * MS, ok=True)
    stats.mutated(due_ns=160 * MS, round_trip_ns=1 * MS, ok=False)
    stats.made_fresh([Fresh("a", 50 * MS, 52 * MS, 60 * MS), Fresh("b", 150 * MS, 152 * MS, 170 * MS)])
    wire = stats.to_wire()
    assert hist.latency_summary(hist.decode(wire["mutation"]))["count"] == 1
    assert hist.latency_summary(hist.decode(wire["fresh"]))["p50"] == pytest.approx(20.0, rel=1e-3)
    assert hist.latency_summary(hist.decode(wire["after_event"]))["p50"] == pytest.approx(18.0, rel=1e-3)
    counts = wire["counts"]
    assert (counts["mutations"], counts["mutation_errors"], counts["fresh"], counts["ramp_fresh"]) == (2, 1, 1, 1)


def test_the_section_merges_generators_and_counts_the_stampede() -> None:
    finals = []
    for policy_gets in (2, 3):
        stats = AppStats(ALWAYS)
        stats.mutation_rate = 5.0
        query = stats.reader()
        for k in range(policy_gets):
            query.invalidate(f"e{k}", due_ns=k * MS, event_ns=k * MS + MS)
        for _ in range(policy_gets):
            stats.refetched(3 * MS, ok=True)
            stats.made_fresh(query.settled([f"e{k}" for k in range(policy_gets)], done_ns=10 * MS)[0])
        stats.refetched(3 * MS, ok=False)
        finals.append(final_with(stats))
    event_ms = hist.latency_summary(hist.new())
    section = summary_section(finals, event_ms, duration_s=2.0)
    assert section is not None
    assert section["refetch"]["requests"] == 2 + 3 + 2
    assert section["refetch"]["errors"] == 2 and section["refetch"]["per_s"] == 3.5
    assert (section["readers"], section["fresh"], section["stale"], section["invalidations"]) == (2, 5, 0, 5)
    assert section["mutation_rate"] == 10.0 and section["event_ms"] is event_ms
    assert section["api_ms"]["count"] == section["refetch"]["latency_ms"]["count"] + section["mutation_ms"]["count"]
    assert summary_section([{}], event_ms, 1.0) is None  # type: ignore[list-item]  # a plain run: no section


def test_stale_counts_what_a_refetching_reader_never_saw_fresh() -> None:
    stats = AppStats(COALESCED)
    stats.reader().invalidate("e0", due_ns=0, event_ns=MS)
    assert stats.in_flight() == 2  # one GET, one pending mutation: the drain waits for both
    assert stats.to_wire()["counts"]["stale"] == 1


def test_each_stale_mutation_is_counted_under_why_it_never_became_fresh() -> None:
    """Three readers, each left with pending mutations for another reason: no GET answered after the
    event (one still in flight), a GET that failed last, GETs that answered without the mutation (an app
    that omits it forever; a list answered before an event does not count as leaving that one out)."""
    stats = AppStats(COALESCED)
    in_flight, failed, unlisted = stats.reader(), stats.reader(), stats.reader()
    in_flight.invalidate("a", due_ns=0, event_ns=MS)
    failed.invalidate("a", due_ns=0, event_ns=MS)
    failed.invalidate("b", due_ns=MS, event_ns=2 * MS)  # folded into the follow-up
    failed.settled(None, done_ns=3 * MS)  # starts the follow-up
    failed.settled(None, done_ns=4 * MS)  # fails too; its retry is due later
    failed.in_flight = 0  # the run ended before the retry
    unlisted.invalidate("a", due_ns=0, event_ns=MS)
    unlisted.invalidate("b", due_ns=MS, event_ns=3 * MS)  # after the GET below completes: owed a follow-up
    unlisted.settled(["someone else's"], done_ns=2 * MS)
    unlisted.in_flight = 0  # the run ended before the follow-up answered
    section = summary_section([final_with(stats)], hist.latency_summary(hist.new()), duration_s=1.0)
    assert section is not None
    assert section["stale"] == 5
    assert section["stale_by_reason"] == {
        "no refetch answered after its event": 2,
        "the last refetch failed": 2,
        "refetches answered without it": 1,
    }
    assert not gates.parse("fresh_p99<1s").evaluate({"todo_app": section})["passed"]  # no data, stale ones


def test_a_fresh_gate_fails_while_any_mutation_stayed_stale() -> None:
    """Stale mutations count in no percentile, so a fast p99 over the others must not pass the gate."""
    good = {"todo_app": {"fresh_ms": {"count": 9, "p99": 5.0}, "stale": 0}}
    assert gates.parse("fresh_p99<1s").evaluate(good)["passed"]
    stale = {"todo_app": {"fresh_ms": {"count": 9, "p99": 5.0}, "stale": 1}}
    assert not gates.parse("fresh_p99<1s").evaluate(stale)["passed"]
    assert not gates.parse("fresh_max<1s").evaluate(stale)["passed"]
    assert gates.parse("event_p99<1s").evaluate({"todo_app": {"event_ms": {"count": 9, "p99": 5.0}, "stale": 1}})[
        "passed"
    ]  # only time to fresh data is judged by it


@pytest.mark.parametrize("metric", ["fresh_p99", "event_p99", "api_p99", "mutation_p50"])
def test_app_gates_read_the_todo_app_section_and_fail_without_data(metric: str) -> None:
    block = {"fresh_p99": "fresh_ms", "event_p99": "event_ms", "api_p99": "api_ms", "mutation_p50": "mutation_ms"}
    point = metric.rsplit("_", 1)[1]
    gate = gates.parse(f"{metric}<50ms")
    with_data = {"todo_app": {block[metric]: {"count": 3, point: 12.5}}}
    assert gate.evaluate(with_data) == {"expr": f"{metric}<50ms", "value": 12.5, "passed": True}
    assert not gates.parse(f"{metric}<10ms").evaluate(with_data)["passed"]
    assert not gate.evaluate({"latency_ms": {"count": 1, "p99": 1.0}})["passed"]  # not an app run: no pass


def test_the_harness_speaks_the_targets_app_api() -> None:
    assert (app.PROBE_HEADER, app.APP_CHANNEL) == (todos.PROBE_HEADER, todos.TODOS_CHANNEL)


def test_the_live_ui_gets_each_sample_once() -> None:
    stats = AppStats(COALESCED)
    stats.refetched(3 * MS, ok=True)
    stats.made_fresh([Fresh("a", 0, MS, 7 * MS)])
    assert stats.take_ui() == ([3.0], [7.0])
    assert stats.take_ui() == ([], [])
