"""Real runs against target nodes that name themselves (``--node-id``: ``X-Rtbench-Node``): summary.json's
``nodes`` section says which node each subscriber was on and accounts every node exactly.

Two Socket.IO nodes share a Redis (a publish on one reaches the other's clients) behind a round-robin
relay, so the run's subscribers land on both; a lone SSE node names itself on its event streams."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers import running_target
from tests.infra.redis import require_redis
from tests.runs import assert_accounted, run_scenario
from tests.scaleout.nodes import redis_nodes
from tests.scaleout.relay import round_robin

pytestmark = pytest.mark.timeout(180)


def assert_nodes_add_up(summary: dict[str, Any]) -> dict[str, Any]:
    """Each node's own accounting holds; together the nodes hold every subscriber, window and steady
    delivery of the run (every connection named its node). Returns the nodes section."""
    nodes: dict[str, Any] = summary["nodes"]
    conn = summary["connections"]
    for name, node in nodes.items():
        assert node["delivered"] + node["lost"] == node["expected"], (name, node)
    assert sum(n["subscribers"] for n in nodes.values()) == conn["opened"] - conn["reconnected"]
    assert sum(n["windows"] for n in nodes.values()) == conn["opened"] + conn["reconnected"]
    assert sum(n["latency_ms"]["count"] for n in nodes.values()) == summary["latency_ms"]["count"]
    assert sum(n["lost"] for n in nodes.values()) == summary["messages"]["lost"] == 0
    assert sum(n["expected"] for n in nodes.values()) <= summary["messages"]["expected"]  # + any arrival outside
    assert "cross_clock_ms" not in summary  # one host, one clock
    return nodes


def test_socketio_subscribers_behind_a_balancer_are_broken_down_by_node(tmp_path: Path) -> None:
    require_redis()
    with (
        redis_nodes("targets.socketio", 2) as (_redis, urls, _procs),
        round_robin([url.removeprefix("http://") for url in urls]) as balancer,
    ):
        run = run_scenario(
            "socketio",
            "--host",
            balancer,
            "-u",
            "9",
            "-r",
            "9",
            "-t",
            "4s",
            "--publish-rate",
            "20",
            "--publish-via",
            "http",
            folder=tmp_path,
        )
    assert run.returncode in (0, 1), run.stderr
    summary = run.summary
    assert_accounted(summary)
    assert summary["connections"]["opened"] == 8 and summary["connections"]["dropped"] == 0
    nodes = assert_nodes_add_up(summary)
    assert sorted(nodes) == ["n0", "n1"]
    assert all(node["subscribers"] >= 3 for node in nodes.values()), nodes  # alternation, give or take a POST
    assert all(node["delivered"] > 0 and node["latency_ms"]["count"] > 0 for node in nodes.values())
    printed = [line for line in run.stdout.splitlines() if line.startswith("  node ")]
    assert [line.split()[1] for line in printed] == ["n0", "n1"]
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert 'data-node="n0"' in page and 'data-node="n1"' in page


def test_a_lone_sse_node_names_itself_on_every_stream(tmp_path: Path) -> None:
    with running_target("targets.sse", "--port", "0", "--node-id", "sse-b") as url:
        run = run_scenario(
            "sse", "--host", url, "-u", "5", "-r", "5", "-t", "3s", "--publish-rate", "20", folder=tmp_path
        )
    assert run.returncode in (0, 1), run.stderr
    summary = run.summary
    assert_accounted(summary)
    nodes = assert_nodes_add_up(summary)
    assert list(nodes) == ["sse-b"]
    assert nodes["sse-b"]["subscribers"] == summary["connections"]["opened"] == 4
    assert nodes["sse-b"]["latency_ms"]["count"] == summary["latency_ms"]["count"] > 0


def test_a_target_that_names_no_node_adds_no_section(tmp_path: Path) -> None:
    with running_target("targets.sse", "--port", "0") as url:
        run = run_scenario(
            "sse", "--host", url, "-u", "3", "-r", "3", "-t", "2s", "--publish-rate", "20", folder=tmp_path
        )
    assert run.returncode in (0, 1), run.stderr
    assert "nodes" not in run.summary and "  node " not in run.stdout
    assert_accounted(run.summary)
