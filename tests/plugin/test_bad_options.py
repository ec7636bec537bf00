"""Bad input to plain ``locust``: one line, exit 2, within seconds, before any user is spawned and
without a traceback (issue 11 item 10: ``-u 0`` ran the full time; a report dir that was a file or under
``/proc`` spawned every user and printed ~230 traceback lines)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.runs import run_scenario

SCENARIO = Path(__file__).with_name("loopback_scenario.py")


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["-u", "0"], "rtbench: error: -u/--users must be at least 1, got 0"),
        (["-u", "-5"], "rtbench: error: -u/--users must be at least 1, got -5"),
        (["-u", "2", "--report-dir", "{file}"], "rtbench: error: run folder {file}: exists and is not a folder"),
        (
            ["-u", "2", "--report-dir", "/proc/x"],
            "rtbench: error: run folder /proc/x: cannot create or write it (No such file or directory)",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], line: str) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    started = time.monotonic()
    run = run_scenario(
        SCENARIO, "-t", "30s", *(arg.format(file=a_file) for arg in args), folder=tmp_path / "run", timeout=60
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert time.monotonic() - started < 15  # not the 30 s run time
    output = run.stdout + run.stderr
    assert line.format(file=a_file) in output.splitlines()
    assert "Traceback" not in output and "rtbench: error:" not in output.replace(line.format(file=a_file), "")
    assert not (tmp_path / "run").exists()  # nothing was started, so nothing was written
