"""The Collector without Locust or sockets: interval reports merged into exact csv rows and hlog lines,
finals into summary.json and generators.json, on a fake clock so every number can be stated."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from harness.measure import gates, hist
from harness.measure.recorder import Recorder
from harness.measure.records import LoadRequest
from harness.measure.summary import format_text
from harness.report import collector as collector_mod
from harness.report.collector import Collector
from harness.report.files import TIMESERIES_COLUMNS
from tests.unit.fake_reports import (
    A_LATENCIES_US,
    B_LATENCIES_US,
    arrivals,
    fake_clock,
    histogram,
    interval,
    two_generators,
)

REQUEST: LoadRequest = {"users": 3, "publish_rate": 1000.0, "channels": 1, "payload_bytes": 64}
ROUND_1 = {"w1": [1000, 1100, 1200], "w2": [1500, 1900]}
ROUND_2 = {"w1": [1300], "w2": []}


def rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "timeseries.csv").open(encoding="ascii") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == TIMESERIES_COLUMNS
        return list(reader)


def hlog_histograms(folder: Path) -> list[tuple[str, str, str, object]]:
    """(start s, length s, max ms, histogram) per data line of latency.hlog."""
    lines = (folder / "latency.hlog").read_text(encoding="ascii").splitlines()
    data = [line.split(",") for line in lines if line and line[0] not in '#"']
    return [(start, length, top, hist.decode(encoded)) for start, length, top, encoded in data]


def test_intervals_are_merged_into_one_row_and_one_hlog_line_per_flush(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_clock(monkeypatch, collector_mod)
    collector = Collector("socketio", "embedded", gates.parse_all(None))
    collector.begin("run", tmp_path / "run")
    assert collector.folder is not None
    t0 = collector.folder.start_ms
    collector.add_interval(
        "w1",
        interval(t0, t0 + 1000, ROUND_1["w1"], connections=2, published=3, lost=1, cpu_pct=12.0, loop_lag_p99_ms=0.4),
    )
    collector.add_interval(
        "w2",
        interval(t0 + 5, t0 + 1003, ROUND_1["w2"], connections=1, published=0, dropped=1, errors=1, cpu_pct=30.0),
    )
    collector.flush()
    collector.flush()  # nothing new: no row
    collector.add_interval("w1", interval(t0 + 1000, t0 + 2000, ROUND_2["w1"], connections=2, published=1))
    collector.add_interval("w2", interval(t0 + 1003, t0 + 2001, ROUND_2["w2"], connections=0, published=0))
    collector.flush()
    collector.folder.close()

    # round 1 merged: 1000 1100 1200 1500 1900 us; round 2: 1300 us
    assert rows(tmp_path / "run") == [
        {
            "elapsed_s": "1.003",
            "connections": "3",
            "published": "3",
            "delivered": "5",
            "errors": "1",
            "dropped": "1",
            "p50_ms": "1.2",
            "p95_ms": "1.9",
            "p99_ms": "1.9",
            "max_ms": "1.9",
            "open_gaps": "1",
            "cpu_pct": "30.0",  # the busiest generator's
            "loop_lag_p99_ms": "0.4",
        },
        {
            "elapsed_s": "2.001",
            "connections": "2",  # each generator's latest count: w2 has closed its subscriber
            "published": "1",
            "delivered": "1",
            "errors": "0",
            "dropped": "0",
            "p50_ms": "1.3",
            "p95_ms": "1.3",
            "p99_ms": "1.3",
            "max_ms": "1.3",
            "open_gaps": "1",  # still open: a level, not this interval's new gaps
            "cpu_pct": "0.0",
            "loop_lag_p99_ms": "0.0",
        },
    ]
    lines = hlog_histograms(tmp_path / "run")
    assert [line[:3] for line in lines] == [("0.000", "1.003", "1.900"), ("1.000", "1.001", "1.300")]
    union_1 = histogram(ROUND_1["w1"] + ROUND_1["w2"])
    assert hist.latency_summary(lines[0][3]) == hist.latency_summary(union_1)
    assert hist.latency_summary(lines[1][3]) == hist.latency_summary(histogram(ROUND_2["w1"]))


def test_finalize_writes_the_summary_of_every_final_and_each_generator_apart(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clock = fake_clock(monkeypatch, collector_mod)
    (a_interval, a_final), (b_interval, b_final) = two_generators()
    collector = Collector("socketio", "embedded", gates.parse_all(["p99<50ms", "loss==0"]))
    collector.begin("run", tmp_path / "run")
    collector.add_interval("w2", b_interval)  # pending until finalize, which flushes it
    collector.add_interval("w1", a_interval)
    collector.add_final("w2", b_final)
    collector.add_final("w1", a_final)
    clock.monotonic_s += 6.0004
    summary = collector.finalize(REQUEST, {"host": "http://127.0.0.1:1", "num_users": 3})

    folder = tmp_path / "run"
    assert json.loads((folder / "summary.json").read_text(encoding="utf-8")) == summary
    assert collector.last_summary is summary
    assert summary["run_id"] == "run" and summary["started_at"] == "2026-01-01T00:00:00Z"
    assert summary["load"] == {**REQUEST, "duration_s": 6.0, "processes": 2}
    assert list(summary)[-1] == "parameters"
    assert summary["parameters"] == {"host": "http://127.0.0.1:1", "num_users": 3}
    a_steady, _ = arrivals(A_LATENCIES_US)
    b_steady, _ = arrivals(B_LATENCIES_US, ramp_before=2)
    assert summary["latency_ms"] == hist.latency_summary(histogram(a_steady + b_steady))
    assert summary["latency_ms"]["count"] == 13 and summary["latency_ms"]["p99"] == 2.0
    assert summary["messages"] == {
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
    assert [g["cpu_peak_pct"] for g in summary["harness"]["generators"]] == [35.5, 10.0]  # in node order
    assert summary["gates"] == [
        {"expr": "p99<50ms", "value": 2.0, "passed": True},
        {"expr": "loss==0", "value": 3.0, "passed": False},
    ]
    assert json.loads((folder / "generators.json").read_text(encoding="utf-8")) == [
        {"node": "w1", "latency": a_final["latency"], "delivered": 10, "counts": a_final["counts"]},
        {"node": "w2", "latency": b_final["latency"], "delivered": 5, "counts": b_final["counts"]},
    ]
    assert a_final["counts"]["published"] == 6 and b_final["counts"]["foreign"] == 1
    [row] = rows(folder)  # both last intervals, merged into one row
    assert (row["connections"], row["delivered"], row["errors"]) == ("3", "15", "4")


def test_one_generator_writes_no_generators_file_and_no_parameters(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_clock(monkeypatch, collector_mod)
    (a_interval, a_final), _ = two_generators()
    collector = Collector("socketio", "embedded", gates.parse_all(None))
    collector.begin("run", tmp_path / "run")
    collector.add_interval("local", a_interval)
    collector.add_final("local", a_final)
    summary = collector.finalize(REQUEST)
    assert not (tmp_path / "run" / "generators.json").exists()
    assert "parameters" not in summary
    assert summary["load"]["processes"] == 1 and summary["load"]["duration_s"] == 0.0
    assert summary["messages"]["expected"] == 12 and summary["messages"]["lost"] == 2


# -- issue 11 item 13: rows that add up, and the size that was really sent --------------------------
def test_a_publish_failing_after_its_interval_never_makes_a_row_negative(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A publish counted in one interval and refused in the next (the target died, nothing else was sent)
    made the recorder's delta -1; the row shows 0 and the failure comes off the next row with room."""
    fake_clock(monkeypatch, collector_mod)
    recorder = Recorder("run")
    ledger = recorder.ledger("A.0", "ch.0")
    collector = Collector("socketio", "embedded", gates.parse_all(None))
    collector.begin("run", tmp_path / "run")
    assert collector.folder is not None
    t0 = collector.folder.start_ms

    def one_interval(start: int) -> int:
        """Close the recorder's interval into a row; the recorder's own published delta."""
        report = recorder.interval_report()
        collector.add_interval("local", {**report, "start_ms": t0 + start, "end_ms": t0 + start + 1000})
        collector.flush()
        return report["counts"]["published"]

    seqs = [recorder.published(ledger, 1) for _ in range(3)]
    assert one_interval(0) == 3
    recorder.publish_failed(ledger, seqs[0], "TimeoutError")
    recorder.publish_failed(ledger, seqs[1], "TimeoutError")
    assert one_interval(1000) == -2  # what the row used to show
    recorder.published(ledger, 1)
    assert one_interval(2000) == 1  # one sent, but two failures are still owed: the row shows 0
    for _ in range(4):
        recorder.published(ledger, 1)
    assert one_interval(3000) == 4  # four sent, one failure still owed: 3
    collector.folder.close()

    assert [row["published"] for row in rows(tmp_path / "run")] == ["3", "0", "0", "3"]
    assert recorder.counts["published"] == 6 == 3 + 0 + 0 + 3  # the rows add up to the final count


