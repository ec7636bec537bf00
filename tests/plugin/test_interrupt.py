"""Ctrl-C at a terminal (SIGINT to the whole process group) ends a run with a result, not without one.

The first Ctrl-C stops, drains against a target that is still alive, and writes the run marked
interrupted (exit 1); a second one cuts the drain short and still writes what was measured.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO
from tests.runs import LOCUST, assert_accounted

RTBENCH = [sys.executable, "-m", "harness.cli"]

pytestmark = pytest.mark.load
LOOPBACK = REPO / "tests" / "plugin" / "loopback_scenario.py"


def start_run(scenario: Path, folder: Path, *args: str) -> subprocess.Popen[str]:
    """A headless Locust run in a process group of its own, as a terminal starts it."""
    cmd = [*LOCUST, "-f", str(scenario), "--headless", "--report-dir", str(folder), "--only-summary", *args]
    return start_in_terminal(cmd)


def start_in_terminal(cmd: list[str]) -> subprocess.Popen[str]:
    """A command in a process group of its own, as a terminal's foreground job: Ctrl-C reaches the group."""
    return subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def wait_for_intervals(run: subprocess.Popen[str], folder: Path, rows: int, timeout_s: float = 60) -> None:
    """Until the run folder holds ``rows`` interval rows: the run is measuring (bounded)."""
    deadline = time.monotonic() + timeout_s
    csv = folder / "timeseries.csv"
    while not (csv.exists() and len(csv.read_text().splitlines()) > rows):
        assert run.poll() is None, "the run ended before it was interrupted"
        assert time.monotonic() < deadline, "the run never reported intervals"
        time.sleep(0.1)  # polling a file another process writes; no event to await across processes


def ctrl_c(run: subprocess.Popen[str]) -> None:
    os.killpg(run.pid, signal.SIGINT)


def finish(run: subprocess.Popen[str], folder: Path) -> tuple[int, str, dict[str, Any]]:
    out, _ = run.communicate(timeout=90)
    assert (folder / "summary.json").exists(), out
    return run.returncode, out, json.loads((folder / "summary.json").read_text())


@pytest.mark.parametrize("processes", [[], ["--processes", "2"]], ids=["one-process", "processes-2"])
def test_first_ctrl_c_drains_against_a_live_target_and_writes_the_run(tmp_path: Path, processes: list[str]) -> None:
    scenario = REPO / "scenarios" / "socketio.py"
    run = start_run(scenario, tmp_path, "-u", "21", "-r", "21", "-t", "60s", "--publish-rate", "20", *processes)
    try:
        wait_for_intervals(run, tmp_path, rows=4)
        ctrl_c(run)
        code, out, s = finish(run, tmp_path)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert code == 1, out  # an interrupted run does not pass
    assert s["interrupted"] is True and "INTERRUPTED" in out
    assert s["load"]["duration_s"] < 50  # it ended at the Ctrl-C, not at -t
    # the embedded target was not in the terminal's group: nothing dropped, nothing failed, nothing lost
    assert s["connections"]["dropped"] == 0 and s["messages"]["errors"] == 0, s["errors_by_reason"]
    assert s["messages"]["lost"] == 0 and s["messages"]["delivered"] > 0
    assert_accounted(s)
    assert (tmp_path / "report.html").exists()
    if processes:  # both workers were drained by the master, not killed by the Ctrl-C
        assert len(json.loads((tmp_path / "generators.json").read_text())) == 2


def test_ctrl_c_on_rtbench_run_writes_the_run_once(tmp_path: Path) -> None:
    """``rtbench run`` forwards one SIGINT per Ctrl-C to Locust, which the terminal's does not reach."""
    run = start_in_terminal(
        [*RTBENCH, "run", "socketio", "-u", "21", "-t", "60s", "--report-dir", str(tmp_path), "--no-progress"]
    )
    try:
        wait_for_intervals(run, tmp_path, rows=4)
        ctrl_c(run)
        code, out, s = finish(run, tmp_path)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert code == 1, out
    assert s["interrupted"] is True and "INTERRUPTED" in out
    assert "interrupted again" not in (tmp_path / "locust.log").read_text()  # one Ctrl-C, one SIGINT
    assert s["connections"]["dropped"] == 0 and s["messages"]["lost"] == 0
    assert_accounted(s)


def test_second_ctrl_c_cuts_the_drain_and_still_writes_the_run(tmp_path: Path) -> None:
    """Deliveries take 3 s: after the first Ctrl-C the drain would wait for those in flight; the second one
    ends it, so they count as lost, and the run is still written."""
    args = ("-u", "5", "-r", "5", "-t", "60s", "--publish-rate", "20", "--loopback-delay-ms", "3000")
    run = start_run(LOOPBACK, tmp_path, *args, "--drain-timeout", "30")
    assert run.stdout is not None
    try:
        wait_for_intervals(run, tmp_path, rows=5)
        ctrl_c(run)
        for line in run.stdout:  # the first Ctrl-C is being handled: the drain has begun
            if "rtbench: interrupted:" in line:
                break
        ctrl_c(run)
        code, out, s = finish(run, tmp_path)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert code == 1, out
    assert s["interrupted"] is True
    assert s["messages"]["lost"] > 0  # in flight when the drain was cut
    assert_accounted(s)
