"""Generator cost per Socket.IO subscriber: rtbench lean vs rtbench --client official vs Locust's SocketIOUser.

    flock /tmp/rtbench-heavy.lock python benchmarks/socketio_vs_contrib.py --users 1000 5000 --rate 1 --duration 30

For each subscriber count N: one reference target (``python -m targets.socketio`` on a free loopback port),
then three harnesses back to back against it:
  lean      ``locust -f scenarios/socketio.py -u N+1 --client lean``: lean clients timed at the socket;
  official  the same with ``--client official``: python-socketio's AsyncClient, timed in its callback;
  contrib   ``locust -f benchmarks/locust_contrib_socketio.py -u N``: Locust's SocketIOUser (gevent, sync
            client), fed by an rtbench publisher-only run (``-u 1``) in its own process.
Each harness runs twice with the same options and run time: with N subscribers and with 1. The costs
reported are the difference, so they are what the connections cost and not what the process costs anyway
(interpreter and imports, Locust's start, the publisher, report.html rendered with pandas/matplotlib at
the end, the drain):
  CPU-s per 1,000 deliveries = 1000 * (cpu_N - cpu_1) / (delivered_N - delivered_1)
  KiB per connection         = (median_rss_N - median_rss_1) / (N - 1)
cpu = user + system of the generator process over its whole life, exact (wait4 at exit); median_rss =
median resident memory of the generator process, sampled every 0.25 s between Locust's "All users
spawned" and "--run-time limit reached" log lines (the whole life if they are missing). The contrib publisher is a
separate process and is not charged; rtbench's publisher runs in the generator, in both runs, so it
cancels out. Latency: rtbench's steady state (summary.json ``latency_ms``: messages due after spawning
completed + ``--warmup``), SocketIOUser's the same split computed in benchmarks/locust_contrib_socketio.py;
client lag p99 (rtbench: when a message was handled minus when it reached the socket).
Prints markdown tables for BENCHMARKS.md and the ratios SocketIOUser/lean and official/lean; writes
everything, raw runs included, to OUT/socketio_vs_contrib.json. Loopback only, free ports only, every
run has a deadline.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from benchmarks import procstat  # noqa: E402
from tests.helpers import start_target  # noqa: E402

HARNESSES = {"lean": "rtbench lean", "official": "rtbench --client official", "contrib": "locust SocketIOUser"}
SPAWN_RATE = 500
DRAIN_S = 60


@dataclass
class Run:
    """One generator process: a harness at one subscriber count."""

    harness: str
    subscribers: int
    code: int
    cpu_s: float
    median_rss: int
    delivered: int
    run_time_s: float
    latency_ms: dict[str, Any] = field(default_factory=dict)  # steady state
    ramp_ms: dict[str, Any] = field(default_factory=dict)
    client_lag_ms: dict[str, Any] = field(default_factory=dict)
    lost: int | None = None
    trustworthy: bool | None = None
    reasons: list[str] = field(default_factory=list)
    rx_clock: str = ""
    shared_stamps: int | None = None
    opened: int | None = None
    rss_window_s: float = 0.0  # length of the window the median RSS was taken over (0: the whole life)
    folder: str = ""
    timed_out: bool = False


def net_cost(many: Run, one: Run) -> dict[str, float]:
    """What the extra N-1 connections and their deliveries cost: the N run minus the 1-subscriber run."""
    deliveries = many.delivered - one.delivered
    extra = many.subscribers - one.subscribers
    return {
        "cpu_s_per_1k": 1000 * (many.cpu_s - one.cpu_s) / deliveries if deliveries > 0 else math.nan,
        "rss_kib_per_connection": (many.median_rss - one.median_rss) / extra / 1024 if extra > 0 else math.nan,
    }


def _rtbench(client: str, url: str, subscribers: int, args: argparse.Namespace, run_time: int, out: Path) -> Run:
    folder = out / f"{client}-{subscribers}"
    cmd = procstat.locust(
        "-f", "scenarios/socketio.py", "--headless", "--only-summary", "-u", str(subscribers + 1),
        "-r", str(SPAWN_RATE), "-t", f"{run_time}s", "--host", url, "--publish-rate", f"{args.rate:g}",
        "--client", client, "--warmup", f"{args.warmup:g}", "--drain-timeout", str(DRAIN_S),
        "--report-dir", str(folder),
    )  # fmt: skip
    m = procstat.run_measured(cmd, deadline_s=_deadline(run_time, subscribers), log=folder / "locust.log")
    rss, window = _rss(m, folder / "locust.log")
    summary_file = folder / "summary.json"
    if not summary_file.exists():
        raise RuntimeError(f"{client} with {subscribers} subscribers wrote no summary; see {folder / 'locust.log'}")
    s = json.loads(summary_file.read_text())
    return Run(
        harness=client, subscribers=subscribers, code=m.code, cpu_s=m.cpu_s, median_rss=rss, rss_window_s=window,
        delivered=int(s["messages"]["delivered"]), run_time_s=float(s["load"]["duration_s"]),
        latency_ms=s["latency_ms"], ramp_ms=s.get("ramp_ms", {}), client_lag_ms=s.get("client_lag_ms", {}),
        lost=int(s["messages"]["lost"]), trustworthy=bool(s["harness"]["trustworthy"]),
        reasons=list(s["harness"].get("reasons", [])), rx_clock=str(s.get("rx_clock", "")),
        shared_stamps=s.get("rx_stamps", {}).get("shared_stamps"), opened=int(s["connections"]["opened"]),
        folder=str(folder), timed_out=m.timed_out,
    )  # fmt: skip


def _contrib(url: str, subscribers: int, args: argparse.Namespace, run_time: int, out: Path) -> Run:
    folder = out / f"contrib-{subscribers}"
    folder.mkdir(parents=True, exist_ok=True)
    publisher_cmd = procstat.locust(
        "-f", "scenarios/socketio.py", "--headless", "--only-summary", "-u", "1", "-r", "1",
        "-t", f"{run_time + 6}s", "--host", url, "--publish-rate", f"{args.rate:g}", "--drain-timeout", "1",
        "--report-dir", str(folder / "publisher"),
    )  # fmt: skip
    with (folder / "publisher.log").open("w") as log:
        publisher = subprocess.Popen(
            publisher_cmd,
            cwd=REPO,
            env=procstat.repo_env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        cmd = procstat.locust(
            "-f", "benchmarks/locust_contrib_socketio.py", "--headless", "--only-summary", "-u", str(subscribers),
            "-r", str(SPAWN_RATE), "-t", f"{run_time}s", "--host", url,
        )  # fmt: skip
        env = procstat.repo_env({"BASELINE_OUT": str(folder / "baseline.json"), "BASELINE_WARMUP": f"{args.warmup:g}"})
        m = procstat.run_measured(cmd, deadline_s=_deadline(run_time, subscribers), log=folder / "locust.log", env=env)
    finally:
        try:
            publisher.wait(120)
        except subprocess.TimeoutExpired:
            publisher.kill()
            publisher.wait()
    rss, window = _rss(m, folder / "locust.log")
    b = json.loads((folder / "baseline.json").read_text())
    return Run(
        harness="contrib", subscribers=subscribers, code=m.code, cpu_s=m.cpu_s, median_rss=rss, rss_window_s=window,
        delivered=int(b["delivered"]), run_time_s=float(run_time), latency_ms=b["latency_ms"],
        ramp_ms=b.get("ramp_ms", {}), opened=int(b.get("connected", 0)), folder=str(folder), timed_out=m.timed_out,
    )  # fmt: skip


def _rss(m: procstat.Measured, log: Path) -> tuple[int, float]:
    """Median RSS while the load ran, and the length of that window."""
    marks = procstat.locust_marks(log)
    if "spawned" in marks and "stopping" in marks and marks["stopping"] > marks["spawned"]:
        return m.median_rss(marks["spawned"], marks["stopping"]), marks["stopping"] - marks["spawned"]
    return m.median_rss(), 0.0


def _deadline(run_time: int, subscribers: int) -> float:
    return run_time + DRAIN_S + 120 + subscribers / 50


def bench(users: int, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Every harness at ``users`` and at 1 subscriber, one target, back to back."""
    run_time = args.duration + users // SPAWN_RATE + 2
    url, target = start_target("targets.socketio", "--host", "127.0.0.1", "--port", "0")
    runs: dict[str, dict[str, Run]] = {}
    try:
        for harness in args.harnesses:
            runs[harness] = {}
            for n in (1, users):
                print(f"  {HARNESSES[harness]}, {n} subscriber(s), {run_time} s ...", flush=True)
                if harness == "contrib":
                    runs[harness][str(n)] = _contrib(url, n, args, run_time, out)
                else:
                    runs[harness][str(n)] = _rtbench(harness, url, n, args, run_time, out)
    finally:
        target.stop()
    rows = {}
    for harness, pair in runs.items():
        many, one = pair[str(users)], pair["1"]
        rows[harness] = {**net_cost(many, one), "deliveries_per_s": many.delivered / many.run_time_s}
    return {
        "users": users,
        "run_time_s": run_time,
        "net": rows,
        "runs": {h: {n: asdict(r) for n, r in pair.items()} for h, pair in runs.items()},
    }


