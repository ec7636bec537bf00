"""Run a scenario the way a user does (``locust -f scenarios/<p>.py --headless ...``) and read its summary."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers import REPO

LOCUST = [sys.executable, "-m", "locust"]


@dataclass
class RunResult:
    returncode: int
    stdout: str
    stderr: str
    folder: Path

    @property
    def summary(self) -> dict[str, Any]:
        path = self.folder / "summary.json"
        assert path.exists(), f"no summary.json; exit {self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"
        data: dict[str, Any] = json.loads(path.read_text())
        return data


def run_scenario(provider: str, *args: str, folder: Path, timeout: float = 180) -> RunResult:
    cmd = [*LOCUST, "-f", str(REPO / "scenarios" / f"{provider}.py"), "--headless", "--report-dir", str(folder),
           "--only-summary", *args]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return RunResult(proc.returncode, proc.stdout, proc.stderr, folder)


def assert_accounted(summary: dict[str, Any]) -> None:
    """Every message accounted: the invariant that must hold for any run."""
    msg = summary["messages"]
    assert msg["delivered"] + msg["lost"] == msg["expected"], msg
    assert msg["lost"] >= 0
    assert summary["latency_ms"]["count"] == msg["delivered"], (summary["latency_ms"], msg)
