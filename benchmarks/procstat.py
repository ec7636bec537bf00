"""What a benchmarked generator process cost: exact CPU-seconds at exit, resident memory over its life.

CPU comes from ``wait4`` (user + system of the process and every child it waited for), read when the
process is reaped, so nothing after the last sample is missed. Memory is sampled every ``every`` seconds
(the process and its live children, summed). The process is first seen to exit with ``waitid(WNOWAIT)``
and the sampler stopped before it is reaped, so a sample can never land on a recycled pid. Every run has
a deadline: SIGINT (Locust then finishes its measurement and writes its report), SIGKILL after a grace.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
STOP_GRACE_S = 60.0


@dataclass(frozen=True, slots=True)
class Sample:
    t: float  # time.time() of the sample
    rss: int  # bytes, the process and its live children
    cpu_s: float  # user + system so far, the process and its live children


@dataclass
class Measured:
    """One process, run to its end."""

    code: int
    cpu_s: float  # exact, from wait4 at exit
    wall_s: float
    started: float  # time.time() at launch
    samples: list[Sample] = field(default_factory=list)
    timed_out: bool = False

    def median_rss(self, since: float | None = None, until: float | None = None) -> int:
        """Median resident memory over the samples in [since, until] (the whole life by default)."""
        values = [s.rss for s in self.samples if (since is None or s.t >= since) and (until is None or s.t <= until)]
        return int(statistics.median(values)) if values else 0

    def cpu_at(self, when: float) -> float:
        """CPU-seconds used by ``when`` (the last sample at or before it; 0 before the first)."""
        before = [s.cpu_s for s in self.samples if s.t <= when]
        return before[-1] if before else 0.0

    def rss_at(self, when: float) -> int:
        before = [s.rss for s in self.samples if s.t <= when]
        return before[-1] if before else 0


_LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\] ")


def locust_marks(log: Path) -> dict[str, float]:
    """When Locust said every user was spawned (``spawned``) and that the run time was up (``stopping``),
    as time.time() values, from its log lines (local time, millisecond resolution). The window between
    them is the load itself: no imports, no report rendering."""
    marks: dict[str, float] = {}
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return marks
    for line in lines:
        match = _LOG_TIME.match(line)
        if match is None:
            continue
        when = datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if "All users spawned" in line:
            marks.setdefault("spawned", when)
        elif "--run-time limit reached" in line:
            marks.setdefault("stopping", when)
    return marks


def repo_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This checkout first on PYTHONPATH, so the code measured is the code next to the script."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **(extra or {})}


def locust(*args: str) -> list[str]:
    return [sys.executable, "-m", "locust", *args]


def _sample(pid: int, samples: list[Sample], done: threading.Event, every: float) -> None:
    try:
        proc = psutil.Process(pid)
    except psutil.Error:
        return
    while not done.is_set():
        try:
            procs = [proc, *proc.children(recursive=True)]
            rss = cpu = 0.0
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    rss += p.memory_info().rss
                    times = p.cpu_times()
                    cpu += times.user + times.system
            samples.append(Sample(time.time(), int(rss), cpu))
        except psutil.Error:
            pass
        done.wait(every)


def _exited(pid: int) -> bool:
    """Has ``pid`` exited? It stays a zombie (not reaped) so its pid cannot be reused yet."""
    result = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    return result is not None


def run_measured(
    cmd: Sequence[str],
    *,
    deadline_s: float,
    log: Path,
    env: dict[str, str] | None = None,
    every: float = 0.25,
    on_tick: Any = None,
) -> Measured:
    """Run ``cmd`` from the checkout with output to ``log``; stop it at the deadline.

    ``on_tick(proc, measured)`` is called about every 0.1 s while it runs (it may send the process a
    signal to end the run early, e.g. a hold that has lasted long enough)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started, began = time.time(), time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen(
            list(cmd), cwd=REPO, env=env or repo_env(), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    measured = Measured(code=-1, cpu_s=0.0, wall_s=0.0, started=started)
    done = threading.Event()
    sampler = threading.Thread(target=_sample, args=(proc.pid, measured.samples, done, every), daemon=True)
    sampler.start()
    interrupted_at: float | None = None
    while not _exited(proc.pid):
        now = time.monotonic()
        if interrupted_at is None and now - began > deadline_s:
            measured.timed_out = True
            interrupted_at = now
            proc.send_signal(signal.SIGINT)
        elif interrupted_at is not None and now - interrupted_at > STOP_GRACE_S:
            proc.kill()
        elif on_tick is not None:
            on_tick(proc, measured)
        time.sleep(0.1)
    done.set()
    sampler.join()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    measured.code = proc.returncode
    measured.cpu_s = usage.ru_utime + usage.ru_stime
    measured.wall_s = time.monotonic() - began
    return measured


def machine() -> dict[str, Any]:
    """What the numbers were measured on, for the benchmark's header."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "?"

    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": sys.version.split()[0],
        "locust": installed("locust"),
        "python_socketio": installed("python-socketio"),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def machine_line(info: dict[str, Any]) -> str:
    return (
        f"{info['cpus']} CPU ({info['cpu_model']}), {info['memory_gib']} GiB, Python {info['python']}, "
        f"Locust {info['locust']}, python-socketio {info['python_socketio']}; load average at start "
        f"{' / '.join(str(x) for x in info['load_average_at_start'])}; {info['utc']}"
    )
