"""Hold many Socket.IO subscribers in ONE generator process: what connecting and holding them costs.

    flock /tmp/rtbench-heavy.lock python benchmarks/hold.py --users 10000 --rate 0.2 --duration 60

Starts the reference target (``python -m targets.socketio``) on a free loopback port, then one Locust
process: ``locust -f scenarios/socketio.py -u N+1 -r SPAWN_RATE`` (N subscribers + the publisher; no
``--processes``, so one generator). The soft open-files limit is raised first (the target and the
generator each hold N sockets; children inherit it). The script follows the run folder's timeseries.csv:
once every subscriber is connected it lets the run go on for ``--warmup`` + ``--duration`` seconds, then
ends it with SIGINT (Locust drains, writes summary.json and exits). If not every subscriber is connected
``--connect-timeout`` seconds after the run started, the hold starts anyway and the table says so.

Reports: time until every subscriber was connected (from the run's start; the time series has one row
per second, so this is the end of the first 1 s interval that had all N), when Locust said spawning was
complete, connect time p50/p99/max, connections opened/failed/dropped, messages published/delivered/lost,
generator CPU-seconds (exact total from wait4; split at the moment all were connected, from 0.25 s samples)
and CPU % of one core while holding, resident memory per connection ((median RSS while holding - RSS at
the run's start) / N), the steady-state latency (summary.json ``latency_ms``: messages due from spawning
complete + ``--warmup`` on), client lag p99 and the run's trustworthiness. Markdown tables for
BENCHMARKS.md; JSON to OUT/hold.json. Loopback only, free port only, every process has a deadline.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from benchmarks import procstat  # noqa: E402
from tests.helpers import start_target  # noqa: E402

FDS_PER_PROCESS_SPARE = 1024
START_TIME = re.compile(r"^#\[StartTime: ([0-9.]+) ")


def raise_fd_limit(needed: int) -> int:
    """Lift the soft RLIMIT_NOFILE to at least ``needed`` (up to the hard limit); children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise SystemExit(f"hold: error: {needed} open files needed, the hard limit is {hard} (ulimit -Hn)")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
        soft = needed
    return int(soft)


def run_start(folder: Path) -> float | None:
    """The run's start (time.time()), from latency.hlog's StartTime header."""
    try:
        with (folder / "latency.hlog").open(encoding="ascii") as handle:
            for line in handle:
                match = START_TIME.match(line)
                if match:
                    return float(match.group(1))
                if not line.startswith("#"):
                    break
    except OSError:
        pass
    return None


def timeseries(folder: Path) -> list[dict[str, float]]:
    """timeseries.csv's complete rows as numbers (cells that are not numbers are left out)."""
    try:
        text = (folder / "timeseries.csv").read_text(encoding="ascii")
    except OSError:
        return []
    complete, _, _ = text.rpartition("\n")
    rows = []
    for row in csv.DictReader(io.StringIO(complete + "\n")):
        parsed = {}
        for key, cell in row.items():
            try:
                parsed[key] = float(cell)
            except (TypeError, ValueError):
                continue
        if "elapsed_s" in parsed:
            rows.append(parsed)
    return rows


def all_connected_after(rows: list[dict[str, float]], users: int) -> float | None:
    """Seconds from the run's start to the end of the first interval with every subscriber connected."""
    for row in rows:
        if row.get("connections", 0) >= users:
            return row["elapsed_s"]
    return None


@dataclass
class Follow:
    """Watches the run folder while Locust runs; ends the run once the hold has lasted long enough."""

    folder: Path
    users: int
    hold_s: float
    connect_timeout_s: float
    start: float | None = None  # run start, time.time()
    connected_after_s: float | None = None
    hold_from: float | None = None  # time.time() the hold began
    all_connected: bool = False
    stop_sent: float | None = None
    _next_poll: float = 0.0

    def __call__(self, proc: subprocess.Popen[bytes], measured: procstat.Measured) -> None:
        now = time.time()
        if self.stop_sent is not None or now < self._next_poll:
            return
        self._next_poll = now + 0.25
        if self.start is None:
            self.start = run_start(self.folder)
            if self.start is None:
                return
        if self.hold_from is None:
            after = all_connected_after(timeseries(self.folder), self.users)
            if after is not None:
                self.connected_after_s, self.all_connected = after, True
                self.hold_from = self.start + after
            elif now - self.start > self.connect_timeout_s:
                self.hold_from = now  # not everyone made it: hold what is there
        if self.hold_from is not None and now >= self.hold_from + self.hold_s:
            self.stop_sent = now
            proc.send_signal(signal.SIGINT)  # Locust drains, writes the run folder, exits


