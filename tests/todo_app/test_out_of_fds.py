"""A run that runs its process out of file descriptors still ends with its result: summary.json and the
report are written, every failure is counted under its reason, and the harness says why it is not to be
trusted. (A 500-reader ``--refetch always`` benchmark once ended with no summary at all.)"""

from __future__ import annotations

import json
import resource
import subprocess
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.runs import LOCUST
from tests.todo_app.test_todo_app_runs import SCENARIO

FD_LIMIT = 256
USERS = 300  # more connections than the limit allows


def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


@pytest.mark.load
def test_a_run_out_of_file_descriptors_still_writes_its_result(tmp_path: Path) -> None:
    cmd = [
        *LOCUST, "-f", str(SCENARIO), "--headless", "--only-summary", "--report-dir", str(tmp_path),
        "-u", str(USERS), "-r", str(USERS), "-t", "4s", "--mutation-rate", "20", "--drain-timeout", "2",
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, preexec_fn=_low_fd_limit
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (tmp_path / "report.html").exists()
    connections = summary["connections"]
    assert connections["failed"] > 0 and connections["opened"] + connections["failed"] == USERS - 1
    out_of_fds = {reason: n for reason, n in summary["errors_by_reason"].items() if "Too many open files" in reason}
    assert sum(out_of_fds.values()) >= connections["failed"], summary["errors_by_reason"]
    health = summary["harness"]
    assert health["trustworthy"] is False
    assert any("ran out of file descriptors" in reason for reason in health["reasons"]), health["reasons"]
    assert summary["passed"] is False
