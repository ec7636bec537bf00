"""A worker lost mid-run (SIGKILL) leaves a partial result, not a summary of zeros or a long wait."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psutil
import pytest

from tests.helpers import REPO
from tests.plugin.test_interrupt import finish, start_run, wait_for_intervals

pytestmark = pytest.mark.load
RUN_S = 12


def test_a_killed_worker_gives_a_partial_summary_from_its_intervals(tmp_path: Path) -> None:
    scenario = REPO / "scenarios" / "socketio.py"
    args = ("-u", "21", "-r", "21", "-t", f"{RUN_S}s", "--publish-rate", "20", "--processes", "2")
    started = time.monotonic()
    run = start_run(scenario, tmp_path, *args)
    try:
        wait_for_intervals(run, tmp_path, rows=3)
        workers = [p for p in psutil.Process(run.pid).children() if "targets." not in " ".join(p.cmdline())]
        assert len(workers) == 2, [p.cmdline() for p in workers]
        workers[0].kill()
        code, out, s = finish(run, tmp_path)
    finally:
        if run.poll() is None:
            run.kill()
    elapsed = time.monotonic() - started
    assert code == 1, out
    assert s["partial"] is True and "PARTIAL" in out
    generators = json.loads((tmp_path / "generators.json").read_text())
    assert len(generators) == 2 and all(g["delivered"] > 0 for g in generators)  # the lost one's part too
    assert s["latency_ms"]["count"] > 0
    assert elapsed < RUN_S + 40  # it did not wait out the final-report grace for a dead worker
