"""Socket.IO nodes sharing one Redis behind a private nginx: the compose layout on loopback.

``with socketio_cluster(redis.url) as cluster:`` starts ``nodes`` reference targets
(``python -m targets.socketio --host 127.0.0.1 --port 0 --redis URL --node-id socketio-N``, each on the
port it reports) and nginx from the shipped template in front of them (tests/infra/nginx.py);
``cluster.url`` is what a load generator targets, ``cluster.connections()`` reads each node's /healthz.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from tests.helpers import TargetProcess, start_target
from tests.infra.nginx import running_nginx

__all__ = ["Cluster", "Node", "socketio_cluster"]


@dataclass
class Node:
    name: str
    url: str
    proc: TargetProcess

    def connections(self) -> int:
        """Socket.IO clients connected to this node now (its own /healthz, not through nginx)."""
        with urllib.request.urlopen(f"{self.url}/healthz", timeout=5) as resp:
            count: int = json.load(resp)["connections"]
            return count


@dataclass
class Cluster:
    url: str
    nodes: list[Node]

    def connections(self) -> dict[str, int]:
        """Clients per node, for the nodes still running."""
        return {node.name: node.connections() for node in self.nodes if node.proc.poll() is None}


@contextmanager
def socketio_cluster(redis_url: str, nodes: int = 3) -> Iterator[Cluster]:
    with ExitStack() as stack:
        started: list[Node] = []
        for n in range(1, nodes + 1):
            name = f"socketio-{n}"
            url, proc = start_target(
                "targets.socketio", "--host", "127.0.0.1", "--port", "0", "--redis", redis_url, "--node-id", name
            )
            stack.callback(proc.stop)
            started.append(Node(name, url, proc))
        url = stack.enter_context(running_nginx([node.url.removeprefix("http://") for node in started]))
        yield Cluster(url, started)
