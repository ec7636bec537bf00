"""The offline and reconnect items fail, with the reason, against servers that get them wrong: one that
drops or duplicates replayed offline mutations (every provider's target, ``--replay-fault``), and one
that comes back after the restart but never accepts a client again (``--accept-connections 0``)."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import sys
import urllib.request
from pathlib import Path

import pytest

from harness.checklist.outcome import ITEMS
from tests.check.checks import QUICK, rtbench_check
from tests.helpers import REPO, TargetProcess

PROVIDERS = ("socketio", "sse", "pusher", "ably")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_dropped_replays_fail_offline(provider: str, tmp_path: Path) -> None:
    run = rtbench_check(provider, "--target-args", "--replay-fault drop", *QUICK, folder=tmp_path)
    assert run.returncode == 1, run
    assert run.status() == {**dict.fromkeys(ITEMS, "PASS"), "offline": "FAIL"}, run
    assert run.items()["offline"]["detail"] == "A's replayed queue at client B: lost 5 of 5 (#0, #1, #2, #3, #4)"


@pytest.mark.parametrize("provider", ["socketio", "sse"])
def test_duplicated_replays_fail_offline(provider: str, tmp_path: Path) -> None:
    run = rtbench_check(provider, "--target-args", "--replay-fault duplicate", *QUICK, folder=tmp_path)
    assert run.returncode == 1, run
    assert run.status() == {**dict.fromkeys(ITEMS, "PASS"), "offline": "FAIL"}, run
    assert run.items()["offline"]["detail"] == "A's replayed queue at client B: duplicated #0, #1, #2, #3, #4"


def test_a_pusher_server_echoing_client_events_fails_event(tmp_path: Path) -> None:
    run = rtbench_check("pusher", "--target-args=--client-events echo", *QUICK, folder=tmp_path)
    assert run.returncode == 1, run
    assert run.status() == {**dict.fromkeys(ITEMS, "PASS"), "event": "FAIL"}, run
    assert (
        run.items()["event"]["detail"]
        == "A heard its own event back, but Pusher never echoes a client event to its sender"
    )


def test_an_ably_server_ignoring_echo_false_fails_event(tmp_path: Path) -> None:
    run = rtbench_check("ably", "--target-args=--ignore-echo", *QUICK, folder=tmp_path)
    assert run.returncode == 1, run
    assert run.status() == {**dict.fromkeys(ITEMS, "PASS"), "event": "FAIL"}, run
    assert run.items()["event"]["detail"] == (
        "a client connected with echo off heard its own event back, but Ably echoes a client's own messages "
        "unless it connected with echo=false"
    )


def test_a_pusher_app_without_client_events_fails_event_with_the_servers_words_and_a_way_out(tmp_path: Path) -> None:
    refusing = "--target-args=--client-events refuse"
    run = rtbench_check("pusher", refusing, *QUICK, folder=tmp_path / "private")
    assert run.returncode == 1, run
    assert run.status() == {**dict.fromkeys(ITEMS, "PASS"), "event": "FAIL"}, run
    detail = run.items()["event"]["detail"]
    assert "the server told A: pusher:error To send client events, you must enable this feature" in detail
    assert "--channel-type public" in detail
    # the way out it names: a public channel, where client A publishes with the Events API
    public = rtbench_check("pusher", refusing, *QUICK, "--channel-type", "public", folder=tmp_path / "public")
    assert public.returncode == 0, public
    assert "A has no connection to hear its own event on" in public.items()["event"]["detail"]


def health(port: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
        data: dict[str, int] = json.loads(answer.read())
        return data


def test_a_server_that_never_accepts_a_client_back_fails_reconnect(
    server: tuple[str, TargetProcess], tmp_path: Path
) -> None:
    """Killed, then started again on its port refusing every connection: the client cannot come back."""
    url, proc = server
    port = int(url.rsplit(":", 1)[1])
    pid_file, log = tmp_path / "restarted.pid", tmp_path / "restarted.log"
    command = [sys.executable, "-m", "targets.socketio", "--port", str(port), "--accept-connections", "0"]
    start = f"cd {shlex.quote(str(REPO))} && {shlex.join(command)} >{log} 2>&1 & echo $! >{pid_file}"
    run = rtbench_check(
        "socketio",
        "--host",
        url,
        "--kill-cmd",
        f"kill -9 {proc.pid}",
        "--start-cmd",
        start,
        "--reconnect-timeout",
        "4",
        *QUICK,
        folder=tmp_path,
    )
    restarted = int(pid_file.read_text())
    try:
        assert run.returncode == 1, run
        assert run.status()["reconnect"] == "FAIL", run
        assert "did not come back within 4 s" in run.items()["reconnect"]["detail"], run
        counts = health(port)  # the restarted server was up, and the client did try it: it was refused
        assert counts["connections_accepted"] == 0 and counts["connections_refused"] > 0, counts
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(restarted, signal.SIGTERM)
