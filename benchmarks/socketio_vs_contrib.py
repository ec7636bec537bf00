"""Benchmark: rtbench's Socket.IO subscribers vs Locust's SocketIOUser, same target, same session.

    python benchmarks/socketio_vs_contrib.py --users 1000 5000 --rate 1 --duration 30

For each subscriber count: one reference target; an rtbench run (N subscribers + its publisher);
then the baseline (N Locust SocketIOUser subscribers) fed by an rtbench publisher-only run. Reports
deliveries/s, generator CPU-seconds per 1,000 deliveries, peak RSS per connection, p50/p99, and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.helpers import start_target  # noqa: E402

LOCUST = [sys.executable, "-m", "locust"]


def _measure(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, int]:
    """Run ``cmd``; return (CPU seconds, median RSS bytes of it and its children, exit code).

    The median, not the peak: rtbench renders report.html (pandas, matplotlib) after the measurement,
    which would otherwise be charged to the connections."""
    proc = psutil.Popen(cmd, cwd=REPO, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL)
    rss_samples: list[int] = []
    cpu = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal cpu
        while not done.is_set():
            try:
                procs = [proc, *proc.children(recursive=True)]
                rss_samples.append(sum(p.memory_info().rss for p in procs))
                cpu = max(cpu, sum(sum(p.cpu_times()[:2]) for p in procs))
            except psutil.Error:
                pass
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = proc.wait()
    done.set()
    sampler.join()
    rss_samples.sort()
    return cpu, rss_samples[len(rss_samples) // 2] if rss_samples else 0, code


def bench(users: int, rate: float, duration: int) -> dict[str, dict[str, float]]:
    url, target = start_target("targets.socketio", "--port", "0")
    results: dict[str, dict[str, float]] = {}
    spawn = ["-r", "500", "-t", f"{duration + users // 500 + 2}s", "--headless", "--only-summary", "--host", url,
             "--publish-rate", str(rate), "--gate", "p99<50ms"]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cpu, rss, _ = _measure([*LOCUST, "-f", "scenarios/socketio.py", "-u", str(users + 1), *spawn,
                                    "--drain-timeout", "60", "--report-dir", f"{tmp}/rtbench"])
            s = json.loads(Path(f"{tmp}/rtbench/summary.json").read_text())
            delivered = s["messages"]["delivered"]
            results["rtbench"] = {"delivered": delivered, "lost": s["messages"]["lost"],
                                  "deliveries_per_s": delivered / s["load"]["duration_s"],
                                  "cpu_s_per_1k": 1000 * cpu / max(1, delivered),
                                  "rss_per_conn_kib": rss / users / 1024,
                                  "p50": s["latency_ms"]["p50"], "p99": s["latency_ms"]["p99"],
                                  "trustworthy": s["harness"]["trustworthy"]}
            publisher = subprocess.Popen([*LOCUST, "-f", "scenarios/socketio.py", "-u", "1", *spawn[:2], "-t",
                                          f"{duration + users // 500 + 6}s", *spawn[4:], "--report-dir",
                                          f"{tmp}/pub"], cwd=REPO, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
            started = time.monotonic()
            cpu, rss, _ = _measure([*LOCUST, "-f", "benchmarks/locust_contrib_socketio.py", "-u", str(users),
                                    "-r", "500", "-t", f"{duration + users // 500 + 2}s", "--headless",
                                    "--only-summary", "--host", url],
                                   env={"BASELINE_OUT": f"{tmp}/baseline.json"})
            elapsed = time.monotonic() - started
            publisher.wait()
            b = json.loads(Path(f"{tmp}/baseline.json").read_text())
            results["locust SocketIOUser"] = {
                "delivered": b["delivered"], "lost": float("nan"), "deliveries_per_s": b["delivered"] / elapsed,
                "cpu_s_per_1k": 1000 * cpu / max(1, b["delivered"]), "rss_per_conn_kib": rss / users / 1024,
                "p50": b["latency_ms"]["p50"], "p99": b["latency_ms"]["p99"], "trustworthy": float("nan")}
    finally:
        target.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--rate", type=float, default=1.0, help="publish rate, messages/s")
    parser.add_argument("--duration", type=int, default=30, help="seconds of steady state per run")
    args = parser.parse_args()
    for users in args.users:
        res = bench(users, args.rate, args.duration)
        print(f"\n## {users} subscribers, {args.rate:g} msg/s")
        print("| harness | delivered | deliveries/s | CPU-s per 1k deliveries | median RSS KiB per connection "
              "| p50 ms | p99 ms |")
        print("|---|---|---|---|---|---|---|")
        for name, r in res.items():
            print(f"| {name} | {r['delivered']:.0f} | {r['deliveries_per_s']:.0f} | {r['cpu_s_per_1k']:.3f} | "
                  f"{r['rss_per_conn_kib']:.1f} | {r['p50']:.2f} | {r['p99']:.2f} |")
        a, b = res["rtbench"], res["locust SocketIOUser"]
        print(f"\nratios (SocketIOUser / rtbench): CPU per delivery {b['cpu_s_per_1k'] / a['cpu_s_per_1k']:.2f}x, "
              f"memory per connection {b['rss_per_conn_kib'] / a['rss_per_conn_kib']:.2f}x, "
              f"p50 {b['p50'] / max(a['p50'], 1e-9):.2f}x, p99 {b['p99'] / max(a['p99'], 1e-9):.2f}x; "
              f"rtbench lost {a['lost']:.0f}, trustworthy {a['trustworthy']}", flush=True)


if __name__ == "__main__":
    main()
