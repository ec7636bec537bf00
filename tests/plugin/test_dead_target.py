"""A run whose target dies must not pass: publishes that fail are counted and owed, and subscribers that
never come back are owed what was published after they dropped (issue: SIGKILL at 5 s used to PASS)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.helpers import REPO, start_target
from tests.plugin.test_interrupt import wait_for_intervals
from tests.runs import LOCUST, assert_accounted

pytestmark = pytest.mark.load


@pytest.mark.parametrize("provider", ["sse", "pusher", "socketio"])
def test_a_target_killed_mid_run_fails_the_run(tmp_path: Path, provider: str) -> None:
    url, target = start_target(f"targets.{provider}", "--port", "0")
    load = ["-u", "21", "-r", "21", "-t", "8s", "--publish-rate", "20", "--drain-timeout", "2"]
    scenario = str(REPO / "scenarios" / f"{provider}.py")
    run = subprocess.Popen(
        [*LOCUST, "-f", scenario, "--headless", "--only-summary", *load, "--host", url, "--report-dir", str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_intervals(run, tmp_path, rows=3)
        target.kill()  # SIGKILL: no goodbye to anyone
        target.wait()
        out, _ = run.communicate(timeout=90)
    finally:
        if run.poll() is None:
            run.kill()
        target.stop()
    s = json.loads((tmp_path / "summary.json").read_text())
    assert run.returncode == 1, out
    assert s["passed"] is False
    assert s["connections"]["dropped"] == 20 and s["connections"]["reconnected"] == 0
    assert s["messages"]["publish_failed"] > 0  # the publisher kept trying and failing
    assert s["messages"]["lost"] >= s["messages"]["publish_failed"] * 20  # each owed to all 20 subscribers
    assert {g["expr"]: g["passed"] for g in s["gates"]}["loss==0"] is False
    assert_accounted(s)


@pytest.mark.parametrize("provider", ["sse", "pusher", "socketio", "ably"])
def test_a_restarted_target_is_reconnected_to_and_every_reconnect_is_timed(tmp_path: Path, provider: str) -> None:
    """Killed and started again on the same port: every subscriber comes back, and each comeback has its
    time in ``reconnect_ms`` (it used to be recorded for SSE only)."""
    url, target = start_target(f"targets.{provider}", "--port", "0")
    port = url.rsplit(":", 1)[1].split("/")[0]
    load = ["-u", "21", "-r", "21", "-t", "16s", "--publish-rate", "20", "--drain-timeout", "5"]
    scenario = str(REPO / "scenarios" / f"{provider}.py")
    run = subprocess.Popen(
        [*LOCUST, "-f", scenario, "--headless", "--only-summary", *load, "--host", url, "--report-dir", str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    restarted = None
    try:
        wait_for_intervals(run, tmp_path, rows=3)
        target.kill()
        target.wait()
        _, restarted = start_target(f"targets.{provider}", "--port", port)
        out, _ = run.communicate(timeout=90)
    finally:
        if run.poll() is None:
            run.kill()
        target.stop()
        if restarted is not None:
            restarted.stop()
    s = json.loads((tmp_path / "summary.json").read_text())
    conns = s["connections"]
    assert conns["dropped"] == 20 and conns["reconnected"] == 20, (conns, out[-2000:])
    assert s["reconnect_ms"]["count"] == 20
    assert_accounted(s)
