"""HdrHistogram helpers: one shape for every latency histogram so they always merge exactly."""

from __future__ import annotations

import weakref
from functools import cache
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram
from numpy import ctypeslib  # imported now: numpy loads it lazily, which fails once the process is out of fds

from harness.measure.records import ConnectSummary, LatencySummary

LOWEST_US = 1
HIGHEST_US = 3600 * 1_000_000  # one hour
SIGNIFICANT_DIGITS = 3
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}


def new() -> Any:
    """A histogram of microseconds, 1 µs .. 1 h at 3 significant digits (DESIGN rule 3)."""
    return _acyclic(HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS))


def _acyclic(histogram: Any) -> Any:
    """hdrh's histogram and its encoder point at each other, so a dropped histogram (~180 KB with its
    buffers) waits for a full garbage collection, which ``gc.freeze()`` makes rare: several a second
    (interval histograms, decoded reports) grew a soak run's generator by ~10 MB a minute. The encoder
    holds its histogram weakly instead, and a histogram is freed as soon as the last reference goes."""
    histogram.encoder.histogram = weakref.proxy(histogram)
    return histogram


def encode(histogram: Any) -> str:
    return str(histogram.encode().decode("ascii"))


def add(into: Any, other: Any) -> None:
    """``into.add(other)``, except that an empty ``other`` is skipped: hdrh's ``add`` takes an empty
    histogram's minimum as 0, and ``into`` would report a minimum of 0 from then on."""
    if other.get_total_count():
        into.add(other)


def decode(payload: str) -> Any:
    """Decode into a histogram of our own shape, so ``add`` never loses range."""
    merged = new()
    add(merged, _acyclic(HdrHistogram.decode(payload.encode("ascii"))))
    return merged


def merge(payloads: list[str]) -> Any:
    merged = new()
    for payload in payloads:
        add(merged, _acyclic(HdrHistogram.decode(payload.encode("ascii"))))
    return merged


@cache
def _bucket_values() -> tuple[Any, Any]:
    """Per counts-index: the highest and the median equivalent value, as HdrHistogram defines them."""
    shape = new()
    highest = np.empty(shape.counts_len, dtype=np.float64)
    median = np.empty(shape.counts_len, dtype=np.float64)
    for index in range(shape.counts_len):
        value = shape.get_value_from_index(index)
        lowest = shape.get_lowest_equivalent_value(value)
        top = shape.get_highest_equivalent_value(value)
        highest[index] = top
        median[index] = lowest + ((top - lowest + 1) >> 1)
    return highest, median


def warm_up() -> None:
    _bucket_values()


def percentiles(histogram: Any, points: list[float]) -> list[float]:
    """``get_value_at_percentile`` for many points in one vectorised pass (hdrh's own loops in Python,
    which costs tens of milliseconds per call and would stall the generator's event loop)."""
    total = int(histogram.get_total_count())
    if total == 0:
        return [0.0 for _ in points]
    cumulative = np.cumsum(ctypeslib.as_array(histogram.counts))
    highest, _ = _bucket_values()
    out = []
    for point in points:
        target = max(1, int(min(point, 100.0) * total / 100 + 0.5))
        out.append(float(highest[int(np.searchsorted(cumulative, target, side="left"))]))
    return out


def mean(histogram: Any) -> float:
    total = int(histogram.get_total_count())
    if total == 0:
        return 0.0
    _, median = _bucket_values()
    return float(np.dot(ctypeslib.as_array(histogram.counts).astype(np.float64), median) / total)


def _ms(value_us: float) -> float:
    return round(value_us / 1000.0, 3)


def latency_summary(histogram: Any) -> LatencySummary:
    """The summary.json ``latency_ms`` block: count, min, percentiles, max, mean in milliseconds."""
    count = int(histogram.get_total_count())
    if count == 0:
        return {"count": 0, "min": 0, "p50": 0, "p90": 0, "p95": 0, "p99": 0, "p999": 0, "max": 0, "mean": 0}
    p50, p90, p95, p99, p999 = (_ms(v) for v in percentiles(histogram, list(PERCENTILES.values())))
    return {
        "count": count,
        "min": _ms(histogram.get_min_value()),
        "p50": p50,
        "p90": p90,
        "p95": p95,
        "p99": p99,
        "p999": p999,
        "max": _ms(histogram.get_max_value()),
        "mean": _ms(mean(histogram)),
    }


def connect_summary(histogram: Any) -> ConnectSummary:
    full = latency_summary(histogram)
    return {"count": full["count"], "p50": full["p50"], "p95": full["p95"], "p99": full["p99"], "max": full["max"]}
