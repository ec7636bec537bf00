"""The rtbench tab of Locust's web UI, as a user sees it in Chromium: during a run its figures are those of
``GET /rtbench/live``, at the end they are summary.json's, the run's report.html is served, no console
errors, and a second run from the same web UI gets a folder of its own."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from harness.report import live
from tests.report.browser import Tab, browser, chromium
from tests.webui.webui import BLOCKS, WebUi, web_ui

pytestmark = pytest.mark.skipif(chromium() is None, reason="chromium is not installed (.ci/run installs it)")

#: the rows of the rtbench table in Locust's own tab, as [figure, value] (React renders them as text)
TAB_ROWS_JS = """
(() => {
  const table = [...document.querySelectorAll('table')].find(t => t.innerText.includes('Figure'));
  if (!table) return null;
  return [...table.querySelectorAll('tbody tr')].map(tr => [...tr.cells].map(c => c.textContent.trim()));
})()
"""
RUN = {"user_count": "4", "spawn_rate": "4", "host": ""}


def flat(data: Any, prefix: str = "") -> dict[str, str]:
    """The page's ``data-metric`` names for a payload's leaves, and the text each shows."""
    if isinstance(data, dict):
        return {k: v for key, value in data.items() for k, v in flat(value, f"{prefix}{key}.").items()}
    if isinstance(data, list):
        return {k: v for i, value in enumerate(data) for k, v in flat(value, f"{prefix}{i}.").items()}
    return {prefix[:-1]: "—" if data is None else live.shown(data)}


def page_metrics(data: dict[str, Any]) -> dict[str, str]:
    """What /rtbench shows of a payload: every figure block, the gates and the verdict."""
    shown = {k: v for k, v in flat({key: data[key] for key in (*BLOCKS, "connections")}).items()}
    shown.update({"state": data["state"], "run_id": data["run_id"], "version": str(data["version"])})
    return shown


def tab_agrees(tab: Tab, ui: WebUi) -> dict[str, Any] | None:
    """The tab's rows and /rtbench/live read at one version of the figures: the payload if they are equal."""
    rows = tab.evaluate(TAB_ROWS_JS)
    data = ui.live()
    expected = [[r["figure"], r["value"]] for r in live.rows(data)]
    if not rows or dict(rows).get("version") != str(data["version"]):
        return None  # an interval arrived between the two reads: read again
    assert rows[: len(expected)] == expected
    return data


def page_agrees(tab: Tab, ui: WebUi) -> dict[str, Any] | None:
    metrics = tab.metrics()
    data = ui.live()
    if [metrics.get("version"), metrics.get("state")] != [str(data["version"]), data["state"]]:
        return None
    assert metrics == page_metrics(data)
    return data


def until(check: Any, timeout: float = 30) -> dict[str, Any]:
    """Repeat ``check`` until it returns a payload (it returns None while a read straddled an interval)."""
    deadline = time.monotonic() + timeout
    while (data := check()) is None:
        assert time.monotonic() < deadline, "the page and /rtbench/live never showed the same version"
        time.sleep(0.2)
    return data


