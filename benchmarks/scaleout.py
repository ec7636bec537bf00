"""One Socket.IO node vs three on Redis, both behind nginx, on this machine (issue 12).

    flock /tmp/rtbench-heavy.lock python benchmarks/scaleout.py --subscribers 2000 --nodes 1 3

For each node count: a private redis-server, that many ``targets.socketio --redis`` nodes and nginx from
the shipped template in front (tests/scaleout/cluster.py, the layout docker-compose.yml runs), then one
headless rtbench run through nginx: ``--subscribers`` subscribers plus one publisher at ``--rate``
messages a second for ``--duration`` seconds. Reported: latency p50/p99, fan-out completion p99, loss,
the per-node split of subscribers, and the CPU seconds the server side spent (nodes + nginx + Redis,
read from /proc before and after) beside the generator's. Loopback only, free ports, bounded.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from benchmarks import procstat  # noqa: E402
from tests.infra.redis import redis_server  # noqa: E402
from tests.scaleout.cluster import Cluster, socketio_cluster  # noqa: E402


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes (and their children) so far."""
    total = 0.0
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            for p in [proc, *proc.children(recursive=True)]:
                times = p.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            continue
    return total


def server_pids(cluster: Cluster, redis_pid: int | None) -> list[int]:
    """Every node, nginx (the master and its worker) and Redis."""
    pids = [node.proc.pid for node in cluster.nodes] + ([redis_pid] if redis_pid is not None else [])
    port = int(cluster.url.rsplit(":", 1)[1])
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            pids.append(conn.pid)
    return sorted(set(pids))


def one(args: argparse.Namespace, nodes: int, out: Path) -> dict[str, Any]:
    folder = out / f"nodes-{nodes}"
    with redis_server() as redis, socketio_cluster(redis.url, count=nodes) as cluster:
        pids = server_pids(cluster, redis.proc.pid if redis.proc is not None else None)
        before = cpu_seconds(pids)
        cmd = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(REPO / "scenarios" / "socketio.py"),
            "--headless",
            "--only-summary",
            "-H",
            cluster.url,
            "-u",
            str(args.subscribers + 1),
            "-r",
            str(args.spawn_rate),
            "-t",
            f"{args.duration}s",
            "--publish-rate",
            str(args.rate),
            "--report-dir",
            str(folder),
        ]
        measured = procstat.run_measured(cmd, deadline_s=args.duration + 120, log=out / f"nodes-{nodes}.log")
        server_cpu = cpu_seconds(pids) - before
    summary = json.loads((folder / "summary.json").read_text())
    split = {name: node["subscribers"] for name, node in summary.get("nodes", {}).items()}
    return {
        "nodes": nodes,
        "subscribers": args.subscribers,
        "p50_ms": summary["latency_ms"]["p50"],
        "p99_ms": summary["latency_ms"]["p99"],
        "fanout_p99_ms": summary["fanout_ms"]["p99"],
        "delivered": summary["messages"]["delivered"],
        "lost": summary["messages"]["lost"],
        "per_node_subscribers": split,
        "server_cpu_s": round(server_cpu, 1),
        "generator_cpu_s": round(measured.cpu_s, 1),
        "trustworthy": summary["harness"]["trustworthy"],
        "exit": measured.code,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--rate", type=float, default=1.0, help="messages a second (default: 1)")
    parser.add_argument("--duration", type=int, default=30, help="seconds (default: 30)")
    parser.add_argument("--spawn-rate", type=int, default=500)
    parser.add_argument("--out", type=Path, default=REPO / "reports" / f"scaleout-{time.strftime('%Y%m%dT%H%M%S')}")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(procstat.machine_line(procstat.machine()), flush=True)
    rows = []
    for nodes in args.nodes:
        row = one(args, nodes, args.out)
        print(json.dumps(row), flush=True)
        rows.append(row)
    keys = list(rows[0])
    print("\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in keys) + " |")
    (args.out / "scaleout.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
