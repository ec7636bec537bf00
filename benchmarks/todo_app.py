"""The todo app at scale: per provider, time to fresh data and the refetch stampede, coalesced vs always.

    python benchmarks/todo_app.py [--providers socketio sse pusher ably] [--readers 500] [--rate 5]
                                  [--duration 20] [--refetch coalesced always] [--stale-ms 0 1000] [--out DIR]

Each run is ``locust -f scenarios/todo_app.py --provider P --headless`` against the provider's embedded
target (one writer, ``--readers`` readers), read back from its summary.json. Prints one markdown row a run:
event_ms and fresh_ms p50/p99, GET /api/todos requests/s and p99, errors, stale, lost. ``--stale-ms``
gives the readers' stale windows to compare (a run each).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def run(provider: str, refetch: str, stale_ms: int, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    folder = out / f"{provider}-{refetch}-stale{stale_ms}"
    users = args.readers + 1
    command = [
        sys.executable, "-m", "locust", "-f", "scenarios/todo_app.py", "--provider", provider, "--headless",
        "-u", str(users), "-r", str(min(users, 500)), "-t", f"{args.duration}s",
        "--mutation-rate", str(args.rate), "--refetch", refetch, "--stale-ms", str(stale_ms),
        "--report-dir", str(folder),
    ]  # fmt: skip
    subprocess.run(command, cwd=REPO, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    summary: dict[str, Any] = json.loads((folder / "summary.json").read_text())
    return summary


def row(provider: str, refetch: str, stale_ms: int, summary: dict[str, Any]) -> str:
    app, msgs = summary["todo_app"], summary["messages"]
    get = app["refetch"]
    cells = [
        provider,
        refetch,
        str(stale_ms),
        f"{app['event_ms']['p50']:.1f}",
        f"{app['event_ms']['p99']:.1f}",
        f"{app['fresh_ms']['p50']:.1f}",
        f"{app['fresh_ms']['p99']:.1f}",
        f"{get['per_s']:.0f}",
        f"{get['latency_ms']['p99']:.1f}",
        str(get["errors"]),
        str(app["stale"]),
        f"{msgs['delivered']} / {msgs['expected']}",
        "yes" if summary["harness"]["trustworthy"] else "no",
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--providers", nargs="+", default=["socketio", "sse", "pusher", "ably"])
    parser.add_argument("--refetch", nargs="+", default=["coalesced", "always"])
    parser.add_argument("--readers", type=int, default=500)
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--stale-ms", type=int, nargs="+", default=[0])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="rtbench-todo-bench-"))
    print(
        "| provider | refetch | stale ms | event p50 | event p99 | fresh p50 | fresh p99 | GET/s | GET p99 "
        "| GET errors | stale | delivered / expected | trustworthy |"
    )
    print("|---" * 13 + "|")
    for provider in args.providers:
        for refetch in args.refetch:
            for stale_ms in args.stale_ms:
                print(row(provider, refetch, stale_ms, run(provider, refetch, stale_ms, args, out)), flush=True)
    print(f"run folders: {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
