"""The todo app pointed at a team's own app (``--host`` for the push, ``--api-base``/``--todos-path`` for
the API, ``--app-event``), and at an app that answers badly: every bad answer is counted under its
reason, a mutation never seen fresh is stale with its reason, the ``fresh`` gate fails, nothing hangs."""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO, running_target
from tests.runs import RunResult, assert_accounted, run_scenario
from tests.todo_app.test_todo_app_runs import SCENARIO, assert_everyone_fresh

APP_SERVER = [sys.executable, str(REPO / "tests" / "todo_app" / "app_server.py")]
PATH = "/v2/items"
READERS = 2
MUTATIONS = 3
RUN_S, DRAIN_S = 2, 2
#: the run's own bound (-t and --drain-timeout) plus Locust's start and the report: far below a hang
RUN_BOUND_S = RUN_S + DRAIN_S + 20


@contextmanager
def own_app(provider: str, mode: str) -> Iterator[tuple[str, str]]:
    """(push URL, API URL): the provider's reference target, and the app serving ``PATH`` in ``mode``."""
    with (
        running_target(f"targets.{provider}", "--port", "0") as push,
        running_target([*APP_SERVER, push, PATH, mode]) as api,
    ):
        yield push, api


def app_requests(api: str) -> dict[str, int]:
    with urllib.request.urlopen(api + "/requests", timeout=5) as resp:
        counts: dict[str, int] = json.load(resp)
    return counts


def own_run(tmp_path: Path, provider: str, push: str, api: str, *args: str) -> tuple[RunResult, float]:
    began = time.monotonic()
    result = run_scenario(
        SCENARIO,
        "--provider",
        provider,
        "--host",
        push,
        "--api-base",
        api + "/",  # a trailing slash is dropped
        "--todos-path",
        PATH,
        "-u",
        str(READERS + 1),
        "-r",
        "50",
        "-t",
        f"{RUN_S}s",
        "--drain-timeout",
        str(DRAIN_S),
        "--warmup",
        "0",
        "--mutation-rate",
        "20",
        "--mutations",
        str(MUTATIONS),
        "--gate",
        "loss==0",
        *args,
        folder=tmp_path,
        timeout=RUN_BOUND_S * 3,
    )
    return result, time.monotonic() - began


def test_the_api_can_live_at_another_base_and_path_than_the_push(tmp_path: Path) -> None:
    """Socket.IO push from one server, the todos API from another under /v2/items: every mutation went
    through that API (it counts its requests) and every reader ends fresh."""
    with own_app("socketio", "proxy") as (push, api):
        result, _ = own_run(tmp_path, "socketio", push, api, "--gate", "fresh_p99<10s")
        served = app_requests(api)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    summary = result.summary
    assert_everyone_fresh(summary, READERS)
    app = summary["todo_app"]
    assert app["mutations"] == MUTATIONS
    assert served == {"POST": MUTATIONS, "GET": app["refetch"]["requests"]}
    assert summary["parameters"]["api_base"] == api and summary["parameters"]["todos_path"] == PATH


def test_app_event_names_what_the_readers_listen_to(tmp_path: Path) -> None:
    """Readers listening to an event the app never sends get nothing: the name reaches the subscriptions."""
    with own_app("socketio", "proxy") as (push, api):
        result, _ = own_run(tmp_path, "socketio", push, api, "--app-event", "todo:archived")
    assert result.returncode == 1, (result.stdout[-3000:], result.stderr[-3000:])
    summary = result.summary
    msg = summary["messages"]
    assert msg["published"] == MUTATIONS and msg["delivered"] == 0 and msg["lost"] == READERS * MUTATIONS
    assert summary["todo_app"]["invalidations"] == 0


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("http500", "refetch failed: GET answered HTTP 500"),
        ("malformed", "refetch failed: GET answered malformed JSON"),
    ],
)
def test_failed_refetches_count_by_reason_and_fail_the_fresh_gate(tmp_path: Path, mode: str, reason: str) -> None:
    """Every GET fails: each failure counts under its reason (retried while mutations are pending), no
    mutation becomes fresh, each is stale because the last refetch failed, and ``fresh_p99`` fails."""
    with own_app("sse", mode) as (push, api):
        result, seconds = own_run(tmp_path, "sse", push, api, "--gate", "fresh_p99<10s")
        served = app_requests(api)
    assert seconds < RUN_BOUND_S
    assert result.returncode == 1, (result.stdout[-3000:], result.stderr[-3000:])
    summary = result.summary
    assert_accounted(summary)
    msg, app = summary["messages"], summary["todo_app"]
    assert msg["delivered"] == msg["expected"] == READERS * MUTATIONS  # the push side is healthy
    refetch = app["refetch"]
    # every GET the run counted failed; the app may have answered one more the run's end cut off
    assert READERS <= refetch["requests"] == refetch["errors"] <= served["GET"]
    assert refetch["retries"] >= 1
    assert summary["errors_by_reason"] == {reason: refetch["errors"]} and msg["errors"] == refetch["errors"]
    assert app["fresh"] == 0 and app["fresh_ms"]["count"] == 0
    assert app["stale"] == READERS * MUTATIONS
    assert app["stale_by_reason"] == {"the last refetch failed": READERS * MUTATIONS}
    verdicts = {g["expr"]: g["passed"] for g in summary["gates"]}
    assert verdicts == {"loss==0": True, "fresh_p99<10s": False}
    assert "the last refetch failed" in result.stdout


def test_a_list_that_omits_the_newest_todo_forever_leaves_it_stale(tmp_path: Path) -> None:
    """The app's GET never lists its newest todo: the two older ones become fresh at every reader, the
    newest stays stale at every reader (refetches answered without it), and ``fresh_p99`` fails although
    every fresh sample is fast."""
    with own_app("sse", "omit-newest") as (push, api):
        result, seconds = own_run(tmp_path, "sse", push, api, "--gate", "fresh_p99<10s")
    assert seconds < RUN_BOUND_S
    assert result.returncode == 1, (result.stdout[-3000:], result.stderr[-3000:])
    summary: dict[str, Any] = result.summary
    app = summary["todo_app"]
    assert summary["messages"]["delivered"] == READERS * MUTATIONS
    assert app["refetch"]["errors"] == 0 and summary["errors_by_reason"] == {}
    assert app["fresh"] == READERS * (MUTATIONS - 1) == app["fresh_ms"]["count"]
    assert app["fresh_ms"]["p99"] < 10_000
    assert app["stale"] == READERS
    assert app["stale_by_reason"] == {"refetches answered without it": READERS}
    verdicts = {g["expr"]: g["passed"] for g in summary["gates"]}
    assert verdicts == {"loss==0": True, "fresh_p99<10s": False}
