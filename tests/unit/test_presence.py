"""Presence without a socket: the figures (harness/measure/presence.py), their summary section across
generators, and the targets' roster (targets/presence.py)."""

from __future__ import annotations

import pytest

from harness.measure.presence import PresenceStats, format_lines, member_info, summary_section
from targets.presence import Roster

MS = 1_000_000
S = 1_000_000_000
T0 = 1_700_000_000 * S


def three_members() -> PresenceStats:
    """a, b, c join 1 s apart (each told of the earlier ones), then leave in order."""
    stats = PresenceStats("run1", "clk")
    a, b, c = (stats.tally(name) for name in "abc")
    info = {name: member_info("run1", "clk", T0 + i * S) for i, name in enumerate("abc")}
    stats.joined(T0, T0 + 2 * MS)
    stats.listed(a, {"a": info["a"]})  # Pusher lists the joiner itself: not counted
    stats.joined(T0 + S, T0 + S + 2 * MS)
    stats.listed(b, {"a": info["a"]})
    stats.member_added(a, "b", info["b"], T0 + S + 3 * MS)
    stats.joined(T0 + 2 * S, T0 + 2 * S + 2 * MS)
    stats.listed(c, {"a": info["a"], "b": info["b"]})
    stats.member_added(a, "c", info["c"], T0 + 2 * S + 4 * MS)
    stats.member_added(b, "c", info["c"], T0 + 2 * S + 5 * MS)
    stats.left("a", T0 + 3 * S)
    stats.member_removed(b, "a", T0 + 3 * S + 1 * MS)
    stats.member_removed(c, "a", T0 + 3 * S + 1 * MS)
    stats.left("b", T0 + 3 * S + 10 * MS)
    stats.member_removed(c, "b", T0 + 3 * S + 12 * MS)
    return stats


def test_one_process_counts_and_times_every_member_event() -> None:
    wire = three_members().to_wire()
    assert wire["counts"] == {
        "members": 3,
        "join_failed": 0,
        "listed": 3,
        "added": 3,
        "removed": 3,
        "untimed": 0,
        "foreign": 0,
        "events": 6,
    }
    assert wire["client_peaks"] == [1, 1, 0]  # member_added only: a heard of b and c in different seconds
    section = summary_section([wire])
    assert section is not None
    assert (section["expected"], section["unaccounted"]) == (6, 0)
    assert section["member_added_ms"]["count"] == 3
    assert section["member_added_ms"]["min"] == pytest.approx(3.0, rel=1e-3)
    assert section["member_added_ms"]["max"] == pytest.approx(5.0, rel=1e-3)
    assert section["member_removed_ms"]["max"] == pytest.approx(2.0, rel=1e-3)
    assert section["join_ms"]["p50"] == pytest.approx(2.0, rel=1e-3)
    assert section["joins_per_s"] == {"peak": 1.0, "mean": 1.0}
    assert section["events_per_s"] == {"peak": 2.0, "mean": 3 / 2}  # seconds 1 and 2 after T0
    assert section["client_events_per_s"] == {"peak": 1.0, "mean": round(2 / 3, 3)}
    assert "member_added 3 + listed 3 of 6" in "\n".join(format_lines(section))


def test_generators_merge_and_what_cannot_be_timed_is_counted() -> None:
    here, there = PresenceStats("run1", "clk"), PresenceStats("run1", "other-host")
    x, y = here.tally("x"), there.tally("y")
    here.joined(T0, T0 + MS)
    there.joined(T0 + MS, T0 + 2 * MS)
    here.member_added(x, "y", member_info("run1", "other-host", T0 + MS), T0 + 3 * MS)  # another clock
    there.listed(y, {"x": member_info("run1", "clk", T0), "z": member_info("old-run", "clk", 0)})
    here.member_removed(x, "y", T0 + 4 * MS)  # y left in another process: no leave time here
    here.member_added(x, "x", member_info("run1", "clk", T0), T0 + 5 * MS)  # itself: an event, not news
    section = summary_section([here.to_wire(), there.to_wire()])
    assert section is not None
    assert (section["members"], section["member_added"], section["listed"], section["foreign"]) == (2, 1, 1, 1)
    assert (section["expected"], section["unaccounted"], section["untimed"]) == (2, 0, 2)
    assert section["member_added_ms"]["count"] == section["member_removed_ms"]["count"] == 0
    assert section["events"] == 3
    assert summary_section([]) is None


def test_a_failed_join_is_counted_and_not_a_member() -> None:
    stats = PresenceStats("run1", "clk")
    stats.join_failed()
    section = summary_section([stats.to_wire()])
    assert section is not None and (section["members"], section["join_failed"], section["expected"]) == (0, 1, 0)


def test_roster_adds_on_the_first_connection_and_removes_on_the_last() -> None:
    roster = Roster()
    assert roster.join("s1", "todos", "ann", {"n": 1}) == ({}, True)
    assert roster.join("s2", "todos", "bob", None) == ({"ann": {"n": 1}}, True)
    assert roster.join("s3", "todos", "ann", {"n": 2}) == ({"bob": None}, False)  # a second tab
    assert roster.leave("s1", "todos") is None  # ann is still there on s3
    assert roster.members("todos") == {"ann": {"n": 2}, "bob": None}
    assert roster.disconnect("s3") == [("todos", "ann")]
    assert roster.leave("s3", "todos") is None  # already gone
    assert roster.join("s2", "todos", "bea", None) == ({}, True)  # another id on s2: bob leaves first
    assert roster.members("todos") == {"bea": None}
    assert roster.disconnect("s2") == [("todos", "bea")]
    assert roster.members("todos") == {}


def test_member_gates_read_the_presence_section_and_fail_without_data_or_with_a_member_unheard_of() -> None:
    from harness.measure import gates

    section = summary_section([three_members().to_wire()])
    summary = {"todo_app": {"presence": section}}
    assert gates.parse("member_added_p99<10ms").evaluate(summary)["passed"] is True
    assert gates.parse("member_added_max<4ms").evaluate(summary) == {
        "expr": "member_added_max<4ms",
        "value": pytest.approx(5.0, rel=1e-3),
        "passed": False,
    }
    assert gates.parse("member_removed_p50<=2ms").evaluate(summary)["passed"] is True
    assert gates.parse("member_added_p99<10ms").evaluate({"todo_app": {}})["passed"] is False  # no data
    assert section is not None
    section["unaccounted"] = 1
    assert gates.parse("member_added_p99<10ms").evaluate(summary)["passed"] is False
