"""``--browser-probes N`` end to end: real headless Chromium pages on each provider's official browser client
(socket.io-client, pusher-js, ably-js, the browser's EventSource), beside the synthetic subscribers.

Each provider runs twice in the same test: on its embedded target, and on a target delaying every delivery
by 25 ms. The pages' own accounting must be exact (both pages get every message published after they
subscribed, which is every message: the pages subscribe before the users spawn), their deliveries land in
``browser_latency_ms`` only (the socket-level accounting and histograms are untouched), and the delay
shows as a 25 +- 3 ms shift of the browser p50 against the undelayed run: a shift, never an absolute window.

Skipped only when no Chromium is installed (``.ci/run`` installs Debian's ``chromium``; the skip says so).
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from harness.net.chromium import CHROMIUM_ENV, Chromium, find_chromium
from tests.helpers import REPO, running_target
from tests.runs import assert_accounted, run_scenario

PROVIDERS = ("socketio", "sse", "pusher", "ably")
PAGES = 2
DELAY_MS = 25.0
SHIFT_TOLERANCE_MS = 3.0
USERS = 6  # 1 publisher + 5 synthetic subscribers
PUBLISH_RATE = 20

needs_chromium = pytest.mark.skipif(
    find_chromium() is None, reason="no chromium: .ci/run could not install Debian's chromium"
)


@pytest.fixture(scope="module", autouse=True)
def _chromium_started_once() -> None:
    """A fresh machine's first Chromium start reads the browser from disk, which can take seconds: paid here,
    not inside a 5 s run, where the pages open before the users spawn and the run's clock already ticks."""
    binary = find_chromium()
    if binary is None:
        return

    async def start_and_close() -> None:
        browser = await Chromium.launch(binary)
        try:
            await browser.new_page()
        finally:
            await browser.close()

    asyncio.run(start_and_close())


def browser_clients() -> Path:
    """The official clients' npm packages: ``npm ci --prefix browser``, else the test fixtures' copy
    (tests/node holds the same packages)."""
    for folder in (REPO / "browser" / "node_modules", REPO / "tests" / "node" / "node_modules"):
        if (folder / "socket.io-client").is_dir():
            return folder
    pytest.skip("no browser clients: npm ci --prefix browser")


def probe_run(provider: str, folder: Path, *args: str) -> dict[str, Any]:
    run = run_scenario(
        provider,
        *args,
        "-u",
        str(USERS),
        "-r",
        str(USERS),
        "-t",
        "5s",
        "--publish-rate",
        str(PUBLISH_RATE),
        "--browser-probes",
        str(PAGES),
        "--browser-clients",
        str(browser_clients()),
        folder=folder,
    )
    summary = run.summary
    assert run.returncode == 0, run.stdout + run.stderr
    return summary


def assert_pages_exact(summary: dict[str, Any]) -> None:
    """Both pages got every message; their figures stay out of the socket-level ones."""
    pages, messages = summary["browser"], summary["messages"]
    assert pages["pages"] == PAGES and pages["opened"] == PAGES and pages["failed"] == 0, pages
    assert messages["published"] > PUBLISH_RATE * 3, messages
    assert pages["expected"] == PAGES * messages["published"], (pages, messages)
    assert pages["delivered"] == pages["expected"] and pages["lost"] == 0, pages
    assert pages["duplicated"] == 0 and pages["out_of_order"] == 0 and pages["errors"] == 0, pages
    assert pages["dropped"] == 0 and pages["outside_windows"] == 0, pages
    browser_count = summary["browser_latency_ms"]["count"]
    assert browser_count > 0
    assert browser_count + pages["ramp_ms"]["count"] == pages["delivered"]
    synthetic = USERS - 1  # a subscriber may open after the first publish: it is owed less
    assert 0 < messages["expected"] <= synthetic * messages["published"], messages  # no page in it
    assert messages["delivered"] == messages["expected"] and messages["lost"] == 0, messages
    assert_accounted(summary)  # every socket-level delivery is in latency_ms or ramp_ms, no page's
    assert summary["connections"]["opened"] == synthetic


@needs_chromium
@pytest.mark.timeout(240)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_pages_get_every_message_and_show_the_targets_delay(provider: str, tmp_path: Path) -> None:
    baseline = probe_run(provider, tmp_path / "embedded")
    assert baseline["target"] == "embedded"
    assert_pages_exact(baseline)
    with running_target(f"targets.{provider}", "--port", "0", "--delay-ms", f"{DELAY_MS:g}") as url:
        delayed = probe_run(provider, tmp_path / "delayed", "--host", url)
    assert_pages_exact(delayed)
    shift = delayed["browser_latency_ms"]["p50"] - baseline["browser_latency_ms"]["p50"]
    assert abs(shift - DELAY_MS) <= SHIFT_TOLERANCE_MS, (baseline["browser_latency_ms"], delayed["browser_latency_ms"])
    assert delayed["browser_latency_ms"]["min"] >= DELAY_MS
    report = (tmp_path / "delayed" / "report.html").read_text()
    assert "Browser probes" in report and "browser_latency_ms" in report


@needs_chromium
@pytest.mark.timeout(120)
def test_a_browser_gate_reads_browser_latency(tmp_path: Path) -> None:
    run = run_scenario(
        "socketio",
        "-u",
        "2",
        "-r",
        "2",
        "-t",
        "3s",
        "--browser-probes",
        "1",
        "--browser-clients",
        str(browser_clients()),
        "--gate",
        "browser_p99<1us",
        "--gate",
        "browser_loss==0",
        folder=tmp_path,
    )
    gates = {g["expr"]: g for g in run.summary["gates"]}
    assert run.returncode == 1, run.stdout + run.stderr
    assert gates["browser_p99<1us"]["passed"] is False
    assert gates["browser_p99<1us"]["value"] == run.summary["browser_latency_ms"]["p99"] > 0
    assert gates["browser_loss==0"]["passed"] is True
    assert "browser latency ms" in run.stdout


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["not on PATH", "named but missing"])
def test_without_chromium_it_fails_fast_with_one_line(
    tmp_path: Path, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if how == "not on PATH":  # only the interpreter's folder: no chromium there
        monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
        monkeypatch.delenv(CHROMIUM_ENV, raising=False)
        assert find_chromium() is None
    else:
        monkeypatch.setenv(CHROMIUM_ENV, str(tmp_path / "no-such-chromium"))
    started = time.monotonic()
    run = run_scenario("socketio", "-u", "2", "-t", "3s", "--browser-probes", "2", folder=tmp_path / "run", timeout=30)
    assert run.returncode == 2, run.stdout + run.stderr
    assert time.monotonic() - started < 20
    ours = [ln for ln in run.stderr.splitlines() if ln.startswith("rtbench:") or "error" in ln.lower()]
    assert len(ours) == 1 and "--browser-probes: no Chromium found" in ours[0], run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "run" / "summary.json").exists()
