"""The report as people see it: headless Chromium, no console errors, headline equals summary.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.report import html
from tests.report.browser import chromium, open_page
from tests.report.conftest import CliResult

pytestmark = pytest.mark.skipif(chromium() is None, reason="chromium is not installed (apt-get install chromium)")

HEADLINE_KEYS = (
    "latency_ms.p50",
    "latency_ms.p95",
    "latency_ms.p99",
    "latency_ms.p999",
    "latency_ms.max",
    "messages.delivered",
    "messages.lost",
    "connect_ms.p95",
    "load.users",
    "load.publish_rate",
    "load.duration_s",
)


def test_real_run_report_in_chromium(real_run: tuple[Path, CliResult], tmp_path: Path) -> None:
    folder, result = real_run
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((folder / "summary.json").read_text())
    page = open_page(folder / "report.html")
    assert page.console_errors == []
    shot = tmp_path / "report.png"
    shot.write_bytes(page.screenshot)
    assert page.screenshot.startswith(b"\x89PNG") and len(page.screenshot) > 20_000
    for key in HEADLINE_KEYS:
        assert float(page.metrics[key]) == html.lookup(summary, key), (key, page.metrics.get(key))
    assert page.metrics["provider"] == summary["provider"] == "socketio"
    # the numbers are in the visible text, not only in attributes
    for key in ("latency_ms.p50", "latency_ms.p99", "messages.delivered"):
        assert html.fmt_num(html.lookup(summary, key)) in page.text
    assert "PASSED" in page.text and page.title.startswith("rtbench socketio")
    for gate in summary["gates"]:
        assert gate["expr"] in page.text


def test_compare_page_in_chromium(tmp_path: Path, real_run: tuple[Path, CliResult]) -> None:
    from harness import cli

    folder, _ = real_run
    assert cli.main(["compare", "--from", str(folder), "--out", str(tmp_path / "cmp")]) == 0
    page = open_page(tmp_path / "cmp" / "index.html")
    assert page.console_errors == []
    assert "socketio" in page.text and "ALL PASSED" in page.text
