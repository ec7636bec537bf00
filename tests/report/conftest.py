"""Run folders to build reports from: a synthetic one made in-process (fast, exact, with secrets and
failures to show), and one real ``rtbench run socketio`` at small load shared by the whole folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.measure import hist
from harness.report.files import IntervalRow, RunFolder
from tests.helpers import REPO

RTBENCH = [sys.executable, "-m", "harness.cli"]
SECRET = "s3cr3t-do-not-print-9f2c"


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def rtbench(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None, timeout: float = 120) -> CliResult:
    """``rtbench ARGS`` as a user types it (a subprocess, so exit codes and stderr are the real ones)."""
    proc = subprocess.run(
        [*RTBENCH, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def make_summary(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schema": 1,
        "provider": "socketio",
        "target": "embedded",
        "run_id": "abc123def456",
        "started_at": "2025-01-01T12:00:00Z",
        "load": {
            "users": 100,
            "publish_rate": 10.0,
            "channels": 1,
            "payload_bytes": 256,
            "duration_s": 10.0,
            "processes": 1,
        },
        "latency_ms": {
            "count": 1000,
            "min": 0.5,
            "p50": 10.0,
            "p90": 20.0,
            "p95": 30.0,
            "p99": 49.0,
            "p999": 70.0,
            "max": 80.0,
            "mean": 12.0,
        },
        "connect_ms": {"count": 100, "p50": 100.0, "p95": 900.0, "p99": 950.0, "max": 999.0},
        "messages": {
            "published": 10,
            "expected": 1000,
            "delivered": 990,
            "lost": 10,
            "duplicated": 0,
            "out_of_order": 2,
            "errors": 0,
        },
        "connections": {"opened": 100, "failed": 0, "dropped": 0, "reconnected": 0},
        "errors_by_reason": {},
        "foreign_messages": 0,
        "harness": {
            "trustworthy": True,
            "reasons": [],
            "loop_lag_ms": {"p99": 0.5, "max": 1.0, "limit": 5.0},
            "cpu_peak_pct": 20.0,
            "generators": [{"generator": 0, "loop_lag_p99_ms": 0.5, "loop_lag_max_ms": 1.0, "cpu_peak_pct": 20.0}],
        },
        "gates": [{"expr": "p99<50ms", "value": 49.0, "passed": True}],
        "passed": True,
    }
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return base


def write_summary(folder: Path, summary: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "summary.json"
    path.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return path


def synthetic_run(
    folder: Path, *, seconds: int = 12, provider: str = "socketio", scale_ms: float = 1.0, **over: Any
) -> Path:
    """A run folder written by the real RunFolder writer from known latencies; its summary is exact."""
    writer = RunFolder(folder, start_ms=1_735_732_800_000)
    total = hist.new()
    for second in range(seconds):
        interval = hist.new()
        for i in range(200):
            value_us = int((500 + (i * 37 + second * 101) % 9000) * scale_ms)  # 0.5 .. 9.5 ms
            if i == 199 and second == seconds // 2:
                value_us = int(45_000 * scale_ms)  # one slow delivery: the tail the curve must show
            interval.record_value(value_us)
        total.add(interval)
        start = writer.start_ms + second * 1000
        writer.write_interval(
            start,
            start + 1000,
            interval,
            IntervalRow(connections=100, published=10, delivered=200, errors=0, dropped=0),
        )
    writer.close()
    connect = hist.new()
    for i in range(100):
        connect.record_value(20_000 + i * 300)
    summary = make_summary(
        provider=provider,
        latency_ms=hist.latency_summary(total),
        connect_ms=hist.connect_summary(connect),
        load={"duration_s": float(seconds)},
        messages={"published": seconds * 10, "expected": seconds * 200 + 7, "delivered": seconds * 200, "lost": 7},
    )
    summary.update(over)
    from harness.measure import gates

    summary["gates"] = gates.evaluate_all(gates.parse_all(["p99<50ms", "loss==0"]), summary)
    summary["passed"] = all(g["passed"] for g in summary["gates"])
    write_summary(folder, summary)
    return folder


@pytest.fixture
def synthetic(tmp_path: Path) -> Path:
    return synthetic_run(tmp_path / "run")


@pytest.fixture(scope="session")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CliResult]:
    """One real ``rtbench run socketio -u 10 -t 3s`` (embedded target), shared by every test here."""
    folder = tmp_path_factory.mktemp("real") / "socketio-run"
    result = rtbench(
        "run",
        "socketio",
        "-u",
        "10",
        "-t",
        "3s",
        "--report-dir",
        str(folder),
        "--gate",
        "p99<50ms",
        "--gate",
        "loss==0",
        timeout=120,
    )
    return folder, result


@pytest.fixture(autouse=True)
def _no_step_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests run inside GitHub Actions too: never append to the real job summary."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
