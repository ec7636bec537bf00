"""Read a run folder back: summary.json, timeseries.csv and latency.hlog, for reports and compare.

Readers are tolerant of what a folder lacks (a run that failed before its first interval has no rows)
and of columns added later, so old folders keep rendering. The hlog is merged line by line into one
fixed-size histogram: memory does not grow with the length of the run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pandas as pd

from harness.measure import hist
from harness.measure.records import Summary

SUMMARY = "summary.json"
TIMESERIES = "timeseries.csv"
HLOG = "latency.hlog"
REPORT = "report.html"
REQUIRED_KEYS = ("provider", "load", "latency_ms", "connect_ms", "messages", "gates")


class RunDataError(ValueError):
    """A folder or summary that cannot be read; the message is one line for the user."""


@dataclass
class RunData:
    folder: Path
    summary: Summary  # as read from disk: an older run's may lack keys, so readers use .get
    timeseries: pd.DataFrame
    latency: Any | None  # merged HdrHistogram of the whole run, None without a usable hlog

    @property
    def provider(self) -> str:
        return str(self.summary.get("provider", "?"))


def read_summary(path: Path) -> Summary:
    """summary.json as a dict; RunDataError when missing, not JSON, or lacking the schema's keys. Only
    those keys are checked: an older or hand-made summary may lack the rest, so readers use ``.get``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunDataError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise RunDataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise RunDataError(f"{path}: not a summary object")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise RunDataError(f"{path}: not an rtbench summary (missing {', '.join(missing)})")
    return cast(Summary, data)


def summary_path(path: Path) -> Path:
    """Accept either a run folder or its summary.json."""
    return path / SUMMARY if path.is_dir() else path


def read_timeseries(path: Path) -> pd.DataFrame:
    """timeseries.csv with a derived ``deliveries_per_s`` column; an empty frame when absent."""
    try:
        frame = pd.read_csv(path)
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return pd.DataFrame({"elapsed_s": pd.Series(dtype="float64")})
    if "elapsed_s" not in frame.columns:
        return pd.DataFrame({"elapsed_s": pd.Series(dtype="float64")})
    frame = frame.sort_values("elapsed_s").reset_index(drop=True)
    if "delivered" in frame.columns and len(frame):
        span = frame["elapsed_s"].diff()
        span.iloc[0] = frame["elapsed_s"].iloc[0]
        frame["deliveries_per_s"] = (frame["delivered"] / span.where(span > 0)).fillna(0.0)
    return frame


def read_hlog(path: Path) -> Any | None:
    """The sum of every interval histogram in an HdrHistogram interval log (None when absent or empty)."""
    try:
        handle = path.open(encoding="ascii")
    except FileNotFoundError:
        return None
    merged = hist.new()
    with handle:
        for line in handle:
            if not line or line[0] in '#"':
                continue
            fields = line.rstrip("\n").split(",")
            if len(fields) < 4 or not fields[3]:
                continue
            try:
                hist.add(merged, hist.decode(fields[3]))
            except Exception:
                continue
    return merged if merged.get_total_count() else None


def load_run(path: Path) -> RunData:
    """Everything a report needs from one run folder (or its summary.json)."""
    summary_file = summary_path(path)
    summary = read_summary(summary_file)
    folder = summary_file.parent
    return RunData(
        folder=folder,
        summary=summary,
        timeseries=read_timeseries(folder / TIMESERIES),
        latency=read_hlog(folder / HLOG),
    )


# HdrHistogram-style percentile axis: x = 1 / (1 - p), from the median to 99.99%.
CURVE_TICKS = (50.0, 90.0, 99.0, 99.9, 99.99)


def percentile_curve(histogram: Any, points: int = 160) -> tuple[list[float], list[float]]:
    """(percentiles, values in ms) spaced evenly on the 1/(1-p) log axis, 50% .. 99.99%."""
    import numpy as np

    exponents = np.linspace(np.log10(2.0), 4.0, points)
    pcts = [float(100.0 * (1.0 - 10.0**-x)) for x in exponents]
    values = [v / 1000.0 for v in hist.percentiles(histogram, pcts)]
    return pcts, values
