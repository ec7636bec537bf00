"""Pusher end to end: real target, our subscribers, SDK-signed publishes, real Locust runs on loopback."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.helpers import running_target
from tests.runs import assert_accounted, delay_calibration, drop_calibration, run_scenario

ENV = ("PUSHER_APP_ID", "PUSHER_KEY", "PUSHER_SECRET", "PUSHER_CLUSTER")


@pytest.fixture(autouse=True)
def _no_pusher_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs inherit os.environ: real credentials on a developer's machine must not turn these into cloud runs."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def test_embedded_presence_run_accounts_for_every_message(tmp_path: Path) -> None:
    run = run_scenario(
        "pusher",
        "-u",
        "11",
        "-r",
        "11",
        "-t",
        "4s",
        "--publish-rate",
        "20",
        "--channels",
        "2",
        "--channel-type",
        "presence",
        folder=tmp_path,
    )
    assert run.returncode in (0, 1), run.stderr
    s = run.summary
    assert s["provider"] == "pusher" and s["target"] == "embedded"
    assert s["connections"]["opened"] == 10 and s["connections"]["failed"] == 0
    assert s["messages"]["lost"] == 0 and s["messages"]["errors"] == 0 and s["messages"]["delivered"] > 300
    assert_accounted(s)
    assert "rtbench-secret" not in run.stdout + run.stderr + (tmp_path / "summary.json").read_text()


def test_delay_calibration_reports_the_injected_delay(tmp_path: Path) -> None:
    delay_calibration("pusher", tmp_path, "--channel-type", "private", users=10)


def test_drop_calibration_reports_the_injected_loss(tmp_path: Path) -> None:
    drop_calibration("pusher", tmp_path)


def test_corrupted_deliveries_are_errors_not_deliveries(tmp_path: Path) -> None:
    with running_target("targets.pusher", "--port", "0", "--corrupt-rate", "0.2", "--seed", "5") as url:
        run = run_scenario(
            "pusher", "--host", url, "-u", "6", "-r", "6", "-t", "4s", "--publish-rate", "20", folder=tmp_path
        )
    s = run.summary
    assert s["messages"]["errors"] > 0 and s["messages"]["lost"] > 0
    assert_accounted(s)


@pytest.mark.parametrize(
    ("args", "env", "fragment"),
    [
        (["--channel-type", "secret"], {}, "--channel-type"),
        (["--event", "client-probe"], {}, "--event"),
        ([], {"PUSHER_KEY": "k", "PUSHER_SECRET": "hush-hush"}, "real Pusher needs --app-id"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str], fragment: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    started = time.monotonic()
    run = run_scenario("pusher", "-u", "2", "-t", "3s", *args, folder=tmp_path, timeout=30)
    assert run.returncode == 2, run.stderr
    assert time.monotonic() - started < 20
    ours = [ln for ln in run.stderr.splitlines() if ln.startswith("rtbench:") or "error" in ln.lower()]
    assert len(ours) == 1 and fragment in ours[0], run.stderr
    assert "Traceback" not in run.stderr and "hush-hush" not in run.stderr + run.stdout
    assert os.environ.get("PUSHER_APP_ID") is None


@pytest.mark.load
def test_a_thousand_subscribers_receive_everything(tmp_path: Path) -> None:
    run = run_scenario(
        "pusher",
        "-u",
        "1201",
        "-r",
        "600",
        "-t",
        "12s",
        "--publish-rate",
        "5",
        "--drain-timeout",
        "30",
        folder=tmp_path,
        timeout=240,
    )
    s = run.summary
    assert s["connections"]["opened"] == 1200 and s["connections"]["failed"] == 0, s["connections"]
    assert s["connections"]["dropped"] == 0
    assert s["messages"]["lost"] == 0 and s["messages"]["duplicated"] == 0 and s["messages"]["errors"] == 0
    assert s["messages"]["delivered"] >= 1200 * 20
    assert_accounted(s)
