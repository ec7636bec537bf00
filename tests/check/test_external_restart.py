"""``rtbench check --host`` with the user's restart commands, against a reference target the test
starts itself: what the reconnect item says when a command fails, hangs, or the server never comes back,
and that without a command the item is skipped and the check still passes."""

from __future__ import annotations

from pathlib import Path

from harness.checklist.outcome import ITEMS
from tests.check.checks import QUICK, rtbench_check
from tests.helpers import TargetProcess


def only_reconnect_differs(status: dict[str, str], reconnect: str) -> None:
    assert status == {**dict.fromkeys(ITEMS, "PASS"), "reconnect": reconnect}


def test_without_a_restart_command_reconnect_is_skipped(server: tuple[str, TargetProcess], tmp_path: Path) -> None:
    run = rtbench_check("socketio", "--host", server[0], *QUICK, folder=tmp_path)
    assert run.returncode == 0, run
    only_reconnect_differs(run.status(), "SKIP")
    assert "give --restart-cmd" in run.items()["reconnect"]["detail"]
    assert run.data["checklists"][0]["target"] == "external"


def test_a_failing_restart_command_fails_reconnect(server: tuple[str, TargetProcess], tmp_path: Path) -> None:
    run = rtbench_check(
        "socketio", "--host", server[0], "--restart-cmd", "echo no such unit >&2; exit 5", *QUICK, folder=tmp_path
    )
    assert run.returncode == 1, run
    only_reconnect_differs(run.status(), "FAIL")
    assert run.items()["reconnect"]["detail"] == "--restart-cmd exited with status 5: no such unit"


def test_a_hanging_restart_command_is_cut_at_its_timeout(server: tuple[str, TargetProcess], tmp_path: Path) -> None:
    run = rtbench_check(
        "socketio", "--host", server[0], "--restart-cmd", "sleep 30", "--command-timeout", "1", *QUICK, folder=tmp_path
    )
    assert run.returncode == 1, run
    only_reconnect_differs(run.status(), "FAIL")
    assert run.items()["reconnect"]["detail"] == "--restart-cmd did not finish within 1 s"
    assert run.items()["reconnect"]["seconds"] < 10


def test_a_server_that_never_comes_back_fails_reconnect_and_what_follows(
    server: tuple[str, TargetProcess], tmp_path: Path
) -> None:
    """The kill command kills, the start command starts nothing: the clients cannot come back."""
    url, proc = server
    run = rtbench_check(
        "socketio",
        "--host",
        url,
        "--kill-cmd",
        f"kill -9 {proc.pid}",
        "--start-cmd",
        "true",
        "--reconnect-timeout",
        "3",
        *QUICK,
        folder=tmp_path,
    )
    assert run.returncode == 1, run
    proc.wait(5)
    status = run.status()
    assert status["connection"] == status["event"] == "PASS"
    assert status["reconnect"] == "FAIL"
    assert "did not come back within 3 s" in run.items()["reconnect"]["detail"], run
    assert status["offline"] == status["performance"] == "FAIL"  # nothing to talk to any more
