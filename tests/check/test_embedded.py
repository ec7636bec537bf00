"""``rtbench check`` against the embedded targets: every provider passes, and every item can fail, with
the reason in its line. Real targets on loopback, started by rtbench on free ports."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from harness.checklist.outcome import ITEMS
from tests.check.checks import QUICK, ROOMY_BUDGET, CheckRun, rtbench_check

PROVIDERS = ("socketio", "sse", "pusher", "ably")


def test_check_all_passes_every_item_of_every_provider(tmp_path: Path) -> None:
    """``rtbench check all``: each provider's embedded target, then one providers x items table, with JUnit
    and the step summary written for all of them."""
    junit, summary = tmp_path / "check.xml", tmp_path / "summary.md"
    run = rtbench_check(
        "all",
        "--junit",
        str(junit),
        *ROOMY_BUDGET,
        folder=tmp_path,
        env={**os.environ, "GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert run.returncode == 0, run
    assert [c["provider"] for c in run.data["checklists"]] == sorted(PROVIDERS)
    for provider in PROVIDERS:
        _passes_every_item(run, provider)
    table = run.stdout.split("\n\n")[-1].splitlines()
    assert table[0].split() == ["provider", *ITEMS, "verdict"], run
    assert sorted(row.split()[0] for row in table[1:]) == sorted(PROVIDERS), run
    assert all(row.count("PASS") == len(ITEMS) and row.endswith("ok") for row in table[1:]), run
    suites = ET.parse(junit).getroot().findall("testsuite")
    assert sorted(s.get("name") for s in suites) == [f"rtbench.check.{p}" for p in sorted(PROVIDERS)]
    assert all(len(s.findall("testcase")) == len(ITEMS) and s.get("failures") == "0" for s in suites)
    assert summary.read_text().count("| PASS") == len(PROVIDERS) * len(ITEMS)


def _passes_every_item(run: CheckRun, provider: str) -> None:
    items = run.items(provider)
    assert list(items) == list(ITEMS)
    assert {name: r["status"] for name, r in items.items()} == dict.fromkeys(ITEMS, "PASS"), run
    checklist = next(c for c in run.data["checklists"] if c["provider"] == provider)
    assert checklist["target"] == "embedded"
    perf = items["performance"]
    assert perf["figures"]["max_ms"] >= perf["figures"]["p99_ms"] > 0
    assert "all 100 events under 500 ms" in perf["detail"]
    assert items["reconnect"]["figure_ms"] > 0
    assert "5 queued mutations replayed in order" in items["offline"]["detail"]
    heard_back = {
        "socketio": "A heard it back (",
        "ably": "A heard it back; a client connected with echo off did not hear its own",
        "pusher": "A did not hear it back",
    }
    assert heard_back.get(provider, "A has no connection") in items["event"]["detail"]
    for name in ITEMS:  # one line per item as it finished, with its status
        assert any(line.split()[:3] == [provider, name, "PASS"] for line in run.stdout.splitlines()), run


def test_a_delayed_target_fails_performance_only(tmp_path: Path) -> None:
    run = rtbench_check("socketio", "--target-args", "--delay-ms 60", *QUICK, "--budget-ms", "50", folder=tmp_path)
    assert run.returncode == 1, run
    status = run.status()
    assert status == {**dict.fromkeys(ITEMS, "PASS"), "performance": "FAIL"}, run
    perf = run.items()["performance"]
    assert "20 of 20 events over the 50 ms budget" in perf["detail"]
    assert perf["figures"]["max_ms"] >= 60
    assert any("performance  FAIL" in line and "over the 50 ms budget" in line for line in run.stdout.splitlines())


def test_a_lossy_target_fails_with_the_events_it_lost(tmp_path: Path) -> None:
    run = rtbench_check("sse", "--target-args", "--drop-rate 0.05 --seed 7", folder=tmp_path)
    assert run.returncode == 1, run
    items = run.items()
    failing = {name: r["detail"] for name, r in items.items() if r["status"] == "FAIL"}
    assert set(failing) & {"performance", "event"}, run
    if "performance" in failing:
        assert "of 100 events never arrived" in failing["performance"]
    if "event" in failing:
        assert "did not receive" in failing["event"]


def test_the_budget_is_the_users(tmp_path: Path) -> None:
    """The same delayed target passes once the budget allows its delay: the check judges the budget given."""
    run = rtbench_check("socketio", "--target-args", "--delay-ms 60", *QUICK, "--budget-ms", "500", folder=tmp_path)
    assert run.returncode == 0, run
    assert "all 20 events under 500 ms" in run.items()["performance"]["detail"]
