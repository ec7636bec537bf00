"""Run ``rtbench check`` as a user does (a subprocess) and read what it wrote."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers import REPO

RTBENCH = [sys.executable, "-m", "harness.cli"]


@dataclass
class CheckRun:
    returncode: int
    stdout: str
    stderr: str
    json_path: Path

    @property
    def data(self) -> dict[str, Any]:
        assert self.json_path.exists(), f"no JSON; exit {self.returncode}\n{self.stdout}\n{self.stderr}"
        data: dict[str, Any] = json.loads(self.json_path.read_text())
        return data

    def items(self, provider: str | None = None) -> dict[str, dict[str, Any]]:
        """item name -> its result, for ``provider`` (the only one when not given)."""
        checklists = self.data["checklists"]
        chosen = [c for c in checklists if provider is None or c["provider"] == provider]
        assert len(chosen) == 1, checklists
        return {r["item"]: r for r in chosen[0]["items"]}

    def status(self, provider: str | None = None) -> dict[str, str]:
        return {name: r["status"] for name, r in self.items(provider).items()}

    def __str__(self) -> str:
        return f"exit {self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


def rtbench_check(*args: str, folder: Path, timeout: float = 240, env: dict[str, str] | None = None) -> CheckRun:
    json_path = folder / "check.json"
    proc = subprocess.run(
        [*RTBENCH, "check", *args, "--json", str(json_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    return CheckRun(proc.returncode, proc.stdout, proc.stderr, json_path)


#: the budget of the tests whose every item must pass: a busy test machine can hold one event past the
#: default 50 ms (a clean-clone CI run saw 52.8 ms); the tests about the budget give their own
ROOMY_BUDGET = ("--budget-ms", "500")
#: a fast performance item for the tests that look at other items
QUICK = ("--events", "20", "--rate", "50", *ROOMY_BUDGET)
