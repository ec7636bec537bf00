"""The checklist's parts on their own: the sequence judge, the renderings (and that no secret gets
through them), and restarting with the user's shell commands (real ``sh``)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.checklist.items import sequence_fault
from harness.checklist.outcome import ITEMS, Checklist, failed, passed, skipped
from harness.checklist.render import Redactor, markdown, result_line, table, write_outputs
from harness.checklist.restart import CommandRestart, NoRestart, RestartError, restarter_for
from harness.providers import load

ABLY_KEY = "appid.keyid:SeCrEtSeCrEtSeCrEt123"


@pytest.mark.parametrize(
    ("got", "expected", "fault"),
    [
        ([0, 1, 2], 3, None),
        ([], 0, None),
        ([0, 2], 3, "lost 1 of 3 (#1)"),
        ([], 2, "lost 2 of 2 (#0, #1)"),
        ([0, 1, 1, 2], 3, "duplicated #1"),
        ([0, 0, 2], 3, "lost 1 of 3 (#1); duplicated #0"),
        ([1, 0, 2], 3, "out of order: [1, 0, 2]"),
    ],
)
def test_sequence_fault_names_what_is_wrong(got: list[int], expected: int, fault: str | None) -> None:
    assert sequence_fault(got, expected) == fault


def sample() -> list[Checklist]:
    return [
        Checklist(
            "socketio",
            "embedded",
            "http://127.0.0.1:1",
            [
                passed("connection", "connected in 3 ms", 3.0).took(0.01),
                failed("event", "B did not receive A's event within 5 s").took(5.0),
                skipped("reconnect", "no way to restart an external server"),
            ],
        ),
        Checklist("sse", "embedded", "http://127.0.0.1:2", [passed(i, f"{i} ok", 1.5) for i in ITEMS]),
    ]


def test_result_lines_and_the_table() -> None:
    first = sample()[0].results[1]
    assert result_line("socketio", first).split()[:3] == ["socketio", "event", "FAIL"]
    lines = table(sample()).splitlines()
    assert lines[0].split() == ["provider", *ITEMS, "verdict"]
    assert lines[1].split()[:5] == ["socketio", "PASS", "3.0", "ms", "FAIL"] and lines[1].endswith("FAILED")
    assert lines[2].split()[0] == "sse" and lines[2].endswith("ok") and lines[2].count("PASS") == len(ITEMS)


def test_junit_has_a_testcase_per_item(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    junit = tmp_path / "reports" / "check.xml"  # its folder is made, as CI's reports/ folder would need
    write_outputs(sample(), Redactor(), junit=junit, json_path=None)
    suites = ET.parse(junit).getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == ["rtbench.check.socketio", "rtbench.check.sse"]
    first = suites[0]
    assert (first.get("tests"), first.get("failures"), first.get("skipped")) == ("3", "1", "1")
    cases = {c.get("name"): c for c in first.findall("testcase")}
    assert cases["event"].find("failure") is not None
    assert "did not receive" in (cases["event"].find("failure").get("message") or "")  # type: ignore[union-attr]
    assert cases["reconnect"].find("skipped") is not None
    assert cases["connection"].find("failure") is None and cases["connection"].find("skipped") is None
    assert len(suites[1].findall("testcase")) == len(ITEMS) and suites[1].get("failures") == "0"


def test_no_secret_reaches_json_junit_or_the_step_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUSHER_SECRET", "pusher-secret-value-42")
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    leaky = [
        Checklist(
            "ably",
            "external",
            f"https://{ABLY_KEY}@127.0.0.1:1",
            [failed("event", f"server said: bad key {ABLY_KEY}; pusher-secret-value-42 rejected")],
        )
    ]
    patterns = [p for name in ("ably", "pusher") for p in load(name).secret_patterns]
    junit, json_path = tmp_path / "c.xml", tmp_path / "c.json"
    write_outputs(leaky, Redactor(patterns), junit=junit, json_path=json_path)
    for path in (junit, json_path, summary):
        text = path.read_text()
        assert "SeCrEtSeCrEtSeCrEt123" not in text and "pusher-secret-value-42" not in text, path
    data = json.loads(json_path.read_text())
    assert data["ok"] is False and data["checklists"][0]["items"][0]["status"] == "FAIL"
    assert "## rtbench check" in summary.read_text() and "**ably event** FAIL" in summary.read_text()


def test_the_step_summary_lists_only_what_did_not_pass() -> None:
    text = markdown(sample())
    assert "| socketio | PASS 3.0 ms | FAIL | SKIP | - | - |" in text
    assert "**socketio event** FAIL" in text and "**socketio reconnect** SKIP" in text
    assert "**sse" not in text


def restart(*commands: tuple[str, str], timeout_s: float = 5.0) -> None:
    asyncio.run(CommandRestart(list(commands), timeout_s).restart())


def test_a_failing_command_names_its_flag_status_and_last_line() -> None:
    with pytest.raises(RestartError, match=r"^--restart-cmd exited with status 3: it broke$"):
        restart(("--restart-cmd", "echo starting; echo it broke >&2; exit 3"))


def test_kill_then_start_stops_at_the_first_failure(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    with pytest.raises(RestartError, match=r"^--kill-cmd exited with status 1$"):
        restart(("--kill-cmd", "false"), ("--start-cmd", f"touch {marker}"))
    assert not marker.exists()
    restart(("--kill-cmd", "true"), ("--start-cmd", f"touch {marker}"))
    assert marker.exists()


def test_a_command_that_hangs_is_killed_at_the_timeout(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    with pytest.raises(RestartError, match=r"^--start-cmd did not finish within 0.5 s$"):
        restart(("--start-cmd", f"sleep 30 & echo $! > {pid_file}; wait"), timeout_s=0.5)
    assert time.monotonic() - started < 5
    pid = int(pid_file.read_text())
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_a_server_left_running_in_the_background_does_not_hold_the_command(tmp_path: Path) -> None:
    """``node server.js &`` as a start command: it returns at once though the server keeps its output."""
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    restart(("--start-cmd", f"sleep 30 & echo $! > {pid_file}"), timeout_s=10)
    assert time.monotonic() - started < 5
    pid = int(pid_file.read_text())
    assert Path(f"/proc/{pid}").exists()  # the "server" still runs after its start command returned
    os.kill(pid, signal.SIGKILL)


def test_which_restarter() -> None:
    assert isinstance(restarter_for(None, "r", None, None, 1), CommandRestart)
    assert isinstance(restarter_for(None, None, "k", "s", 1), CommandRestart)
    none = restarter_for(None, None, None, None, 1)
    assert isinstance(none, NoRestart) and "--restart-cmd" in (none.unavailable or "")
