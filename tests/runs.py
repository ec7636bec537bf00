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


def run_scenario(provider: str | Path, *args: str, folder: Path, timeout: float = 180) -> RunResult:
    """A headless Locust run of ``scenarios/<provider>.py`` (or of the scenario file given as a path)."""
    scenario = provider if isinstance(provider, Path) else REPO / "scenarios" / f"{provider}.py"
    cmd = [
        *LOCUST,
        "-f",
        str(scenario),
        "--headless",
        "--report-dir",
        str(folder),
        "--only-summary",
        *args,
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return RunResult(proc.returncode, proc.stdout, proc.stderr, folder)


def assert_accounted(summary: dict[str, Any]) -> None:
    """Every message accounted: the invariant that must hold for any run."""
    msg = summary["messages"]
    assert msg["delivered"] + msg["lost"] == msg["expected"], msg
    assert msg["lost"] >= 0
    cross_clock = summary.get("cross_clock_ms", {}).get("count", 0)  # timed apart: another host's clock
    timed = summary["latency_ms"]["count"] + summary["ramp_ms"]["count"] + cross_clock
    assert timed == msg["delivered"], (summary["latency_ms"], summary["ramp_ms"], msg)


SHIFT_TOLERANCE_MS = 1.5


def delay_calibration(
    provider: str, folder: Path, *args: str, users: int = 20, delay_ms: float = 25.0
) -> dict[str, Any]:
    """DESIGN rule 8: the target delays every delivery by ``delay_ms``; against an undelayed target measured
    in the same test, p50 shifts by the delay (within 1.5 ms), nothing arrives faster than the delay, and
    nothing is lost. A shift, not an absolute window: a busy machine moves both runs alike."""
    from tests.helpers import running_target

    def measure(extra: list[str], sub: str) -> dict[str, Any]:
        with running_target(f"targets.{provider}", "--port", "0", *extra) as url:
            run = run_scenario(
                provider,
                "--host",
                url,
                "-u",
                str(users + 1),
                "-r",
                str(users + 1),
                "-t",
                "6s",
                "--publish-rate",
                "20",
                *args,
                folder=folder / sub,
            )
        s = run.summary
        assert s["target"] == "external"
        assert s["messages"]["delivered"] >= users * 80
        assert s["messages"]["lost"] == 0
        assert_accounted(s)
        return s

    baseline = measure([], "baseline")
    delayed = measure(["--delay-ms", str(delay_ms)], "delayed")
    shift = delayed["latency_ms"]["p50"] - baseline["latency_ms"]["p50"]
    assert abs(shift - delay_ms) <= SHIFT_TOLERANCE_MS, (baseline["latency_ms"], delayed["latency_ms"])
    assert delayed["latency_ms"]["min"] >= delay_ms
    return delayed


def drop_calibration(provider: str, folder: Path, *args: str, rate: float = 0.1) -> dict[str, Any]:
    """DESIGN rule 6: the target drops each delivery with probability ``rate``; lost must sit within
    5 binomial sigmas of it, the accounting must close exactly, and a ``loss==0`` gate must fail."""
    import math

    from tests.helpers import running_target

    with running_target(f"targets.{provider}", "--port", "0", "--drop-rate", str(rate), "--seed", "3") as url:
        run = run_scenario(
            provider,
            "--host",
            url,
            "-u",
            "31",
            "-r",
            "31",
            "-t",
            "6s",
            "--publish-rate",
            "30",
            "--gate",
            "loss==0",
            *args,
            folder=folder,
        )
    s = run.summary
    msg = s["messages"]
    assert_accounted(s)
    n = msg["expected"]
    assert n > 2000
    assert abs(msg["lost"] - n * rate) <= 5 * math.sqrt(n * rate * (1 - rate)), msg
    assert msg["duplicated"] == 0 and msg["errors"] == 0
    assert run.returncode == 1  # loss==0 failed
    assert s["gates"][0] == {"expr": "loss==0", "value": float(msg["lost"]), "passed": False}
    return s
