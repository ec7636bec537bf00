"""Read a run folder back: summary.json, timeseries.csv and latency.hlog, for reports and compare.

Readers are tolerant of what a folder lacks (a run that failed before its first interval has no rows)
and of columns added later, so old folders keep rendering; not of what is there and wrong: a field of the
wrong type, a ragged or binary csv, a histogram that does not decode is a RunDataError naming the file and
the field or line, so ``rtbench gate``, ``report`` and ``compare`` refuse it in one line. The hlog is merged
line by line into one fixed-size histogram: memory does not grow with the length of the run.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pandas as pd

from harness.measure import hist, validate
from harness.measure.records import Summary

SUMMARY = "summary.json"
TIMESERIES = "timeseries.csv"
HLOG = "latency.hlog"
REPORT = "report.html"
HLOG_COLUMNS = ("StartTimestamp", "Interval_Length", "Interval_Max", "Interval_Compressed_Histogram")
REQUIRED_KEYS = ("provider", "load", "latency_ms", "connect_ms", "messages", "gates")
# every other key may be absent (older summaries); these are indexed directly where present
REQUIRED_FIELDS = (*REQUIRED_KEYS, "gates[].expr", "gates[].value", "gates[].passed")


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
    """summary.json as a dict, checked against the ``Summary`` record: RunDataError naming the file and the
    field when missing, not JSON, lacking the schema's keys or holding a wrong type or histogram. Only
    ``REQUIRED_KEYS`` must be there: an older or hand-made summary may lack the rest, so readers use ``.get``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunDataError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise RunDataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise RunDataError(f"{path}: not a summary (nested too deeply)") from None
    if not isinstance(data, dict):
        raise RunDataError(f"{path}: not a summary object")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise RunDataError(f"{path}: not an rtbench summary (missing {', '.join(missing)})")
    try:
        validate.check(data, Summary, required=REQUIRED_FIELDS)
    except validate.SchemaError as exc:
        raise RunDataError(f"{path}: {exc}") from None
    for name, payload in data.get("histograms", {}).items():
        if payload:
            _decode(payload, f"{path}: histograms.{name}")
    return cast(Summary, data)


def summary_path(path: Path) -> Path:
    """Accept either a run folder or its summary.json."""
    return path / SUMMARY if path.is_dir() else path


def read_timeseries(path: Path) -> pd.DataFrame:
    """timeseries.csv with a derived ``deliveries_per_s`` column; an empty frame when absent or empty.
    Every cell is a number or blank (a figure no generator reported); anything else is a RunDataError
    naming the line and the column. Columns added later are read like the others."""
    header: list[str] = []
    columns: list[list[float | int | None]] = []
    try:
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, 1):
                cells = _ascii(raw, path, number).rstrip("\r\n").split(",")
                if number == 1:
                    header = _header(cells, path)
                    columns = [[] for _ in header]
                    continue
                if len(cells) != len(header):
                    raise RunDataError(f"{path}: line {number}: {len(cells)} cells, the header has {len(header)}")
                for name, column, cell in zip(header, columns, cells, strict=True):
                    column.append(_number(cell, f"{path}: line {number}, column {name}"))
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise RunDataError(f"{path}: cannot read: {exc}") from None
    if not header:
        return pd.DataFrame({"elapsed_s": pd.Series(dtype="float64")})
    frame = pd.DataFrame({name: _series(column) for name, column in zip(header, columns, strict=True)})
    frame = frame.sort_values("elapsed_s").reset_index(drop=True)
    if "delivered" in frame.columns and len(frame):
        span = frame["elapsed_s"].diff()
        span.iloc[0] = frame["elapsed_s"].iloc[0]
        frame["deliveries_per_s"] = (frame["delivered"] / span.where(span > 0)).fillna(0.0)
    return frame


def _header(cells: list[str], path: Path) -> list[str]:
    if "elapsed_s" not in cells:
        raise RunDataError(f"{path}: line 1: not a timeseries header (no elapsed_s column)")
    if len(set(cells)) != len(cells) or "" in cells:
        raise RunDataError(f"{path}: line 1: a column name is blank or repeated")
    return cells


def _number(cell: str, where: str) -> float | int | None:
    """A cell as the writer wrote it: an integer, a decimal, or blank for 'not reported'."""
    if not cell:
        return None
    try:
        return int(cell)
    except ValueError:
        pass
    try:
        value = float(cell)
    except ValueError:
        raise RunDataError(f"{where}: {_quoted(cell)} is not a number") from None
    if not math.isfinite(value):
        raise RunDataError(f"{where}: {_quoted(cell)} is not a finite number")
    return value


def _series(values: list[float | int | None]) -> pd.Series:
    """Integers stay integers, as pandas would read them; a blank makes the column float (NaN)."""
    exact = all(isinstance(v, int) for v in values)
    return pd.Series(values, dtype="int64" if exact and values else "float64")


def read_hlog(path: Path) -> Any | None:
    """The sum of every interval histogram in an HdrHistogram interval log (None when absent or empty).
    A line that is not a comment, the column header or ``start,length,max,histogram`` is a RunDataError
    naming the line, as is a histogram that does not decode."""
    merged = hist.new()
    try:
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, 1):
                line = _ascii(raw, path, number).rstrip("\r\n")
                if not line or line[0] in '#"':
                    continue
                where = f"{path}: line {number}"
                hist.add(merged, _decode(_interval_payload(line, where), where))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RunDataError(f"{path}: cannot read: {exc}") from None
    return merged if merged.get_total_count() else None


def _interval_payload(line: str, where: str) -> str:
    """The histogram of one interval line, after checking its three numbers (an optional ``Tag=`` first)."""
    fields = line.split(",")
    if fields[0].startswith("Tag="):
        fields = fields[1:]
    if len(fields) != len(HLOG_COLUMNS) or not fields[-1]:
        raise RunDataError(f"{where}: not an interval ({','.join(HLOG_COLUMNS)})")
    for cell, name in zip(fields, HLOG_COLUMNS[:-1], strict=False):
        if _number(cell, f"{where}, {name}") is None:
            raise RunDataError(f"{where}, {name}: blank")
    return fields[-1]


def _ascii(raw: bytes, path: Path, number: int) -> str:
    """Both text files are ASCII as written; anything else is a corrupt or foreign file."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise RunDataError(f"{path}: line {number}: not ASCII text (a corrupt or binary file)") from None
    if "\x00" in text:
        raise RunDataError(f"{path}: line {number}: holds NUL bytes (a corrupt or binary file)")
    return text


def _decode(payload: str, where: str) -> Any:
    """An HdrHistogram base64 payload; RunDataError on bad base64 or a truncated or foreign histogram
    (hdrh raises a different exception for each, so any of them means the same to the user)."""
    try:
        return hist.decode(payload)
    except Exception as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RunDataError(f"{where}: not a valid histogram ({detail})") from None


def _quoted(text: str) -> str:
    return json.dumps(text if len(text) <= 30 else text[:27] + "...")


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
