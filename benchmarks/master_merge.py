"""Past one machine, by simulation: can one Locust master merge what 100 or 1,000 workers report?

    flock /tmp/rtbench-heavy.lock python benchmarks/master_merge.py --workers 100 1000

Each configuration runs in a fresh child process (so its memory is its own). Per simulated worker the
child builds real interval reports with the real ``Recorder`` (a latency histogram of ``--samples``
deliveries a second, log-normal around 8 ms with a tail, counters), packs them with msgpack as Locust's
``Message.serialize`` does, and then, for ``--seconds`` intervals, does what the master does every
second: unpack every worker's message, ``Collector.add_interval`` it, and ``flush`` (merge all
histograms into one hlog line and csv row). It records the merge time per interval and the child's RSS.

With ``--final-subscribers N`` it also simulates the end of the run: every worker's final report with
``N / workers`` subscriber records (one publisher stream per channel, ``--messages`` sent, every
subscriber got all), unpacked and joined by ``Collector.finalize`` (accounting + histogram merges +
summary.json), timed, with the RSS after. Nothing here opens a socket.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgpack
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from harness.measure import gates as gates_mod  # noqa: E402
from harness.measure import probe  # noqa: E402
from harness.measure.accounting import StreamTracker, SubscriberRecord  # noqa: E402
from harness.measure.recorder import Recorder  # noqa: E402
from harness.measure.records import FinalReport, IntervalReport, LoadRequest  # noqa: E402
from harness.report.collector import Collector  # noqa: E402

MIB = 2**20
DISTINCT_REPORTS = 4  # per worker, cycled: real histograms, but not one per simulated second


def interval_report(rng: random.Random, samples: int, connections: int) -> IntervalReport:
    """One worker's second: ``samples`` deliveries through the real recorder, as its loop would time them."""
    recorder = Recorder("sim")
    for _ in range(samples):
        latency_us = int(rng.lognormvariate(9.0, 0.5)) if rng.random() > 0.01 else rng.randint(50_000, 400_000)
        recorder._time(latency_us, 1)  # the recorder's own timing path, without a socket
    recorder.counts["published"] = 10
    report = recorder.interval_report()
    report["connections"] = connections
    return report


def pack(report: Any, node: str) -> bytes:
    """As Locust's ``Message.serialize``: (type, data, node id) in msgpack."""
    return bytes(msgpack.dumps(("rtbench_interval", report, node)))


def unpack(data: bytes) -> tuple[str, Any, str]:
    kind, report, node = msgpack.loads(data, raw=False, strict_map_key=False)
    return str(kind), report, str(node)


def final_report(worker: int, subscribers: int, channels: int, messages: int) -> FinalReport:
    """A worker's final report: its subscribers got every message of their channel's stream (worker 0
    published them all)."""
    recorder = Recorder("sim")
    if worker == 0:
        for c in range(channels):
            ledger = recorder.ledger(f"pub.{c}", probe.channel_name(c))
            ledger.sent_ns.extend(range(1_000, 1_000 + messages))
    for i in range(subscribers):
        record = SubscriberRecord(probe.channel_name(i % channels), windows=[[0, -1]])
        tracker = record.streams[f"pub.{i % channels}"] = StreamTracker()
        tracker.first, tracker.next = 0, messages
        recorder.subscribers.append(record)
    recorder.delivered = subscribers * messages
    return recorder.final_report(10**12)


def rss_mib() -> float:
    return psutil.Process().memory_info().rss / MIB


def simulate(args: argparse.Namespace, workers: int) -> dict[str, Any]:
    """One configuration, in this process: the master's per-second merge, then optionally the final join."""
    rng = random.Random(workers)
    base_rss = rss_mib()
    packed = [
        [pack(interval_report(rng, args.samples, args.connections), f"w{w}") for _ in range(DISTINCT_REPORTS)]
        for w in range(min(workers, 20))
    ]  # 20 workers' worth of distinct histograms, reused round-robin: building 1,000 x 4 would take minutes
    message_bytes = statistics.mean(len(p) for row in packed for p in row)
    collector = Collector("socketio", "simulated", gates_mod.parse_all(None))
    folder = Path(tempfile.mkdtemp(prefix="rtbench-merge-"))
    collector.begin("sim", folder)
    after_build_rss = rss_mib()
    merge_ms: list[float] = []
    for second in range(args.seconds):
        started = time.perf_counter()
        for w in range(workers):
            _kind, report, node = unpack(packed[w % len(packed)][second % DISTINCT_REPORTS])
            collector.add_interval(f"{node}-{w}", report)
        collector.flush()
        merge_ms.append((time.perf_counter() - started) * 1000)
    row: dict[str, Any] = {
        "workers": workers,
        "connections": workers * args.connections,
        "message_kib": round(message_bytes / 1024, 1),
        "merge_ms_median": round(statistics.median(merge_ms), 1),
        "merge_ms_max": round(max(merge_ms), 1),
        "rss_mib_before": round(base_rss, 1),
        "rss_mib_after_intervals": round(rss_mib(), 1),
        "rss_mib_intervals_growth": round(rss_mib() - after_build_rss, 1),
    }
    if args.final_subscribers:
        per_worker = args.final_subscribers // workers
        started = time.perf_counter()
        for w in range(workers):
            data = msgpack.dumps(final_report(w, per_worker, args.channels, args.messages))
            collector.add_final(f"w{w}", msgpack.loads(data, raw=False, strict_map_key=False))
        built_s = time.perf_counter() - started
        load: LoadRequest = {"users": per_worker * workers, "publish_rate": 1.0, "channels": args.channels}
        load["payload_bytes"] = 64
        started = time.perf_counter()
        summary = collector.finalize(load)
        row.update(
            {
                "final_subscribers": per_worker * workers,
                "final_messages_each": args.messages,
                "final_receive_s": round(built_s, 1),
                "finalize_s": round(time.perf_counter() - started, 1),
                "rss_mib_after_final": round(rss_mib(), 1),
                "lost": summary["messages"]["lost"],
            }
        )
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--seconds", type=int, default=20, help="simulated intervals (default: 20)")
    parser.add_argument("--samples", type=int, default=20_000, help="deliveries per worker-second (default: 20000)")
    parser.add_argument("--connections", type=int, default=10_000, help="per worker (default: 10000)")
    parser.add_argument("--final-subscribers", type=int, default=0, help="simulate the final join too")
    parser.add_argument("--channels", type=int, default=10)
    parser.add_argument("--messages", type=int, default=600, help="per channel, in the final ledgers")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child: one configuration
    args = parser.parse_args()
    if args.one:
        print(json.dumps(simulate(args, args.workers[0])))
        return 0
    rows = []
    for workers in args.workers:
        argv = [a for a in sys.argv[1:] if a != "--one"]
        idx = argv.index("--workers") if "--workers" in argv else -1
        if idx >= 0:
            end = idx + 1
            while end < len(argv) and not argv[end].startswith("--"):
                end += 1
            argv[idx:end] = []
        out = subprocess.run(
            [sys.executable, __file__, *argv, "--workers", str(workers), "--one"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        row = json.loads(out.strip().splitlines()[-1])
        print(json.dumps(row), flush=True)
        rows.append(row)
    keys = list(rows[0])
    print("\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row.get(k, "")) for k in keys) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
