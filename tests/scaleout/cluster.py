"""Socket.IO nodes sharing one Redis behind a private nginx: the compose layout on loopback.

``with socketio_cluster(redis.url) as cluster:`` starts ``count`` reference targets on the Redis
(tests/scaleout/nodes.py) and nginx from the shipped template in front of them (tests/infra/nginx.py).
``cluster.url`` is what a load generator targets; ``cluster.connections()`` reads each live node's own
/healthz. Nodes the test did not kill must stop cleanly.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.helpers import TargetProcess
from tests.infra.nginx import running_nginx
from tests.scaleout.nodes import start_nodes

__all__ = ["Cluster", "Node", "socketio_cluster"]


@dataclass
class Node:
    url: str
    proc: TargetProcess
    killed: bool = False

    def connections(self) -> int:
        """Socket.IO clients connected to this node now (its own /healthz, not through nginx)."""
        with urllib.request.urlopen(f"{self.url}/healthz", timeout=5) as resp:
            count: int = json.load(resp)["connections"]
            return count

    def kill(self) -> None:
        """SIGKILL: no goodbye to its clients, as when a node crashes."""
        self.killed = True
        self.proc.kill()
        self.proc.wait()


@dataclass
class Cluster:
    url: str
    nodes: list[Node]

    def connections(self) -> dict[str, int]:
        """Clients per live node, by node URL."""
        return {node.url: node.connections() for node in self.nodes if not node.killed}


@contextmanager
def socketio_cluster(redis_url: str, count: int = 3) -> Iterator[Cluster]:
    nodes = [Node(url, proc) for url, proc in start_nodes("targets.socketio", redis_url, count)]
    try:
        with running_nginx([node.url.removeprefix("http://") for node in nodes]) as url:
            yield Cluster(url, nodes)
    finally:
        codes = [node.proc.stop() for node in nodes]
    for code, node in zip(codes, nodes, strict=True):
        assert node.killed or code == 0, node.proc.stderr_text()
