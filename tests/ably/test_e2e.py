"""End to end through Locust (``locust -f scenarios/ably.py --headless ...``): gevent users, the bridge's
uvloop thread, the lean subscriber (and the official ably client with ``--client official``), the reference
target; calibration and scale."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ably.conftest import TEST_KEY
from tests.helpers import running_target
from tests.runs import assert_accounted, delay_calibration, drop_calibration, run_scenario

pytestmark = pytest.mark.timeout(240)


@pytest.mark.parametrize("client", ["lean", "official"])
def test_embedded_run_with_realtime_publishing(tmp_path: Path, client: str) -> None:
    run = run_scenario(
        "ably", "-u", "11", "-r", "11", "-t", "4s", "--publish-rate", "20", "--client", client, folder=tmp_path
    )
    s = run.summary
    assert (s["provider"], s["target"]) == ("ably", "embedded")
    assert s["connections"]["opened"] == 10 and s["connections"]["failed"] == 0
    msg = s["messages"]
    assert msg["lost"] == 0 and msg["errors"] == 0 and msg["delivered"] >= 10 * 60
    assert_accounted(s)
    assert run.returncode == (0 if s["passed"] else 1)


def test_external_target_rest_json_key_from_env_is_never_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = TEST_KEY.split(":", 1)[1]
    monkeypatch.setenv("ABLY_API_KEY", TEST_KEY)
    with running_target("targets.ably", "--port", "0", "--key", TEST_KEY) as url:
        run = run_scenario(
            "ably",
            "--host",
            url,
            "-u",
            "6",
            "-r",
            "6",
            "-t",
            "4s",
            "--publish-rate",
            "20",
            "--ably-publish",
            "rest",
            "--ably-format",
            "json",
            folder=tmp_path,
        )
    s = run.summary
    assert s["target"] == "external"
    assert s["connections"]["opened"] == 5 and s["messages"]["lost"] == 0 and s["messages"]["errors"] == 0
    assert s["messages"]["delivered"] >= 5 * 60
    assert_accounted(s)
    assert secret not in run.stdout and secret not in run.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="replace"), path


def test_delay_calibration_reports_the_injected_delay(tmp_path: Path) -> None:
    delay_calibration("ably", tmp_path)


def test_drop_calibration_reports_the_injected_loss(tmp_path: Path) -> None:
    drop_calibration("ably", tmp_path)


@pytest.mark.load
def test_a_thousand_subscribers_receive_everything(tmp_path: Path) -> None:
    run = run_scenario(
        "ably",
        "-u",
        "1001",
        "-r",
        "500",
        "-t",
        "12s",
        "--publish-rate",
        "2",
        "--drain-timeout",
        "30",
        folder=tmp_path,
        timeout=240,
    )
    s = run.summary
    assert s["connections"]["opened"] == 1000 and s["connections"]["failed"] == 0
    assert s["connections"]["dropped"] == 0
    assert s["messages"]["lost"] == 0 and s["messages"]["duplicated"] == 0 and s["messages"]["errors"] == 0
    assert s["messages"]["delivered"] >= 1000 * 15
    assert_accounted(s)
