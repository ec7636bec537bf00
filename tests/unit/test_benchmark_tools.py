"""The arithmetic and bookkeeping of benchmarks/: steady-state split, net costs, run-folder reading, process cost."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from benchmarks import hold, procstat
from benchmarks.socketio_vs_contrib import Run, net_cost
from benchmarks.wire import Delivery
from benchmarks.wire_vs_reported import steady_from


def _deliveries(per_due: dict[int, int]) -> list[Delivery]:
    return [Delivery(i, "p", due, due, due + 1000) for due, n in per_due.items() for i in range(n)]


def test_the_steady_split_is_the_due_time_where_the_wire_counts_the_reports_ramp_up() -> None:
    deliveries = _deliveries({100: 3, 200: 3, 300: 2, 400: 3})
    assert steady_from(deliveries, {"ramp_ms": {"count": 6}}) == (300, "inferred")
    assert steady_from(deliveries, {"ramp_ms": {"count": 0}}) == (100, "inferred")
    assert steady_from(deliveries, {"ramp_ms": {"count": 11}}) == (401, "inferred")


def test_a_ramp_count_no_due_time_gives_is_split_at_the_nearest_and_called_inexact() -> None:
    deliveries = _deliveries({100: 3, 200: 3, 300: 2})
    assert steady_from(deliveries, {"ramp_ms": {"count": 5}}) == (300, "inexact")  # 6 is nearest to 5
    assert steady_from(deliveries, {"ramp_ms": {"count": 1}}) == (100, "inexact")  # 0 is nearer than 3


def test_the_summarys_own_steady_start_wins() -> None:
    deliveries = _deliveries({100: 3, 200: 3})
    assert steady_from(deliveries, {"steady_from_ns": 150, "ramp_ms": {"count": 6}}) == (150, "summary")


def _run(subscribers: int, cpu_s: float, rss: int, delivered: int) -> Run:
    return Run("lean", subscribers, 0, cpu_s, rss, delivered, 10.0)


def test_net_cost_is_the_n_run_minus_the_one_subscriber_run() -> None:
    net = net_cost(_run(1001, 7.0, 300 * 2**20, 20_010), _run(1, 5.0, 100 * 2**20, 10))
    assert net["cpu_s_per_1k"] == pytest.approx(0.1)  # 2 CPU-s over 20,000 extra deliveries
    assert net["rss_kib_per_connection"] == pytest.approx(200 * 1024 / 1000)


def test_net_cost_without_extra_deliveries_is_not_a_number() -> None:
    net = net_cost(_run(2, 5.0, 100, 10), _run(1, 5.0, 100, 10))
    assert net["cpu_s_per_1k"] != net["cpu_s_per_1k"]


def test_hold_reads_the_run_start_and_when_every_subscriber_was_connected(tmp_path: Path) -> None:
    (tmp_path / "latency.hlog").write_text(
        "#[Histogram log format version 1.2]\n#[StartTime: 1700000000.250 (seconds since epoch), 2023-11-14]\n"
    )
    (tmp_path / "timeseries.csv").write_text(
        "elapsed_s,connections,published,delivered\n1.002,40,1,0\n2.004,100,2,150\n3.001,100,3,2"  # last row torn
    )
    assert hold.run_start(tmp_path) == 1700000000.25
    rows = hold.timeseries(tmp_path)
    assert [r["connections"] for r in rows] == [40, 100]
    assert hold.all_connected_after(rows, 100) == 2.004
    assert hold.all_connected_after(rows, 101) is None


def test_locust_marks_are_read_from_its_log_lines(tmp_path: Path) -> None:
    log = tmp_path / "locust.log"
    log.write_text(
        "[2026-12-01 03:02:53,355] vm/INFO/locust.runners: Ramping to 201 users at a rate of 200.00 per second\n"
        '[2026-12-01 03:02:54,357] vm/INFO/locust.runners: All users spawned: {"A": 1} (201 total users)\n'
        "[2026-12-01 03:03:05,500] vm/INFO/locust.main: --run-time limit reached, shutting down\n"
    )
    marks = procstat.locust_marks(log)
    assert marks["stopping"] - marks["spawned"] == pytest.approx(11.143)


def test_run_measured_charges_the_childs_exact_cpu(tmp_path: Path) -> None:
    busy = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"
    m = procstat.run_measured([sys.executable, "-c", busy], deadline_s=30, log=tmp_path / "log")
    assert m.code == 0 and not m.timed_out
    assert 0.3 <= m.cpu_s < 2.0
    assert m.samples and all(s.rss > 0 for s in m.samples)


def test_run_measured_interrupts_a_process_past_its_deadline(tmp_path: Path) -> None:
    started = time.monotonic()
    m = procstat.run_measured(
        [sys.executable, "-c", "import time; time.sleep(60)"], deadline_s=0.5, log=tmp_path / "log"
    )
    assert m.timed_out and m.code != 0
    assert time.monotonic() - started < 30
    assert "KeyboardInterrupt" in (tmp_path / "log").read_text()