def test_tab_and_page_follow_the_run_and_end_on_the_summary(tmp_path: Path) -> None:
    with web_ui("socketio", report_dir=tmp_path / "run") as ui, browser() as tab:
        assert ui.live()["state"] == "ready"
        assert ui.post("/swarm", RUN)["success"]
        running = ui.wait_live(lambda d: d["state"] == "running" and d.get("latency_ms", {}).get("count", 0) > 0)
        assert running["final"] is False
        # fan-out live: each message's slowest delivery so far, at most its count of messages published
        assert 0 < running["fanout_ms"]["count"] <= running["messages"]["published"]

        # Locust's own UI, rtbench tab: its rows are the live figures
        tab.goto(f"{ui.url}/?tab=rtbench")
        tab.wait_for(TAB_ROWS_JS)
        during = until(lambda: tab_agrees(tab, ui))
        assert during["final"] is False and during["messages"]["delivered"] > 0

        # the chart page: every figure, the same ones
        tab.goto(f"{ui.url}/rtbench")
        tab.wait_for("document.querySelector('[data-metric=\"latency_ms.p50\"]') !== null")
        assert until(lambda: page_agrees(tab, ui))["final"] is False
        assert tab.evaluate("document.querySelectorAll('#chart polyline').length") == 3

        ui.post("/stop", {})
        final = ui.wait_live(lambda d: d["final"] and d["state"] == "stopped")
        summary = json.loads((tmp_path / "run" / "summary.json").read_text())
        assert final["run_id"] == summary["run_id"]
        for key in BLOCKS:
            assert final[key] == summary[key], key
        assert {k: v for k, v in final["connections"].items() if k != "open"} == summary["connections"]
        assert final["fanout_ms"]["count"] == summary["fanout_ms"]["count"] > 0

        # at the end the page shows summary.json's figures and links the run's report, which is served
        assert until(lambda: page_agrees(tab, ui)) == final
        assert tab.evaluate("document.querySelector('a[data-report]').getAttribute('href')") == final["run"]["report"]
        status, body = ui.get(final["run"]["report"])
        assert status == 200 and body == (tmp_path / "run" / "report.html").read_bytes()
        assert ui.get("/rtbench/runs/run/..%2Fsummary.json")[0] == 404

        # and Locust's tab ends on them too
        tab.goto(f"{ui.url}/?tab=rtbench")
        assert until(lambda: tab_agrees(tab, ui))["version"] == final["version"]
        assert tab.console_errors() == []


def test_a_second_run_gets_its_own_folder(tmp_path: Path) -> None:
    with web_ui("socketio", report_dir=tmp_path / "run") as ui:
        runs = []
        for _ in range(2):
            assert ui.post("/swarm", {**RUN, "run_time": "3s"})["success"]
            before = runs[-1]["run_id"] if runs else ""
            runs.append(ui.wait_live(lambda d, before=before: d["final"] and d["run_id"] != before))
        first, second = runs
        assert [first["run"]["name"], second["run"]["name"]] == ["run", "run-2"]
        for data, folder in zip(runs, (tmp_path / "run", tmp_path / "run-2"), strict=True):
            summary = json.loads((folder / "summary.json").read_text())
            assert summary["run_id"] == data["run_id"]
            assert data["messages"] == summary["messages"]
        assert [r["name"] for r in second["runs"]] == ["run", "run-2"]
        assert first["run_id"] != second["run_id"]
        for run in second["runs"]:
            assert ui.get(run["report"])[0] == 200


def test_processes_merge_every_generator_live_and_at_the_end(tmp_path: Path) -> None:
    """``--processes 2``: the master's live figures cover both workers, and end on summary.json's."""
    with web_ui("socketio", "--processes", "2", report_dir=tmp_path / "run") as ui:
        deadline = time.monotonic() + 60
        while ui.json("/stats/requests").get("worker_count") != 2:
            assert time.monotonic() < deadline, ui.log()
            time.sleep(0.2)
        assert ui.post("/swarm", RUN)["success"]
        running = ui.wait_live(
            lambda d: (
                d["state"] == "running"
                and len(d.get("harness", {}).get("generators", [])) == 2
                and d["latency_ms"]["count"] > 0
            )
        )
        assert running["connections"]["open"] > 0 and running["messages"]["delivered"] > 0
        with browser() as tab:
            tab.goto(f"{ui.url}/?tab=rtbench")
            tab.wait_for(TAB_ROWS_JS)
            assert until(lambda: tab_agrees(tab, ui))["final"] is False
            ui.post("/stop", {})
            final = ui.wait_live(lambda d: d["final"] and d["state"] == "stopped")
            assert until(lambda: tab_agrees(tab, ui)) == final
            assert tab.console_errors() == []
        summary = json.loads((tmp_path / "run" / "summary.json").read_text())
        assert summary["load"]["processes"] == 2
        for key in BLOCKS:
            assert final[key] == summary[key], key