def hold(users: int, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    folder = out / f"socketio-hold-{users}"
    url, target = start_target("targets.socketio", "--host", "127.0.0.1", "--port", "0")
    follow = Follow(folder, users, args.warmup + args.duration, args.connect_timeout)
    run_time = args.connect_timeout + args.warmup + args.duration + 10  # a bound; the script stops it sooner
    cmd = procstat.locust(
        "-f", "scenarios/socketio.py", "--headless", "--only-summary", "-u", str(users + 1),
        "-r", str(args.spawn_rate), "-t", f"{run_time:.0f}s", "--host", url, "--publish-rate", f"{args.rate:g}",
        "--client", args.client, "--warmup", f"{args.warmup:g}", "--drain-timeout", f"{args.drain:g}",
        "--report-dir", str(folder),
    )  # fmt: skip
    deadline = run_time + args.drain + 180
    try:
        m = procstat.run_measured(cmd, deadline_s=deadline, log=folder / "locust.log", on_tick=follow)
        try:
            times = psutil.Process(target.pid).cpu_times()
            target_cpu = times.user + times.system
        except psutil.Error:
            target_cpu = float("nan")
    finally:
        target.stop()
    summary_file = folder / "summary.json"
    if not summary_file.exists():
        raise RuntimeError(f"{users} subscribers: no summary (exit {m.code}); see {folder / 'locust.log'}")
    s = json.loads(summary_file.read_text())
    start = follow.start or m.started
    hold_from = follow.hold_from or start
    hold_until = follow.stop_sent or (m.started + m.wall_s)
    rss_start = m.rss_at(start)
    rss_hold = m.median_rss(hold_from, hold_until)
    cpu_connected = m.cpu_at(hold_from)
    cpu_hold = m.cpu_at(hold_until) - cpu_connected
    marks = procstat.locust_marks(folder / "locust.log")
    health = s["harness"]
    return {
        "subscribers": users,
        "spawn_rate": args.spawn_rate,
        "publish_rate": args.rate,
        "client": args.client,
        "all_connected": follow.all_connected,
        "all_connected_after_s": follow.connected_after_s,
        "spawning_complete_after_s": round(marks["spawned"] - start, 3) if "spawned" in marks else None,
        "hold_s": round(hold_until - hold_from, 1),
        "connect_ms": s["connect_ms"],
        "connections": s["connections"],
        "messages": s["messages"],
        "latency_ms": s["latency_ms"],
        "ramp_ms": s.get("ramp_ms", {}),
        "fanout_ms": s.get("fanout_ms", {}),
        "client_lag_ms": s.get("client_lag_ms", {}),
        "rx_clock": s.get("rx_clock", ""),
        "rx_stamps": s.get("rx_stamps", {}),
        "loop_lag_ms": health.get("loop_lag_ms", {}),
        "trustworthy": health["trustworthy"],
        "reasons": health.get("reasons", []),
        "generator": {
            "exit": m.code,
            "timed_out": m.timed_out,
            "cpu_s_total": round(m.cpu_s, 2),
            "cpu_s_until_connected": round(cpu_connected - m.cpu_at(start), 2),
            "cpu_s_before_run": round(m.cpu_at(start), 2),
            "cpu_s_hold": round(cpu_hold, 2),
            "cpu_pct_hold": round(100 * cpu_hold / max(1e-9, hold_until - hold_from), 1),
            "rss_mib_at_start": round(rss_start / 2**20, 1),
            "rss_mib_hold_median": round(rss_hold / 2**20, 1),
            "rss_kib_per_connection": round((rss_hold - rss_start) / users / 1024, 2),
            "rss_kib_per_connection_gross": round(rss_hold / users / 1024, 2),
        },
        "target_cpu_s": round(target_cpu, 2),
        "run_dir": str(folder),
    }


def _v(value: Any, fmt: str = "") -> str:
    return "n/a" if value is None else format(value, fmt)


def tables(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| subscribers | spawn rate /s | all connected after s | spawning complete after s | connect p50 ms "
        "| connect p99 ms | connect max ms | opened | failed | dropped | generator CPU-s until connected "
        "| KiB per connection |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        c, conn, g = r["connect_ms"], r["connections"], r["generator"]
        connected = _v(r["all_connected_after_s"], "g") if r["all_connected"] else "not all"
        lines.append(
            f"| {r['subscribers']} | {r['spawn_rate']} | {connected} | {_v(r['spawning_complete_after_s'], '.1f')} | "
            f"{c['p50']} | {c['p99']} | {c['max']} | {conn['opened']} | {conn['failed']} | {conn['dropped']} | "
            f"{g['cpu_s_until_connected']} | {g['rss_kib_per_connection']} |"
        )
    lines += [
        "",
        "| subscribers | msg/s | hold s | published | delivered | lost | duplicated | errors | p50 ms | p99 ms "
        "| max ms | client lag p99 ms | generator CPU % holding | generator CPU-s total | target CPU-s | trustworthy |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        msg, lat, g = r["messages"], r["latency_ms"], r["generator"]
        lines.append(
            f"| {r['subscribers']} | {r['publish_rate']:g} | {r['hold_s']} | {msg['published']} | {msg['delivered']} | "
            f"{msg['lost']} | {msg['duplicated']} | {msg['errors']} | {lat['p50']} | {lat['p99']} | {lat['max']} | "
            f"{r['client_lag_ms'].get('p99', 'n/a')} | {g['cpu_pct_hold']} | {g['cpu_s_total']} | "
            f"{r['target_cpu_s']} | {r['trustworthy']} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, nargs="+", default=[10_000], help="subscribers (each a run; 10000)")
    parser.add_argument("--rate", type=float, default=0.2, help="publish rate, messages/s (default 0.2)")
    parser.add_argument("--duration", type=float, default=60, help="seconds held after --warmup (default 60)")
    parser.add_argument("--warmup", type=float, default=5, help="rtbench --warmup seconds (default 5)")
    parser.add_argument("--spawn-rate", type=int, default=1000, help="Locust -r, users/s (default 1000)")
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=300,
        help="seconds from the run's start to wait for every connection (default 300)",
    )
    parser.add_argument("--drain", type=float, default=30, help="rtbench --drain-timeout seconds (default 30)")
    parser.add_argument("--client", choices=("lean", "official"), default="lean", help="rtbench --client")
    parser.add_argument(
        "--out", type=Path, help="folder for run folders and the JSON (default reports/hold-<UTC time>)"
    )
    args = parser.parse_args()
    if min(args.users) < 1 or args.spawn_rate < 1:
        parser.error("--users and --spawn-rate must be at least 1")
    limit = raise_fd_limit(max(args.users) + FDS_PER_PROCESS_SPARE)
    out = args.out or REPO / "reports" / f"hold-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    out.mkdir(parents=True, exist_ok=True)
    info = {**procstat.machine(), "open_files_limit": limit}
    command = "python benchmarks/hold.py " + " ".join(sys.argv[1:])
    document: dict[str, Any] = {"command": command, "machine": info, "results": []}
    for users in args.users:
        print(
            f"holding {users} Socket.IO subscribers ({args.client}) in one generator process, {args.rate:g} msg/s ...",
            flush=True,
        )
        document["results"].append(hold(users, args, out))
        (out / "hold.json").write_text(json.dumps(document, indent=2) + "\n")
    print(f"\n```bash\n{command}\n```\n\nMachine: {procstat.machine_line(info)}; open files limit {limit}\n")
    print(tables(document["results"]))
    for r in document["results"]:
        if r["reasons"]:
            print(f"\n{r['subscribers']} subscribers, not trustworthy because: " + "; ".join(r["reasons"]))
    print(f"\nJSON: {out / 'hold.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
