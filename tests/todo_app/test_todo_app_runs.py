"""The todo app as the workload, end to end (``locust -f scenarios/todo_app.py --provider P``) on each
provider's embedded target: exact accounting, every reader ends fresh, coalescing, an injected API delay."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.report.conftest import rtbench
from tests.runs import assert_accounted, run_scenario

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "todo_app.py"
READERS = 2
SHIFT_TOLERANCE_MS = 3.0
#: gates that hold whatever the latency: these runs check the figures, not a budget
GATES = ("--gate", "loss==0", "--gate", "publish_failed==0")


def todo_run(tmp_path: Path, name: str, *args: str, users: int = READERS + 1, seconds: int = 3) -> dict[str, Any]:
    result = run_scenario(
        SCENARIO,
        "-u",
        str(users),
        "-r",
        "50",
        "-t",
        f"{seconds}s",
        "--warmup",
        "0",
        *GATES,
        *args,
        folder=tmp_path / name,
    )
    summary = result.summary
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    return summary


def assert_everyone_fresh(summary: dict[str, Any], readers: int) -> None:
    """Every mutation's event reached every reader, and every reader's refetch came to show it."""
    assert_accounted(summary)
    msg, app = summary["messages"], summary["todo_app"]
    assert app["mutations"] == msg["published"] > 0 and app["mutation_errors"] == 0
    assert app["readers"] == readers
    assert msg["expected"] == readers * msg["published"]  # writers start once every reader is subscribed
    assert msg["delivered"] == msg["expected"] and msg["errors"] == 0
    assert app["fresh"] + app["ramp_fresh"] == msg["delivered"]
    assert app["stale"] == 0 and app["refetch"]["errors"] == 0
    assert app["fresh_before_event"] == 0
    assert app["after_event_ms"]["count"] == app["fresh_ms"]["count"] == app["fresh"]


@pytest.mark.parametrize("provider", ["socketio", "sse", "pusher", "ably"])
def test_every_event_reaches_every_reader_and_every_reader_ends_fresh(tmp_path: Path, provider: str) -> None:
    summary = todo_run(tmp_path, provider, "--provider", provider, "--mutation-rate", "20")
    assert summary["provider"] == provider
    assert summary["load"]["publish_rate"] == summary["todo_app"]["mutation_rate"] == 20
    assert_everyone_fresh(summary, READERS)
    app = summary["todo_app"]
    assert app["policy"] == "coalesced"
    assert app["event_ms"] == summary["latency_ms"]
    assert app["fresh_ms"]["min"] >= app["event_ms"]["min"]
    assert app["mutation_ms"]["count"] == app["mutations"]
    assert app["api_ms"]["count"] == app["mutations"] + app["refetch"]["requests"]
    assert app["invalidations"] == summary["messages"]["delivered"]
    assert_gets_explained(app)
    assert {g["expr"] for g in summary["gates"]} == {"loss==0", "publish_failed==0"}


def assert_gets_explained(app: dict[str, Any]) -> None:
    """Every GET is an invalidation's own, a coalesced follow-up (at most one per coalesced invalidation)
    or a retry: invalidations - coalesced + retries <= GETs <= invalidations + retries."""
    ref = app["refetch"]
    assert app["invalidations"] - ref["coalesced"] + ref["retries"] <= ref["requests"]
    assert ref["requests"] <= app["invalidations"] + ref["retries"]


def test_a_burst_coalesces_into_far_fewer_gets_and_both_end_fresh(tmp_path: Path) -> None:
    """20 mutations in 100 ms (200/s) against GETs held 40 ms: a coalescing reader has at most one GET in
    flight and one follow-up owed, so it cannot make more than ~100/40 + 2 GETs; ``always`` makes one per
    event."""
    readers = 3
    burst = ("--mutation-rate", "200", "--mutations", "20", "--api-delay-ms", "40")
    runs = {
        policy: todo_run(tmp_path, policy, *burst, "--refetch", policy, users=readers + 1, seconds=2)
        for policy in ("coalesced", "always")
    }
    for summary in runs.values():
        assert summary["messages"]["published"] == 20
        assert_everyone_fresh(summary, readers)
    coalesced, always = runs["coalesced"]["todo_app"]["refetch"], runs["always"]["todo_app"]["refetch"]
    assert always["requests"] == readers * 20 and always["coalesced"] == 0
    assert coalesced["requests"] <= readers * 6, coalesced
    assert coalesced["coalesced"] >= readers * 20 - coalesced["requests"]
    for summary in runs.values():
        assert summary["todo_app"]["invalidations"] == readers * 20
        assert_gets_explained(summary["todo_app"])


def test_api_delay_shifts_the_refetch_not_the_push(tmp_path: Path) -> None:
    """``--api-delay-ms 30`` holds every GET /api/todos answer (targets/todos.py), a slow list query: fresh
    data comes 30 ms later, the POST and the event do not move."""
    base = todo_run(tmp_path, "base", "--mutation-rate", "20")["todo_app"]
    slow = todo_run(tmp_path, "slow", "--mutation-rate", "20", "--api-delay-ms", "30")["todo_app"]
    figures = ("mutation_ms", "event_ms", "after_event_ms", "fresh_ms")
    shift = {key: slow[key]["p50"] - base[key]["p50"] for key in figures}
    assert abs(shift["fresh_ms"] - 30) <= SHIFT_TOLERANCE_MS, shift  # time to fresh data: the GET
    assert abs(shift["after_event_ms"] - 30) <= SHIFT_TOLERANCE_MS, shift
    assert abs(shift["event_ms"]) <= SHIFT_TOLERANCE_MS, shift  # nothing on the push
    assert abs(shift["mutation_ms"]) <= SHIFT_TOLERANCE_MS, shift


def test_refetch_none_measures_the_event_only(tmp_path: Path) -> None:
    summary = todo_run(tmp_path, "none", "--mutation-rate", "20", "--refetch", "none", seconds=2)
    assert_accounted(summary)
    app = summary["todo_app"]
    assert app["refetch"]["requests"] == 0 and app["fresh"] == 0 and app["stale"] == 0
    assert app["event_ms"]["count"] > 0


def test_rtbench_run_todo_app_gates_on_the_app_figures(tmp_path: Path) -> None:
    """``rtbench run todo-app --provider P``: the app's gates pass on what was measured and fail below it."""
    result = rtbench(
        "run",
        "todo-app",
        "--provider",
        "pusher",
        "-u",
        "2",
        "-t",
        "2s",
        "--warmup",
        "0",
        "--no-progress",
        "--report-dir",
        str(tmp_path),
        "--gate",
        "event_p99<10s",
        "--gate",
        "api_p99<10s",
        "--gate",
        "fresh_p99<1us",
    )
    assert result.returncode == 1, result.stdout + result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["provider"] == "pusher"
    verdicts = {g["expr"]: g for g in summary["gates"]}
    assert verdicts["event_p99<10s"]["passed"] and verdicts["api_p99<10s"]["passed"]
    fresh = verdicts["fresh_p99<1us"]
    assert not fresh["passed"] and fresh["value"] == summary["todo_app"]["fresh_ms"]["p99"] > 0
    assert "gate fresh_p99<1us" in result.stdout
    page = (tmp_path / "report.html").read_text()
    assert "todo app: fresh data" in page and 'id="todo-app"' in page
