"""Three Socket.IO nodes on one Redis behind nginx (the shipped template), measured through nginx.

Every subscriber receives every message whichever node holds it; a node killed mid-run sends its clients
to the survivors (every drop and reconnect counted and timed, nothing missed once back); Redis stopped
mid-run loses the deliveries that had to cross nodes (counted lost, the run fails) and the run still ends
on time. Bounded: each test is a run of about ten seconds (the suite's budget for them is ~90 s).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO
from tests.infra.nginx import nginx_available
from tests.infra.redis import RedisServer, redis_server
from tests.plugin.test_interrupt import start_run, wait_for_intervals
from tests.runs import assert_accounted
from tests.scaleout.cluster import Cluster, socketio_cluster

pytestmark = [
    pytest.mark.load,
    pytest.mark.skipif(not nginx_available(), reason="nginx is not installed (.ci/run: apt-get install nginx)"),
]

SCENARIO = REPO / "scenarios" / "socketio.py"
RUN_TIMEOUT_S = 90


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture
def cluster(redis: RedisServer) -> Iterator[Cluster]:
    with socketio_cluster(redis.url) as running:
        yield running


def wait_until(condition: Callable[[], bool], run: subprocess.Popen[str], timeout_s: float = 30) -> None:
    """Poll ``condition`` (state in other processes, no event to await) while the run goes on; bounded."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert run.poll() is None, "the run ended first"
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def finish(run: subprocess.Popen[str], folder: Path) -> tuple[int, str, dict[str, Any]]:
    try:
        out, _ = run.communicate(timeout=RUN_TIMEOUT_S)  # a hang fails here
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert (folder / "summary.json").exists(), out
    return run.returncode, out, json.loads((folder / "summary.json").read_text())


@pytest.mark.timeout(120)
def test_a_thousand_subscribers_over_three_nodes_receive_every_message(tmp_path: Path, cluster: Cluster) -> None:
    users = 1001  # 1,000 subscribers and the publisher, each a Socket.IO client through nginx
    run = start_run(SCENARIO, tmp_path, "-H", cluster.url, "-u", str(users), "-r", "500", "-t", "10s")
    spread: dict[str, int] = {}

    def all_connected() -> bool:
        spread.update(cluster.connections())
        return sum(spread.values()) == users

    try:
        wait_until(all_connected, run)
    finally:
        code, out, s = finish(run, tmp_path)
    assert all(count > 0 for count in spread.values()) and len(spread) == 3, spread
    msg = s["messages"]
    assert s["connections"]["opened"] == users - 1 and s["connections"]["failed"] == 0, s["connections"]
    assert msg["lost"] == 0 and msg["delivered"] == msg["expected"] > 0, msg
    assert msg["duplicated"] == 0 and msg["errors"] == 0
    nodes = s["nodes"]  # each node named itself in the upgrade's X-Rtbench-Node: the breakdown covers all three
    assert sorted(nodes) == ["n0", "n1", "n2"], nodes
    assert sum(node["subscribers"] for node in nodes.values()) == users - 1
    assert all(node["subscribers"] > 0 and node["lost"] == 0 for node in nodes.values()), nodes
    # every delivery is on a node, but those that arrived outside every window (sent just before a subscribe)
    assert sum(node["delivered"] for node in nodes.values()) + msg["outside_windows"] == msg["delivered"]
    assert sum(node["expected"] for node in nodes.values()) + msg["outside_windows"] == msg["expected"]
    assert_accounted(s)
    assert code == (0 if s["passed"] else 1), out[-3000:]


@pytest.mark.timeout(120)
def test_a_node_killed_mid_run_sends_its_clients_to_the_survivors(tmp_path: Path, cluster: Cluster) -> None:
    """SIGKILL one node: its subscribers reconnect through nginx (``proxy_next_upstream``) to the others and
    from then on miss nothing. Nobody asked them to leave, so what was published while they were away
    was owed to them: it is lost (Socket.IO does not replay), bounded by their time away (``reconnect_ms``)
    plus the second around the kill, and the run fails its ``loss==0`` gate. Publishing over HTTP keeps
    the publisher out of the nodes' connection counts, so every count below is exact."""
    subscribers, rate = 60, 20
    load = ["-u", str(subscribers + 1), "-r", str(subscribers + 1), "-t", "10s", "--publish-rate", str(rate)]
    run = start_run(SCENARIO, tmp_path, "-H", cluster.url, *load, "--publish-via", "http", "--drain-timeout", "3")
    try:
        wait_until(lambda: sum(cluster.connections().values()) == subscribers, run)
        wait_for_intervals(run, tmp_path, rows=2)
        spread = cluster.connections()
        victim = max(cluster.nodes, key=lambda node: spread[node.url])  # the busiest node: it has subscribers
        victim.kill()
        # they come back through nginx, which passes their new connections to the nodes still up
        wait_until(lambda: sum(cluster.connections().values()) == subscribers, run)
        survivors = cluster.connections()
    finally:
        code, out, s = finish(run, tmp_path)
    assert len(survivors) == 2 and victim.url not in survivors, survivors
    conns, msg = s["connections"], s["messages"]
    assert conns["dropped"] == conns["reconnected"] == spread[victim.url] > 0, (conns, spread)
    assert conns["failed"] == 0 and s["reconnect_ms"]["count"] == conns["reconnected"], s["reconnect_ms"]
    assert msg["publish_failed"] == 0, msg  # a POST refused by the dead node went to another one
    away_s = s["reconnect_ms"]["max"] / 1000 + 1.0  # the longest time away, and the second around the kill
    assert 0 < msg["lost"] <= spread[victim.url] * rate * away_s, msg  # once back, nothing missed
    assert msg["delivered"] > 0
    assert_accounted(s)
    gates = {g["expr"]: g["passed"] for g in s["gates"]}
    assert gates["loss==0"] is False and s["passed"] is False
    assert code == 1, out[-3000:]


@pytest.mark.timeout(120)
def test_redis_stopped_mid_run_loses_cross_node_deliveries_and_the_run_ends(
    tmp_path: Path, redis: RedisServer, cluster: Cluster
) -> None:
    users = 61
    load = ["-u", str(users), "-r", str(users), "-t", "8s", "--publish-rate", "20", "--drain-timeout", "3"]
    run = start_run(SCENARIO, tmp_path, "-H", cluster.url, *load, "--gate", "loss==0")
    try:
        wait_until(lambda: sum(cluster.connections().values()) == users, run)
        wait_for_intervals(run, tmp_path, rows=2)
        redis.stop()
    finally:
        code, out, s = finish(run, tmp_path)
    msg = s["messages"]
    assert 0 < msg["lost"] < msg["expected"], msg  # the publisher's own node still delivered
    assert s["connections"]["failed"] == 0
    assert_accounted(s)
    assert code == 1 and s["passed"] is False, out[-3000:]
