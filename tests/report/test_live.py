"""The web UI's live figures without Locust: built from interval reports by the summary's code, exact, then
summary.json's once the run is written; a new run starts from nothing in a folder of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.measure import gates, hist
from harness.measure.summary import fanout_histogram
from harness.report import collector as collector_mod
from harness.report import files, live
from harness.report.collector import Collector
from tests.report.test_collector import REQUEST
from tests.unit.fake_reports import A_LATENCIES_US, B_LATENCIES_US, arrivals, fake_clock, histogram, two_generators

GATES = ["p99<50ms", "loss==0"]


def test_live_figures_are_the_merged_intervals_then_the_summary(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clock = fake_clock(monkeypatch, collector_mod, live)
    (a_interval, a_final), (b_interval, b_final) = two_generators()
    collector = Collector("socketio", "embedded", gates.parse_all(GATES))
    assert live.figures(collector, REQUEST, "ready") == {
        "state": "ready",
        "run_id": "",
        "final": False,
        "version": 0,
        "series": [],
    }
    collector.begin("run", tmp_path / "run")
    collector.add_interval("w1", a_interval)
    collector.add_interval("w2", b_interval)
    running = live.figures(collector, REQUEST, "running")

    a_steady, _ = arrivals(A_LATENCIES_US)
    b_steady, b_ramp = arrivals(B_LATENCIES_US, ramp_before=2)
    assert running["final"] is False and running["state"] == "running" and running["run_id"] == "run"
    assert running["latency_ms"] == hist.latency_summary(histogram(a_steady + b_steady))  # exact, merged
    assert running["ramp_ms"] == hist.latency_summary(histogram(b_ramp))
    # each message's slowest delivery over both generators so far: the final figure, as no delivery is owed
    assert running["fanout_ms"] == hist.latency_summary(fanout_histogram([a_final, b_final]))
    assert running["fanout_ms"]["count"] == 6  # every published message
    assert running["connect_ms"] == hist.connect_summary(histogram([1500, 1500, 1800]))
    # provisional accounting: the open gaps (A's second subscriber missed 1 and 4, B's missed 4)
    assert running["messages"] == {
        "published": 6,
        "publish_failed": 0,
        "expected": 18,
        "delivered": 15,
        "lost": 3,
        "duplicated": 0,
        "out_of_order": 0,
        "outside_windows": 0,
        "errors": 4,
    }
    assert running["connections"] == {"opened": 3, "failed": 0, "dropped": 0, "reconnected": 0, "open": 3}
    assert running["gates"] == [
        {"expr": "p99<50ms", "value": 2.0, "passed": True},
        {"expr": "loss==0", "value": 3.0, "passed": False},
    ]
    assert running["passed"] is False
    assert [g["generator"] for g in running["harness"]["generators"]] == [0, 1]  # in node order
    assert running["series"] == []  # no flush yet

    collector.add_final("w1", a_final)
    collector.add_final("w2", b_final)
    clock.monotonic_s += 6.0
    summary = collector.finalize(REQUEST)
    final = live.figures(collector, REQUEST, "stopped")
    assert final["final"] is True and final["version"] > running["version"]
    for key in live.BLOCKS:
        if key != "connections":
            assert final[key] == summary[key], key
    assert final["connections"] == {**summary["connections"], "open": 3}
    for key in ("latency_ms", "ramp_ms", "fanout_ms", "connect_ms", "messages", "gates", "passed"):
        assert running[key] == summary[key], key
    [point] = final["series"]  # the flush at finalize: every delivery of the interval, as timeseries.csv
    assert point["p99"] == hist.latency_summary(histogram(a_steady + b_steady + b_ramp))["p99"]

    collector.begin("run2", tmp_path / "run-2")  # a new run from the same web UI starts from nothing
    fresh = live.figures(collector, REQUEST, "spawning")
    assert fresh["final"] is False and fresh["series"] == [] and fresh["run_id"] == "run2"
    assert fresh["messages"]["delivered"] == 0 and fresh["latency_ms"]["count"] == 0


def test_rows_show_every_figure_as_text() -> None:
    payload = {
        "state": "running",
        "run_id": "r1",
        "final": False,
        "version": 7,
        "latency_ms": {"count": 2, "p50": 1.5, "max": 2.0},
        "fanout_ms": None,
        "connect_ms": {"count": 1, "p99": 3.25},
        "messages": {"published": 4, "lost": 0},
        "connections": {"opened": 1, "open": 1},
        "gates": [{"expr": "p99<50ms", "value": 2.0, "passed": True}],
        "passed": True,
        "harness": {"trustworthy": False, "reasons": ["late"], "generators": [{"generator": 0, "cpu_peak_pct": 9.5}]},
    }
    assert [(r["figure"], r["value"]) for r in live.rows(payload)] == [
        ("figures", "live"),
        ("version", "7"),
        ("delivery count", "2"),
        ("delivery p50 ms", "1.5"),
        ("delivery max ms", "2"),
        ("fan-out ms", "at the end of the run"),
        ("connect count", "1"),
        ("connect p99 ms", "3.25"),
        ("messages published", "4"),
        ("messages lost", "0"),
        ("connections opened", "1"),
        ("connections open", "1"),
        ("gate p99<50ms", "PASS (value 2)"),
        ("verdict", "PASSED"),
        ("harness", "NOT trustworthy"),
        ("harness reason 1", "late"),
        ("generator 0 cpu_peak_pct", "9.5"),
    ]


def test_each_run_of_a_session_gets_its_own_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    base = tmp_path / "out"
    assert [files.run_folder(base, "sse", i) for i in (1, 2, 3)] == [base, tmp_path / "out-2", tmp_path / "out-3"]
    monkeypatch.chdir(tmp_path)
    first = files.run_folder(None, "sse", 1)
    first.mkdir(parents=True)
    assert files.run_folder(None, "sse", 1) == first  # a headless run keeps its name
    second = files.run_folder(None, "sse", 2)  # the same second: suffixed, never the first's folder
    assert second.parent == first.parent and second != first


def test_a_view_holds_its_figures_until_the_next_flush(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_clock(monkeypatch, collector_mod, live)
    (a_interval, _), (b_interval, _) = two_generators()
    collector = Collector("socketio", "embedded", gates.parse_all(GATES))
    view = live.LiveView(collector)
    collector.begin("run", tmp_path / "run")
    collector.add_interval("w1", a_interval)
    first = view.figures(REQUEST, "running")
    collector.add_interval("w2", b_interval)  # arrives between two flushes: the next version shows it
    assert view.figures(REQUEST, "stopping") == {**first, "state": "stopping"}
    collector.flush()
    second = view.figures(REQUEST, "running")
    assert second["version"] == first["version"] + 1
    assert second["messages"]["delivered"] == 15 > first["messages"]["delivered"] == 10
    assert len(second["series"]) == 1


def test_live_fan_out_waits_for_the_end_past_its_bound(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A generator with more messages than the live view follows: fan-out is null until the run ends."""
    fake_clock(monkeypatch, collector_mod, live)
    monkeypatch.setattr("harness.report.partial.LIVE_FANOUT_MAX", 5)  # 6 messages were published
    (a_interval, _), (b_interval, _) = two_generators()
    collector = Collector("socketio", "embedded", gates.parse_all(GATES))
    collector.begin("run", tmp_path / "run")
    collector.add_interval("w1", a_interval)
    collector.add_interval("w2", b_interval)
    assert live.figures(collector, REQUEST, "running")["fanout_ms"] is None
