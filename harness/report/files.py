"""The run folder's files, written as the run goes so memory stays flat on long runs."""

from __future__ import annotations

import csv
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from harness.measure import hist

TIMESERIES_COLUMNS = (
    "elapsed_s",
    "connections",
    "published",
    "delivered",
    "errors",
    "dropped",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "open_gaps",
    "cpu_pct",
    "loop_lag_p99_ms",
)


@dataclass(frozen=True)
class IntervalRow:
    """One timeseries.csv row's counts, merged over every generator (the percentiles come from the
    interval's histogram). The health columns stay empty when no generator reported them."""

    connections: int
    published: int
    delivered: int
    errors: int
    dropped: int
    #: sequence numbers skipped and not (yet) arrived, summed over subscribers, at the interval's end:
    #: provisional, and not the loss count (a subscriber away is owed nothing for that time; the
    #: summary's ``lost`` is the accounted figure)
    open_gaps: int | None = None
    cpu_pct: float | None = None
    loop_lag_p99_ms: float | None = None


class FolderError(OSError):
    """The run folder cannot be created or written; the message is the one line the user sees."""


def default_folder(provider: str) -> Path:
    return Path("reports") / f"{provider}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"


def run_folder(base: Path | None, provider: str, index: int) -> Path:
    """The folder of this process's ``index``-th run (from 1): ``--report-dir`` as given for the first,
    ``<dir>-2``, ``<dir>-3`` ... for the next ones a web UI session starts, so runs never mix; without
    ``--report-dir``, a new timestamped folder, suffixed when two runs start in the same second."""
    if base is not None:
        return base if index <= 1 else base.with_name(f"{base.name}-{index}")
    folder = default_folder(provider)
    suffix = 2
    while folder.exists() and index > 1:
        folder = folder.with_name(f"{default_folder(provider).name}-{suffix}")
        suffix += 1
    return folder


def prepare_folder(folder: Path) -> None:
    """Create the run folder and prove a file can be written in it, before any user is spawned: a path
    that is a file, or under ``/proc``, or read-only, fails here in one line instead of at the first write."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except FileExistsError:
        raise FolderError(f"run folder {folder}: exists and is not a folder") from None
    except OSError as exc:
        raise FolderError(f"run folder {folder}: cannot create or write it ({exc.strerror or exc})") from None


class RunFolder:
    """latency.hlog and timeseries.csv grow one interval at a time; summary.json is written last."""

    def __init__(self, folder: Path, start_ms: int) -> None:
        prepare_folder(folder)
        self.folder = folder
        self.start_ms = start_ms
        self._hlog: IO[str] = open(folder / "latency.hlog", "w", encoding="ascii")  # noqa: SIM115
        self._csv_file: IO[str] = open(folder / "timeseries.csv", "w", newline="", encoding="ascii")  # noqa: SIM115
        self._csv = csv.writer(self._csv_file)
        self._csv.writerow(TIMESERIES_COLUMNS)
        self._hlog.write("#[Histogram log format version 1.2]\n")
        self._hlog.write(
            f"#[StartTime: {start_ms / 1000:.3f} (seconds since epoch), "
            f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(start_ms / 1000))} UTC]\n"
        )
        self._hlog.write(f"#[BaseTime: {start_ms / 1000:.3f} (seconds since epoch)]\n")
        self._hlog.write("#rtbench delivery latency; values in microseconds, Interval_Max in milliseconds\n")
        self._hlog.write('"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"\n')

    def write_interval(self, start_ms: int, end_ms: int, histogram: Any, row: IntervalRow) -> None:
        start_s = (start_ms - self.start_ms) / 1000.0
        length_s = max(0.0, (end_ms - start_ms) / 1000.0)
        self._hlog.write(
            f"{start_s:.3f},{length_s:.3f},{histogram.get_max_value() / 1000.0:.3f},{hist.encode(histogram)}\n"
        )
        lat = hist.latency_summary(histogram)
        self._csv.writerow(
            [
                round((end_ms - self.start_ms) / 1000.0, 3),
                row.connections,
                row.published,
                row.delivered,
                row.errors,
                row.dropped,
                lat["p50"],
                lat["p95"],
                lat["p99"],
                lat["max"],
                _blank_if_none(row.open_gaps),
                _blank_if_none(row.cpu_pct),
                _blank_if_none(row.loop_lag_p99_ms),
            ]
        )
        self._hlog.flush()
        self._csv_file.flush()

    def write_json(self, name: str, data: Any) -> None:
        tmp = self.folder / (name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")  # strict JSON
        os.replace(tmp, self.folder / name)

    def close(self) -> None:
        self._hlog.close()
        self._csv_file.close()


def _blank_if_none(value: float | None) -> float | str:
    return "" if value is None else value
