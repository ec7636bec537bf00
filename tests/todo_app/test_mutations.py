"""The writers' other mutations and the readers' other knobs, end to end on loopback: updates and
deletes (``--mutation-mix``) become fresh at every reader, optimistic writers roll back what the API
refuses, ``--stale-ms`` bounds each reader's GETs, ``--refetch-jitter-ms`` spreads them out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers import running_target
from tests.runs import assert_accounted, run_scenario
from tests.todo_app.test_todo_app_runs import READERS, SCENARIO, assert_everyone_fresh, todo_run

MUTATIONS = 9


@pytest.mark.parametrize("provider", ["socketio", "sse", "pusher", "ably"])
def test_updates_and_deletes_reach_every_reader_and_become_fresh(tmp_path: Path, provider: str) -> None:
    """1:1:1 creates, updates and deletes the writer's own todos; every event of each kind reaches every
    reader and each becomes fresh there (a delete when a list started after its event leaves the todo out)."""
    summary = todo_run(
        tmp_path, provider, "--provider", provider, "--mutation-mix", "1:1:1", "--mutation-rate", "10",
        "--mutations", str(MUTATIONS), seconds=3,
    )  # fmt: skip
    assert_everyone_fresh(summary, READERS)
    app = summary["todo_app"]
    kinds = app["mutations_by_kind"]
    assert sum(kinds.values()) == app["mutations"] == MUTATIONS
    # an update or delete finding no answered create of its own becomes a create, so only bounds are exact
    assert kinds["create"] >= MUTATIONS // 3 and kinds["update"] >= 1 and kinds["delete"] >= 1
    assert kinds["delete"] <= kinds["create"]
    assert summary["parameters"]["mutation_mix"] == [1, 1, 1]


def test_optimistic_writers_roll_back_what_the_api_refuses(tmp_path: Path) -> None:
    """A store that holds 2 todos: of 5 creates, 3 are refused (HTTP 507), each rolled back with its reason
    and counted as a failed publish (and lost); the 2 stored reach every reader and become fresh."""
    with running_target("targets.sse", "--port", "0", "--max-todos", "2") as push:
        result = run_scenario(
            SCENARIO, "--provider", "sse", "--host", push, "-u", str(READERS + 1), "-r", "50", "-t", "2s",
            "--warmup", "0", "--mutation-rate", "20", "--mutations", "5", "--optimistic", "--drain-timeout", "2",
            folder=tmp_path,
        )  # fmt: skip
    summary: dict[str, Any] = result.summary
    assert result.returncode == 1, (result.stdout[-3000:], result.stderr[-3000:])  # the publish_failed gate
    assert_accounted(summary)
    msg, app = summary["messages"], summary["todo_app"]
    assert (app["mutations"], app["mutation_errors"], msg["publish_failed"]) == (2, 3, 3)
    assert app["optimistic"] == {
        "applied": 5,
        "rolled_back": 3,
        "rollbacks_by_reason": {"POST answered HTTP 507": 3},
    }
    # a refused publish is still owed (its request may have been stored): lost, as any failed publish
    assert (msg["expected"], msg["delivered"], msg["lost"]) == (READERS * 5, READERS * 2, READERS * 3)
    assert app["fresh"] == READERS * 2 and app["stale"] == 0
    assert "optimistic           5 applied, 3 rolled back; 3: POST answered HTTP 507" in result.stdout
    assert (
        '<span id="rollbacks">3</span> rolled back; 3: POST answered HTTP 507' in (tmp_path / "report.html").read_text()
    )


def test_stale_ms_makes_at_most_one_get_per_reader_per_window(tmp_path: Path) -> None:
    """``--refetch always`` at 20 events/s makes a GET per event; with a 500 ms stale window each reader
    makes at most one per window (plus its first), the rest deferred, and every mutation still ends fresh."""
    seconds, window_s = 3, 0.5
    summary = todo_run(
        tmp_path, "stale", "--provider", "sse", "--refetch", "always", "--mutation-rate", "20",
        "--stale-ms", str(int(window_s * 1000)), seconds=seconds,
    )  # fmt: skip
    assert_everyone_fresh(summary, READERS)
    app = summary["todo_app"]
    ref = app["refetch"]
    windows = int(seconds / window_s) + 2  # the run, its drain's last window, the first GET
    assert ref["requests"] <= READERS * windows, ref
    assert ref["deferred"] > 0 and ref["requests"] + ref["deferred"] >= app["invalidations"]
    assert summary["parameters"]["stale_ms"] == window_s * 1000


def test_refetch_jitter_delays_the_refetch_by_half_the_window_on_average(tmp_path: Path) -> None:
    """Each refetch waits a random 0..200 ms: after the event, fresh data comes about 100 ms later than
    without jitter, measured side by side in this test. Events 250 ms apart, so each mutation is shown
    by its own event's GET (~40 samples a run: the median's spread is about 11 ms)."""
    jitter_ms = 200
    runs = {
        jitter: todo_run(
            tmp_path, f"jitter{jitter}", "--provider", "socketio", "--refetch", "always", "--mutation-rate", "4",
            "--refetch-jitter-ms", str(jitter), seconds=5,
        )["todo_app"]
        for jitter in (0, jitter_ms)
    }  # fmt: skip
    shift = runs[jitter_ms]["after_event_ms"]["p50"] - runs[0]["after_event_ms"]["p50"]
    assert jitter_ms / 2 - 40 <= shift <= jitter_ms / 2 + 40, shift
    assert runs[jitter_ms]["after_event_ms"]["max"] <= jitter_ms + runs[0]["after_event_ms"]["max"] + 50
