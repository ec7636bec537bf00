"""Soak: does the generator's memory stay flat over a long run (issue 11 item 14)?

    flock /tmp/rtbench-heavy.lock python benchmarks/soak.py --minutes 30

One Locust process with the embedded target (no ``--host``): ``locust -f scenarios/socketio.py --headless
-u SUBSCRIBERS+1 --publish-rate RATE`` for ``--minutes``, i.e. SUBSCRIBERS x RATE deliveries a second
(1,000 by default, as one subscriber x 1,000 messages/s: the mix whose per-message state grows fastest;
``--subscribers 100 --rate 10`` is the same delivery rate with a hundredth of the messages). The
generator's resident memory (the Locust process alone: the embedded target is its child, not counted)
is sampled every ``--every`` seconds. The growth that matters is the one after the first minute
(imports, spawning, the allocator's first arenas are done by then): the last
sample before the run time is up minus the first sample at or after 60 s, and the least-squares slope
over those samples in MiB per minute. Prints the curve and a Markdown table; JSON to OUT/soak.json.
Loopback only, the target on a free port, and the run has a deadline.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from benchmarks import procstat  # noqa: E402

SETTLE_S = 60.0  # the first minute is start-up; growth is measured from here on
MIB = 2**20


@dataclass
class RssSampler:
    """``run_measured``'s tick: the Locust process's own RSS every ``every`` seconds (not its children)."""

    every: float
    started: float = 0.0
    curve: list[tuple[float, int]] = field(default_factory=list)  # (seconds since launch, bytes)
    _next: float = 0.0

    def __call__(self, proc: subprocess.Popen[bytes], measured: procstat.Measured) -> None:
        now = time.time()
        if now < self._next:
            return
        self._next = (self._next or now) + self.every
        try:
            rss = psutil.Process(proc.pid).memory_info().rss
        except psutil.Error:
            return
        self.curve.append((round(now - measured.started, 1), int(rss)))


def growth(curve: list[tuple[float, int]], until_s: float) -> dict[str, float]:
    """RSS growth after the first minute: last minus first sample in [SETTLE_S, until_s], and the slope."""
    window = [(t, rss) for t, rss in curve if SETTLE_S <= t <= until_s]
    if len(window) < 2:
        return {"from_s": 0.0, "to_s": 0.0, "growth_mib": float("nan"), "slope_mib_per_min": float("nan")}
    n = len(window)
    mean_t = sum(t for t, _ in window) / n
    mean_r = sum(r for _, r in window) / n
    var = sum((t - mean_t) ** 2 for t, _ in window)
    slope = sum((t - mean_t) * (r - mean_r) for t, r in window) / var  # bytes per second
    return {
        "from_s": window[0][0],
        "to_s": window[-1][0],
        "rss_mib_from": round(window[0][1] / MIB, 1),
        "rss_mib_to": round(window[-1][1] / MIB, 1),
        "growth_mib": round((window[-1][1] - window[0][1]) / MIB, 2),
        "slope_mib_per_min": round(slope * 60 / MIB, 3),
    }


def soak(minutes: float, subscribers: int, rate: float, every: float, out: Path) -> dict[str, Any]:
    """One run; returns the curve, the growth after the first minute and the run's message counts."""
    folder = out / "socketio-soak"
    run_s = minutes * 60
    cmd = procstat.locust(
        "-f", "scenarios/socketio.py", "--headless", "--only-summary", "-u", str(subscribers + 1),
        "-r", str(max(1, subscribers)), "-t", f"{run_s:.0f}s", "--publish-rate", f"{rate:g}",
        "--report-dir", str(folder),
    )  # fmt: skip
    sampler = RssSampler(every)
    m = procstat.run_measured(cmd, deadline_s=run_s + 120, log=folder / "locust.log", on_tick=sampler)
    result: dict[str, Any] = {
        "minutes": minutes,
        "subscribers": subscribers,
        "publish_rate": rate,
        "deliveries_per_s": subscribers * rate,
        "exit": m.code,
        "timed_out": m.timed_out,
        "curve": [[t, round(rss / MIB, 1)] for t, rss in sampler.curve],
        "growth": growth(sampler.curve, run_s),
        "run_dir": str(folder),
    }
    summary_file = folder / "summary.json"
    if summary_file.exists():
        s = json.loads(summary_file.read_text())
        result["messages"] = s["messages"]
        result["latency_ms"] = s["latency_ms"]
        result["trustworthy"] = s["harness"]["trustworthy"]
    return result


def table(r: dict[str, Any]) -> str:
    g, msg = r["growth"], r.get("messages", {})
    curve = ", ".join(f"{t:.0f}s {mib}" for t, mib in r["curve"][:: max(1, len(r["curve"]) // 40)])
    return "\n".join(
        [
            "| minutes | subscribers | msg/s | deliveries/s | RSS at 1 min MiB | RSS at end MiB "
            "| growth after 1 min MiB | slope MiB/min | published | delivered | lost | p99 ms | trustworthy |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
            f"| {r['minutes']:g} | {r['subscribers']} | {r['publish_rate']:g} | {r['deliveries_per_s']:g} | "
            f"{g.get('rss_mib_from', 'n/a')} | {g.get('rss_mib_to', 'n/a')} | {g['growth_mib']} | "
            f"{g['slope_mib_per_min']} | {msg.get('published', 'n/a')} | {msg.get('delivered', 'n/a')} | "
            f"{msg.get('lost', 'n/a')} | {r.get('latency_ms', {}).get('p99', 'n/a')} | {r.get('trustworthy', 'n/a')} |",
            "",
            f"RSS curve (s since launch, MiB): {curve}",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30, help="run time (default 30)")
    parser.add_argument("--subscribers", type=int, default=1, help="subscribers (default 1)")
    parser.add_argument("--rate", type=float, default=1000, help="messages/s published (default 1000)")
    parser.add_argument("--every", type=float, default=10, help="seconds between RSS samples (default 10)")
    parser.add_argument("--out", type=Path, help="folder for the run and soak.json (default reports/soak-<UTC time>)")
    args = parser.parse_args()
    if args.minutes * 60 <= SETTLE_S + 2 * args.every:
        parser.error(f"--minutes must leave samples after the first {SETTLE_S:g} s")
    out = args.out or REPO / "reports" / f"soak-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    out.mkdir(parents=True, exist_ok=True)
    info = procstat.machine()
    command = "python benchmarks/soak.py " + " ".join(sys.argv[1:])
    print(f"soak: {args.subscribers} subscribers x {args.rate:g} msg/s for {args.minutes:g} min ...", flush=True)
    result = soak(args.minutes, args.subscribers, args.rate, args.every, out)
    (out / "soak.json").write_text(json.dumps({"command": command, "machine": info, "result": result}, indent=2))
    print(f"\n```bash\n{command}\n```\n\nMachine: {procstat.machine_line(info)}\n")
    print(table(result))
    print(f"\nJSON: {out / 'soak.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