def _f(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return format(value, fmt)


def table(result: dict[str, Any]) -> str:
    users = result["users"]
    lines = [
        "| harness | delivered | deliveries/s | CPU-s per 1k deliveries | KiB per connection | p50 ms | p99 ms "
        "| client lag p99 ms | rx clock | lost | trustworthy |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for harness, net in result["net"].items():
        r = result["runs"][harness][str(users)]
        lag = r["client_lag_ms"].get("p99") if r["client_lag_ms"] else None
        lines.append(
            f"| {HARNESSES[harness]} | {r['delivered']} | {net['deliveries_per_s']:.0f} | "
            f"{_f(net['cpu_s_per_1k'], '.3f')} | {_f(net['rss_kib_per_connection'], '.1f')} | "
            f"{_f(r['latency_ms'].get('p50'), '.2f')} | {_f(r['latency_ms'].get('p99'), '.2f')} | {_f(lag, '.2f')} | "
            f"{r['rx_clock'] or 'callback'} | {_f(r['lost'], 'd')} | {_f(r['trustworthy'], '')} |"
        )
    lines += [
        "",
        "Raw runs (the costs above are N-subscriber run minus 1-subscriber run):",
        "",
        "| harness | subscribers | delivered | CPU-s | median RSS MiB | steady n | ramp n | exit |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for harness, pair in result["runs"].items():
        for n, r in pair.items():
            lines.append(
                f"| {HARNESSES[harness]} | {n} | {r['delivered']} | {r['cpu_s']:.2f} | {r['median_rss'] / 2**20:.1f} | "
                f"{r['latency_ms'].get('count', 0)} | {r['ramp_ms'].get('count', 'n/a')} | "
                f"{r['code']}{' (deadline)' if r['timed_out'] else ''} |"
            )
    return "\n".join(lines)


def ratios(result: dict[str, Any]) -> list[str]:
    """X / lean for CPU per delivery, memory per connection, p50 and p99."""
    net, users = result["net"], str(result["users"])
    if "lean" not in net:
        return []
    lean, lean_lat = net["lean"], result["runs"]["lean"][users]["latency_ms"]
    out = []
    for harness, name in (("contrib", "SocketIOUser"), ("official", "official")):
        if harness not in net:
            continue
        other, lat = net[harness], result["runs"][harness][users]["latency_ms"]
        parts = [
            f"CPU per delivery {_ratio(other['cpu_s_per_1k'], lean['cpu_s_per_1k'])}",
            f"memory per connection {_ratio(other['rss_kib_per_connection'], lean['rss_kib_per_connection'])}",
            f"p50 {_ratio(lat.get('p50'), lean_lat.get('p50'))}",
            f"p99 {_ratio(lat.get('p99'), lean_lat.get('p99'))}",
        ]
        out.append(f"{name} / lean: " + ", ".join(parts))
    return out


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or math.isnan(a) or math.isnan(b) or b <= 0:
        return "n/a"
    return f"{a / b:.2f}x"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, nargs="+", default=[1000, 5000], help="subscriber counts (>= 2)")
    parser.add_argument("--rate", type=float, default=1.0, help="publish rate, messages/s (default 1)")
    parser.add_argument("--duration", type=int, default=30, help="seconds of each run after spawning (default 30)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds after spawning still ramp-up (default 1)")
    parser.add_argument("--harnesses", nargs="+", choices=list(HARNESSES), default=list(HARNESSES))
    parser.add_argument(
        "--out", type=Path, help="folder for run folders and the JSON (default reports/socketio-vs-contrib-<UTC time>)"
    )
    args = parser.parse_args()
    if min(args.users) < 2:
        parser.error("--users: each count must be at least 2 (the 1-subscriber run is the baseline)")
    out = args.out or REPO / "reports" / f"socketio-vs-contrib-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    out.mkdir(parents=True, exist_ok=True)
    info = procstat.machine()
    command = "python benchmarks/socketio_vs_contrib.py " + " ".join(sys.argv[1:])
    document: dict[str, Any] = {"command": command, "machine": info, "results": []}
    for users in args.users:
        print(f"{users} subscribers, {args.rate:g} msg/s, {args.duration} s:", flush=True)
        document["results"].append(bench(users, args, out))
        (out / "socketio_vs_contrib.json").write_text(json.dumps(document, indent=2) + "\n")
    print(f"\n```bash\n{command}\n```\n\nMachine: {procstat.machine_line(info)}")
    for result in document["results"]:
        print(
            f"\n### {result['users']} subscribers, {args.rate:g} msg/s "
            f"({result['users'] * args.rate:g} deliveries/s offered), run time {result['run_time_s']} s\n"
        )
        print(table(result))
        print()
        for line in ratios(result):
            print(f"- {line}")
    print(f"\nJSON: {out / 'socketio_vs_contrib.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
