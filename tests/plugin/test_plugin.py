"""The Locust plugin end to end on the loopback provider: hooks, both roles, users reaching the session
through the environment, the run folder, the live stats and the exit code, in a few seconds."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from harness.plugin import messages
from tests.runs import assert_accounted, run_scenario

SCENARIO = Path(__file__).with_name("loopback_scenario.py")
DELAY_MS = 5


#: five users: one publisher (fixed_count 1) and four subscribers


def loopback_run(folder: Path, *args: str) -> tuple[int, str, dict[str, Any]]:
    """Exit code, everything printed, and summary.json of one short run."""
    run = run_scenario(
        SCENARIO,
        *("-u", "5", "-r", "5", "-t", "3s", "--publish-rate", "20", "--warmup", "0.5", "--drain-timeout", "2"),
        *("--loopback-delay-ms", str(DELAY_MS), *args),
        folder=folder,
        timeout=60,
    )
    assert (folder / "summary.json").exists(), run.stdout + run.stderr
    return run.returncode, run.stdout + run.stderr, json.loads((folder / "summary.json").read_text())


def test_a_local_run_accounts_every_message_and_writes_the_run(tmp_path: Path) -> None:
    code, stdout, s = loopback_run(tmp_path, "--gate", "loss==0")
    assert code == 0, stdout
    assert s["provider"] == "loopback" and s["target"] == "loopback" and s["passed"] is True
    assert s["connections"]["opened"] == 4 and s["connections"]["failed"] == 0
    assert s["messages"]["lost"] == 0 and s["messages"]["delivered"] > 0
    assert_accounted(s)
    # the hub's delay is in every steady delivery, never less (the publisher never sends before the due time)
    assert s["latency_ms"]["min"] >= DELAY_MS
    assert s["parameters"]["loopback_delay_ms"] == str(DELAY_MS)  # provider options are shown in the report
    assert (tmp_path / "report.html").exists() and (tmp_path / "latency.hlog").exists()
    rows = (tmp_path / "timeseries.csv").read_text().splitlines()
    assert len(rows) >= 3  # a header and an interval a second
    # Locust's own table got every delivery through the batched live-stats merge
    shown = re.search(r"PUSH\s+deliver\s+(\d+)", stdout)
    assert shown is not None, stdout
    assert int(shown.group(1)) == s["messages"]["delivered"]


def test_a_failed_gate_is_exit_code_one(tmp_path: Path) -> None:
    code, stdout, s = loopback_run(tmp_path, "--gate", f"p50<{DELAY_MS - 1}ms")
    assert code == 1, stdout
    assert s["passed"] is False and s["gates"][0]["passed"] is False


def test_reports_of_another_run_are_refused() -> None:
    report = {"delivered": 3}
    assert messages.report_of("run-a", messages.tagged("run-a", report)) == report  # type: ignore[arg-type]
    assert messages.report_of("run-a", messages.tagged("run-b", report)) is None  # type: ignore[arg-type]
    assert messages.report_of("run-a", report) is None  # untagged: an older or foreign worker
    assert messages.report_of("run-a", None) is None
