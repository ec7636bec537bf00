"""The embedded target: started on a free port when no --host is given, stopped with the run; and a
given host checked in seconds with one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from harness.plugin.target_process import EmbeddedTarget, TargetError, check_reachable

REPO = Path(__file__).resolve().parents[2]


def test_an_embedded_target_serves_until_stopped() -> None:
    target = EmbeddedTarget("targets.sse")
    try:
        assert target.url.startswith("http://127.0.0.1:")
        check_reachable(target.url, ("http", "https"))  # listening: no error
    finally:
        target.stop()
    assert target.process.returncode is not None  # it is gone, not orphaned
    with pytest.raises(TargetError, match=r"cannot reach 127\.0\.0\.1:\d+"):
        check_reachable(target.url, ("http", "https"))


def test_a_target_that_cannot_start_says_so() -> None:
    with pytest.raises(TargetError, match=r"embedded target targets\.no_such_target did not start \(exit code 1\)"):
        EmbeddedTarget("targets.no_such_target")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ws://127.0.0.1:1", "--host: not an http or https URL"),
        ("http://:80", "no host in"),
        ("http://127.0.0.1:99999", "invalid port in"),
    ],
)
def test_a_bad_host_is_one_line(url: str, reason: str) -> None:
    with pytest.raises(TargetError, match=reason):
        check_reachable(url, ("http", "https"))


def test_an_embedded_target_dies_with_its_run(tmp_path: Path) -> None:
    """SIGKILL of the run (no atexit, no cleanup) must not orphan the target: the parent-death signal."""
    script = "from harness.plugin.target_process import EmbeddedTarget\nt = EmbeddedTarget('targets.sse')\n"
    script += "print(t.process.pid, t.url, flush=True)\nimport time\ntime.sleep(60)\n"
    run = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert run.stdout is not None
    pid, url = run.stdout.readline().split()
    target = psutil.Process(int(pid))
    assert target.ppid() == run.pid and os.getpgid(target.pid) != os.getpgid(run.pid)  # its own group
    run.kill()
    run.wait()
    assert target.wait(timeout=10) is not None or not target.is_running()
    with pytest.raises(TargetError, match="cannot reach"):
        check_reachable(url, ("http", "https"))
