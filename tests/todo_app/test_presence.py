"""``--presence``: the todo app's readers join as presence members, end to end on each provider with
presence (the embedded target): every member learns of every other exactly once, every member_added and
member_removed is counted and timed, and a provider without presence is refused with one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO
from tests.todo_app.test_todo_app_runs import assert_everyone_fresh, todo_run

READERS = 5


def assert_presence_exact(section: dict[str, Any], members: int, atomic_join: bool) -> None:
    """N members of one process: every member learns of every other exactly once, from the list it got on
    joining or from a member_added (N(N-1) in all); leaving one at a time, each leaver is news to those still
    there (N(N-1)/2 member_removed). Every member event timed. Where joining is one step (Pusher's
    subscribe, Socket.IO's presence:join) each later joiner is news to each earlier one: N(N-1)/2 of each.
    Ably attaches, then enters: a member attached before another entered hears of it either way."""
    pairs = members * (members - 1) // 2
    assert section["members"] == members and section["join_failed"] == 0
    assert section["join_ms"]["count"] == members
    assert section["member_added"] + section["listed"] == 2 * pairs
    if atomic_join:
        assert section["member_added"] == pairs and section["listed"] == pairs
    assert section["expected"] == 2 * pairs and section["unaccounted"] == 0
    assert section["member_added_ms"]["count"] == section["member_added"]
    assert section["member_removed"] == pairs and section["member_removed_ms"]["count"] == pairs
    assert section["untimed"] == 0 and section["foreign"] == 0
    assert section["events"] == section["member_added"] + pairs
    assert section["member_added_ms"]["min"] > 0 and section["member_removed_ms"]["min"] > 0
    # the busiest second of one member is at most every member_added it could hear: N-1
    assert 1 <= section["client_events_per_s"]["peak"] <= members - 1
    assert section["joins_per_s"]["peak"] >= 1
    assert 1 <= section["events_per_s"]["peak"] <= section["member_added"]


@pytest.mark.parametrize("provider", ["socketio", "pusher", "ably"])
def test_every_member_hears_of_every_other_exactly_once(tmp_path: Path, provider: str) -> None:
    summary = todo_run(
        tmp_path, provider, "--provider", provider, "--presence", "--mutation-rate", "20", users=READERS + 1
    )
    assert_everyone_fresh(summary, READERS)  # the app workload is unchanged by presence
    assert_presence_exact(summary["todo_app"]["presence"], READERS, atomic_join=provider != "ably")
    assert summary["errors_by_reason"] == {}
    page = (tmp_path / provider / "report.html").read_text(encoding="utf-8")
    assert 'id="presence"' in page and "presence: member_added" in page and "presence: member_removed" in page


def test_without_presence_there_is_no_presence_section(tmp_path: Path) -> None:
    summary = todo_run(tmp_path, "plain", "--provider", "socketio", "--mutation-rate", "20", seconds=2)
    assert "presence" not in summary["todo_app"]
    assert 'id="presence"' not in (tmp_path / "plain" / "report.html").read_text(encoding="utf-8")


def test_sse_has_no_presence_exit_2_with_one_line() -> None:
    cmd = [sys.executable, "-m", "locust", "-f", "scenarios/todo_app.py", "--headless", "-u", "2", "-t", "1s"]
    proc = subprocess.run(
        [*cmd, "--provider", "sse", "--presence"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if "--presence" in line]
    assert len(lines) == 1, proc.stderr[-2000:]
    assert "--presence: sse has no presence (it has: ably, pusher, socketio)" in lines[0]
    assert "Traceback" not in proc.stderr