def test_open_gaps_is_a_level_summed_over_generators(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The column holds the sequence numbers missing so far (generators report how many opened or filled
    each interval), so a late arrival that fills a gap takes it back out."""
    fake_clock(monkeypatch, collector_mod)
    collector = Collector("socketio", "embedded", gates.parse_all(None))
    collector.begin("run", tmp_path / "run")
    assert collector.folder is not None
    t0 = collector.folder.start_ms
    for end, (w1, w2) in enumerate([(3, 0), (0, 2), (-1, 0), (0, -2)], start=1):
        collector.add_interval("w1", interval(t0, t0 + end * 1000, [], connections=1, published=0, lost=w1))
        collector.add_interval("w2", interval(t0, t0 + end * 1000, [], connections=1, published=0, lost=w2))
        collector.flush()
    collector.folder.close()
    assert [row["open_gaps"] for row in rows(tmp_path / "run")] == ["3", "5", "4", "2"]


def test_a_payload_smaller_than_the_envelope_is_recorded_as_sent(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """--payload-bytes 1: every message is the unpadded envelope; the largest, seq 5 of stream A.0, is
    ``rtb1|run|A.0|5|1767225600005100000|``: 35 bytes. The summary records that and says so."""
    fake_clock(monkeypatch, collector_mod)
    (a_interval, a_final), _ = two_generators()
    collector = Collector("socketio", "embedded", gates.parse_all(None))
    collector.begin("run", tmp_path / "run")
    collector.add_interval("local", a_interval)
    collector.add_final("local", a_final)
    summary = collector.finalize({**REQUEST, "payload_bytes": 1})
    assert len("rtb1|run|A.0|5|1767225600005100000|") == 35
    assert summary["load"]["payload_bytes"] == 35 and summary["load"]["payload_bytes_requested"] == 1
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["load"]["payload_bytes"] == 35
    assert (
        "  payload              35 bytes, raised from --payload-bytes 1: the probe envelope is sent whole"
        in format_text(summary, "run").splitlines()
    )


def test_a_payload_at_least_the_envelope_is_recorded_as_asked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_clock(monkeypatch, collector_mod)
    (_, a_final), _ = two_generators()
    collector = Collector("socketio", "embedded", gates.parse_all(None))
    collector.begin("run", tmp_path / "run")
    collector.add_final("local", a_final)
    summary = collector.finalize({**REQUEST, "payload_bytes": 35})
    assert summary["load"]["payload_bytes"] == 35 and "payload_bytes_requested" not in summary["load"]
    assert "payload " not in format_text(summary, "run")
